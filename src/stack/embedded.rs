//! [`EmbeddedStack`]: the whole observer on one machine, composed once.
//!
//! A private nats-server, a regtest bitcoind on a datadir that survives restarts, the
//! publisher, the eBPF extractor following that datadir's pid file, the log extractor
//! following its `debug.log`, the RPC extractor polling its RPC port with its cookie, and the
//! P2P extractor listening on a free loopback port that the node is told to dial (`addnode`,
//! v1 transport), and the IPC extractor on the node's IPC socket: the node is `bitcoin-node`
//! (the same traceable node with Cap'n Proto IPC) started with `-ipcbind=unix` when the
//! installation has one and the IPC extractor is on, otherwise `bitcoind`. `peerlab run`,
//! `peerlab rehearse` and the tests all compose it here, in two phases, because each wants
//! something done between them: the servers first ([`EmbeddedStack::start`]), then
//! whatever must happen before the first event (subscribe a logger or recorder, mine
//! start-up blocks), then the observer ([`EmbeddedStack::observe`]).
//!
//! Invariants:
//! - pieces stop in the reverse order they started ([`EmbeddedStack::finish`]): the extractor
//!   hands its last events to the publisher, the publisher sends them, then the node stops;
//!   nats-server and the datadir go when the stack is dropped (consumers may still be
//!   reading); dropping the stack without finishing kills what is left;
//! - the eBPF extractor follows the pid file and the log extractor the datadir's `debug.log`,
//!   so a node restarted on the same datadir (by whoever holds it, see
//!   [`EmbeddedStack::take_node`]) is observed again; the RPC extractor keeps the first RPC
//!   port (a restarted regtest node gets a new one), so its calls fail (counted) after a
//!   restart, and the restarted node no longer dials the P2P extractor (`addnode` does not
//!   survive a restart);
//! - [`EmbeddedStack::observe`] returns only once the extractor traces the running node, so
//!   nothing the node does afterwards is missed.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::observer::{NodeFiles, NodeObserver, ObserverConfig};
use super::{NatsServer, StackError};
use crate::bus::{NatsOptions, Publisher, PublisherConfig, StatsSnapshot, SubjectScheme};
use crate::event::counters::ExtractorCounters;
use crate::extractors::ebpf::ExtractorStats;
use crate::extractors::p2p::P2pNetwork;
use crate::node::{Installation, RegtestConfig, RegtestNode, RpcAuth};
use crate::shutdown::Shutdown;

/// How long the extractor may take to trace the node.
const TRACE_WAIT: Duration = Duration::from_secs(10);
/// How long bitcoind may take to shut down cleanly.
const NODE_STOP_WAIT: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The provisioned bitcoind and nats-server (`peerlab setup`).
    pub installation: Installation,
    /// Extra bitcoind arguments (e.g. `-maxconnections=32`).
    pub node_args: Vec<String>,
    /// The subject scheme events are published under.
    pub scheme: SubjectScheme,
    /// The publisher's buffer and batch sizes.
    pub publisher: PublisherConfig,
    /// Which extractors observe the node, and their timers (default: all, peer-observer's
    /// timers).
    pub observer: ObserverConfig,
}

impl EmbeddedConfig {
    /// Defaults: flat subjects, default publisher, no extra node arguments.
    pub fn new(installation: Installation) -> EmbeddedConfig {
        EmbeddedConfig {
            installation,
            node_args: Vec::new(),
            scheme: SubjectScheme::Flat,
            publisher: PublisherConfig::default(),
            observer: ObserverConfig::default(),
        }
    }
}

/// The running stack. See the module docs for its two phases.
pub struct EmbeddedStack {
    config: EmbeddedConfig,
    nats_options: NatsOptions,
    observer: Option<NodeObserver>,
    /// `None` once a caller took it to manage it (restarts).
    node: Option<RegtestNode>,
    pid_file: PathBuf,
    /// The node's RPC URL and cookie as first started (for the RPC extractor).
    rpc: (String, PathBuf),
    /// The node binary (`bitcoind` or `bitcoin-node`).
    node_binary: PathBuf,
    /// The node's IPC socket, when it serves one.
    ipc_socket: Option<PathBuf>,
    // Dropped last: the node and the extractor above need them.
    _datadir: tempfile::TempDir,
    _nats_server: NatsServer,
}

