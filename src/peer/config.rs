//! How a [`Peer`](super::Peer) presents itself and how long it waits.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::ServiceFlags;

use crate::p2p::REGTEST_MAGIC;

/// The protocol version we announce by default: 70016 (wtxidrelay and addrv2, but below
/// 70017 so the node skips BIP-434 `feature` handling).
pub const DEFAULT_VERSION: u32 = 70016;

/// Our default user agent (BIP 14 format).
pub const DEFAULT_USER_AGENT: &str = "/peerlab:0.1.0/";

/// Settings of one peer connection. `Default` gives a regtest full-relay peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Network magic of every frame we send and expect (default regtest `fa bf b5 da`).
    pub magic: [u8; 4],
    /// Protocol version in our VERSION (default 70016).
    pub version: u32,
    /// Service bits in our VERSION (default NETWORK | WITNESS).
    pub services: u64,
    /// User agent in our VERSION; the node shows it as `subver` in `getpeerinfo`.
    pub user_agent: String,
    /// Best height we claim.
    pub start_height: i32,
    /// The VERSION relay flag: whether the node should announce transactions to us.
    pub relay: bool,
    /// VERSION nonce. `None` picks a random non-zero one; `Some(n)` is sent verbatim
    /// (even 0), which lets scenarios provoke the self-connection check.
    pub nonce: Option<u64>,
    /// Bound of every single operation: connect, send, `recv`, the whole handshake, close.
    pub io_timeout: Duration,
    /// Answer each `ping` with a `pong` carrying the same nonce (the ping is still returned).
    pub answer_pings: bool,
    /// The local address to connect from (`None`: the system picks). A host address on a
    /// container network lets each of many peers appear as a host of its own.
    pub bind: Option<std::net::IpAddr>,
}

impl Default for PeerConfig {
    fn default() -> PeerConfig {
        PeerConfig {
            magic: REGTEST_MAGIC,
            version: DEFAULT_VERSION,
            services: (ServiceFlags::NETWORK | ServiceFlags::WITNESS).to_u64(),
            user_agent: DEFAULT_USER_AGENT.to_string(),
            start_height: 0,
            relay: true,
            nonce: None,
            io_timeout: Duration::from_secs(10),
            answer_pings: true,
            bind: None,
        }
    }
}

/// A random non-zero nonce, from the standard library's per-process random SipHash keys
/// mixed with the clock and a counter (not cryptographic; it only has to differ from the
/// node's own nonces).
pub(crate) fn random_nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut hasher = RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(now);
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let nonce = hasher.finish();
        if nonce != 0 {
            return nonce;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_non_zero_and_distinct() {
        let a = random_nonce();
        let b = random_nonce();
        assert_ne!(a, 0);
        assert_ne!(b, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn default_is_a_regtest_full_relay_peer() {
        let config = PeerConfig::default();
        assert_eq!(config.magic, [0xfa, 0xbf, 0xb5, 0xda]);
        assert_eq!(config.version, 70016);
        assert_eq!(config.services, 9);
        assert!(config.answer_pings);
    }
}
