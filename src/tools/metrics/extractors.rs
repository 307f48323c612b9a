//! The families of the P2P, log and IPC extractors' events (metrics.md §4.7 to §4.9).

use std::collections::BTreeMap;

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use super::labels::{inv_type, network_of};
use super::register::{as_i64, Register};
use crate::event::proto::ipc_extractor::ipc::IpcEvent;
use crate::event::proto::log_extractor::{log::LogEvent, Log, LogDebugCategory, LogLevel};
use crate::event::proto::p2p_extractor::p2p::P2pEvent;

/// The states of a `BlockChecked` line that mean a mutated block.
const MUTATED_STATES: [&str; 5] = [
    "bad-txnmrklroot",
    "bad-txns-duplicate",
    "bad-witness-nonce-size",
    "bad-witness-merkle-match",
    "unexpected-witness",
];

/// P2P extractor, log extractor and IPC extractor families.
pub struct ExtractorMetrics {
    ping_duration: IntGauge,
    addrv2relay_addresses: IntCounterVec,
    addrv2relay_messages: IntCounter,
    addrv2relay_small: IntCounter,
    addrv2relay_size: IntGauge,
    invs_items: IntCounterVec,
    invs_messages: IntCounter,
    invs_size: IntGauge,
    feefilter_messages: IntCounter,
    feefilter_last: IntGauge,
    log_events: IntCounterVec,
    log_bytes: IntCounterVec,
    block_connected_events: IntCounter,
    block_checked_events: IntCounter,
    mutated_blocks: IntCounterVec,
    ipc_block_tip_height: IntGauge,
}

impl ExtractorMetrics {
    /// Registers every family.
    pub fn new(r: &Register<'_>) -> prometheus::Result<ExtractorMetrics> {
        let cl = ["category", "level"];
        Ok(ExtractorMetrics {
            ping_duration: r.gauge_int(
                "peerobserver_p2pextractor_ping_duration_nanoseconds",
                "The node's latest ping round trip to the P2P extractor",
            )?,
            addrv2relay_addresses: r.counter_vec(
                "peerobserver_p2pextractor_addrv2relay_addresses",
                "Addresses relayed to the P2P extractor by network",
                &["network"],
            )?,
            addrv2relay_messages: r.counter(
                "peerobserver_p2pextractor_addrv2relay_messages",
                "Address messages relayed to the P2P extractor",
            )?,
            addrv2relay_small: r.counter(
                "peerobserver_p2pextractor_addrv2relay_messages_10_or_less_entries",
                "Address messages with at most 10 entries relayed to the P2P extractor",
            )?,
            addrv2relay_size: r.gauge_int(
                "peerobserver_p2pextractor_addrv2relay_size",
                "Entries of the latest address message",
            )?,
            invs_items: r.counter_vec(
                "peerobserver_p2pextractor_invs_items",
                "Inventory items announced to the P2P extractor by type",
                &["inv_type"],
            )?,
            invs_messages: r.counter(
                "peerobserver_p2pextractor_invs_messages",
                "inv messages announced to the P2P extractor",
            )?,
            invs_size: r.gauge_int(
                "peerobserver_p2pextractor_invs_size",
                "Items of the latest inv message",
            )?,
            feefilter_messages: r.counter(
                "peerobserver_p2pextractor_feefilter_messages",
                "feefilter messages sent to the P2P extractor",
            )?,
            feefilter_last: r.gauge_int(
                "peerobserver_p2pextractor_feefilter_last",
                "The latest fee filter (sat/kvB)",
            )?,
            log_events: r.counter_vec("peerobserver_log_events", "debug.log lines", &cl)?,
            log_bytes: r.counter_vec("peerobserver_log_bytes", "debug.log bytes", &cl)?,
            block_connected_events: r.counter(
                "peerobserver_log_block_connected_events",
                "BlockConnected log lines",
            )?,
            block_checked_events: r.counter(
                "peerobserver_log_block_checked_events",
                "BlockChecked log lines",
            )?,
            mutated_blocks: r.counter_vec(
                "peerobserver_log_mutated_blocks",
                "Mutated blocks by state",
                &["status"],
            )?,
            ipc_block_tip_height: r.gauge_int(
                "peerobserver_ipc_block_tip_height",
                "Height of the tip the IPC extractor read",
            )?,
        })
    }

    /// Updates the P2P extractor families.
    pub fn observe_p2p(&mut self, event: &P2pEvent) {
        match event {
            P2pEvent::PingDuration(ping) => self.ping_duration.set(as_i64(ping.duration)),
            P2pEvent::AddressAnnouncement(announcement) => {
                let mut by_network: BTreeMap<&str, u64> = BTreeMap::new();
                for entry in &announcement.addresses {
                    *by_network.entry(network_of(entry).0).or_default() += 1;
                }
                for (network, count) in by_network {
                    self.addrv2relay_addresses
                        .with_label_values(&[network])
                        .inc_by(count);
                }
                self.addrv2relay_messages.inc();
                let entries = announcement.addresses.len();
                if entries <= 10 {
                    self.addrv2relay_small.inc();
                }
                self.addrv2relay_size.set(as_i64(entries as u64));
            }
            P2pEvent::InventoryAnnouncement(announcement) => {
                for item in &announcement.inventory {
                    self.invs_items.with_label_values(&[inv_type(item)]).inc();
                }
                self.invs_messages.inc();
                self.invs_size
                    .set(as_i64(announcement.inventory.len() as u64));
            }
            P2pEvent::FeefilterAnnouncement(fee) => {
                self.feefilter_messages.inc();
                self.feefilter_last.set(*fee);
            }
        }
    }

    /// Updates the log families.
    pub fn observe_log(&mut self, log: &Log) {
        let category = LogDebugCategory::try_from(log.category).map_or_else(
            |_| "unknown".to_string(),
            |c| c.as_str_name().to_lowercase(),
        );
        let level = LogLevel::try_from(log.log_level)
            .map_or_else(|_| "info".to_string(), |l| l.as_str_name().to_lowercase());
        let labels = [category.as_str(), level.as_str()];
        self.log_events.with_label_values(&labels).inc();
        self.log_bytes
            .with_label_values(&labels)
            .inc_by(log.log_line_bytes);
        match &log.log_event {
            Some(LogEvent::BlockConnectedLog(_)) => self.block_connected_events.inc(),
            Some(LogEvent::BlockCheckedLog(checked)) => {
                self.block_checked_events.inc();
                if MUTATED_STATES.contains(&checked.state.as_str()) {
                    self.mutated_blocks
                        .with_label_values(&[&checked.state])
                        .inc();
                }
            }
            Some(LogEvent::UnknownLogMessage(_)) | None => {}
        }
    }

    /// Updates the IPC family.
    pub fn observe_ipc(&mut self, event: &IpcEvent) {
        match event {
            IpcEvent::BlockTip(tip) => self.ipc_block_tip_height.set(i64::from(tip.height)),
        }
    }
}
