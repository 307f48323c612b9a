//! Record a live pipeline (regtest bitcoind + eBPF extractor + NATS), replay the file into a
//! fresh NATS while recording again, and compare; SIGKILL a recording process mid-stream.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Amount;
use peerlab::bus::{NatsOptions, SubjectScheme};
use peerlab::extractors::ebpf::{EbpfConfig, EbpfExtractor, Target};
use peerlab::extractors::Extractor as _;
use peerlab::node::{NodeRpc, RegtestConfig, RegtestNode};
use peerlab::peer::{Peer, PeerConfig};
use peerlab::record::read_recording;
use peerlab::record::recorder::{record, RecordOptions};
use peerlab::record::replayer::{replay, ReplayOptions};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use tokio::sync::oneshot;

fn options(output: &std::path::Path) -> RecordOptions {
    RecordOptions::new(output, vec!["test".into()])
}

/// A recorder running in the background; `stop_when(n)` ends it once n messages are written.
struct Recorder {
    written: Arc<AtomicU64>,
    stop: Shutdown,
    task: tokio::task::JoinHandle<peerlab::record::recorder::RecordSummary>,
}

impl Recorder {
    async fn start(url: &str, output: &std::path::Path) -> Recorder {
        let written = Arc::new(AtomicU64::new(0));
        let stop = Shutdown::new();
        let stop_rx = stop.clone();
        let (nats, opts, counter) = (NatsOptions::local(url), options(output), written.clone());
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = ready_tx.send(());
            record(&nats, SubjectScheme::Flat, &opts, counter, stop_rx)
                .await
                .expect("recording succeeds")
        });
        ready_rx.await.expect("recorder task runs");
        Recorder {
            written,
            stop,
            task,
        }
    }

    async fn stop_when(self, at_least: u64) -> peerlab::record::recorder::RecordSummary {
        let written = self.written.clone();
        tokio::time::timeout(common::TIMEOUT, async {
            while written.load(Ordering::Relaxed) < at_least {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "recorder wrote {} of {at_least}",
                written.load(Ordering::Relaxed)
            )
        });
        self.stop.cancel();
        self.task.await.expect("recorder task")
    }
}

