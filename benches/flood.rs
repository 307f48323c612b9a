//! Observe a flood without slowing the node: peerlab's own peer engine floods a regtest node
//! with pings from K peers for S seconds, under four observers, modes interleaved:
//!
//! - `none`: nothing attached (the node's own ceiling);
//! - `bpftrace`: bpftrace counting `net:inbound_message` and `net:outbound_message` (the
//!   cheapest observer of the same two probes: the baseline the ratios use);
//! - `ebpf`: `peerlab extract ebpf` alone, publishing every event to a private nats-server;
//! - `pipeline`: the full honeynode pipeline: `peerlab observe` (every extractor), `peerlab
//!   tools metrics` and `peerlab record`, on that nats-server;
//! - `cpu-control` (only when `BENCH_MODES` names it): bpftrace plus a process that does
//!   nothing but burn `BENCH_BURN` of a core (default 0.1, about what the extractor and
//!   nats-server take in the `ebpf` mode), to tell CPU taken from the node apart from what
//!   the probes cost inside it.
//!
//! Each peer completes the handshake through [`peerlab::peer::Peer`], then writes bursts of
//! 256 pings and discards the node's pongs. The node's busy period runs from the first ping
//! until its CPU time stops moving after the last; pings processed are what the node's
//! `getpeerinfo` counts (`bytesrecv_per_msg.ping`, 32 bytes a ping). Every ping gives two
//! eBPF events (the ping in, the pong out), and in the pipeline two more: the debug.log lines
//! `-debug=net` writes for them, which the log extractor publishes. Reported per mode
//! (medians): pings/s and their ratio to the bpftrace mode, node CPU per ping (and its user /
//! system split: uprobe handlers and the eBPF programs they run count as the node's system
//! time), events published against expected and every drop counted, observer CPU per
//! published event (the extractor process; the pipeline's other processes separately),
//! observer peak RSS, nats-server CPU. Needs root (eBPF), bpftrace
//! (installed when missing, as root) and `peerlab setup`. Run: `cargo bench --bench flood`
//! (env: `BENCH_PEERS`, default 8; `BENCH_SECS`, default 10; `BENCH_REPS`, default 3;
//! `BENCH_BASELINE=PATH`: another peerlab binary, e.g. a build of an earlier commit, run as
//! the extra modes `ebpf-baseline` and `pipeline-baseline` in the same interleaved run;
//! `BENCH_MODES=ebpf,pipeline`: only these modes, plus bpftrace, the ratios' baseline).

mod support;

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerlab::node::{NodeRpc as _, RegtestConfig, RegtestNode};
use peerlab::peer::{frame, Peer, PeerConfig, REGTEST_MAGIC};
use peerlab::stack::NatsServer;
use serde_json::Value;
use support::{
    build_peerlab, clock_ticks_per_second, machine, median, process_user_system_ticks, release_dir,
    vm_hwm_kib,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MODES: [&str; 4] = ["none", "bpftrace", "ebpf", "pipeline"];
const BASELINE_MODES: [&str; 2] = ["ebpf-baseline", "pipeline-baseline"];
/// Run only when `BENCH_MODES` names it: bpftrace plus a process that only burns CPU, as
/// much as the eBPF mode's extractor and nats-server use together (`BENCH_BURN`, a fraction
/// of one core, default 0.1, in slices every `BURN_PERIOD`). It tells CPU taken from the
/// node apart from what the probes cost inside it.
const CONTROL_MODE: &str = "cpu-control";
const BURN_PERIOD: Duration = Duration::from_millis(20);
/// Pings per write.
const BURST: usize = 256;
/// Bytes of one ping on the wire (24-byte header, 8-byte nonce).
const PING_BYTES: f64 = 32.0;
/// The node counts as idle once its CPU time has not moved for this long.
const QUIET: Duration = Duration::from_millis(500);
/// Bound on every wait (an observer attaching, the node draining, a process exiting).
const WAIT: Duration = Duration::from_secs(90);

/// A child process whose output lines are collected as they come.
struct Watched {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watched {
    fn spawn(name: &'static str, command: &mut Command) -> Watched {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let readers: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for reader in readers.into_iter().flatten() {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if let Ok(mut all) = lines.lock() {
                        all.push(line);
                    }
                }
            });
        }
        Watched { name, child, lines }
    }

    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: no `{needle}` within {WAIT:?}:\n{}",
            self.name,
            self.text()
        );
    }

    fn text(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn cpu_secs(&self) -> f64 {
        cpu_secs(self.child.id())
    }

    fn peak_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
            .unwrap_or(0)
    }

    /// SIGINT, then waits (bounded) for the exit and for its last lines.
    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                return self.text();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("{} did not exit within {WAIT:?}", self.name);
    }
}

