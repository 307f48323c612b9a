//! One connection from the node: the v1 handshake, answers, pings, and what gets published.
//!
//! The node dials us (`-addnode`), so it speaks first: on its `version` we send ours,
//! `sendaddrv2` and `wtxidrelay`; its `verack` is answered with ours and ends the handshake.
//! Then every ping interval we send `ping` with the time in nanoseconds as nonce, and its
//! `pong` tells how long the node took to get to it (its message-processing backlog).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::ServiceFlags;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{P2pConfig, P2pStats};
use crate::bus::Publisher;
use crate::event::proto::ebpf_extractor::message::message_event::Msg;
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::proto::p2p_extractor::{
    p2p::P2pEvent, AddressAnnouncement, InventoryAnnouncement, P2p, PingDuration,
};
use crate::event::{now_millis, Event};
use crate::p2p::{decode_message, encode_message, parse_frame, Received};
use crate::shutdown::Shutdown;

/// Our user agent (peer-observer's, so a node's peer list looks the same).
pub const USER_AGENT: &str = "/p2p-extractor:0.1/";
/// The protocol version we announce.
const PROTOCOL_VERSION: u32 = 70016;
/// How long a write may take before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    /// Shutdown.
    Stopped,
    /// The node closed the connection.
    Closed,
    /// A read, write or framing error.
    Failed(String),
}

/// Serves one connection until it ends.
pub async fn serve(
    mut stream: TcpStream,
    node: SocketAddr,
    config: &P2pConfig,
    publisher: &Publisher,
    stats: &P2pStats,
    shutdown: &Shutdown,
) -> End {
    let magic = config.network.magic();
    let mut buffer = BytesMut::with_capacity(64 << 10);
    let mut handshake_done = false;
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Everything already buffered first: a read may have brought several frames.
        loop {
            match parse_frame(&mut buffer, magic) {
                Ok(Some(received)) => {
                    stats.messages.fetch_add(1, Ordering::Relaxed);
                    let replies = handle(
                        received,
                        node,
                        config,
                        publisher,
                        stats,
                        &mut handshake_done,
                    );
                    for reply in replies {
                        if let Err(e) = send(&mut stream, magic, reply).await {
                            return End::Failed(e);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) if e.desyncs() => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    return End::Failed(format!("framing: {e}"));
                }
                Err(e) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%node, error = %e, "frame skipped (counted)");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return End::Stopped,
            read = stream.read_buf(&mut buffer) => match read {
                Ok(0) => return End::Closed,
                Ok(_) => {}
                Err(e) => return End::Failed(format!("read: {e}")),
            },
            _ = ping.tick(), if handshake_done && config.ping => {
                let nonce = now_nanos();
                if let Err(e) = send(&mut stream, magic, NetworkMessage::Ping(nonce)).await {
                    return End::Failed(e);
                }
            }
        }
    }
}

/// What to answer, after publishing what the message announces.
fn handle(
    received: Received,
    node: SocketAddr,
    config: &P2pConfig,
    publisher: &Publisher,
    stats: &P2pStats,
    handshake_done: &mut bool,
) -> Vec<NetworkMessage> {
    match (received.command.as_str(), &received.message) {
        ("version", _) => vec![
            NetworkMessage::Version(our_version(node)),
            NetworkMessage::SendAddrV2,
            NetworkMessage::WtxidRelay,
        ],
        ("verack", _) => {
            *handshake_done = true;
            tracing::info!(%node, "handshake with the node done");
            vec![NetworkMessage::Verack]
        }
        ("ping", Some(NetworkMessage::Ping(nonce))) => vec![NetworkMessage::Pong(*nonce)],
        ("pong", Some(NetworkMessage::Pong(sent))) => {
            // Our nonce is the send time; a nonce from the future is not ours.
            if let Some(duration) = now_nanos().checked_sub(*sent) {
                publish(
                    publisher,
                    stats,
                    P2pEvent::PingDuration(PingDuration { duration }),
                );
            }
            Vec::new()
        }
        ("addr" | "addrv2", _) if config.addrv2 => {
            match decode_message(&received.command, &received.payload) {
                Msg::Addr(addr) => publish_addresses(publisher, stats, addr.addresses),
                Msg::Addrv2(addr) => publish_addresses(publisher, stats, addr.addresses),
                _ => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Vec::new()
        }
        ("inv", _) if config.invs => {
            match decode_message(&received.command, &received.payload) {
                Msg::Inv(inv) => publish(
                    publisher,
                    stats,
                    P2pEvent::InventoryAnnouncement(InventoryAnnouncement {
                        inventory: inv.items,
                    }),
                ),
                _ => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Vec::new()
        }
        ("feefilter", _) if config.feefilter => {
            match decode_message(&received.command, &received.payload) {
                Msg::Feefilter(filter) => publish(
                    publisher,
                    stats,
                    P2pEvent::FeefilterAnnouncement(filter.fee),
                ),
                _ => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Vec::new()
        }
        // Everything else (getheaders, sendcmpct, ...) is not needed to stay connected.
        _ => Vec::new(),
    }
}

fn publish_addresses(
    publisher: &Publisher,
    stats: &P2pStats,
    addresses: Vec<crate::event::proto::bitcoin_primitives::Address>,
) {
    publish(
        publisher,
        stats,
        P2pEvent::AddressAnnouncement(AddressAnnouncement { addresses }),
    );
}

fn publish(publisher: &Publisher, stats: &P2pStats, event: P2pEvent) {
    let event = Event {
        timestamp: now_millis(),
        peer_observer_event: Some(PeerObserverEvent::P2pExtractor(P2p {
            p2p_event: Some(event),
        })),
    };
    stats.published.fetch_add(1, Ordering::Relaxed);
    if !publisher.publish_event(&event) {
        stats.publish_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Our `version`, as the spec describes peer-observer's: NETWORK | WITNESS (Core drops peers
/// without them), addresses without services, start height 0, relay on.
fn our_version(node: SocketAddr) -> VersionMessage {
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    VersionMessage {
        version: PROTOCOL_VERSION,
        services,
        timestamp: i64::try_from(unix_secs).unwrap_or(i64::MAX),
        receiver: Address::new(&node, ServiceFlags::NONE),
        sender: Address::new(&SocketAddr::from(([0, 0, 0, 0], 0)), ServiceFlags::NONE),
        nonce: random_nonce(),
        user_agent: USER_AGENT.to_string(),
        start_height: 0,
        relay: true,
    }
}

/// A random 64-bit nonce (Core disconnects a peer whose nonce equals one of its own).
fn random_nonce() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_nanos());
    hasher.finish()
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

async fn send(
    stream: &mut TcpStream,
    magic: [u8; 4],
    message: NetworkMessage,
) -> Result<(), String> {
    let bytes = encode_message(magic, message);
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err(format!(
            "write: no progress in {}s",
            WRITE_TIMEOUT.as_secs()
        )),
    }
}
