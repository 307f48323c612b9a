//! Foxglove's MCAP reader reads peerlab's recordings in both layouts.
//!
//! `@mcap/core` is the TypeScript library Foxglove (and its fork Lichtblick) opens MCAP files
//! with; these tests run it under Node.js on files written by peerlab's writer. A viewer
//! takes a file with chunk indexes through the indexed reader (seeking, time windows) and
//! falls back to the stream reader when there are none, so:
//! - the default, compact layout must offer no chunk index (the indexed reader refuses chunk
//!   indexes without message indexes) and stream in full through the stream reader;
//! - the indexed layout (`record --indexed`) must read in full and by time window through the
//!   indexed reader.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use peerlab::record::{read_recording, Layout, RecordedMessage, RecordingWriter};
use serde_json::Value;

use crate::common::node_packages::{node, node_modules, Package};

/// `@mcap/core` as Foxglove uses it, its dependencies, and a zstd decoder.
const PACKAGES: &[Package] = &[
    Package {
        name: "@mcap/core",
        version: "2.2.2",
        sha512: "W4NFiyqQlJsNjw8JxAAQ872u0xLWJy0GFC3YFm8bTLbNs+HdDWe8DwBqznr0MGYpWtw+AX8XzHWB5Y9rLEGJJg==",
    },
    Package {
        name: "@foxglove/crc",
        version: "0.0.3",
        sha512: "DjIZsnL3CyP/yQ/vUYA9cjrD0a/8YXejI5ZmsaOiT16cLfZcTwaCxIN01/ys4jsy+dZCQ/9DnWFn7AEFbiMDaA==",
    },
    Package {
        name: "heap-js",
        version: "2.7.1",
        sha512: "EQfezRg0NCZGNlhlDR3Evrw1FVL2G3LhU7EgPoxufQKruNBSYA8MiRPHeWbU+36o+Fhel0wMwM+sLEiBAlNLJA==",
    },
    Package {
        name: "tslib",
        version: "2.9.1",
        sha512: "a4Ux9VKuIMHsOS7ENbEq6hK2ZGYIT27Rtl0E4eD9KqwxhKiQeMZE/9xb3IdYwWaSOyIBQLExhQgXDTYoiCxnWA==",
    },
    Package {
        name: "fzstd",
        version: "0.1.1",
        sha512: "dkuVSOKKwh3eas5VkJy1AW1vFpet8TA/fGmVA5krThl8YcOVE/8ZIoEA1+U1vEn5ckxxhLirSdY837azmbaNHA==",
    },
];

/// Reads a file with `@mcap/core` and prints what it saw as JSON. Modes: `stream` (the
/// stream reader), `probe` (open with the indexed reader only), `indexed [START END]`.
const READER_SCRIPT: &str = r#"
const { McapIndexedReader, McapStreamReader } = require("@mcap/core");
const fzstd = require("fzstd");
const fs = require("fs");
const [file, mode, start, end] = process.argv.slice(2);
const bytes = fs.readFileSync(file);
const decompressHandlers = {
  zstd: (buffer, size) => fzstd.decompress(buffer, new Uint8Array(Number(size))),
};
const seen = { count: 0, bytes: 0, topics: {}, first: null, last: null, chunkIndexes: null, error: null };
function note(topic, message) {
  seen.topics[topic] = (seen.topics[topic] || 0) + 1;
  seen.count += 1;
  seen.bytes += message.data.length;
  const time = message.logTime.toString();
  if (seen.first === null) seen.first = time;
  seen.last = time;
}
async function main() {
  if (mode === "stream") {
    const reader = new McapStreamReader({ decompressHandlers });
    reader.append(bytes);
    const topics = new Map();
    let record;
    while ((record = reader.nextRecord())) {
      if (record.type === "Channel") topics.set(record.id, record.topic);
      if (record.type === "Message") note(topics.get(record.channelId), record);
    }
    if (!reader.done()) throw new Error("the stream reader stopped before the end");
  } else {
    const readable = {
      size: async () => BigInt(bytes.length),
      read: async (offset, length) => bytes.subarray(Number(offset), Number(offset + length)),
    };
    let reader;
    try {
      reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
    } catch (error) {
      seen.error = String(error);
    }
    if (reader) {
      seen.chunkIndexes = reader.chunkIndexes.length;
      if (mode === "indexed") {
        const window = {};
        if (start) window.startTime = BigInt(start);
        if (end) window.endTime = BigInt(end);
        for await (const message of reader.readMessages(window)) {
          note(reader.channelsById.get(message.channelId).topic, message);
        }
      }
    }
  }
  console.log(JSON.stringify(seen));
}
main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
"#;

