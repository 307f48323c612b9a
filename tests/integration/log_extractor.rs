//! The log extractor against a real regtest bitcoind's `debug.log` and a real nats-server:
//! blocks mined appear as `BlockConnectedLog` with RPC's hashes and heights, a block with a
//! bad merkle root submitted over RPC appears as a `BlockCheckedLog` with its state, and
//! two rotations (rename, then SIGHUP so bitcoind reopens the file) lose and repeat no line;
//! and, from a file the test writes, lines that cannot be parsed (plain text, non-UTF-8, 1 MiB)
//! are counted while the valid lines around them still come out, and a backlog larger than
//! the publisher's buffer arrives whole.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hashes::Hash as _;
use bitcoin::{Block, TxMerkleNode};
use peerlab::bus::{NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::log_extractor::{log::LogEvent, Log, LogDebugCategory};
use peerlab::event::{strict, Event};
use peerlab::extractors::log::follow::Start;
use peerlab::extractors::log::{LogConfig, LogExtractor};
use peerlab::extractors::Extractor as _;
use peerlab::node::{NodeRpc as _, RegtestConfig, RegtestNode};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;
use serde_json::{json, Value};

/// A node, a nats-server, a log extractor on the node's debug.log and a subscriber to the
/// extractor's subject.
struct Setup {
    // Fields drop in this order: the node before its datadir.
    node: Option<RegtestNode>,
    extractor: LogExtractor,
    subscriber: Subscriber,
    _nats: NatsServer,
    _datadir: tempfile::TempDir,
}

async fn setup(start: Start) -> Setup {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(nats.url());
    let subscriber = Subscriber::connect(&options, SubjectScheme::Flat, &["log-extractor".into()])
        .await
        .expect("subscriber");
    let datadir = tempfile::tempdir().expect("datadir");
    let config = RegtestConfig {
        datadir: Some(datadir.path().to_path_buf()),
        ..RegtestConfig::new(common::bitcoind())
    };
    let node = tokio::task::block_in_place(|| RegtestNode::start(&config)).expect("node");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor = LogExtractor::start(
        LogConfig {
            start,
            ..LogConfig::new(node.debug_log())
        },
        publisher,
        Shutdown::new(),
    )
    .expect("extractor starts");
    Setup {
        _nats: nats,
        _datadir: datadir,
        node: Some(node),
        extractor,
        subscriber,
    }
}

/// The next log event on `subscriber` (strictly valid), bounded.
async fn next_log(subscriber: &mut Subscriber) -> Log {
    let message = tokio::time::timeout(common::TIMEOUT, subscriber.next())
        .await
        .expect("a log event in time")
        .expect("subscription open");
    strict::check_event(&message.payload).expect("strictly valid");
    match Event::decode(message.payload.as_ref()).map(|e| e.peer_observer_event) {
        Ok(Some(PeerObserverEvent::LogExtractor(log))) => log,
        other => panic!("not a log event: {other:?}"),
    }
}

impl Setup {
    fn node(&self) -> &RegtestNode {
        self.node.as_ref().expect("node running")
    }

    /// The next log event (strictly valid), bounded.
    async fn next_log(&mut self) -> Log {
        next_log(&mut self.subscriber).await
    }

    /// Log events until one satisfies `pick`.
    async fn next_matching<T>(&mut self, mut pick: impl FnMut(&Log) -> Option<T>) -> T {
        loop {
            let log = self.next_log().await;
            if let Some(found) = pick(&log) {
                return found;
            }
        }
    }
}

/// Bitcoin Core (v29 and later) logs each block connection twice under `[validation]`:
/// `Enqueuing BlockConnected: ...` when the signal is queued and `BlockConnected: ...` when
/// it runs. peer-observer's matcher finds the pattern anywhere in the message, so both lines
/// are `BlockConnectedLog` events; peerlab does the same, for the same counts on the same
/// dashboards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_blocks_appear_as_block_connected_logs_with_rpc_hashes_and_heights() {
    const BLOCKS: u64 = 10;
    let mut setup = setup(Start::End).await;
    let hashes = tokio::task::block_in_place(|| setup.node().mine(BLOCKS)).expect("mine");
    let expected: Vec<(String, u32)> = hashes
        .iter()
        .enumerate()
        .map(|(i, hash)| (hash.to_string(), i as u32 + 1))
        .collect();
    let mut seen: Vec<(String, u32)> = Vec::new();
    let mut enqueued = 0;
    let last = expected.last().cloned().expect("blocks were mined");
    tokio::time::timeout(common::TIMEOUT, async {
        while seen.iter().filter(|b| **b == last).count() < 2 {
            let log = setup.next_log().await;
            match (&log.log_event, log.category) {
                (Some(LogEvent::BlockConnectedLog(b)), category) => {
                    assert_eq!(category, LogDebugCategory::Validation as i32);
                    seen.push((b.block_hash.clone(), b.block_height));
                }
                (Some(LogEvent::UnknownLogMessage(m)), _)
                    if m.raw_message.contains("BlockConnected") =>
                {
                    panic!("a BlockConnected line was not matched: {m:?}")
                }
                _ => {}
            }
            enqueued = seen.len();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{enqueued} block_connected_log events arrived"));
    // Every block twice (queued, then run), in chain order for each kind of line.
    let mut unique: Vec<(String, u32)> = Vec::new();
    for block in &seen {
        if !unique.contains(block) {
            unique.push(block.clone());
        }
    }
    assert_eq!(unique, expected, "RPC's hashes and heights, in order");
    for block in &expected {
        let times = seen.iter().filter(|b| *b == block).count();
        assert_eq!(
            times, 2,
            "{block:?}: one `Enqueuing BlockConnected` and one `BlockConnected` line"
        );
    }
    let counters = setup.extractor.stop().await.expect("stops");
    assert_eq!(counters.publish_dropped, 0);
    assert!(counters.published >= BLOCKS, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_a_bad_merkle_root_appears_as_a_block_checked_log_with_its_state() {
    let mut setup = setup(Start::End).await;
    let block = tokio::task::block_in_place(|| {
        let node = setup.node();
        node.mine(1).expect("a tip to build on");
        // A valid next block, not submitted, then its merkle root broken (and the proof of
        // work redone, so the header still passes and the merkle check is what fails).
        let address = peerlab::node::KeylessCoin::address().to_string();
        let made: Value = node
            .rpc("generateblock", &[json!(address), json!([]), json!(false)])
            .expect("generateblock");
        let hex = made["hex"].as_str().expect("block hex");
        let mut block: Block = deserialize_hex(hex).expect("a block");
        block.header.merkle_root = TxMerkleNode::all_zeros();
        while block.header.validate_pow(block.header.target()).is_err() {
            block.header.nonce = block.header.nonce.wrapping_add(1);
        }
        let answer: Value = node
            .rpc("submitblock", &[json!(serialize_hex(&block))])
            .expect("submitblock answers");
        assert_eq!(answer, json!("bad-txnmrklroot"));
        block
    });
    let checked = setup
        .next_matching(|log| match &log.log_event {
            Some(LogEvent::BlockCheckedLog(c)) if c.state != "Valid" => Some(c.clone()),
            _ => None,
        })
        .await;
    assert_eq!(checked.block_hash, block.block_hash().to_string());
    assert_eq!(checked.state, "bad-txnmrklroot");
    assert!(peerlab::extractors::log::parse::is_mutated(&checked.state));
    assert!(!checked.debug_message.is_empty(), "{checked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_by_rename_and_sighup_lose_and_repeat_no_line() {
    let mut setup = setup(Start::Beginning).await;
    let debug_log = setup.node().debug_log();
    let pid = setup.node().pid().expect("pid");
    let mut files = Vec::new();
    for round in 1..=2 {
        tokio::task::block_in_place(|| setup.node().mine(3)).expect("mine");
        let rotated = debug_log.with_extension(format!("log.{round}"));
        std::fs::rename(&debug_log, &rotated).expect("rename debug.log");
        // Written to the renamed file: bitcoind has not reopened yet.
        tokio::task::block_in_place(|| setup.node().mine(2)).expect("mine");
        // SAFETY: kill(2) on our own child process; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) }, 0);
        files.push(rotated);
        // The next line bitcoind writes after the signal is handled goes to a new debug.log.
        // The handler only sets a flag, and under load the signal may land after the lines
        // of one block: keep making lines (a block at a time) until the file is there.
        tokio::time::timeout(common::TIMEOUT, async {
            while !debug_log.exists() {
                tokio::task::block_in_place(|| setup.node().mine(1)).expect("mine");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("bitcoind reopened debug.log after SIGHUP");
        // A follower only knows the files it saw at the path: rotate again only after it
        // noticed this rotation (real rotations are hours apart, not milliseconds).
        tokio::time::timeout(common::TIMEOUT, async {
            while setup.extractor.counters().rotations < round {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the extractor follows the new debug.log");
    }
    files.push(debug_log.clone());
    tokio::task::block_in_place(|| setup.node().mine(3)).expect("mine");
    // Stop the node so the files are final, then let the extractor read to their end.
    let node = setup.node.take().expect("node");
    tokio::task::block_in_place(|| node.stop(Duration::from_secs(30))).expect("node stops");
    let lines: Vec<u64> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read(file).expect("read a log file");
            text.split(|b| *b == b'\n')
                .map(|line| line.len() as u64)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .skip(1) // after the last newline
                .rev()
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(lines.len() > 20, "{} lines", lines.len());
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, async {
        while seen.len() < lines.len() {
            seen.push(setup.next_log().await.log_line_bytes);
        }
    })
    .await;
    assert_eq!(
        seen.len(),
        lines.len(),
        "events vs lines; first difference at {:?}; lines per file {:?}",
        seen.iter().zip(&lines).position(|(a, b)| a != b),
        files
            .iter()
            .map(|f| std::fs::read(f).map(|t| t.iter().filter(|b| **b == b'\n').count()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        seen, lines,
        "every line once, in order, across two rotations"
    );
    let counters = setup.extractor.stop().await.expect("stops");
    assert_eq!(counters.records, lines.len() as u64, "{counters:?}");
    assert!(counters.rotations >= 2, "{counters:?}");
    assert_eq!(counters.publish_dropped, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), setup.subscriber.next())
            .await
            .is_err(),
        "no line twice"
    );
}

/// Lines without debug.log's shape — plain text, bytes that are not UTF-8, a 1 MiB line —
/// go through the real follower and extractor from a real file: each still gives one event
/// (as peer-observer publishes them), is counted in `unparsed_lines` (the 1 MiB one also in
/// `truncated_lines`), and the valid lines around them come out whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_lines_are_counted_and_the_lines_around_them_still_come_out() {
    const MIB: usize = 1 << 20;
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(nats.url());
    let mut subscriber =
        Subscriber::connect(&options, SubjectScheme::Flat, &["log-extractor".into()])
            .await
            .expect("subscriber");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("debug.log");
    let valid = |n: u32| format!("2025-06-01T12:00:0{n}Z [net] valid line {n}\n").into_bytes();
    // (bytes as written, whether the extractor can parse it)
    let lines: Vec<(Vec<u8>, bool)> = vec![
        (valid(1), true),
        (b"no timestamp, no shape\n".to_vec(), false),
        // Not UTF-8 at all.
        (b"\xff\xfe\x80\xc3(garbage\n".to_vec(), false),
        (valid(2), true),
        // A timestamped line with one invalid byte still has the shape (repaired lossily).
        (
            b"2025-06-01T12:00:03Z [net] caf\xe9 au lait\n".to_vec(),
            true,
        ),
        // 1 MiB without a timestamp: cut to the follower's limit, counted twice.
        ([vec![b'x'; MIB], b"\n".to_vec()].concat(), false),
        (valid(4), true),
    ];
    // The first two lines are there before the extractor starts, the rest arrive while it
    // follows the file (the 1 MiB line spans many reads).
    std::fs::write(&path, [lines[0].0.clone(), lines[1].0.clone()].concat())
        .expect("write debug.log");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor = LogExtractor::start(
        LogConfig {
            start: Start::Beginning,
            ..LogConfig::new(&path)
        },
        publisher,
        Shutdown::new(),
    )
    .expect("extractor starts");

    let mut logs: Vec<Log> = Vec::new();
    for _ in 0..2 {
        logs.push(next_log(&mut subscriber).await);
    }
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open debug.log");
        for (bytes, _) in &lines[2..] {
            file.write_all(bytes).expect("append a line");
        }
    }
    while logs.len() < lines.len() {
        logs.push(next_log(&mut subscriber).await);
    }

    for (i, ((bytes, parsable), log)) in lines.iter().zip(&logs).enumerate() {
        assert_eq!(
            log.log_line_bytes,
            bytes.len() as u64 - 1,
            "line {i}: one event per line, in order, with the line's real length"
        );
        assert_eq!(log.log_timestamp != 0, *parsable, "line {i}: {log:?}");
        let Some(LogEvent::UnknownLogMessage(message)) = &log.log_event else {
            panic!("line {i}: not an unknown message: {log:?}");
        };
        if *parsable {
            assert_eq!(log.category, LogDebugCategory::Net as i32, "line {i}");
            assert!(!message.raw_message.is_empty(), "line {i}: {log:?}");
        } else {
            assert_eq!(log.category, LogDebugCategory::Unknown as i32, "line {i}");
            assert_eq!(message.raw_message, "", "line {i}");
        }
    }
    let Some(LogEvent::UnknownLogMessage(cafe)) = &logs[4].log_event else {
        unreachable!("checked above");
    };
    assert_eq!(cafe.raw_message, "caf\u{fffd} au lait");

    // `stop` joins the reading task: a panic in it would be an error here.
    let counters = extractor.stop().await.expect("the extractor stops cleanly");
    let unparsable = lines.iter().filter(|(_, parsable)| !parsable).count() as u64;
    assert_eq!(counters.unparsed_lines, unparsable, "{counters:?}");
    assert_eq!(counters.truncated_lines, 1, "{counters:?}");
    assert_eq!(counters.records, lines.len() as u64, "{counters:?}");
    assert_eq!(counters.published, lines.len() as u64, "{counters:?}");
    assert_eq!(counters.publish_dropped, 0, "{counters:?}");
    assert_eq!(counters.read_errors, 0, "{counters:?}");
}

/// A backlog read from the start outruns NATS: with a publisher buffer of 64 events, 20,000
/// lines still all arrive, in order, because the reader waits for room (the lines stay in the
/// file) instead of dropping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_publisher_buffer_arrives_whole() {
    const LINES: usize = 20_000;
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let mut subscriber = Subscriber::connect(
        &NatsOptions::local(nats.url()),
        SubjectScheme::Flat,
        &["log-extractor".into()],
    )
    .await
    .expect("subscriber");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("debug.log");
    let text: String = (0..LINES)
        .map(|i| format!("2025-06-01T12:00:00.{:06}Z [net] line {i}\n", i % 1_000_000))
        .collect();
    std::fs::write(&path, text).expect("write debug.log");
    let publisher = peerlab::bus::Publisher::connect(
        &NatsOptions::local(nats.url()),
        SubjectScheme::Flat,
        peerlab::bus::PublisherConfig {
            max_buffered_events: 64,
            ..Default::default()
        },
    )
    .await
    .expect("publisher");
    let extractor = LogExtractor::start(
        LogConfig {
            start: Start::Beginning,
            ..LogConfig::new(&path)
        },
        Arc::new(publisher),
        Shutdown::new(),
    )
    .expect("extractor starts");
    for i in 0..LINES {
        let log = next_log(&mut subscriber).await;
        let Some(LogEvent::UnknownLogMessage(message)) = &log.log_event else {
            panic!("line {i}: not an unknown message: {log:?}");
        };
        assert_eq!(
            message.raw_message,
            format!("line {i}"),
            "in order, none lost"
        );
    }
    let counters = extractor.stop().await.expect("the extractor stops cleanly");
    assert_eq!(counters.published, LINES as u64, "{counters:?}");
    assert_eq!(counters.publish_dropped, 0, "{counters:?}");
}
