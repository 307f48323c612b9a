//! The scenario's `[[steps]]`, played in time order on a blocking thread (they are RPC
//! calls), and the pool of keyless coins that steps and valid-transaction peers share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::Amount;
use serde_json::{json, Value};

use super::node::RehearsalNode;
use super::stack::wait_traced;
use crate::extractors::ebpf::ExtractorStats;
use crate::node::{KeylessCoin, NodeError, NodeRpc};
use crate::scenario::{Action, Scenario};

/// Fee of each `send_tx` transaction.
const STEP_TX_FEE: Amount = Amount::from_sat(2_000);
/// How long the extractor may take to follow a restarted node.
const RETRACE_LIMIT: Duration = Duration::from_secs(10);

/// Coinbase coins of the blocks the rehearsal mined, handed out once each, lowest first
/// (the oldest are the first to mature).
pub(super) struct CoinPool {
    next_height: Mutex<u64>,
}

impl CoinPool {
    /// Coins from the block at `first_height` upwards.
    pub fn new(first_height: u64) -> CoinPool {
        CoinPool {
            next_height: Mutex::new(first_height),
        }
    }

    /// The next `n` coins (fewer if a block does not pay the keyless address).
    pub fn take(&self, node: &impl NodeRpc, n: usize) -> Result<Vec<KeylessCoin>, NodeError> {
        let heights: Vec<u64> = {
            let mut next = self
                .next_height
                .lock()
                .map_err(|_| NodeError::Regtest("coin pool poisoned".into()))?;
            let first = *next;
            *next += n as u64;
            (first..first + n as u64).collect()
        };
        heights.into_iter().map(|h| node.coinbase_coin(h)).collect()
    }
}

/// What playing the steps came to.
#[derive(Debug, Default)]
pub(super) struct TimelineOutcome {
    /// One line per failed step.
    pub errors: Vec<String>,
    /// When each node restart completed, in seconds since time zero.
    pub restarts_secs: Vec<f64>,
}

/// Everything the steps touch.
pub(super) struct Timeline {
    /// The home node: steps that name no node act on it.
    pub node: Arc<RehearsalNode>,
    /// Every node by name (a topology's; the one node otherwise).
    pub nodes: Vec<(String, Arc<RehearsalNode>)>,
    pub scenario: Scenario,
    pub coins: Arc<CoinPool>,
    /// Our peers' local addresses -> group (who to disconnect).
    pub registry: Arc<Mutex<HashMap<String, String>>>,
    /// The embedded extractor's counters (to wait until it follows a restart).
    pub extractor: Option<Arc<ExtractorStats>>,
    pub runtime: tokio::runtime::Handle,
}

impl Timeline {
    /// Plays every step at its time.
    pub fn run(&self, t0: Instant) -> TimelineOutcome {
        let mut outcome = TimelineOutcome::default();
        for step in self.scenario.ordered_steps() {
            let due = t0 + crate::scenario::secs(step.at_secs);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            match self.act(step.node.as_deref(), &step.action) {
                Ok(()) if matches!(step.action, Action::RestartNode) => {
                    outcome.restarts_secs.push(t0.elapsed().as_secs_f64());
                }
                Ok(()) => {}
                Err(e) => outcome.errors.push(format!(
                    "step at {}s ({}): {e}",
                    step.at_secs,
                    step.action.name()
                )),
            }
        }
        outcome
    }

    fn act(&self, on: Option<&str>, action: &Action) -> Result<(), String> {
        let node = on
            .and_then(|name| self.nodes.iter().find(|(n, _)| n == name))
            .map_or(&*self.node, |(_, node)| &**node);
        match action {
            Action::Mine(m) => node
                .mine(u64::from(m.blocks))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Action::SendTx(s) => {
                let coins = self
                    .coins
                    .take(node, s.count as usize)
                    .map_err(|e| e.to_string())?;
                coins.iter().try_for_each(|coin| {
                    let tx = node
                        .spend(coin, STEP_TX_FEE, true)
                        .map_err(|e| e.to_string())?;
                    node.send(&tx).map(|_| ()).map_err(|e| e.to_string())
                })
            }
            Action::BumpMocktime(b) => {
                let now = node.mocktime().unwrap_or(0) + b.secs;
                node.set_mocktime(now).map_err(|e| e.to_string())
            }
            Action::Disconnect(d) => self.disconnect_group(&d.group),
            Action::RestartNode => {
                node.restart().map_err(|e| e.to_string())?;
                match &self.extractor {
                    Some(stats) => self
                        .runtime
                        .block_on(wait_traced(node, stats, RETRACE_LIMIT)),
                    None => Ok(()),
                }
            }
        }
    }

    /// Disconnects the group's peers from every node they are connected to.
    fn disconnect_group(&self, group: &str) -> Result<(), String> {
        let addrs = self.registry.lock().map(|m| m.clone()).unwrap_or_default();
        for (_, node) in &self.nodes {
            let peers: Value = node.rpc("getpeerinfo", &[]).map_err(|e| e.to_string())?;
            for peer in peers.as_array().into_iter().flatten() {
                let in_group = peer["addr"]
                    .as_str()
                    .and_then(|a| addrs.get(a))
                    .is_some_and(|g| g == group);
                if let (true, Some(id)) = (in_group, peer["id"].as_u64()) {
                    node.rpc::<Value>("disconnectnode", &[json!(""), json!(id)])
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}
