//! Scripted peer behaviours (`peerlab::peer::run_peer`) against a real regtest bitcoind,
//! checking Bitcoin Core's documented reactions (shared/spec/bitcoin-core.md §5).

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use peerlab::attack::chain::discover_tip;
use peerlab::attack::{run_peer, PeerOutcome};
use peerlab::node::{cached_installation, NodeRpc, RegtestConfig, RegtestNode};
use peerlab::peer::{Peer, PeerConfig, DEFAULT_USER_AGENT};
use peerlab::scenario::{
    AddrFlood, AddrVersion, Behaviour, InvFlood, Malformed, MalformedKind, PingFlood, TxKind,
    TxSpam, VersionAbuse,
};
use peerlab::shutdown::Shutdown;
use serde_json::Value;
use tokio::task::JoinHandle;

/// How long the node gets to react to something we sent.
const REACT: Duration = Duration::from_secs(15);

fn start_node() -> RegtestNode {
    let bitcoind = cached_installation().expect("peerlab setup").bitcoind;
    RegtestNode::start(&RegtestConfig::new(bitcoind)).expect("regtest node starts")
}

fn p2p(node: &RegtestNode) -> SocketAddr {
    SocketAddr::V4(node.p2p_addr())
}

/// A running peer and the sender that stops it.
struct Running {
    stop: Shutdown,
    task: JoinHandle<PeerOutcome>,
}

fn spawn_peer(node: &RegtestNode, behaviour: Behaviour, seed: u64) -> Running {
    let stop = Shutdown::new();
    let (addr, stop_rx) = (p2p(node), stop.clone());
    let task = tokio::spawn(async move { run_peer(addr, &behaviour, seed, stop_rx).await });
    Running { stop, task }
}

impl Running {
    /// Fires `stop` and returns the outcome (bounded).
    async fn stop(self) -> PeerOutcome {
        self.stop.cancel();
        tokio::time::timeout(REACT, self.task)
            .await
            .expect("peer stops in time")
            .expect("peer task does not panic")
    }

    /// Waits for the peer to end by itself (the node disconnecting it), keeping `stop` low.
    async fn finished(self) -> PeerOutcome {
        let outcome = tokio::time::timeout(REACT, self.task)
            .await
            .expect("the node disconnects the peer in time")
            .expect("peer task does not panic");
        drop(self.stop);
        outcome
    }
}

fn ours(peers: &[Value]) -> Vec<&Value> {
    peers
        .iter()
        .filter(|p| p["subver"] == DEFAULT_USER_AGENT)
        .collect()
}

fn addr_flood(entries: u32, messages: u32) -> Behaviour {
    Behaviour::AddrFlood(AddrFlood {
        entries_per_message: entries,
        messages,
        interval_ms: 0,
        version: AddrVersion::Addr,
    })
}

