//! Recording files end to end: what `RecordingWriter` writes reads back exactly, other MCAP
//! readers accept it with nothing but its own descriptors, `peerlab inspect` / `peerlab cat`
//! report it correctly, and damaged files give errors that name the file, never a panic and
//! never a message that was not written.

use crate::common::{run_peerlab as peerlab, stdout_of};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use peerlab::event::proto::bitcoin_primitives::ConnType;
use peerlab::event::proto::ebpf_extractor::{
    connection, ebpf::EbpfEvent, mempool, message, validation, Ebpf,
};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::{Event, DESCRIPTOR_SET};
use peerlab::record::{read_recording, Layout, RecordedMessage, RecordingError, RecordingWriter};
use proptest::prelude::*;
use prost::Message as _;
use serde_json::Value;

/// 2026-01-01T00:00:00Z in ns.
const T0: u64 = 1_767_225_600_000_000_000;
const STATS: &str = "peerlab.stats.ebpf-extractor";

// ---------------------------------------------------------------------------------------
// Events and recordings

fn wrap(seq: u64, body: EbpfEvent) -> Event {
    Event {
        timestamp: T0 / 1_000_000 + seq * 250,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(body),
        })),
    }
}

fn meta(addr: &str, command: &str) -> message::Metadata {
    message::Metadata {
        peer_id: 7,
        addr: addr.to_string(),
        conn_type: ConnType::Inbound as i32,
        command: command.to_string(),
        inbound: true,
        size: 8,
    }
}

fn ping(seq: u64, addr: &str) -> Event {
    wrap(
        seq,
        EbpfEvent::Message(message::MessageEvent {
            meta: meta(addr, "ping"),
            msg: Some(message::message_event::Msg::Ping(message::Ping {
                value: seq,
            })),
        }),
    )
}

fn verack(seq: u64, addr: &str) -> Event {
    wrap(
        seq,
        EbpfEvent::Message(message::MessageEvent {
            meta: meta(addr, "verack"),
            msg: Some(message::message_event::Msg::Verack(true)),
        }),
    )
}

fn inbound(seq: u64, addr: &str) -> Event {
    wrap(
        seq,
        EbpfEvent::Connection(connection::ConnectionEvent {
            event: Some(connection::connection_event::Event::Inbound(
                connection::InboundConnection {
                    conn: connection::Connection {
                        peer_id: seq,
                        addr: addr.to_string(),
                        conn_type: ConnType::Inbound as i32,
                        network: 1,
                    },
                    existing_connections: 3,
                },
            )),
        }),
    )
}

fn added(seq: u64) -> Event {
    wrap(
        seq,
        EbpfEvent::Mempool(mempool::MempoolEvent {
            event: Some(mempool::mempool_event::Event::Added(mempool::Added {
                txid: vec![seq as u8; 32],
                vsize: 141,
                fee: 500,
            })),
        }),
    )
}

fn block(seq: u64, height: i32) -> Event {
    wrap(
        seq,
        EbpfEvent::Validation(validation::ValidationEvent {
            event: Some(validation::validation_event::Event::BlockConnected(
                validation::BlockConnected {
                    hash: vec![0xab; 32],
                    height,
                    transactions: 1,
                    inputs: 0,
                    sigops: 0,
                    connection_time: 10,
                },
            )),
        }),
    )
}

fn stats_snapshot(dropped_in_kernel: u64, publish_dropped: u64) -> Vec<u8> {
    serde_json::json!({
        "traced_pid": 42,
        "records": 100,
        "malformed": 0,
        "published": 100 - publish_dropped,
        "publish_dropped": publish_dropped,
        "dropped_in_kernel": dropped_in_kernel,
        "probes": {
            "net:inbound_message": {"emitted": 90, "dropped": dropped_in_kernel},
            "mempool:added": {"emitted": 10, "dropped": 0},
        },
    })
    .to_string()
    .into_bytes()
}

/// What a test writes: subject and payload, timed 250 ms apart from [`T0`].
fn messages(items: Vec<(&str, Vec<u8>)>) -> Vec<RecordedMessage> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, (subject, data))| {
            let log_time = T0 + i as u64 * 250_000_000 + 1234;
            let publish_time = match Event::decode(data.as_slice()) {
                Ok(event) if subject != STATS => event.timestamp * 1_000_000,
                _ => log_time,
            };
            RecordedMessage {
                subject: Arc::from(subject),
                log_time,
                publish_time,
                data,
                // The recorder's writer leaves the MCAP sequence at 0 (the position says it).
                sequence: 0,
            }
        })
        .collect()
}

