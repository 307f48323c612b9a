//! [`ContainerStack`]: a topology of regtest nodes in containers, its NATS, and the observer
//! on the nodes that are watched.
//!
//! Start-up order: the engine is reached and the images exist (built on first use, see
//! [`crate::container::image`]), then the private network, the nats-server container, and
//! every node container at once. The caller prepares the nodes (edges, blocks) and then calls
//! [`ContainerStack::observe`], which attaches every extractor to each observed node from
//! the host: the eBPF extractor to `/proc/<pid>/root/usr/bin/<binary>` following the host
//! pid, the log and IPC extractors to files of the bind-mounted datadir, the RPC extractor and
//! the P2P extractor (listening on the host's address on the network) over the network.
//!
//! Invariants:
//! - an observed node's events go out on `peerlab.<node>.<subject>`, so every event says
//!   which node it came from; its publisher's counters on `peerlab.<node>.stats.*`;
//! - [`ContainerStack::remove`] (or dropping the stack) removes every container, then the
//!   network, whatever state the run is in;
//! - [`ContainerStack::check_alive`] names the first container that died, with its last
//!   log lines.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{wait_traced, NodeFiles, NodeObserver, ObserverConfig, StackCounters, StackError};
use crate::bus::{NatsOptions, Publisher, SubjectScheme};
use crate::container::{
    ensure_images, ContainerError, ContainerNetwork, Engine, NatsContainer, NodeContainer,
    NodeContainerSpec,
};
use crate::extractors::p2p::P2pNetwork;
use crate::node::{Installation, RpcAuth};
use crate::shutdown::Shutdown;

/// The first token of a topology's subjects.
pub const TOPOLOGY_PREFIX: &str = "peerlab";
/// How long each observed node's eBPF extractor may take to trace it.
const TRACE_WAIT: Duration = Duration::from_secs(30);

/// One node of a topology.
#[derive(Debug, Clone)]
pub struct ContainerNodeSpec {
    /// Its name (container `peerlab-<run>-<name>`, subjects `peerlab.<name>.*`).
    pub name: String,
    /// `bitcoind` or `bitcoin-node`.
    pub binary: String,
    /// Its image; `None`: the traceable bitcoind image of the installation.
    pub image: Option<String>,
    /// Arguments after the harness's own.
    pub extra_args: Vec<String>,
    /// Whether the observer watches it.
    pub observe: bool,
}

/// A running topology.
pub struct ContainerStack {
    run_id: String,
    specs: Vec<ContainerNodeSpec>,
    nodes: Vec<NodeContainer>,
    nats: Option<NatsContainer>,
    network: Option<ContainerNetwork>,
    observers: Vec<(String, NodeObserver)>,
    _workdir: tempfile::TempDir,
}

