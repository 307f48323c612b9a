//! What a status window heard, grouped by node: messages per event subject and the first and
//! last counter snapshot of every component. No I/O: a message goes in with its arrival time
//! (an offset from the start of the window), so tests feed synthetic sequences.
//!
//! Invariants:
//! - event payloads are never decoded: only their subject is counted, so a busy collector
//!   costs one map lookup per message;
//! - a counter snapshot is read by its component's name (`recorder`, `<owner>-publisher`,
//!   otherwise an extractor), the same rule the metrics tool follows; one that does not
//!   decode is counted, never fatal;
//! - with flat subjects everything belongs to one node, [`LOCAL_NODE`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bus::{is_stats_subject, StatsSnapshot, SubjectScheme};
use crate::event::counters::{ExtractorCounters, RecorderCounters};
use crate::event::EventKind;

/// The one node of a flat scheme (a honeynode's own bus has no node token).
pub const LOCAL_NODE: &str = "local";

/// One decoded counter snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// An extractor's [`ExtractorCounters`].
    Extractor(Box<ExtractorCounters>),
    /// A publisher's [`StatsSnapshot`] (component `<owner>-publisher`).
    Publisher(StatsSnapshot),
    /// The recorder's [`RecorderCounters`].
    Recorder(RecorderCounters),
}

impl Snapshot {
    /// Decodes `payload` as the snapshot type of `component`.
    pub fn decode(component: &str, payload: &[u8]) -> Option<Snapshot> {
        if component == "recorder" {
            serde_json::from_slice(payload).ok().map(Snapshot::Recorder)
        } else if component.ends_with("-publisher") {
            serde_json::from_slice(payload)
                .ok()
                .map(Snapshot::Publisher)
        } else {
            ExtractorCounters::from_json(payload)
                .ok()
                .map(|c| Snapshot::Extractor(Box::new(c)))
        }
    }

    /// The component's role: `extractor`, `publisher` or `recorder`.
    pub fn role(&self) -> &'static str {
        match self {
            Snapshot::Extractor(_) => "extractor",
            Snapshot::Publisher(_) => "publisher",
            Snapshot::Recorder(_) => "recorder",
        }
    }

    /// Events produced so far: an extractor's `published`, a publisher's `offered`, the
    /// recorder's `recorded`.
    pub fn produced(&self) -> u64 {
        match self {
            Snapshot::Extractor(c) => c.published,
            Snapshot::Publisher(s) => s.offered,
            Snapshot::Recorder(r) => r.recorded,
        }
    }

    /// Events the server confirmed (publishers only).
    pub fn sent(&self) -> Option<u64> {
        match self {
            Snapshot::Publisher(s) => Some(s.sent),
            _ => None,
        }
    }

    /// Every counter of lost events, by name (running totals).
    pub fn drop_counters(&self) -> Vec<(&'static str, u64)> {
        match self {
            Snapshot::Extractor(c) => vec![
                ("publish_dropped", c.publish_dropped),
                ("dropped_in_kernel", c.dropped_in_kernel),
            ],
            Snapshot::Publisher(s) => vec![
                ("dropped_buffer_full", s.dropped_buffer_full),
                ("dropped_too_large", s.dropped_too_large),
                ("dropped_unroutable", s.dropped_unroutable),
                ("dropped_at_shutdown", s.dropped_at_shutdown),
            ],
            // A slow-consumer notice means NATS dropped messages meant for the recorder.
            Snapshot::Recorder(r) => vec![("slow_consumer_events", r.slow_consumer_events)],
        }
    }
}

/// How much a running total grew from `first` to `last`. A total that went down means its
/// component restarted and counted from zero again, so all of `last` is new.
pub fn growth(first: u64, last: u64) -> u64 {
    if last >= first {
        last - first
    } else {
        last
    }
}

/// Messages of one event subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubjectSeen {
    /// Messages in the window.
    pub messages: u64,
    /// When the last one arrived (offset from the window's start).
    pub last_at: Duration,
}

