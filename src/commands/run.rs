//! `peerlab run`: the live pipeline on the embedded default stack.
//!
//! nats-server and a regtest bitcoind are started privately; the eBPF extractor traces the
//! node and publishes to the bus; a logger prints what the bus carries. Regtest activity
//! (blocks, transactions, one idle P2P peer) makes every event category show up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitcoin::Amount;

use crate::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme, Subscriber};
use crate::extractors::ebpf::{EbpfConfig, EbpfExtractor, Target};
use crate::stack::NatsServer;
use crate::node::{setup, NodeRpc, RegtestConfig, RegtestNode, SetupOptions};
use crate::peer::{Peer, PeerConfig};
use crate::record::recorder::{RecordOptions, Recorder};
use crate::tools::logger::{format_message, LogFormat};

/// What `peerlab run` should do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this long (default: until Ctrl-C / SIGTERM).
    pub duration: Option<Duration>,
    /// Time between activity rounds (a transaction and a block).
    pub interval: Duration,
    /// Subject scheme of the bus.
    pub scheme: SubjectScheme,
    /// Honest P2P peers to connect.
    pub peers: usize,
    /// Also record the bus into this MCAP file.
    pub record: Option<std::path::PathBuf>,
}

/// Runs the embedded stack until `duration` passes or Ctrl-C / SIGTERM.
pub fn run(options: &RunOptions) -> anyhow::Result<()> {
    let (duration, interval, scheme) = (options.duration, options.interval, options.scheme.clone());
    let installation =
        setup(&SetupOptions::default()).context("provisioning the embedded stack")?;
    let nats = NatsServer::start(&installation.nats_server).context("starting nats-server")?;
    let node = Arc::new(
        RegtestNode::start(&RegtestConfig::new(&installation.bitcoind))
            .context("starting regtest bitcoind")?,
    );
    tracing::info!(
        nats = %nats.url(),
        rpc = %node.rpc_addr(),
        p2p = %node.p2p_addr(),
        datadir = %node.datadir().display(),
        "embedded stack up"
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let printed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let result = runtime.block_on(async {
        let nats_options = NatsOptions::local(nats.url());
        // The logger and the recorder subscribe (confirmed by the server) before anything
        // publishes, so they see every event the extractor sends.
        let subscriber = Subscriber::connect(&nats_options, scheme.clone(), &[])
            .await
            .context("subscribing the logger")?;
        let logger = tokio::spawn(print_events(subscriber, printed.clone()));
        let (stop_recording, recording_stopped) = tokio::sync::oneshot::channel::<()>();
        let recorder = match options.record.clone() {
            None => None,
            Some(output) => {
            let record_options = RecordOptions::new(output, crate::secret::command_line());
            let recorder = Recorder::connect(&nats_options, scheme.clone(), &record_options)
                .await
                .context("subscribing the recorder")?;
            Some(tokio::spawn(recorder.run(Default::default(), async {
                let _ = recording_stopped.await;
            })))
            }
        };
        let publisher = Arc::new(
            Publisher::connect(&nats_options, scheme, PublisherConfig::default())
                .await
                .context("connecting to NATS")?,
        );
        let config = EbpfConfig::new(&installation.bitcoind, Target::Pid(node.pid()?));
        let extractor = EbpfExtractor::start(config, publisher.clone())
            .context("starting the eBPF extractor")?;

        // Honest peers, so P2P messages and connections show up too.
        let mut peer_tasks = Vec::new();
        for i in 0..options.peers {
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

        let activity = {
            let (node, stop) = (node.clone(), stop.clone());
            let deadline = duration.map(|d| Instant::now() + d);
            tokio::task::spawn_blocking(move || drive_activity(&node, interval, &stop, deadline))
        };
        crate::commands::extract::wait_for_shutdown(duration).await;
        stop.store(true, Ordering::Relaxed);
        let (blocks, txs) = activity.await.context("activity task")??;
        let stats = extractor.stop().await?;
        for task in peer_tasks {
            task.abort();
        }
        let publisher =
            Arc::try_unwrap(publisher).map_err(|_| anyhow::anyhow!("publisher still in use"))?;
        let bus = publisher.close(Duration::from_secs(5)).await;
        // Let the logger print the events still in flight (bounded), then stop it. The
        // server confirmed every sent event, and the logger subscribed before the first.
        // (The publisher also carried the extractor's counter snapshots, which the logger
        // does not print: count events only.)
        let events = stats
            .published
            .load(Ordering::Relaxed)
            .saturating_sub(bus.dropped());
        let wait_until = Instant::now() + Duration::from_secs(5);
        while printed.load(Ordering::Relaxed) < events && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        logger.abort();
        let printed_count = printed.load(Ordering::Relaxed);
        if printed_count != events {
            tracing::warn!(
                published = events,
                printed = printed_count,
                "the logger printed {} of the {events} events the server confirmed before it was stopped after 5 s",
                printed_count
            );
        }
        if let Some(recorder) = recorder {
            let _ = stop_recording.send(());
            let summary = recorder
                .await
                .context("recorder task")?
                .context("recording")?;
            tracing::info!(events = summary.messages, file = ?summary.files, "recording written");
        }
        tracing::info!(
            blocks,
            transactions = txs,
            events_published = events,
            events_printed = printed_count,
            messages_sent_to_nats = bus.sent,
            dropped_in_kernel = stats.dropped_in_kernel(),
            dropped_by_publisher = bus.dropped(),
            "embedded run finished"
        );
        anyhow::Ok(())
    });
    if let Ok(node) = Arc::try_unwrap(node) {
        node.stop(Duration::from_secs(30))
            .context("stopping bitcoind")?;
    }
    drop(nats);
    result
}

async fn print_events(mut subscriber: Subscriber, printed: Arc<AtomicU64>) -> anyhow::Result<()> {
    while let Some(message) = subscriber.next().await {
        if let Some(line) = format_message(&message, LogFormat::Text, &[]) {
            println!("{line}");
            printed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Mines 101 blocks (so coinbase coins mature), then each round sends a transaction spending
/// the oldest unspent coinbase and mines a block. Returns (blocks, transactions).
fn drive_activity(
    node: &RegtestNode,
    interval: Duration,
    stop: &AtomicBool,
    deadline: Option<Instant>,
) -> anyhow::Result<(u64, u64)> {
    node.mine(101)?;
    let (mut blocks, mut txs) = (101u64, 0u64);
    let mut next_coin_height = 1u64;
    tracing::info!("mined 101 blocks to the keyless address; coinbase coins are spendable");
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        let coin = node.coinbase_coin(next_coin_height)?;
        next_coin_height += 1;
        let tx = node.spend(&coin, Amount::from_sat(2_000), true)?;
        node.send(&tx)?;
        txs += 1;
        std::thread::sleep(interval / 2);
        node.mine(1)?;
        blocks += 1;
        std::thread::sleep(interval / 2);
    }
    Ok((blocks, txs))
}