/// User and system CPU seconds of `pid` (all its threads).
fn user_sys_secs(pid: u32) -> (f64, f64) {
    process_user_system_ticks(pid).map_or((0.0, 0.0), |(u, s)| {
        let tick = clock_ticks_per_second();
        (u as f64 / tick, s as f64 / tick)
    })
}

/// The control mode's CPU burner (this binary, run as `flood --burn FRACTION`): spins for
/// `fraction` of every `BURN_PERIOD`, sleeps the rest, until killed.
fn burn(fraction: f64) -> ! {
    let busy = BURN_PERIOD.mul_f64(fraction.clamp(0.0, 1.0));
    let mut spins = 0u64;
    loop {
        let started = Instant::now();
        while started.elapsed() < busy {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        if let Some(rest) = BURN_PERIOD.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

fn cpu_secs(pid: u32) -> f64 {
    let (user, system) = user_sys_secs(pid);
    user + system
}

/// `key=<number>` in the line containing `marker`.
fn field_in(text: &str, marker: &str, key: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.contains(marker))?;
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[derive(Default)]
struct Measured {
    pings: f64,
    busy_secs: f64,
    node_cpu_secs: f64,
    /// The node's CPU split: its own code, and the kernel (where uprobe handlers and the eBPF
    /// programs run).
    node_user_secs: f64,
    node_sys_secs: f64,
    published: Option<u64>,
    dropped: Option<u64>,
    extractor_cpu_secs: f64,
    other_observer_cpu_secs: f64,
    observer_peak_kib: u64,
    /// Peak RSS of each observer process (the pipeline's three are reported one by one).
    peak_kib_by_process: Vec<(&'static str, u64)>,
    nats_cpu_secs: f64,
    /// The control mode's burner, over the flood.
    burner_cpu_secs: f64,
}

/// The connections of a flood, kept open until dropped (a closed connection leaves
/// `getpeerinfo`, and its counters with it).
struct Flood {
    /// Held, never written again: dropping them would close the connections.
    _writers: Vec<tokio::net::tcp::OwnedWriteHalf>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Flood {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// Floods `addr` from `peers` connections for `secs`; returns when the writers stop, with the
/// connections still open so the node's counters can be read.
async fn flood(addr: SocketAddr, peers: usize, secs: f64) -> Flood {
    let burst: Vec<u8> = (0..BURST as u64)
        .flat_map(|i| frame(REGTEST_MAGIC, "ping", &i.to_le_bytes()))
        .collect();
    let burst = Arc::new(burst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..peers {
        let mut peer = Peer::connect(addr, PeerConfig::default())
            .await
            .expect("connect");
        peer.handshake().await.expect("handshake");
        let (mut rd, mut wr) = peer.into_stream().await.expect("stream").into_split();
        let burst = burst.clone();
        writers.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < deadline {
                if wr.write_all(&burst).await.is_err() {
                    break;
                }
            }
            wr
        }));
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }));
    }
    let mut halves = Vec::new();
    for writer in writers {
        if let Ok(half) = writer.await {
            halves.push(half);
        }
    }
    Flood {
        _writers: halves,
        readers,
    }
}

fn wait_idle(pid: u32) -> Instant {
    let deadline = Instant::now() + WAIT;
    let mut last = cpu_secs(pid);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = cpu_secs(pid);
        if (now - last).abs() > 0.005 {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= QUIET {
            return since;
        }
    }
    panic!("the node did not go idle within {WAIT:?}");
}

fn pings_received(node: &RegtestNode) -> f64 {
    let peers: Value = node.rpc("getpeerinfo", &[]).expect("getpeerinfo");
    peers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["bytesrecv_per_msg"]["ping"].as_f64())
        .sum::<f64>()
        / PING_BYTES
}

