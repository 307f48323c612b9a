//! `peerlab tools metrics` against a real nats-server, fed by `peerlab replay` of each sample
//! recording (`regtest-sample.mcap`: eBPF events; `observer-sample.mcap`: every extractor,
//! recorded with `peerlab run --duration 15 --peers 3`; `rehearsal-sample.mcap`: a
//! rehearsal's transactions and headers): once every replayed event is
//! counted, the exposition (without the start timestamp) equals the committed golden file
//! `tests/golden/metrics-<recording>.prom`, so a change to a family shows up as a diff; and
//! the key series (message counts and bytes per type and direction, block height,
//! connections, mempool) equal counts computed here from the recording itself.
//! Run with `PEERLAB_BLESS=1` to rewrite the golden after an intended change. Also: any path
//! answers, gzip is served to clients that accept it, and SIGTERM ends the tool cleanly.

use crate::common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerlab::stack::NatsServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `GET path` with extra header lines; (head, body).
pub(crate) async fn get(address: &str, path: &str, headers: &str) -> (String, Vec<u8>) {
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

/// A running `peerlab tools metrics` and the address it serves on.
pub(crate) struct MetricsProcess {
    pub(crate) child: common::ChildGuard,
    pub(crate) address: String,
}

impl MetricsProcess {
    pub(crate) fn start(nats_url: &str) -> MetricsProcess {
        let mut child = common::ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_peerlab"))
                .args(["tools", "metrics", "-m", "127.0.0.1:0", "-a", nats_url])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the metrics tool starts"),
        );
        // Its first line names the bound address; it is printed once it has subscribed.
        let stdout = child.stdout.take().expect("stdout");
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
        MetricsProcess { child, address }
    }

    /// SIGTERM, and a clean exit.
    pub(crate) fn stop(mut self) {
        // SAFETY: kill(2) on our own child; no memory is involved.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0);
        let status = self.child.wait().expect("the tool exits");
        assert!(status.success(), "{status:?}");
    }
}

