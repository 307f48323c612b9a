//! peer-observer archive files: what peerlab records as an archive replays into NATS byte for
//! byte; archives written by an independent spec-following writer (non-shortest varints,
//! unknown fields) read correctly; cut files keep every complete event and say where they
//! stop; bad input is a clear error, never a panic; `peerlab convert` round-trips MCAP ->
//! archive -> MCAP; `peerlab inspect` / `peerlab cat` take archives.

use crate::common;
use crate::common::{run_peerlab as peerlab, stdout_of};

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use peerlab::bus::{NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::proto::bitcoin_primitives::ConnType;
use peerlab::event::proto::ebpf_extractor::{
    connection, ebpf::EbpfEvent, mempool, message, validation, Ebpf,
};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::rpc_extractor;
use peerlab::event::{Event, EventKind};
use peerlab::record::archive::ArchiveOptions;
use peerlab::record::recorder::{RecordFormat, RecordOptions, Recorder};
use peerlab::record::replayer::{replay, ReplayOptions};
use peerlab::record::{read_recording, ArchiveReader, RecordingError};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;
use serde_json::Value;

/// 2026-01-01T00:00:00Z in ms.
const T0_MS: u64 = 1_767_225_600_000;

// ---------------------------------------------------------------------------------------
// Events

fn wrap(seq: u64, body: EbpfEvent) -> Event {
    Event {
        timestamp: T0_MS + seq * 250,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(body),
        })),
    }
}

fn ping(seq: u64) -> Event {
    wrap(
        seq,
        EbpfEvent::Message(message::MessageEvent {
            meta: message::Metadata {
                peer_id: 7,
                addr: "203.0.113.7:8333".into(),
                conn_type: ConnType::Inbound as i32,
                command: "ping".into(),
                inbound: true,
                size: 8,
            },
            msg: Some(message::message_event::Msg::Ping(message::Ping {
                value: seq,
            })),
        }),
    )
}

fn inbound(seq: u64) -> Event {
    wrap(
        seq,
        EbpfEvent::Connection(connection::ConnectionEvent {
            event: Some(connection::connection_event::Event::Inbound(
                connection::InboundConnection {
                    conn: connection::Connection {
                        peer_id: seq,
                        addr: "198.51.100.1:8333".into(),
                        conn_type: ConnType::Inbound as i32,
                        network: 1,
                    },
                    existing_connections: 3,
                },
            )),
        }),
    )
}

/// A mempool event with a txid from `noise` (so compressed archives are not tiny).
fn added(seq: u64, noise: &mut Lcg) -> Event {
    wrap(
        seq,
        EbpfEvent::Mempool(mempool::MempoolEvent {
            event: Some(mempool::mempool_event::Event::Added(mempool::Added {
                txid: noise.bytes(32),
                vsize: 141,
                fee: 500,
            })),
        }),
    )
}

fn block(seq: u64) -> Event {
    wrap(
        seq,
        EbpfEvent::Validation(validation::ValidationEvent {
            event: Some(validation::validation_event::Event::BlockConnected(
                validation::BlockConnected {
                    hash: vec![0xab; 32],
                    height: seq as i32,
                    transactions: 1,
                    inputs: 0,
                    sigops: 0,
                    connection_time: 10,
                },
            )),
        }),
    )
}

fn rpc(seq: u64) -> Event {
    Event {
        timestamp: T0_MS + seq * 250,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(rpc_extractor::Rpc {
            rpc_event: None,
        })),
    }
}

/// A deterministic generator (fixed seeds, no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// (subject, bytes) of an event; with `unknown`, a field 99 (varint 7) appended, which
/// readers must keep and skip.
fn encoded(event: &Event, unknown: bool) -> (String, Vec<u8>) {
    let kind = EventKind::of(event).expect("routable");
    let mut bytes = event.encode_to_vec();
    if unknown {
        // Key of field 99, wire type 0: 99 << 3 = 792 = 0x98 0x06; value 7.
        bytes.extend([0x98, 0x06, 0x07]);
    }
    (kind.subject().to_string(), bytes)
}