impl ContainerStack {
    /// Reaches the engine, builds missing images, creates the network and starts NATS and
    /// every node (ready when this returns).
    pub async fn start(
        installation: &Installation,
        specs: Vec<ContainerNodeSpec>,
    ) -> Result<ContainerStack, StackError> {
        let engine = Engine::connect().await?;
        let images = ensure_images(&engine, installation).await?;
        let workdir = tempfile::Builder::new()
            .prefix("peerlab-topology-")
            .tempdir()
            .map_err(|e| StackError::io("creating the topology's directory", e))?;
        // Short and unique: it names the network and every container.
        let run_id = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64 ^ u64::from(std::process::id()) << 40)
                .unwrap_or(0)
        );
        let network = ContainerNetwork::create(&engine, &run_id).await?;
        let nats = NatsContainer::start(&engine, &images.nats, network.name(), &run_id).await?;
        let starts = specs.iter().map(|spec| {
            let node_spec = NodeContainerSpec {
                name: spec.name.clone(),
                image: spec
                    .image
                    .clone()
                    .unwrap_or_else(|| images.bitcoind.clone()),
                binary: spec.binary.clone(),
                extra_args: spec.extra_args.clone(),
                datadir: workdir.path().join(&spec.name).join("data"),
                network: network.name().to_string(),
            };
            NodeContainer::start(&engine, node_spec, &run_id)
        });
        let started = futures::future::join_all(starts).await;
        let mut nodes = Vec::with_capacity(started.len());
        let mut first_error = None;
        for result in started {
            match result {
                Ok(node) => nodes.push(node),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        let stack = ContainerStack {
            run_id,
            specs,
            nodes,
            nats: Some(nats),
            network: Some(network),
            observers: Vec::new(),
            _workdir: workdir,
        };
        if let Some(e) = first_error {
            stack.remove().await;
            return Err(e.into());
        }
        tracing::info!(
            nodes = stack.nodes.len(),
            run = %stack.run_id,
            "topology up"
        );
        Ok(stack)
    }

    /// The run's id (the label value on its containers and network).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The nodes, in the order they were given.
    pub fn nodes(&self) -> &[NodeContainer] {
        &self.nodes
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeContainer> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// How to reach the topology's nats-server.
    pub fn nats(&self) -> NatsOptions {
        NatsOptions::local(self.nats.as_ref().map(|n| n.url()).unwrap_or_default())
    }

    /// The subject scheme covering every node's events (`peerlab.*.*`).
    pub fn scheme(&self) -> SubjectScheme {
        node_scheme("*")
    }

    /// The network, for host addresses peers connect from.
    pub fn network(&self) -> Option<&ContainerNetwork> {
        self.network.as_ref()
    }

    /// Starts every extractor `config` enables on each observed node, each node with its own
    /// publisher on its own subjects, and waits until each eBPF extractor traces its node.
    pub async fn observe(
        &mut self,
        config: &ObserverConfig,
        shutdown: &Shutdown,
    ) -> Result<(), StackError> {
        let gateway = self
            .network
            .as_ref()
            .map(|n| IpAddr::V4(n.gateway()))
            .ok_or_else(|| StackError::Start {
                what: "topology".into(),
                reason: "the network is gone".into(),
            })?;
        let nats = self.nats();
        for spec in self.specs.iter().filter(|s| s.observe) {
            let Some(node) = self.nodes.iter().find(|n| n.name() == spec.name) else {
                continue;
            };
            let scheme = node_scheme(&spec.name);
            let mut publisher_config = crate::extractors::publisher_config();
            publisher_config.stats_subject =
                Some(scheme.stats_subject(&crate::extractors::publisher_component("stack")));
            let publisher = Arc::new(Publisher::connect(&nats, scheme, publisher_config).await?);
            let files = NodeFiles {
                bitcoind: Some(node.binary_on_host()),
                pid_file: node.host_pid_file().to_path_buf(),
                debug_log: node.chain_dir().join("debug.log"),
                rpc_url: node.rpc_url(),
                rpc_auth: RpcAuth::Cookie(node.cookie_file()),
                network: P2pNetwork::Regtest,
                ipc_socket: node.ipc_socket(),
            };
            let node_config = ObserverConfig {
                ipc: config.ipc && files.ipc_socket.is_some(),
                p2p_listen: gateway,
                ..config.clone()
            };
            let observer =
                NodeObserver::start(&files, &node_config, publisher, shutdown, true).await?;
            if let Some(stats) = observer.ebpf_stats() {
                wait_traced(node.host_pid_file(), &stats, TRACE_WAIT).await?;
            }
            tracing::info!(node = %spec.name, "observing");
            self.observers.push((spec.name.clone(), observer));
        }
        Ok(())
    }

    /// Where each observed node's P2P extractor listens: the observer's own peers, which
    /// the alerts heuristics must not judge.
    pub fn p2p_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.observers
            .iter()
            .filter_map(|(_, o)| o.p2p_addr())
            .collect()
    }

    /// The observed nodes' eBPF counters, live.
    pub fn ebpf_stats(&self) -> Vec<(String, Arc<crate::extractors::ebpf::ExtractorStats>)> {
        self.observers
            .iter()
            .filter_map(|(name, o)| o.ebpf_stats().map(|s| (name.clone(), s)))
            .collect()
    }

    /// `Err` naming the first container that is no longer running, with its last log lines.
    pub async fn check_alive(&self) -> Result<(), ContainerError> {
        for node in &self.nodes {
            node.check_alive().await?;
        }
        Ok(())
    }

    /// Stops every observer (each sends what it holds) and returns each observed node's
    /// counters; the containers keep running until [`remove`](Self::remove).
    pub async fn finish(&mut self) -> Result<Vec<(String, StackCounters)>, StackError> {
        let mut all = Vec::new();
        let mut first_error = None;
        for (name, observer) in self.observers.drain(..) {
            match observer.finish().await {
                Ok(counters) => all.push((name, counters)),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            None => Ok(all),
            Some(e) => Err(e),
        }
    }

    /// Removes every container, then the network (errors are logged: removal is best
    /// effort, and the drop of each handle tries again).
    pub async fn remove(mut self) {
        for node in std::mem::take(&mut self.nodes) {
            let name = node.container_name().to_string();
            if let Err(e) = node.remove().await {
                tracing::warn!(container = %name, "{e}");
            }
        }
        drop(self.nats.take());
        if let Some(network) = self.network.take() {
            if let Err(e) = network.remove().await {
                tracing::warn!("{e}");
            }
        }
    }

    /// Host directory of the node called `name` (its datadir's parent).
    pub fn node_dir(&self, name: &str) -> Option<PathBuf> {
        self.node(name)
            .and_then(|n| n.datadir().parent().map(PathBuf::from))
    }
}

/// The subjects of one node of a topology (`*`: all of them).
pub fn node_scheme(node: &str) -> SubjectScheme {
    SubjectScheme::Prefixed {
        prefix: TOPOLOGY_PREFIX.into(),
        node: node.into(),
    }
}
