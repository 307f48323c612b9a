//! The bus against a real nats-server: ordering and integrity, recovery after a server
//! restart with exact accounting, and the error for a server that never appears.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use peerlab::bus::{
    NatsOptions, Publisher, PublisherConfig, StatsSnapshot, SubjectScheme, Subscriber,
};
use peerlab::event::proto::ebpf_extractor::{ebpf, message, validation};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::{bitcoin_primitives, ebpf_extractor};
use peerlab::event::{Event, EventKind};
use peerlab::stack::NatsServer;
use prost::Message as _;

/// Event `seq`: alternately a ping (netmsg) and a block (validation), with a payload whose size
/// varies, so both routing and framing are exercised. `timestamp` carries the sequence number.
fn event(seq: u64) -> Event {
    let body = if seq.is_multiple_of(2) {
        ebpf::EbpfEvent::Message(message::MessageEvent {
            meta: message::Metadata {
                peer_id: seq,
                addr: format!("127.0.0.1:{}", 10_000 + seq % 50_000),
                conn_type: bitcoin_primitives::ConnType::Inbound as i32,
                command: "ping".into(),
                inbound: true,
                size: 8,
            },
            msg: Some(message::message_event::Msg::Ping(message::Ping {
                value: seq,
            })),
        })
    } else {
        ebpf::EbpfEvent::Validation(validation::ValidationEvent {
            event: Some(validation::validation_event::Event::BlockConnected(
                validation::BlockConnected {
                    hash: vec![(seq % 251) as u8; 32 + (seq % 97) as usize],
                    height: seq as i32,
                    transactions: 1,
                    inputs: 0,
                    sigops: 4,
                    connection_time: seq * 1000,
                },
            )),
        })
    };
    Event {
        timestamp: seq,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(ebpf_extractor::Ebpf {
            ebpf_event: Some(body),
        })),
    }
}