/// 17 messages: 10 P2P messages (9 pings, 1 verack) from 3 peers (6/3/1), 2 inbound
/// connections, 2 mempool additions, 1 block, 2 stats snapshots (the last with drops).
fn sample() -> Vec<RecordedMessage> {
    let (a, b, c) = ("10.0.0.1:8333", "10.0.0.2:18444", "[2001:db8::1]:8333");
    let e = |event: Event| event.encode_to_vec();
    messages(vec![
        ("netconn", e(inbound(0, a))),
        ("netmsg", e(verack(1, c))),
        ("netmsg", e(ping(2, a))),
        ("netmsg", e(ping(3, b))),
        (STATS, stats_snapshot(0, 0)),
        ("mempool", e(added(5))),
        ("netmsg", e(ping(6, a))),
        ("netconn", e(inbound(7, b))),
        ("netmsg", e(ping(8, a))),
        ("validation", e(block(9, 101))),
        ("netmsg", e(ping(10, b))),
        ("mempool", e(added(11))),
        ("netmsg", e(ping(12, a))),
        ("netmsg", e(ping(13, b))),
        (STATS, stats_snapshot(3, 1)),
        ("netmsg", e(ping(15, a))),
        ("netmsg", e(ping(16, a))),
    ])
}

fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("peerlab_version".to_string(), "0.1.0".to_string()),
        ("node".to_string(), "honey-1".to_string()),
        ("subject_scheme".to_string(), "flat".to_string()),
        (
            "arguments".to_string(),
            "peerlab record -o x.mcap".to_string(),
        ),
    ])
}

/// Writes `written` to `path`, ending a chunk after every `per_chunk` messages.
fn write_recording(path: &Path, written: &[RecordedMessage], per_chunk: usize) {
    write_recording_with(path, written, per_chunk, Layout::default());
}

fn write_recording_with(
    path: &Path,
    written: &[RecordedMessage],
    per_chunk: usize,
    layout: Layout,
) {
    let mut writer = RecordingWriter::create_with(path, &metadata(), layout).expect("create");
    for (i, m) in written.iter().enumerate() {
        writer
            .write(&m.subject, m.log_time, m.publish_time, &m.data)
            .expect("write");
        if (i + 1) % per_chunk == 0 {
            writer.flush().expect("flush");
        }
    }
    let stats = writer.finish().expect("finish");
    assert_eq!(stats.messages, written.len() as u64);
}

/// Where each top-level Chunk record (opcode 0x06) holding messages starts and how long it
/// is, found by walking the records after the magic (a compact file has no chunk index to
/// say so). A chunk's body starts with its messages' start and end times; a chunk with only
/// the schema has 0 for both.
fn top_level_chunks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 9 <= bytes.len() {
        let opcode = bytes[at];
        let length = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().expect("8 bytes"));
        let record = 9 + usize::try_from(length).expect("length");
        let end_time = bytes
            .get(at + 17..at + 25)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        if opcode == 0x06 && end_time != 0 {
            chunks.push((at, record));
        }
        if opcode == 0x02 {
            break; // Footer.
        }
        at += record;
    }
    chunks
}

fn sample_file(dir: &Path) -> (PathBuf, Vec<RecordedMessage>) {
    let path = dir.join("sample.mcap");
    let written = sample();
    write_recording(&path, &written, 4);
    (path, written)
}

/// The one `error:` line of a failed command.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "command should fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    errors[0].to_string()
}

// ---------------------------------------------------------------------------------------
// a. Round trip, inspect, cat

#[test]
fn read_back_equals_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let recording = read_recording(&path).expect("read");
    assert_eq!(recording.messages, written);
    assert_eq!(recording.metadata, metadata());
    assert_eq!(recording.truncated, None);
    assert_eq!(recording.descriptor_set, DESCRIPTOR_SET);
    assert_eq!(recording.path, path);
    assert_eq!(
        recording.file_bytes,
        std::fs::metadata(&path).expect("stat").len()
    );
}

#[test]
fn summarize_counts_the_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let summary = peerlab::record::inspect::summarize(&read_recording(&path).expect("read"));
    assert_eq!(summary.messages, written.len() as u64);
    assert_eq!(summary.start_ns, Some(written[0].log_time));
    assert_eq!(summary.end_ns, Some(written[16].log_time));
    assert_eq!(summary.start.as_deref(), Some("2026-01-01T00:00:00.000Z"));
    assert_eq!(summary.end.as_deref(), Some("2026-01-01T00:00:04.000Z"));
    assert!((summary.duration_s - 4.0).abs() < 1e-9);
    assert!((summary.rate_per_s.expect("rate") - 17.0 / 4.0).abs() < 1e-9);
    assert_eq!(
        summary.payload_bytes,
        written.iter().map(|m| m.data.len() as u64).sum::<u64>()
    );
}

