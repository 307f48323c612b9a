//! The status report: what a window found per node and the verdict on it, in the shape both
//! the readable tables ([`super::render`]) and `--json` consumers read.
//!
//! Invariants: plain data, built only by [`super::verdict::judge`]; every field serializes
//! (tagged enums carry a `state` field), so the JSON form holds everything the tables show.

use serde::Serialize;

use super::leafz::{Leaf, Leafz};

/// What the monitoring endpoint said about leafnode links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// No monitoring URL was given.
    Unknown,
    /// `/leafz` was read.
    Fetched {
        /// The monitoring URL given, whose `/leafz` was read (credentials redacted).
        url: String,
        /// What it listed.
        leafz: Leafz,
    },
    /// `/leafz` could not be read.
    Unavailable {
        /// The monitoring URL given (credentials redacted).
        url: String,
        /// Why.
        reason: String,
    },
}

/// One node's link, as far as `/leafz` tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeLink {
    /// No monitoring URL was given.
    Unknown,
    /// The monitoring endpoint could not be read.
    Unavailable,
    /// Leafnode links attributed to this node: all of them with flat subjects (the server is
    /// the node's own), those named after the node in a fleet.
    Up {
        /// The links.
        leafs: Vec<Leaf>,
    },
    /// The node's own server has no leafnode link.
    NoLinks,
    /// No link carries this node's name (servers before 2.10 send no names): see the
    /// report's list of links.
    Unmatched,
}

/// An extractor seen publishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtractorStatus {
    /// Its component name (`ebpf-extractor`, ...).
    pub component: String,
    /// Its counter snapshots arrived.
    pub stats: bool,
    /// Events of its subjects arrived.
    pub events: bool,
}

/// One counter component (extractor, publisher, recorder).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentStatus {
    /// Its name on the stats subject.
    pub component: String,
    /// `extractor`, `publisher`, `recorder`, or `undecodable` when no snapshot decoded.
    pub role: String,
    /// Snapshots that decoded.
    pub snapshots: u64,
    /// Snapshots that did not.
    pub undecodable: u64,
    /// Seconds from its last snapshot to the end of the window.
    pub last_age_secs: f64,
    /// Events produced so far (an extractor's `published`, a publisher's `offered`, the
    /// recorder's `recorded`).
    pub produced: Option<u64>,
    /// Growth of `produced` between the window's first and last snapshot.
    pub produced_in_window: Option<u64>,
    /// Events the server confirmed (publishers).
    pub sent: Option<u64>,
    /// All its drop counters, summed (running totals).
    pub dropped: u64,
    /// Their growth within the window.
    pub dropped_in_window: u64,
}

/// One event subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectStatus {
    /// The subject's kind name (`netmsg`, ...).
    pub subject: String,
    /// Messages in the window.
    pub messages: u64,
    /// Messages per second over the window.
    pub rate_per_sec: f64,
    /// Seconds since its last message; `None`: none in the window.
    pub last_age_secs: Option<f64>,
}

/// A drop counter above zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropStatus {
    /// The component counting it.
    pub component: String,
    /// The counter (`publish_dropped`, `dropped_buffer_full`, ...).
    pub counter: String,
    /// Its running total.
    pub total: u64,
    /// How much it grew within the window.
    pub grew_by: u64,
}

/// The verdict on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// The node token ([`super::LOCAL_NODE`] with flat subjects).
    pub node: String,
    /// Counters and events arrived and no drop counter grew (see [`super::verdict`]).
    pub healthy: bool,
    /// Why it is not healthy (empty when it is).
    pub reasons: Vec<String>,
    /// Whether it was expected (named, or implied by the scheme).
    pub expected: bool,
    /// Extractors seen, by their counters or their events.
    pub extractors: Vec<ExtractorStatus>,
    /// Counter components.
    pub components: Vec<ComponentStatus>,
    /// Event subjects seen, and those of extractors that sent counters but no events.
    pub subjects: Vec<SubjectStatus>,
    /// Drop counters above zero.
    pub drops: Vec<DropStatus>,
    /// Its leafnode link.
    pub link: NodeLink,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// How long it listened, in seconds.
    pub window_secs: f64,
    /// The subjects listened to (`flat`, or `<prefix>.<node>.<subject>`).
    pub scheme: String,
    /// Every node healthy, at least one node, and the links readable if asked for.
    pub healthy: bool,
    /// The nodes that had to be heard from (named, or implied by the scheme).
    pub expected_nodes: Vec<String>,
    /// Per node, by name.
    pub nodes: Vec<NodeStatus>,
    /// Leafnode links from the monitoring endpoint.
    pub links: LinkState,
    /// What is wrong beyond single nodes.
    pub problems: Vec<String>,
    /// Messages on the subscribed patterns outside the scheme (skipped).
    pub unrecognised_messages: u64,
}
