//! The 16 Bitcoin Core tracepoints peerlab relies on, and the check that a binary has them.

use std::collections::BTreeSet;
use std::path::Path;

use crate::usdt::{read_probe_notes, ProbeNote};

use super::NodeError;

/// Every `provider:name` a traceable bitcoind carries (see shared/spec/bitcoin-core.md §1).
pub const BITCOIN_CORE_TRACEPOINTS: [&str; 16] = [
    "net:inbound_message",
    "net:outbound_message",
    "net:inbound_connection",
    "net:outbound_connection",
    "net:closed_connection",
    "net:evicted_inbound_connection",
    "net:misbehaving_connection",
    "mempool:added",
    "mempool:removed",
    "mempool:replaced",
    "mempool:rejected",
    "validation:block_connected",
    "utxocache:flush",
    "utxocache:add",
    "utxocache:spent",
    "utxocache:uncache",
];

/// Reads the binary's probe notes and requires all 16 tracepoints, each with a semaphore.
pub fn verify_tracepoints(bitcoind: &Path) -> Result<Vec<ProbeNote>, NodeError> {
    let notes = read_probe_notes(bitcoind).map_err(|e| NodeError::NotTraceable {
        path: bitcoind.into(),
        reason: e.to_string(),
    })?;
    let found: BTreeSet<String> = notes.iter().map(ProbeNote::full_name).collect();
    let missing: Vec<&str> = BITCOIN_CORE_TRACEPOINTS
        .iter()
        .copied()
        .filter(|t| !found.contains(*t))
        .collect();
    if missing.len() == BITCOIN_CORE_TRACEPOINTS.len() {
        return Err(NodeError::NotTraceable {
            path: bitcoind.into(),
            reason: "it has no USDT tracepoints (no .note.stapsdt notes): build Bitcoin Core with \
                     -DWITH_USDT=ON, or let `peerlab setup` build one"
                .to_string(),
        });
    }
    if !missing.is_empty() {
        return Err(NodeError::NotTraceable {
            path: bitcoind.into(),
            reason: format!("tracepoints missing: {}", missing.join(", ")),
        });
    }
    if let Some(n) = notes.iter().find(|n| n.semaphore.is_none()) {
        return Err(NodeError::NotTraceable {
            path: bitcoind.into(),
            reason: format!(
                "tracepoint {} has no semaphore; peerlab needs Bitcoin Core's TRACEPOINT macro",
                n.full_name()
            ),
        });
    }
    Ok(notes)
}
