//! Finding and watching bitcoind processes through /proc.

use std::path::Path;

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

/// Live processes whose executable is `binary` (compared after resolving symlinks).
pub fn processes_of(binary: &Path) -> Vec<u32> {
    let Ok(wanted) = std::fs::canonicalize(binary) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == wanted))
        .filter(|pid| process_alive(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// The pid written in a pid file, if the file holds one.
pub fn pid_from_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
