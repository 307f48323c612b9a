//! USDT throughput of the eBPF extractor, against its baselines in the same run.
//!
//! A synthetic emitter (`benches/emitter/emitter.c`) with a Bitcoin-Core-shaped
//! `net:inbound_message` tracepoint (same provider, name, argument layout and semaphore)
//! fires it COUNT times as fast as it can, under these modes:
//!
//! - `none`: no tracer, the semaphore stays 0 (the cost of the guarded probe site);
//! - `bpftrace`: `bpftrace` attached and only counting (the uprobe ceiling);
//! - `peerlab`: `peerlab extract ebpf` capturing every event and publishing it to a private
//!   nats-server, with a subscriber counting what arrives;
//! - `peerlab baseline` (only with `BENCH_BASELINE=PATH`): the same with another peerlab
//!   binary, e.g. a build of an earlier commit, for a before/after comparison in one run;
//! - `nats ceiling`: no emitter; this process publishes peerlab-sized ping events straight
//!   through async-nats to the same kind of subscriber (what NATS delivers on this machine);
//! - `nats ceiling, one core busy`: the same beside a spinning thread, as the emitter at full
//!   speed keeps one core busy (what NATS can deliver in the `peerlab` mode's conditions).
//!
//! Modes are interleaved within each repetition so machine noise hits them alike; the report
//! gives medians and ratios to the baselines. Needs root (eBPF), `cc`, `sys/sdt.h`, bpftrace
//! and nats-server. Run: `cargo bench --bench usdt_throughput`
//! (env: `BENCH_COUNT`, default 1,000,000 probes per run; `BENCH_REPS`, default 3;
//! `BENCH_BASELINE`, a peerlab binary to compare with; `BENCH_RATE`, probes per second to
//! pace the emitter to, e.g. 100000 for a flood's pace, instead of as fast as it can).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use peerlab::bus::{NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::EventKind;
use peerlab::stack::NatsServer;
use support::{
    build_peerlab, clock_ticks_per_second, cpu_ticks, machine, median, release_dir, vm_hwm_kib,
};

const DEFAULT_COUNT: u64 = 1_000_000;
const DEFAULT_REPS: usize = 3;
/// How long the emitter waits for a tracer to raise its semaphore (bpftrace compiles its
/// program with LLVM first, which takes a few seconds on a small machine).
const SEMAPHORE_WAIT: Duration = Duration::from_secs(60);
/// After the emitter exits: how long tracers get to deliver what they captured.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// peerlab counts as caught up once nothing new arrived for this long (its drain timer is
/// 50 ms, so this is ten drains without a single event).
const QUIET_PERIOD: Duration = Duration::from_millis(500);
/// Graceful stops (SIGINT / SIGTERM) that take longer than this are treated as hangs.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const PROBE: &str = "net:inbound_message";
/// Goals from the issue: peerlab's rate relative to bpftrace's, and its peak RSS.
const GOAL_RATIO: f64 = 0.85;
const GOAL_RSS_MIB: f64 = 64.0;
/// Issue 15's end-to-end goal: events per second through NATS (or the NATS ceiling).
const GOAL_DELIVERED: f64 = 1_000_000.0;

/// When the bench started: arrival times are taken against it.
static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn main() {
    let config = Config::from_env();
    // Before our runs, so the load average hints at what else keeps the CPUs busy.
    let machine = machine();
    let bench = Bench::prepare(config);
    let mut runs: Vec<Run> = Vec::new();
    for rep in 1..=config.reps {
        for mode in Mode::all() {
            let run = bench.run(mode);
            println!("rep {rep}/{} {}", config.reps, run.summary());
            runs.push(run);
        }
    }
    let report = Report::new(config, machine, &runs).markdown();
    println!("\n{report}");
    let out = bench.target_dir.join("bench").join("usdt_throughput.md");
    std::fs::create_dir_all(out.parent().expect("bench dir has a parent"))
        .expect("create target/bench");
    std::fs::write(&out, &report).expect("write target/bench/usdt_throughput.md");
    println!("written to {}", out.display());
}

