/* USDT argument access for uprobe programs loaded by aya (which has no USDT support).
 *
 * Userspace parses each probe site's argument specification (".note.stapsdt") into a
 * struct usdt_spec, stores it in the usdt_specs map and attaches the program with the spec's
 * index as the BPF cookie. usdt_arg() then reads argument n from the registers (or the
 * memory they point at) and sign-extends or truncates it to its declared size.
 * Layouts here are mirrored in src/usdt/spec.rs; change both together. */
#pragma once

#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>

#define USDT_MAX_ARGS 12
#define USDT_MAX_SPECS 256

enum usdt_arg_type {
	USDT_ARG_CONST = 0,
	USDT_ARG_REG = 1,
	USDT_ARG_REG_DEREF = 2,
};

struct usdt_arg_spec {
	__u64 val_off;     /* the constant, or the offset added to the register before deref */
	__u32 arg_type;    /* enum usdt_arg_type */
	__s16 reg_off;     /* offset of the register in struct pt_regs */
	__u8 arg_signed;   /* sign-extend when narrowing */
	__s8 arg_bitshift; /* 64 - 8 * size */
};

struct usdt_spec {
	struct usdt_arg_spec args[USDT_MAX_ARGS];
	__u32 arg_cnt;
	__u32 probe_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, USDT_MAX_SPECS);
	__type(key, __u32);
	__type(value, struct usdt_spec);
} usdt_specs SEC(".maps");

/* The spec of the probe site that fired (its index is the attach cookie). */
static __always_inline struct usdt_spec *usdt_spec(struct pt_regs *ctx)
{
	__u32 spec_id = (__u32)bpf_get_attach_cookie(ctx);
	return bpf_map_lookup_elem(&usdt_specs, &spec_id);
}

/* Register file copied once per probe hit: one helper call instead of one per argument. */
struct usdt_regs {
	unsigned long r[21]; /* x86-64 struct pt_regs, 8-byte slots */
};

static __always_inline int usdt_load_regs(struct pt_regs *ctx, struct usdt_regs *regs)
{
	return bpf_probe_read_kernel(regs, sizeof(*regs), ctx);
}

/* Reads argument n (0-based) of the probe that fired; 0 on success. */
static __always_inline int usdt_arg(struct usdt_spec *spec, struct usdt_regs *regs, __u32 n, long *res)
{
	if (n >= USDT_MAX_ARGS || n >= spec->arg_cnt)
		return -2;
	struct usdt_arg_spec *arg = &spec->args[n];
	unsigned long val = 0;
	__u32 slot = ((__u32)arg->reg_off / 8) & 31;
	if (arg->arg_type != USDT_ARG_CONST && slot >= 21)
		return -3;
	switch (arg->arg_type) {
	case USDT_ARG_CONST:
		val = arg->val_off;
		break;
	case USDT_ARG_REG:
		val = regs->r[slot];
		break;
	case USDT_ARG_REG_DEREF:
		if (bpf_probe_read_user(&val, sizeof(val), (void *)(regs->r[slot] + arg->val_off)))
			return -4;
		break;
	default:
		return -5;
	}
	val <<= arg->arg_bitshift;
	if (arg->arg_signed)
		val = ((long)val) >> arg->arg_bitshift;
	else
		val = val >> arg->arg_bitshift;
	*res = (long)val;
	return 0;
}
