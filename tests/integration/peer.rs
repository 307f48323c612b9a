//! The scriptable peer against a real regtest bitcoind: handshake, pings, and how the node
//! treats oversized `addr`, wrong magic and bad checksums (shared/spec/bitcoin-core.md §5).

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use peerlab::node::{RegtestConfig, RegtestNode};
use peerlab::peer::{
    addr_message, frame, NetworkMessage, Peer, PeerConfig, Received, DEFAULT_USER_AGENT,
};
use serde_json::Value;

/// How long the node gets to react to something we sent.
const REACT: Duration = Duration::from_secs(10);

fn start_node() -> RegtestNode {
    RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("regtest node starts")
}

/// A peer that completed the handshake with `node`.
async fn connected(node: &RegtestNode) -> Peer {
    let mut peer = Peer::connect(SocketAddr::V4(node.p2p_addr()), PeerConfig::default())
        .await
        .expect("TCP connect");
    peer.handshake().await.expect("handshake");
    peer
}

fn is_pong(received: &Received, nonce: u64) -> bool {
    received.message == Some(NetworkMessage::Pong(nonce))
}

#[tokio::test]
async fn handshake_is_seen_by_the_node() {
    let node = start_node();
    let mut peer = Peer::connect(SocketAddr::V4(node.p2p_addr()), PeerConfig::default())
        .await
        .expect("TCP connect");
    let theirs = peer.handshake().await.expect("handshake");
    assert!(theirs.version >= 70016, "node version {}", theirs.version);
    assert!(
        theirs.user_agent.contains("Satoshi"),
        "user agent {:?}",
        theirs.user_agent
    );
    assert_eq!(peer.their_version(), Some(&theirs));

    let peers = common::wait_for_peers(REACT, &node, "our inbound peer", |peers| {
        peers.len() == 1 && peers[0]["subver"] == DEFAULT_USER_AGENT
    })
    .await;
    assert_eq!(peers[0]["inbound"], true);
    assert_eq!(peers[0]["version"], 70016);
    assert_eq!(
        peers[0]["addr"].as_str(),
        Some(peer.local_addr().to_string().as_str())
    );
    peer.close().await;
}

#[tokio::test]
async fn pings_are_answered_and_the_connection_stays_up() {
    let node = start_node();
    let mut peer = connected(&node).await;

    let first = peer
        .recv_until(|r| r.is("sendcmpct") || r.is("ping"), REACT)
        .await
        .expect("sendcmpct or ping after the handshake");
    if !first.is("ping") {
        peer.recv_until(|r| r.is("ping"), REACT)
            .await
            .expect("the node's first ping");
    }
    // The pong went out before recv_until returned; the node records its round trip.
    common::wait_for_peers(REACT, &node, "a measured ping time", |peers| {
        peers.len() == 1 && peers[0].get("pingtime").is_some()
    })
    .await;

    peer.send(NetworkMessage::Ping(42))
        .await
        .expect("send ping");
    peer.recv_until(|r| is_pong(r, 42), REACT)
        .await
        .expect("the node answers our ping");
    common::wait_for_peers(REACT, &node, "still connected", |peers| peers.len() == 1).await;
}

#[tokio::test]
async fn oversized_addr_gets_us_disconnected() {
    let node = start_node();
    let mut peer = connected(&node).await;
    // Control: the limit itself is fine.
    peer.send(addr_message(1000, 1)).await.expect("send addr");
    peer.send(NetworkMessage::Ping(1000))
        .await
        .expect("send ping");
    peer.recv_until(|r| is_pong(r, 1000), REACT)
        .await
        .expect("1000 addresses are accepted");

    let NetworkMessage::Addr(entries) = addr_message(1001, 2) else {
        unreachable!("addr_message builds addr")
    };
    assert_eq!(entries.len(), 1001);
    peer.send(NetworkMessage::Addr(entries))
        .await
        .expect("send addr");
    peer.wait_closed(REACT)
        .await
        .expect("the node disconnects a misbehaving local peer");
    common::wait_for_peers(REACT, &node, "peer gone", <[Value]>::is_empty).await;
    let log = std::fs::read_to_string(node.datadir().join("regtest").join("debug.log"))
        .expect("debug.log");
    assert!(
        log.contains("addr message size = 1001"),
        "no misbehaviour logged"
    );
}

#[tokio::test]
async fn wrong_magic_gets_us_disconnected() {
    let node = start_node();
    let mut peer = connected(&node).await;
    let mainnet = [0xf9, 0xbe, 0xb4, 0xd9];
    peer.send_bytes(&frame(mainnet, "ping", &7u64.to_le_bytes()))
        .await
        .expect("send frame");
    peer.wait_closed(REACT)
        .await
        .expect("the node disconnects on wrong magic");
}

#[tokio::test]
async fn bad_checksum_is_ignored() {
    let node = start_node();
    let mut peer = connected(&node).await;
    let magic = peer.config().magic;
    let mut bad = frame(magic, "ping", &1111u64.to_le_bytes());
    bad[20] ^= 0xff;
    peer.send_bytes(&bad).await.expect("send corrupt frame");
    peer.send(NetworkMessage::Ping(2222))
        .await
        .expect("send ping");

    let mut pongs = Vec::new();
    peer.recv_until(
        |r| {
            if let Some(NetworkMessage::Pong(nonce)) = r.message {
                pongs.push(nonce);
            }
            is_pong(r, 2222)
        },
        REACT,
    )
    .await
    .expect("the node still answers after a bad checksum");
    assert_eq!(pongs, [2222], "the corrupt ping must not be answered");
    common::wait_for_peers(REACT, &node, "still connected", |peers| peers.len() == 1).await;
}
