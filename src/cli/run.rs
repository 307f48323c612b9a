//! `peerlab run`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use peerlab::bus::Subscriber;
use peerlab::node::{setup, SetupOptions};
use peerlab::peer::{Peer, PeerConfig};
use peerlab::record::recorder::{RecordOptions, Recorder};
use peerlab::shutdown::Shutdown;
use peerlab::stack::{drive_activity, EmbeddedConfig, EmbeddedStack, ObserverConfig};
use peerlab::tools::logger::{LogFormat, Logger};
use peerlab::tools::Tool as _;

use super::extractors::ExtractorSwitches;
use super::live_tools::LiveToolArgs;
use super::nats::SubjectSchemeArgs;
use super::signals::shutdown_on_signals;
use super::values::whole_seconds;

/// Run the live pipeline on the embedded default: a private nats-server and a regtest node
/// (bitcoin-node with IPC), exercised with blocks and transactions, observed by the eBPF,
/// log, RPC, P2P and IPC extractors, every event printed by the logger; optionally the
/// metrics, websocket and alerts tools beside it.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub duration: Option<u64>,
    /// Seconds between regtest activity rounds (a block and a transaction each).
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = whole_seconds())]
    pub interval: u64,
    /// Honest P2P peers to connect to the node (0-100; the node takes at most ~114
    /// inbound peers by default).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub peers: u16,
    #[command(flatten)]
    pub extractors: ExtractorSwitches,
    /// Also record everything the bus carries into this MCAP file.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub tools: LiveToolArgs,
    #[command(flatten)]
    pub subjects: SubjectSchemeArgs,
}

impl RunArgs {
    /// Runs the embedded live pipeline until `--duration` passes or Ctrl-C / SIGTERM.
    ///
    /// The logger (and the recorder) subscribe before the extractor starts, so they see
    /// every event it publishes; at the end the stack stops in order and the logger gets
    /// (bounded) time to print what is still in flight.
    pub async fn run(self) -> anyhow::Result<()> {
        let duration = self.duration.map(Duration::from_secs);
        let interval = Duration::from_secs(self.interval.max(1));
        let scheme = self.subjects.scheme();
        let shutdown = shutdown_on_signals(duration);
        let installation = tokio::task::spawn_blocking(|| setup(&SetupOptions::default()))
            .await
            .context("setup task")?
            .context("provisioning the embedded stack")?;
        let mut observer = self
            .extractors
            .extractors()
            .apply(ObserverConfig::default());
        // The alerts start before the P2P extractor, and must know it is ours (its port is
        // otherwise left to the system, which cannot race anyone).
        let own_peers: Vec<_> = match self.tools.alerts {
            true => observer
                .reserve_p2p_port()
                .context("choosing the P2P extractor's port")?
                .into_iter()
                .collect(),
            false => Vec::new(),
        };
        let mut stack = EmbeddedStack::start(EmbeddedConfig {
            scheme: scheme.clone(),
            observer,
            ..EmbeddedConfig::new(installation)
        })
        .await
        .context("starting the embedded stack")?;

        // Tools stop after the stack has finished and they caught up.
        let stop_tools = Shutdown::new();
        let subscriber = Subscriber::connect(stack.nats(), scheme.clone(), &[])
            .await
            .context("subscribing the logger")?;
        let logger = Logger::new(LogFormat::Text, Box::new(std::io::stdout()));
        let printed = logger.printed.clone();
        let logger = tokio::spawn(logger.run(subscriber, stop_tools.clone()));
        let recorder = match self.record {
            None => None,
            Some(output) => {
                let options = RecordOptions::new(output, peerlab::secret::command_line());
                let recorder = Recorder::connect(stack.nats(), scheme.clone(), &options)
                    .await
                    .context("subscribing the recorder")?;
                Some(tokio::spawn(
                    recorder.run(Default::default(), stop_tools.clone()),
                ))
            }
        };
        let live_tools = self
            .tools
            .start(stack.nats(), &scheme, &stop_tools, own_peers)
            .await
            .context("starting the tools")?;
        stack
            .observe(&shutdown)
            .await
            .context("starting the observer")?;
        let node = stack.node().context("the embedded stack lost its node")?;

        // Honest peers, so P2P messages and connections show up too.
        let mut peer_tasks = Vec::new();
        for i in 0..self.peers {
            let config = PeerConfig {
                user_agent: format!("/peerlab-honest:{i}/"),
                ..PeerConfig::default()
            };
            let mut peer = Peer::connect(node.p2p_addr().into(), config).await?;
            peer.handshake()
                .await
                .context("handshake with the regtest node")?;
            peer_tasks.push(tokio::spawn(async move {
                // Keep answering pings; ends when the node goes away.
                while peer.recv().await.is_ok() {}
            }));
        }
        let deadline = duration.map(|d| Instant::now() + d);
        // RPC is blocking; the other pieces run on the runtime's other threads meanwhile.
        let activity =
            tokio::task::block_in_place(|| drive_activity(node, interval, &shutdown, deadline));
        shutdown.cancel();
        for task in peer_tasks {
            task.abort();
        }
        let counters = stack.finish().await.context("stopping the stack")?;
        let activity = activity.context("regtest activity")?;

        // The server confirmed every sent event, and the logger subscribed before the
        // first; the publisher also carried counter snapshots, which the logger does not
        // print: count events only.
        let events = counters
            .events_published()
            .saturating_sub(counters.bus.dropped());
        let wait_until = Instant::now() + Duration::from_secs(5);
        while printed.load(Ordering::Relaxed) < events && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tools.cancel();
        let printed_count = printed.load(Ordering::Relaxed);
        logger
            .await
            .context("logger task")?
            .context("cannot write to stdout")?;
        if printed_count < events {
            tracing::warn!(
                published = events,
                printed = printed_count,
                "the logger printed {printed_count} of the {events} events the server confirmed before it was stopped after 5 s"
            );
        }
        live_tools.finish().await?;
        if let Some(recorder) = recorder {
            let summary = recorder
                .await
                .context("recorder task")?
                .context("recording")?;
            tracing::info!(events = summary.messages, file = ?summary.files, "recording written");
        }
        tracing::info!(
            blocks = activity.blocks,
            transactions = activity.transactions,
            events_published = events,
            events_printed = printed_count,
            messages_sent_to_nats = counters.bus.sent,
            dropped_in_kernel = counters.ebpf.dropped_in_kernel,
            dropped_by_publisher = counters.bus.dropped(),
            "embedded run finished"
        );
        Ok(())
    }
}