/// 1 ms between messages.
const T0: u64 = 1_795_000_000_000_000_000;
const STEP: u64 = 1_000_000;

/// The committed sample's events 80 times over, 1 ms apart: about 21,000 messages, more than
/// one 1 MiB chunk.
fn messages() -> Vec<RecordedMessage> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/regtest-sample.mcap");
    let events = read_recording(&sample).expect("read the sample").messages;
    (0..80)
        .flat_map(|_| events.iter().cloned())
        .enumerate()
        .map(|(i, message)| RecordedMessage {
            log_time: T0 + i as u64 * STEP,
            publish_time: T0 + i as u64 * STEP,
            ..message
        })
        .collect()
}

fn write(path: &Path, layout: Layout, messages: &[RecordedMessage]) {
    let mut writer = RecordingWriter::create_with(path, &BTreeMap::new(), layout).expect("create");
    for m in messages {
        writer
            .write(&m.subject, m.log_time, m.publish_time, &m.data)
            .expect("write");
    }
    writer.finish().expect("finish");
}

fn read_with_foxglove(file: &Path, args: &[&str]) -> Value {
    let modules = node_modules("mcap-core-2.2.2", PACKAGES);
    let dir = tempfile::tempdir().expect("temporary directory");
    let script = dir.path().join("read.js");
    std::fs::write(&script, READER_SCRIPT).expect("write the script");
    let output = Command::new(node())
        .arg(&script)
        .arg(file)
        .args(args)
        .env("NODE_PATH", &modules)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "@mcap/core failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

/// What a reader should report for `messages`: count, payload bytes and count per subject.
fn expected(messages: &[&RecordedMessage]) -> (u64, u64, BTreeMap<String, u64>) {
    let mut topics = BTreeMap::new();
    for m in messages {
        *topics.entry(m.subject.to_string()).or_insert(0) += 1;
    }
    let bytes = messages.iter().map(|m| m.data.len() as u64).sum();
    (messages.len() as u64, bytes, topics)
}

fn seen(report: &Value) -> (u64, u64, BTreeMap<String, u64>) {
    let topics = report["topics"]
        .as_object()
        .expect("topics")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect();
    (
        report["count"].as_u64().expect("count"),
        report["bytes"].as_u64().expect("bytes"),
        topics,
    )
}

#[test]
fn foxglove_streams_a_compact_recording_and_finds_no_index_to_trip_on() {
    let messages = messages();
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("compact.mcap");
    write(&file, Layout::Compact, &messages);

    let probe = read_with_foxglove(&file, &["probe"]);
    // Foxglove takes the indexed path only when a file has chunk indexes; here it must not.
    assert!(
        probe["error"].is_string() || probe["chunkIndexes"] == 0,
        "a compact file must offer no chunk index: {probe}"
    );

    let report = read_with_foxglove(&file, &["stream"]);
    let all: Vec<_> = messages.iter().collect();
    assert_eq!(seen(&report), expected(&all), "stream reader: {report}");
    assert_eq!(report["first"], T0.to_string());

    // peerlab's own reader streams the same file, every message in order.
    let ours = read_recording(&file).expect("read back");
    assert_eq!(ours.messages.len(), messages.len());
    assert!(ours
        .messages
        .iter()
        .zip(&messages)
        .all(|(a, b)| a.data == b.data));
}

#[test]
fn foxglove_seeks_an_indexed_recording_by_time_window() {
    let messages = messages();
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("indexed.mcap");
    write(&file, Layout::Indexed, &messages);

    let report = read_with_foxglove(&file, &["indexed"]);
    assert!(
        report["chunkIndexes"].as_u64().expect("chunk indexes") >= 2,
        "{report}"
    );
    let all: Vec<_> = messages.iter().collect();
    assert_eq!(seen(&report), expected(&all), "indexed reader: {report}");

    // Seconds 5 to 12, both ends included as @mcap/core defines its window.
    let (start, end) = (T0 + 5_000 * STEP, T0 + 12_000 * STEP);
    let window = read_with_foxglove(&file, &["indexed", &start.to_string(), &end.to_string()]);
    let inside: Vec<_> = messages
        .iter()
        .filter(|m| (start..=end).contains(&m.log_time))
        .collect();
    assert_eq!(inside.len(), 7_001);
    assert_eq!(seen(&window), expected(&inside), "time window: {window}");
    assert_eq!(window["first"], start.to_string());
    assert_eq!(window["last"], end.to_string());
}
