//! Attaching a loaded BPF program to one USDT probe site, semaphore included.
//!
//! aya can load uprobe programs but cannot pass a semaphore (`ref_ctr_offset`) when it
//! attaches, and Bitcoin Core's tracepoints stay silent unless their semaphore is non-zero.
//! So we open the uprobe perf event ourselves, on the kernel's `uprobe` PMU with the
//! semaphore's file offset in the config bits named by
//! `/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset`; the kernel then increments
//! the semaphore in every process that maps the binary (now and later) and decrements it when
//! the event is closed. The program is linked to the event with `BPF_LINK_CREATE`, carrying a
//! cookie (our spec index) that the program reads with `bpf_get_attach_cookie`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{ProbeNote, UsdtError};

const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe";
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PERF_EVENT: u32 = 41;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// A live attachment; dropping it detaches the program and releases the semaphore.
#[derive(Debug)]
pub struct UsdtLink {
    _link: OwnedFd,
    _perf_event: OwnedFd,
}

/// `perf_event_attr` up to `config2` plus the rest zeroed (PERF_ATTR_SIZE_VER8 = 136 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    rest: [u64; 8],
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 136);

/// `union bpf_attr` as used by `BPF_LINK_CREATE` for perf events.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    bpf_cookie: u64,
    rest: [u64; 4],
}

/// The kernel's uprobe PMU: its perf type and where `ref_ctr_offset` goes in `config`.
#[derive(Debug, Clone, Copy)]
pub struct UprobePmu {
    kind: u32,
    ref_ctr_shift: u32,
}

impl UprobePmu {
    /// Reads the PMU description from sysfs.
    pub fn discover() -> Result<UprobePmu, UsdtError> {
        let fail = |reason: String| UsdtError::Attach {
            probe: "-".into(),
            path: UPROBE_PMU.into(),
            reason,
        };
        let kind = std::fs::read_to_string(format!("{UPROBE_PMU}/type")).map_err(|e| {
            fail(format!(
                "no uprobe PMU ({e}); the kernel needs CONFIG_UPROBE_EVENTS"
            ))
        })?;
        let kind = kind
            .trim()
            .parse()
            .map_err(|_| fail("unreadable PMU type".into()))?;
        // "config:32-63": the semaphore offset goes in the top 32 bits.
        let format = std::fs::read_to_string(format!("{UPROBE_PMU}/format/ref_ctr_offset")).map_err(|e| {
            fail(format!("the kernel cannot manage USDT semaphores (no ref_ctr_offset: {e}); kernel >= 4.20 needed"))
        })?;
        let ref_ctr_shift = format
            .trim()
            .strip_prefix("config:")
            .and_then(|bits| bits.split('-').next())
            .and_then(|low| low.parse().ok())
            .ok_or_else(|| {
                fail(format!(
                    "unexpected ref_ctr_offset format `{}`",
                    format.trim()
                ))
            })?;
        Ok(UprobePmu {
            kind,
            ref_ctr_shift,
        })
    }
}

/// Attaches `program` to the probe site `note` of `binary` with `cookie`.
///
/// `pid` restricts the uprobe to one process; `None` traces every process of the binary.
pub fn attach_usdt(
    pmu: UprobePmu,
    program: BorrowedFd<'_>,
    binary: &Path,
    note: &ProbeNote,
    cookie: u64,
    pid: Option<u32>,
) -> Result<UsdtLink, UsdtError> {
    let fail = |reason: String| UsdtError::Attach {
        probe: note.full_name(),
        path: binary.into(),
        reason,
    };
    let path = CString::new(binary.as_os_str().as_bytes())
        .map_err(|_| fail("path contains NUL".into()))?;
    let ref_ctr = note.semaphore_file_offset.unwrap_or(0);
    let attr = PerfEventAttr {
        kind: pmu.kind,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: ref_ctr << pmu.ref_ctr_shift,
        config1: path.as_ptr() as u64,
        config2: note.pc_file_offset,
        ..PerfEventAttr::default()
    };
    // A uprobe for all processes is opened with pid -1 on CPU 0; it still fires on every CPU.
    let (pid_arg, cpu_arg) = match pid {
        Some(pid) => (pid as libc::c_int, -1),
        None => (-1, 0),
    };
    // SAFETY: attr is a valid, fully initialised perf_event_attr of the size it declares, and
    // `path` outlives the call (the kernel copies the string).
    let perf_fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid_arg,
            cpu_arg,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if perf_fd < 0 {
        let error = std::io::Error::last_os_error();
        return Err(fail(format!(
            "perf_event_open: {error}{}",
            if error.raw_os_error() == Some(libc::EINVAL) {
                " (another tracer attached here with a different semaphore setting?)"
            } else {
                ""
            }
        )));
    }
    // SAFETY: the syscall returned a new file descriptor that nothing else owns.
    let perf_event = unsafe { OwnedFd::from_raw_fd(perf_fd as libc::c_int) };

    let link_attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        target_fd: perf_event.as_raw_fd() as u32,
        attach_type: BPF_PERF_EVENT,
        bpf_cookie: cookie,
        ..LinkCreateAttr::default()
    };
    // SAFETY: link_attr is a zero-padded bpf_attr prefix of the size passed.
    let link_fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &link_attr as *const LinkCreateAttr,
            std::mem::size_of::<LinkCreateAttr>() as libc::c_uint,
        )
    };
    if link_fd < 0 {
        return Err(fail(format!(
            "BPF_LINK_CREATE: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: as above, a fresh descriptor.
    let link = unsafe { OwnedFd::from_raw_fd(link_fd as libc::c_int) };
    Ok(UsdtLink {
        _link: link,
        _perf_event: perf_event,
    })
}
