//! The node-wide snapshots: each event's values are set as carried (units as the rpc
//! extractor sends them, metrics.md §4.6 "Units"), with no state between events.

use prometheus::{Gauge, GaugeVec, IntGauge, IntGaugeVec};

use super::count;
use crate::event::proto::rpc_extractor::{
    AddrManInfo, BlockchainInfo, ChainTxStats, EstimateSmartFee, FeeEstimateMode, MemoryInfo,
    MempoolInfo, NetTotals, NetworkInfo,
};
use crate::tools::metrics::register::{as_i64, Register};

/// `mempool_info` → `rpc_mempoolinfo_*`.
pub(super) struct MempoolFamilies {
    loaded: IntGauge,
    transaction_count: IntGauge,
    transaction_fees: Gauge,
    transaction_vbyte: IntGauge,
    memory_usage: IntGauge,
    memory_max: IntGauge,
    min_mempool_feerate: Gauge,
    min_relay_tx_feerate: Gauge,
    incremental_relay_feerate: Gauge,
}

impl MempoolFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<MempoolFamilies> {
        const P: &str = "peerobserver_rpc_mempoolinfo_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        let float = |name: &str, help: &str| r.gauge(&format!("{P}{name}"), help);
        Ok(MempoolFamilies {
            loaded: int("mempool_loaded", "1 once the mempool is loaded from disk.")?,
            transaction_count: int("transaction_count", "Transactions in the mempool.")?,
            transaction_fees: float("transaction_fees", "Fees of all mempool transactions, BTC.")?,
            transaction_vbyte: int("transaction_vbyte", "Virtual size of the mempool.")?,
            memory_usage: int("memory_usage", "Memory the mempool uses, bytes.")?,
            memory_max: int("memory_max", "Mempool memory limit, bytes.")?,
            min_mempool_feerate: float(
                "min_mempool_feerate",
                "Fee rate to enter the mempool, sat/vB.",
            )?,
            min_relay_tx_feerate: float("min_relay_tx_feerate", "Minimum relay fee rate, sat/vB.")?,
            incremental_relay_feerate: float(
                "incremental_relay_feerate",
                "Incremental relay fee rate, sat/vB.",
            )?,
        })
    }

    pub(super) fn observe(&self, info: &MempoolInfo) {
        self.loaded.set(i64::from(info.loaded));
        self.transaction_count.set(info.size);
        self.transaction_fees.set(info.total_fee);
        self.transaction_vbyte.set(info.bytes);
        self.memory_usage.set(info.usage);
        self.memory_max.set(info.max_mempool);
        self.min_mempool_feerate.set(info.mempoolminfee);
        self.min_relay_tx_feerate.set(info.minrelaytxfee);
        self.incremental_relay_feerate.set(info.incrementalrelayfee);
    }
}

/// `net_totals` → `rpc_nettotals_*`.
pub(super) struct NetTotalsFamilies {
    received: IntGauge,
    sent: IntGauge,
}

impl NetTotalsFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<NetTotalsFamilies> {
        Ok(NetTotalsFamilies {
            received: r.gauge_int(
                "peerobserver_rpc_nettotals_total_bytes_received",
                "Bytes received since the node started.",
            )?,
            sent: r.gauge_int(
                "peerobserver_rpc_nettotals_total_bytes_sent",
                "Bytes sent since the node started.",
            )?,
        })
    }

    pub(super) fn observe(&self, totals: &NetTotals) {
        self.received.set(as_i64(totals.total_bytes_received));
        self.sent.set(as_i64(totals.total_bytes_sent));
    }
}

/// `memory_info` → `rpc_memoryinfo_locked_*` (Core's locked memory pool).
pub(super) struct MemoryInfoFamilies {
    used: IntGauge,
    free: IntGauge,
    total: IntGauge,
    locked: IntGauge,
    chunks_used: IntGauge,
    chunks_free: IntGauge,
}

impl MemoryInfoFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<MemoryInfoFamilies> {
        const P: &str = "peerobserver_rpc_memoryinfo_locked_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        Ok(MemoryInfoFamilies {
            used: int("used", "Locked pool bytes in use.")?,
            free: int("free", "Locked pool bytes free.")?,
            total: int("total", "Locked pool bytes in total.")?,
            locked: int("locked", "Bytes actually locked in RAM.")?,
            chunks_used: int("chunks_used", "Locked pool chunks in use.")?,
            chunks_free: int("chunks_free", "Locked pool chunks free.")?,
        })
    }

    pub(super) fn observe(&self, info: &MemoryInfo) {
        self.used.set(as_i64(info.used));
        self.free.set(as_i64(info.free));
        self.total.set(as_i64(info.total));
        self.locked.set(as_i64(info.locked));
        self.chunks_used.set(as_i64(info.chunks_used));
        self.chunks_free.set(as_i64(info.chunks_free));
    }
}

