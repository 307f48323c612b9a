//! The observer stack a rehearsal runs against: brought up by peerlab (the embedded
//! default) or the user's own (NATS address, RPC credentials, P2P address).
//!
//! Embedded: a private nats-server, a regtest bitcoind on a datadir that survives
//! `restart_node`, the eBPF extractor following that datadir's pid file, and the log, RPC,
//! P2P and IPC extractors the spec's [`Extractors`] leave on. Existing: only
//! connections; nothing of the user's is started, stopped or restarted, and the mock clock is
//! reset when the run ends. Either way the scenario's node settings are applied (mock time,
//! start-up blocks) before time zero.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::node::RehearsalNode;
use super::RehearseError;
use crate::bus::{NatsOptions, SubjectScheme};
use crate::extractors::ebpf::ExtractorStats;
use crate::node::{Installation, NodeRpc, RemoteNode, RpcAuth};
use crate::scenario::Scenario;
use crate::shutdown::Shutdown;
use crate::stack::{
    ContainerNodeSpec, ContainerStack, EmbeddedConfig, EmbeddedStack, Extractors, ObserverConfig,
    StackCounters,
};

/// Where to rehearse.
#[derive(Debug, Clone)]
pub enum StackSpec {
    /// Start everything (nats-server, regtest node, the eBPF extractor and the optional
    /// extractors that are on) privately; a topology's observers run the same extractors.
    Embedded(Installation, Extractors),
    /// Use a running stack: its NATS carries the extractor's events, its node is attacked.
    Existing(Box<ExistingStack>),
}

/// A running stack of the user's.
#[derive(Debug, Clone)]
pub struct ExistingStack {
    /// The NATS server its extractors publish to.
    pub nats: NatsOptions,
    /// Its subject scheme.
    pub scheme: SubjectScheme,
    /// The node's RPC URL (`http://127.0.0.1:18443`).
    pub rpc_url: String,
    /// RPC credentials.
    pub rpc_auth: RpcAuth,
    /// The node's P2P address, where the scenario's peers connect.
    pub p2p: SocketAddr,
}

/// A stack, up and prepared for time zero.
pub(super) struct Stack {
    pub nats: NatsOptions,
    pub scheme: SubjectScheme,
    /// The node under attack; in a topology, the home node (the first `[[node]]`).
    pub node: Arc<RehearsalNode>,
    /// Every node by name, the home node first (one entry, `node`, outside topologies).
    pub nodes: Vec<(String, Arc<RehearsalNode>)>,
    /// Height before the start-up blocks: coins of the blocks above it are ours to spend.
    pub first_own_block: u64,
    /// Things the report should mention (settings that could not be applied, ...).
    pub notes: Vec<String>,
    /// The embedded stack (its node is in `node`); `None` against the user's stack.
    embedded: Option<EmbeddedStack>,
    /// The topology's containers and observers, when the scenario declares `[[node]]`s.
    pub topology: Option<ContainerStack>,
}

fn stack<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> RehearseError + '_ {
    move |e| RehearseError::Stack(format!("{what}: {e}"))
}

impl Stack {
    /// Brings the stack up and applies the scenario's node settings; the embedded extractor
    /// also stops when `shutdown` fires.
    pub async fn start(
        spec: &StackSpec,
        scenario: &Scenario,
        shutdown: &Shutdown,
    ) -> Result<Stack, RehearseError> {
        match spec {
            StackSpec::Embedded(installation, extractors) if scenario.is_topology() => {
                Stack::topology(installation, *extractors, scenario, shutdown).await
            }
            StackSpec::Existing(_) if scenario.is_topology() => Err(RehearseError::Invalid(
                "a topology ([[node]]s) runs its own nodes in containers; run it without \
                 -a/--rpc-url"
                    .into(),
            )),
            StackSpec::Embedded(installation, extractors) => {
                Stack::embedded(installation, *extractors, scenario, shutdown).await
            }
            StackSpec::Existing(existing) => Stack::existing(existing, scenario).await,
        }
    }

