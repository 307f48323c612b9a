/* peerlab's eBPF programs: one uprobe program per Bitcoin Core tracepoint.
 *
 * Each program reads its USDT arguments (usdt.h), copies them into a ring-buffer record
 * (events.h) and counts what it emitted or dropped per probe. Records are submitted without
 * waking userspace until `wakeup_bytes` are pending; userspace also drains on a timer, so
 * batching costs at most that timer's latency. A failed reservation (ring full) is counted
 * as a drop, never silent. Only the process in target_tgid is traced (0 = any), so one
 * attachment to the binary survives a restart of bitcoind: userspace updates the pid. */
#include "usdt.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* Payload capacity of the four message size classes. The largest is Bitcoin Core's
 * MAX_PROTOCOL_MESSAGE_LENGTH, so no message the node accepts is ever truncated. */
#define TINY_PAYLOAD 128
#define SMALL_PAYLOAD 1024
#define MEDIUM_PAYLOAD 65536
#define LARGE_PAYLOAD 4000000

/* Userspace is woken once this many bytes are pending (overridable before load). */
volatile const __u64 wakeup_bytes = 65536;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 21);
} events_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} msg_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} big_msg_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROBE_COUNT);
	__type(key, __u32);
	__type(value, struct probe_counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target_tgid SEC(".maps");

struct message_tiny {
	struct message_record m;
	__u8 payload[TINY_PAYLOAD];
};
struct message_small {
	struct message_record m;
	__u8 payload[SMALL_PAYLOAD];
};
struct message_medium {
	struct message_record m;
	__u8 payload[MEDIUM_PAYLOAD];
};
struct message_large {
	struct message_record m;
	__u8 payload[LARGE_PAYLOAD];
};

/* Peers whose address and connection type userspace already has, per traced process: a
 * message of a known peer skips the two string reads (the costliest part of a small message,
 * about a quarter of the traced thread's time per probe). A direct-mapped table (slot = low
 * bits of the peer id; a lookup is an array index the verifier inlines, where a hash map
 * lookup costs more than the reads it saves): a slot taken over by another peer only makes
 * the first peer send its strings again. The generation is the one the peer was sent in;
 * userspace bumps `peers_generation` when it forgets what it was sent (its own table is
 * bounded), which makes every peer unknown again. A slot is marked only after the record
 * carrying the strings was submitted, so a dropped record never leaves a peer marked, and
 * a torn read of a slot being rewritten can only match a peer whose strings were submitted.
 * A peer id is never reused within one process, and the slot holds the process id, so a
 * restarted bitcoind starts unknown. */
#define KNOWN_PEER_SLOTS 4096

struct known_peer {
	__s64 peer_id;
	__u32 tgid;
	__u32 generation;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KNOWN_PEER_SLOTS);
	__type(key, __u32);
	__type(value, struct known_peer);
} known_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} peers_generation SEC(".maps");

/* The slot of `peer_id`, and whether it names this peer of this process in this generation. */
static __always_inline struct known_peer *peer_slot(__s64 peer_id, __u32 tgid, __u32 generation,
						    int *known)
{
	__u32 index = (__u32)peer_id & (KNOWN_PEER_SLOTS - 1);
	struct known_peer *slot = bpf_map_lookup_elem(&known_peers, &index);
	*known = slot && slot->peer_id == peer_id && slot->tgid == tgid &&
		 slot->generation == generation;
	return slot;
}

static __always_inline __u32 current_generation(void)
{
	__u32 key = 0;
	__u64 *generation = bpf_map_lookup_elem(&peers_generation, &key);
	return generation ? (__u32)*generation : 0;
}

static __always_inline int other_process(void)
{
	__u32 key = 0;
	__u32 *tgid = bpf_map_lookup_elem(&target_tgid, &key);
	return tgid && *tgid && (bpf_get_current_pid_tgid() >> 32) != *tgid;
}

