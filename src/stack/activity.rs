//! Regtest activity for the embedded stack: blocks and transactions at a steady pace, so
//! every event category of the observer shows up while `peerlab run` is watched.

use std::time::{Duration, Instant};

use bitcoin::Amount;

use crate::node::{NodeError, NodeRpc, RegtestNode};
use crate::shutdown::Shutdown;

/// What the activity did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Blocks mined.
    pub blocks: u64,
    /// Transactions sent.
    pub transactions: u64,
}

/// Mines 101 blocks (so coinbase coins mature), then each round sends a transaction spending
/// the oldest unspent coinbase and mines a block, until `shutdown` fires or `deadline`
/// passes. Blocking (RPC): run it on a blocking thread.
pub fn drive_activity(
    node: &RegtestNode,
    interval: Duration,
    shutdown: &Shutdown,
    deadline: Option<Instant>,
) -> Result<Activity, NodeError> {
    node.mine(101)?;
    let mut done = Activity {
        blocks: 101,
        transactions: 0,
    };
    let mut next_coin_height = 1u64;
    tracing::info!("mined 101 blocks to the keyless address; coinbase coins are spendable");
    let running = || !shutdown.is_cancelled() && deadline.is_none_or(|d| Instant::now() < d);
    while running() {
        let coin = node.coinbase_coin(next_coin_height)?;
        next_coin_height += 1;
        let tx = node.spend(&coin, Amount::from_sat(2_000), true)?;
        node.send(&tx)?;
        done.transactions += 1;
        std::thread::sleep(interval / 2);
        node.mine(1)?;
        done.blocks += 1;
        std::thread::sleep(interval / 2);
    }
    Ok(done)
}