#[test]
fn inspect_json_reports_subjects_kinds_peers_and_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let json: Value = serde_json::from_str(&stdout_of(&peerlab(&[
        "inspect",
        path.to_str().expect("utf-8 path"),
        "--json",
    ])))
    .expect("inspect --json prints JSON");

    assert_eq!(json["file"], path.to_str().expect("utf-8"));
    assert_eq!(
        json["file_bytes"],
        std::fs::metadata(&path).expect("stat").len()
    );
    assert_eq!(json["truncated"], Value::Null);
    assert_eq!(json["metadata"]["node"], "honey-1");
    assert_eq!(json["metadata"]["peerlab_version"], "0.1.0");
    assert_eq!(json["messages"], 17);
    assert_eq!(json["undecodable_events"], 0);
    assert_eq!(json["undecodable_stats"], 0);
    assert_eq!(json["start_ns"], written[0].log_time);

    let subjects: BTreeMap<String, (u64, u64)> = json["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| {
            let name = s["subject"].as_str().expect("name").to_string();
            (
                name,
                (
                    s["messages"].as_u64().expect("n"),
                    s["bytes"].as_u64().expect("b"),
                ),
            )
        })
        .collect();
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for m in &written {
        let entry = expected.entry(m.subject.to_string()).or_default();
        entry.0 += 1;
        entry.1 += m.data.len() as u64;
    }
    assert_eq!(subjects, expected);
    assert_eq!(subjects["netmsg"].0, 10);
    assert_eq!(json["subjects"][0]["subject"], "netmsg", "sorted by count");
    assert!((json["subjects"][0]["rate_per_s"].as_f64().expect("rate") - 10.0 / 4.0).abs() < 1e-9);

    let kinds: BTreeMap<String, u64> = json["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().expect("kind").to_string(),
                k["messages"].as_u64().expect("n"),
            )
        })
        .collect();
    let expected_kinds = BTreeMap::from([
        ("message.ping".to_string(), 9),
        ("message.verack".to_string(), 1),
        ("connection.inbound".to_string(), 2),
        ("mempool.added".to_string(), 2),
        ("validation.block_connected".to_string(), 1),
    ]);
    assert_eq!(kinds, expected_kinds);

    assert_eq!(json["distinct_peers"], 3);
    assert_eq!(
        json["top_peers"],
        serde_json::json!([
            {"addr": "10.0.0.1:8333", "messages": 6},
            {"addr": "10.0.0.2:18444", "messages": 3},
            {"addr": "[2001:db8::1]:8333", "messages": 1},
        ])
    );

    let drops = json["drops"].as_array().expect("drops");
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0]["subject"], STATS);
    assert_eq!(drops[0]["snapshots"], 2);
    assert_eq!(drops[0]["dropped_in_kernel"], 3, "the last snapshot counts");
    assert_eq!(drops[0]["publish_dropped"], 1);
    assert_eq!(
        drops[0]["dropped_by_probe"],
        serde_json::json!({"net:inbound_message": 3})
    );
}

#[test]
fn inspect_text_summarises_for_people() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = sample_file(dir.path());
    let text = stdout_of(&peerlab(&["inspect", path.to_str().expect("utf-8")]));
    for needle in [
        "sample.mcap",
        "complete:      yes",
        "node:          honey-1",
        "2026-01-01T00:00:00.000Z",
        "duration:      4.000 s",
        "messages:      17 (4.2/s)",
        "message.ping",
        "validation.block_connected",
        "10.0.0.1:8333",
        "dropped_in_kernel=3 publish_dropped=1",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }

    // Without stats snapshots the summary says so.
    let no_stats: Vec<_> = sample()
        .into_iter()
        .filter(|m| &*m.subject != STATS)
        .collect();
    let path = dir.path().join("no-stats.mcap");
    write_recording(&path, &no_stats, 100);
    let text = stdout_of(&peerlab(&["inspect", path.to_str().expect("utf-8")]));
    assert!(text.contains("no drop counters recorded"), "{text}");
}

