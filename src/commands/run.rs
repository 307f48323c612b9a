//! `peerlab run`: the live pipeline on the embedded default stack.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitcoin::Amount;

use crate::bus::{NatsOptions, SubjectScheme, Subscriber};
use crate::harness::NatsServer;
use crate::node::{setup, RegtestConfig, RegtestNode, SetupOptions};
use crate::tools::logger::{format_message, LogFormat};

/// Starts nats-server and a regtest bitcoind, drives regtest activity, and prints what the
/// bus carries, until `duration` passes or Ctrl-C.
pub fn run(
    duration: Option<Duration>,
    interval: Duration,
    scheme: SubjectScheme,
) -> anyhow::Result<()> {
    let installation =
        setup(&SetupOptions::default()).context("provisioning the embedded stack")?;
    let nats = NatsServer::start(&installation.nats_server).context("starting nats-server")?;
    let node = RegtestNode::start(&RegtestConfig::new(&installation.bitcoind))
        .context("starting regtest bitcoind")?;
    tracing::info!(
        nats = %nats.url(),
        rpc = %node.rpc_addr(),
        p2p = %node.p2p_addr(),
        datadir = %node.datadir().display(),
        "embedded stack up"
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let printed = Arc::new(AtomicU64::new(0));
    let nats_options = NatsOptions::local(nats.url());
    let logger = {
        let printed = printed.clone();
        let scheme = scheme.clone();
        runtime.spawn(async move {
            let mut subscriber = Subscriber::connect(&nats_options, scheme, &[]).await?;
            while let Some(message) = subscriber.next().await {
                if let Some(line) = format_message(&message, LogFormat::Text, &[]) {
                    println!("{line}");
                    printed.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: stopping");
            stop.store(true, Ordering::Relaxed);
        });
    }
    let deadline = duration.map(|d| std::time::Instant::now() + d);
    let activity = drive_activity(&node, interval, &stop, deadline);

    logger.abort();
    node.stop(Duration::from_secs(30))
        .context("stopping bitcoind")?;
    drop(nats);
    let (blocks, txs) = activity?;
    tracing::info!(
        blocks,
        transactions = txs,
        events_seen = printed.load(Ordering::Relaxed),
        "embedded run finished"
    );
    Ok(())
}

/// Mines 101 blocks (so coinbase coins mature), then each round mines a block and sends a
/// transaction spending the oldest unspent coinbase. Returns (blocks, transactions).
fn drive_activity(
    node: &RegtestNode,
    interval: Duration,
    stop: &AtomicBool,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<(u64, u64)> {
    node.mine(101)?;
    let (mut blocks, mut txs) = (101u64, 0u64);
    let mut next_coin_height = 1u64;
    tracing::info!("mined 101 blocks to the keyless address; coinbase coins are spendable");
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| std::time::Instant::now() < d) {
        let coin = node.coinbase_coin(next_coin_height)?;
        next_coin_height += 1;
        let tx = node.spend(&coin, Amount::from_sat(2_000), true)?;
        let txid = node.send(&tx)?;
        txs += 1;
        tracing::info!(%txid, "sent a transaction");
        std::thread::sleep(interval / 2);
        let hash = node.mine(1)?;
        blocks += 1;
        tracing::info!(height = blocks, hash = %hash[0], "mined a block");
        std::thread::sleep(interval / 2);
    }
    Ok((blocks, txs))
}
