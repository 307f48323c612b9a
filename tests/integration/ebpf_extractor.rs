//! The eBPF extractor against a real regtest bitcoind, real eBPF on its tracepoints, and a
//! real nats-server: what the node does arrives on the bus, exactly.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash as _;
use bitcoin::Amount;
use peerlab::bus::{
    BusMessage, NatsOptions, Publisher, PublisherConfig, SubjectScheme, Subscriber,
};
use peerlab::event::proto::bitcoin_primitives::ConnType;
use peerlab::event::proto::ebpf_extractor::connection::connection_event;
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::mempool::mempool_event;
use peerlab::event::proto::ebpf_extractor::message::{message_event::Msg, MessageEvent};
use peerlab::event::proto::ebpf_extractor::validation::validation_event;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::{strict, Event};
use peerlab::extractors::ebpf::{EbpfConfig, EbpfExtractor, Target};
use peerlab::extractors::Extractor as _;
use peerlab::node::{NodeRpc, RegtestConfig, RegtestNode};
use peerlab::peer::{addr_message, Peer, PeerConfig};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;

/// nats-server, a regtest node, an extractor tracing it, and a subscriber on every subject.
struct Stack {
    _nats: NatsServer,
    node: RegtestNode,
    extractor: Option<EbpfExtractor>,
    subscriber: Subscriber,
}

impl Stack {
    async fn start() -> Stack {
        Stack::start_with(&[], |config| config).await
    }

    /// A stack whose subscriber listens to `subjects` (all event subjects when empty) and
    /// whose extractor configuration `configure` adjusts; returns once the node is traced.
    async fn start_with(
        subjects: &[&str],
        configure: impl FnOnce(EbpfConfig) -> EbpfConfig,
    ) -> Stack {
        let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
        let options = NatsOptions::local(nats.url());
        let subjects: Vec<String> = subjects.iter().map(|s| s.to_string()).collect();
        let subscriber = Subscriber::connect(&options, SubjectScheme::Flat, &subjects)
            .await
            .expect("subscribe");
        let publisher =
            Publisher::connect(&options, SubjectScheme::Flat, PublisherConfig::default())
                .await
                .expect("publisher");
        let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
        let pid = node.pid().expect("pid");
        let extractor = EbpfExtractor::start(
            configure(EbpfConfig::new(common::bitcoind(), Target::Pid(pid))),
            Arc::new(publisher),
            Shutdown::new(),
        )
        .expect("extractor attaches");
        let stats = extractor.stats();
        common::wait_traced(&stats, pid).await;
        Stack {
            _nats: nats,
            node,
            extractor: Some(extractor),
            subscriber,
        }
    }

    /// Next event (strictly checked) satisfying `pred`.
    async fn next_where(&mut self, mut pred: impl FnMut(&Event) -> bool) -> Event {
        tokio::time::timeout(common::TIMEOUT, async {
            loop {
                let message: BusMessage = self.subscriber.next().await.expect("subscription open");
                strict::check_event(&message.payload)
                    .expect("every published event passes the strict check");
                let event = Event::decode(message.payload.as_ref()).expect("decodes");
                if pred(&event) {
                    return event;
                }
            }
        })
        .await
        .expect("expected event within the timeout")
    }
}

