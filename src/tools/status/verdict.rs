//! The verdict on a finished window: per node, which extractors publish, their counters,
//! each subject's last message and rate, the drops, the link, and whether it is healthy.
//!
//! Invariants:
//! - a node is healthy exactly when counter snapshots arrived in the window, events did too
//!   (unless it was heard only through a recorder's counters: a consumer, such as a
//!   collector's own recorder, has none to send), and no drop counter grew during it; every
//!   other outcome carries its reason;
//! - a node that was expected (named, or the one node of a flat scheme or of a named
//!   prefixed node) but never heard from is reported, unhealthy, never left out;
//! - drop totals above zero are always shown, but only growth inside the window is held
//!   against a node: a total counts since its component started, possibly long ago;
//! - links are informational per node; a monitoring endpoint that was asked for and could
//!   not be read makes the whole report unhealthy (the check is incomplete).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::collect::{growth, ComponentSeen, NodeSeen, Observation, Snapshot, LOCAL_NODE};
use super::leafz::Leaf;
use super::report::{
    ComponentStatus, DropStatus, ExtractorStatus, LinkState, NodeLink, NodeStatus, StatusReport,
    SubjectStatus,
};
use crate::bus::SubjectScheme;
use crate::event::EventKind;
use crate::extractors::ebpf::EbpfExtractor;
use crate::extractors::ipc::IpcExtractor;
use crate::extractors::log::LogExtractor;
use crate::extractors::p2p::P2pExtractor;
use crate::extractors::rpc::RpcExtractor;
use crate::extractors::Extractor;

/// The extractor component that publishes events of `kind` (by the extractors' own
/// [`Extractor::COMPONENT`] names; no extractor is used).
pub fn source_of(kind: EventKind) -> &'static str {
    match kind {
        EventKind::NetMsg
        | EventKind::NetConn
        | EventKind::Mempool
        | EventKind::Validation
        | EventKind::Utxocache => EbpfExtractor::COMPONENT,
        EventKind::Rpc => RpcExtractor::COMPONENT,
        EventKind::P2pExtractor => P2pExtractor::COMPONENT,
        EventKind::LogExtractor => LogExtractor::COMPONENT,
        EventKind::Ipc => IpcExtractor::COMPONENT,
    }
}