fn seq_of(payload: &[u8]) -> u64 {
    Event::decode(payload)
        .expect("received payload decodes")
        .timestamp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_intact_and_in_order() {
    let server = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(server.url());
    let mut subscriber = Subscriber::connect(&options, SubjectScheme::Flat, &[])
        .await
        .expect("subscribe");
    let publisher = Publisher::connect(&options, SubjectScheme::Flat, PublisherConfig::default())
        .await
        .expect("publisher");

    const N: u64 = 10_000;
    let sent: Vec<Bytes> = (0..N)
        .map(|i| Bytes::from(event(i).encode_to_vec()))
        .collect();
    for (i, payload) in sent.iter().enumerate() {
        let kind = EventKind::of(&event(i as u64)).expect("kind");
        assert!(
            publisher.publish_encoded(kind, payload.clone()),
            "event {i} dropped"
        );
    }

    for (i, expected) in sent.iter().enumerate() {
        let got = tokio::time::timeout(common::TIMEOUT, subscriber.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for event {i}"))
            .expect("subscription open");
        assert_eq!(
            &got.payload, expected,
            "event {i} differs or arrived out of order"
        );
        let expected_kind = if i.is_multiple_of(2) {
            EventKind::NetMsg
        } else {
            EventKind::Validation
        };
        assert_eq!(got.kind, Some(expected_kind));
        assert_eq!(got.subject, expected_kind.subject());
    }
    let stats = publisher.close(common::TIMEOUT).await;
    assert_eq!(stats.sent, N);
    assert_eq!(stats.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_recovers_from_a_server_restart_and_accounts_for_every_event() {
    let mut server = NatsServer::start(&common::nats_server()).expect("nats-server");
    // The subscriber reconnects within milliseconds; the publisher waits at least 300 ms, so the
    // subscription is back on the restarted server before events flow again (core NATS keeps
    // nothing for absent subscribers).
    let sub_options = NatsOptions {
        max_reconnect_delay: Duration::from_millis(20),
        ..NatsOptions::local(server.url())
    };
    let pub_options = NatsOptions {
        min_reconnect_delay: Duration::from_millis(300),
        max_reconnect_delay: Duration::from_millis(600),
        ..NatsOptions::local(server.url())
    };
    let mut subscriber = Subscriber::connect(&sub_options, SubjectScheme::Flat, &[])
        .await
        .expect("subscribe");
    // A small buffer, so the outage overflows it and drops must be counted.
    let config = PublisherConfig {
        max_buffered_events: 200,
        max_batch: 64,
        ..PublisherConfig::default()
    };
    let publisher = Publisher::connect(&pub_options, SubjectScheme::Flat, config)
        .await
        .expect("publisher");
    let stats = publisher.stats();

    // The producer offers one event every 500 us until told to stop; it can be paused.
    let (control, mut control_rx) = tokio::sync::watch::channel(Phase::Run);
    let producer = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_micros(500));
        let mut next = 0u64;
        loop {
            ticker.tick().await;
            match *control_rx.borrow_and_update() {
                Phase::Run => {}
                Phase::Pause => continue,
                Phase::Stop => break,
            }
            publisher.publish_event(&event(next));
            next += 1;
        }
        publisher
    });

    let mut seen = HashSet::new();
    let mut first_seen_order = Vec::new();
    wait_for(&stats, |s| s.offered >= 1_000).await;
    // Core NATS is at-most-once from server to subscriber: what the server accepted in the very
    // instant it shuts down may never reach the subscriber, and no publisher can know. So the
    // producer pauses for that instant and the subscriber catches up first; the outage itself
    // (buffering, drops, re-sends, reconnect) happens while the producer runs.
    control.send_replace(Phase::Pause);
    wait_for(&stats, |s| s.sent + s.dropped() == s.offered).await;
    let confirmed = stats.snapshot().sent;
    receive_until(&mut subscriber, &mut seen, &mut first_seen_order, confirmed).await;
    server.stop_gracefully();
    control.send_replace(Phase::Run);

    // Keep the server away while the producer offers 1,000 more events than the buffer holds.
    let at_stop = stats.snapshot().offered;
    wait_for(&stats, |s| s.offered >= at_stop + 1_200).await;
    server
        .restart()
        .expect("nats-server restarts on the same port");
    let sent_at_restart = stats.snapshot().sent;
    // Recovery: events flow again without anyone touching the publisher.
    wait_for(&stats, |s| s.sent >= sent_at_restart + 500).await;
    control.send_replace(Phase::Stop);

    let publisher = tokio::time::timeout(common::TIMEOUT, producer)
        .await
        .expect("producer ends")
        .expect("join");
    let final_stats = publisher.close(common::TIMEOUT).await;
    assert!(
        final_stats.dropped_buffer_full > 0,
        "the outage should overflow a 200-event buffer: {final_stats:?}"
    );
    assert_eq!(
        final_stats.dropped(),
        final_stats.dropped_buffer_full,
        "only buffer-full drops expected"
    );
    assert_eq!(
        final_stats.sent + final_stats.dropped(),
        final_stats.offered,
        "publisher accounting: {final_stats:?}"
    );

    // Every confirmed event reaches the subscriber (duplicates are possible after a re-send).
    receive_until(
        &mut subscriber,
        &mut seen,
        &mut first_seen_order,
        final_stats.sent,
    )
    .await;
    assert_eq!(
        seen.len() as u64 + final_stats.dropped(),
        final_stats.offered,
        "delivered + dropped must equal published: {final_stats:?}"
    );
    assert!(
        first_seen_order.windows(2).all(|w| w[0] < w[1]),
        "events arrived out of order"
    );
    assert!(
        seen.contains(&(final_stats.offered - 1)),
        "the last event must arrive after the restart"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    Pause,
    Stop,
}

/// Waits (bounded) until the publisher's counters satisfy `done`.
async fn wait_for(
    stats: &std::sync::Arc<peerlab::bus::PublisherStats>,
    done: impl Fn(&StatsSnapshot) -> bool,
) {
    let waited = tokio::time::timeout(common::TIMEOUT, async {
        while !done(&stats.snapshot()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out; publisher stats: {:?}",
        stats.snapshot()
    );
}

/// Receives until `target` distinct events were seen, recording first-seen order.
async fn receive_until(
    subscriber: &mut Subscriber,
    seen: &mut HashSet<u64>,
    order: &mut Vec<u64>,
    target: u64,
) {
    while (seen.len() as u64) < target {
        let message = tokio::time::timeout(common::TIMEOUT, subscriber.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out with {} of {target} confirmed events received",
                    seen.len()
                )
            })
            .expect("subscription open");
        let seq = seq_of(&message.payload);
        if seen.insert(seq) {
            order.push(seq);
        }
    }
}

#[tokio::test]
async fn unreachable_nats_gives_one_actionable_error_after_the_wait() {
    let port = peerlab::stack::free_port().expect("port");
    let options = NatsOptions {
        wait: Some(Duration::from_secs(1)),
        ..NatsOptions::local(format!("nats://127.0.0.1:{port}"))
    };
    let error = Publisher::connect(&options, SubjectScheme::Flat, PublisherConfig::default())
        .await
        .err()
        .expect("no server listens there");
    let text = error.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")),
        "names the address: {text}"
    );
    assert!(text.contains("within 1s"), "says how long it tried: {text}");
    assert!(
        text.contains("-a/--nats-address"),
        "says what to do: {text}"
    );
}

#[tokio::test]
async fn prefixed_scheme_routes_by_node() {
    let server = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(server.url());
    let fleet = |node: &str| SubjectScheme::Prefixed {
        prefix: "fleet".into(),
        node: node.into(),
    };
    let mut all_nodes = Subscriber::connect(&options, fleet("*"), &[])
        .await
        .expect("subscribe");
    let a = Publisher::connect(&options, fleet("alpha"), PublisherConfig::default())
        .await
        .expect("pub a");
    let b = Publisher::connect(&options, fleet("beta"), PublisherConfig::default())
        .await
        .expect("pub b");
    assert!(a.publish_event(&event(1)));
    a.close(common::TIMEOUT).await;
    assert!(b.publish_event(&event(2)));
    b.close(common::TIMEOUT).await;
    let first = tokio::time::timeout(common::TIMEOUT, all_nodes.next())
        .await
        .expect("first")
        .expect("open");
    let second = tokio::time::timeout(common::TIMEOUT, all_nodes.next())
        .await
        .expect("second")
        .expect("open");
    assert_eq!(
        (first.subject.as_str(), first.node.as_deref()),
        ("fleet.alpha.validation", Some("alpha"))
    );
    assert_eq!(
        (second.subject.as_str(), second.node.as_deref()),
        ("fleet.beta.netmsg", Some("beta"))
    );
}

/// Regression (issue 9.1): a client subscribed to the full wildcard `>` (what `nats sub '>'`
/// does) used to swallow every batch confirmation, so nothing was confirmed, every batch was
/// re-sent and every event counted as dropped. Now every event arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wildcard_subscriber_does_not_stall_the_publisher() {
    let server = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(server.url());
    // The bystander subscribes to everything and never answers anything.
    let bystander = async_nats::connect(server.url()).await.expect("bystander");
    let mut everything = bystander.subscribe(">").await.expect("subscribe >");
    let observer = async_nats::connect(server.url()).await.expect("observer");
    let mut single_token = observer.subscribe("*").await.expect("subscribe *");
    bystander.flush().await.expect("flush");
    observer.flush().await.expect("flush");
    let drain_bystander = tokio::spawn(async move {
        use futures::StreamExt as _;
        let mut seen = 0u64;
        while everything.next().await.is_some() {
            seen += 1;
        }
        seen
    });

    let publisher = Publisher::connect(&options, SubjectScheme::Flat, PublisherConfig::default())
        .await
        .expect("publisher");
    const N: u64 = 40_000;
    for i in 0..N {
        assert!(publisher.publish_event(&event(i)), "event {i} dropped");
    }
    let stats = publisher.close(common::TIMEOUT).await;

    let mut seen = HashSet::new();
    while (seen.len() as u64) < N {
        use futures::StreamExt as _;
        let message = tokio::time::timeout(common::TIMEOUT, single_token.next())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {N} events received", seen.len()))
            .expect("subscription open");
        let seq = seq_of(&message.payload);
        assert!(seen.insert(seq), "event {seq} arrived twice");
    }
    // No duplicate can still be on its way: nothing was sent twice.
    assert_eq!(stats.sent, N, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.resent, 0, "{stats:?}");
    drop(bystander);
    drain_bystander.abort();
}
