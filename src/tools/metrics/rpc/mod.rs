//! The `peerobserver_rpc_*` families, from the RPC extractor's events (metrics.md §4.6).
//!
//! Each arm of `rpc.rpc_event` drives its own group of families. A group is a small struct
//! with `new` (registers the group's families) and `observe` (updates them from one event of
//! its arm):
//!
//! - `peers`: `peer_infos` → `rpc_peer_info_*`, recomputed from the whole peer list on
//!   every event, some of it against the IP lists;
//! - `node`: the node-wide snapshots (`mempool_info`, `uptime`, `net_totals`,
//!   `memory_info`, `addrman_info`, `chain_tx_stats`, `network_info`, `blockchain_info`,
//!   `estimate_smart_fee`), set from the event as carried;
//! - `orphans`: `orphan_txs` → `rpc_getorphantxs_*`, whose counters compare with the
//!   previous event's orphanage;
//! - `addrman`: `addrman` → `rpc_getrawaddrman_*`, whose counters compare with the
//!   previous event's tables.

mod addrman;
mod node;
mod orphans;
mod peers;
#[cfg(test)]
mod tests;

use prometheus::IntGauge;

use super::iplists::IpLists;
use super::register::Register;
use crate::event::proto::rpc_extractor::rpc::RpcEvent;

use addrman::AddrmanFamilies;
use node::{
    AddrManInfoFamilies, BlockchainInfoFamilies, ChainTxStatsFamilies, EstimateSmartFeeFamilies,
    MemoryInfoFamilies, MempoolFamilies, NetTotalsFamilies, NetworkInfoFamilies,
};
use orphans::OrphanFamilies;
use peers::PeerInfoFamilies;

/// Every `rpc` family, and the state some of them keep between events.
pub struct RpcMetrics {
    peers: PeerInfoFamilies,
    mempool: MempoolFamilies,
    uptime: IntGauge,
    net_totals: NetTotalsFamilies,
    memory: MemoryInfoFamilies,
    addrman_info: AddrManInfoFamilies,
    chain_tx_stats: ChainTxStatsFamilies,
    network: NetworkInfoFamilies,
    blockchain: BlockchainInfoFamilies,
    orphans: OrphanFamilies,
    addrman: AddrmanFamilies,
    fee_estimates: EstimateSmartFeeFamilies,
}

impl RpcMetrics {
    /// Registers every family.
    pub fn new(register: &Register<'_>) -> prometheus::Result<RpcMetrics> {
        Ok(RpcMetrics {
            peers: PeerInfoFamilies::new(register)?,
            mempool: MempoolFamilies::new(register)?,
            uptime: register.gauge_int("peerobserver_rpc_uptime", "Node uptime in seconds.")?,
            net_totals: NetTotalsFamilies::new(register)?,
            memory: MemoryInfoFamilies::new(register)?,
            addrman_info: AddrManInfoFamilies::new(register)?,
            chain_tx_stats: ChainTxStatsFamilies::new(register)?,
            network: NetworkInfoFamilies::new(register)?,
            blockchain: BlockchainInfoFamilies::new(register)?,
            orphans: OrphanFamilies::new(register)?,
            addrman: AddrmanFamilies::new(register)?,
            fee_estimates: EstimateSmartFeeFamilies::new(register)?,
        })
    }

    /// Updates the families of `event`'s arm.
    pub fn observe(&mut self, event: &RpcEvent, lists: &IpLists) {
        match event {
            RpcEvent::PeerInfos(infos) => self.peers.observe(infos, lists),
            RpcEvent::MempoolInfo(info) => self.mempool.observe(info),
            RpcEvent::Uptime(seconds) => self.uptime.set(i64::from(*seconds)),
            RpcEvent::NetTotals(totals) => self.net_totals.observe(totals),
            RpcEvent::MemoryInfo(info) => self.memory.observe(info),
            RpcEvent::AddrmanInfo(info) => self.addrman_info.observe(info),
            RpcEvent::ChainTxStats(stats) => self.chain_tx_stats.observe(stats),
            RpcEvent::NetworkInfo(info) => self.network.observe(info),
            RpcEvent::BlockchainInfo(info) => self.blockchain.observe(info),
            RpcEvent::OrphanTxs(orphans) => self.orphans.observe(orphans),
            RpcEvent::Addrman(addrman) => self.addrman.observe(addrman),
            RpcEvent::EstimateSmartFee(estimate) => self.fee_estimates.observe(estimate),
        }
    }
}

/// A number of things as an integer gauge value (clamped, never wraps).
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The sum of `values`, saturating instead of overflowing (the event's numbers are not
/// trusted to be small).
fn saturating_sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, u64::saturating_add)
}