/// Counter snapshots of one component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentSeen {
    /// Snapshots that decoded.
    pub snapshots: u64,
    /// Snapshots that did not decode as the component's type.
    pub undecodable: u64,
    /// When the last snapshot (decoded or not) arrived.
    pub last_at: Duration,
    /// The first decoded snapshot of the window.
    pub first: Option<Snapshot>,
    /// The last decoded snapshot of the window.
    pub last: Option<Snapshot>,
}

/// Everything heard from one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSeen {
    /// Per event subject (by kind).
    pub subjects: BTreeMap<EventKind, SubjectSeen>,
    /// Per counter component (`ebpf-extractor`, `observe-publisher`, `recorder`, ...).
    pub components: BTreeMap<String, ComponentSeen>,
}

/// A finished window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// How long it listened.
    pub elapsed: Duration,
    /// Per node (node token; [`LOCAL_NODE`] with flat subjects).
    pub nodes: BTreeMap<String, NodeSeen>,
    /// Messages on the subscribed patterns that name no event kind or component of the scheme.
    pub unrecognised: u64,
}

/// Folds messages into an [`Observation`].
#[derive(Debug, Clone)]
pub struct Collector {
    scheme: SubjectScheme,
    seen: Observation,
}

impl Collector {
    /// An empty window over `scheme`'s subjects.
    pub fn new(scheme: SubjectScheme) -> Collector {
        Collector {
            scheme,
            seen: Observation::default(),
        }
    }

    /// One message that arrived `at` after the window started.
    pub fn observe(&mut self, subject: &str, payload: &[u8], at: Duration) {
        // Counter subjects first: under a prefix they would otherwise be taken apart as
        // `<prefix>.<node>.<kind>` (a flat `peerlab.stats.log-extractor` under prefix
        // `peerlab` reads as node `stats`, kind `log-extractor`).
        if is_stats_subject(subject) {
            match self.scheme.parse_stats(subject) {
                Some((node, component)) => self.stats(node, component, payload, at),
                None => self.seen.unrecognised += 1,
            }
            return;
        }
        match self.scheme.parse(subject) {
            Some((node, kind)) => {
                let seen = self.node(node).subjects.entry(kind).or_default();
                seen.messages += 1;
                seen.last_at = at;
            }
            None => self.seen.unrecognised += 1,
        }
    }

    fn stats(&mut self, node: Option<String>, component: String, payload: &[u8], at: Duration) {
        let snapshot = Snapshot::decode(&component, payload);
        let seen = self.node(node).components.entry(component).or_default();
        seen.last_at = at;
        match snapshot {
            Some(snapshot) => {
                seen.snapshots += 1;
                if seen.first.is_none() {
                    seen.first = Some(snapshot.clone());
                }
                seen.last = Some(snapshot);
            }
            None => seen.undecodable += 1,
        }
    }

    fn node(&mut self, node: Option<String>) -> &mut NodeSeen {
        let name = node.unwrap_or_else(|| LOCAL_NODE.to_string());
        self.seen.nodes.entry(name).or_default()
    }

