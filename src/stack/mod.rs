//! Composing running pieces: the embedded observer stack, and the private servers it is made
//! of.
//!
//! This module owns [`NodeObserver`] (every extractor attached to one node, from where it
//! keeps its files and ports: used by the embedded stack and by `peerlab observe`),
//! [`EmbeddedStack`] (nats-server + regtest bitcoind + publisher + the observer, started and
//! stopped in order), the private nats-server ([`NatsServer`]) and
//! free loopback ports ([`free_port`]) that tests also use directly, and the regtest
//! activity `peerlab run` drives so every event category shows up ([`drive_activity`]).
//! Regtest nodes live in [`crate::node`] and extractors in [`crate::extractors`]; this
//! module only composes them.

mod activity;
mod containers;
mod embedded;
mod nats_server;
mod observer;
mod ports;

pub use activity::{drive_activity, Activity};
pub use containers::{node_scheme, ContainerNodeSpec, ContainerStack, TOPOLOGY_PREFIX};
pub use embedded::{wait_traced, EmbeddedConfig, EmbeddedStack, StackCounters};
pub use nats_server::{NatsServer, NATS_MAX_PAYLOAD};
pub use observer::{
    Attachment, Extractors, NodeFiles, NodeObserver, ObserverConfig, OptionalExtractor,
};
pub use ports::free_port;

/// What can go wrong composing or running a stack. Messages say which piece failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A server did not start or become ready.
    #[error("{what}: {reason}")]
    Start {
        /// Which server.
        what: String,
        /// Why.
        reason: String,
    },
    /// A container of a topology.
    #[error("containers: {0}")]
    Container(#[from] crate::container::ContainerError),
    /// The regtest node.
    #[error("regtest bitcoind: {0}")]
    Node(#[from] crate::node::NodeError),
    /// The publisher's NATS connection.
    #[error("publisher: {0}")]
    Bus(#[from] crate::bus::BusError),
    /// The eBPF extractor.
    #[error("eBPF extractor: {0}")]
    Extractor(#[from] crate::extractors::ebpf::ExtractorError),
    /// The extractor did not pick up the node in time.
    #[error("the eBPF extractor did not trace bitcoind (pid {pid:?}) within {secs}s; is the binary the one `peerlab setup` built with tracepoints?")]
    NotTraced {
        /// The node's pid, if its pid file could be read.
        pid: Option<u32>,
        /// The limit.
        secs: u64,
    },
    /// A file-system step.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A background task died.
    #[error("{what}: task failed: {reason}")]
    Task {
        /// Which task.
        what: &'static str,
        /// Its panic or cancellation.
        reason: String,
    },
}

impl StackError {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> StackError {
        StackError::Io { what, source }
    }

    pub(crate) fn join(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> StackError {
        move |e| StackError::Task {
            what,
            reason: e.to_string(),
        }
    }
}