/// What the stack's own counters say when it finishes.
#[derive(Debug, Clone, Default)]
pub struct StackCounters {
    /// The eBPF extractor's final counters.
    pub ebpf: ExtractorCounters,
    /// The log extractor's final counters (`None` when it did not run).
    pub log: Option<ExtractorCounters>,
    /// The RPC extractor's final counters (`None` when it did not run).
    pub rpc: Option<ExtractorCounters>,
    /// The P2P extractor's final counters (`None` when it did not run).
    pub p2p: Option<ExtractorCounters>,
    /// The IPC extractor's final counters (`None` when it did not run).
    pub ipc: Option<ExtractorCounters>,
    /// The publisher's final counters: `sent` is what the server confirmed.
    pub bus: StatsSnapshot,
}

impl StackCounters {
    /// Events all extractors handed to the publisher.
    pub fn events_published(&self) -> u64 {
        let others = [&self.log, &self.rpc, &self.p2p, &self.ipc];
        self.ebpf.published
            + others
                .iter()
                .flat_map(|c| c.as_ref())
                .map(|c| c.published)
                .sum::<u64>()
    }
}

impl EmbeddedStack {
    /// Starts nats-server and the regtest node (blocking work runs off the runtime).
    pub async fn start(mut config: EmbeddedConfig) -> Result<EmbeddedStack, StackError> {
        let exe = config.installation.nats_server.clone();
        let nats_server = tokio::task::spawn_blocking(move || NatsServer::start(&exe))
            .await
            .map_err(StackError::join("nats-server"))??;
        let datadir = tempfile::Builder::new()
            .prefix("peerlab-node-")
            .tempdir()
            .map_err(|e| StackError::io("creating the node's datadir", e))?;
        let bitcoin_node = config.installation.bitcoin_node.clone();
        if config.observer.ipc && bitcoin_node.is_none() {
            tracing::warn!(
                "this installation has no bitcoin-node (the node with IPC), so the IPC \
                 extractor does not run; `peerlab setup` builds one"
            );
            config.observer.ipc = false;
        }
        let node_binary = match (&bitcoin_node, config.observer.ipc) {
            (Some(node), true) => node.clone(),
            _ => config.installation.bitcoind.clone(),
        };
        let mut node_config = RegtestConfig::new(&node_binary);
        node_config.extra_args = config.node_args.clone();
        if config.observer.ipc {
            node_config.extra_args.push("-ipcbind=unix".into());
        }
        node_config.datadir = Some(datadir.path().to_path_buf());
        let node = tokio::task::spawn_blocking(move || RegtestNode::start(&node_config))
            .await
            .map_err(StackError::join("bitcoind"))??;
        tracing::info!(
            nats = %nats_server.url(),
            rpc = %node.rpc_addr(),
            p2p = %node.p2p_addr(),
            datadir = %datadir.path().display(),
            "embedded stack up"
        );
        Ok(EmbeddedStack {
            nats_options: NatsOptions::local(nats_server.url()),
            pid_file: datadir.path().join("regtest").join("bitcoind.pid"),
            rpc: (
                format!("http://{}", node.rpc_addr()),
                node.cookie_file().to_path_buf(),
            ),
            ipc_socket: config
                .observer
                .ipc
                .then(|| datadir.path().join("regtest").join("node.sock")),
            node_binary,
            config,
            observer: None,
            node: Some(node),
            _datadir: datadir,
            _nats_server: nats_server,
        })
    }

    /// How to reach the stack's nats-server.
    pub fn nats(&self) -> &NatsOptions {
        &self.nats_options
    }