/// `addrman_info` → `rpc_addrmaninfo{network, table}` (not reset: networks do not vanish).
pub(super) struct AddrManInfoFamilies {
    addresses: IntGaugeVec,
}

impl AddrManInfoFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<AddrManInfoFamilies> {
        Ok(AddrManInfoFamilies {
            addresses: r.gauge_int_vec(
                "peerobserver_rpc_addrmaninfo",
                "Addresses in the address manager, by network and table.",
                &["network", "table"],
            )?,
        })
    }

    pub(super) fn observe(&self, info: &AddrManInfo) {
        for (network, tables) in &info.networks {
            for (table, n) in [
                ("new", tables.new),
                ("tried", tables.tried),
                ("total", tables.total),
            ] {
                self.addresses
                    .with_label_values(&[network.as_str(), table])
                    .set(as_i64(n));
            }
        }
    }
}

/// `chain_tx_stats` → `rpc_chaintxstats_*`.
pub(super) struct ChainTxStatsFamilies {
    tx_count: IntGauge,
    window_final_block_height: IntGauge,
    window_block_count: IntGauge,
    window_tx_count: IntGauge,
    window_interval: IntGauge,
    tx_rate: Gauge,
}

impl ChainTxStatsFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<ChainTxStatsFamilies> {
        const P: &str = "peerobserver_rpc_chaintxstats_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        Ok(ChainTxStatsFamilies {
            tx_count: int("tx_count", "Transactions in the chain up to the tip.")?,
            window_final_block_height: int(
                "window_final_block_height",
                "Height of the window's last block.",
            )?,
            window_block_count: int("window_block_count", "Blocks in the window.")?,
            window_tx_count: int("window_tx_count", "Transactions in the window.")?,
            window_interval: int("window_interval", "Seconds the window spans.")?,
            tx_rate: r.gauge(
                &format!("{P}tx_rate"),
                "Transactions per second over the window.",
            )?,
        })
    }

    pub(super) fn observe(&self, stats: &ChainTxStats) {
        self.tx_count.set(i64::from(stats.tx_count));
        self.window_final_block_height
            .set(i64::from(stats.window_final_block_height));
        self.window_block_count
            .set(i64::from(stats.window_block_count));
        // Core leaves these out for a window too short to measure; keep the last value then.
        if let Some(n) = stats.window_tx_count {
            self.window_tx_count.set(i64::from(n));
        }
        if let Some(seconds) = stats.window_interval {
            self.window_interval.set(i64::from(seconds));
        }
        if let Some(rate) = stats.tx_rate {
            self.tx_rate.set(rate);
        }
    }
}

/// `network_info` → `rpc_networkinfo_*`.
pub(super) struct NetworkInfoFamilies {
    version: IntGauge,
    protocol_version: IntGauge,
    time_offset: IntGauge,
    connections: IntGauge,
    connections_in: IntGauge,
    connections_out: IntGauge,
    network_active: IntGauge,
    relay_fee: Gauge,
    incremental_fee: Gauge,
    warnings: IntGauge,
    local_addresses: IntGauge,
    networks: IntGaugeVec,
}

