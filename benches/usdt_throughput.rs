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
//!   speed keeps one core busy (what NATS can deliver in the `peerlab` mode's conditions);
//! - `peerlab to NATS`: `peerlab` with no subscriber at all; nats-server's own count of what
//!   it received (`in_msgs`, read from its monitoring endpoint) says what reached NATS. This
//!   is issue 15's end-to-end measure: a subscriber costs nats-server and this process as
//!   much CPU as the publishing side, and one subscriber is cut off as a slow consumer below
//!   what nats-server takes in;
//! - `nats ingest ceiling`: the bare async-nats publisher, counted by nats-server the same
//!   way (what one publisher gets into nats-server here: the ceiling of that goal);
//! - `peerlab baseline to NATS` (with `BENCH_BASELINE`): `peerlab to NATS` with that binary.
//!
//! For each delivering mode the report also says where the CPU went while events arrived
//! (emitter, peerlab, nats-server, this process; µs per event) and how busy the machine was,
//! which tells a rate bounded by the two cores from one bounded by waiting.
//! Modes are interleaved within each repetition so machine noise hits them alike; the report
//! gives medians and ratios to the baselines. Needs root (eBPF), `cc`, `sys/sdt.h`, bpftrace
//! and nats-server. Run: `cargo bench --bench usdt_throughput`
//! (env: `BENCH_COUNT`, default 1,000,000 probes per run; `BENCH_REPS`, default 3;
//! `BENCH_BASELINE`, a peerlab binary to compare with; `BENCH_RATE`, probes per second to
//! pace the emitter to, e.g. 100000 for a flood's pace, instead of as fast as it can;
//! `BENCH_MODES`, e.g. `peerlab-to-nats,ingest-ceiling`: only these modes, plus `none` and
//! `bpftrace`, the ratios' baselines).

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
    build_peerlab, clock_ticks_per_second, cpu_ticks, machine, machine_ticks, median,
    process_user_system_ticks, release_dir, thread_ticks, vm_hwm_kib,
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
    /// `peerlab` with no subscriber: nats-server's own count of the messages it received
    /// (`in_msgs` on its monitoring endpoint) says what reached NATS, end to end to NATS.
    PeerlabToNats,
    /// `nats ceiling` with no subscriber, counted by nats-server the same way: what one
    /// async-nats publisher gets into nats-server on this machine.
    NatsIngestCeiling,
    /// `peerlab to NATS` with the `BENCH_BASELINE` binary.
    BaselineToNats,
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
            Mode::PeerlabToNats,
            Mode::NatsIngestCeiling,
        ];
        if baseline_binary().is_some() {
            modes.push(Mode::Baseline);
            modes.push(Mode::BaselineToNats);
        }
        // The ratios need `none` and `bpftrace`, so a selection always keeps them.
        if let Ok(selected) = std::env::var("BENCH_MODES") {
            let selected: Vec<&str> = selected.split(',').map(str::trim).collect();
            modes.retain(|m| {
                matches!(m, Mode::None | Mode::Bpftrace) || selected.contains(&m.key())
            });
        }
        modes
    }

    /// The name `BENCH_MODES` selects a mode by.
    fn key(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Bpftrace => "bpftrace",
            Mode::Peerlab => "peerlab",
            Mode::Baseline => "baseline",
            Mode::NatsCeiling => "ceiling",
            Mode::NatsCeilingOneCoreBusy => "ceiling-busy",
            Mode::PeerlabToNats => "peerlab-to-nats",
            Mode::NatsIngestCeiling => "ingest-ceiling",
            Mode::BaselineToNats => "baseline-to-nats",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Bpftrace => "bpftrace",
            Mode::Peerlab => "peerlab",
            Mode::Baseline => "peerlab baseline",
            Mode::NatsCeiling => "nats ceiling",
            Mode::NatsCeilingOneCoreBusy => "nats ceiling, one core busy",
            Mode::PeerlabToNats => "peerlab to NATS (server-counted)",
            Mode::NatsIngestCeiling => "nats ingest ceiling (server-counted)",
            Mode::BaselineToNats => "peerlab baseline to NATS (server-counted)",
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
    /// Of `dropped`, those lost in the kernel.
    dropped_in_kernel: u64,
    /// Times nats-server flagged our subscriber as a slow consumer (it then drops for us).
    slow_consumer: u64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    /// From the first event's arrival to the last's.
    delivery_seconds: f64,
    /// Of `received`, those counted at the first arrival seen (1 for a subscriber; up to a
    /// [`VARZ_PERIOD`]'s worth when nats-server counts): not inside the delivery window.
    counted_at_first: u64,
    /// Where the CPU went meanwhile.
    ledger: Option<CpuLedger>,
}

