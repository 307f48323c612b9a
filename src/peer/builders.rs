//! Message builders for tests and scenarios: VERSION, bulk `addr` and `inv`.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::ServiceFlags;
use bitcoin::Txid;

use super::config::PeerConfig;
use super::rng::Rng;

/// Port of the addresses [`addr_message`] announces (mainnet default).
const ADDR_PORT: u16 = 8333;
/// [`addr_message`] timestamps lie within this many seconds before now.
const ADDR_MAX_AGE_SECS: u64 = 3 * 3600;

/// Our VERSION to a node at `receiver`, as Bitcoin Core builds its own: the receiver with
/// no services, an unspecified sender address carrying our services.
pub fn version_message(config: &PeerConfig, nonce: u64, receiver: SocketAddr) -> VersionMessage {
    let services = ServiceFlags::from(config.services);
    VersionMessage {
        version: config.version,
        services,
        timestamp: i64::try_from(unix_now()).unwrap_or(i64::MAX),
        receiver: Address::new(&receiver, ServiceFlags::NONE),
        sender: Address::new(&SocketAddr::from(([0, 0, 0, 0], 0)), services),
        nonce,
        user_agent: config.user_agent.clone(),
        start_height: config.start_height,
        relay: config.relay,
    }
}

/// An `addr` with `n` distinct routable IPv4 addresses (port 8333, NETWORK | WITNESS),
/// the same for the same `seed`, with timestamps up to three hours old.
pub fn addr_message(n: usize, seed: u64) -> NetworkMessage {
    let mut rng = Rng::new(seed);
    let now = unix_now();
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let mut seen = HashSet::with_capacity(n);
    let mut entries = Vec::with_capacity(n);
    while entries.len() < n {
        let ip = Ipv4Addr::from(rng.next() as u32);
        if !is_routable(ip) || !seen.insert(ip) {
            continue;
        }
        let age = rng.next() % ADDR_MAX_AGE_SECS;
        let time = u32::try_from(now.saturating_sub(age)).unwrap_or(u32::MAX);
        let socket = SocketAddr::V4(SocketAddrV4::new(ip, ADDR_PORT));
        entries.push((time, Address::new(&socket, services)));
    }
    NetworkMessage::Addr(entries)
}

/// An `inv` with `n` MSG_TX items whose txids are pseudo-random, the same for the same
/// `seed`.
pub fn inv_message(n: usize, seed: u64) -> NetworkMessage {
    let mut rng = Rng::new(seed);
    let items = (0..n)
        .map(|_| {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_exact_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            Inventory::Transaction(Txid::from_byte_array(bytes))
        })
        .collect();
    NetworkMessage::Inv(items)
}

/// Whether Bitcoin Core would consider `ip` routable. Conservative: whole first octets are
/// excluded for the reserved ranges (0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
/// 192.168/16, 192.0.2/24, 198.18/15, 198.51.100/24, 203.0.113/24, 224/3).
fn is_routable(ip: Ipv4Addr) -> bool {
    !matches!(
        ip.octets()[0],
        0 | 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203 | 224..=255
    )
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(message: NetworkMessage) -> Vec<(u32, Address)> {
        match message {
            NetworkMessage::Addr(entries) => entries,
            other => panic!("expected addr, got {}", other.cmd()),
        }
    }

    #[test]
    fn addr_is_deterministic_distinct_routable_and_recent() {
        let a = addrs(addr_message(1001, 7));
        let b = addrs(addr_message(1001, 7));
        assert_eq!(a.len(), 1001);
        let ips = |v: &[(u32, Address)]| -> Vec<SocketAddr> {
            v.iter().map(|(_, a)| a.socket_addr().unwrap()).collect()
        };
        assert_eq!(ips(&a), ips(&b));
        assert_ne!(ips(&a), ips(&addrs(addr_message(1001, 8))));
        let distinct: HashSet<_> = ips(&a).into_iter().collect();
        assert_eq!(distinct.len(), 1001);
        let now = unix_now();
        for (time, addr) in &a {
            let SocketAddr::V4(v4) = addr.socket_addr().unwrap() else {
                panic!("not IPv4")
            };
            assert!(is_routable(*v4.ip()), "{v4}");
            assert!(!v4.ip().is_private() && !v4.ip().is_loopback());
            assert!(u64::from(*time) + ADDR_MAX_AGE_SECS >= now);
        }
    }

    #[test]
    fn inv_has_n_distinct_tx_items() {
        let NetworkMessage::Inv(items) = inv_message(500, 1) else {
            panic!("expected inv")
        };
        assert_eq!(items.len(), 500);
        assert!(items.iter().all(|i| matches!(i, Inventory::Transaction(_))));
        let distinct: HashSet<_> = items.iter().collect();
        assert_eq!(distinct.len(), 500);
        assert_eq!(inv_message(500, 1), NetworkMessage::Inv(items));
    }

    #[test]
    fn version_carries_the_config() {
        let config = PeerConfig {
            start_height: 12,
            ..PeerConfig::default()
        };
        let v = version_message(&config, 99, "127.0.0.1:18444".parse().unwrap());
        assert_eq!(v.version, 70016);
        assert_eq!(v.nonce, 99);
        assert_eq!(v.user_agent, "/peerlab:0.1.0/");
        assert_eq!(v.start_height, 12);
        assert!(v.relay);
        assert_eq!(v.receiver.port, 18444);
    }
}
