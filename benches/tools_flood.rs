//! The consuming tools under a flood of events: CPU per event and peak memory of the metrics,
//! alerts and websocket tools, against the logger in the same run.
//!
//! The flood is `peerlab replay` of `recordings/observer-sample.mcap` (every extractor's
//! events: P2P messages, debug.log lines, RPC replies with peer lists, ...) given COPIES times
//! at SPEED times its recorded pace (500x: about 77,000 events/s), into a private nats-server.
//! Unpaced (speed 0, ~500,000 events/s) the logger cannot keep up and nats-server drops what
//! it holds for it (a slow consumer), which the bench detects: every run asserts the tool
//! handled every event. For each mode one tool process subscribes first,
//! the replay runs, and the tool is measured from /proc once it has consumed everything:
//!
//! - `logger`: `peerlab tools logger --json` (its lines counted by the bench), the baseline
//!   consumer (decode and print every event);
//! - `metrics`: `peerlab tools metrics` (every family updated per event);
//! - `alerts`: `peerlab tools alerts` (heuristics on P2P messages and connections);
//! - `websocket`: `peerlab tools websocket` with one client subscribed to every kind.
//!
//! Modes are interleaved within each repetition; the table gives medians and ratios to the
//! logger. Run: `cargo bench --bench tools_flood` (env: `BENCH_COPIES`, default 200 copies of
//! the ~2,000-event sample; `BENCH_SPEED`, default 500; `BENCH_REPS`, default 3).

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use peerlab::stack::NatsServer;
use support::{
    build_peerlab, clock_ticks_per_second, cpu_ticks, machine, median, release_dir, vm_hwm_kib,
};

const SAMPLE: &str = "recordings/observer-sample.mcap";
const MODES: [&str; 4] = ["logger", "metrics", "alerts", "websocket"];
/// A tool counts as caught up once its CPU time has not moved for this long.
const QUIET: Duration = Duration::from_millis(700);
/// Bound on waiting for a tool to start or to catch up.
const WAIT: Duration = Duration::from_secs(120);

/// One measured run of one mode.
struct Run {
    cpu_seconds: f64,
    peak_rss_mib: f64,
    replay_seconds: f64,
    /// Events the tool is known to have handled (`None` where it cannot be told from
    /// outside: the alerts tool).
    received: Option<u64>,
}

