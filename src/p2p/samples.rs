//! Sample P2P data shared by the tests of the decoder ([`decode`](super::decode)) and
//! of its inverse ([`encode`](super::encode)), so both test the same messages.

use std::net::SocketAddr;

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address as P2pAddress;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::ServiceFlags;
use bitcoin::BlockHash;

/// The Tor v3 and I2P names in Bitcoin Core's net tests, with their raw keys.
pub(crate) const TORV3_NAME: &str =
    "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
pub(crate) const TORV3_PUBKEY: &str =
    "79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f";
pub(crate) const I2P_HASH: &str =
    "a0ce38ce2224d2cecaf9929388f73379259c0c27e0debdbd7ca4cd085b55e25a";
/// 32 ascending bytes: not a palindrome, so internal and display order differ.
pub(crate) fn ascending(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

pub(crate) fn block_hash(start: u8) -> BlockHash {
    BlockHash::from_byte_array(ascending(start))
}

pub(crate) fn array32(hex_str: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&hex::decode(hex_str).expect("hex"));
    out
}

pub(crate) fn socket(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(crate) fn version_message(relay: bool) -> VersionMessage {
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let mut msg = VersionMessage::new(
        services,
        1_700_000_000,
        P2pAddress::new(&socket("1.2.3.4:8333"), ServiceFlags::NONE),
        P2pAddress::new(&socket("[2001:db8::1]:18444"), services),
        0xdead_beef_cafe_f00d,
        "/Satoshi:27.0.0/".into(),
        850_000,
    );
    msg.relay = relay;
    msg
}

pub(crate) fn reject_payload(code: u8, hash: &[u8]) -> Vec<u8> {
    let mut payload = serialize(&"tx".to_string());
    payload.push(code);
    payload.extend(serialize(&"reason".to_string()));
    payload.extend_from_slice(hash);
    payload
}
