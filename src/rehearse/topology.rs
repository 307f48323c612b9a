//! The parts of a rehearsal only topologies have: dialling the edges, spreading the
//! start-up blocks, adding up the observed nodes' counters, and the two per-node tables of
//! the report (when each node saw each block and transaction, and which node relayed a
//! transaction to a multi-node peer group first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::node::RehearsalNode;
use super::observe::Observed;
use super::RehearseError;
use crate::node::NodeRpc;
use crate::scenario::Scenario;
use crate::stack::StackCounters;

/// How long the edges may take to connect, and the nodes to agree on the tip.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

type Nodes = [(String, Arc<RehearsalNode>)];

fn node_of<'a>(nodes: &'a Nodes, name: &str) -> Option<&'a Arc<RehearsalNode>> {
    nodes.iter().find(|(n, _)| n == name).map(|(_, node)| node)
}

/// `addnode <address> add` for every edge, then waits (bounded) until each is connected.
pub(super) async fn connect_edges(
    scenario: &Scenario,
    nodes: &Nodes,
    addresses: &[(String, String)],
) -> Result<(), RehearseError> {
    let mut edges = Vec::new();
    for from in &scenario.topology {
        for to in &from.addnode {
            let (Some(dialer), Some((_, address))) = (
                node_of(nodes, &from.name),
                addresses.iter().find(|(n, _)| n == to),
            ) else {
                continue;
            };
            edges.push((
                from.name.clone(),
                to.clone(),
                dialer.clone(),
                address.clone(),
            ));
        }
    }
    let pending = edges.clone();
    tokio::task::spawn_blocking(move || {
        for (from, to, dialer, address) in &pending {
            dialer
                .rpc::<Value>("addnode", &[json!(address), json!("add")])
                .map_err(|e| RehearseError::Stack(format!("{from}: addnode {to}: {e}")))?;
        }
        let deadline = Instant::now() + SETTLE_LIMIT;
        for (from, to, dialer, address) in &pending {
            loop {
                let info: Value = dialer
                    .rpc("getaddednodeinfo", &[json!(address)])
                    .map_err(|e| RehearseError::Stack(format!("{from}: getaddednodeinfo: {e}")))?;
                if info[0]["connected"].as_bool() == Some(true) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(RehearseError::Stack(format!(
                        "node {from} did not connect to {to} ({address}) within {}s",
                        SETTLE_LIMIT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| RehearseError::Stack(format!("connecting the edges: {e}")))?
}

/// Mines each node's start-up blocks, then waits (bounded) until the nodes of each
/// connected part of the topology share one tip.
pub(super) async fn mine_and_sync(scenario: &Scenario, nodes: &Nodes) -> Result<(), RehearseError> {
    let plan: Vec<(String, Arc<RehearsalNode>, u64)> = scenario
        .topology
        .iter()
        .filter_map(|n| {
            node_of(nodes, &n.name).map(|node| {
                (
                    n.name.clone(),
                    node.clone(),
                    u64::from(scenario.mine_at_start_of(n)),
                )
            })
        })
        .collect();
    let parts = components(scenario);
    let all: Vec<(String, Arc<RehearsalNode>)> = nodes.to_vec();
    tokio::task::spawn_blocking(move || {
        for (name, node, blocks) in &plan {
            if *blocks > 0 {
                node.mine(*blocks)
                    .map_err(|e| RehearseError::Stack(format!("{name}: mining: {e}")))?;
            }
        }
        let deadline = Instant::now() + SETTLE_LIMIT;
        for part in parts {
            loop {
                let mut tips = HashSet::new();
                for name in &part {
                    if let Some(node) = node_of(&all, name) {
                        let tip: String = node.rpc("getbestblockhash", &[]).map_err(|e| {
                            RehearseError::Stack(format!("{name}: getbestblockhash: {e}"))
                        })?;
                        tips.insert(tip);
                    }
                }
                if tips.len() <= 1 {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(RehearseError::Stack(format!(
                        "nodes {} did not agree on a tip within {}s",
                        part.join(", "),
                        SETTLE_LIMIT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| RehearseError::Stack(format!("mining the start-up blocks: {e}")))?
}

/// The connected parts of the topology (edges count both ways), as lists of node names.
fn components(scenario: &Scenario) -> Vec<Vec<String>> {
    let mut neighbours: HashMap<&str, Vec<&str>> = HashMap::new();
    for node in &scenario.topology {
        for to in &node.addnode {
            neighbours.entry(&node.name).or_default().push(to);
            neighbours.entry(to).or_default().push(&node.name);
        }
    }
    let mut seen = HashSet::new();
    let mut parts = Vec::new();
    for node in &scenario.topology {
        if !seen.insert(node.name.as_str()) {
            continue;
        }
        let mut part = vec![node.name.clone()];
        let mut stack = vec![node.name.as_str()];
        while let Some(at) = stack.pop() {
            for next in neighbours.get(at).into_iter().flatten() {
                if seen.insert(next) {
                    part.push(next.to_string());
                    stack.push(next);
                }
            }
        }
        parts.push(part);
    }
    parts
}

/// The observed nodes' counters added up (drops and what was sent are what a verdict
/// judges).
pub(super) fn sum_counters(per_node: &[(String, StackCounters)]) -> StackCounters {
    let mut sum = StackCounters::default();
    for (_, c) in per_node {
        sum.ebpf.records += c.ebpf.records;
        sum.ebpf.published += c.ebpf.published;
        sum.ebpf.malformed += c.ebpf.malformed;
        sum.ebpf.unpublished += c.ebpf.unpublished;
        sum.ebpf.publish_dropped += c.ebpf.publish_dropped;
        sum.ebpf.dropped_in_kernel += c.ebpf.dropped_in_kernel;
        sum.bus.offered += c.bus.offered;
        sum.bus.sent += c.bus.sent;
        sum.bus.dropped_buffer_full += c.bus.dropped_buffer_full;
        sum.bus.dropped_too_large += c.bus.dropped_too_large;
        sum.bus.dropped_unroutable += c.bus.dropped_unroutable;
        sum.bus.dropped_at_shutdown += c.bus.dropped_at_shutdown;
        sum.bus.dropped_spool += c.bus.dropped_spool;
    }
    sum
}

/// One block or transaction and when each observed node saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Propagation {
    /// `block` or `tx`.
    pub kind: String,
    /// The block height, for blocks.
    pub height: Option<i64>,
    /// Its hash or txid as the event carries it.
    pub id: String,
    /// When it was first seen (seconds since time zero) and by which node.
    pub first_secs: f64,
    /// Node -> seconds after the first sighting (0 for the first node).
    pub after_first_secs: BTreeMap<String, f64>,
}

/// Per block (`validation.block_connected`) and transaction (`mempool.added`) seen during
/// the run, the time each observed node's event arrived, earliest first.
pub fn propagation(observed: &[Observed]) -> Vec<Propagation> {
    // (kind, id) -> (height, node -> first arrival).
    type Sightings = BTreeMap<(String, String), (Option<i64>, BTreeMap<String, f64>)>;
    let mut seen = Sightings::new();
    for event in observed.iter().filter(|o| o.t_secs >= 0.0) {
        let Some(node) = &event.node else { continue };
        let (kind, field) = match (event.category.as_deref(), event.arm.as_deref()) {
            (Some("validation"), Some("block_connected")) => ("block", "hash"),
            (Some("mempool"), Some("added")) => ("tx", "txid"),
            _ => continue,
        };
        let Some(arm) = event.arm.as_deref().and_then(|a| event.body.get(a)) else {
            continue;
        };
        let Some(id) = arm.get(field).map(id_text) else {
            continue;
        };
        let entry = seen
            .entry((kind.to_string(), id))
            .or_insert_with(|| (arm.get("height").and_then(Value::as_i64), BTreeMap::new()));
        entry.1.entry(node.clone()).or_insert(event.t_secs);
    }
    let mut rows: Vec<Propagation> = seen
        .into_iter()
        .map(|((kind, id), (height, times))| {
            let first = times.values().copied().fold(f64::INFINITY, f64::min);
            Propagation {
                kind,
                height,
                id,
                first_secs: first,
                after_first_secs: times.into_iter().map(|(n, t)| (n, t - first)).collect(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.first_secs.total_cmp(&b.first_secs));
    rows
}

/// A hash as Bitcoin Core displays it: the events carry the 32 bytes in internal order
/// (base64 in their JSON form), Core shows them reversed, in hex.
fn id_text(value: &Value) -> String {
    use base64::Engine as _;
    match value {
        Value::String(s) => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(bytes) if bytes.len() == 32 => {
                bytes.iter().rev().map(|b| format!("{b:02x}")).collect()
            }
            _ => s.clone(),
        },
        other => other.to_string(),
    }
}

/// For a peer group connected to several nodes: per announced item, when each node first
/// announced it to the group's peers.
#[derive(Debug, Clone, Serialize)]
pub struct RelayOrder {
    /// The peer group.
    pub group: String,
    /// `tx` or `block` (the inv type).
    pub kind: String,
    /// The announced hash (as on the wire, hex).
    pub hash: String,
    /// The node that announced it first.
    pub first_node: String,
    /// Node -> seconds since time zero of its first announcement, in order.
    pub nodes: Vec<(String, f64)>,
}

/// Per multi-node peer group and announced transaction or block: which node announced it
/// to the group's peers first, and when each did (seconds since `t0`).
pub(super) fn relay_order(
    scenario: &Scenario,
    announced: &[(String, String, Vec<crate::attack::Announcement>)],
    t0: Instant,
) -> Vec<RelayOrder> {
    let t0_wall = std::time::SystemTime::now()
        .checked_sub(t0.elapsed())
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut rows = Vec::new();
    for group in scenario.peers.iter().filter(|g| g.nodes.len() > 1) {
        // (kind, hash) -> node -> first time.
        let mut firsts: BTreeMap<(&str, &str), BTreeMap<&str, f64>> = BTreeMap::new();
        for (_, node, items) in announced.iter().filter(|(g, _, _)| *g == group.name) {
            for item in items.iter().filter(|a| a.kind != "other") {
                let secs = item
                    .at
                    .duration_since(t0_wall)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                let per_node = firsts.entry((item.kind, item.hash.as_str())).or_default();
                let first = per_node.entry(node.as_str()).or_insert(secs);
                *first = first.min(secs);
            }
        }
        for ((kind, hash), per_node) in firsts {
            let mut nodes: Vec<(String, f64)> = per_node
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect();
            nodes.sort_by(|a, b| a.1.total_cmp(&b.1));
            let Some(first_node) = nodes.first().map(|(n, _)| n.clone()) else {
                continue;
            };
            rows.push(RelayOrder {
                group: group.name.clone(),
                kind: kind.to_string(),
                hash: hash.to_string(),
                first_node,
                nodes,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(node: &str, t: f64, category: &str, arm: &str, body: Value) -> Observed {
        Observed {
            t_secs: t,
            category: Some(category.into()),
            arm: Some(arm.into()),
            body,
            peer_id: None,
            peer_addr: None,
            group: None,
            node: Some(node.into()),
        }
    }

    #[test]
    fn propagation_gives_each_node_its_first_sighting_after_the_first_node() {
        use base64::Engine as _;
        let mut hash = [0u8; 32];
        hash[0] = 0xab; // internal order: displayed last
        let b64 = base64::engine::general_purpose::STANDARD.encode(hash);
        let block = |node, t| {
            event(
                node,
                t,
                "validation",
                "block_connected",
                json!({"block_connected": {"hash": b64, "height": 102}}),
            )
        };
        let observed = vec![
            block("n2", 5.5),
            block("n1", 5.0),
            block("n2", 6.0), // a second sighting does not move the first
            event(
                "n1",
                1.0,
                "mempool",
                "added",
                json!({"added": {"txid": "x"}}),
            ),
        ];
        let rows = propagation(&observed);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, "tx");
        let block = &rows[1];
        assert_eq!(block.height, Some(102));
        assert!(
            block.id.ends_with("ab") && block.id.len() == 64,
            "{}",
            block.id
        );
        assert_eq!(block.first_secs, 5.0);
        assert_eq!(block.after_first_secs["n1"], 0.0);
        assert_eq!(block.after_first_secs["n2"], 0.5);
    }
}