/// `12 s`, the way a window is named in reasons.
pub fn seconds_text(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

/// Judges `seen` (collected under `scheme`). `expected` names nodes that must be present;
/// the flat scheme's one node and a prefixed scheme's named (non-`*`) node are expected too.
pub fn judge(
    seen: &Observation,
    scheme: &SubjectScheme,
    expected: &[String],
    links: LinkState,
) -> StatusReport {
    let mut expected: BTreeSet<String> = expected.iter().cloned().collect();
    match scheme {
        SubjectScheme::Flat => {
            expected.insert(LOCAL_NODE.to_string());
        }
        SubjectScheme::Prefixed { node, .. } if node != "*" => {
            expected.insert(node.clone());
        }
        SubjectScheme::Prefixed { .. } => {}
    }
    let names: BTreeSet<&String> = seen.nodes.keys().chain(expected.iter()).collect();
    let empty = NodeSeen::default();
    let nodes: Vec<NodeStatus> = names
        .into_iter()
        .map(|name| {
            let node_seen = seen.nodes.get(name).unwrap_or(&empty);
            let mut status = judge_node(name, node_seen, seen.elapsed);
            status.expected = expected.contains(name);
            status.link = node_link(name, scheme, &links);
            status
        })
        .collect();
    let mut problems = Vec::new();
    if nodes.is_empty() {
        problems.push(format!(
            "no node heard from in {}",
            seconds_text(seen.elapsed)
        ));
    }
    if let LinkState::Unavailable { reason, .. } = &links {
        problems.push(format!("leafnode links unknown: {reason}"));
    }
    StatusReport {
        window_secs: seen.elapsed.as_secs_f64(),
        scheme: scheme.describe(),
        healthy: problems.is_empty() && nodes.iter().all(|n| n.healthy),
        expected_nodes: expected.into_iter().collect(),
        nodes,
        links,
        problems,
        unrecognised_messages: seen.unrecognised,
    }
}

fn judge_node(name: &str, seen: &NodeSeen, elapsed: Duration) -> NodeStatus {
    let window = seconds_text(elapsed);
    let components: Vec<ComponentStatus> = seen
        .components
        .iter()
        .map(|(component, c)| component_status(component, c, elapsed))
        .collect();
    let drops = drops(seen);
    let mut reasons = Vec::new();
    if seen.components.is_empty() && seen.subjects.is_empty() {
        reasons.push(format!("nothing heard from it in {window}"));
    } else {
        let readable = seen.components.values().any(|c| c.last.is_some());
        let unreadable: u64 = seen.components.values().map(|c| c.undecodable).sum();
        if !readable && unreadable > 0 {
            reasons.push(format!(
                "no readable stats for {window} ({unreadable} snapshot(s) did not decode)"
            ));
        } else if !readable {
            reasons.push(format!("no stats for {window}"));
        }
        // A node heard only through a recorder's counters is a consumer (a collector's own
        // recorder), not a source: it has no events to send.
        let consumer_only = seen.subjects.is_empty()
            && seen
                .components
                .values()
                .all(|c| matches!(c.last, Some(Snapshot::Recorder(_))));
        if !consumer_only && seen.subjects.values().all(|s| s.messages == 0) {
            reasons.push(format!("no events for {window}"));
        }
        let grown: Vec<&DropStatus> = drops.iter().filter(|d| d.grew_by > 0).collect();
        if !grown.is_empty() {
            let total: u64 = grown.iter().map(|d| d.grew_by).sum();
            let each: Vec<String> = grown
                .iter()
                .map(|d| format!("{} {} +{}", d.component, d.counter, d.grew_by))
                .collect();
            reasons.push(format!("drops grew by {total} ({})", each.join(", ")));
        }
    }
    NodeStatus {
        node: name.to_string(),
        healthy: reasons.is_empty(),
        reasons,
        expected: false,
        extractors: extractors(seen),
        components,
        subjects: subjects(seen, elapsed),
        drops,
        link: NodeLink::Unknown,
    }
}

fn component_status(component: &str, seen: &ComponentSeen, elapsed: Duration) -> ComponentStatus {
    let last = seen.last.as_ref();
    let first = seen.first.as_ref();
    let dropped = |s: &Snapshot| s.drop_counters().iter().map(|(_, v)| v).sum::<u64>();
    ComponentStatus {
        component: component.to_string(),
        role: last.map_or("undecodable", Snapshot::role).to_string(),
        snapshots: seen.snapshots,
        undecodable: seen.undecodable,
        last_age_secs: elapsed.saturating_sub(seen.last_at).as_secs_f64(),
        produced: last.map(Snapshot::produced),
        produced_in_window: first
            .zip(last)
            .map(|(f, l)| growth(f.produced(), l.produced())),
        sent: last.and_then(Snapshot::sent),
        dropped: last.map_or(0, dropped),
        dropped_in_window: first.zip(last).map_or(0, |(f, l)| {
            f.drop_counters()
                .iter()
                .zip(l.drop_counters())
                .map(|((_, a), (_, b))| growth(*a, b))
                .sum()
        }),
    }
}

fn drops(seen: &NodeSeen) -> Vec<DropStatus> {
    let mut drops = Vec::new();
    for (component, c) in &seen.components {
        let (Some(first), Some(last)) = (&c.first, &c.last) else {
            continue;
        };
        for ((counter, total), (_, before)) in
            last.drop_counters().into_iter().zip(first.drop_counters())
        {
            if total > 0 {
                drops.push(DropStatus {
                    component: component.clone(),
                    counter: counter.to_string(),
                    total,
                    grew_by: growth(before, total),
                });
            }
        }
    }
    drops
}

fn extractors(seen: &NodeSeen) -> Vec<ExtractorStatus> {
    fn entry<'a>(
        found: &'a mut BTreeMap<String, ExtractorStatus>,
        component: &str,
    ) -> &'a mut ExtractorStatus {
        found
            .entry(component.to_string())
            .or_insert_with(|| ExtractorStatus {
                component: component.to_string(),
                stats: false,
                events: false,
            })
    }
    let mut found = BTreeMap::new();
    for (component, c) in &seen.components {
        if matches!(c.last, Some(Snapshot::Extractor(_))) {
            entry(&mut found, component).stats = true;
        }
    }
    for (kind, s) in &seen.subjects {
        if s.messages > 0 {
            entry(&mut found, source_of(*kind)).events = true;
        }
    }
    found.into_values().collect()
}

