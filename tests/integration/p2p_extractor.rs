//! The P2P extractor against a real regtest bitcoind and a real nats-server: the node dials
//! it (`addnode ... onetry`), its fee filter arrives (the IBD maximum, then the relay fee once
//! blocks are mined), ping durations arrive and are positive, a transaction sent to
//! the node arrives as an `inventory_announcement` with its wtxid (we announce wtxidrelay),
//! and an address a test peer announces to the node is relayed to the extractor as an
//! `address_announcement`.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash as _;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::ServiceFlags;
use bitcoin::Amount;
use peerlab::bus::{NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::proto::bitcoin_primitives::{address, inventory_item::Item};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::p2p_extractor::p2p::P2pEvent;
use peerlab::event::{strict, Event};
use peerlab::extractors::p2p::{P2pConfig, P2pExtractor, P2pNetwork};
use peerlab::extractors::Extractor as _;
use peerlab::node::{NodeRpc as _, RegtestConfig, RegtestNode};
use peerlab::peer::{Peer, PeerConfig};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;
use serde_json::{json, Value};

/// The next `p2p-extractor` event satisfying `pick`, bounded by the suite's timeout.
async fn next_p2p<T>(
    subscriber: &mut Subscriber,
    mut pick: impl FnMut(P2pEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(common::TIMEOUT, async {
        loop {
            let message = subscriber.next().await.expect("subscription open");
            strict::check_event(&message.payload).expect("strictly valid");
            let event = Event::decode(message.payload.as_ref()).expect("an event");
            if let Some(PeerObserverEvent::P2pExtractor(p2p)) = event.peer_observer_event {
                if let Some(found) = p2p.p2p_event.and_then(&mut pick) {
                    return found;
                }
            }
        }
    })
    .await
    .expect("the event arrives in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_dials_the_extractor_which_publishes_pings_invs_and_addrs() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(nats.url());
    let mut subscriber =
        Subscriber::connect(&options, SubjectScheme::Flat, &["p2p-extractor".into()])
            .await
            .expect("subscriber");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor = P2pExtractor::start(
        P2pConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ping_interval: Duration::from_secs(1),
            ..P2pConfig::new(P2pNetwork::Regtest)
        },
        publisher,
        Shutdown::new(),
    )
    .expect("listens");
    let listening = extractor.local_addr();
    let config = RegtestConfig {
        extra_args: vec!["-v2transport=0".into()],
        ..RegtestConfig::new(common::bitcoind())
    };
    let node = tokio::task::block_in_place(|| RegtestNode::start(&config)).expect("node");
    let _: Value = tokio::task::block_in_place(|| {
        node.rpc("addnode", &[json!(listening.to_string()), json!("onetry")])
    })
    .expect("addnode");

    // Right after the handshake the node sends its fee filter: while in IBD (nothing mined
    // yet) the largest its fee rounder has (about 0.1 BTC/kvB), so that we announce no
    // transactions.
    let ibd_filter = next_p2p(&mut subscriber, |e| match e {
        P2pEvent::FeefilterAnnouncement(fee) => Some(fee),
        _ => None,
    })
    .await;
    assert!(ibd_filter > 1_000_000, "IBD filter {ibd_filter} sat/kvB");

    // Pings: the node answers within the interval, so the duration is positive and small.
    let duration = next_p2p(&mut subscriber, |e| match e {
        P2pEvent::PingDuration(p) => Some(p.duration),
        _ => None,
    })
    .await;
    assert!(duration > 0 && duration < 10_000_000_000, "{duration} ns");

    // A transaction: announced to us by its wtxid.
    let tx = tokio::task::block_in_place(|| {
        node.mine(101)?;
        let coin = node.coinbase_coin(1)?;
        let tx = node.spend(&coin, Amount::from_sat(2_000), true)?;
        node.send(&tx)?;
        Ok::<_, peerlab::node::NodeError>(tx)
    })
    .expect("a transaction in the mempool");
    // Out of IBD (the first mined block is recent) it sends its real filter at once: the
    // minimum relay fee, far below the IBD one (it precedes the transaction's inv).
    let relay_filter = next_p2p(&mut subscriber, |e| match e {
        P2pEvent::FeefilterAnnouncement(fee) => Some(fee),
        _ => None,
    })
    .await;
    let network: Value =
        tokio::task::block_in_place(|| node.rpc("getnetworkinfo", &[])).expect("getnetworkinfo");
    let relay_fee_sat = (network["relayfee"].as_f64().expect("relayfee") * 1e8).round() as i64;
    assert!(
        relay_filter >= relay_fee_sat && relay_filter < ibd_filter,
        "filter {relay_filter} sat/kvB after IBD; relay fee {relay_fee_sat}"
    );
    let wtxid = tx.compute_wtxid().to_byte_array().to_vec();
    next_p2p(&mut subscriber, |e| match e {
        P2pEvent::InventoryAnnouncement(inv) => inv
            .inventory
            .iter()
            .any(|i| matches!(&i.item, Some(Item::Wtx(h)) if *h == wtxid))
            .then_some(()),
        _ => None,
    })
    .await;

    // An address from a test peer: relayed to the extractor (the only other peer that takes
    // addresses) on the node's next address trickle, which a mock-clock jump brings forward.
    let mut peer = Peer::connect(node.p2p_addr().into(), PeerConfig::default())
        .await
        .expect("connect");
    peer.handshake().await.expect("handshake");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let announced = SocketAddr::from(([93, 184, 216, 34], 8333));
    peer.send(NetworkMessage::Addr(vec![(
        now as u32,
        Address::new(&announced, ServiceFlags::NETWORK | ServiceFlags::WITNESS),
    )]))
    .await
    .expect("send addr");
    // The node has processed it once it answers a ping sent after it.
    peer.send(NetworkMessage::Ping(77))
        .await
        .expect("send ping");
    peer.recv_until(
        |r| matches!(r.message, Some(NetworkMessage::Pong(77))),
        common::TIMEOUT,
    )
    .await
    .expect("pong after the addr");
    let _: Value = tokio::task::block_in_place(|| node.rpc("setmocktime", &[json!(now + 600)]))
        .expect("setmocktime");
    next_p2p(&mut subscriber, |e| match e {
        P2pEvent::AddressAnnouncement(a) => a
            .addresses
            .iter()
            .any(|addr| {
                addr.port == 8333
                    && addr.address == Some(address::Address::Ipv4("93.184.216.34".into()))
            })
            .then_some(()),
        _ => None,
    })
    .await;

    let counters = extractor.stop().await.expect("stops");
    assert!(counters.p2p_connections >= 1, "{counters:?}");
    assert_eq!(counters.publish_dropped, 0, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_an_error_at_start_and_a_wrong_magic_ends_only_that_connection() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = P2pExtractor::start(
        P2pConfig {
            listen: taken.local_addr().expect("addr"),
            ..P2pConfig::new(P2pNetwork::Regtest)
        },
        publisher.clone(),
        Shutdown::new(),
    )
    .err()
    .expect("a taken port is refused");
    assert!(error.to_string().contains("cannot listen on"), "{error}");

    let extractor = P2pExtractor::start(
        P2pConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..P2pConfig::new(P2pNetwork::Regtest)
        },
        publisher,
        Shutdown::new(),
    )
    .expect("listens");
    // A mainnet frame on a regtest extractor: that connection ends, the extractor stays.
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(extractor.local_addr())
            .await
            .expect("connect");
        let frame = peerlab::p2p::frame([0xf9, 0xbe, 0xb4, 0xd9], "ping", &[0; 8]);
        tokio::io::AsyncWriteExt::write_all(&mut stream, &frame)
            .await
            .expect("write");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            common::TIMEOUT,
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
        )
        .await
        .expect("the extractor closes the connection");
        assert!(read.is_ok_and(|n| n == 0), "nothing answered");
    }
    let counters = extractor.stop().await.expect("stops");
    assert_eq!(counters.p2p_connections, 2);
    assert_eq!(counters.malformed, 2, "{counters:?}");
}
