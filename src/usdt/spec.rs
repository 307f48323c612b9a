//! USDT argument specifications (`-8@%rbx 8@-16(%rbp) -4@$42`) and their BPF-side layout.
//!
//! `sys/sdt.h` records, for each argument, its size (negative = signed) and where the
//! compiler put it: a register, a constant, or memory at a register plus an offset. We turn
//! that into [`UsdtSpec`], whose memory layout equals `struct usdt_spec` in `bpf/usdt.h`, so
//! the BPF program can fetch arguments from `pt_regs`. x86-64 only (register offsets).

use super::UsdtError;

/// Most arguments a probe may have (`sys/sdt.h` allows 12).
pub const USDT_MAX_ARGS: usize = 12;

/// How an argument is located (mirrors `enum usdt_arg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ArgType {
    /// A constant.
    Const = 0,
    /// The value of a register.
    Reg = 1,
    /// Memory at register + offset.
    RegDeref = 2,
}

/// One argument (mirrors `struct usdt_arg_spec`, 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct UsdtArgSpec {
    /// The constant, or the offset added to the register before dereferencing.
    pub val_off: u64,
    /// [`ArgType`] as u32.
    pub arg_type: u32,
    /// Offset of the register in `struct pt_regs`.
    pub reg_off: i16,
    /// 1 if the value is sign-extended when narrowed.
    pub arg_signed: u8,
    /// `64 - 8 * size`.
    pub arg_bitshift: i8,
}

/// All arguments of one probe site (mirrors `struct usdt_spec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct UsdtSpec {
    /// The arguments, `arg_cnt` of them valid.
    pub args: [UsdtArgSpec; USDT_MAX_ARGS],
    /// Number of arguments.
    pub arg_cnt: u32,
    /// Caller-defined probe id (peerlab: index into its counters).
    pub probe_id: u32,
}

const _: () = assert!(std::mem::size_of::<UsdtArgSpec>() == 16);
const _: () = assert!(std::mem::size_of::<UsdtSpec>() == 16 * USDT_MAX_ARGS + 8);

// SAFETY: plain old data with no padding holes that matter (all fields integers).
unsafe impl aya::Pod for UsdtSpec {}

impl UsdtSpec {
    /// Parses a note's argument string, e.g. `-8@%rbx 8@-16(%rbp)`.
    pub fn parse(args: &str, probe_id: u32) -> Result<UsdtSpec, UsdtError> {
        let mut spec = UsdtSpec {
            probe_id,
            ..UsdtSpec::default()
        };
        for (i, arg) in args.split_whitespace().enumerate() {
            if i >= USDT_MAX_ARGS {
                return Err(bad(args, format!("more than {USDT_MAX_ARGS} arguments")));
            }
            spec.args[i] = parse_arg(arg).map_err(|reason| bad(args, reason))?;
            spec.arg_cnt += 1;
        }
        Ok(spec)
    }
}

fn bad(args: &str, reason: String) -> UsdtError {
    UsdtError::ArgSpec {
        spec: args.to_string(),
        reason,
    }
}