static __always_inline void count(__u32 probe, int dropped)
{
	struct probe_counter *c = bpf_map_lookup_elem(&counters, &probe);
	if (!c)
		return;
	/* Per-CPU values: no other CPU writes this slot. */
	if (dropped)
		c->dropped++;
	else
		c->emitted++;
}

/* Wake the reader once each time the pending data crosses a multiple of wakeup_bytes (not on
 * every submit while above it: a wakeup costs the traced thread an interrupt). The reader's
 * timer drains whatever is below the threshold. */
static __always_inline __u64 wakeup_flag(void *ring, __u64 record_size)
{
	__u64 pending = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 before = pending > record_size ? pending - record_size : 0;
	return pending / wakeup_bytes > before / wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Declares `spec` and `regs` for ARG(): the site's argument spec and a copy of the registers. */
#define USDT_PROLOGUE                                                                              \
	struct usdt_spec *spec = usdt_spec(ctx);                                                   \
	struct usdt_regs regs;                                                                     \
	if (!spec || usdt_load_regs(ctx, &regs))                                                   \
		goto fail;

#define ARG(n, var)                                                                                \
	long var = 0;                                                                              \
	if (usdt_arg(spec, &regs, n, &var))                                                        \
		goto fail;

#define RESERVE(ring, type, var)                                                                   \
	type *var = bpf_ringbuf_reserve(&ring, sizeof(type), 0);                                   \
	if (!var)                                                                                  \
		goto fail;

#define SUBMIT(ring, var, probe)                                                                   \
	bpf_ringbuf_submit(var, wakeup_flag(&ring, sizeof(*var)));                                               \
	count(probe, 0);                                                                           \
	return 0;

/* The P2P header's message type field: at most 12 characters. */
#define MSG_TYPE_SIZE 12

/* One size class of message capture: reserve, copy the strings userspace lacks, the message
 * type and the (capped) payload, submit, then mark the peer known. The message type is read
 * as a fixed 12 bytes (no string scan; the NUL, if any, ends it in userspace), falling back to
 * a string read when those bytes cross into unmapped memory. */
#define EMIT_MESSAGE(ring, type, capacity)                                                         \
	{                                                                                          \
		type *e = bpf_ringbuf_reserve(&ring, sizeof(type), 0);                             \
		if (!e)                                                                            \
			goto fail;                                                                 \
		e->m.h.kind = probe;                                                               \
		e->m.h.ktime_ns = bpf_ktime_get_ns();                                              \
		e->m.peer_id = peer_id;                                                            \
		e->m.size = size;                                                                  \
		e->m.truncated = size > (capacity);                                                \
		e->m.peer_known = known;                                                           \
		if (!known) {                                                                      \
			bpf_probe_read_user_str(e->m.addr, sizeof(e->m.addr), (void *)addr);       \
			bpf_probe_read_user_str(e->m.conn_type, sizeof(e->m.conn_type),            \
						(void *)conn_type);                                \
		}                                                                                  \
		if (bpf_probe_read_user(e->m.command, MSG_TYPE_SIZE, (void *)command))             \
			bpf_probe_read_user_str(e->m.command, MSG_TYPE_SIZE, (void *)command);     \
		e->m.command[MSG_TYPE_SIZE] = 0;                                                   \
		__u64 n = size;                                                                    \
		if (n > (capacity))                                                                \
			n = (capacity);                                                            \
		if (n && bpf_probe_read_user(e->payload, n, (void *)payload))                      \
			n = 0;                                                                     \
		e->m.copied = n;                                                                   \
		bpf_ringbuf_submit(e, wakeup_flag(&ring, sizeof(type)));                           \
		if (!known && slot) {                                                              \
			slot->tgid = tgid;                                                         \
			slot->generation = generation;                                             \
			slot->peer_id = peer_id;                                                   \
		}                                                                                  \
		count(probe, 0);                                                                   \
		return 0;                                                                          \
	}

static __always_inline int trace_message(struct pt_regs *ctx, __u32 probe)
{
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, peer_id);
	ARG(3, command);
	ARG(4, size_arg);
	ARG(5, payload);
	__u64 size = (__u64)size_arg;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 generation = current_generation();
	int known = 0;
	struct known_peer *slot = peer_slot(peer_id, tgid, generation, &known);
	/* The two string pointers only for a peer userspace does not know yet: at -O2 Bitcoin
	 * Core keeps most of them on the stack, so each is a user-memory read, and those reads
	 * are the bulk of a small message's cost in the node (about 110 ns each under a flood). */
	long addr = 0;
	long conn_type = 0;
	if (!known && (usdt_arg(spec, &regs, 1, &addr) || usdt_arg(spec, &regs, 2, &conn_type)))
		goto fail;
	/* Size classes keep small messages (ping, verack, small inv) from occupying big slots. */
	if (size <= TINY_PAYLOAD)
		EMIT_MESSAGE(msg_ring, struct message_tiny, TINY_PAYLOAD);
	if (size <= SMALL_PAYLOAD)
		EMIT_MESSAGE(msg_ring, struct message_small, SMALL_PAYLOAD);
	if (size <= MEDIUM_PAYLOAD)
		EMIT_MESSAGE(msg_ring, struct message_medium, MEDIUM_PAYLOAD);
	EMIT_MESSAGE(big_msg_ring, struct message_large, LARGE_PAYLOAD);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int inbound_message(struct pt_regs *ctx)
{
	return trace_message(ctx, PROBE_INBOUND_MESSAGE);
}

SEC("uprobe")
int outbound_message(struct pt_regs *ctx)
{
	return trace_message(ctx, PROBE_OUTBOUND_MESSAGE);
}

static __always_inline int trace_connection(struct pt_regs *ctx, __u32 probe)
{
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, peer_id);
	ARG(1, addr);
	ARG(2, conn_type);
	ARG(3, network);
	ARG(4, value);
	RESERVE(events_ring, struct connection_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->peer_id = peer_id;
	e->network = (__s32)network;
	e->value = (__u64)value;
	bpf_probe_read_user_str(e->addr, sizeof(e->addr), (void *)addr);
	bpf_probe_read_user_str(e->conn_type, sizeof(e->conn_type), (void *)conn_type);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int inbound_connection(struct pt_regs *ctx)
{
	return trace_connection(ctx, PROBE_INBOUND_CONNECTION);
}

SEC("uprobe")
int outbound_connection(struct pt_regs *ctx)
{
	return trace_connection(ctx, PROBE_OUTBOUND_CONNECTION);
}

SEC("uprobe")
int closed_connection(struct pt_regs *ctx)
{
	return trace_connection(ctx, PROBE_CLOSED_CONNECTION);
}

SEC("uprobe")
int evicted_inbound_connection(struct pt_regs *ctx)
{
	return trace_connection(ctx, PROBE_EVICTED_INBOUND_CONNECTION);
}

SEC("uprobe")
int misbehaving_connection(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_MISBEHAVING_CONNECTION;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, peer_id);
	ARG(1, message);
	RESERVE(events_ring, struct misbehaving_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->peer_id = peer_id;
	bpf_probe_read_user_str(e->message, sizeof(e->message), (void *)message);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int mempool_added(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_MEMPOOL_ADDED;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, txid);
	ARG(1, vsize);
	ARG(2, fee);
	RESERVE(events_ring, struct mempool_added_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->vsize = (__s32)vsize;
	e->fee = fee;
	bpf_probe_read_user(e->txid, sizeof(e->txid), (void *)txid);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int mempool_removed(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_MEMPOOL_REMOVED;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, txid);
	ARG(1, reason);
	ARG(2, vsize);
	ARG(3, fee);
	ARG(4, entry_time);
	RESERVE(events_ring, struct mempool_removed_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->vsize = (__s32)vsize;
	e->fee = fee;
	e->entry_time = (__u64)entry_time;
	bpf_probe_read_user(e->txid, sizeof(e->txid), (void *)txid);
	bpf_probe_read_user_str(e->reason, sizeof(e->reason), (void *)reason);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int mempool_replaced(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_MEMPOOL_REPLACED;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, replaced_txid);
	ARG(1, replaced_vsize);
	ARG(2, replaced_fee);
	ARG(3, replaced_entry_time);
	ARG(4, replacement_id);
	ARG(5, replacement_vsize);
	ARG(6, replacement_fee);
	ARG(7, by_transaction);
	RESERVE(events_ring, struct mempool_replaced_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->replaced_vsize = (__s32)replaced_vsize;
	e->replaced_fee = replaced_fee;
	e->replaced_entry_time = (__u64)replaced_entry_time;
	e->replacement_vsize = (__s32)replacement_vsize;
	e->replacement_fee = replacement_fee;
	e->replaced_by_transaction = by_transaction != 0;
	bpf_probe_read_user(e->replaced_txid, sizeof(e->replaced_txid), (void *)replaced_txid);
	bpf_probe_read_user(e->replacement_id, sizeof(e->replacement_id), (void *)replacement_id);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int mempool_rejected(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_MEMPOOL_REJECTED;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, txid);
	ARG(1, reason);
	RESERVE(events_ring, struct mempool_rejected_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	bpf_probe_read_user(e->txid, sizeof(e->txid), (void *)txid);
	bpf_probe_read_user_str(e->reason, sizeof(e->reason), (void *)reason);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int block_connected(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_BLOCK_CONNECTED;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, hash);
	ARG(1, height);
	ARG(2, transactions);
	ARG(3, inputs);
	ARG(4, sigops);
	ARG(5, duration);
	RESERVE(events_ring, struct block_connected_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->height = (__s32)height;
	e->transactions = (__u64)transactions;
	e->inputs = (__s32)inputs;
	e->sigops = sigops;
	e->duration_ns = duration;
	bpf_probe_read_user(e->hash, sizeof(e->hash), (void *)hash);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int utxocache_flush(struct pt_regs *ctx)
{
	const __u32 probe = PROBE_UTXOCACHE_FLUSH;
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, duration);
	ARG(1, mode);
	ARG(2, coins);
	ARG(3, bytes);
	ARG(4, prune);
	RESERVE(events_ring, struct utxocache_flush_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->duration_us = duration;
	e->mode = (__u32)mode;
	e->coins = (__u64)coins;
	e->bytes = (__u64)bytes;
	e->prune = prune != 0;
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

static __always_inline int trace_coin(struct pt_regs *ctx, __u32 probe)
{
	if (other_process())
		return 0;
	USDT_PROLOGUE
	ARG(0, txid);
	ARG(1, vout);
	ARG(2, height);
	ARG(3, value);
	ARG(4, coinbase);
	RESERVE(events_ring, struct utxocache_coin_record, e);
	e->h.kind = probe;
	e->h.ktime_ns = bpf_ktime_get_ns();
	e->vout = (__u32)vout;
	e->height = (__u32)height;
	e->value = value;
	e->coinbase = coinbase != 0;
	bpf_probe_read_user(e->txid, sizeof(e->txid), (void *)txid);
	SUBMIT(events_ring, e, probe);
fail:
	count(probe, 1);
	return 0;
}

SEC("uprobe")
int utxocache_add(struct pt_regs *ctx)
{
	return trace_coin(ctx, PROBE_UTXOCACHE_ADD);
}

SEC("uprobe")
int utxocache_spent(struct pt_regs *ctx)
{
	return trace_coin(ctx, PROBE_UTXOCACHE_SPENT);
}

SEC("uprobe")
int utxocache_uncache(struct pt_regs *ctx)
{
	return trace_coin(ctx, PROBE_UTXOCACHE_UNCACHE);
}