fn main() {
    let copies = env_number("BENCH_COPIES").unwrap_or(200) as usize;
    let speed = env_number("BENCH_SPEED").unwrap_or(500);
    let reps = env_number("BENCH_REPS").unwrap_or(3) as usize;
    let release = release_dir();
    let peerlab = build_peerlab(&release);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = manifest.join(SAMPLE);
    let summary = peerlab::record::inspect::summarize_file(&sample).expect("the sample");
    let stats: u64 = summary
        .subjects
        .iter()
        .filter(|s| s.subject.starts_with("peerlab."))
        .map(|s| s.messages)
        .sum();
    let events = (summary.messages - stats) * copies as u64;
    let machine = machine();
    eprintln!(
        "{machine}\nflood: {events} events ({copies} copies of {SAMPLE} at {speed}x), {reps} repetitions"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats_exe = peerlab::node::find_on_path("nats-server").expect("nats-server on PATH");

    let mut runs: Vec<(usize, Run)> = Vec::new();
    for rep in 0..reps {
        for (mode, name) in MODES.iter().enumerate() {
            let nats = NatsServer::start(&nats_exe).expect("nats-server");
            let run =
                runtime.block_on(measure(&peerlab, name, &nats.url(), &sample, copies, speed));
            eprintln!(
                "rep {} {name}: cpu {:.2} s, peak RSS {:.1} MiB, replay {:.2} s, received {:?}",
                rep + 1,
                run.cpu_seconds,
                run.peak_rss_mib,
                run.replay_seconds,
                run.received
            );
            if let Some(received) = run.received {
                assert_eq!(received, events, "{name} handled every event of the flood");
            }
            runs.push((mode, run));
        }
    }

    let med = |mode: usize, f: fn(&Run) -> f64| {
        median(
            runs.iter()
                .filter(|(m, _)| *m == mode)
                .map(|(_, r)| f(r))
                .collect(),
        )
    };
    let base_cpu = med(0, |r| r.cpu_seconds);
    let base_rss = med(0, |r| r.peak_rss_mib);
    let mut table = format!(
        "{machine}\n\nFlood: {events} events ({copies} copies of `{SAMPLE}`) replayed at {speed}x their recorded pace, one after the other; \
         medians of {reps} repetitions, modes interleaved. The logger (lines on its stdout), the \
         metrics tool (its `peerlab_metrics_messages`) and the websocket client (frames) were \
         checked to have handled all {events} events in every run.\n\n\
         | tool | CPU s | CPU µs/event | vs logger | peak RSS MiB | vs logger | replay s |\n\
         |---|---:|---:|---:|---:|---:|---:|\n"
    );
    for (mode, name) in MODES.iter().enumerate() {
        let cpu = med(mode, |r| r.cpu_seconds);
        let rss = med(mode, |r| r.peak_rss_mib);
        table.push_str(&format!(
            "| {name} | {cpu:.2} | {:.2} | {:.2}x | {rss:.1} | {:.2}x | {:.2} |\n",
            cpu * 1e6 / events as f64,
            cpu / base_cpu,
            rss / base_rss,
            med(mode, |r| r.replay_seconds),
        ));
    }
    println!("{table}");
    let out = manifest.join("target").join("bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("tools_flood.md"), &table);
}

/// Starts the tool of `mode`, floods, waits until it caught up, and measures it.
async fn measure(
    peerlab: &Path,
    mode: &str,
    nats: &str,
    sample: &Path,
    copies: usize,
    speed: u64,
) -> Run {
    let mut command = Command::new(peerlab);
    command.env("RUST_LOG", "info").stdin(Stdio::null());
    match mode {
        "logger" => command.args(["tools", "logger", "--json", "-a", nats]),
        "metrics" => command.args(["tools", "metrics", "-m", "127.0.0.1:0", "-a", nats]),
        "alerts" => command.args(["tools", "alerts", "-a", nats]),
        _ => command.args(["tools", "websocket", "-w", "127.0.0.1:0", "-a", nats]),
    };
    let mut tool = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool starts");
    let lines = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ready = ready_line(&mut tool, mode, &lines);
    // The websocket tool gets one client that takes every kind.
    let _client = match mode {
        "websocket" => {
            let address = ready
                .split("ws://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .expect("address")
                .to_string();
            let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{address}/"))
                .await
                .expect("websocket client");
            let all = r#"{"ebpf":{"messages":true,"connections":true,"mempool":true,"validation":true},"rpc":true,"p2p":true,"log":true,"ipc":true}"#;
            client
                .send(tokio_tungstenite::tungstenite::Message::Text(all.into()))
                .await
                .expect("subscribe");
            // Read everything it is sent, as a page would, counting the events.
            let frames = lines.clone();
            Some(tokio::spawn(async move {
                while let Some(Ok(frame)) = client.next().await {
                    if frame.is_text() {
                        frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }))
        }
        _ => None,
    };
    let started = Instant::now();
    let status = Command::new(peerlab)
        .arg("replay")
        .args(std::iter::repeat_n(sample, copies))
        .arg("--speed")
        .arg(speed.to_string())
        .args(["-a", nats])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(status.success(), "replay failed: {status}");
    let replay_seconds = started.elapsed().as_secs_f64();
    let pid = tool.id();
    let (cpu_seconds, peak_rss_mib) = caught_up(pid);
    let received = match mode {
        "metrics" => Some(metrics_messages(&ready).await),
        "alerts" => None,
        _ => Some(lines.load(std::sync::atomic::Ordering::Relaxed)),
    };
    // SAFETY: kill(2) on our own child; no memory is involved.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let _ = tool.wait();
    Run {
        cpu_seconds,
        peak_rss_mib,
        replay_seconds,
        received,
    }
}

/// The events the metrics tool counted (`peerlab_metrics_messages` without counter
/// snapshots), read from the address in its ready line.
async fn metrics_messages(ready: &str) -> u64 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = ready
        .trim()
        .trim_start_matches("serving metrics on http://")
        .trim_end_matches("/metrics");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body.lines()
        .filter(|l| l.starts_with("peerlab_metrics_messages{") && !l.contains("\"stats\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits for the line a tool prints once it has subscribed; returns it. The logger's
/// stdout lines (one per event) are counted into `lines`.
fn ready_line(
    tool: &mut Child,
    mode: &str,
    lines: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stdout, stderr) = (tool.stdout.take(), tool.stderr.take());
    let needle = match mode {
        "logger" => "logger subscribed",
        "alerts" => "alerts tool subscribed",
        _ => "serving",
    };
    for pipe in [
        stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (tx, lines) = (tx.clone(), lines.clone());
        let count = mode == "logger";
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains(needle) {
                    let _ = tx.send(line);
                } else if count && line.starts_with('{') {
                    lines.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{mode} did not report that it subscribed"))
}

/// Once the tool's CPU time stops moving: (CPU seconds, peak RSS MiB).
fn caught_up(pid: u32) -> (f64, f64) {
    let read = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        (
            cpu_ticks(&stat).unwrap_or(0),
            vm_hwm_kib(&status).unwrap_or(0),
        )
    };
    let deadline = Instant::now() + WAIT;
    let mut last = read();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = read();
        if now.0 != last.0 {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= QUIET {
            break;
        }
    }
    (
        last.0 as f64 / clock_ticks_per_second(),
        last.1 as f64 / 1024.0,
    )
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}
