//! The harness: local servers for tests, scenarios and the embedded default stack.
//!
//! This module owns starting and stopping a private nats-server ([`NatsServer`]) and free
//! loopback ports ([`free_port`]). Regtest nodes live in [`crate::node`]; this module only
//! composes them.

mod nats_server;
mod ports;

pub use nats_server::{NatsServer, NATS_MAX_PAYLOAD};
pub use ports::free_port;

/// What can go wrong starting harness servers.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A server did not start or become ready.
    #[error("{what}: {reason}")]
    Start {
        /// Which server.
        what: String,
        /// Why.
        reason: String,
    },
}