fn parse_arg(arg: &str) -> Result<UsdtArgSpec, String> {
    let (size, location) = arg
        .split_once('@')
        .ok_or_else(|| format!("`{arg}` has no `@`"))?;
    let size: i32 = size
        .parse()
        .map_err(|_| format!("`{arg}`: bad size `{size}`"))?;
    let bytes = size.unsigned_abs();
    if ![1, 2, 4, 8].contains(&bytes) {
        return Err(format!("`{arg}`: unsupported size {size}"));
    }
    let mut spec = UsdtArgSpec {
        arg_signed: u8::from(size < 0),
        arg_bitshift: (64 - 8 * bytes) as i8,
        ..UsdtArgSpec::default()
    };
    if let Some(constant) = location.strip_prefix('$') {
        spec.arg_type = ArgType::Const as u32;
        spec.val_off = parse_int(constant).ok_or_else(|| format!("`{arg}`: bad constant"))? as u64;
    } else if let Some(register) = location.strip_prefix('%') {
        spec.arg_type = ArgType::Reg as u32;
        spec.reg_off = reg_offset(register).ok_or_else(|| format!("`{arg}`: unknown register"))?;
    } else if let Some((offset, rest)) = location.split_once('(') {
        let register = rest
            .strip_suffix(')')
            .and_then(|r| r.strip_prefix('%'))
            .ok_or_else(|| format!("`{arg}`: unsupported memory operand"))?;
        if register.contains(',') {
            return Err(format!("`{arg}`: indexed addressing is not supported"));
        }
        if register == "rip" {
            return Err(format!("`{arg}`: rip-relative operands are not supported"));
        }
        spec.arg_type = ArgType::RegDeref as u32;
        spec.reg_off = reg_offset(register).ok_or_else(|| format!("`{arg}`: unknown register"))?;
        spec.val_off = if offset.is_empty() {
            0
        } else {
            parse_int(offset).ok_or_else(|| format!("`{arg}`: bad offset"))? as u64
        };
    } else {
        return Err(format!("`{arg}`: unsupported location"));
    }
    Ok(spec)
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(if negative { -value } else { value })
}

/// Offset of the 64-bit register holding `name` (or its low 32/16/8-bit part) in x86-64
/// `struct pt_regs`. The high-byte registers (`%ah`...) are deliberately absent: the BPF side
/// reads from bit 0, so accepting them would silently decode `%al` instead.
fn reg_offset(name: &str) -> Option<i16> {
    const REGS: [(&[&str], i16); 17] = [
        (&["r15", "r15d", "r15w", "r15b"], 0),
        (&["r14", "r14d", "r14w", "r14b"], 8),
        (&["r13", "r13d", "r13w", "r13b"], 16),
        (&["r12", "r12d", "r12w", "r12b"], 24),
        (&["rbp", "ebp", "bp", "bpl"], 32),
        (&["rbx", "ebx", "bx", "bl"], 40),
        (&["r11", "r11d", "r11w", "r11b"], 48),
        (&["r10", "r10d", "r10w", "r10b"], 56),
        (&["r9", "r9d", "r9w", "r9b"], 64),
        (&["r8", "r8d", "r8w", "r8b"], 72),
        (&["rax", "eax", "ax", "al"], 80),
        (&["rcx", "ecx", "cx", "cl"], 88),
        (&["rdx", "edx", "dx", "dl"], 96),
        (&["rsi", "esi", "si", "sil"], 104),
        (&["rdi", "edi", "di", "dil"], 112),
        (&["rip"], 128),
        (&["rsp", "esp", "sp", "spl"], 152),
    ];
    REGS.iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, off)| *off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_bitcoind_uses() {
        let spec = UsdtSpec::parse("-8@%r13 8@%r14 8@-96(%rbp) 4@%esi -4@$42 8@(%rax)", 7)
            .expect("parses");
        assert_eq!(spec.arg_cnt, 6);
        assert_eq!(spec.probe_id, 7);
        let a = spec.args;
        assert_eq!(
            (
                a[0].arg_type,
                a[0].reg_off,
                a[0].arg_signed,
                a[0].arg_bitshift
            ),
            (1, 16, 1, 0)
        );
        assert_eq!(
            (a[2].arg_type, a[2].reg_off, a[2].val_off as i64),
            (2, 32, -96)
        );
        assert_eq!(
            (a[3].reg_off, a[3].arg_signed, a[3].arg_bitshift),
            (104, 0, 32)
        );
        assert_eq!((a[4].arg_type, a[4].val_off, a[4].arg_signed), (0, 42, 1));
        assert_eq!((a[5].arg_type, a[5].reg_off, a[5].val_off), (2, 80, 0));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "8@sym(%rip)",
            "8@(%rdi,%rsi,8)",
            "3@%rax",
            "8@%xmm0",
            "8%rax",
        ] {
            assert!(UsdtSpec::parse(bad, 0).is_err(), "{bad} should be rejected");
        }
    }
}
