//! The observer stack a rehearsal runs against: brought up by peerlab (the embedded
//! default) or the user's own (NATS address, RPC credentials, P2P address).
//!
//! Embedded: a private nats-server, a regtest bitcoind on a datadir that survives
//! `restart_node`, and the eBPF extractor following that datadir's pid file. Existing: only
//! connections; nothing of the user's is started, stopped or restarted, and the mock clock is
//! reset when the run ends. Either way the scenario's node settings are applied (mock time,
//! start-up blocks) before time zero.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::node::RehearsalNode;
use super::RehearseError;
use crate::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme};
use crate::extractors::ebpf::{EbpfConfig, EbpfExtractor, ExtractorStats, Target};
use crate::stack::NatsServer;
use crate::node::{Installation, NodeRpc, RegtestConfig, RegtestNode, RemoteNode, RpcAuth};
use crate::scenario::Scenario;

/// How long the extractor may take to trace a (re)started node.
const TRACE_WAIT: Duration = Duration::from_secs(10);

/// Where to rehearse.
#[derive(Debug, Clone)]
pub enum StackSpec {
    /// Start everything (nats-server, regtest bitcoind, eBPF extractor) privately.
    Embedded(Installation),
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
    pub node: Arc<RehearsalNode>,
    /// Height before the start-up blocks: coins of the blocks above it are ours to spend.
    pub first_own_block: u64,
    /// Things the report should mention (settings that could not be applied, ...).
    pub notes: Vec<String>,
    extractor: Option<(EbpfExtractor, Arc<Publisher>)>,
    // Dropped last: the node and the extractor above need them.
    _datadir: Option<tempfile::TempDir>,
    _nats_server: Option<NatsServer>,
}

/// What the stack's own counters say at the end of the run.
pub(super) struct StackCounters {
    /// Events dropped in BPF (embedded extractor only).
    pub dropped_in_kernel: Option<u64>,
    /// Events the embedded publisher dropped.
    pub dropped_by_publisher: Option<u64>,
    /// Events the embedded publisher got confirmed (how many the observer should see).
    pub published: Option<u64>,
}

fn stack<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> RehearseError + '_ {
    move |e| RehearseError::Stack(format!("{what}: {e}"))
}

impl Stack {
    /// Brings the stack up and applies the scenario's node settings.
    pub async fn start(spec: &StackSpec, scenario: &Scenario) -> Result<Stack, RehearseError> {
        match spec {
            StackSpec::Embedded(installation) => Stack::embedded(installation, scenario).await,
            StackSpec::Existing(existing) => Stack::existing(existing, scenario).await,
        }
    }

    async fn embedded(
        installation: &Installation,
        scenario: &Scenario,
    ) -> Result<Stack, RehearseError> {
        let nats_server =
            NatsServer::start(&installation.nats_server).map_err(stack("nats-server"))?;
        let nats = NatsOptions::local(nats_server.url());
        let datadir = tempfile::Builder::new()
            .prefix("peerlab-rehearsal-")
            .tempdir()
            .map_err(stack("creating the node's datadir"))?;
        let mut config = RegtestConfig::new(&installation.bitcoind);
        config.extra_args = scenario.node.extra_args.clone();
        config.datadir = Some(datadir.path().to_path_buf());
        let node = blocking_start(config).await?;
        let node = Arc::new(RehearsalNode::embedded(node));
        let first_own_block = prepare(&node, scenario).await?;

        let publisher = Arc::new(
            Publisher::connect(&nats, SubjectScheme::Flat, PublisherConfig::default())
                .await
                .map_err(stack("publisher"))?,
        );
        let pid_file = node
            .pid_file()
            .map_err(stack("bitcoind pid file"))?
            .ok_or_else(|| RehearseError::Stack("the embedded node has no pid file".into()))?;
        let extractor = EbpfExtractor::start(
            EbpfConfig::new(&installation.bitcoind, Target::PidFile(pid_file)),
            publisher.clone(),
        )
        .map_err(stack("eBPF extractor"))?;
        let stack = Stack {
            nats,
            scheme: SubjectScheme::Flat,
            node,
            first_own_block,
            notes: Vec::new(),
            extractor: Some((extractor, publisher)),
            _datadir: Some(datadir),
            _nats_server: Some(nats_server),
        };
        stack.wait_traced().await.map_err(RehearseError::Stack)?;
        Ok(stack)
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
            node,
            first_own_block,
            notes,
            extractor: None,
            _datadir: None,
            _nats_server: None,
        })
    }

    /// Live counters of the embedded extractor.
    pub fn extractor_stats(&self) -> Option<Arc<ExtractorStats>> {
        self.extractor.as_ref().map(|(e, _)| e.stats())
    }

    /// Waits (bounded) until the embedded extractor traces the node's current process.
    pub async fn wait_traced(&self) -> Result<(), String> {
        let Some(stats) = self.extractor_stats() else {
            return Ok(());
        };
        wait_traced(&self.node, &stats, TRACE_WAIT).await
    }

    /// Stops what the rehearsal started and reads the counters.
    pub async fn finish(&mut self) -> Result<StackCounters, RehearseError> {
        self.node.release();
        let Some((extractor, publisher)) = self.extractor.take() else {
            return Ok(StackCounters {
                dropped_in_kernel: None,
                dropped_by_publisher: None,
                published: None,
            });
        };
        let stats = extractor
            .stop()
            .await
            .map_err(stack("stopping the extractor"))?;
        let publisher = Arc::try_unwrap(publisher)
            .map_err(|_| RehearseError::Stack("publisher still shared".into()))?;
        let bus = publisher.close(Duration::from_secs(10)).await;
        Ok(StackCounters {
            dropped_in_kernel: Some(stats.dropped_in_kernel()),
            dropped_by_publisher: Some(bus.dropped()),
            published: Some(bus.sent),
        })
    }
}

/// Waits until `stats` show the node's current pid (pid file re-read after restarts).
pub(super) async fn wait_traced(
    node: &RehearsalNode,
    stats: &ExtractorStats,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let pid = node.pid().map_err(|e| e.to_string())?;
        if pid.is_none() || pid == Some(stats.traced_pid.load(Ordering::Relaxed)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the eBPF extractor did not trace bitcoind (pid {pid:?}) within {}s",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn blocking_start(config: RegtestConfig) -> Result<RegtestNode, RehearseError> {
    tokio::task::spawn_blocking(move || RegtestNode::start(&config))
        .await
        .map_err(stack("starting bitcoind"))?
        .map_err(stack("regtest bitcoind"))
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
