//! A topology at scale: start-up time and peak memory of a rehearsal with 20 container nodes
//! and 200 attacker peers (`benches/topology-scale.toml`), against a one-node topology with
//! the same timeline (`benches/topology-baseline.toml`) in the same run.
//!
//! Each mode runs `peerlab rehearse` (release build) and is measured three ways:
//! - **start-up**: the verdict's `startup_secs`, from the call to time zero (images checked,
//!   network, NATS and every node container up, edges connected, blocks mined and spread,
//!   every observer tracing);
//! - **peak memory of the machine**: `MemTotal - MemAvailable` sampled every 100 ms during the
//!   run, minus its value just before (what the run added: node processes, container
//!   runtime, NATS, peerlab);
//! - **peerlab's own peak RSS** (`VmHWM` of the process, read until it exits).
//!
//! Modes are interleaved within each repetition; the table gives medians and the ratio of
//! the scale run to the baseline. Run: `cargo bench --bench topology_scale` (needs `peerlab
//! setup --containers`; env `BENCH_REPS`, default 3).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{build_peerlab, machine, median, release_dir, vm_hwm_kib};

const MODES: [(&str, &str); 2] = [
    (
        "1 node, no peers (baseline)",
        "benches/topology-baseline.toml",
    ),
    ("20 nodes, 200 attackers", "benches/topology-scale.toml"),
];

/// `MemTotal - MemAvailable`, KiB.
fn used_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

struct Run {
    startup_secs: f64,
    wall_secs: f64,
    machine_peak_mib: f64,
    peerlab_peak_mib: f64,
    events: u64,
}

fn run(peerlab: &Path, scenario: &str) -> Run {
    let report = tempfile::tempdir().expect("report dir");
    let idle = used_kib();
    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(used_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    let mut child = Command::new(peerlab)
        .args(["rehearse", "--report"])
        .arg(report.path())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario))
        .env("PEERLAB_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start peerlab rehearse");
    let mut hwm_kib = 0;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            hwm_kib = hwm_kib.max(vm_hwm_kib(&status).unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let verdict: serde_json::Value = std::fs::read_to_string(report.path().join("verdict.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("{scenario}: no verdict ({status})"));
    assert!(
        status.success() && verdict["passed"] == true,
        "{scenario} did not pass: {}",
        verdict["expectations"]
    );
    Run {
        startup_secs: verdict["startup_secs"].as_f64().unwrap_or(f64::NAN),
        wall_secs,
        machine_peak_mib: peak.load(Ordering::Relaxed).saturating_sub(idle) as f64 / 1024.0,
        peerlab_peak_mib: hwm_kib as f64 / 1024.0,
        events: verdict["events_seen"].as_u64().unwrap_or(0),
    }
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let peerlab = build_peerlab(&release_dir());
    let mut results: Vec<Vec<Run>> = MODES.iter().map(|_| Vec::new()).collect();
    for rep in 0..reps {
        for (i, (name, scenario)) in MODES.iter().enumerate() {
            let r = run(&peerlab, scenario);
            eprintln!(
                "rep {rep} {name}: up in {:.1}s, wall {:.1}s, machine +{:.0} MiB, peerlab {:.0} MiB, {} events",
                r.startup_secs, r.wall_secs, r.machine_peak_mib, r.peerlab_peak_mib, r.events
            );
            results[i].push(r);
        }
    }
    let med = |i: usize, f: fn(&Run) -> f64| median(results[i].iter().map(f).collect());
    let mut table = format!(
        "{}\nMedians of {reps} repetitions, modes interleaved.\n\n\
         | topology | start-up s | vs baseline | wall s | machine peak +MiB | vs baseline | peerlab peak RSS MiB | vs baseline | events seen |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        machine()
    );
    for (i, (name, _)) in MODES.iter().enumerate() {
        let ratio = |f: fn(&Run) -> f64| med(i, f) / med(0, f);
        table.push_str(&format!(
            "| {name} | {:.1} | {:.2}x | {:.1} | {:.0} | {:.2}x | {:.0} | {:.2}x | {:.0} |\n",
            med(i, |r| r.startup_secs),
            ratio(|r| r.startup_secs),
            med(i, |r| r.wall_secs),
            med(i, |r| r.machine_peak_mib),
            ratio(|r| r.machine_peak_mib),
            med(i, |r| r.peerlab_peak_mib),
            ratio(|r| r.peerlab_peak_mib),
            med(i, |r| r.events as f64),
        ));
    }
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("topology_scale.md"), &table);
}
