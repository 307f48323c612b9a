//! Tools: consumers of the bus: the [`logger`], the [`metrics`] endpoint for peer-observer's
//! dashboards, the [`alerts`] heuristics, the [`websocket`] feed and the health check
//! ([`status`]).
//!
//! This module owns the one contract every tool follows ([`Tool`]). A new tool is a
//! sibling: it takes the [`Subscriber`] it is given and runs until its [`Shutdown`] fires or
//! the subscription ends.
//!
//! Invariants of every tool:
//! - it reads the bus and never publishes events of the wire format (the alerts tool
//!   publishes its findings on peerlab's own alerts subject); it never uses an extractor or
//!   the recorder (the status tool names extractors by their `COMPONENT`, nothing more);
//! - it never panics on what it receives: a message that does not decode is counted or
//!   shown as such, never fatal;
//! - where its output goes (stdout, a socket, a file) is given to it, so the library never
//!   writes to the terminal on its own.

pub mod alerts;
pub mod logger;
pub mod metrics;
pub mod status;
pub mod websocket;

use std::future::Future;

use crate::bus::Subscriber;
use crate::shutdown::Shutdown;

pub use logger::Logger;

/// The contract of a tool (see the module docs for its invariants).
pub trait Tool {
    /// What it reports when it ends (counts of what it consumed).
    type Summary;
    /// What can end it early.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Consumes `subscriber` until `shutdown` fires, the subscription ends, or the tool is
    /// done (e.g. a logger asked for `--count` lines).
    fn run(
        self,
        subscriber: Subscriber,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<Self::Summary, Self::Error>> + Send;
}
