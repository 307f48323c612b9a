//! Validation of topologies: the `[[node]]`s and every key that names a node.
//!
//! Rules:
//! - node names are unique, 1 to 32 letters, digits, `_` or `-` (they become NATS subject
//!   tokens and container names); at most [`MAX_NODES`] nodes;
//! - `addnode` names other nodes of the topology, each at most once;
//! - at least one node has `observe = true`;
//! - extra arguments are options (`-...`) that do not override what the harness sets;
//! - `node`/`nodes` keys of peer groups, steps and expectations name nodes of the topology,
//!   and appear only in topologies; `distinct_addresses` too;
//! - an event expectation may name only an observed node (the others publish nothing);
//! - `restart_node` and `bump_mocktime` (and `[node] mocktime`) are single-node features.

use std::collections::HashSet;

use super::types::{Action, Check};
use super::Scenario;

/// Most nodes in one topology.
pub const MAX_NODES: usize = 32;

/// Each problem as (path, message).
pub(super) fn problems(s: &Scenario) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let names: Vec<&str> = s.topology.iter().map(|n| n.name.as_str()).collect();
    let known = names.join(", ");
    let topology = s.is_topology();
    let node_ref = |out: &mut Vec<(String, String)>, path: String, name: &str| {
        if !topology {
            out.push((
                path,
                format!(
                    "names node {name:?}, but the scenario has a single node; declare \
                     [[node]]s to rehearse a topology"
                ),
            ));
        } else if !names.contains(&name) {
            out.push((path, format!("unknown node {name:?} (nodes: {known})")));
        }
    };
    if s.topology.len() > MAX_NODES {
        out.push((
            format!("node[{MAX_NODES}]"),
            format!(
                "more than {MAX_NODES} [[node]]s ({} in all)",
                s.topology.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, node) in s.topology.iter().enumerate() {
        let p = |key: &str| format!("node[{i}].{key}");
        let valid = !node.name.is_empty()
            && node.name.len() <= 32
            && node
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            out.push((
                p("name"),
                format!(
                    "{:?} must be 1 to 32 letters, digits, `_` or `-` (it names a container \
                     and a subject token)",
                    node.name
                ),
            ));
        }
        if !seen.insert(node.name.as_str()) {
            out.push((p("name"), format!("duplicate node name {:?}", node.name)));
        }
        let mut edges = HashSet::new();
        for (j, target) in node.addnode.iter().enumerate() {
            let path = format!("node[{i}].addnode[{j}]");
            if target == &node.name {
                out.push((path, format!("node {:?} cannot addnode itself", node.name)));
            } else if !names.contains(&target.as_str()) {
                out.push((path, format!("unknown node {target:?} (nodes: {known})")));
            } else if !edges.insert(target.as_str()) {
                out.push((path, format!("{target:?} is listed twice")));
            }
        }
        for (j, arg) in node.extra_args.iter().enumerate() {
            if let Some(problem) = super::validate::managed_arg_problem(arg) {
                out.push((format!("node[{i}].extra_args[{j}]"), problem));
            }
        }
    }
    if topology && !s.topology.iter().any(|n| n.observe) {
        out.push((
            "node[0].observe".into(),
            "no node is observed: set `observe = true` on at least one [[node]]".into(),
        ));
    }
    for (i, group) in s.peers.iter().enumerate() {
        let mut targets = HashSet::new();
        for (j, name) in group.nodes.iter().enumerate() {
            let path = if group.nodes.len() == 1 {
                format!("peers[{i}].node")
            } else {
                format!("peers[{i}].nodes[{j}]")
            };
            node_ref(&mut out, path.clone(), name);
            if !targets.insert(name.as_str()) {
                out.push((path, format!("node {name:?} is listed twice")));
            }
        }
        if group.distinct_addresses && !topology {
            out.push((
                format!("peers[{i}].distinct_addresses"),
                "distinct addresses come from a container network: declare [[node]]s".into(),
            ));
        }
    }
    for (j, step) in s.steps.iter().enumerate() {
        if let Some(name) = &step.node {
            node_ref(&mut out, format!("steps[{j}].node"), name);
        }
        if topology {
            let single_only = match step.action {
                Action::RestartNode => Some("restart_node"),
                Action::BumpMocktime(_) => Some("bump_mocktime"),
                _ => None,
            };
            if let Some(action) = single_only {
                out.push((
                    format!("steps[{j}].action"),
                    format!("{action} runs only on the single embedded node, not in a topology"),
                ));
            }
        }
    }
    for (k, e) in s.expect.iter().enumerate() {
        let Some(name) = &e.node else { continue };
        let path = format!("expect[{k}].node");
        match &e.check {
            Check::Event(_) | Check::Rpc(_) => node_ref(&mut out, path.clone(), name),
            other => out.push((
                path.clone(),
                format!(
                    "`node` applies to event and rpc expectations, not {}",
                    other.name()
                ),
            )),
        }
        let observed = s.topology.iter().any(|n| &n.name == name && n.observe);
        if topology
            && matches!(e.check, Check::Event(_))
            && names.contains(&name.as_str())
            && !observed
        {
            out.push((
                path,
                format!(
                    "node {name:?} is not observed (`observe = true`), so it publishes no events"
                ),
            ));
        }
    }
    out
}