#[derive(Debug, Clone, Copy)]
struct Config {
    count: u64,
    reps: usize,
    /// Probes per second the emitter is paced to (`None`: as fast as it can).
    rate: Option<u64>,
}

impl Config {
    fn from_env() -> Config {
        Config {
            count: env_number("BENCH_COUNT").unwrap_or(DEFAULT_COUNT),
            reps: env_number("BENCH_REPS").map_or(DEFAULT_REPS, |n: u64| n.max(1) as usize),
            rate: env_number("BENCH_RATE").filter(|r| *r > 0),
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let digits: String = value.chars().filter(|c| *c != '_' && *c != ',').collect();
    Some(
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Bpftrace,
    Peerlab,
    /// Another peerlab binary (`BENCH_BASELINE=PATH`, e.g. a build of an earlier commit), run
    /// the same way: a before/after comparison in the same run.
    Baseline,
    /// No emitter and no extractor: this process publishes COUNT events of the size peerlab
    /// publishes for a ping straight to a private nats-server through async-nats, while the
    /// same subscriber counts them: the end-to-end ceiling of NATS on this machine.
    NatsCeiling,
    /// The same with one core kept busy by a spinning thread, as the emitter keeps one busy
    /// at full speed: the ceiling NATS has in the peerlab mode, where the extractor,
    /// nats-server and the subscriber share what the emitter leaves.
    NatsCeilingOneCoreBusy,
}

impl Mode {
    /// The modes of a repetition: the baseline binary only when one is given.
    fn all() -> Vec<Mode> {
        let mut modes = vec![
            Mode::None,
            Mode::Bpftrace,
            Mode::Peerlab,
            Mode::NatsCeiling,
            Mode::NatsCeilingOneCoreBusy,
        ];
        if baseline_binary().is_some() {
            modes.push(Mode::Baseline);
        }
        modes
    }

    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Bpftrace => "bpftrace",
            Mode::Peerlab => "peerlab",
            Mode::Baseline => "peerlab baseline",
            Mode::NatsCeiling => "nats ceiling",
            Mode::NatsCeilingOneCoreBusy => "nats ceiling, one core busy",
        }
    }
}

/// `BENCH_BASELINE`: a peerlab binary to compare with, in the same run.
fn baseline_binary() -> Option<PathBuf> {
    std::env::var_os("BENCH_BASELINE").map(PathBuf::from)
}

/// peerlab's side of a run: what it counted, and what it cost.
#[derive(Debug, Clone, Copy)]
struct PeerlabRun {
    /// Events that arrived on the bus.
    received: u64,
    /// Records read from the rings.
    records: u64,
    /// Lost in the kernel (ring full) plus refused by the publisher.
    dropped: u64,
    /// Times nats-server flagged our subscriber as a slow consumer (it then drops for us).
    slow_consumer: u64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    /// From the first event's arrival to the last's.
    delivery_seconds: f64,
}

impl PeerlabRun {
    /// Events per second that reached the subscriber, end to end.
    fn delivered_rate(&self) -> f64 {
        self.received as f64 / self.delivery_seconds.max(1e-9)
    }
}

/// One run of one mode.
#[derive(Debug, Clone, Copy)]
struct Run {
    mode: Mode,
    emitter: EmitterOutput,
    /// bpftrace's count.
    counted: Option<u64>,
    peerlab: Option<PeerlabRun>,
}

impl Run {
    fn summary(&self) -> String {
        let mut line = format!(
            "{:<8} {:>10.0} probes/s ({} in {:.6} s, emitter CPU {:.3} us/probe)",
            self.mode.name(),
            self.emitter.rate,
            self.emitter.fired,
            self.emitter.seconds,
            self.emitter.cpu_us_per_probe()
        );
        if let Some(counted) = self.counted {
            line += &format!(" counted={counted}");
        }
        if let Some(p) = self.peerlab {
            line += &format!(
                " records={} received={} dropped={} slow_consumer={} cpu={:.2}s rss={:.1}MiB",
                p.records, p.received, p.dropped, p.slow_consumer, p.cpu_seconds, p.peak_rss_mib
            );
        }
        line
    }
}

/// What is set up once for all runs.
struct Bench {
    config: Config,
    scratch: tempfile::TempDir,
    emitter: PathBuf,
    peerlab: PathBuf,
    nats_server: PathBuf,
    target_dir: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn prepare(config: Config) -> Bench {
        let scratch = tempfile::tempdir().expect("temporary directory");
        let emitter = compile_emitter(scratch.path());
        let release_dir = release_dir();
        let peerlab = build_peerlab(&release_dir);
        let nats_server = peerlab::node::cached_installation()
            .map(|i| i.nats_server)
            .ok()
            .or_else(|| peerlab::node::find_on_path("nats-server"))
            .expect("nats-server not found: run `peerlab setup` or put it on PATH");
        require_on_path("bpftrace", "apt-get install bpftrace");
        // One small runtime for the subscriber: it competes with the traced process for the
        // CPUs, so keep it to one worker.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let target_dir = release_dir
            .parent()
            .expect("release dir has a parent")
            .to_path_buf();
        Bench {
            config,
            scratch,
            emitter,
            peerlab,
            nats_server,
            target_dir,
            runtime,
        }
    }

