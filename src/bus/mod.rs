//! The bus: events over NATS, in peer-observer's subjects and encoding.
//!
//! This module owns the NATS connection (addresses, credentials, TLS, waiting for a server
//! that is not up yet), the subject scheme ([`SubjectScheme`]: flat peer-observer subjects or
//! a per-node prefix for fleets), the [`Publisher`] that extractors and replay write into, and
//! the [`Subscriber`] that tools and the recorder read from.
//!
//! Invariants:
//! - a publisher never blocks its producer: events go into a bounded outgoing buffer, which
//!   may overflow into a bounded spool on disk ([`spool`]); an event that fits in neither is
//!   counted in [`PublisherStats`] and reported in the log;
//! - events leave a publisher in the order they were handed to it, spooled or not; a batch
//!   whose arrival at the server was not confirmed (the connection died) is sent again after
//!   the reconnect (part of that one batch may then arrive behind its own tail), so an event
//!   is delivered at least once or counted as dropped, never lost silently; with a spool,
//!   message ids let a JetStream stream keep one copy;
//! - connections reconnect forever.

mod confirm;
mod connect;
pub mod jetstream;
mod options;
mod overflow;
mod publisher;
pub mod spool;
mod stats;
pub mod subject;
mod subscriber;

pub use connect::connect;
pub use options::NatsOptions;
pub use publisher::{Publisher, PublisherConfig, Subject};
pub use spool::{SpoolConfig, SpoolError};
pub use stats::{PublisherStats, StatsSnapshot};
pub use subject::{
    default_node_name, is_alerts_subject, is_stats_subject, SubjectScheme, ALERTS_TOKENS,
    STATS_TOKENS,
};
pub use subscriber::{BusMessage, Subscriber, SubscriberStats};

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No server answered within the configured wait.
    #[error(
        "could not reach NATS at {addresses} within {waited_secs}s (last error: {last_error}); \
         start nats-server there or point -a/--nats-address at a running one"
    )]
    Unreachable {
        /// The addresses tried, comma-separated.
        addresses: String,
        /// How long we kept trying.
        waited_secs: u64,
        /// The last connection error.
        last_error: String,
    },
    /// A connection option is unusable (bad address, unreadable credentials file, ...).
    #[error("invalid NATS option: {0}")]
    InvalidOption(String),
    /// Subscribing failed.
    #[error("cannot subscribe to `{subject}`: {reason}")]
    Subscribe {
        /// The subject pattern.
        subject: String,
        /// The client's explanation.
        reason: String,
    },
    /// A JetStream stream or consumer could not be set up or used.
    #[error("JetStream stream `{stream}`: {reason}")]
    JetStream {
        /// The stream.
        stream: String,
        /// What failed and the server's explanation.
        reason: String,
    },
    /// The publisher's spool cannot be used.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Publishing a status message failed.
    #[error("cannot publish on `{subject}`: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// The client's explanation.
        reason: String,
    },
}