impl NetworkInfoFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<NetworkInfoFamilies> {
        const P: &str = "peerobserver_rpc_networkinfo_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        let float = |name: &str, help: &str| r.gauge(&format!("{P}{name}"), help);
        Ok(NetworkInfoFamilies {
            version: int("version", "The node's client version.")?,
            protocol_version: int("protocol_version", "The node's P2P protocol version.")?,
            time_offset: int("time_offset", "The node's clock offset to its peers, s.")?,
            connections: int("connections", "Open connections.")?,
            connections_in: int("connections_in", "Open inbound connections.")?,
            connections_out: int("connections_out", "Open outbound connections.")?,
            network_active: int("network_active", "1 while P2P networking is enabled.")?,
            relay_fee: float("relay_fee", "Minimum relay fee rate, sat/vB.")?,
            incremental_fee: float("incremental_fee", "Incremental relay fee rate, sat/vB.")?,
            warnings: int("warnings", "Number of network warnings.")?,
            local_addresses: int(
                "local_addresses_count",
                "Local addresses the node advertises.",
            )?,
            networks: r.gauge_int_vec(
                &format!("{P}networks"),
                "Whether a network is limited or reachable (1/0).",
                &["network", "property"],
            )?,
        })
    }

    pub(super) fn observe(&self, info: &NetworkInfo) {
        self.version.set(i64::from(info.version));
        self.protocol_version.set(i64::from(info.protocol_version));
        self.time_offset.set(i64::from(info.time_offset));
        self.connections.set(i64::from(info.connections));
        self.connections_in.set(i64::from(info.connections_in));
        self.connections_out.set(i64::from(info.connections_out));
        self.network_active.set(i64::from(info.network_active));
        self.relay_fee.set(info.relay_fee);
        self.incremental_fee.set(info.incremental_fee);
        self.warnings.set(count(info.warnings.len()));
        self.local_addresses.set(count(info.local_addresses.len()));
        for network in &info.networks {
            for (property, value) in [
                ("limited", network.limited),
                ("reachable", network.reachable),
            ] {
                self.networks
                    .with_label_values(&[network.name.as_str(), property])
                    .set(i64::from(value));
            }
        }
    }
}

/// `blockchain_info` → `rpc_blockchaininfo_*`.
pub(super) struct BlockchainInfoFamilies {
    blocks: IntGauge,
    headers: IntGauge,
    difficulty: Gauge,
    verification_progress: Gauge,
    initial_block_download: IntGauge,
    size_on_disk: IntGauge,
    pruned: IntGauge,
    prune_height: IntGauge,
    prune_target_size: IntGauge,
    warnings: IntGauge,
}

impl BlockchainInfoFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<BlockchainInfoFamilies> {
        const P: &str = "peerobserver_rpc_blockchaininfo_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        let float = |name: &str, help: &str| r.gauge(&format!("{P}{name}"), help);
        Ok(BlockchainInfoFamilies {
            blocks: int("blocks", "Height of the validated chain.")?,
            headers: int("headers", "Height of the best header chain.")?,
            difficulty: float("difficulty", "Current proof-of-work difficulty.")?,
            verification_progress: float(
                "verification_progress",
                "Estimated chain verification progress, 0 to 1.",
            )?,
            initial_block_download: int(
                "initial_block_download",
                "1 while in initial block download.",
            )?,
            size_on_disk: int("size_on_disk", "Block and undo files on disk, bytes.")?,
            pruned: int("pruned", "1 if the node prunes blocks.")?,
            prune_height: int("prune_height", "Lowest height with block data kept.")?,
            prune_target_size: int("prune_target_size", "Pruning target, bytes.")?,
            warnings: int("warnings", "Number of chain warnings.")?,
        })
    }

    pub(super) fn observe(&self, info: &BlockchainInfo) {
        self.blocks.set(i64::from(info.blocks));
        self.headers.set(i64::from(info.headers));
        self.difficulty.set(info.difficulty);
        self.verification_progress.set(info.verificationprogress);
        self.initial_block_download
            .set(i64::from(info.initialblockdownload));
        self.size_on_disk.set(as_i64(info.size_on_disk));
        self.pruned.set(i64::from(info.pruned));
        self.prune_height.set(i64::from(info.prune_height));
        self.prune_target_size.set(as_i64(info.prune_target_size));
        self.warnings.set(count(info.warnings.len()));
    }
}

/// `estimate_smart_fee` → `rpc_estimatesmartfee_feerate{target_block, mode}`.
pub(super) struct EstimateSmartFeeFamilies {
    feerate: GaugeVec,
}

impl EstimateSmartFeeFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<EstimateSmartFeeFamilies> {
        Ok(EstimateSmartFeeFamilies {
            feerate: r.gauge_vec(
                "peerobserver_rpc_estimatesmartfee_feerate",
                "Estimated fee rate, sat/vB, by confirmation target and mode.",
                &["target_block", "mode"],
            )?,
        })
    }

    pub(super) fn observe(&self, estimate: &EstimateSmartFee) {
        // No estimate (Core answered with errors): keep the last one.
        let Some(rate) = estimate.fee_rate else {
            return;
        };
        // The wire carries the enum as an integer; a value outside the enum reads as UNSET,
        // as prost's own accessor would.
        let mode = FeeEstimateMode::try_from(estimate.mode)
            .unwrap_or(FeeEstimateMode::Unset)
            .as_str_name();
        let target = estimate.requested_blocks.to_string();
        self.feerate
            .with_label_values(&[target.as_str(), mode])
            .set(rate);
    }
}
