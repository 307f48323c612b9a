//! `peerlab observe`: live mode on a node the user already runs, from its datadir.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use peerlab::bus::Publisher;
use peerlab::extractors::p2p::P2pNetwork;
use peerlab::node::{locate, Chain, RpcAuth};
use peerlab::shutdown::Shutdown;
use peerlab::stack::{NodeFiles, NodeObserver, ObserverConfig};

use super::live_tools::LiveToolArgs;
use super::nats::{NatsArgs, SubjectSchemeArgs};
use super::signals::shutdown_on_signals;
use super::spool::SpoolArgs;
use super::values::whole_seconds;

/// Observe a node you already run: attach every extractor (eBPF, log, RPC, P2P, IPC) from
/// its datadir and publish to NATS, until Ctrl-C.
///
/// Finds the running chain under --datadir (its bitcoind.pid), the binary and RPC port of
/// that process (its command line, else bitcoin.conf, else the chain's default), the RPC
/// cookie and debug.log. Prints one line per extractor: what it attached to, or why it
/// could not (the others still run). The eBPF extractor needs root and a bitcoind built
/// with tracepoints; the node must allow cookie RPC; it is told to dial the P2P extractor
/// (`addnode`, v1), and that entry is removed again when observe stops. The IPC extractor
/// needs `bitcoin-node` started with -ipcbind=unix (its node.sock beside the pid file).
/// Nothing else of the node is changed.
#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// The node's -datadir (e.g. ~/.bitcoin or /var/lib/bitcoind).
    #[arg(long, value_name = "DIR")]
    pub datadir: PathBuf,
    /// The chain: main, test, testnet4, signet or regtest (default: the one running there).
    #[arg(long, value_name = "CHAIN", value_parser = chain)]
    pub chain: Option<Chain>,
    /// The node's RPC URL (default: http://127.0.0.1:<the port the node uses>).
    #[arg(long, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// Do not run the eBPF extractor.
    #[arg(long)]
    pub no_ebpf: bool,
    /// Do not run the log extractor.
    #[arg(long)]
    pub no_log: bool,
    /// Do not run the RPC extractor.
    #[arg(long)]
    pub no_rpc: bool,
    /// Do not run the P2P extractor.
    #[arg(long)]
    pub no_p2p: bool,
    /// Do not run the IPC extractor.
    #[arg(long)]
    pub no_ipc: bool,
    /// The node's IPC socket (default: node.sock beside its pid file, where -ipcbind=unix
    /// creates it).
    #[arg(long, value_name = "PATH")]
    pub ipc_socket_path: Option<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = whole_seconds())]
    pub duration: Option<u64>,
    #[command(flatten)]
    pub tools: LiveToolArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub subjects: SubjectSchemeArgs,
    #[command(flatten)]
    pub spool: SpoolArgs,
}

fn chain(text: &str) -> Result<Chain, String> {
    Chain::from_name(text).ok_or_else(|| {
        format!("unknown chain {text:?}; expected main, test, testnet4, signet or regtest")
    })
}

impl ObserveArgs {
    /// Locates the node, attaches the extractors, runs until stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        let node = locate(&self.datadir, self.chain).map_err(anyhow::Error::msg)?;
        for note in &node.notes {
            tracing::info!("{note}");
        }
        let files = NodeFiles {
            bitcoind: node.bitcoind.clone(),
            pid_file: node.pid_file.clone(),
            debug_log: node.debug_log.clone(),
            rpc_url: self
                .rpc_url
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", node.rpc_port)),
            rpc_auth: RpcAuth::Cookie(node.cookie.clone()),
            network: match node.chain {
                Chain::Main => P2pNetwork::Mainnet,
                Chain::Testnet3 => P2pNetwork::Testnet3,
                Chain::Testnet4 => P2pNetwork::Testnet4,
                Chain::Signet => P2pNetwork::Signet,
                Chain::Regtest => P2pNetwork::Regtest,
            },
            ipc_socket: self.ipc_socket_path.clone().or_else(|| {
                let beside_pid = node.pid_file.with_file_name("node.sock");
                beside_pid.exists().then_some(beside_pid)
            }),
        };
        let mut config = ObserverConfig {
            ebpf: !self.no_ebpf,
            log: !self.no_log,
            rpc: !self.no_rpc,
            p2p: !self.no_p2p,
            ipc: !self.no_ipc,
            ..ObserverConfig::default()
        };
        // The alerts start before the P2P extractor, and must know it is ours (its port is
        // otherwise left to the system, which cannot race anyone).
        let own_peers: Vec<_> = match self.tools.alerts {
            true => config
                .reserve_p2p_port()
                .context("choosing the P2P extractor's port")?
                .into_iter()
                .collect(),
            false => Vec::new(),
        };
        let shutdown = shutdown_on_signals(self.duration.map(Duration::from_secs));
        // A signal or --duration also ends the wait for NATS (which retries forever by
        // default).
        let nats = self.nats.to_options();
        let scheme = self.subjects.scheme();
        let mut publisher_config = peerlab::extractors::publisher_config();
        publisher_config.stats_subject =
            Some(scheme.stats_subject(&peerlab::extractors::publisher_component("observe")));
        // One publisher serves every extractor here, so one spool: DIR/observe.
        publisher_config.spool = self.spool.config("observe");
        let connect = Publisher::connect(&nats, scheme, publisher_config);
        let publisher = tokio::select! {
            connected = connect => Arc::new(connected.context("connecting to NATS")?),
            _ = shutdown.cancelled() => {
                tracing::warn!("stopped before a NATS server answered; nothing attached");
                return Ok(());
            }
        };
        let stop_tools = Shutdown::new();
        let live_tools = self
            .tools
            .start(&nats, &self.subjects.scheme(), &stop_tools, own_peers)
            .await
            .context("starting the tools")?;
        let observer = NodeObserver::start(&files, &config, publisher, &shutdown, false)
            .await
            .context("attaching the extractors")?;
        println!(
            "observing the {} node of {}",
            node.chain.name(),
            self.datadir.display()
        );
        for attachment in observer.attachments() {
            match &attachment.outcome {
                Ok(what) => println!("{}: attached to {what}", attachment.extractor),
                Err(why) => println!("{}: NOT attached: {why}", attachment.extractor),
            }
        }
        if observer.attachments().iter().all(|a| a.outcome.is_err()) {
            observer.finish().await?;
            stop_tools.cancel();
            live_tools.finish().await?;
            bail!(
                "no extractor could attach to the node of {}",
                self.datadir.display()
            );
        }
        shutdown.cancelled().await;
        let counters = observer.finish().await.context("stopping the extractors")?;
        // The tools stop after the extractors' last events were sent.
        stop_tools.cancel();
        live_tools.finish().await?;
        tracing::info!(
            events = counters.events_published(),
            sent_to_nats = counters.bus.sent,
            dropped_by_publisher = counters.bus.dropped(),
            left_in_spool = counters.bus.spool_events,
            dropped_in_kernel = counters.ebpf.dropped_in_kernel,
            "observe stopped"
        );
        Ok(())
    }
}