    fn run(&self, mode: Mode) -> Run {
        match mode {
            Mode::None => Run {
                mode,
                emitter: self.emitter(false).finish(self.fire_timeout()),
                counted: None,
                peerlab: None,
            },
            Mode::Bpftrace => self.run_bpftrace(),
            Mode::Peerlab => self.run_peerlab(&self.peerlab, mode),
            Mode::Baseline => match baseline_binary() {
                Some(binary) => self.run_peerlab(&binary, mode),
                None => panic!("no BENCH_BASELINE binary"),
            },
            Mode::NatsCeiling => self.run_nats_ceiling(false),
            Mode::NatsCeilingOneCoreBusy => self.run_nats_ceiling(true),
        }
    }

    /// Generous: the semaphore wait plus 20 us per probe (50x slower than seen with peerlab).
    fn fire_timeout(&self) -> Duration {
        let paced = self.config.rate.map_or(Duration::ZERO, |rate| {
            Duration::from_secs_f64(2.0 * self.config.count as f64 / rate as f64)
        });
        SEMAPHORE_WAIT + Duration::from_micros(20 * self.config.count).max(paced)
    }

    fn emitter(&self, wait_for_tracer: bool) -> Emitter {
        let mut command = Command::new(&self.emitter);
        command.arg(self.config.count.to_string());
        if let Some(rate) = self.config.rate {
            command.arg("--rate").arg(rate.to_string());
        }
        if wait_for_tracer {
            command
                .arg("--wait-semaphore")
                .arg(SEMAPHORE_WAIT.as_secs().to_string());
        }
        Emitter(Guard::spawn(
            command.stdout(Stdio::piped()).stderr(Stdio::piped()),
            "emitter",
        ))
    }

