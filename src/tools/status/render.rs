//! The readable form of a [`StatusReport`]: a verdict line per node, then its extractors,
//! counter components, subjects, drops and link as aligned tables. Returned as text; the
//! caller decides where it goes.
//!
//! Invariant: every reason of an unhealthy node, every drop counter above zero and every
//! report-level problem appears in the text, so nothing in the JSON form is judged but unseen.

use super::leafz::Leaf;
use super::report::{LinkState, NodeLink, NodeStatus, StatusReport};

/// The report as text, ending in a one-line result.
pub fn render_text(report: &StatusReport) -> String {
    let mut out = format!(
        "peerlab status: listened {:.1} s, subjects {}\n",
        report.window_secs, report.scheme
    );
    for node in &report.nodes {
        out.push('\n');
        // Only worth saying when some nodes were expected by name.
        let unexpected = !node.expected && !report.expected_nodes.is_empty();
        render_node(&mut out, node, unexpected);
    }
    if let LinkState::Fetched { url, leafz } = &report.links {
        out.push_str(&format!(
            "\nleafnode links ({url}): {}\n",
            leafz.leafs.len()
        ));
        if !leafz.leafs.is_empty() {
            out.push_str(&leaf_table(&leafz.leafs));
        }
    }
    if report.unrecognised_messages > 0 {
        out.push_str(&format!(
            "\n{} message(s) on other subjects were skipped\n",
            report.unrecognised_messages
        ));
    }
    out.push('\n');
    for problem in &report.problems {
        out.push_str(&format!("problem: {problem}\n"));
    }
    let unhealthy: Vec<&str> = report
        .nodes
        .iter()
        .filter(|n| !n.healthy)
        .map(|n| n.node.as_str())
        .collect();
    let total = report.nodes.len();
    if report.healthy {
        out.push_str(&format!("result: healthy ({total} node(s))\n"));
    } else if unhealthy.is_empty() {
        out.push_str(&format!("result: UNHEALTHY ({total} node(s) healthy)\n"));
    } else {
        out.push_str(&format!(
            "result: UNHEALTHY: {} ({} of {total} node(s))\n",
            unhealthy.join(", "),
            unhealthy.len()
        ));
    }
    out
}

fn render_node(out: &mut String, node: &NodeStatus, unexpected: bool) {
    let expected = if unexpected { " (not expected)" } else { "" };
    if node.healthy {
        out.push_str(&format!("node {}{expected}: healthy\n", node.node));
    } else {
        out.push_str(&format!(
            "node {}{expected}: UNHEALTHY: {}\n",
            node.node,
            node.reasons.join("; ")
        ));
    }
    if !node.extractors.is_empty() {
        let each: Vec<String> = node
            .extractors
            .iter()
            .map(|e| {
                let from = match (e.stats, e.events) {
                    (true, true) => "stats, events",
                    (true, false) => "stats only",
                    _ => "events only",
                };
                format!("{} ({from})", e.component)
            })
            .collect();
        out.push_str(&format!("  extractors: {}\n", each.join(", ")));
    }
    if !node.components.is_empty() {
        let mut rows = vec![row(&[
            "component",
            "role",
            "snapshots",
            "last",
            "produced (+window)",
            "sent",
            "dropped (+window)",
        ])];
        for c in &node.components {
            let snapshots = if c.undecodable > 0 {
                format!("{} ({} bad)", c.snapshots, c.undecodable)
            } else {
                c.snapshots.to_string()
            };
            let produced = match (c.produced, c.produced_in_window) {
                (Some(total), Some(grew)) => format!("{total} (+{grew})"),
                _ => "-".to_string(),
            };
            rows.push(vec![
                c.component.clone(),
                c.role.clone(),
                snapshots,
                format!("{:.1} s ago", c.last_age_secs),
                produced,
                c.sent.map_or_else(|| "-".to_string(), |v| v.to_string()),
                format!("{} (+{})", c.dropped, c.dropped_in_window),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if !node.subjects.is_empty() {
        let mut rows = vec![row(&["subject", "messages", "rate/s", "last"])];
        for s in &node.subjects {
            rows.push(vec![
                s.subject.clone(),
                s.messages.to_string(),
                format!("{:.2}", s.rate_per_sec),
                match s.last_age_secs {
                    Some(age) => format!("{age:.1} s ago"),
                    None => "none in window".to_string(),
                },
            ]);
        }
        out.push_str(&table(&rows));
    }
    if node.drops.is_empty() {
        out.push_str("  drops: none\n");
    } else {
        let each: Vec<String> = node
            .drops
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} (+{} in window)",
                    d.component, d.counter, d.total, d.grew_by
                )
            })
            .collect();
        out.push_str(&format!("  drops: {}\n", each.join(", ")));
    }
    let link = match &node.link {
        NodeLink::Unknown => "unknown (no monitoring URL given)".to_string(),
        NodeLink::Unavailable => "unknown (the monitoring endpoint did not answer)".to_string(),
        NodeLink::NoLinks => "no leafnode link".to_string(),
        NodeLink::Unmatched => "no leafnode link named after this node".to_string(),
        NodeLink::Up { leafs } => {
            let each: Vec<String> = leafs
                .iter()
                .map(|l| format!("{}:{} rtt {}", l.ip, l.port, l.rtt))
                .collect();
            format!("{} leafnode link(s): {}", leafs.len(), each.join(", "))
        }
    };
    out.push_str(&format!("  link: {link}\n"));
}

fn leaf_table(leafs: &[Leaf]) -> String {
    let mut rows = vec![row(&[
        "name", "account", "remote", "rtt", "in msgs", "out msgs", "subs",
    ])];
    for l in leafs {
        rows.push(vec![
            if l.name.is_empty() {
                "-".to_string()
            } else {
                l.name.clone()
            },
            l.account.clone(),
            format!("{}:{}", l.ip, l.port),
            l.rtt.clone(),
            l.in_msgs.to_string(),
            l.out_msgs.to_string(),
            l.subscriptions.to_string(),
        ]);
    }
    table(&rows)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Rows as columns padded to their widest cell, indented by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