#[test]
fn cat_prints_one_json_line_per_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let out = stdout_of(&peerlab(&["cat", path.to_str().expect("utf-8")]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), written.len());
    for (line, m) in lines.iter().zip(&written) {
        let json: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(json["subject"], &*m.subject);
        assert_eq!(json["log_time"], m.log_time);
        assert_eq!(json["publish_time"], m.publish_time);
        if &*m.subject == STATS {
            assert!(json.get("event").is_none(), "{line}");
            let snapshot: Value = serde_json::from_slice(&m.data).expect("json");
            assert_eq!(json["stats"], snapshot);
        } else {
            assert!(json.get("stats").is_none(), "{line}");
            let event = Event::decode(m.data.as_slice()).expect("event");
            assert_eq!(json["event"]["timestamp"], event.timestamp, "{line}");
            assert!(json["event"]["ebpf_extractor"].is_object(), "{line}");
        }
    }
    assert!(
        lines.iter().all(|l| l.starts_with(r#"{"subject":"#)),
        "subject first"
    );
    assert!(lines[2].contains(r#""ping":{"value":2}"#), "{}", lines[2]);
}

#[test]
fn undecodable_events_are_counted_and_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("junk.mcap");
    let written = messages(vec![
        ("netmsg", ping(0, "10.0.0.1:8333").encode_to_vec()),
        ("netmsg", vec![0xff, 0xff, 0xff]),
        (STATS, b"not json".to_vec()),
    ]);
    write_recording(&path, &written, 100);
    let p = path.to_str().expect("utf-8");
    let json: Value =
        serde_json::from_str(&stdout_of(&peerlab(&["inspect", p, "--json"]))).expect("json");
    assert_eq!(json["undecodable_events"], 1);
    assert_eq!(json["undecodable_stats"], 1);
    assert_eq!(
        json["kinds"],
        serde_json::json!([{"kind": "message.ping", "messages": 1}])
    );
    assert_eq!(json["drops"], serde_json::json!([]));

    let out = stdout_of(&peerlab(&["cat", p]));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["event"]["bytes"], 3);
    assert!(lines[1]["event"]["undecodable"].is_string(), "{}", lines[1]);
    assert!(lines[2]["stats"]["undecodable"].is_string(), "{}", lines[2]);
}

#[test]
fn cat_stops_quietly_when_stdout_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.mcap");
    // Far more output than a pipe buffers.
    let written = messages(
        (0..20_000)
            .map(|i| ("netmsg", ping(i, "10.0.0.1:8333").encode_to_vec()))
            .collect(),
    );
    write_recording(&path, &written, 5_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["cat", path.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cat");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    serde_json::from_str::<Value>(&first).expect("first line is JSON");
    drop(stdout);
    let output = child.wait_with_output().expect("cat exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "status {:?}, stderr:\n{stderr}",
        output.status
    );
    assert!(stderr.trim().is_empty(), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------
// b. Other MCAP readers

#[test]
fn the_mcap_crate_reads_the_file_with_only_its_own_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let bytes = std::fs::read(&path).expect("read");

    let summary = mcap::read::Summary::read(&bytes)
        .expect("summary parses")
        .expect("file has a summary");
    // The default layout has no indexes; the chunks are there all the same.
    assert!(summary.chunk_indexes.is_empty());
    assert_eq!(
        top_level_chunks(&bytes).len(),
        written.len().div_ceil(4),
        "one chunk of messages per flush"
    );
    // With `--indexed`: a chunk index per chunk, each with its message indexes.
    let indexed = dir.path().join("indexed.mcap");
    write_recording_with(&indexed, &written, 4, Layout::Indexed);
    let indexed_bytes = std::fs::read(&indexed).expect("read");
    let indexed_summary = mcap::read::Summary::read(&indexed_bytes)
        .expect("summary parses")
        .expect("file has a summary");
    assert_eq!(
        indexed_summary
            .chunk_indexes
            .iter()
            .filter(|c| !c.message_index_offsets.is_empty())
            .count(),
        written.len().div_ceil(4),
        "one indexed chunk of messages per flush"
    );
    let stats = summary.stats.as_ref().expect("statistics");
    assert_eq!(stats.message_count, written.len() as u64);
    assert_eq!(stats.message_start_time, written[0].log_time);
    assert_eq!(stats.message_end_time, written[16].log_time);
    assert_eq!(summary.schemas.len(), 1);
    let schema = summary.schemas.values().next().expect("schema");
    assert_eq!(schema.name, "event.Event");
    assert_eq!(schema.encoding, "protobuf");
    let topics: HashSet<&str> = summary
        .channels
        .values()
        .map(|c| c.topic.as_str())
        .collect();
    let subjects: HashSet<&str> = written.iter().map(|m| &*m.subject).collect();
    assert_eq!(topics, subjects);
    for channel in summary.channels.values() {
        if peerlab::record::format::is_stats_subject(&channel.topic) {
            // Counters are JSON on a schemaless channel, so MCAP tools do not misdecode them.
            assert_eq!(channel.message_encoding, "json");
            assert!(channel.schema.is_none());
        } else {
            assert_eq!(channel.message_encoding, "protobuf");
            assert_eq!(channel.schema.as_ref().expect("schema").name, "event.Event");
        }
    }

    let pool = prost_reflect::DescriptorPool::decode(schema.data.as_ref())
        .expect("descriptor set decodes");
    let descriptor = pool
        .get_message_by_name("event.Event")
        .expect("event.Event in the file's pool");
    let streamed: Vec<mcap::Message> = mcap::MessageStream::new(&bytes)
        .expect("stream")
        .collect::<Result<_, _>>()
        .expect("every message streams");
    assert_eq!(streamed.len(), written.len());
    for (message, original) in streamed.iter().zip(&written) {
        assert_eq!(message.channel.topic, &*original.subject);
        assert_eq!(message.log_time, original.log_time);
        assert_eq!(message.publish_time, original.publish_time);
        assert_eq!(message.data.as_ref(), original.data.as_slice());
        // The stats channel carries JSON; only event channels are checked against the schema.
        if message.channel.topic == STATS {
            continue;
        }
        let dynamic =
            prost_reflect::DynamicMessage::decode(descriptor.clone(), message.data.as_ref())
                .unwrap_or_else(|e| {
                    panic!("message on {} does not decode: {e}", message.channel.topic)
                });
        let via_file: Event = dynamic.transcode_to().expect("transcode");
        assert_eq!(
            via_file,
            Event::decode(original.data.as_slice()).expect("decode")
        );
    }
}

// ---------------------------------------------------------------------------------------
// c. Bad files

#[test]
fn empty_and_non_mcap_files_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.mcap");
    std::fs::write(&empty, b"").expect("write");
    let garbage = dir.path().join("notes.txt");
    std::fs::write(&garbage, b"these are my notes, not a recording\n").expect("write");
    let missing = dir.path().join("missing.mcap");

    let error = read_recording(&empty).expect_err("empty file");
    assert!(matches!(error, RecordingError::Empty { .. }), "{error:?}");
    assert!(error.to_string().contains("empty.mcap"), "{error}");
    let error = read_recording(&garbage).expect_err("not MCAP");
    assert!(matches!(error, RecordingError::NotMcap { .. }), "{error:?}");
    assert!(error.to_string().contains("notes.txt"), "{error}");
    let error = read_recording(&missing).expect_err("missing");
    assert!(matches!(error, RecordingError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.mcap"), "{error}");

    for (path, name) in [
        (&empty, "empty.mcap"),
        (&garbage, "notes.txt"),
        (&missing, "missing.mcap"),
    ] {
        let p = path.to_str().expect("utf-8");
        for args in [
            vec!["inspect", p],
            vec!["inspect", p, "--json"],
            vec!["cat", p],
        ] {
            let output = peerlab(&args);
            let line = error_line(&output);
            assert!(line.contains(name), "{args:?}: {line}");
            assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
        }
    }
}

#[test]
fn a_cut_at_every_97th_byte_yields_a_prefix_or_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let bytes = std::fs::read(&path).expect("read");
    let chunks = mcap::read::Summary::read(&bytes)
        .expect("summary")
        .expect("present")
        .chunk_indexes;
    let cut_path = dir.path().join("cut.mcap");
    let (mut ok, mut err) = (0, 0);
    for cut in (0..bytes.len()).step_by(97) {
        std::fs::write(&cut_path, &bytes[..cut]).expect("write");
        match read_recording(&cut_path) {
            Ok(recording) => {
                ok += 1;
                let truncation = recording
                    .truncated
                    .as_ref()
                    .unwrap_or_else(|| panic!("cut at {cut}: not flagged"));
                assert!(
                    truncation.offset <= cut as u64,
                    "cut at {cut}: {truncation:?}"
                );
                assert!(
                    written.starts_with(&recording.messages),
                    "cut at {cut}: messages are not a prefix of those written"
                );
                // Every message of a complete chunk is there (log times are distinct and
                // increasing, so a chunk's end time says how many messages precede its end).
                let complete_until = chunks
                    .iter()
                    .filter(|c| c.chunk_start_offset + c.chunk_length <= cut as u64)
                    .filter(|c| !c.message_index_offsets.is_empty())
                    .map(|c| c.message_end_time)
                    .max();
                let required = complete_until.map_or(0, |end| {
                    written.iter().filter(|m| m.log_time <= end).count()
                });
                assert!(
                    recording.messages.len() >= required,
                    "cut at {cut}: complete chunks hold {required} messages but only {} were read",
                    recording.messages.len()
                );
            }
            Err(error) => {
                err += 1;
                assert!(
                    error.to_string().contains("cut.mcap"),
                    "cut at {cut}: {error}"
                );
                assert!(
                    cut < 8,
                    "cut at {cut} (after the magic) should read as truncated: {error}"
                );
            }
        }
    }
    eprintln!(
        "{} cuts of a {}-byte file: {ok} truncated, {err} errors",
        ok + err,
        bytes.len()
    );
    assert!(ok > 10);
}

#[test]
fn inspect_and_cat_report_a_truncated_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, written) = sample_file(dir.path());
    let bytes = std::fs::read(&path).expect("read");
    // Cut inside the summary section: every message is there, the end is missing.
    let summary_start = bytes.len() - 200;
    std::fs::write(&path, &bytes[..summary_start]).expect("write");
    let p = path.to_str().expect("utf-8");

    let json: Value =
        serde_json::from_str(&stdout_of(&peerlab(&["inspect", p, "--json"]))).expect("json");
    let offset = json["truncated"]["offset"]
        .as_u64()
        .expect("truncation offset");
    assert!(offset <= summary_start as u64, "{json}");
    assert!(json["truncated"]["reason"].is_string(), "{json}");
    assert_eq!(json["messages"], written.len());

    let text = stdout_of(&peerlab(&["inspect", p]));
    assert!(
        text.contains(&format!("complete:      NO, truncated at offset {offset}")),
        "{text}"
    );

    let output = peerlab(&["cat", p]);
    assert_eq!(stdout_of(&output).lines().count(), written.len());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("truncated at offset") && stderr.contains("sample.mcap"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn a_recording_of_something_else_is_wrong_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("foo.mcap");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut writer = mcap::Writer::new(file).expect("writer");
        let schema = writer
            .add_schema("foo.Bar", "protobuf", b"not really")
            .expect("schema");
        let channel = writer
            .add_channel(schema, "/foo", "protobuf", &BTreeMap::new())
            .expect("channel");
        let header = mcap::records::MessageHeader {
            channel_id: channel,
            sequence: 1,
            log_time: 1,
            publish_time: 1,
        };
        writer
            .write_to_known_channel(&header, b"\x08\x01")
            .expect("message");
        writer.finish().expect("finish");
    }
    let error = read_recording(&path).expect_err("foreign schema");
    match &error {
        RecordingError::WrongSchema {
            name,
            encoding,
            path: p,
            offset,
        } => {
            assert_eq!(name, "foo.Bar");
            assert_eq!(encoding, "protobuf");
            assert_eq!(p, &path);
            assert!(*offset > 0);
        }
        other => panic!("expected WrongSchema, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("foo.mcap") && text.contains("foo.Bar"),
        "{text}"
    );

    let line = error_line(&peerlab(&["inspect", path.to_str().expect("utf-8")]));
    assert!(
        line.contains("foo.mcap") && line.contains("foo.Bar"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------
// d. Damage
//
// Each damaged file is read in a child process (this test binary, running only
// `child_reads_one_file`), so a reader that aborts (allocation failure) or panics fails the
// case with the damage that caused it instead of taking the whole test binary down.
//
// These tests guard two damage cases the reader must handle:
//
// 1: a corrupt zstd chunk must not make the reader trust a garbage record length (the
//   reader decompresses with a cap and checks the chunk CRC before walking its records);
// 2: a top-level MessageIndex, Schema or Channel record whose opcode becomes 0x05 must not
//   be read as an invented message (peerlab files keep every message inside chunks, and the
//   statistics' message count is checked).

/// Environment variable naming the file the child reads.
const CHILD_FILE: &str = "RECORDING_FILES_CHILD_READS";

/// The child side: reads the file named by [`CHILD_FILE`] and prints what it got.
#[test]
#[ignore = "helper: the damage tests run it in a child process"]
fn child_reads_one_file() {
    let Some(path) = std::env::var_os(CHILD_FILE) else {
        return;
    };
    match read_recording(Path::new(&path)) {
        Ok(recording) => {
            for m in &recording.messages {
                // Hex for both: a damaged file could hold any bytes.
                let subject = hex::encode(m.subject.as_bytes());
                println!("READ_MSG {subject} {}", hex::encode(&m.data));
            }
            println!("READ_OK {}", recording.messages.len());
        }
        Err(error) => println!("READ_ERR {}", error.to_string().replace('\n', " ")),
    }
}

/// What reading a file in a child process gave.
#[derive(Debug)]
enum Outcome {
    /// Messages as (subject, data).
    Read(Vec<Pair>),
    /// The error's text.
    Failed(String),
    /// The child died (abort, panic): its status and the end of its output.
    Crashed(String),
}

fn read_in_child(path: &Path) -> Outcome {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "recording_files::child_reads_one_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FILE, path)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut messages = Vec::new();
    // libtest prints `test child_reads_one_file ... ` without a newline before our output.
    for line in stdout
        .lines()
        .filter_map(|l| l.find("READ_").map(|i| &l[i..]))
    {
        if let Some(rest) = line.strip_prefix("READ_MSG ") {
            let (subject, data) = rest.split_once(' ').expect("subject and data");
            let subject = String::from_utf8(hex::decode(subject).expect("hex")).expect("UTF-8");
            messages.push((subject, hex::decode(data).expect("hex")));
        } else if let Some(error) = line.strip_prefix("READ_ERR ") {
            if output.status.success() {
                return Outcome::Failed(error.to_string());
            }
        } else if line.starts_with("READ_OK ") && output.status.success() {
            return Outcome::Read(messages);
        }
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| !l.trim().is_empty())
        .take(6)
        .collect();
    Outcome::Crashed(format!("{}: {}", output.status, tail.join(" | ")))
}

/// One change to a file.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR the byte at the index with a non-zero mask.
    Flip(prop::sample::Index, u8),
    /// Cut the file at the index.
    Truncate(prop::sample::Index),
    /// Insert bytes at the index.
    Insert(prop::sample::Index, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        2 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..48))
            .prop_map(|(at, garbage)| Damage::Insert(at, garbage)),
    ]
}

/// Applies `damage`; says what it did, with the offset.
fn apply(bytes: &mut Vec<u8>, damage: &Damage) -> String {
    match damage {
        Damage::Flip(at, mask) if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
            format!("byte {i} ^= {mask:#04x}")
        }
        Damage::Truncate(at) if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes.truncate(i);
            format!("cut at {i}")
        }
        Damage::Insert(at, garbage) => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, garbage.iter().copied());
            format!("{} bytes inserted at {i}", garbage.len())
        }
        _ => "nothing (empty file)".to_string(),
    }
}

