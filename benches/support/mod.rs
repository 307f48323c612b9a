//! Helpers the benches share: the release binary, process accounting from /proc, medians
//! and the machine line every table records.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory cargo put this bench in: `<target>/release` (benches use the release
/// directory), where `cargo build --release` also puts peerlab.
pub fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the bench executable");
    // <target>/release/deps/usdt_throughput-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("bench executable in <target>/release/deps")
        .to_path_buf()
}

/// Builds the release binary (a no-op when it is fresh) so the bench never measures a stale
/// peerlab.
pub fn build_peerlab(release_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "peerlab"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "cargo build --release failed ({status})");
    let exe = release_dir.join("peerlab");
    assert!(
        exe.is_file(),
        "{} missing after cargo build --release",
        exe.display()
    );
    exe
}

/// utime + stime: fields 14 and 15 of /proc/PID/stat. The command name (field 2) may hold
/// spaces, so count from the `)` that closes it.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    user_system_ticks(stat).map(|(user, system)| user + system)
}

/// utime and stime apart (fields 14 and 15): time in the process's own code, and time in the
/// kernel on its behalf (system calls, and uprobe handlers with the eBPF programs they run).
pub fn user_system_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime, stime))
}

/// utime and stime of a live process (all its threads), `None` once it is gone.
pub fn process_user_system_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    user_system_ticks(&stat)
}

pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// CPUs, model, kernel, memory and current load, for the record.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "Machine: {cpus} CPUs ({model}), kernel {}, {mem_gib:.1} GiB RAM; \
         load average {} when the bench started (includes cargo building it)",
        kernel.trim(),
        load.join(" ")
    )
}

/// Busy and total ticks of the whole machine (all CPUs), from the `cpu` line of /proc/stat:
/// total counts every state, busy every state but idle and iowait.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // user nice system idle iowait irq softirq steal ...
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU ticks of the threads of `pid` whose name (`comm`) starts with `prefix`, e.g. a tokio
/// runtime's `tokio-runtime-worker` threads apart from the thread that drives a bench.
pub fn thread_ticks(pid: u32, prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter(|stat| {
            stat.split_once('(')
                .is_some_and(|(_, rest)| rest.starts_with(prefix))
        })
        .filter_map(|stat| cpu_ticks(&stat))
        .sum()
}