    fn run_bpftrace(&self) -> Run {
        let emitter = self.emitter(true);
        let program = format!(
            "usdt:{}:{PROBE} {{ @c = count(); }}",
            self.emitter.display()
        );
        let mut bpftrace = Guard::spawn(
            Command::new("bpftrace")
                .args(["-e", &program, "-p", &emitter.pid().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            "bpftrace",
        );
        let output = match emitter.try_finish(self.fire_timeout()) {
            Ok(output) => output,
            Err(e) => {
                bpftrace.signal(libc::SIGINT);
                let (_, _, stderr) = bpftrace.finish(STOP_TIMEOUT);
                panic!("{e}\nbpftrace's stderr:\n{stderr}")
            }
        };
        // With -p, bpftrace exits (printing its maps) when the traced process does; SIGINT
        // makes sure it does not linger.
        if bpftrace.wait_for(Duration::from_secs(5)).is_none() {
            bpftrace.signal(libc::SIGINT);
        }
        let (_, stdout, stderr) = bpftrace.finish(STOP_TIMEOUT);
        let counted = parse_bpftrace_count(&stdout).unwrap_or_else(|| {
            panic!("no `@c: N` in bpftrace's output\nstdout: {stdout}\nstderr: {stderr}")
        });
        Run {
            mode: Mode::Bpftrace,
            emitter: output,
            counted: Some(counted),
            peerlab: None,
        }
    }

    fn run_peerlab(&self, binary: &Path, mode: Mode) -> Run {
        let nats = NatsServer::start(&self.nats_server).expect("start nats-server");
        let counter = self.runtime.block_on(NetmsgCounter::start(&nats.url()));
        let emitter = self.emitter(true);
        let log = self.scratch.path().join("peerlab.log");
        let peerlab = Guard::spawn(
            Command::new(binary)
                .args(["--log", "info", "extract", "ebpf", "--bitcoind-path"])
                .arg(&self.emitter)
                .args(["--pid", &emitter.pid().to_string(), "--probe", PROBE])
                .args(["-a", &nats.url(), "--stats-interval", "1"])
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create peerlab log")),
            "peerlab",
        );
        let output = emitter.try_finish(self.fire_timeout()).unwrap_or_else(|e| {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{e}\npeerlab's log:\n{log_text}")
        });
        // Let peerlab finish the backlog before reading its CPU time, so the figure covers
        // all the work for the run; then read it while the process still exists.
        counter.wait_until_quiet(output.fired, DELIVERY_TIMEOUT);
        let usage = ProcessUsage::read(peerlab.pid());
        peerlab.signal(libc::SIGTERM);
        let status = peerlab.finish(STOP_TIMEOUT).0;
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let stats = parse_final_stats(&log_text).unwrap_or_else(|| {
            panic!("peerlab ({status}) logged no `extractor stopped` line:\n{log_text}")
        });
        let published = stat(&stats, "published");
        counter.wait_for(published, DELIVERY_TIMEOUT);
        let delivery_seconds = counter.delivery_seconds();
        let (received, slow_consumer) = self.runtime.block_on(counter.stop());
        Run {
            mode,
            emitter: output,
            counted: None,
            peerlab: Some(PeerlabRun {
                received,
                records: stat(&stats, "records"),
                dropped: stat(&stats, "dropped_in_kernel") + stat(&stats, "dropped_by_publisher"),
                slow_consumer,
                cpu_seconds: usage.cpu_seconds,
                peak_rss_mib: usage.peak_rss_mib,
                delivery_seconds,
            }),
        }
    }
}

impl Bench {
    fn run_nats_ceiling(&self, one_core_busy: bool) -> Run {
        let nats = NatsServer::start(&self.nats_server).expect("start nats-server");
        // Spins until the subscriber has everything (or gave up), like the emitter's loop.
        let spinning = Arc::new(std::sync::atomic::AtomicBool::new(one_core_busy));
        let spinner = one_core_busy.then(|| {
            let spinning = spinning.clone();
            std::thread::spawn(move || {
                let mut spins = 0u64;
                while spinning.load(Ordering::Relaxed) {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            })
        });
        let counter = self.runtime.block_on(NetmsgCounter::start(&nats.url()));
        let count = self.config.count;
        let payload = bytes::Bytes::from(ping_event());
        let subject = SubjectScheme::Flat.subject(EventKind::NetMsg);
        let url = nats.url();
        let started = Instant::now();
        self.runtime.block_on(async move {
            let client = async_nats::connect(url).await.expect("connect");
            for _ in 0..count {
                client
                    .publish(subject.clone(), payload.clone())
                    .await
                    .expect("publish");
            }
            client.flush().await.expect("flush");
        });
        let seconds = started.elapsed().as_secs_f64();
        counter.wait_until_quiet(count, DELIVERY_TIMEOUT);
        spinning.store(false, Ordering::Relaxed);
        if let Some(spinner) = spinner {
            let _ = spinner.join();
        }
        let delivery_seconds = counter.delivery_seconds();
        let (received, slow_consumer) = self.runtime.block_on(counter.stop());
        Run {
            mode: if one_core_busy {
                Mode::NatsCeilingOneCoreBusy
            } else {
                Mode::NatsCeiling
            },
            emitter: EmitterOutput {
                fired: count,
                seconds,
                rate: count as f64 / seconds,
                cpu: 0.0,
            },
            counted: None,
            peerlab: Some(PeerlabRun {
                received,
                records: count,
                dropped: count.saturating_sub(received),
                slow_consumer,
                cpu_seconds: 0.0,
                peak_rss_mib: 0.0,
                delivery_seconds,
            }),
        }
    }
}

/// The bytes peerlab publishes for an inbound ping (the same message, built with the wire
/// format's types rather than by the extractor).
fn ping_event() -> Vec<u8> {
    use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
    use peerlab::event::proto::ebpf_extractor::message::{
        message_event::Msg, MessageEvent, Metadata, Ping,
    };
    use peerlab::event::proto::ebpf_extractor::Ebpf;
    use peerlab::event::proto::event::event::PeerObserverEvent;
    use prost::Message as _;
    peerlab::event::Event {
        timestamp: 1_795_000_000_000,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(EbpfEvent::Message(MessageEvent {
                meta: Metadata {
                    peer_id: 7,
                    addr: "127.0.0.1:18444".into(),
                    conn_type: 1,
                    command: "ping".into(),
                    inbound: true,
                    size: 8,
                },
                msg: Some(Msg::Ping(Ping {
                    value: 0x0102_0304_0506_0708,
                })),
            })),
        })),
    }
    .encode_to_vec()
}

/// Compiles the emitter with the system C compiler.
fn compile_emitter(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/emitter/emitter.c");
    let exe = dir.join("emitter");
    let output = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(&source)
        .output()
        .expect("run `cc` (is a C compiler installed? apt-get install gcc)");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("sys/sdt.h") {
            panic!("sys/sdt.h is missing: apt-get install systemtap-sdt-dev\n{stderr}");
        }
        panic!("compiling {} failed:\n{stderr}", source.display());
    }
    exe
}