/// (subject, bytes) pairs of the events (not the stats) in a file, sorted: a multiset.
fn event_multiset(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let recording = read_recording(path).expect("readable");
    assert!(recording.truncated.is_none(), "{path:?} is complete");
    let mut pairs: Vec<_> = recording
        .messages
        .into_iter()
        .filter(|m| !peerlab::record::format::is_stats_subject(&m.subject))
        .map(|m| (m.subject.to_string(), m.data))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_recording_records_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first_file, second_file) = (
        dir.path().join("live.mcap"),
        dir.path().join("replayed.mcap"),
    );

    // Live: node -> extractor -> NATS A -> recorder.
    let nats_a = NatsServer::start(&common::nats_server()).expect("nats A");
    // Subscribe to the stats subject too, so the subscription is in place before events flow.
    let recorder = Recorder::start(&nats_a.url(), &first_file).await;
    // Give the recorder's subscription a server round trip before events flow.
    let probe = common::local_publisher(&nats_a.url()).await;
    probe.close(common::TIMEOUT).await;
    let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
    let publisher = Arc::new(common::local_publisher(&nats_a.url()).await);
    let pid = node.pid().expect("pid");
    let extractor = EbpfExtractor::start(
        EbpfConfig::new(common::bitcoind(), Target::Pid(pid)),
        publisher.clone(),
        Shutdown::new(),
    )
    .expect("extractor");
    let stats = extractor.stats();
    common::wait_traced(&stats, pid).await;
    let mut peer = Peer::connect(node.p2p_addr().into(), PeerConfig::default())
        .await
        .expect("peer");
    peer.handshake().await.expect("handshake");
    tokio::task::block_in_place(|| {
        node.mine(101).expect("mine");
        let coin = node.coinbase_coin(1).expect("coin");
        let tx = node
            .spend(&coin, Amount::from_sat(1_000), false)
            .expect("spend");
        node.send(&tx).expect("send");
        node.mine(1).expect("mine");
    });
    peer.close().await;
    extractor.stop().await.expect("extractor stops");
    let publisher = Arc::try_unwrap(publisher).ok().expect("sole owner");
    let sent = publisher.close(common::TIMEOUT).await.sent;
    // At least 102 block_connected, the transaction's added and removed, the connection and
    // the handshake's messages both ways; pings and announcements vary from run to run.
    assert!(
        sent >= 110,
        "a live pipeline with blocks, a transaction and a peer: {sent} events"
    );
    eprintln!("live pipeline: {sent} events sent");
    let live = recorder.stop_when(sent).await;
    assert!(live.messages >= sent);
    // `sent` also counts the extractor's stats snapshots, which are recorded but not replayed.
    let events = event_multiset(&first_file).len() as u64;
    assert!(
        events >= 108 && events < sent,
        "{events} events of {sent} messages"
    );

    // Replay at full speed into NATS B, recording again.
    let nats_b = NatsServer::start(&common::nats_server()).expect("nats B");
    let recorder = Recorder::start(&nats_b.url(), &second_file).await;
    let probe = common::local_publisher(&nats_b.url()).await;
    probe.close(common::TIMEOUT).await;
    let replay_publisher = common::local_publisher(&nats_b.url()).await;
    let replay_options = ReplayOptions {
        speed: 0.0,
        ..ReplayOptions::new(vec![first_file.clone()])
    };
    let summary = replay(&replay_publisher, &replay_options, &Shutdown::new())
        .await
        .expect("replay");
    assert_eq!(summary.published, events);
    let bus = replay_publisher.close(common::TIMEOUT).await;
    assert_eq!((bus.sent, bus.dropped()), (events, 0));
    recorder.stop_when(events).await;

    let (original, replayed) = (event_multiset(&first_file), event_multiset(&second_file));
    assert!(
        original == replayed,
        "the replayed recording differs from the live one"
    );
    let subjects: BTreeMap<&str, usize> = original.iter().fold(BTreeMap::new(), |mut m, (s, _)| {
        *m.entry(s.as_str()).or_default() += 1;
        m
    });
    for subject in ["netmsg", "netconn", "mempool", "validation"] {
        assert!(
            subjects.contains_key(subject),
            "{subject} missing from {subjects:?}"
        );
    }

    // Paced replay of the first two seconds reports its timing error.
    let paced = ReplayOptions {
        speed: 1.0,
        to: Some(Duration::from_secs(2)),
        ..replay_options
    };
    let publisher = common::local_publisher(&nats_b.url()).await;
    let summary = replay(&publisher, &paced, &Shutdown::new())
        .await
        .expect("paced replay");
    let timing = summary
        .timing
        .expect("a paced replay measures its timing error");
    eprintln!(
        "paced replay timing error: p50 {:?}, p99 {:?}, max {:?}",
        timing.p50, timing.p99, timing.max
    );
    assert!(timing.p50 <= timing.p99 && timing.p99 <= timing.max);
    publisher.close(common::TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_recorder_leaves_a_readable_file_losing_at_most_a_second() {
    use peerlab::event::proto::ebpf_extractor::{ebpf::EbpfEvent, validation, Ebpf};
    use peerlab::event::proto::event::event::PeerObserverEvent;
    use peerlab::event::Event;
    use prost::Message as _;
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("killed.mcap");
    let nats = NatsServer::start(&common::nats_server()).expect("nats");
    let mut recorder = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["record", "-a", &nats.url(), "-o"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("recorder starts");
    // The recorder logs nothing on start; wait until the file exists (header written after subscribing).
    tokio::time::timeout(common::TIMEOUT, async {
        while !file.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("recording file created");
    let publisher = common::local_publisher(&nats.url()).await;
    // One event per millisecond for 2.5 s; Event.timestamp carries the send time in ms.
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_millis(2500) {
        ticker.tick().await;
        let event = Event {
            timestamp: peerlab::event::now_millis(),
            peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
                ebpf_event: Some(EbpfEvent::Validation(validation::ValidationEvent {
                    event: Some(validation::validation_event::Event::BlockConnected(
                        validation::BlockConnected {
                            hash: vec![7; 32],
                            height: sent as i32,
                            transactions: 1,
                            inputs: 0,
                            sigops: 0,
                            connection_time: 1,
                        },
                    )),
                })),
            })),
        };
        publisher.publish_event(&event);
        sent += 1;
    }
    // Everything offered so far reached the server (and so the recorder's socket).
    let stats = publisher.stats();
    tokio::time::timeout(common::TIMEOUT, async {
        while stats.snapshot().sent < sent {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("confirmed");
    let killed_at = peerlab::event::now_millis();
    recorder.kill().expect("SIGKILL");
    let _ = recorder.wait();
    let stderr = recorder.stderr.take().map(|s| {
        BufReader::new(s)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let recording = read_recording(&file).expect("a killed recorder's file is readable");
    assert!(recording.truncated.is_some(), "no footer after SIGKILL");
    let heights: Vec<i32> = recording
        .messages
        .iter()
        .filter(|m| &*m.subject == "validation")
        .map(|m| {
            match Event::decode(m.data.as_slice())
                .expect("decodes")
                .peer_observer_event
            {
                Some(PeerObserverEvent::EbpfExtractor(Ebpf {
                    ebpf_event:
                        Some(EbpfEvent::Validation(validation::ValidationEvent {
                            event: Some(validation::validation_event::Event::BlockConnected(b)),
                        })),
                })) => b.height,
                _ => panic!("unexpected event"),
            }
        })
        .collect();
    assert!(
        !heights.is_empty(),
        "at least one chunk was flushed in 2.5 s; stderr: {stderr:?}"
    );
    assert!(
        heights.iter().enumerate().all(|(i, h)| *h == i as i32),
        "the file holds a gap-free prefix"
    );
    let last = recording
        .messages
        .iter()
        .rfind(|m| &*m.subject == "validation")
        .expect("last");
    let lost_ms = killed_at.saturating_sub(last.publish_time / 1_000_000);
    eprintln!(
        "SIGKILL lost the last {lost_ms} ms ({} of {sent} events)",
        sent - heights.len() as u64
    );
    // The recorder flushes a chunk every second; allow the scheduling slack of this machine.
    assert!(lost_ms <= 1_250, "lost {lost_ms} ms of events");
    publisher.close(common::TIMEOUT).await;
}