/// Replays `recording` into a fresh metrics tool; the exposition once every event is
/// counted, the tool and its server.
async fn replayed(recording: &str) -> (String, MetricsProcess, NatsServer) {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let tool = MetricsProcess::start(&nats.url());
    let summary =
        peerlab::record::inspect::summarize_file(Path::new(recording)).expect("the recording");
    // Replay leaves counter snapshots out.
    let stats: u64 = summary
        .subjects
        .iter()
        .filter(|s| s.subject.starts_with("peerlab.stats."))
        .map(|s| s.messages)
        .sum();
    let events = summary.messages - stats;
    let replay = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["replay", recording, "--speed", "0", "-a", &nats.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(replay.success(), "{replay:?}");

    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let (head, body) = get(&tool.address, "/metrics", "").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        let text = String::from_utf8(body).expect("utf-8");
        let counted = messages_counted(&text);
        if counted >= events {
            assert_eq!(counted, events, "every replayed event counted once");
            return (text, tool, nats);
        }
        assert!(
            Instant::now() < deadline,
            "{counted} of {events} events counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compares with the golden of `recording` (or writes it with `PEERLAB_BLESS=1`).
fn assert_golden(recording: &str, text: &str) {
    let name = Path::new(recording)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a file name");
    let golden_path = format!("tests/golden/metrics-{name}.prom");
    let actual = comparable(text);
    if std::env::var_os("PEERLAB_BLESS").is_some() {
        std::fs::write(&golden_path, &actual).expect("write the golden");
    }
    let golden = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|e| panic!("{golden_path}: {e} (PEERLAB_BLESS=1 writes it)"));
    assert_eq!(
        actual, golden,
        "the metrics after replaying {recording} differ from {golden_path}; if the change is \
         intended, rerun with PEERLAB_BLESS=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_extractor_sample_gives_its_golden_metrics() {
    let recording = "recordings/observer-sample.mcap";
    let (text, tool, _nats) = replayed(recording).await;
    // Values anyone can check against `peerlab inspect` of the recording.
    assert!(text.contains("\npeerobserver_mempool_added 7\n"), "{text}");
    assert!(text.contains("\npeerobserver_log_block_connected_events 214\n"));
    assert!(text.contains("\npeerobserver_log_block_checked_events 107\n"));
    assert!(text.contains("\npeerobserver_p2pextractor_invs_messages 7\n"));
    assert!(text.contains("\npeerobserver_rpc_peer_info_num_peers "));
    assert_golden(recording, &text);
    tool.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_sample_gives_its_golden_metrics() {
    let recording = "recordings/rehearsal-sample.mcap";
    let (text, tool, _nats) = replayed(recording).await;
    // The rehearsal's peer 0 sent 30 transactions, all added to the mempool.
    assert!(text.contains("\npeerobserver_mempool_added 30\n"), "{text}");
    assert_golden(recording, &text);
    tool.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_sample_gives_the_golden_metrics() {
    let recording = "recordings/regtest-sample.mcap";
    let (text, tool, _nats) = replayed(recording).await;
    // Counted again here, straight from the file, and compared series by series.
    for (series, value) in independent_counts(recording) {
        let line = format!("\n{series} {value}\n");
        assert!(text.contains(&line), "expected `{series} {value}`:\n{text}");
    }
    assert_golden(recording, &text);

    // Any path answers, and gzip is served when accepted.
    let (head, body) = get(
        &tool.address,
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
    tool.stop();
}

/// Series values computed from the recording without the metrics tool: message counts
/// and bytes per (command, connection type, direction), the latest block height, inbound
/// connections (count and the latest `existing_connections`), mempool additions.
fn independent_counts(recording: &str) -> Vec<(String, u64)> {
    use peerlab::event::proto::ebpf_extractor::connection::connection_event::Event as Conn;
    use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
    use peerlab::event::proto::ebpf_extractor::mempool::mempool_event::Event as Mempool;
    use peerlab::event::proto::ebpf_extractor::validation::validation_event::Event as Validation;
    use peerlab::event::proto::event::event::PeerObserverEvent;
    use prost::Message as _;
    use std::collections::BTreeMap;

    let mut messages: BTreeMap<(String, i32, bool), (u64, u64)> = BTreeMap::new();
    let (mut height, mut inbound, mut inbound_current, mut added) = (0i64, 0u64, 0u64, 0u64);
    let source = peerlab::record::RecordingSource::open(Path::new(recording)).expect("open");
    for message in source {
        let message = message.expect("a complete recording");
        if message.subject.starts_with("peerlab.") {
            continue;
        }
        let event = peerlab::event::Event::decode(message.data.as_slice()).expect("an event");
        let Some(PeerObserverEvent::EbpfExtractor(ebpf)) = event.peer_observer_event else {
            continue;
        };
        match ebpf.ebpf_event {
            Some(EbpfEvent::Message(m)) => {
                let entry = messages
                    .entry((m.meta.command.clone(), m.meta.conn_type, m.meta.inbound))
                    .or_default();
                entry.0 += 1;
                entry.1 += m.meta.size;
            }
            Some(EbpfEvent::Validation(v)) => {
                if let Some(Validation::BlockConnected(b)) = v.event {
                    height = i64::from(b.height);
                }
            }
            Some(EbpfEvent::Connection(c)) => {
                if let Some(Conn::Inbound(i)) = c.event {
                    inbound += 1;
                    inbound_current = i.existing_connections;
                }
            }
            Some(EbpfEvent::Mempool(m)) => {
                if let Some(Mempool::Added(_)) = m.event {
                    added += 1;
                }
            }
            _ => {}
        }
    }
    let mut expected = vec![
        (
            "peerobserver_validation_block_connected_latest_height".to_string(),
            u64::try_from(height).expect("a height"),
        ),
        ("peerobserver_conn_inbound".to_string(), inbound),
        (
            "peerobserver_conn_inbound_current".to_string(),
            inbound_current,
        ),
        ("peerobserver_mempool_added".to_string(), added),
    ];
    for ((command, conn_type, inbound), (count, bytes)) in messages {
        let labels = format!(
            "{{connection_type=\"{conn_type}\",direction=\"{}\",message=\"{command}\"}}",
            if inbound { "inbound" } else { "outbound" }
        );
        expected.push((format!("peerobserver_p2p_message_count{labels}"), count));
        expected.push((format!("peerobserver_p2p_message_bytes{labels}"), bytes));
    }
    assert!(
        expected.len() > 10,
        "the sample has messages of several kinds"
    );
    expected
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