fn malformed(kind: MalformedKind) -> Behaviour {
    Behaviour::Malformed(Malformed {
        kind,
        messages: 1,
        after_handshake: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_peer_is_connected_with_our_user_agent() {
    let node = start_node();
    let peer = spawn_peer(&node, Behaviour::Honest, 1);
    let peers = common::wait_for_peers(REACT, &node, "the honest peer", |peers| {
        ours(peers).len() == 1 && ours(peers)[0]["version"] == 70016
    })
    .await;
    assert_eq!(ours(&peers)[0]["inbound"], true);
    // Still there a moment later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peers: Vec<Value> = node.rpc("getpeerinfo", &[]).expect("getpeerinfo");
    assert_eq!(ours(&peers).len(), 1, "{peers:#?}");
    let outcome = peer.stop().await;
    assert_eq!(
        outcome,
        PeerOutcome {
            handshake_completed: true,
            messages_sent: 0,
            disconnected_by_node: false,
            error: None,
            // Nothing was mined or sent: the node had nothing to announce.
            announcements: Vec::new(),
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addr_with_1001_entries_is_disconnected() {
    let node = start_node();
    let outcome = spawn_peer(&node, addr_flood(1001, 1), 2).finished().await;
    assert!(outcome.handshake_completed, "{outcome:?}");
    assert_eq!(outcome.messages_sent, 1, "{outcome:?}");
    assert!(outcome.disconnected_by_node, "{outcome:?}");
    common::wait_for_peers(REACT, &node, "the peer is gone", |peers| {
        ours(peers).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addr_at_the_limit_is_rate_limited_not_disconnected() {
    let node = start_node();
    let peer = spawn_peer(&node, addr_flood(1000, 2), 3);
    let peers = common::wait_for_peers(REACT, &node, "addr_rate_limited > 0", |peers| {
        let ours = ours(peers);
        ours.len() == 1 && ours[0]["addr_rate_limited"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let limited = ours(&peers)[0]["addr_rate_limited"].as_u64().unwrap_or(0);
    assert!(
        limited > 0 && limited <= 2000,
        "addr_rate_limited {limited}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peers: Vec<Value> = node.rpc("getpeerinfo", &[]).expect("getpeerinfo");
    assert_eq!(ours(&peers).len(), 1, "still connected: {peers:#?}");
    let outcome = peer.stop().await;
    assert!(outcome.handshake_completed, "{outcome:?}");
    assert_eq!(outcome.messages_sent, 2, "{outcome:?}");
    assert!(!outcome.disconnected_by_node, "{outcome:?}");
    assert_eq!(outcome.error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inv_with_50001_entries_is_disconnected() {
    let node = start_node();
    let behaviour = Behaviour::InvFlood(InvFlood {
        entries_per_message: 50_001,
        messages: 1,
        interval_ms: 0,
    });
    let outcome = spawn_peer(&node, behaviour, 4).finished().await;
    assert!(outcome.handshake_completed, "{outcome:?}");
    assert_eq!(outcome.messages_sent, 1, "{outcome:?}");
    assert!(outcome.disconnected_by_node, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_magic_after_handshake_is_disconnected() {
    let node = start_node();
    let outcome = spawn_peer(&node, malformed(MalformedKind::BadMagic), 5)
        .finished()
        .await;
    assert!(outcome.handshake_completed, "{outcome:?}");
    assert_eq!(outcome.messages_sent, 1, "{outcome:?}");
    assert!(outcome.disconnected_by_node, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checksum_is_dropped_silently() {
    let node = start_node();
    let peer = spawn_peer(&node, malformed(MalformedKind::BadChecksum), 6);
    common::wait_for_peers(REACT, &node, "the peer connects", |peers| {
        ours(peers).len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peers: Vec<Value> = node.rpc("getpeerinfo", &[]).expect("getpeerinfo");
    assert_eq!(ours(&peers).len(), 1, "still connected: {peers:#?}");
    let outcome = peer.stop().await;
    assert!(outcome.handshake_completed, "{outcome:?}");
    assert_eq!(outcome.messages_sent, 1, "{outcome:?}");
    assert!(!outcome.disconnected_by_node, "{outcome:?}");
    assert_eq!(outcome.error, None);
}

#[tokio::test]
async fn behaviours_missing_their_context_report_instead_of_panicking() {
    let stop_rx = Shutdown::new();
    let behaviour = Behaviour::TxSpam(TxSpam {
        kind: TxKind::Valid,
        transactions: 1,
        rate_per_sec: 10.0,
    });
    // Never connects, so any address will do.
    let outcome = run_peer("127.0.0.1:9".parse().unwrap(), &behaviour, 0, stop_rx).await;
    assert!(!outcome.handshake_completed);
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no mature coins")),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tip_is_learnt_over_p2p() {
    let node = start_node();
    let hashes = node.mine(7).expect("mine");
    let mut peer = Peer::connect(p2p(&node), PeerConfig::default())
        .await
        .expect("connect");
    peer.handshake().await.expect("handshake");
    let tip = discover_tip(&mut peer, REACT).await.expect("tip");
    assert_eq!(tip.height, 7);
    assert_eq!(Some(&tip.hash), hashes.last());
    assert_eq!(tip.header.block_hash(), tip.hash);
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_is_disconnected() {
    let node = start_node();
    let outcome = spawn_peer(&node, malformed(MalformedKind::Oversized), 7)
        .finished()
        .await;
    assert!(outcome.handshake_completed, "{outcome:?}");
    assert!(outcome.disconnected_by_node, "{outcome:?}");
}

/// Garbage payloads, invalid transactions, addrv2 at the limit and a ping flood without
/// pongs: none of them is a reason to disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerated_behaviours_stay_connected() {
    let node = start_node();
    let behaviours = [
        Behaviour::Malformed(Malformed {
            kind: MalformedKind::GarbagePayload,
            messages: 5,
            after_handshake: true,
        }),
        Behaviour::TxSpam(TxSpam {
            kind: TxKind::Invalid,
            transactions: 5,
            rate_per_sec: 50.0,
        }),
        Behaviour::AddrFlood(AddrFlood {
            entries_per_message: 1000,
            messages: 1,
            interval_ms: 0,
            version: AddrVersion::Addrv2,
        }),
        Behaviour::PingFlood(PingFlood {
            rate_per_sec: 20.0,
            answer_pings: false,
        }),
    ];
    let peers: Vec<Running> = behaviours
        .into_iter()
        .enumerate()
        .map(|(i, b)| spawn_peer(&node, b, 100 + i as u64))
        .collect();
    common::wait_for_peers(REACT, &node, "all four connect", |peers| {
        ours(peers).len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let info: Vec<Value> = node.rpc("getpeerinfo", &[]).expect("getpeerinfo");
    assert_eq!(ours(&info).len(), 4, "{info:#?}");
    let mut outcomes = Vec::new();
    for peer in peers {
        outcomes.push(peer.stop().await);
    }
    for outcome in &outcomes {
        assert!(outcome.handshake_completed, "{outcomes:?}");
        assert!(!outcome.disconnected_by_node, "{outcomes:?}");
        assert_eq!(outcome.error, None, "{outcomes:?}");
    }
    assert_eq!(outcomes[0].messages_sent, 5);
    assert_eq!(outcomes[1].messages_sent, 5);
    assert_eq!(outcomes[2].messages_sent, 1);
    assert!(outcomes[3].messages_sent >= 20, "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obsolete_version_is_disconnected() {
    let node = start_node();
    let behaviour = Behaviour::VersionAbuse(VersionAbuse {
        version: 31_799,
        user_agent_len: None,
        services: 9,
        start_height: 0,
        relay: true,
    });
    let outcome = spawn_peer(&node, behaviour, 8).finished().await;
    assert!(!outcome.handshake_completed, "{outcome:?}");
    assert!(outcome.disconnected_by_node, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_abuse_fields_show_in_getpeerinfo() {
    let node = start_node();
    let behaviour = Behaviour::VersionAbuse(VersionAbuse {
        version: 70016,
        user_agent_len: Some(200),
        services: 0x409,
        start_height: 123_456,
        relay: false,
    });
    let peer = spawn_peer(&node, behaviour, 9);
    let peers = common::wait_for_peers(REACT, &node, "the abusive peer", |peers| {
        peers
            .iter()
            .any(|p| p["subver"].as_str().is_some_and(|s| s.len() == 200))
    })
    .await;
    let entry = peers
        .iter()
        .find(|p| p["subver"].as_str().is_some_and(|s| s.len() == 200))
        .expect("entry");
    // Recent Core no longer reports `startingheight`; services and relay are visible.
    assert_eq!(entry["services"], "0000000000000409");
    assert_eq!(entry["relaytxes"], false);
    let outcome = peer.stop().await;
    assert!(
        outcome.handshake_completed && !outcome.disconnected_by_node,
        "{outcome:?}"
    );
}