impl PeerlabRun {
    /// Events per second that reached the subscriber, end to end.
    fn delivered_rate(&self) -> f64 {
        self.received.saturating_sub(self.counted_at_first) as f64 / self.delivery_seconds.max(1e-9)
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
            Mode::Peerlab | Mode::PeerlabToNats => self.run_peerlab(&self.peerlab, mode),
            Mode::Baseline | Mode::BaselineToNats => match baseline_binary() {
                Some(binary) => self.run_peerlab(&binary, mode),
                None => panic!("no BENCH_BASELINE binary"),
            },
            Mode::NatsCeiling | Mode::NatsCeilingOneCoreBusy | Mode::NatsIngestCeiling => {
                self.run_nats_ceiling(mode)
            }
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

    /// A private nats-server and what counts arrivals on it: nats-server itself through its
    /// monitoring endpoint (on a second loopback port) when `server_counted`, else a
    /// subscriber to `netmsg`.
    fn nats_and_counter(&self, server_counted: bool) -> (NatsServer, NetmsgCounter) {
        if !server_counted {
            let nats = NatsServer::start(&self.nats_server).expect("start nats-server");
            let counter = self.runtime.block_on(NetmsgCounter::start(&nats.url()));
            return (nats, counter);
        }
        let monitor_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let nats = NatsServer::start_with_config(
            &self.nats_server,
            &format!("http: \"127.0.0.1:{monitor_port}\""),
        )
        .expect("start nats-server with monitoring");
        let counter = NetmsgCounter::server_counted(monitor_port, self.config.count);
        (nats, counter)
    }

    fn run_peerlab(&self, binary: &Path, mode: Mode) -> Run {
        let server_counted = matches!(mode, Mode::PeerlabToNats | Mode::BaselineToNats);
        let (nats, counter) = self.nats_and_counter(server_counted);
        let emitter = self.emitter(true);
        let log = self.scratch.path().join("peerlab.log");
        let nats_pid = nats.pid().expect("nats-server runs");
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
        let sampler = CpuSampler::start(
            counter.received.clone(),
            self.config.count,
            nats_pid,
            Some(peerlab.pid()),
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
        let ledger = sampler.finish();
        let delivery_seconds = counter.delivery_seconds();
        let counted_at_first = counter.counted_at_first.load(Ordering::Relaxed);
        let (received, slow_consumer) = self.runtime.block_on(counter.stop());
        Run {
            mode,
            emitter: output,
            counted: None,
            peerlab: Some(PeerlabRun {
                received,
                records: stat(&stats, "records"),
                dropped: stat(&stats, "dropped_in_kernel") + stat(&stats, "dropped_by_publisher"),
                dropped_in_kernel: stat(&stats, "dropped_in_kernel"),
                slow_consumer,
                cpu_seconds: usage.cpu_seconds,
                peak_rss_mib: usage.peak_rss_mib,
                delivery_seconds,
                counted_at_first,
                ledger,
            }),
        }
    }
}

impl Bench {
    fn run_nats_ceiling(&self, mode: Mode) -> Run {
        let one_core_busy = mode == Mode::NatsCeilingOneCoreBusy;
        let (nats, counter) = self.nats_and_counter(mode == Mode::NatsIngestCeiling);
        // Spins until the subscriber has everything (or gave up), like the emitter's loop.
        let spinning = Arc::new(std::sync::atomic::AtomicBool::new(one_core_busy));
        let spinner = one_core_busy.then(|| {
            let spinning = spinning.clone();
            std::thread::Builder::new()
                .name(SPINNER_THREAD.into())
                .spawn(move || {
                    let mut spins = 0u64;
                    while spinning.load(Ordering::Relaxed) {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                })
                .expect("spawn the spinner")
        });
        let nats_pid = nats.pid().expect("nats-server runs");
        let sampler =
            CpuSampler::start(counter.received.clone(), self.config.count, nats_pid, None);
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
        let ledger = sampler.finish();
        spinning.store(false, Ordering::Relaxed);
        if let Some(spinner) = spinner {
            let _ = spinner.join();
        }
        let delivery_seconds = counter.delivery_seconds();
        let counted_at_first = counter.counted_at_first.load(Ordering::Relaxed);
        let (received, slow_consumer) = self.runtime.block_on(counter.stop());
        Run {
            mode,
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
                dropped_in_kernel: 0,
                slow_consumer,
                cpu_seconds: 0.0,
                peak_rss_mib: 0.0,
                delivery_seconds,
                counted_at_first,
                ledger,
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

/// Counts events arriving, in the background: what a subscriber to `netmsg` receives, or
/// (without any subscriber) what nats-server itself counts as received from publishers.
struct NetmsgCounter {
    received: Arc<AtomicU64>,
    /// Arrival of the first and of the latest event, ns after `base`.
    first_ns: Arc<AtomicU64>,
    last_ns: Arc<AtomicU64>,
    /// The count when the first arrival was seen.
    counted_at_first: Arc<AtomicU64>,
    source: CountSource,
}

enum CountSource {
    Subscriber {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<u64>,
    },
    Server {
        stop: Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    },
}

/// How often nats-server's monitoring endpoint is read in the `to NATS` modes (each read
/// costs the server about a hundred microseconds: 1 % of a core at this period).
const VARZ_PERIOD: Duration = Duration::from_millis(10);
const VARZ_THREAD: &str = "bench-varz";

impl NetmsgCounter {
    /// Counts what nats-server received from clients (`in_msgs` of its `/varz` monitoring
    /// endpoint on `monitor_port`), read every [`VARZ_PERIOD`]: the events published plus
    /// any other message (a peerlab publisher's confirmation markers, one per batch). With
    /// no subscriber, the server only takes messages in; none is delivered or dropped.
    ///
    /// The delivery window ends when the count first reaches `expected` (the probes fired):
    /// what a publisher sends later, such as its status at a stop, is not part of the run.
    /// Markers counted before the last events may end it up to one marker per batch early
    /// (about 0.05 % of the events at this bench's batch sizes).
    fn server_counted(monitor_port: u16, expected: u64) -> NetmsgCounter {
        let received = Arc::new(AtomicU64::new(0));
        let first_ns = Arc::new(AtomicU64::new(u64::MAX));
        let last_ns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counted_at_first = Arc::new(AtomicU64::new(0));
        let (count, first, last, at_first, stopping) = (
            received.clone(),
            first_ns.clone(),
            last_ns.clone(),
            counted_at_first.clone(),
            stop.clone(),
        );
        let base = *BASE;
        // The monitoring listener may open a moment after the client port greets.
        let deadline = Instant::now() + Duration::from_secs(5);
        let start = loop {
            match varz_in_msgs(monitor_port) {
                Some(count) => break count,
                None if Instant::now() < deadline => std::thread::sleep(VARZ_PERIOD),
                None => panic!("nats-server's /varz on port {monitor_port} did not answer"),
            }
        };
        let thread = std::thread::Builder::new()
            .name(VARZ_THREAD.into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(VARZ_PERIOD);
                    let Some(total) = varz_in_msgs(monitor_port) else {
                        continue;
                    };
                    let now = total.saturating_sub(start);
                    let before = count.swap(now, Ordering::Relaxed);
                    if now != before && before < expected {
                        let at = base.elapsed().as_nanos() as u64;
                        if before == 0 {
                            first.store(at, Ordering::Relaxed);
                            at_first.store(now, Ordering::Relaxed);
                        }
                        last.store(at, Ordering::Relaxed);
                    }
                }
            })
            .expect("spawn the /varz reader");
        NetmsgCounter {
            received,
            first_ns,
            last_ns,
            counted_at_first,
            source: CountSource::Server { stop, thread },
        }
    }

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
            counted_at_first: Arc::new(AtomicU64::new(1)),
            source: CountSource::Subscriber { stop, task },
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
        let slow = match self.source {
            CountSource::Subscriber { stop, task } => {
                let _ = stop.send(());
                task.await.unwrap_or(0)
            }
            CountSource::Server { stop, thread } => {
                stop.store(true, Ordering::Relaxed);
                let _ = thread.join();
                0
            }
        };
        (self.received.load(Ordering::Relaxed), slow)
    }
}

/// `in_msgs` from nats-server's `/varz` (plain HTTP/1.0 on loopback; `None` on any failure,
/// the caller reads again next period).
fn varz_in_msgs(port: u16) -> Option<u64> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let after = &body[body.find("\"in_msgs\":")? + "\"in_msgs\":".len()..];
    let digits: String = after
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
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
        out += "\n";
        out += &self.cpu_table();
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
                Mode::NatsCeiling | Mode::NatsCeilingOneCoreBusy | Mode::NatsIngestCeiling => {
                    format!(
                        "{:.0} | {:.0} | {:.0} | - | - | - | -",
                        self.median_peerlab(mode, |p| p.received as f64),
                        self.median_peerlab(mode, |p| p.dropped as f64),
                        self.median_peerlab(mode, PeerlabRun::delivered_rate),
                    )
                }
                Mode::Peerlab | Mode::Baseline | Mode::PeerlabToNats | Mode::BaselineToNats => {
                    format!(
                        "{:.0} | {:.0} | {:.0} | {:.2} | {:.3} | {:.0} | {:.1}",
                        self.median_peerlab(mode, |p| p.received as f64),
                        self.median_peerlab(mode, |p| p.dropped as f64),
                        self.median_peerlab(mode, PeerlabRun::delivered_rate),
                        self.median_peerlab(mode, |p| p.cpu_seconds),
                        self.median_peerlab(mode, |p| p.cpu_seconds * 1e6
                            / p.records.max(1) as f64),
                        median(self.of(mode).filter_map(cpu_percent).collect()),
                        self.median_peerlab(mode, |p| p.peak_rss_mib),
                    )
                }
            };
            out += &format!("| {} | {rate:.0} | {ratios} | {rest} |\n", mode.name());
        }
        out
    }

    /// Where the CPU went while events arrived, per delivered event, in the modes that
    /// deliver: whether the rate is bounded by the two cores being busy.
    fn cpu_table(&self) -> String {
        let mut out = String::from(
            "Where the CPU went while events arrived (medians; µs of CPU per event that arrived \
             within the window, from the first arrival to the last; sustained: arrivals per \
             second between 10 % and 90 % of them):\n\n\
             | mode | events/s in window | sustained events/s | emitter or spinner | peerlab \
             | nats-server | subscriber (+ publisher in the ceilings) | all parties | machine busy |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for mode in Mode::all() {
            let ledgers: Vec<(&Run, CpuLedger)> = self
                .of(mode)
                .filter_map(|r| Some((r, r.peerlab?.ledger?)))
                .filter(|(_, l)| l.events > 0)
                .collect();
            if ledgers.is_empty() {
                continue;
            }
            let per_event = |f: &dyn Fn(&Run, &CpuLedger) -> f64| {
                median(
                    ledgers
                        .iter()
                        .map(|(r, l)| 1e6 * f(r, l) / l.events as f64)
                        .collect(),
                )
            };
            // The emitter reports its loop's CPU; the spinner takes a whole core throughout.
            let first_party = |r: &Run, l: &CpuLedger| match r.mode {
                Mode::NatsCeiling | Mode::NatsIngestCeiling => 0.0,
                Mode::NatsCeilingOneCoreBusy => l.seconds,
                _ => r.emitter.cpu * l.events as f64 / r.emitter.fired.max(1) as f64,
            };
            let parts = [
                per_event(&first_party),
                per_event(&|_, l| l.peerlab_seconds),
                per_event(&|_, l| l.nats_server_seconds),
                per_event(&|_, l| l.bench_seconds),
            ];
            let all = per_event(&|r, l| {
                first_party(r, l) + l.peerlab_seconds + l.nats_server_seconds + l.bench_seconds
            });
            out += &format!(
                "| {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {all:.3} | {:.0}% |\n",
                mode.name(),
                median(
                    ledgers
                        .iter()
                        .map(|(_, l)| l.events as f64 / l.seconds.max(1e-9))
                        .collect()
                ),
                median(ledgers.iter().map(|(_, l)| l.sustained_rate).collect()),
                parts[0],
                parts[1],
                parts[2],
                parts[3],
                100.0 * median(ledgers.iter().map(|(_, l)| l.machine_busy).collect()),
            );
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
        format!(
            "Goals (peerlab, default ring sizes):\n\n\
             - rate >= {GOAL_RATIO}x bpftrace: {} (median {ratio:.2}x)\n\
             - 0 drops: {} (worst run: {max_dropped} dropped, {missing} fired but not received)\n\
             - peak RSS <= {GOAL_RSS_MIB} MiB: {} (worst run: {rss:.1} MiB)\n\
             - end to end to NATS: {}\n\
             - to one subscriber (not the goal's measure): {}\n",
            verdict(ratio >= GOAL_RATIO),
            verdict(max_dropped == 0 && missing == 0),
            verdict(rss <= GOAL_RSS_MIB),
            self.to_nats_goal(),
            self.to_subscriber(),
        )
    }

    /// Issue 15's end-to-end goal: what nats-server counts from peerlab, at least 1M/s or the
    /// ingest ceiling if that is lower, with nothing dropped in any run.
    fn to_nats_goal(&self) -> String {
        let runs: Vec<(&Run, PeerlabRun)> = self
            .of(Mode::PeerlabToNats)
            .filter_map(|r| Some((r, r.peerlab?)))
            .collect();
        let ceiling = self.median_peerlab(Mode::NatsIngestCeiling, PeerlabRun::delivered_rate);
        if runs.is_empty() || ceiling.is_nan() {
            return "not judged (needs the peerlab-to-nats and ingest-ceiling modes)".into();
        }
        let target = GOAL_DELIVERED.min(ceiling);
        let delivered = self.median_peerlab(Mode::PeerlabToNats, PeerlabRun::delivered_rate);
        let sustained = self.median_peerlab(Mode::PeerlabToNats, |p| {
            p.ledger.map_or(f64::NAN, |l| l.sustained_rate)
        });
        let worst_dropped = runs.iter().map(|(_, p)| p.dropped).max().unwrap_or(0);
        // nats-server's count holds the publisher's confirmation markers too, so it must reach
        // the number fired at least.
        let server_has_all = runs.iter().all(|(r, p)| p.received >= r.emitter.fired);
        format!(
            "{} (sustained >= {target:.0}/s = min(1M/s, nats ingest ceiling {ceiling:.0}/s), 0 \
             drops in every run: median sustained {sustained:.0}/s, {:.2}x the target \
             ({delivered:.0}/s over the whole window, edges included); worst run \
             {worst_dropped} dropped; nats-server counted at least every event fired in every \
             run: {})",
            verdict(sustained >= target && worst_dropped == 0 && server_has_all),
            sustained / target,
            if server_has_all { "yes" } else { "no" },
        )
    }

    /// What one subscriber received, against what it receives from a bare publisher: a
    /// single subscriber's limit at nats-server, not peerlab's.
    fn to_subscriber(&self) -> String {
        let delivered = self.median_peerlab(Mode::Peerlab, PeerlabRun::delivered_rate);
        let ceiling = self.median_peerlab(Mode::NatsCeiling, PeerlabRun::delivered_rate);
        let busy_ceiling =
            self.median_peerlab(Mode::NatsCeilingOneCoreBusy, PeerlabRun::delivered_rate);
        if delivered.is_nan() || ceiling.is_nan() {
            return "not run".into();
        }
        format!(
            "median {delivered:.0}/s, {:.2}x what it receives from a bare publisher \
             ({ceiling:.0}/s; {busy_ceiling:.0}/s with one core busy)",
            delivered / ceiling
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
                    "records {}, received {}, dropped {} ({} in the kernel), slow-consumer {}, CPU {:.2} s, RSS {:.1} MiB",
                    p.records, p.received, p.dropped, p.dropped_in_kernel, p.slow_consumer, p.cpu_seconds, p.peak_rss_mib
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

/// How often the [`CpuSampler`] looks at the arrival count (a /proc snapshot is taken only
/// when it moved, so a run costs it a few hundred small reads).
const SAMPLE_PERIOD: Duration = Duration::from_millis(10);
/// Thread names the bench gives its helpers, so their CPU is kept out of the subscriber's.
const SPINNER_THREAD: &str = "bench-spinner";
const SAMPLER_THREAD: &str = "bench-sampler";

/// Where the machine's CPU went while events arrived: from the first arrival to the last,
/// per party, and how busy both cores were. It tells a ceiling set by CPU (every core busy,
/// so any extra work per event lowers the rate) from one set by waiting.
#[derive(Debug, Clone, Copy, Default)]
struct CpuLedger {
    seconds: f64,
    /// Events that arrived within the window.
    events: u64,
    /// Busy share of all CPUs over the window (1.0: every core busy throughout).
    machine_busy: f64,
    nats_server_seconds: f64,
    /// peerlab's process (0 in the ceiling modes).
    peerlab_seconds: f64,
    /// This process without its spinner and sampler threads: the subscriber, and in the
    /// ceiling modes also the publisher.
    bench_seconds: f64,
    /// Arrivals per second between the moments 10 % and 90 % of the run's arrivals were in:
    /// the throughput the pipeline sustains, without the latency at the window's edges (the
    /// first drain waits for a wake-up, the last for the 50 ms drain timer, which in a
    /// one-second run is 5 % of the window).
    sustained_rate: f64,
}

/// Arrivals per second between 10 % and 90 % of the final count, from `(seconds, count)`
/// samples in time order (0 with too few samples to tell).
fn sustained_rate(samples: &[(f64, u64)]) -> f64 {
    let Some(&(_, total)) = samples.last() else {
        return 0.0;
    };
    let reached = |share: u64| {
        samples
            .iter()
            .find(|(_, count)| *count * 10 >= total * share)
    };
    match (reached(1), reached(9)) {
        (Some(&(t1, c1)), Some(&(t9, c9))) if t9 > t1 => (c9 - c1) as f64 / (t9 - t1),
        _ => 0.0,
    }
}

/// One look at the counters the ledger is made of.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    received: u64,
    machine: (u64, u64),
    nats_server: u64,
    peerlab: u64,
    bench: u64,
}

impl CpuSnapshot {
    fn take(received: u64, nats_server: u32, peerlab: Option<u32>) -> CpuSnapshot {
        let ticks = |pid: u32| process_user_system_ticks(pid).map_or(0, |(u, s)| u + s);
        let own = std::process::id();
        let helpers = thread_ticks(own, SPINNER_THREAD) + thread_ticks(own, SAMPLER_THREAD);
        CpuSnapshot {
            at: Instant::now(),
            received,
            machine: machine_ticks().unwrap_or((0, 0)),
            nats_server: ticks(nats_server),
            peerlab: peerlab.map_or(0, ticks),
            bench: ticks(own).saturating_sub(helpers),
        }
    }

    fn ledger_since(&self, start: &CpuSnapshot) -> CpuLedger {
        let hz = clock_ticks_per_second();
        let seconds = |end: u64, begin: u64| end.saturating_sub(begin) as f64 / hz;
        let busy = self.machine.0.saturating_sub(start.machine.0) as f64;
        let total = self.machine.1.saturating_sub(start.machine.1) as f64;
        CpuLedger {
            seconds: self.at.duration_since(start.at).as_secs_f64(),
            events: self.received.saturating_sub(start.received),
            machine_busy: if total > 0.0 { busy / total } else { 0.0 },
            nats_server_seconds: seconds(self.nats_server, start.nats_server),
            peerlab_seconds: seconds(self.peerlab, start.peerlab),
            bench_seconds: seconds(self.bench, start.bench),
            sustained_rate: 0.0,
        }
    }
}

/// Samples [`CpuSnapshot`]s in the background while the arrival count moves.
struct CpuSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<CpuLedger>>,
}

impl CpuSampler {
    /// Samples until the count reaches `expected` (what arrives later is not the run's).
    fn start(
        received: Arc<AtomicU64>,
        expected: u64,
        nats_server: u32,
        peerlab: Option<u32>,
    ) -> CpuSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(SAMPLER_THREAD.into())
            .spawn(move || {
                let (mut first, mut last) = (None, None);
                let mut seen = 0;
                let started = Instant::now();
                let mut arrivals = Vec::new();
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(SAMPLE_PERIOD);
                    let now = received.load(Ordering::Relaxed);
                    arrivals.push((started.elapsed().as_secs_f64(), now));
                    if now != seen && seen < expected {
                        seen = now;
                        let snapshot = CpuSnapshot::take(now, nats_server, peerlab);
                        first.get_or_insert(snapshot);
                        last = Some(snapshot);
                    }
                }
                let mut ledger = last?.ledger_since(&first?);
                ledger.sustained_rate = sustained_rate(&arrivals);
                Some(ledger)
            })
            .expect("spawn the CPU sampler");
        CpuSampler { stop, thread }
    }

    /// The ledger from the first arrival the sampler saw to the last (`None`: fewer than
    /// two samples).
    fn finish(self) -> Option<CpuLedger> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}