/// (subject, data) of a message.
type Pair = (String, Vec<u8>);

/// The sample file's bytes and the (subject, data) pairs written to it (all distinct).
fn pristine() -> &'static (Vec<u8>, HashSet<Pair>) {
    static PRISTINE: OnceLock<(Vec<u8>, HashSet<Pair>)> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, written) = sample_file(dir.path());
        let count = written.len();
        let pairs: HashSet<_> = written
            .into_iter()
            .map(|m| (m.subject.to_string(), m.data))
            .collect();
        assert_eq!(pairs.len(), count, "every written message is distinct");
        (std::fs::read(path).expect("read"), pairs)
    })
}

/// Reads damaged bytes (in a child); what must hold whatever the damage: no crash, an
/// error that names the file, or only messages that were written.
fn check_damaged(bytes: &[u8], what: &str) -> Result<(), TestCaseError> {
    let (_, pairs) = pristine();
    let file = tempfile::Builder::new()
        .suffix(".mcap")
        .tempfile()
        .expect("tempfile");
    std::fs::write(file.path(), bytes).expect("write");
    match read_in_child(file.path()) {
        Outcome::Read(messages) => {
            prop_assert!(
                messages.len() <= pairs.len(),
                "{what}: {} messages",
                messages.len()
            );
            for (subject, data) in &messages {
                prop_assert!(
                    pairs.contains(&(subject.clone(), data.clone())),
                    "{what}: invented message on {subject}: {}",
                    hex::encode(data)
                );
            }
        }
        Outcome::Failed(error) => {
            let name = file
                .path()
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            prop_assert!(error.contains(&name), "{what}: {error}");
        }
        Outcome::Crashed(report) => prop_assert!(false, "{what}: the reader crashed: {report}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_files_never_crash_or_invent_messages(damages in prop::collection::vec(damage(), 1..4)) {
        let mut bytes = pristine().0.clone();
        let done: Vec<String> = damages.iter().map(|d| apply(&mut bytes, d)).collect();
        check_damaged(&bytes, &done.join(", then "))?;
    }
}

/// Offset and opcode of every top-level record of an intact file.
fn top_level_records(bytes: &[u8]) -> Vec<(usize, u8)> {
    let mut records = Vec::new();
    let mut at = 8;
    while at + 9 <= bytes.len() {
        let opcode = bytes[at];
        let len = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().expect("8 bytes"));
        records.push((at, opcode));
        if opcode == 0x02 {
            break; // footer
        }
        at += 9 + usize::try_from(len).expect("length");
    }
    records
}