/// A mix of every ebpf subject and rpc, some with an unknown field.
fn sample_events(n: u64) -> Vec<(String, Vec<u8>)> {
    let mut noise = Lcg(42);
    (0..n)
        .map(|i| {
            let event = match i % 5 {
                0 => ping(i),
                1 => inbound(i),
                2 => added(i, &mut noise),
                3 => block(i),
                _ => rpc(i),
            };
            encoded(&event, i % 7 == 3)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// An archive writer that follows the spec on its own (none of peerlab's code)

/// Base-128 varint of `value` in at least `min_bytes` bytes (non-shortest when padded).
fn varint(mut value: u64, min_bytes: usize, out: &mut Vec<u8>) {
    let mut written = 0;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        written += 1;
        if value == 0 && written >= min_bytes {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// `ArchiveHeader{created, low_data}` by hand, with two unknown fields (15: varint,
/// 16: bytes) and `created` as a non-shortest varint.
fn spec_header(created: u64, low_data: Option<bool>) -> Vec<u8> {
    let mut h = Vec::new();
    h.push(0x08); // field 1, varint
    varint(created, 8, &mut h);
    h.extend([0x78, 0x2a]); // field 15, varint 42
    if let Some(low) = low_data {
        h.extend([0x10, u8::from(low)]); // field 2, varint
    }
    h.extend([0x82, 0x01, 3, b'a', b'b', b'c']); // field 16, length-delimited "abc"
    h
}

/// A spec archive; every `pad`-th frame gets a 3-byte (non-shortest) length prefix. Returns
/// the bytes and the offset of each event frame.
fn spec_archive(header: &[u8], events: &[Vec<u8>], pad: usize) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    varint(header.len() as u64, 2, &mut out);
    out.extend_from_slice(header);
    let mut offsets = Vec::new();
    for (i, event) in events.iter().enumerate() {
        offsets.push(out.len());
        let min = if pad > 0 && i % pad == 0 { 3 } else { 1 };
        varint(event.len() as u64, min, &mut out);
        out.extend_from_slice(event);
    }
    (out, offsets)
}

/// The complete event frames in `data` after the header, by the spec (own parser).
fn spec_complete_frames(data: &[u8]) -> usize {
    fn read_varint(data: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *data.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut at = 0;
    let mut frames = 0;
    loop {
        let Some(len) = read_varint(data, &mut at) else {
            return frames.max(1) - 1;
        };
        if at + len as usize > data.len() {
            return frames.max(1) - 1;
        }
        at += len as usize;
        frames += 1;
    }
}

fn read_all(path: &Path) -> (ArchiveReader, Vec<(String, Vec<u8>)>) {
    let mut reader = ArchiveReader::open(path).unwrap_or_else(|e| panic!("open: {e}"));
    let events = (&mut reader)
        .map(|m| {
            let m = m.unwrap_or_else(|e| panic!("read: {e}"));
            assert_eq!(m.log_time, m.publish_time);
            (m.subject.to_string(), m.data)
        })
        .collect();
    (reader, events)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------------------------------
// a. Recorded by peerlab from NATS, replayed into NATS byte for byte

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_recorded_from_nats_replays_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = sample_events(300);

    let nats_a = NatsServer::start(&common::nats_server()).expect("nats A");
    let options = RecordOptions {
        format: RecordFormat::Archive(ArchiveOptions::default()),
        ..RecordOptions::new(dir.path().join("archive"), vec!["test".into()])
    };
    // Subscribed (confirmed by the server) when connect returns: nothing published later
    // is lost.
    let recorder = Recorder::connect(
        &NatsOptions::local(nats_a.url()),
        SubjectScheme::Flat,
        &options,
    )
    .await
    .expect("recorder connects");
    let written = Arc::new(AtomicU64::new(0));
    let stop = Shutdown::new();
    let task = tokio::spawn(recorder.run(written.clone(), stop.clone()));
    let publisher = common::local_publisher(&nats_a.url()).await;
    for (subject, bytes) in &expected {
        assert!(publisher.publish_raw(subject, Bytes::from(bytes.clone())));
    }
    let bus = publisher.close(common::TIMEOUT).await;
    assert_eq!((bus.sent, bus.dropped()), (expected.len() as u64, 0));
    tokio::time::timeout(common::TIMEOUT, async {
        while written.load(Ordering::Relaxed) < expected.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the recorder writes every event");
    stop.cancel();
    let summary = task.await.expect("task").expect("recording succeeds");
    assert_eq!(summary.messages, expected.len() as u64);
    assert_eq!(summary.files.len(), 1, "{:?}", summary.files);
    let file = summary.files[0].clone();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    // archive.YYYYMMDD-HHMMSS-mmm.bin.zst
    assert!(
        name.len() == "archive.".len() + 19 + ".bin.zst".len()
            && name.starts_with("archive.20")
            && name.ends_with(".bin.zst"),
        "{name}"
    );

    let (reader, read) = read_all(&file);
    assert!(read == expected, "the archive holds the published events");
    assert!(reader.truncated().is_none());
    assert!(!reader.low_data());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reader.created() <= now && reader.created() + 600 > now,
        "created is now, in seconds: {}",
        reader.created()
    );

    // Replay into NATS B, listening there.
    let nats_b = NatsServer::start(&common::nats_server()).expect("nats B");
    let mut listener =
        Subscriber::connect(&NatsOptions::local(nats_b.url()), SubjectScheme::Flat, &[])
            .await
            .expect("listener");
    let replayer = common::local_publisher(&nats_b.url()).await;
    let replayed = replay(
        &replayer,
        &ReplayOptions {
            speed: 0.0,
            ..ReplayOptions::new(vec![file.clone()])
        },
        &Shutdown::new(),
    )
    .await
    .expect("replay");
    assert_eq!(replayed.published, expected.len() as u64);
    let bus = replayer.close(common::TIMEOUT).await;
    assert_eq!((bus.sent, bus.dropped()), (expected.len() as u64, 0));
    let mut received = Vec::new();
    tokio::time::timeout(common::TIMEOUT, async {
        while received.len() < expected.len() {
            let message = listener.next().await.expect("listener open");
            received.push((message.subject, message.payload.to_vec()));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("received {} of {}", received.len(), expected.len()));
    assert!(
        received == expected,
        "replayed subjects and bytes differ from the recorded events"
    );
}

// ---------------------------------------------------------------------------------------
// b. Spec archives from an independent writer; cut files

#[test]
fn a_spec_archive_with_padded_varints_and_unknown_fields_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = sample_events(60);
    let bodies: Vec<Vec<u8>> = expected.iter().map(|(_, b)| b.clone()).collect();
    let (raw, _) = spec_archive(&spec_header(1_767_225_600, Some(true)), &bodies, 2);
    let plain = dir.path().join("spec.bin");
    std::fs::write(&plain, &raw).expect("write");
    let compressed = dir.path().join("spec.bin.zst");
    std::fs::write(
        &compressed,
        zstd::encode_all(raw.as_slice(), 19).expect("zstd"),
    )
    .expect("w");
    for path in [&plain, &compressed] {
        let (reader, read) = read_all(path);
        assert!(read == expected, "{path:?}: events and subjects as written");
        assert_eq!(reader.created(), 1_767_225_600);
        assert!(reader.low_data());
        assert!(reader.truncated().is_none(), "{path:?} ends cleanly");
        assert_eq!(reader.skipped().total(), 0);
    }
    // low_data unset reads as false.
    let (raw, _) = spec_archive(&spec_header(7, None), &bodies[..3], 0);
    std::fs::write(&plain, raw).expect("write");
    let (reader, read) = read_all(&plain);
    assert!(!reader.low_data());
    assert_eq!(read.len(), 3);
    // A header-only archive is a clean, empty archive.
    let (raw, _) = spec_archive(&spec_header(7, Some(false)), &[], 0);
    std::fs::write(&plain, raw).expect("write");
    let (reader, read) = read_all(&plain);
    assert!(read.is_empty() && reader.truncated().is_none());
}

#[test]
fn a_zst_archive_cut_in_the_middle_keeps_every_complete_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = sample_events(6_000);
    let bodies: Vec<Vec<u8>> = expected.iter().map(|(_, b)| b.clone()).collect();
    let (raw, offsets) = spec_archive(&spec_header(1_767_225_600, None), &bodies, 3);
    let compressed = zstd::encode_all(raw.as_slice(), 3).expect("zstd");
    let cut = &compressed[..compressed.len() / 2];
    let path = dir.path().join("cut.bin.zst");
    std::fs::write(&path, cut).expect("write");
    // What the cut leaves, by zstd and the spec alone.
    let mut available = Vec::new();
    let decoded = std::io::Read::read_to_end(
        &mut zstd::stream::read::Decoder::new(cut).expect("decoder"),
        &mut available,
    );
    assert!(decoded.is_err(), "a cut zstd stream is incomplete");
    let complete = spec_complete_frames(&available);
    assert!(
        complete > 0 && complete < expected.len(),
        "the cut lies inside the events: {complete} complete"
    );

    let (reader, read) = read_all(&path);
    assert_eq!(read.len(), complete);
    assert!(read[..] == expected[..complete]);
    let truncation = reader.truncated().expect("reported as truncated");
    assert_eq!(
        truncation.offset, offsets[complete] as u64,
        "{truncation:?}"
    );
}

#[test]
fn a_bin_archive_cut_inside_a_varint_or_body_keeps_the_events_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = sample_events(20);
    let bodies: Vec<Vec<u8>> = expected.iter().map(|(_, b)| b.clone()).collect();
    // Every 5th frame has a 3-byte length prefix: frame 10 does.
    let (raw, offsets) = spec_archive(&spec_header(1_767_225_600, None), &bodies, 5);
    let path = dir.path().join("cut.bin");
    for (cut, what) in [
        (offsets[10] + 1, "inside a length prefix"),
        (offsets[10] + 2, "inside a length prefix"),
        (offsets[10] + 3 + 4, "inside a frame body"),
    ] {
        std::fs::write(&path, &raw[..cut]).expect("write");
        let (reader, read) = read_all(&path);
        assert!(
            read[..] == expected[..10],
            "cut {what}: the 10 events before"
        );
        let truncation = reader.truncated().expect("truncated");
        assert_eq!(truncation.offset, offsets[10] as u64);
        assert!(truncation.reason.contains(what), "{truncation:?}");
    }
    // A cut exactly at a frame boundary is a clean end.
    std::fs::write(&path, &raw[..offsets[10]]).expect("write");
    let (reader, read) = read_all(&path);
    assert_eq!(read.len(), 10);
    assert!(reader.truncated().is_none());
}

// ---------------------------------------------------------------------------------------
// c. Bad input

fn open_error(path: &Path) -> RecordingError {
    match ArchiveReader::open(path) {
        Err(e) => e,
        Ok(_) => panic!("{path:?} should not open"),
    }
}

#[test]
fn empty_and_headerless_files_are_missing_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["empty.bin", "empty.bin.zst"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").expect("write");
        let error = open_error(&path);
        assert!(
            matches!(error, RecordingError::MissingHeader { .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains(name) && text.contains("missing header"),
            "{text}"
        );
    }
    // Events with no header frame.
    let bodies: Vec<Vec<u8>> = sample_events(5).into_iter().map(|(_, b)| b).collect();
    let mut raw = Vec::new();
    for body in &bodies {
        varint(body.len() as u64, 1, &mut raw);
        raw.extend_from_slice(body);
    }
    let path = dir.path().join("headless.bin");
    std::fs::write(&path, &raw).expect("write");
    let error = open_error(&path);
    assert!(
        matches!(error, RecordingError::MissingHeader { .. }),
        "{error:?}"
    );
    // An event with only a timestamp parses as a message with unknown fields: still no header.
    let mut raw = Vec::new();
    let body = Event {
        timestamp: 5,
        peer_observer_event: None,
    }
    .encode_to_vec();
    varint(body.len() as u64, 1, &mut raw);
    raw.extend(body);
    std::fs::write(&path, &raw).expect("write");
    let error = open_error(&path);
    assert!(
        matches!(error, RecordingError::MissingHeader { .. }),
        "{error:?}"
    );
    // Not zstd at all, named .zst.
    let path = dir.path().join("plain.bin.zst");
    std::fs::write(&path, spec_archive(&spec_header(1, None), &bodies, 0).0).expect("write");
    let error = open_error(&path);
    assert!(error.to_string().contains("plain.bin.zst"), "{error}");
}

#[test]
fn a_length_prefix_of_2_pow_40_is_corruption_not_an_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies: Vec<Vec<u8>> = sample_events(3).into_iter().map(|(_, b)| b).collect();
    let (mut raw, _) = spec_archive(&spec_header(1, None), &bodies, 0);
    let at = raw.len();
    varint(1 << 40, 1, &mut raw);
    raw.extend([0u8; 64]);
    let path = dir.path().join("huge.bin");
    std::fs::write(&path, &raw).expect("write");
    let mut reader = ArchiveReader::open(&path).expect("header is fine");
    for _ in 0..3 {
        reader.next().expect("event").expect("complete event");
    }
    match reader.next() {
        Some(Err(e @ RecordingError::Corrupt { offset, .. })) => {
            assert_eq!(offset, at as u64);
            assert!(e.to_string().contains("huge.bin"), "{e}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(reader.next().is_none(), "an error ends the stream");
    // A length within the limit but far beyond the file's end is a cut, read without
    // allocating the claimed size up front.
    let (mut raw, _) = spec_archive(&spec_header(1, None), &bodies, 0);
    let at = raw.len();
    varint(60 << 20, 1, &mut raw);
    raw.extend([0u8; 10]);
    std::fs::write(&path, &raw).expect("write");
    let (reader, read) = read_all(&path);
    assert_eq!(read.len(), 3);
    assert_eq!(reader.truncated().expect("cut").offset, at as u64);
}

#[test]
fn random_bytes_never_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Lcg(0x5eed);
    let valid: Vec<u8> = spec_archive(&spec_header(1, None), &[], 0).0;
    for round in 0..400 {
        let len = (rng.next() % 2048) as usize;
        let noise = rng.bytes(len);
        // Noise alone; noise after a valid header; both compressed as well.
        let mut after_header = valid.clone();
        after_header.extend_from_slice(&noise);
        for (name, bytes) in [
            ("noise.bin", noise.clone()),
            ("noise.bin.zst", noise.clone()),
            ("tail.bin", after_header.clone()),
            (
                "tail.bin.zst",
                zstd::encode_all(after_header.as_slice(), 1).expect("zstd"),
            ),
        ] {
            let path = dir.path().join(format!("{round}-{name}"));
            std::fs::write(&path, &bytes).expect("write");
            match ArchiveReader::open(&path) {
                Err(e) => assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}"),
                Ok(reader) => {
                    let mut events = 0usize;
                    for item in reader {
                        match item {
                            Ok(m) => {
                                events += 1;
                                assert!(m.data.len() <= 4096);
                            }
                            Err(e) => {
                                assert!(e.to_string().contains(&*path.to_string_lossy()));
                            }
                        }
                        assert!(events <= 4096, "a frame is at least one byte");
                    }
                }
            }
            std::fs::remove_file(&path).expect("rm");
        }
    }
}

// ---------------------------------------------------------------------------------------
// d. peerlab convert

fn sample_recording() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/regtest-sample.mcap")
}

/// (subject, bytes) of the events (not the counter snapshots) of an MCAP file, in order.
fn mcap_events(path: &Path) -> Vec<(String, Vec<u8>)> {
    let recording = read_recording(path).expect("readable");
    assert!(recording.truncated.is_none(), "{path:?} is complete");
    recording
        .messages
        .into_iter()
        .filter(|m| !peerlab::record::format::is_stats_subject(&m.subject))
        .map(|m| (m.subject.to_string(), m.data))
        .collect()
}

#[test]
fn convert_round_trips_mcap_to_archive_to_mcap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = mcap_events(&sample_recording());
    assert!(original.len() > 100, "the sample has events");
    for archive_name in ["sample.bin.zst", "sample.bin"] {
        let archive = dir.path().join(archive_name);
        let back = dir.path().join(format!("{archive_name}.mcap"));
        let out = peerlab(&["convert", s(&sample_recording()), s(&archive)]);
        stdout_of(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("converted") && stderr.contains("(mcap) ->"),
            "one summary line:\n{stderr}"
        );
        let (reader, in_archive) = read_all(&archive);
        assert!(
            in_archive == original,
            "{archive_name}: events and flat subjects kept"
        );
        assert!(reader.truncated().is_none());
        stdout_of(&peerlab(&["convert", s(&archive), s(&back)]));
        let round_trip = mcap_events(&back);
        assert!(
            round_trip == original,
            "{archive_name}: MCAP -> archive -> MCAP"
        );
        let metadata = read_recording(&back).expect("readable").metadata;
        assert!(
            metadata["converted_from"].contains(archive_name),
            "{metadata:?}"
        );
    }
    // Into the input itself: refused.
    let archive = dir.path().join("sample.bin");
    let out = peerlab(&["convert", s(&archive), s(&archive)]);
    assert!(!out.status.success());
}

// ---------------------------------------------------------------------------------------
// e. peerlab inspect and cat

#[test]
fn inspect_and_cat_read_archives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = sample_events(40);
    let bodies: Vec<Vec<u8>> = expected.iter().map(|(_, b)| b.clone()).collect();
    let (raw, offsets) = spec_archive(&spec_header(1_767_225_600, Some(true)), &bodies, 4);
    let path = dir.path().join("archive.20260101-000000-000.bin.zst");
    std::fs::write(&path, zstd::encode_all(raw.as_slice(), 3).expect("zstd")).expect("write");

    let text = stdout_of(&peerlab(&["inspect", s(&path)]));
    for needle in [
        "peer-observer archive (compression: zstd)",
        "2026-01-01T00:00:00.000Z (1767225600 s, header)",
        "low_data:      true",
        "complete:      yes",
        "messages:      40",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let json: Value =
        serde_json::from_str(&stdout_of(&peerlab(&["inspect", "--json", s(&path)]))).expect("JSON");
    assert_eq!(json["messages"], 40);
    assert_eq!(json["metadata"]["created"], "1767225600");
    assert_eq!(json["metadata"]["low_data"], "true");
    assert_eq!(json["start_ns"], T0_MS * 1_000_000);
    assert_eq!(json["end_ns"], (T0_MS + 39 * 250) * 1_000_000);
    let subjects: Vec<(String, u64)> = json["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| {
            (
                s["subject"].as_str().unwrap().to_string(),
                s["messages"].as_u64().unwrap(),
            )
        })
        .collect();
    for subject in ["netmsg", "netconn", "mempool", "validation", "rpc"] {
        assert!(subjects.contains(&(subject.to_string(), 8)), "{subjects:?}");
    }
    assert!(json["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kind"] == "validation.block_connected" && k["messages"] == 8));

    let cat = stdout_of(&peerlab(&["cat", s(&path)]));
    let lines: Vec<Value> = cat
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 40);
    for (i, (line, (subject, _))) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line["subject"], subject.as_str());
        assert_eq!(line["publish_time"], (T0_MS + i as u64 * 250) * 1_000_000);
        assert!(line["event"]["timestamp"].is_string() || line["event"]["timestamp"].is_number());
        assert!(line["event"].get("undecodable").is_none(), "{line}");
    }

    // A cut archive: what is complete, and a warning with the offset.
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &raw[..offsets[30] + 1]).expect("write");
    let out = peerlab(&["cat", s(&cut)]);
    assert_eq!(stdout_of(&out).lines().count(), 30);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("truncated at offset {}", offsets[30])),
        "{stderr}"
    );
    let json: Value =
        serde_json::from_str(&stdout_of(&peerlab(&["inspect", "--json", s(&cut)]))).expect("JSON");
    assert_eq!(json["truncated"]["offset"], offsets[30] as u64);
    assert_eq!(json["messages"], 30);
    // No header: one error line naming the file.
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, b"\x05hello").expect("write");
    let out = peerlab(&["inspect", s(&bad)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.bin")
            && stderr.contains("missing header")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// f. `peerlab record --format archive`, the binary, against a real nats-server

/// The archive files under `dir` starting with `base.`, sorted by name (= by time).
fn archive_files(dir: &Path, base: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{base}.")))
        })
        .collect();
    files.sort();
    files
}

