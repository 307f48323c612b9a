//! Finding and watching bitcoind processes through /proc.

use std::path::{Path, PathBuf};

/// Whether a process exists and has not exited (a zombie has exited).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Live processes whose executable is `binary`: the same file (device and inode), so a
/// process in a container, whose `/proc/<pid>/exe` names its path inside the container, is
/// found through `/proc/<pid>/root/...` too.
pub fn processes_of(binary: &Path) -> Vec<u32> {
    let Ok(wanted) = std::fs::metadata(binary) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| runs_file(*pid, &wanted))
        .filter(|pid| process_alive(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// The pid written in a pid file, if the file holds one.
pub fn pid_from_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The executable a live process runs (`/proc/<pid>/exe`), `None` if it is gone or hidden.
pub fn process_executable(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Whether `pid` runs the file `wanted` describes. Stat-ing `/proc/<pid>/exe` follows the
/// kernel's link to the file itself, whatever mount namespace the process lives in.
fn runs_file(pid: u32, wanted: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .is_ok_and(|exe| exe.dev() == wanted.dev() && exe.ino() == wanted.ino())
}

/// Why `pid` cannot be traced as `binary`, or `None` when it can: it must be alive and run
/// exactly that executable (the same file, so `/proc/<pid>/root/usr/bin/bitcoind` names the
/// binary of a process in a container).
pub fn pid_mismatch(pid: u32, binary: &Path) -> Option<String> {
    if !process_alive(pid) {
        return Some(format!("no running process has pid {pid}"));
    }
    if std::fs::metadata(binary).is_ok_and(|wanted| runs_file(pid, &wanted)) {
        return None;
    }
    let wanted = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    match process_executable(pid) {
        Some(exe) if exe == wanted => None,
        Some(exe) => Some(format!(
            "pid {pid} runs {}, not {}; pass that binary with --bitcoind-path",
            exe.display(),
            wanted.display()
        )),
        None => Some(format!(
            "cannot read /proc/{pid}/exe (permission denied?); run as root"
        )),
    }
}