#[test]
fn a_record_whose_opcode_becomes_message_is_not_read_as_a_message() {
    let original = &pristine().0;
    let records = top_level_records(original);
    assert!(records.len() > 20, "{records:?}");
    let mut failures = Vec::new();
    for (at, opcode) in records {
        let mut bytes = original.clone();
        bytes[at] = 0x05;
        if let Err(e) = check_damaged(&bytes, &format!("record {opcode:#04x} at {at} -> 0x05")) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_byte_of_a_corrupt_chunk_gives_an_error_not_a_crash() {
    let original = &pristine().0;
    let (start, length) = *top_level_chunks(original)
        .first()
        .expect("a chunk of messages");
    let end = start + length;
    let mut failures = Vec::new();
    for at in start..end {
        let mut bytes = original.clone();
        bytes[at] ^= 0xff;
        if let Err(e) = check_damaged(&bytes, &format!("byte {at} ^ 0xff")) {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} single-byte corruptions of the chunk at {start} failed:\n{}",
        failures.len(),
        end - start,
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// d. The committed recordings

/// Regression (issue 9.6): `recordings/regtest-sample.mcap` declared its JSON stats channel
/// as `event.Event`/protobuf, which Foxglove's reader rejects. Every committed recording is
/// read with the mcap crate's own reader, and every message decoded by what its channel
/// declares: protobuf with the schema's own descriptors, JSON as JSON; nothing else is
/// accepted.
///
/// `UPDATE_RECORDINGS=1 cargo test --test integration committed` first rewrites each file
/// through the current `RecordingWriter` (same messages, times, subjects and metadata).
#[test]
fn committed_recordings_decode_by_their_declared_schemas_with_the_mcap_crate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("recordings/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected the sample recordings, found {files:?}"
    );
    for path in &files {
        if std::env::var_os("UPDATE_RECORDINGS").is_some() {
            rewrite_with_current_writer(path);
        }
        let bytes = std::fs::read(path).expect("read");
        let mut checked = 0usize;
        for message in mcap::MessageStream::new(&bytes).expect("stream") {
            let message = message.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let channel = &message.channel;
            match (channel.message_encoding.as_str(), channel.schema.as_ref()) {
                ("protobuf", Some(schema)) if schema.encoding == "protobuf" => {
                    let pool = prost_reflect::DescriptorPool::decode(schema.data.as_ref())
                        .expect("the schema is a descriptor set");
                    let descriptor = pool
                        .get_message_by_name(&schema.name)
                        .unwrap_or_else(|| panic!("{} not in its own schema", schema.name));
                    prost_reflect::DynamicMessage::decode(descriptor, message.data.as_ref())
                        .unwrap_or_else(|e| {
                            panic!(
                                "{}: a message on {} does not decode as {}: {e}",
                                path.display(),
                                channel.topic,
                                schema.name
                            )
                        });
                }
                ("json", None) => {
                    serde_json::from_slice::<Value>(&message.data).unwrap_or_else(|e| {
                        panic!(
                            "{}: a message on {} is not JSON: {e}",
                            path.display(),
                            channel.topic
                        )
                    });
                }
                (encoding, schema) => panic!(
                    "{}: channel {} declares encoding {encoding:?} with schema {:?}, which no reader can decode",
                    path.display(),
                    channel.topic,
                    schema.map(|s| (&s.name, &s.encoding))
                ),
            }
            checked += 1;
        }
        assert!(checked > 0, "{} holds no message", path.display());
    }
}

/// Reads `path` with peerlab's reader and writes it again with the current writer.
fn rewrite_with_current_writer(path: &Path) {
    let recording = read_recording(path).expect("committed recording reads");
    assert!(
        recording.truncated.is_none(),
        "{} is truncated",
        path.display()
    );
    let temporary = path.with_extension("mcap.new");
    let mut writer = RecordingWriter::create(&temporary, &recording.metadata).expect("create");
    for message in &recording.messages {
        writer
            .write(
                &message.subject,
                message.log_time,
                message.publish_time,
                &message.data,
            )
            .expect("write");
    }
    writer.finish().expect("finish");
    std::fs::rename(&temporary, path).expect("replace the committed file");
}
