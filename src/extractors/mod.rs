//! Extractors: turning what a node does into `event.Event`s on the bus.
//!
//! This module owns everything between bitcoind and the [`Publisher`], and the one contract
//! every extractor follows ([`Extractor`]), so a new source (RPC polling, a P2P connection,
//! the debug log, IPC) is a sibling of [`ebpf`], not a copy of it: [`log`] follows
//! `debug.log`, [`rpc`] polls a node's JSON-RPC on two timers and publishes each reply on
//! `rpc`, waiting for a node that is not up yet, [`p2p`] is a peer the node dials,
//! publishing ping durations and what the node announces, and [`ipc`] polls the tip over
//! Bitcoin Core's Cap'n Proto IPC socket. The eBPF extractor decodes P2P payloads with
//! [`crate::p2p`].
//!
//! Invariants of every extractor:
//! - it only publishes; it never reads the bus, and never uses a tool or the recorder;
//! - it never blocks on the bus: the [`Publisher`] buffers, and what it refuses is counted;
//! - events of one source reach the publisher in the order they happened;
//! - its counters are one typed snapshot ([`ExtractorCounters`]), published periodically on
//!   the subject [`SubjectScheme::stats_subject`](crate::bus::SubjectScheme::stats_subject)
//!   derives from its [`Extractor::COMPONENT`] and the node, and returned by
//!   [`Extractor::stop`];
//! - it stops when its [`Shutdown`] fires or [`Extractor::stop`] is called, publishing what it
//!   already read before it returns.

pub mod ebpf;
pub mod ipc;
pub mod log;
pub mod p2p;
pub mod rpc;

use std::future::Future;
use std::sync::Arc;

use crate::bus::{Publisher, PublisherConfig};
use crate::event::counters::ExtractorCounters;
use crate::shutdown::Shutdown;

/// The contract of an extractor (see the module docs for its invariants).
pub trait Extractor: Sized {
    /// What it needs to start (which node, which sources, intervals).
    type Config;
    /// What can go wrong starting or running it.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Its name in its counter subject (`peerlab.stats.<COMPONENT>`).
    const COMPONENT: &'static str;

    /// Starts publishing through `publisher` in the background; errors that can be seen
    /// before the first event (a missing binary, an unreachable node) surface here. It runs
    /// until `shutdown` fires or [`stop`](Extractor::stop) is called.
    fn start(
        config: Self::Config,
        publisher: Arc<Publisher>,
        shutdown: Shutdown,
    ) -> Result<Self, Self::Error>;

    /// The counters so far.
    fn counters(&self) -> ExtractorCounters;

    /// Stops, hands what was already read to the publisher, and returns the final counters.
    fn stop(self) -> impl Future<Output = Result<ExtractorCounters, Self::Error>> + Send;
}

/// Publishes a counter snapshot on the publisher's counter subject for `component`.
pub fn publish_counters(publisher: &Publisher, component: &str, counters: &ExtractorCounters) {
    let subject = publisher.scheme().stats_subject(component);
    publisher.publish_raw(&subject, bytes::Bytes::from(counters.to_json()));
}

/// The counter component of the publisher `owner` uses (`<owner>-publisher`): its
/// [`StatsSnapshot`](crate::bus::StatsSnapshot) travels on the stats subject of that name, where
/// the metrics tool reads offered, sent and dropped events.
pub fn publisher_component(owner: &str) -> String {
    format!("{owner}-publisher")
}

/// The outgoing buffer of an extractor: large enough for a burst or a NATS reconnect, small
/// enough that a saturated pipeline stays well inside an extractor's memory budget (64 MiB
/// peak RSS); what does not fit is counted as dropped, like a full ring buffer.
///
/// 64 Ki events is 60 ms of a 1M/s stream: room for the stalls seen between the extractor
/// and nats-server when both share two cores with the traced process. At 16 Ki, such stalls
/// dropped 0.1 % to 2 % of a 1.05M/s synthetic stream (BENCHMARKS.md, issue 15's fourth
/// round); a full buffer of small events adds about 6 MiB to the extractor's RSS.
pub fn publisher_config() -> PublisherConfig {
    PublisherConfig {
        max_buffered_events: 65_536,
        max_buffered_bytes: 16 << 20,
        ..PublisherConfig::default()
    }
}