fn subjects(seen: &NodeSeen, elapsed: Duration) -> Vec<SubjectStatus> {
    // The subjects of extractors that sent counters are listed even without events, so a
    // silent one shows as "none in window" (utxocache is opt-in and would only be noise).
    let reporting: BTreeSet<&str> = seen
        .components
        .iter()
        .filter(|(_, c)| matches!(c.last, Some(Snapshot::Extractor(_))))
        .map(|(name, _)| name.as_str())
        .collect();
    let secs = elapsed.as_secs_f64();
    EventKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let s = seen.subjects.get(&kind).copied().unwrap_or_default();
            let listed = s.messages > 0
                || (kind != EventKind::Utxocache && reporting.contains(source_of(kind)));
            listed.then(|| SubjectStatus {
                subject: kind.subject().to_string(),
                messages: s.messages,
                rate_per_sec: if secs > 0.0 {
                    s.messages as f64 / secs
                } else {
                    0.0
                },
                last_age_secs: (s.messages > 0)
                    .then(|| elapsed.saturating_sub(s.last_at).as_secs_f64()),
            })
        })
        .collect()
}

fn node_link(name: &str, scheme: &SubjectScheme, links: &LinkState) -> NodeLink {
    match links {
        LinkState::Unknown => NodeLink::Unknown,
        LinkState::Unavailable { .. } => NodeLink::Unavailable,
        LinkState::Fetched { leafz, .. } => {
            let leafs: Vec<Leaf> = match scheme {
                SubjectScheme::Flat => leafz.leafs.clone(),
                SubjectScheme::Prefixed { .. } => leafz
                    .leafs
                    .iter()
                    .filter(|l| l.name == name)
                    .cloned()
                    .collect(),
            };
            match (leafs.is_empty(), scheme) {
                (false, _) => NodeLink::Up { leafs },
                (true, SubjectScheme::Flat) => NodeLink::NoLinks,
                (true, SubjectScheme::Prefixed { .. }) => NodeLink::Unmatched,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::StatsSnapshot;
    use crate::event::counters::ExtractorCounters;
    use crate::tools::status::collect::Collector;
    use crate::tools::status::leafz::Leafz;

    const WINDOW: Duration = Duration::from_secs(12);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn fleet() -> SubjectScheme {
        SubjectScheme::Prefixed {
            prefix: "peerlab".into(),
            node: "*".into(),
        }
    }

    fn ebpf(published: u64, publish_dropped: u64, dropped_in_kernel: u64) -> Vec<u8> {
        ExtractorCounters {
            published,
            publish_dropped,
            dropped_in_kernel,
            ..Default::default()
        }
        .to_json()
    }

    fn publisher(offered: u64, dropped_buffer_full: u64) -> Vec<u8> {
        serde_json::to_vec(&StatsSnapshot {
            offered,
            sent: offered - dropped_buffer_full,
            dropped_buffer_full,
            ..Default::default()
        })
        .expect("serializes")
    }

    /// A node heard as a healthy extractor would be: events, counters twice, no new drops.
    fn healthy_node(c: &mut Collector, node: &str) {
        let at = |s| format!("peerlab.{node}.{s}");
        c.observe(&at("netmsg"), b"e", secs(1));
        c.observe(&at("netmsg"), b"e", secs(9));
        c.observe(
            &at("peerlab.stats.ebpf-extractor"),
            &ebpf(10, 0, 3),
            secs(2),
        );
        c.observe(
            &at("peerlab.stats.ebpf-extractor"),
            &ebpf(20, 0, 3),
            secs(11),
        );
        c.observe(
            &at("peerlab.stats.ebpf-extractor-publisher"),
            &publisher(20, 0),
            secs(11),
        );
    }

    fn node<'r>(report: &'r StatusReport, name: &str) -> &'r NodeStatus {
        report
            .nodes
            .iter()
            .find(|n| n.node == name)
            .unwrap_or_else(|| panic!("node {name} in {report:#?}"))
    }

    #[test]
    fn a_node_with_stats_events_and_no_new_drops_is_healthy() {
        let mut c = Collector::new(fleet());
        healthy_node(&mut c, "n1");
        let report = judge(&c.finish(WINDOW), &fleet(), &[], LinkState::Unknown);
        assert!(report.healthy, "{report:#?}");
        let n1 = node(&report, "n1");
        assert!(n1.healthy && n1.reasons.is_empty());
        assert!(!n1.expected);
        assert_eq!(
            n1.extractors,
            vec![ExtractorStatus {
                component: "ebpf-extractor".into(),
                stats: true,
                events: true
            }]
        );
        // netmsg seen; the other subjects of a reporting eBPF extractor listed as silent.
        let subjects: Vec<(&str, u64, Option<f64>)> = n1
            .subjects
            .iter()
            .map(|s| (s.subject.as_str(), s.messages, s.last_age_secs))
            .collect();
        assert_eq!(
            subjects,
            vec![
                ("netmsg", 2, Some(3.0)),
                ("netconn", 0, None),
                ("mempool", 0, None),
                ("validation", 0, None),
            ]
        );
        assert!((n1.subjects[0].rate_per_sec - 2.0 / 12.0).abs() < 1e-9);
        let e = &n1.components[0];
        assert_eq!(
            (e.role.as_str(), e.produced, e.produced_in_window),
            ("extractor", Some(20), Some(10))
        );
        assert_eq!(
            (e.dropped, e.dropped_in_window, e.last_age_secs),
            (3, 0, 1.0)
        );
        let p = &n1.components[1];
        assert_eq!(
            (p.role.as_str(), p.sent, p.produced_in_window),
            ("publisher", Some(20), Some(0))
        );
        // An old total is shown, not held against the node.
        assert_eq!(
            n1.drops,
            vec![DropStatus {
                component: "ebpf-extractor".into(),
                counter: "dropped_in_kernel".into(),
                total: 3,
                grew_by: 0
            }]
        );
        assert_eq!(n1.link, NodeLink::Unknown);
        let text = crate::tools::status::render_text(&report);
        assert!(text.contains("node n1: healthy"), "{text}");
        assert!(text.contains("none in window"), "{text}");
        assert!(text.contains("result: healthy (1 node(s))"), "{text}");
    }

    #[test]
    fn growing_drops_make_a_node_unhealthy_and_name_the_counter() {
        let mut c = Collector::new(SubjectScheme::Flat);
        c.observe("mempool", b"e", secs(1));
        c.observe(
            "peerlab.stats.observe-publisher",
            &publisher(10, 1),
            secs(1),
        );
        c.observe(
            "peerlab.stats.observe-publisher",
            &publisher(30, 5),
            secs(11),
        );
        c.observe("peerlab.stats.ebpf-extractor", &ebpf(5, 0, 0), secs(1));
        c.observe("peerlab.stats.ebpf-extractor", &ebpf(1, 2, 0), secs(11));
        let report = judge(
            &c.finish(WINDOW),
            &SubjectScheme::Flat,
            &[],
            LinkState::Unknown,
        );
        assert!(!report.healthy);
        let local = node(&report, LOCAL_NODE);
        assert!(local.expected, "the flat scheme's one node is expected");
        assert_eq!(
            local.reasons,
            vec!["drops grew by 6 (ebpf-extractor publish_dropped +2, \
                 observe-publisher dropped_buffer_full +4)"
                .to_string()]
        );
        // The extractor restarted (published went down): its new total is all growth.
        let e = &local.components[0];
        assert_eq!((e.produced_in_window, e.dropped_in_window), (Some(1), 2));
        let text = crate::tools::status::render_text(&report);
        assert!(text.contains("UNHEALTHY: drops grew by 6"), "{text}");
        assert!(
            text.contains("dropped_buffer_full 5 (+4 in window)"),
            "{text}"
        );
    }

    #[test]
    fn missing_stats_events_and_expected_nodes_are_reasons() {
        let mut c = Collector::new(fleet());
        healthy_node(&mut c, "n1");
        // n2: events only; n3: counters only (and unreadable); n4: expected, silent.
        c.observe("peerlab.n2.rpc", b"e", secs(3));
        c.observe("peerlab.n3.peerlab.stats.log-extractor", b"{}", secs(3));
        let expected = ["n1".to_string(), "n4".to_string()];
        let report = judge(&c.finish(WINDOW), &fleet(), &expected, LinkState::Unknown);
        assert!(!report.healthy);
        assert!(node(&report, "n1").healthy && node(&report, "n1").expected);
        assert_eq!(node(&report, "n2").reasons, vec!["no stats for 12 s"]);
        assert_eq!(
            node(&report, "n2").extractors,
            vec![ExtractorStatus {
                component: "rpc-extractor".into(),
                stats: false,
                events: true
            }]
        );
        assert_eq!(
            node(&report, "n3").reasons,
            vec![
                "no readable stats for 12 s (1 snapshot(s) did not decode)",
                "no events for 12 s"
            ]
        );
        assert_eq!(node(&report, "n3").components[0].role, "undecodable");
        let n4 = node(&report, "n4");
        assert!(n4.expected && !n4.healthy);
        assert_eq!(n4.reasons, vec!["nothing heard from it in 12 s"]);
        let text = crate::tools::status::render_text(&report);
        assert!(
            text.contains("result: UNHEALTHY: n2, n3, n4 (3 of 4 node(s))"),
            "{text}"
        );
        assert!(text.contains("node n2 (not expected): UNHEALTHY"), "{text}");
        assert!(text.contains("node n1: healthy"), "{text}");
        assert_eq!(report.expected_nodes, ["n1", "n4"]);
    }

    #[test]
    fn a_node_with_only_a_recorder_needs_no_events() {
        let recorder = |recorded, slow_consumer_events| {
            serde_json::to_vec(&crate::event::counters::RecorderCounters {
                recorded,
                slow_consumer_events,
                ..Default::default()
            })
            .expect("serializes")
        };
        let subject = "peerlab.collector.peerlab.stats.recorder";
        let mut c = Collector::new(fleet());
        c.observe(subject, &recorder(10, 1), secs(1));
        c.observe(subject, &recorder(50, 1), secs(11));
        let report = judge(&c.finish(WINDOW), &fleet(), &[], LinkState::Unknown);
        let collector = node(&report, "collector");
        assert!(collector.healthy, "{collector:#?}");
        assert!(collector.extractors.is_empty());
        // Its slow-consumer notices are drops like any other.
        let mut c = Collector::new(fleet());
        c.observe(subject, &recorder(10, 1), secs(1));
        c.observe(subject, &recorder(50, 3), secs(11));
        let report = judge(&c.finish(WINDOW), &fleet(), &[], LinkState::Unknown);
        assert_eq!(
            node(&report, "collector").reasons,
            vec!["drops grew by 2 (recorder slow_consumer_events +2)"]
        );
    }

    #[test]
    fn a_fleet_with_no_node_at_all_is_unhealthy() {
        let seen = Collector::new(fleet()).finish(WINDOW);
        let report = judge(&seen, &fleet(), &[], LinkState::Unknown);
        assert!(!report.healthy && report.nodes.is_empty());
        assert_eq!(report.problems, vec!["no node heard from in 12 s"]);
        // A named node of a prefixed scheme is expected without being listed.
        let named = SubjectScheme::Prefixed {
            prefix: "peerlab".into(),
            node: "n7".into(),
        };
        let report = judge(&seen, &named, &[], LinkState::Unknown);
        assert_eq!(
            node(&report, "n7").reasons,
            vec!["nothing heard from it in 12 s"]
        );
    }

    #[test]
    fn links_are_attributed_by_scheme_and_an_unreadable_monitor_fails_the_report() {
        let leaf = |name: &str| Leaf {
            name: name.into(),
            ip: "10.0.0.1".into(),
            port: 7422,
            rtt: "1ms".into(),
            ..Default::default()
        };
        let fetched = |leafs| LinkState::Fetched {
            url: "http://m".into(),
            leafz: Leafz {
                server_id: "S".into(),
                leafs,
            },
        };
        let mut c = Collector::new(fleet());
        healthy_node(&mut c, "n1");
        healthy_node(&mut c, "n2");
        let seen = c.finish(WINDOW);
        let report = judge(&seen, &fleet(), &[], fetched(vec![leaf("n1"), leaf("")]));
        assert!(report.healthy);
        assert_eq!(
            node(&report, "n1").link,
            NodeLink::Up {
                leafs: vec![leaf("n1")]
            }
        );
        assert_eq!(node(&report, "n2").link, NodeLink::Unmatched);
        let text = crate::tools::status::render_text(&report);
        assert!(text.contains("leafnode links (http://m): 2"), "{text}");

        let mut c = Collector::new(SubjectScheme::Flat);
        c.observe("netmsg", b"e", secs(1));
        c.observe("peerlab.stats.ebpf-extractor", &ebpf(1, 0, 0), secs(1));
        let flat = c.finish(WINDOW);
        let report = judge(&flat, &SubjectScheme::Flat, &[], fetched(vec![leaf("")]));
        assert_eq!(
            node(&report, LOCAL_NODE).link,
            NodeLink::Up {
                leafs: vec![leaf("")]
            }
        );
        let report = judge(&flat, &SubjectScheme::Flat, &[], fetched(vec![]));
        assert_eq!(node(&report, LOCAL_NODE).link, NodeLink::NoLinks);
        assert!(report.healthy, "links are informational");

        let unavailable = LinkState::Unavailable {
            url: "http://m".into(),
            reason: "connection refused".into(),
        };
        let report = judge(&flat, &SubjectScheme::Flat, &[], unavailable);
        assert!(!report.healthy && node(&report, LOCAL_NODE).healthy);
        assert_eq!(
            report.problems,
            vec!["leafnode links unknown: connection refused"]
        );
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["links"]["state"], "unavailable");
        assert_eq!(json["nodes"][0]["link"]["state"], "unavailable");
        assert_eq!(json["nodes"][0]["node"], "local");
    }
}