struct Setup {
    peerlab: PathBuf,
    baseline: Option<PathBuf>,
    bitcoind: PathBuf,
    nats_server: PathBuf,
    peers: usize,
    secs: f64,
}

fn measure(setup: &Setup, mode: &str, rt: &tokio::runtime::Runtime) -> Measured {
    // `<mode>-baseline`: the same observer, run from the baseline binary.
    let (mode, peerlab) = match mode.strip_suffix("-baseline") {
        Some(observer) => (observer, setup.baseline.as_ref().expect("BENCH_BASELINE")),
        None => (mode, &setup.peerlab),
    };
    let datadir = tempfile::tempdir().expect("datadir");
    let mut config = RegtestConfig::new(&setup.bitcoind);
    config.extra_args = vec!["-v2transport=0".into()];
    config.datadir = Some(datadir.path().to_path_buf());
    let node = RegtestNode::start(&config).expect("regtest node");
    let pid = node.pid().expect("node pid");
    let nats = (mode == "ebpf" || mode == "pipeline")
        .then(|| NatsServer::start(&setup.nats_server).expect("nats-server"));
    let url = nats.as_ref().map(NatsServer::url).unwrap_or_default();
    let record_dir = tempfile::tempdir().expect("record dir");
    let binary = setup.bitcoind.display().to_string();
    let mut observers: Vec<Watched> = Vec::new();
    let burner = (mode == CONTROL_MODE).then(|| {
        let fraction = std::env::var("BENCH_BURN").unwrap_or_else(|_| "0.1".into());
        Watched::spawn(
            "cpu burner",
            Command::new(std::env::current_exe().expect("bench binary"))
                .args(["--burn", &fraction]),
        )
    });
    match mode {
        "bpftrace" | CONTROL_MODE => {
            let script = format!(
                "usdt:{binary}:net:inbound_message {{ @inbound = count(); }} \
                 usdt:{binary}:net:outbound_message {{ @outbound = count(); }}"
            );
            let w = Watched::spawn(
                "bpftrace",
                Command::new("bpftrace").args(["-p", &pid.to_string(), "-e", &script]),
            );
            w.wait_for("Attaching");
            observers.push(w);
        }
        "ebpf" => {
            let w = Watched::spawn(
                "peerlab extract ebpf",
                Command::new(peerlab)
                    .args(["extract", "ebpf", "--bitcoind-path", &binary])
                    .args(["--pid", &pid.to_string(), "-a", &url])
                    .env("PEERLAB_LOG", "info"),
            );
            w.wait_for("tracing bitcoind");
            observers.push(w);
        }
        "pipeline" => {
            let metrics = Watched::spawn(
                "peerlab tools metrics",
                Command::new(peerlab)
                    .args(["tools", "metrics", "-a", &url])
                    .args(["--metrics-address", "127.0.0.1:0"]),
            );
            let record = Watched::spawn(
                "peerlab record",
                Command::new(peerlab)
                    .args(["record", "-a", &url, "--output"])
                    .arg(record_dir.path().join("flood.mcap")),
            );
            let observe = Watched::spawn(
                "peerlab observe",
                Command::new(peerlab)
                    .args(["observe", "--chain", "regtest", "--datadir"])
                    .arg(datadir.path())
                    .args(["-a", &url])
                    .env("PEERLAB_LOG", "info"),
            );
            observe.wait_for("tracing bitcoind");
            // The extractor first, then the consumers (its CPU is the per-event figure).
            observers.push(observe);
            observers.push(metrics);
            observers.push(record);
        }
        _ => {}
    }
    let nats_pid = nats.as_ref().and_then(NatsServer::pid);
    let cpu_before: Vec<f64> = observers.iter().map(Watched::cpu_secs).collect();
    let burner_before = burner.as_ref().map_or(0.0, Watched::cpu_secs);
    let nats_before = nats_pid.map_or(0.0, cpu_secs);
    let node_before = cpu_secs(pid);
    let (user_before, sys_before) = user_sys_secs(pid);
    let pings_before = pings_received(&node);
    let started = Instant::now();
    let addr = SocketAddr::from(node.p2p_addr());
    let connections = rt.block_on(flood(addr, setup.peers, setup.secs));
    let idle_since = wait_idle(pid);
    let (user_after, sys_after) = user_sys_secs(pid);
    let mut m = Measured {
        busy_secs: idle_since.duration_since(started).as_secs_f64(),
        node_cpu_secs: cpu_secs(pid) - node_before,
        node_user_secs: user_after - user_before,
        node_sys_secs: sys_after - sys_before,
        pings: pings_received(&node) - pings_before,
        nats_cpu_secs: nats_pid.map_or(0.0, cpu_secs) - nats_before,
        burner_cpu_secs: burner.as_ref().map_or(0.0, Watched::cpu_secs) - burner_before,
        ..Measured::default()
    };
    // Closed only now that the node's counters are read (inside the runtime: tokio sockets).
    rt.block_on(async move { drop(connections) });
    for (i, observer) in observers.iter().enumerate() {
        let used = observer.cpu_secs() - cpu_before[i];
        if i == 0 {
            m.extractor_cpu_secs = used;
        } else {
            m.other_observer_cpu_secs += used;
        }
        m.observer_peak_kib += observer.peak_kib();
        m.peak_kib_by_process
            .push((observer.name, observer.peak_kib()));
    }
    for observer in observers {
        let text = observer.stop();
        // `extract ebpf` ends with `ebpf-extractor stopped ... published=N`, `observe` with
        // `observe stopped events=N` (every extractor's events).
        for (marker, count) in [
            ("ebpf-extractor stopped", "published"),
            ("observe stopped", "events"),
        ] {
            if let Some(published) = field_in(&text, marker, count) {
                m.published = Some(published);
                m.dropped = match (
                    field_in(&text, marker, "dropped_in_kernel"),
                    field_in(&text, marker, "dropped_by_publisher"),
                ) {
                    (Some(k), Some(b)) => Some(k + b),
                    _ => None,
                };
            }
        }
    }
    if let Some(burner) = burner {
        burner.stop();
    }
    drop(nats);
    let _ = node.stop(Duration::from_secs(30));
    m
}