    async fn embedded(
        installation: &Installation,
        extractors: Extractors,
        scenario: &Scenario,
        shutdown: &Shutdown,
    ) -> Result<Stack, RehearseError> {
        let mut config = EmbeddedConfig::new(installation.clone());
        config.node_args = scenario.node.extra_args.clone();
        config.observer = rehearsal_observer(extractors);
        let mut embedded = EmbeddedStack::start(config)
            .await
            .map_err(|e| RehearseError::Stack(e.to_string()))?;
        let node = embedded
            .take_node()
            .ok_or_else(|| RehearseError::Stack("the embedded stack has no node".into()))?;
        // Steps restart the node on its datadir; the extractor follows the pid file.
        let node = Arc::new(RehearsalNode::embedded(node));
        let first_own_block = prepare(&node, scenario).await?;
        embedded
            .observe(shutdown)
            .await
            .map_err(|e| RehearseError::Stack(e.to_string()))?;
        Ok(Stack {
            nats: embedded.nats().clone(),
            scheme: embedded.scheme().clone(),
            nodes: vec![("node".into(), node.clone())],
            node,
            first_own_block,
            notes: Vec::new(),
            embedded: Some(embedded),
            topology: None,
        })
    }

    /// A topology: every `[[node]]` in a container, the edges dialled, the start-up blocks
    /// mined and spread, then the observer on the observed nodes.
    async fn topology(
        installation: &Installation,
        extractors: Extractors,
        scenario: &Scenario,
        shutdown: &Shutdown,
    ) -> Result<Stack, RehearseError> {
        let specs = scenario
            .topology
            .iter()
            .map(|n| ContainerNodeSpec {
                name: n.name.clone(),
                binary: n.binary.file_name().to_string(),
                image: n.image.clone(),
                extra_args: n.extra_args.clone(),
                observe: n.observe,
            })
            .collect();
        let mut containers = ContainerStack::start(installation, specs)
            .await
            .map_err(|e| RehearseError::Stack(e.to_string()))?;
        let result = Stack::prepare_topology(&mut containers, extractors, scenario, shutdown).await;
        match result {
            Ok((nodes, first_own_block, notes)) => Ok(Stack {
                nats: containers.nats(),
                scheme: containers.scheme(),
                node: nodes[0].1.clone(),
                nodes,
                first_own_block,
                notes,
                embedded: None,
                topology: Some(containers),
            }),
            Err(e) => {
                // Say which container died, if one did: that is the cause to report.
                let error = match containers.check_alive().await {
                    Err(died) => RehearseError::Stack(format!("{e}\n{died}")),
                    Ok(()) => e,
                };
                containers.remove().await;
                Err(error)
            }
        }
    }

    async fn prepare_topology(
        containers: &mut ContainerStack,
        extractors: Extractors,
        scenario: &Scenario,
        shutdown: &Shutdown,
    ) -> Result<(Vec<(String, Arc<RehearsalNode>)>, u64, Vec<String>), RehearseError> {
        let mut nodes = Vec::new();
        for container in containers.nodes() {
            let (url, auth) = (
                container.rpc_url(),
                RpcAuth::Cookie(container.cookie_file()),
            );
            let rpc = tokio::task::spawn_blocking(move || RemoteNode::connect(&url, &auth))
                .await
                .map_err(stack("connecting to a node"))?
                .map_err(stack(&format!("connecting to {}", container.name())))?;
            let node = RehearsalNode::container(container.name(), rpc, container.p2p_addr());
            nodes.push((container.name().to_string(), Arc::new(node)));
        }
        let addresses: Vec<(String, String)> = containers
            .nodes()
            .iter()
            .map(|n| (n.name().to_string(), n.p2p_addr().to_string()))
            .collect();
        super::topology::connect_edges(scenario, &nodes, &addresses).await?;
        let notes = Vec::new();
        let home = nodes[0].1.clone();
        let first_own_block = tokio::task::spawn_blocking(move || home.height())
            .await
            .map_err(stack("reading the height"))?
            .map_err(stack("reading the height"))?;
        super::topology::mine_and_sync(scenario, &nodes).await?;
        containers
            .observe(&rehearsal_observer(extractors), shutdown)
            .await
            .map_err(|e| RehearseError::Stack(e.to_string()))?;
        Ok((nodes, first_own_block, notes))
    }