    /// The subject scheme events are published under.
    pub fn scheme(&self) -> &SubjectScheme {
        &self.config.scheme
    }

    /// The node, unless a caller took it.
    pub fn node(&self) -> Option<&RegtestNode> {
        self.node.as_ref()
    }

    /// Hands the node to a caller that manages it (restarts it on its datadir, stops it);
    /// the extractor keeps following it through the pid file.
    pub fn take_node(&mut self) -> Option<RegtestNode> {
        self.node.take()
    }

    /// The node's pid file, which the extractor follows.
    pub fn pid_file(&self) -> &PathBuf {
        &self.pid_file
    }

    /// Connects the publisher, starts the extractors on the node (eBPF, and the log, RPC and
    /// P2P extractors unless turned off), and waits (bounded) until the eBPF extractor traces the running
    /// process. The extractors also stop when `shutdown` fires.
    pub async fn observe(&mut self, shutdown: &Shutdown) -> Result<Arc<Publisher>, StackError> {
        let publisher = Arc::new(
            Publisher::connect(&self.nats_options, self.config.scheme.clone(), {
                // Its counters go on the bus for the metrics tool unless told otherwise.
                let mut config = self.config.publisher.clone();
                config.stats_subject.get_or_insert_with(|| {
                    self.config
                        .scheme
                        .stats_subject(&crate::extractors::publisher_component("stack"))
                });
                config
            })
            .await?,
        );
        let (rpc_url, cookie) = self.rpc.clone();
        let files = NodeFiles {
            bitcoind: Some(self.node_binary.clone()),
            pid_file: self.pid_file.clone(),
            debug_log: self.pid_file.with_file_name("debug.log"),
            rpc_url,
            rpc_auth: RpcAuth::Cookie(cookie),
            network: P2pNetwork::Regtest,
            ipc_socket: self.ipc_socket.clone(),
        };
        let observer = NodeObserver::start(
            &files,
            &self.config.observer,
            publisher.clone(),
            shutdown,
            true,
        )
        .await?;
        let stats = observer.ebpf_stats();
        self.observer = Some(observer);
        if let Some(stats) = stats {
            wait_traced(&self.pid_file, &stats, TRACE_WAIT).await?;
        }
        Ok(publisher)
    }

    /// Where the P2P extractor listens (after [`observe`](Self::observe), when it runs): the
    /// observer's own peer of the node, which the alerts heuristics must not judge.
    pub fn p2p_addr(&self) -> Option<std::net::SocketAddr> {
        self.observer.as_ref().and_then(NodeObserver::p2p_addr)
    }

    /// The extractor's live counters (after [`observe`](Self::observe)).
    pub fn extractor_stats(&self) -> Option<Arc<ExtractorStats>> {
        self.observer.as_ref().and_then(NodeObserver::ebpf_stats)
    }

    /// Stops the extractor, the publisher (sending what it holds) and the node, in that
    /// order, and returns the final counters (zero when the observer never started).
    /// nats-server stays up until the stack is dropped, so consumers can read the last
    /// events.
    pub async fn finish(&mut self) -> Result<StackCounters, StackError> {
        let mut counters = StackCounters::default();
        if let Some(observer) = self.observer.take() {
            counters = observer.finish().await?;
        }
        if let Some(node) = self.node.take() {
            tokio::task::spawn_blocking(move || node.stop(NODE_STOP_WAIT))
                .await
                .map_err(StackError::join("stopping bitcoind"))??;
        }
        Ok(counters)
    }
}

/// Waits until the extractor traces the pid in `pid_file` (re-read, so a restart in between
/// is followed).
pub async fn wait_traced(
    pid_file: &std::path::Path,
    stats: &ExtractorStats,
    limit: Duration,
) -> Result<(), StackError> {
    let deadline = Instant::now() + limit;
    loop {
        let pid = crate::node::pid_from_file(pid_file);
        if pid.is_some() && pid == Some(stats.traced_pid.load(Ordering::Relaxed)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StackError::NotTraced {
                pid,
                secs: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
