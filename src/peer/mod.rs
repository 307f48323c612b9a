//! A scriptable Bitcoin P2P peer for integration tests and attack scenarios.
//!
//! This module owns the client side of one v1-transport connection to a node
//! ([`Peer`]) and builders for
//! the messages scenarios send in bulk ([`addr_message`], [`inv_message`],
//! [`version_message`]). Facts about Bitcoin Core's side are in
//! `shared/spec/bitcoin-core.md` §5.
//!
//! Invariants:
//! - We only speak v1: our first bytes are always a VERSION frame (or whatever the caller
//!   sends with [`Peer::send_bytes`]), which makes Core pick v1 for the connection.
//! - Reading never trusts a length: magic and length are checked from the 24-byte header
//!   before any payload is awaited, and at most 24 + 4,000,000 bytes are reserved.
//! - Network input never panics: frames that rust-bitcoin cannot decode arrive with
//!   `message: None`; framing errors are [`PeerError::Protocol`].
//! - Every operation is bounded by a timeout and is cancel-safe (partial reads and writes
//!   are kept in the peer's buffers), so scenarios may `select!` or time out freely.
//! - Nothing runs in the background: pings are answered when the caller receives.

mod builders;
mod config;
mod connection;
mod error;
mod rng;

pub use crate::p2p::{
    checksum, command_field, frame, Received, COMMAND_LEN, HEADER_LEN, MAX_PAYLOAD_LEN,
    REGTEST_MAGIC,
};
pub use bitcoin::p2p::message::NetworkMessage;
pub use bitcoin::p2p::message_network::VersionMessage;
pub use builders::{addr_message, inv_message, version_message};
pub use config::{PeerConfig, DEFAULT_USER_AGENT, DEFAULT_VERSION};
pub use connection::Peer;
pub use error::PeerError;
pub(crate) use rng::Rng;