    /// The node called `name`, or the home node for `None`.
    pub fn node_named(&self, name: Option<&str>) -> Arc<RehearsalNode> {
        name.and_then(|name| {
            self.nodes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, node)| node.clone())
        })
        .unwrap_or_else(|| self.node.clone())
    }

    async fn existing(
        existing: &ExistingStack,
        scenario: &Scenario,
    ) -> Result<Stack, RehearseError> {
        let (url, auth) = (existing.rpc_url.clone(), existing.rpc_auth.clone());
        let rpc = tokio::task::spawn_blocking(move || RemoteNode::connect(&url, &auth))
            .await
            .map_err(stack("connecting to the node"))?
            .map_err(|e| RehearseError::Stack(e.to_string()))?;
        let chain: Value = rpc
            .rpc("getblockchaininfo", &[])
            .map_err(stack("getblockchaininfo"))?;
        if chain["chain"] != "regtest" {
            return Err(RehearseError::Stack(format!(
                "the node at {} runs chain {}; rehearsals mine blocks and move the clock, so they only run against regtest",
                crate::secret::redact_url(&existing.rpc_url),
                chain["chain"]
            )));
        }
        let mut notes = Vec::new();
        if !scenario.node.extra_args.is_empty() {
            notes.push(format!(
                "[node] extra_args {:?} were not applied: the node is yours; start it with them for the expectations that depend on them",
                scenario.node.extra_args
            ));
        }
        let node = Arc::new(RehearsalNode::existing(rpc, existing.p2p));
        let first_own_block = prepare(&node, scenario).await?;
        Ok(Stack {
            nats: existing.nats.clone(),
            scheme: existing.scheme.clone(),
            nodes: vec![("node".into(), node.clone())],
            node,
            first_own_block,
            notes,
            embedded: None,
            topology: None,
        })
    }

    /// The observer's own peers of the nodes (where each P2P extractor we started listens),
    /// which the alerts heuristics must not judge; none against the user's stack.
    pub fn own_peers(&self) -> Vec<SocketAddr> {
        match (&self.embedded, &self.topology) {
            (Some(embedded), _) => embedded.p2p_addr().into_iter().collect(),
            (None, Some(topology)) => topology.p2p_addrs(),
            (None, None) => Vec::new(),
        }
    }

    /// Live counters of the embedded extractor.
    pub fn extractor_stats(&self) -> Option<Arc<ExtractorStats>> {
        self.embedded
            .as_ref()
            .and_then(EmbeddedStack::extractor_stats)
    }

    /// Stops what the rehearsal started (nats-server stays up until the stack is dropped)
    /// and reads the counters: `None` against the user's stack.
    pub async fn finish(&mut self) -> Result<Option<StackCounters>, RehearseError> {
        self.node.release();
        if let Some(topology) = self.topology.as_mut() {
            let per_node = topology
                .finish()
                .await
                .map_err(stack("stopping the observers"))?;
            return Ok(Some(super::topology::sum_counters(&per_node)));
        }
        match self.embedded.as_mut() {
            None => Ok(None),
            Some(embedded) => embedded
                .finish()
                .await
                .map(Some)
                .map_err(stack("stopping the stack")),
        }
    }
}

/// The observer of a rehearsal: the eBPF extractor and the optional ones that are on, with
/// timers short enough that RPC expectations on `rpc.*` events see replies within seconds
/// of a change.
fn rehearsal_observer(extractors: Extractors) -> ObserverConfig {
    extractors.apply(ObserverConfig {
        rpc_intervals: (Duration::from_secs(1), Duration::from_secs(2)),
        p2p_ping_interval: Duration::from_secs(1),
        ipc_interval: Duration::from_secs(1),
        ..ObserverConfig::default()
    })
}

/// Waits until `stats` show the node's current pid (pid file re-read after restarts); the
/// user's node is not traced by us, so there is nothing to wait for.
pub(super) async fn wait_traced(
    node: &RehearsalNode,
    stats: &ExtractorStats,
    limit: Duration,
) -> Result<(), String> {
    match node.pid_file().map_err(|e| e.to_string())? {
        None => Ok(()),
        Some(pid_file) => crate::stack::wait_traced(&pid_file, stats, limit)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// Mock time and start-up blocks; returns the height before them.
async fn prepare(node: &Arc<RehearsalNode>, scenario: &Scenario) -> Result<u64, RehearseError> {
    let node = node.clone();
    let blocks = u64::from(scenario.node.mine_at_start);
    let mocktime = scenario.node.mocktime;
    tokio::task::spawn_blocking(move || {
        if let Some(t) = mocktime {
            node.set_mocktime(t)?;
        }
        let before = node.height()?;
        node.mine(blocks)?;
        Ok::<u64, crate::node::NodeError>(before)
    })
    .await
    .map_err(stack("preparing the node"))?
    .map_err(stack("preparing the node"))
}