/// Every event readable in `files` so far (a file being written may end in a cut).
fn events_in(files: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    let mut events = Vec::new();
    for file in files {
        if let Ok(reader) = ArchiveReader::open(file) {
            events.extend(
                reader
                    .map_while(Result::ok)
                    .map(|m| (m.subject.to_string(), m.data)),
            );
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_command_writes_rotated_archives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("archive");
    // --rotate-mib belongs to MCAP.
    let out = peerlab(&[
        "record",
        "--format",
        "archive",
        "--rotate-mib",
        "1",
        "-o",
        s(&base),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-file-size"));

    let nats = NatsServer::start(&common::nats_server()).expect("nats");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args([
            "record",
            "--format",
            "archive",
            "--compression-level",
            "0",
            "--max-file-size",
            "2000",
            "-o",
            s(&base),
            "--nats-address",
            &nats.url(),
        ])
        .env_remove("PEERLAB_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("peerlab record starts");
    // The first file is created once the subscription is in place.
    tokio::time::timeout(common::TIMEOUT, async {
        while archive_files(dir.path(), "archive").is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the recorder creates its first archive");
    let expected = sample_events(200);
    let publisher = common::local_publisher(&nats.url()).await;
    for (subject, bytes) in &expected {
        assert!(publisher.publish_raw(subject, Bytes::from(bytes.clone())));
    }
    publisher.close(common::TIMEOUT).await;
    // Written data is flushed every second.
    tokio::time::timeout(common::TIMEOUT, async {
        while events_in(&archive_files(dir.path(), "archive")).len() < expected.len() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every event reaches the archives");
    let pid = child.id().expect("running") as i32;
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let output = tokio::time::timeout(common::TIMEOUT, child.wait_with_output())
        .await
        .expect("the recorder stops on SIGTERM")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("recording finished"), "{stderr}");

    let files = archive_files(dir.path(), "archive");
    assert!(files.len() > 3, "rotated at 2000 bytes: {files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".bin") && !name.ends_with(".bin.zst"),
            "{name}"
        );
        let (reader, _) = read_all(file);
        assert!(reader.truncated().is_none(), "{name} was closed cleanly");
        assert!(
            std::fs::metadata(file).unwrap().len() < 2000 + 1024,
            "{name}"
        );
    }
    assert!(
        events_in(&files) == expected,
        "the archives hold every event in order"
    );
}
