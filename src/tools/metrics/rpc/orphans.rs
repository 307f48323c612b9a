//! `orphan_txs` → `peerobserver_rpc_getorphantxs_*`: the orphanage's size, and counters of
//! orphans added and removed since the previous event.

use std::collections::HashMap;

use prometheus::{Gauge, IntCounter, IntGauge};

use super::{count, saturating_sum};
use crate::event::proto::rpc_extractor::OrphanTxs;
use crate::tools::metrics::register::{as_i64, Register};

pub(super) struct OrphanFamilies {
    count: IntGauge,
    bytes: IntGauge,
    vsize: IntGauge,
    weight: IntGauge,
    added_bytes: IntCounter,
    added_count: IntCounter,
    removed_bytes: IntCounter,
    removed_count: IntCounter,
    from_mean: Gauge,
    from_min: IntGauge,
    from_max: IntGauge,
    /// The previous event's orphanage as wtxid → bytes (empty before the first event, so
    /// the first event counts every orphan as added).
    previous: HashMap<String, u64>,
}

impl OrphanFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<OrphanFamilies> {
        const P: &str = "peerobserver_rpc_getorphantxs_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        let counter = |name: &str, help: &str| r.counter(&format!("{P}{name}"), help);
        Ok(OrphanFamilies {
            count: int("count", "Transactions in the orphanage.")?,
            bytes: int("bytes", "Size of all orphans, bytes.")?,
            vsize: int("vsize", "Virtual size of all orphans.")?,
            weight: int("weight", "Weight of all orphans.")?,
            added_bytes: counter("added_bytes", "Bytes of orphans that newly appeared.")?,
            added_count: counter("added_count", "Orphans that newly appeared.")?,
            removed_bytes: counter("removed_bytes", "Bytes of orphans that went away.")?,
            removed_count: counter("removed_count", "Orphans that went away.")?,
            from_mean: r.gauge(
                &format!("{P}from_mean"),
                "Mean number of peers an orphan came from.",
            )?,
            from_min: int("from_min", "Fewest peers an orphan came from.")?,
            from_max: int("from_max", "Most peers an orphan came from.")?,
            previous: HashMap::new(),
        })
    }

    pub(super) fn observe(&mut self, event: &OrphanTxs) {
        let orphans = event.orphans.as_slice();
        self.count.set(count(orphans.len()));
        self.bytes
            .set(as_i64(saturating_sum(orphans.iter().map(|o| o.bytes))));
        self.vsize
            .set(as_i64(saturating_sum(orphans.iter().map(|o| o.vsize))));
        self.weight
            .set(as_i64(saturating_sum(orphans.iter().map(|o| o.weight))));

        // Announcing peers per orphan. The empty orphanage keeps upstream's values: the mean
        // is 0/0 = NaN and the minimum stays at its start value i64::MAX.
        let senders: Vec<usize> = orphans.iter().map(|o| o.from.len()).collect();
        self.from_mean
            .set(senders.iter().sum::<usize>() as f64 / senders.len() as f64);
        self.from_min
            .set(senders.iter().min().map_or(i64::MAX, |&n| count(n)));
        self.from_max
            .set(senders.iter().max().map_or(0, |&n| count(n)));

        let current: HashMap<String, u64> =
            orphans.iter().map(|o| (o.wtxid.clone(), o.bytes)).collect();
        let (added, added_bytes) = unmatched(&current, &self.previous);
        let (removed, removed_bytes) = unmatched(&self.previous, &current);
        self.added_count.inc_by(added);
        self.added_bytes.inc_by(added_bytes);
        self.removed_count.inc_by(removed);
        self.removed_bytes.inc_by(removed_bytes);
        self.previous = current;
    }
}

/// How many of `these` wtxids are missing from `others`, and their bytes summed.
fn unmatched(these: &HashMap<String, u64>, others: &HashMap<String, u64>) -> (u64, u64) {
    let missing: Vec<u64> = these
        .iter()
        .filter(|(wtxid, _)| !others.contains_key(*wtxid))
        .map(|(_, bytes)| *bytes)
        .collect();
    (missing.len() as u64, saturating_sum(missing))
}