fn require_on_path(program: &str, fix: &str) {
    if peerlab::node::find_on_path(program).is_none() {
        panic!("{program} not found on PATH: {fix}");
    }
}

/// A child process that is killed (and reaped) when dropped, so no path leaves it running.
struct Guard {
    child: Option<Child>,
    name: &'static str,
}

impl Guard {
    fn spawn(command: &mut Command, name: &'static str) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Guard {
            child: Some(child),
            name,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own, not yet reaped child; no memory is touched.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// The exit status once the process has exited, polling for at most `timeout`.
    fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return None,
            }
        }
    }

    /// Waits for the exit (panicking after `timeout`) and collects piped stdout and stderr.
    /// Only for children whose output is small: the pipes are read after the exit.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let status = self
            .wait_for(timeout)
            .unwrap_or_else(|| panic!("{} still running after {timeout:?}", self.name));
        // The child stays in the guard (already reaped; dropping it is a no-op).
        let child = self.child.as_mut().expect("child present until finished");
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        (status, stdout, stderr)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

/// The emitter's `fired=N seconds=S rate=R cpu=C` line.
#[derive(Debug, Clone, Copy)]
struct EmitterOutput {
    fired: u64,
    seconds: f64,
    rate: f64,
    /// CPU time of the firing loop, tracing costs (trap, BPF program, wakeups) included.
    cpu: f64,
}

impl EmitterOutput {
    /// What each probe cost the traced process, in microseconds of CPU.
    fn cpu_us_per_probe(&self) -> f64 {
        1e6 * self.cpu / self.fired.max(1) as f64
    }
}

struct Emitter(Guard);