fn ebpf(event: &Event) -> Option<&EbpfEvent> {
    match event.peer_observer_event.as_ref()? {
        PeerObserverEvent::EbpfExtractor(e) => e.ebpf_event.as_ref(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_blocks_arrive_as_block_connected_with_rpc_heights_and_hashes() {
    let mut stack = Stack::start().await;
    let hashes = tokio::task::block_in_place(|| stack.node.mine(5)).expect("mine");
    for (i, hash) in hashes.iter().enumerate() {
        let event = stack
            .next_where(|e| matches!(ebpf(e), Some(EbpfEvent::Validation(_))))
            .await;
        let Some(EbpfEvent::Validation(v)) = ebpf(&event) else {
            unreachable!()
        };
        let Some(validation_event::Event::BlockConnected(block)) = &v.event else {
            panic!("not block_connected")
        };
        assert_eq!(block.height, i as i32 + 1);
        // Internal byte order: the hash's raw bytes, i.e. the reverse of RPC's display hex.
        assert_eq!(
            block.hash,
            hash.to_byte_array().to_vec(),
            "block {} hash",
            i + 1
        );
        assert_eq!(block.transactions, 1);
    }
    stack.assert_nothing_lost().await;
}

fn mempool(event: &Event) -> Option<&mempool_event::Event> {
    match ebpf(event)? {
        EbpfEvent::Mempool(m) => m.event.as_ref(),
        _ => None,
    }
}

fn connection(event: &Event) -> Option<&connection_event::Event> {
    match ebpf(event)? {
        EbpfEvent::Connection(c) => c.event.as_ref(),
        _ => None,
    }
}

fn message(event: &Event) -> Option<&MessageEvent> {
    match ebpf(event)? {
        EbpfEvent::Message(m) => Some(m),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_arrive_as_added_replaced_and_rejected() {
    let mut stack = Stack::start().await;
    let node = &stack.node;
    let (first, replacement, immature_spend) = tokio::task::block_in_place(|| {
        node.mine(101).expect("mine");
        let coin = node.coinbase_coin(1).expect("mature coin");
        let first = node
            .spend(&coin, Amount::from_sat(1_000), true)
            .expect("spend");
        node.send(&first).expect("send first");
        let replacement = node
            .spend(&coin, Amount::from_sat(5_000), true)
            .expect("spend");
        node.send(&replacement).expect("send replacement");
        // Block 101's coinbase has one confirmation: spending it is invalid.
        let immature = node.coinbase_coin(101).expect("immature coin");
        let immature_spend = node
            .spend(&immature, Amount::from_sat(1_000), false)
            .expect("spend");
        (first, replacement, immature_spend)
    });
    let rejection =
        tokio::task::block_in_place(|| stack.node.send(&immature_spend)).expect_err("rejected");
    let entry: serde_json::Value = tokio::task::block_in_place(|| {
        stack.node.rpc(
            "getmempoolentry",
            &[serde_json::json!(replacement.compute_txid().to_string())],
        )
    })
    .expect("entry");
    let first_id = first.compute_txid().to_byte_array().to_vec();
    let replacement_id = replacement.compute_txid().to_byte_array().to_vec();

    let added = stack
        .next_where(|e| matches!(mempool(e), Some(mempool_event::Event::Added(_))))
        .await;
    let Some(mempool_event::Event::Added(added)) = mempool(&added) else {
        unreachable!()
    };
    assert_eq!(added.txid, first_id, "txid in internal byte order");
    assert_eq!(added.fee, 1_000);
    assert_eq!(added.vsize as u64, first.vsize() as u64);

    let replaced = stack
        .next_where(|e| matches!(mempool(e), Some(mempool_event::Event::Replaced(_))))
        .await;
    let Some(mempool_event::Event::Replaced(replaced)) = mempool(&replaced) else {
        unreachable!()
    };
    assert_eq!(replaced.replaced_txid, first_id);
    assert_eq!(replaced.replacement_id, replacement_id);
    assert_eq!(
        (replaced.replaced_fee, replaced.replacement_fee),
        (1_000, 5_000)
    );
    assert!(replaced.replaced_by_transaction);

    let added = stack
        .next_where(|e| matches!(mempool(e), Some(mempool_event::Event::Added(_))))
        .await;
    let Some(mempool_event::Event::Added(added)) = mempool(&added) else {
        unreachable!()
    };
    assert_eq!(added.txid, replacement_id);
    assert_eq!(added.fee, 5_000);
    assert_eq!(
        Some(added.vsize as u64),
        entry["vsize"].as_u64(),
        "vsize equals RPC's"
    );
    assert_eq!(
        entry["fees"]["base"].as_f64(),
        Some(0.00005),
        "fee equals RPC's"
    );

    let rejected = stack
        .next_where(|e| matches!(mempool(e), Some(mempool_event::Event::Rejected(_))))
        .await;
    let Some(mempool_event::Event::Rejected(rejected)) = mempool(&rejected) else {
        unreachable!()
    };
    assert_eq!(
        rejected.txid,
        immature_spend.compute_txid().to_byte_array().to_vec()
    );
    assert!(!rejected.reason.is_empty());
    assert!(
        rejection.to_string().contains(&rejected.reason),
        "RPC said {rejection}, tracepoint said {}",
        rejected.reason
    );
    stack.assert_nothing_lost().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_seen_connecting_handshaking_misbehaving_and_leaving() {
    let mut stack = Stack::start().await;
    let config = PeerConfig {
        user_agent: "/peerlab-test:1.2.3/".into(),
        start_height: 7,
        ..PeerConfig::default()
    };
    let mut peer = Peer::connect(stack.node.p2p_addr().into(), config)
        .await
        .expect("connect");
    let their_version = peer.handshake().await.expect("handshake");
    let our_nonce = peer.nonce();
    let our_addr = peer.local_addr().to_string();

    let inbound = stack
        .next_where(|e| matches!(connection(e), Some(connection_event::Event::Inbound(_))))
        .await;
    let Some(connection_event::Event::Inbound(inbound)) = connection(&inbound) else {
        unreachable!()
    };
    assert_eq!(inbound.conn.addr, our_addr);
    assert_eq!(inbound.conn.conn_type, ConnType::Inbound as i32);
    assert_eq!(inbound.existing_connections, 1);
    let peer_id = inbound.conn.peer_id;

    // Our VERSION as the node received it.
    let ours = stack
        .next_where(|e| message(e).is_some_and(|m| m.meta.inbound && m.meta.command == "version"))
        .await;
    let m = message(&ours).expect("message");
    assert_eq!(m.meta.peer_id, peer_id);
    let Some(Msg::Version(v)) = &m.msg else {
        panic!("version not decoded: {:?}", m.msg)
    };
    assert_eq!(
        (v.version, v.nonce, v.user_agent.as_str(), v.start_height),
        (70016, our_nonce, "/peerlab-test:1.2.3/", 7)
    );
    assert_eq!(v.services, PeerConfig::default().services);

    // The node's VERSION as it sent it: equal to what our peer decoded.
    let theirs = stack
        .next_where(|e| message(e).is_some_and(|m| !m.meta.inbound && m.meta.command == "version"))
        .await;
    // By now the peer is known to the probes, which leave its strings unread: userspace
    // fills them in, so every message still names the peer fully.
    for seen in [&ours, &theirs] {
        let meta = &message(seen).expect("message").meta;
        assert_eq!(
            (meta.peer_id, meta.addr.as_str(), meta.conn_type),
            (peer_id, our_addr.as_str(), ConnType::Inbound as i32),
            "{} {}",
            meta.command,
            if meta.inbound { "in" } else { "out" }
        );
    }
    let Some(Msg::Version(v)) = &message(&theirs).expect("message").msg else {
        panic!("version not decoded")
    };
    assert_eq!(v.version, their_version.version);
    assert_eq!(v.nonce, their_version.nonce);
    assert_eq!(v.user_agent, their_version.user_agent);
    assert_eq!(v.services, their_version.services.to_u64());

    // More than 1000 addresses: misbehaving, then disconnected.
    peer.send(addr_message(1001, 42)).await.expect("send addr");
    let addr = stack
        .next_where(|e| message(e).is_some_and(|m| m.meta.inbound && m.meta.command == "addr"))
        .await;
    let Some(Msg::Addr(a)) = &message(&addr).expect("message").msg else {
        panic!("addr not decoded")
    };
    assert_eq!(a.addresses.len(), 1001);
    let misbehaving = stack
        .next_where(|e| matches!(connection(e), Some(connection_event::Event::Misbehaving(_))))
        .await;
    let Some(connection_event::Event::Misbehaving(mb)) = connection(&misbehaving) else {
        unreachable!()
    };
    assert_eq!(mb.id, peer_id);
    assert_eq!(mb.message, "addr message size = 1001");
    let closed = stack
        .next_where(|e| matches!(connection(e), Some(connection_event::Event::Closed(_))))
        .await;
    let Some(connection_event::Event::Closed(closed)) = connection(&closed) else {
        unreachable!()
    };
    assert_eq!(closed.conn.peer_id, peer_id);
    assert_eq!(closed.conn.addr, our_addr);
    peer.wait_closed(Duration::from_secs(10))
        .await
        .expect("the node hung up");
    stack.assert_nothing_lost().await;
}

impl Stack {
    /// Stops the extractor and checks that nothing was dropped anywhere on the way.
    async fn assert_nothing_lost(&mut self) {
        let stats = self
            .extractor
            .take()
            .expect("running")
            .stop()
            .await
            .expect("stops");
        common::assert_nothing_lost(&stats);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_again_after_bitcoind_is_killed_and_restarted() {
    let datadir = tempfile::tempdir().expect("datadir");
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(nats.url());
    let mut subscriber = Subscriber::connect(&options, SubjectScheme::Flat, &[])
        .await
        .expect("subscribe");
    let publisher = Publisher::connect(&options, SubjectScheme::Flat, PublisherConfig::default())
        .await
        .expect("pub");
    let config = RegtestConfig {
        datadir: Some(datadir.path().to_path_buf()),
        ..RegtestConfig::new(common::bitcoind())
    };
    let mut node = RegtestNode::start(&config).expect("node");
    let pid_file = datadir.path().join("regtest").join("bitcoind.pid");
    let extractor = EbpfExtractor::start(
        EbpfConfig::new(common::bitcoind(), Target::PidFile(pid_file)),
        Arc::new(publisher),
        Shutdown::new(),
    )
    .expect("extractor");
    let stats = extractor.stats();
    let wait_traced = |pid: u32| {
        let stats = stats.clone();
        async move {
            let started = std::time::Instant::now();
            common::wait_traced(&stats, pid).await;
            started.elapsed()
        }
    };
    wait_traced(node.pid().expect("pid")).await;

    let first = tokio::task::block_in_place(|| node.mine(1)).expect("mine");
    assert_eq!(
        next_block(&mut subscriber).await,
        (1, first[0].to_byte_array().to_vec())
    );

    tokio::task::block_in_place(|| node.restart()).expect("restart");
    let new_pid = node.pid().expect("pid");
    let took = wait_traced(new_pid).await;
    eprintln!("extractor switched to the restarted bitcoind {took:?} after it was up");
    let second = tokio::task::block_in_place(|| node.mine(1)).expect("mine after restart");
    // A killed node may lose its unflushed tip, so take the height from RPC.
    let height = tokio::task::block_in_place(|| node.height()).expect("height") as i32;
    assert_eq!(
        next_block(&mut subscriber).await,
        (height, second[0].to_byte_array().to_vec())
    );
    assert_eq!(stats.retargets.load(Ordering::Relaxed), 1);
    extractor.stop().await.expect("stops");
}

/// The next block_connected on the bus, as (height, hash).
async fn next_block(subscriber: &mut Subscriber) -> (i32, Vec<u8>) {
    tokio::time::timeout(common::TIMEOUT, async {
        loop {
            let message = subscriber.next().await.expect("open");
            let Ok(event) = Event::decode(message.payload.as_ref()) else {
                continue;
            };
            if let Some(EbpfEvent::Validation(v)) = ebpf(&event) {
                if let Some(validation_event::Event::BlockConnected(b)) = &v.event {
                    return (b.height, b.hash.clone());
                }
            }
        }
    })
    .await
    .expect("block_connected within the timeout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utxocache_group_reports_the_coinbase_being_added() {
    use peerlab::event::proto::peerlab::utxocache::utxocache_event;
    use peerlab::extractors::ebpf::ProbeGroups;

    let groups = ProbeGroups {
        net: false,
        mempool: false,
        validation: false,
        utxocache: true,
    };
    let Stack {
        _nats,
        node,
        extractor,
        mut subscriber,
    } = Stack::start_with(&["utxocache"], |c| EbpfConfig { groups, ..c }).await;
    let extractor = extractor.expect("running");
    tokio::task::block_in_place(|| node.mine(1)).expect("mine");
    let coinbase = tokio::task::block_in_place(|| node.coinbase_coin(1)).expect("coinbase");

    let found = tokio::time::timeout(common::TIMEOUT, async {
        loop {
            let message = subscriber.next().await.expect("open");
            assert_eq!(message.subject, "utxocache");
            strict::check_event(&message.payload).expect("strict");
            let event = Event::decode(message.payload.as_ref()).expect("decodes");
            let Some(EbpfEvent::Utxocache(u)) = ebpf(&event) else {
                panic!("not a utxocache event")
            };
            if let Some(utxocache_event::Event::Add(coin)) = &u.event {
                if coin.txid == coinbase.outpoint.txid.to_byte_array().to_vec() {
                    return coin.clone();
                }
            }
        }
    })
    .await
    .expect("utxocache:add for the coinbase");
    assert_eq!(
        (found.vout, found.height, found.value, found.coinbase),
        (coinbase.outpoint.vout, 1, 5_000_000_000, true)
    );
    let stats = extractor.stop().await.expect("stops");
    assert_eq!(stats.dropped_in_kernel, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_published_for_tools_to_read() {
    let stats_subject = SubjectScheme::Flat.stats_subject(EbpfExtractor::COMPONENT);

    let Stack {
        _nats,
        node,
        extractor,
        subscriber: mut stats_sub,
    } = Stack::start_with(&[stats_subject.as_str()], |c| EbpfConfig {
        report_period: Duration::from_millis(200),
        ..c
    })
    .await;
    let extractor = extractor.expect("running");
    let pid = node.pid().expect("pid");
    tokio::task::block_in_place(|| node.mine(3)).expect("mine");
    let snapshot = tokio::time::timeout(common::TIMEOUT, async {
        loop {
            let message = stats_sub.next().await.expect("open");
            let json: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
            if json["probes"]["validation:block_connected"]["emitted"].as_u64() == Some(3) {
                return json;
            }
        }
    })
    .await
    .expect("a snapshot counting the 3 blocks");
    assert_eq!(snapshot["traced_pid"].as_u64(), Some(u64::from(pid)));
    assert_eq!(snapshot["dropped_in_kernel"].as_u64(), Some(0));
    extractor.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ring_drops_are_counted_never_silent() {
    use peerlab::extractors::ebpf::{ProbeGroups, ProbeId, RingSizes};

    // One page of ring, no wake-ups and a slow drain: 100 blocks cannot all fit.
    let Stack {
        _nats,
        node,
        extractor,
        mut subscriber,
    } = Stack::start_with(&["validation"], |c| EbpfConfig {
        groups: ProbeGroups {
            net: false,
            mempool: false,
            validation: true,
            utxocache: false,
        },
        rings: RingSizes {
            events: 4096,
            ..RingSizes::default()
        },
        wakeup_bytes: 1 << 30,
        drain_interval: Duration::from_secs(3600),
        ..c
    })
    .await;
    let extractor = extractor.expect("running");
    tokio::task::block_in_place(|| node.mine(100)).expect("mine");
    let stats = extractor.stop().await.expect("stops");
    let probe = stats.probes[ProbeId::BlockConnected.tracepoint()];
    let (emitted, dropped) = (probe.emitted, probe.dropped);
    assert!(
        dropped > 0,
        "a 4 KiB ring must overflow: emitted {emitted}, dropped {dropped}"
    );
    assert_eq!(
        emitted + dropped,
        100,
        "every probe hit is either emitted or counted as dropped"
    );
    let mut received = 0;
    while received < emitted {
        tokio::time::timeout(common::TIMEOUT, subscriber.next())
            .await
            .expect("emitted events arrive")
            .expect("open");
        received += 1;
    }
    assert_eq!(received, emitted);
}

/// Regression (issue 9.1): with a client subscribed to `>` (as `nats sub '>'` is), the
/// extractor used to deliver nothing and count every event as dropped. Under a ping flood
/// every ping now reaches a `*` subscriber exactly once, and nothing is dropped or re-sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wildcard_subscriber_costs_the_extractor_nothing() {
    use futures::StreamExt as _;
    const PINGS: u64 = 5_000;
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let bystander = async_nats::connect(nats.url()).await.expect("bystander");
    let mut everything = bystander.subscribe(">").await.expect("subscribe >");
    let observer = async_nats::connect(nats.url()).await.expect("observer");
    let mut single_token = observer.subscribe("*").await.expect("subscribe *");
    bystander.flush().await.expect("flush");
    observer.flush().await.expect("flush");
    // The bystander reads (so the server never cuts it as a slow consumer) but never answers.
    let bystander_task = tokio::spawn(async move { while everything.next().await.is_some() {} });

    let publisher = common::local_publisher(&nats.url()).await;
    let publisher_stats = publisher.stats();
    let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
    let pid = node.pid().expect("pid");
    let extractor = EbpfExtractor::start(
        EbpfConfig::new(common::bitcoind(), Target::Pid(pid)),
        Arc::new(publisher),
        Shutdown::new(),
    )
    .expect("extractor attaches");
    let stats = extractor.stats();
    common::wait_traced(&stats, pid).await;

    let mut peer = Peer::connect(node.p2p_addr().into(), PeerConfig::default())
        .await
        .expect("connect");
    peer.handshake().await.expect("handshake");
    for nonce in 0..PINGS {
        peer.send(peerlab::peer::NetworkMessage::Ping(nonce))
            .await
            .expect("send ping");
    }

    let mut seen = std::collections::HashSet::new();
    tokio::time::timeout(common::TIMEOUT, async {
        while (seen.len() as u64) < PINGS {
            let received = single_token.next().await.expect("subscription open");
            let event = Event::decode(received.payload.as_ref()).expect("an event");
            if let Some(m) = message(&event) {
                if let (true, Some(Msg::Ping(ping))) = (m.meta.inbound, &m.msg) {
                    assert!(seen.insert(ping.value), "ping {} arrived twice", ping.value);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {PINGS} pings arrived", seen.len()));

    let stats = extractor.stop().await.expect("extractor stops");
    common::assert_nothing_lost(&stats);
    let publisher = publisher_stats.snapshot();
    assert_eq!(publisher.dropped(), 0, "{publisher:?}");
    assert_eq!(publisher.resent, 0, "nothing was sent twice: {publisher:?}");
    bystander_task.abort();
}

/// Two extractors of one fleet (`--subject-prefix fleet`, nodes `alpha` and `beta`) publish
/// their counters on two distinct subjects, and `peerlab inspect` of a recording of the
/// whole fleet lists both nodes' counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_of_a_fleet_publishes_its_counters_on_its_own_subject() {
    use peerlab::event::counters::ExtractorCounters;
    use peerlab::record::recorder::{RecordOptions, Recorder};

    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(nats.url());
    let fleet = |node: &str| SubjectScheme::Prefixed {
        prefix: "fleet".into(),
        node: node.into(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fleet.mcap");
    let recorder = Recorder::connect(
        &options,
        fleet("*"),
        &RecordOptions::new(&file, vec!["test".into()]),
    )
    .await
    .expect("recorder subscribes");
    let stop_recording = Shutdown::new();
    let recording = tokio::spawn(recorder.run(Default::default(), stop_recording.clone()));
    let mut counters_sub =
        Subscriber::connect(&options, fleet("*"), &[fleet("*").stats_wildcard()])
            .await
            .expect("subscribe to every node's counters");

    let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
    let pid = node.pid().expect("pid");
    let mut extractors = Vec::new();
    for name in ["alpha", "beta"] {
        let publisher = Publisher::connect(&options, fleet(name), PublisherConfig::default())
            .await
            .expect("publisher");
        let config = EbpfConfig {
            report_period: Duration::from_millis(200),
            ..EbpfConfig::new(common::bitcoind(), Target::Pid(pid))
        };
        let extractor =
            EbpfExtractor::start(config, Arc::new(publisher), Shutdown::new()).expect("extractor");
        common::wait_traced(&extractor.stats(), pid).await;
        extractors.push(extractor);
    }

    let mut subjects = std::collections::BTreeSet::new();
    tokio::time::timeout(common::TIMEOUT, async {
        while subjects.len() < 2 {
            let message = counters_sub.next().await.expect("open");
            let counters = ExtractorCounters::from_json(&message.payload).expect("typed counters");
            assert_eq!(counters.traced_pid, pid);
            subjects.insert(message.subject);
        }
    })
    .await
    .expect("counters of both nodes");
    assert_eq!(
        subjects.into_iter().collect::<Vec<_>>(),
        [
            "fleet.alpha.peerlab.stats.ebpf-extractor",
            "fleet.beta.peerlab.stats.ebpf-extractor"
        ]
    );
    for extractor in extractors {
        extractor.stop().await.expect("stops");
    }
    stop_recording.cancel();
    recording.await.expect("join").expect("recording");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["inspect", "--json"])
        .arg(&file)
        .output()
        .expect("inspect runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let nodes: Vec<&str> = summary["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter_map(|d| d["node"].as_str())
        .collect();
    assert_eq!(nodes, ["alpha", "beta"], "{summary:#}");
}