    /// Ends the window after `elapsed`.
    pub fn finish(mut self, elapsed: Duration) -> Observation {
        self.seen.elapsed = elapsed;
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn extractor(published: u64, publish_dropped: u64) -> Vec<u8> {
        ExtractorCounters {
            published,
            publish_dropped,
            ..Default::default()
        }
        .to_json()
    }

    #[test]
    fn flat_subjects_are_one_local_node() {
        let mut c = Collector::new(SubjectScheme::Flat);
        c.observe("netmsg", b"x", secs(1));
        c.observe("netmsg", b"x", secs(3));
        c.observe("rpc", b"x", secs(2));
        c.observe("peerlab.stats.ebpf-extractor", &extractor(5, 0), secs(4));
        c.observe("something-else", b"x", secs(4));
        let seen = c.finish(secs(12));
        assert_eq!(seen.elapsed, secs(12));
        assert_eq!(seen.unrecognised, 1);
        let local = &seen.nodes[LOCAL_NODE];
        assert_eq!(seen.nodes.len(), 1);
        assert_eq!(
            local.subjects[&EventKind::NetMsg],
            SubjectSeen {
                messages: 2,
                last_at: secs(3)
            }
        );
        assert_eq!(local.subjects[&EventKind::Rpc].messages, 1);
        let ebpf = &local.components["ebpf-extractor"];
        assert_eq!(ebpf.snapshots, 1);
        assert_eq!(ebpf.last.as_ref().map(Snapshot::produced), Some(5));
    }

    #[test]
    fn prefixed_subjects_group_by_node() {
        let fleet = SubjectScheme::Prefixed {
            prefix: "peerlab".into(),
            node: "*".into(),
        };
        let mut c = Collector::new(fleet);
        c.observe("peerlab.n1.netconn", b"x", secs(1));
        c.observe("peerlab.n2.mempool", b"x", secs(2));
        c.observe(
            "peerlab.n2.peerlab.stats.ebpf-extractor",
            &extractor(1, 0),
            secs(2),
        );
        // A flat counter subject on the same server is not a node called `stats`.
        c.observe("peerlab.stats.log-extractor", &extractor(1, 0), secs(2));
        let seen = c.finish(secs(5));
        assert_eq!(
            seen.nodes.keys().collect::<Vec<_>>(),
            vec!["n1", "n2"],
            "{seen:?}"
        );
        assert_eq!(seen.unrecognised, 1);
        assert!(seen.nodes["n1"].components.is_empty());
        assert!(seen.nodes["n2"].components.contains_key("ebpf-extractor"));
        assert_eq!(seen.nodes["n2"].subjects[&EventKind::Mempool].messages, 1);
    }

    #[test]
    fn snapshots_are_read_by_component_and_first_and_last_are_kept() {
        let mut c = Collector::new(SubjectScheme::Flat);
        let publisher = |offered, dropped_buffer_full| {
            serde_json::to_vec(&StatsSnapshot {
                offered,
                sent: offered - dropped_buffer_full,
                dropped_buffer_full,
                ..Default::default()
            })
            .expect("serializes")
        };
        let stats = "peerlab.stats.observe-publisher";
        c.observe(stats, &publisher(10, 0), secs(1));
        c.observe(stats, &publisher(20, 2), secs(6));
        c.observe(stats, &publisher(30, 5), secs(11));
        c.observe(stats, b"not json", secs(11));
        let recorder = serde_json::to_vec(&RecorderCounters {
            recorded: 4,
            ..Default::default()
        })
        .expect("serializes");
        c.observe("peerlab.stats.recorder", &recorder, secs(2));
        // An extractor snapshot lacking its required drop counters does not decode.
        c.observe(
            "peerlab.stats.ebpf-extractor",
            br#"{"published":1}"#,
            secs(3),
        );
        let seen = c.finish(secs(12));
        let local = &seen.nodes[LOCAL_NODE];
        let p = &local.components["observe-publisher"];
        assert_eq!((p.snapshots, p.undecodable, p.last_at), (3, 1, secs(11)));
        let (first, last) = (
            p.first.as_ref().expect("first"),
            p.last.as_ref().expect("last"),
        );
        assert_eq!((first.produced(), last.produced()), (10, 30));
        assert_eq!(last.sent(), Some(25));
        assert_eq!(last.role(), "publisher");
        assert_eq!(last.drop_counters()[0], ("dropped_buffer_full", 5));
        let r = &local.components["recorder"];
        assert_eq!(r.last.as_ref().map(Snapshot::role), Some("recorder"));
        let e = &local.components["ebpf-extractor"];
        assert_eq!((e.snapshots, e.undecodable), (0, 1));
    }

    #[test]
    fn growth_counts_a_restart_from_zero() {
        assert_eq!(growth(3, 10), 7);
        assert_eq!(growth(10, 10), 0);
        assert_eq!(growth(10, 4), 4);
    }
}