impl Emitter {
    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Its report, or why it failed (e.g. no tracer raised the semaphore in time).
    fn try_finish(self, timeout: Duration) -> Result<EmitterOutput, String> {
        let (status, stdout, stderr) = self.0.finish(timeout);
        if !status.success() {
            return Err(format!("emitter failed ({status}): {stderr}"));
        }
        parse_emitter(&stdout).ok_or_else(|| format!("unexpected emitter output: {stdout:?}"))
    }

    fn finish(self, timeout: Duration) -> EmitterOutput {
        self.try_finish(timeout).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn parse_emitter(stdout: &str) -> Option<EmitterOutput> {
    let fields = key_values(stdout.lines().last()?);
    Some(EmitterOutput {
        fired: fields.get("fired")?.parse().ok()?,
        seconds: fields.get("seconds")?.parse().ok()?,
        rate: fields.get("rate")?.parse().ok()?,
        cpu: fields.get("cpu")?.parse().ok()?,
    })
}

/// bpftrace prints its map at exit as `@c: 1000000`.
fn parse_bpftrace_count(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("@c:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The `key=value` fields of peerlab's final `extractor stopped` log line.
fn parse_final_stats(log: &str) -> Option<HashMap<String, String>> {
    log.lines()
        .rev()
        .find(|line| line.contains("extractor stopped"))
        .map(key_values)
}

fn stat(stats: &HashMap<String, String>, key: &str) -> u64 {
    stats
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("peerlab's final stats have no numeric `{key}`: {stats:?}"))
}

fn key_values(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|token| token.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// CPU time and peak memory of a live process, from /proc.
struct ProcessUsage {
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

impl ProcessUsage {
    fn read(pid: u32) -> ProcessUsage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/stat (did peerlab exit early?): {e}"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
        ProcessUsage {
            cpu_seconds: cpu_ticks(&stat)
                .unwrap_or_else(|| panic!("unexpected /proc/{pid}/stat: {stat}"))
                as f64
                / clock_ticks_per_second(),
            peak_rss_mib: vm_hwm_kib(&status)
                .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
                as f64
                / 1024.0,
        }
    }
}

/// Counts `netmsg` events arriving on the bus, in the background.
struct NetmsgCounter {
    received: Arc<AtomicU64>,
    /// Arrival of the first and of the latest event, ns after `base`.
    first_ns: Arc<AtomicU64>,
    last_ns: Arc<AtomicU64>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl NetmsgCounter {
    async fn start(url: &str) -> NetmsgCounter {
        let subject = SubjectScheme::Flat.subject(EventKind::NetMsg);
        let mut subscriber =
            Subscriber::connect(&NatsOptions::local(url), SubjectScheme::Flat, &[subject])
                .await
                .expect("subscribe to netmsg");
        let received = Arc::new(AtomicU64::new(0));
        let first_ns = Arc::new(AtomicU64::new(u64::MAX));
        let last_ns = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let count = received.clone();
        let (first, last) = (first_ns.clone(), last_ns.clone());
        let base = *BASE;
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = subscriber.next() => match message {
                        Some(_) => {
                            let now = base.elapsed().as_nanos() as u64;
                            if count.fetch_add(1, Ordering::Relaxed) == 0 {
                                first.store(now, Ordering::Relaxed);
                            }
                            last.store(now, Ordering::Relaxed);
                        }
                        None => break,
                    },
                    _ = &mut stopped => break,
                };
            }
            subscriber.slow_consumer_events()
        });
        NetmsgCounter {
            received,
            first_ns,
            last_ns,
            stop,
            task,
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Seconds from the first arrival to the latest.
    fn delivery_seconds(&self) -> f64 {
        let first = self.first_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        last.saturating_sub(first) as f64 / 1e9
    }

    /// Until `expected` arrived, nothing arrived for [`QUIET_PERIOD`], or `timeout`.
    fn wait_until_quiet(&self, expected: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (mut last, mut since) = (self.received(), Instant::now());
        while last < expected && since.elapsed() < QUIET_PERIOD && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.received();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
    }

    /// Until `expected` arrived or `timeout`.
    fn wait_for(&self, expected: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.received() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops counting: (received, slow-consumer events).
    async fn stop(self) -> (u64, u64) {
        let _ = self.stop.send(());
        let slow = self.task.await.unwrap_or(0);
        (self.received.load(Ordering::Relaxed), slow)
    }
}

/// Medians per mode, ratios to the baselines, and the goals.
struct Report<'a> {
    config: Config,
    machine: String,
    runs: &'a [Run],
}

impl<'a> Report<'a> {
    fn new(config: Config, machine: String, runs: &'a [Run]) -> Report<'a> {
        Report {
            config,
            machine,
            runs,
        }
    }

    fn of(&self, mode: Mode) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |r| r.mode == mode)
    }

    fn median_rate(&self, mode: Mode) -> f64 {
        median(self.of(mode).map(|r| r.emitter.rate).collect())
    }

    fn median_peerlab(&self, mode: Mode, field: impl Fn(&PeerlabRun) -> f64) -> f64 {
        median(
            self.of(mode)
                .filter_map(|r| r.peerlab.as_ref())
                .map(field)
                .collect(),
        )
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "### USDT throughput: {} probes per run{}, {} repetitions (medians)\n\n{}\n\n",
            self.config.count,
            self.config
                .rate
                .map_or(String::new(), |r| format!(" paced to {r}/s")),
            self.config.reps,
            self.machine
        );
        out += &self.median_table();
        out += "\n";
        out += &self.goals();
        out += "\n#### Every run\n\n";
        out += &self.runs_table();
        out
    }

    fn median_table(&self) -> String {
        let none = self.median_rate(Mode::None);
        let bpftrace = self.median_rate(Mode::Bpftrace);
        let mut out = String::from(
            "| mode | probes/s | vs none | vs bpftrace | emitter CPU us/probe | received | dropped \
             | delivered events/s | peerlab CPU s | peerlab CPU us/record | peerlab CPU % of run | peerlab peak RSS MiB |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for mode in Mode::all() {
            let rate = self.median_rate(mode);
            let ratios = format!(
                "{} | {} | {:.3}",
                ratio(rate / none),
                ratio(rate / bpftrace),
                median(
                    self.of(mode)
                        .map(|r| r.emitter.cpu_us_per_probe())
                        .collect()
                )
            );
            let rest = match mode {
                Mode::None => "- | - | - | - | - | - | -".to_string(),
                Mode::Bpftrace => format!(
                    "{:.0} (counted) | - | - | - | - | - | -",
                    median(
                        self.of(mode)
                            .filter_map(|r| r.counted)
                            .map(|c| c as f64)
                            .collect()
                    )
                ),
                Mode::NatsCeiling | Mode::NatsCeilingOneCoreBusy => format!(
                    "{:.0} | {:.0} | {:.0} | - | - | - | -",
                    self.median_peerlab(mode, |p| p.received as f64),
                    self.median_peerlab(mode, |p| p.dropped as f64),
                    self.median_peerlab(mode, PeerlabRun::delivered_rate),
                ),
                Mode::Peerlab | Mode::Baseline => format!(
                    "{:.0} | {:.0} | {:.0} | {:.2} | {:.3} | {:.0} | {:.1}",
                    self.median_peerlab(mode, |p| p.received as f64),
                    self.median_peerlab(mode, |p| p.dropped as f64),
                    self.median_peerlab(mode, PeerlabRun::delivered_rate),
                    self.median_peerlab(mode, |p| p.cpu_seconds),
                    self.median_peerlab(mode, |p| p.cpu_seconds * 1e6 / p.records.max(1) as f64),
                    median(self.of(mode).filter_map(cpu_percent).collect()),
                    self.median_peerlab(mode, |p| p.peak_rss_mib),
                ),
            };
            out += &format!("| {} | {rate:.0} | {ratios} | {rest} |\n", mode.name());
        }
        out
    }

    fn goals(&self) -> String {
        let ratio = self.median_rate(Mode::Peerlab) / self.median_rate(Mode::Bpftrace);
        let max_dropped = self
            .of(Mode::Peerlab)
            .filter_map(|r| r.peerlab.map(|p| p.dropped))
            .max()
            .unwrap_or(0);
        let missing = self
            .of(Mode::Peerlab)
            .filter_map(|r| {
                r.peerlab
                    .map(|p| r.emitter.fired.saturating_sub(p.received))
            })
            .max()
            .unwrap_or(0);
        let rss = self
            .of(Mode::Peerlab)
            .filter_map(|r| r.peerlab.map(|p| p.peak_rss_mib))
            .fold(0.0, f64::max);
        let delivered = self.median_peerlab(Mode::Peerlab, PeerlabRun::delivered_rate);
        let ceiling = self.median_peerlab(Mode::NatsCeiling, PeerlabRun::delivered_rate);
        let busy_ceiling =
            self.median_peerlab(Mode::NatsCeilingOneCoreBusy, PeerlabRun::delivered_rate);
        let target = GOAL_DELIVERED.min(ceiling);
        // A paced emitter offers less than the ceiling by design: that goal is for full speed.
        let end_to_end = match self.config.rate {
            Some(rate) => {
                format!("not judged (emitter paced to {rate}/s; median {delivered:.0}/s delivered)")
            }
            None => format!(
                "{} (median {delivered:.0}/s, {:.2}x the ceiling; {:.2}x the ceiling with one \
                 core busy, {busy_ceiling:.0}/s, the share the emitter leaves)",
                verdict(delivered >= target),
                delivered / ceiling,
                delivered / busy_ceiling
            ),
        };
        format!(
            "Goals (peerlab, default ring sizes):\n\n\
             - rate >= {GOAL_RATIO}x bpftrace: {} (median {ratio:.2}x)\n\
             - 0 drops: {} (worst run: {max_dropped} dropped, {missing} fired but not received)\n\
             - peak RSS <= {GOAL_RSS_MIB} MiB: {} (worst run: {rss:.1} MiB)\n\
             - end to end >= min(1M/s, NATS ceiling {ceiling:.0}/s): {end_to_end}\n",
            verdict(ratio >= GOAL_RATIO),
            verdict(max_dropped == 0 && missing == 0),
            verdict(rss <= GOAL_RSS_MIB),
        )
    }

    fn runs_table(&self) -> String {
        let mut out = String::from(
            "| rep | mode | probes/s | seconds | emitter CPU s | detail |\n\
             |---:|---|---:|---:|---:|---|\n",
        );
        for (i, run) in self.runs.iter().enumerate() {
            let detail = match (run.counted, run.peerlab) {
                (Some(counted), _) => format!("counted {counted}"),
                (_, Some(p)) => format!(
                    "records {}, received {}, dropped {}, slow-consumer {}, CPU {:.2} s, RSS {:.1} MiB",
                    p.records, p.received, p.dropped, p.slow_consumer, p.cpu_seconds, p.peak_rss_mib
                ),
                _ => "-".to_string(),
            };
            out += &format!(
                "| {} | {} | {:.0} | {:.6} | {:.3} | {detail} |\n",
                i / Mode::all().len() + 1,
                run.mode.name(),
                run.emitter.rate,
                run.emitter.seconds,
                run.emitter.cpu
            );
        }
        out
    }
}

/// peerlab's CPU time as a share of the emitter's firing time (100% = one core for the run).
fn cpu_percent(run: &Run) -> Option<f64> {
    let p = run.peerlab?;
    (run.emitter.seconds > 0.0).then(|| 100.0 * p.cpu_seconds / run.emitter.seconds)
}

/// A ratio with two significant digits however small (the untraced loop is ~1000x faster).
fn ratio(r: f64) -> String {
    let decimals = if r > 0.0 && r < 1.0 {
        (1.0 - r.log10().floor()) as usize
    } else {
        2
    };
    format!("{r:.decimals$}x")
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}
