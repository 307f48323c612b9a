//! `peerlab tools metrics` against a real nats-server, fed by `peerlab replay` of
//! `recordings/regtest-sample.mcap`: once every replayed event is counted, the exposition
//! (without the start timestamp) equals the committed golden file
//! `tests/golden/metrics-regtest-sample.prom`, so a change to a family shows up as a diff.
//! Run with `PEERLAB_BLESS=1` to rewrite the golden after an intended change. Also: any path
//! answers, gzip is served to clients that accept it, and SIGTERM ends the tool cleanly.

use crate::common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerlab::stack::NatsServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GOLDEN: &str = "tests/golden/metrics-regtest-sample.prom";
const RECORDING: &str = "recordings/regtest-sample.mcap";

/// `GET path` with extra header lines; (head, body).
async fn get(address: &str, path: &str, headers: &str) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the metrics endpoint");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("the endpoint answers in time")
        .expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    (head, response[split + 4..].to_vec())
}

/// The exposition without comments, the start timestamp (it is the wall clock), and the
/// process-dependent `peerlab_*` lines other than the message counts.
fn comparable(text: &str) -> String {
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| !l.starts_with("peerobserver_runtime_start_timestamp"))
        .collect();
    lines.sort_unstable();
    lines.join("\n") + "\n"
}

fn messages_counted(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("peerlab_metrics_messages{") && !l.contains("kind=\"stats\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_sample_gives_the_golden_metrics() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let mut tool = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["tools", "metrics", "-m", "127.0.0.1:0", "-a", &nats.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the metrics tool starts");
    // Its first line names the bound address; it is printed once it has subscribed.
    let stdout = tool.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(common::TIMEOUT)
        .expect("the tool announces its address");
    let address = line
        .trim()
        .strip_prefix("serving metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let events = peerlab::record::inspect::summarize_file(Path::new(RECORDING))
        .expect("the sample recording")
        .messages
        - 2; // two counter snapshots, which replay leaves out
    let replay = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["replay", RECORDING, "--speed", "0", "-a", &nats.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(replay.success(), "{replay:?}");

    let deadline = Instant::now() + common::TIMEOUT;
    let text = loop {
        let (head, body) = get(&address, "/metrics", "").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        let text = String::from_utf8(body).expect("utf-8");
        let counted = messages_counted(&text);
        if counted >= events {
            assert_eq!(counted, events, "every replayed event counted once");
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} of {events} events counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Values anyone can check against `peerlab inspect` of the sample.
    assert!(text.contains("\npeerobserver_conn_inbound 3\n"), "{text}");
    assert!(text.contains("\npeerobserver_mempool_added 6\n"));

    let actual = comparable(&text);
    if std::env::var_os("PEERLAB_BLESS").is_some() {
        std::fs::write(GOLDEN, &actual).expect("write the golden");
    }
    let golden = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e} (PEERLAB_BLESS=1 writes it)"));
    assert_eq!(
        actual, golden,
        "the metrics after the replay differ from {GOLDEN}; if the change is intended, rerun \
         with PEERLAB_BLESS=1"
    );

    // Any path answers, and gzip is served when accepted.
    let (head, body) = get(
        &address,
        "/peer-observer-metrics-tool/",
        "Accept-Encoding: gzip\r\n",
    )
    .await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");

    // SAFETY: kill(2) on our own child; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(tool.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = tool.wait().expect("the tool exits");
    assert!(status.success(), "{status:?}");
}

/// The payload of a chunked HTTP body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(&String::from_utf8_lossy(&body[..end]), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["tools", "metrics", "-m", &address, "-a", "127.0.0.1:1"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}