fn ensure_bpftrace() {
    let missing = peerlab::node::missing_packages(&["bpftrace"]).unwrap_or_default();
    if !missing.is_empty() {
        peerlab::node::ensure_packages(&["bpftrace"], peerlab::node::can_install())
            .expect("bpftrace (apt-get install bpftrace)");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--burn") {
        burn(args.get(2).and_then(|f| f.parse().ok()).unwrap_or(0.1));
    }
    let env = |name: &str, default: f64| -> f64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let peers = env("BENCH_PEERS", 8.0) as usize;
    let secs = env("BENCH_SECS", 10.0);
    let reps = env("BENCH_REPS", 3.0) as usize;
    ensure_bpftrace();
    let installation =
        peerlab::node::setup(&peerlab::node::SetupOptions::default()).expect("peerlab setup");
    let setup = Setup {
        peerlab: build_peerlab(&release_dir()),
        baseline: std::env::var_os("BENCH_BASELINE").map(PathBuf::from),
        bitcoind: installation.bitcoind,
        nats_server: installation.nats_server,
        peers,
        secs,
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut modes: Vec<&str> = MODES.to_vec();
    if setup.baseline.is_some() {
        modes.extend(BASELINE_MODES);
    }
    // A subset for quicker iterations; the bpftrace mode always runs (the ratios' baseline).
    if let Ok(only) = std::env::var("BENCH_MODES") {
        modes.push(CONTROL_MODE);
        modes.retain(|mode| *mode == "bpftrace" || only.split(',').any(|o| o.trim() == *mode));
    }
    let mut results: Vec<Vec<Measured>> = modes.iter().map(|_| Vec::new()).collect();
    for rep in 0..reps {
        for (i, mode) in modes.iter().enumerate() {
            let m = measure(&setup, mode, &rt);
            eprintln!(
                "rep {rep} {mode}: {:.0} pings in {:.1}s busy ({:.0}/s), node {:.2}s CPU ({:.2}s user, {:.2}s system), published {:?}, dropped {:?}, extractor {:.2}s CPU, others {:.2}s, peak {} KiB, nats {:.2}s, burner {:.2}s",
                m.pings, m.busy_secs, m.pings / m.busy_secs, m.node_cpu_secs, m.node_user_secs,
                m.node_sys_secs, m.published,
                m.dropped, m.extractor_cpu_secs, m.other_observer_cpu_secs, m.observer_peak_kib,
                m.nats_cpu_secs, m.burner_cpu_secs
            );
            results[i].push(m);
        }
    }
    let med = |i: usize, f: &dyn Fn(&Measured) -> f64| median(results[i].iter().map(f).collect());
    let rate = |m: &Measured| m.pings / m.busy_secs;
    let bpftrace = modes.iter().position(|m| *m == "bpftrace").unwrap_or(0);
    let baseline = med(bpftrace, &rate);
    let mut table = format!(
        "{}\n{peers} peers flooding pings for {secs} s; medians of {reps} repetitions, modes interleaved.\n\n\
         | observer | pings/s | vs bpftrace | node CPU µs/ping | node user / system µs/ping | events published / expected | dropped | extractor CPU µs/event | other observers CPU µs/event | observer peak RSS MiB | nats-server CPU s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        machine()
    );
    for (i, mode) in modes.iter().enumerate() {
        let published = med(i, &|m| m.published.map_or(f64::NAN, |p| p as f64));
        // Two eBPF events per ping (the ping in, the pong out); the pipeline also publishes
        // the two debug.log lines `-debug=net` writes for them.
        let pipeline = mode.starts_with("pipeline");
        let per_ping = if pipeline { 4.0 } else { 2.0 };
        let expected = med(i, &|m| per_ping * m.pings);
        let per_event = |cpu: f64| {
            if published.is_finite() && published > 0.0 {
                format!("{:.2}", cpu * 1e6 / published)
            } else {
                "-".into()
            }
        };
        table.push_str(&format!(
            "| {mode} | {:.0} | {:.2}x | {:.2} | {:.2} / {:.2} | {} | {} | {} | {} | {:.0} | {:.2} |\n",
            med(i, &rate),
            med(i, &rate) / baseline,
            med(i, &|m| m.node_cpu_secs * 1e6 / m.pings),
            med(i, &|m| m.node_user_secs * 1e6 / m.pings),
            med(i, &|m| m.node_sys_secs * 1e6 / m.pings),
            if published.is_finite() {
                format!(
                    "{published:.0} / {expected:.0} ({:.3})",
                    published / expected
                )
            } else {
                "-".into()
            },
            if results[i].iter().any(|m| m.dropped.is_some()) {
                format!("{:.0}", med(i, &|m| m.dropped.unwrap_or(0) as f64))
            } else {
                "-".into()
            },
            per_event(med(i, &|m| m.extractor_cpu_secs)),
            if pipeline {
                per_event(med(i, &|m| m.other_observer_cpu_secs))
            } else {
                "-".into()
            },
            med(i, &|m| m.observer_peak_kib as f64) / 1024.0,
            med(i, &|m| m.nats_cpu_secs),
        ));
    }
    for (pipeline, mode) in modes.iter().enumerate() {
        if !mode.starts_with("pipeline") {
            continue;
        }
        table.push_str(&format!("\n{mode}, peak RSS of each process (median):\n\n| process | peak RSS MiB |\n|---|---:|\n"));
        let names: Vec<&str> = results[pipeline]
            .first()
            .map(|m| m.peak_kib_by_process.iter().map(|(n, _)| *n).collect())
            .unwrap_or_default();
        for (j, name) in names.iter().enumerate() {
            let peak = med(pipeline, &|m| {
                m.peak_kib_by_process
                    .get(j)
                    .map_or(f64::NAN, |(_, k)| *k as f64)
            });
            table.push_str(&format!("| {name} | {:.1} |\n", peak / 1024.0));
        }
    }
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("flood.md"), &table);
}
