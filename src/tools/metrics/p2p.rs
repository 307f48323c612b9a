//! The `peerobserver_p2p_*` families (and one `conn_*` family fed by `version` messages), from
//! the eBPF extractor's P2P message events (metrics.md §4.2).

use std::collections::BTreeSet;

use prometheus::{HistogramVec, IntCounter, IntCounterVec};

use super::iplists::IpLists;
use super::labels::{direction, inv_type, ip_of, network_of, nonce_class, subnet_of};
use super::register::{Register, SeriesCap};
use crate::event::proto::bitcoin_primitives::Address;
use crate::event::proto::ebpf_extractor::message::message_event::Msg;
use crate::event::proto::ebpf_extractor::message::MessageEvent;

/// Entries per addr/addrv2 message.
fn buckets_addr_count() -> Vec<f64> {
    let mut b: Vec<f64> = (0..=10).map(f64::from).collect();
    b.extend([
        15.0, 20.0, 25.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 250.0,
    ]);
    b.extend([
        300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 999.0, 1000.0,
    ]);
    b
}

/// Items per inv message.
fn buckets_inv_size() -> Vec<f64> {
    let mut b = buckets_addr_count();
    b.extend((2..=9).map(|k| f64::from(k * 1000)));
    b.extend([10_000.0, 20_000.0, 25_000.0, 30_000.0, 35_000.0, 40_000.0]);
    b.extend([45_000.0, 50_000.0]);
    b
}

/// A service bit index 0..=63, one bucket each.
fn buckets_service_bits() -> Vec<f64> {
    (0..64).map(f64::from).collect()
}

/// 0, then 2^0 .. 2^24 seconds.
fn buckets_timestamp_offset() -> Vec<f64> {
    std::iter::once(0.0)
        .chain((0..=24).map(|k| f64::from(1u32 << k)))
        .collect()
}

/// The P2P message families.
pub struct P2pMetrics {
    message_count: IntCounterVec,
    message_bytes: IntCounterVec,
    message_bytes_linkinglion: IntCounterVec,
    message_count_linkinglion: IntCounterVec,
    addr_addresses: HistogramVec,
    addr_timestamp_offset: HistogramVec,
    addr_services_bits: HistogramVec,
    addrv2_services_bits: HistogramVec,
    addr_services: IntCounterVec,
    addrv2_services: IntCounterVec,
    addrv2_addresses: HistogramVec,
    addrv2_timestamp_offset: HistogramVec,
    selfannouncements: IntCounterVec,
    subnetannouncements: IntCounterVec,
    ping_inbound_value: IntCounterVec,
    addrv2_empty: IntCounterVec,
    inv_entries: IntCounterVec,
    inv_entries_histogram: HistogramVec,
    invs_homogeneous: IntCounterVec,
    invs_heterogeneous: IntCounterVec,
    invs_outbound_large: IntCounter,
    oldping_subnet: IntCounterVec,
    version_useragent: IntCounterVec,
    feefilter_feerate: IntCounterVec,
    reject_message: IntCounterVec,
    private_transaction_broadcast: IntCounter,
    cap: SeriesCap,
}

/// The user agent of Bitcoin Core's private transaction broadcast connections (PR 29415).
const PRIVATE_BROADCAST_AGENT: &str = "/pynode:0.0.1/";

impl P2pMetrics {
    /// Registers every family.
    pub fn new(r: &Register<'_>, cap: SeriesCap) -> prometheus::Result<P2pMetrics> {
        let mcd = ["message", "connection_type", "direction"];
        let md = ["message", "direction"];
        let d = ["direction"];
        let dt = ["direction", "timestamp_offset"];
        let ds = ["direction", "services"];
        let nd = ["network", "direction"];
        Ok(P2pMetrics {
            message_count: r.counter_vec("peerobserver_p2p_message_count", "P2P messages", &mcd)?,
            message_bytes: r.counter_vec(
                "peerobserver_p2p_message_bytes",
                "P2P message bytes",
                &mcd,
            )?,
            message_bytes_linkinglion: r.counter_vec(
                "peerobserver_p2p_message_bytes_linkinglion",
                "P2P message bytes of LinkingLion peers",
                &md,
            )?,
            message_count_linkinglion: r.counter_vec(
                "peerobserver_p2p_message_count_linkinglion",
                "P2P messages of LinkingLion peers",
                &md,
            )?,
            addr_addresses: r.histogram_vec(
                "peerobserver_p2p_addr_addresses",
                "Entries per addr message",
                &d,
                buckets_addr_count(),
            )?,
            addr_timestamp_offset: r.histogram_vec(
                "peerobserver_p2p_addr_timestamp_offset_seconds",
                "Distance of addr entry timestamps from the event time",
                &dt,
                buckets_timestamp_offset(),
            )?,
            addr_services_bits: r.histogram_vec(
                "peerobserver_p2p_addr_services_bits",
                "Service bits set in addr entries",
                &d,
                buckets_service_bits(),
            )?,
            addrv2_services_bits: r.histogram_vec(
                "peerobserver_p2p_addrv2_services_bits",
                "Service bits set in addrv2 entries",
                &d,
                buckets_service_bits(),
            )?,
            addr_services: r.counter_vec(
                "peerobserver_p2p_addr_services",
                "Service fields of addr entries",
                &ds,
            )?,
            addrv2_services: r.counter_vec(
                "peerobserver_p2p_addrv2_services",
                "Service fields of addrv2 entries",
                &ds,
            )?,
            addrv2_addresses: r.histogram_vec(
                "peerobserver_p2p_addrv2_addresses",
                "Entries per addrv2 message",
                &d,
                buckets_addr_count(),
            )?,
            addrv2_timestamp_offset: r.histogram_vec(
                "peerobserver_p2p_addrv2_timestamp_offset_seconds",
                "Distance of addrv2 entry timestamps from the event time",
                &dt,
                buckets_timestamp_offset(),
            )?,
            selfannouncements: r.counter_vec(
                "peerobserver_p2p_address_selfannouncements",
                "Address entries announcing the sender's own IP",
                &nd,
            )?,
            subnetannouncements: r.counter_vec(
                "peerobserver_p2p_address_subnetannouncements",
                "Address entries in the sender's subnet",
                &nd,
            )?,
            ping_inbound_value: r.counter_vec(
                "peerobserver_p2p_ping_inbound_value",
                "Inbound pings by nonce size class",
                &["value"],
            )?,
            addrv2_empty: r.counter_vec(
                "peerobserver_p2p_addrv2_empty",
                "Empty addrv2 messages",
                &["direction", "addr"],
            )?,
            inv_entries: r.counter_vec(
                "peerobserver_p2p_inv_entries",
                "Inventory items by type",
                &["direction", "inv_type"],
            )?,
            inv_entries_histogram: r.histogram_vec(
                "peerobserver_p2p_inv_entries_histogram",
                "Items per inv message",
                &d,
                buckets_inv_size(),
            )?,
            invs_homogeneous: r.counter_vec(
                "peerobserver_p2p_invs_homogeneous",
                "Inv messages with items of one type",
                &d,
            )?,
            invs_heterogeneous: r.counter_vec(
                "peerobserver_p2p_invs_heterogeneous",
                "Inv messages with items of several types or none",
                &d,
            )?,
            invs_outbound_large: r.counter(
                "peerobserver_p2p_invs_outbound_large",
                "Outbound inv messages with more than 35 Tx or WTx items",
            )?,
            oldping_subnet: r.counter_vec(
                "peerobserver_p2p_oldping_subnet",
                "Inbound pings without a nonce by sender subnet",
                &["subnet"],
            )?,
            version_useragent: r.counter_vec(
                "peerobserver_p2p_version_useragent",
                "Inbound version messages by user agent",
                &["useragent"],
            )?,
            feefilter_feerate: r.counter_vec(
                "peerobserver_p2p_feefilter_feerate",
                "feefilter messages by fee rate (sat/kvB)",
                &["direction", "feerate"],
            )?,
            reject_message: r.counter_vec(
                "peerobserver_p2p_reject_message",
                "Inbound reject messages",
                &["rejectcommand", "rejectreason"],
            )?,
            private_transaction_broadcast: r.counter(
                "peerobserver_conn_private_transaction_broadcast",
                "Inbound connections announcing Core's private broadcast user agent",
            )?,
            cap,
        })
    }

    /// Updates the families for one message seen at `timestamp_ms` (the event's time).
    pub fn observe(&mut self, event: &MessageEvent, timestamp_ms: u64, lists: &IpLists) {
        let meta = &event.meta;
        let dir = direction(meta.inbound);
        let conn_type = meta.conn_type.to_string();
        let labels = [meta.command.as_str(), conn_type.as_str(), dir];
        self.message_count.with_label_values(&labels).inc();
        self.message_bytes
            .with_label_values(&labels)
            .inc_by(meta.size);
        let ip = ip_of(&meta.addr);
        let linkinglion = lists.linkinglion(&ip);
        if linkinglion {
            let labels = [meta.command.as_str(), dir];
            self.message_count_linkinglion
                .with_label_values(&labels)
                .inc();
            self.message_bytes_linkinglion
                .with_label_values(&labels)
                .inc_by(meta.size);
        }
        let now_secs = i64::try_from(timestamp_ms / 1000).unwrap_or(i64::MAX);
        match &event.msg {
            Some(Msg::Addr(addr)) => {
                self.addr_addresses
                    .with_label_values(&[dir])
                    .observe(addr.addresses.len() as f64);
                for entry in &addr.addresses {
                    self.entry(entry, dir, now_secs, &ip, false);
                }
            }
            Some(Msg::Addrv2(addr)) => {
                self.addrv2_addresses
                    .with_label_values(&[dir])
                    .observe(addr.addresses.len() as f64);
                for entry in &addr.addresses {
                    self.entry(entry, dir, now_secs, &ip, true);
                }
            }
            Some(Msg::Ping(ping)) if meta.inbound => {
                self.ping_inbound_value
                    .with_label_values(&[nonce_class(ping.value)])
                    .inc();
            }
            Some(Msg::Emptyaddrv2(_))
                if self.cap.admit("peerobserver_p2p_addrv2_empty", &[dir, &ip]) =>
            {
                self.addrv2_empty.with_label_values(&[dir, &ip]).inc();
            }
            Some(Msg::Inv(inv)) => {
                let mut types = BTreeSet::new();
                let (mut tx, mut wtx) = (0, 0);
                for item in &inv.items {
                    let name = inv_type(item);
                    self.inv_entries.with_label_values(&[dir, name]).inc();
                    types.insert(name);
                    tx += u32::from(name == "Tx");
                    wtx += u32::from(name == "WTx");
                }
                self.inv_entries_histogram
                    .with_label_values(&[dir])
                    .observe(inv.items.len() as f64);
                if types.len() == 1 {
                    self.invs_homogeneous.with_label_values(&[dir]).inc();
                } else {
                    self.invs_heterogeneous.with_label_values(&[dir]).inc();
                }
                if !meta.inbound && (tx > 35 || wtx > 35) {
                    self.invs_outbound_large.inc();
                }
            }
            Some(Msg::Oldping(_)) if meta.inbound => {
                let subnet = subnet_of(&ip);
                if self
                    .cap
                    .admit("peerobserver_p2p_oldping_subnet", &[&subnet])
                {
                    self.oldping_subnet.with_label_values(&[&subnet]).inc();
                }
            }
            Some(Msg::Version(version)) if meta.inbound => {
                let agent = if linkinglion {
                    "LinkingLion"
                } else {
                    version.user_agent.as_str()
                };
                if self
                    .cap
                    .admit("peerobserver_p2p_version_useragent", &[agent])
                {
                    self.version_useragent.with_label_values(&[agent]).inc();
                }
                if agent == PRIVATE_BROADCAST_AGENT {
                    self.private_transaction_broadcast.inc();
                }
            }
            Some(Msg::Feefilter(filter)) => {
                let fee = filter.fee.to_string();
                if self
                    .cap
                    .admit("peerobserver_p2p_feefilter_feerate", &[dir, &fee])
                {
                    self.feefilter_feerate.with_label_values(&[dir, &fee]).inc();
                }
            }
            Some(Msg::Reject(reject)) if meta.inbound => {
                let reason = match reject.reason {
                    0 => "Malformed",
                    1 => "Invalid",
                    2 => "Obsolete",
                    3 => "Duplicate",
                    4 => "NonStandard",
                    5 => "Dust",
                    6 => "Fee",
                    7 => "Checkpoint",
                    _ => "unknown",
                };
                let labels = [reject.rejected_command.as_str(), reason];
                if self.cap.admit("peerobserver_p2p_reject_message", &labels) {
                    self.reject_message.with_label_values(&labels).inc();
                }
            }
            _ => {}
        }
    }

    /// One addr (`v2 = false`) or addrv2 entry from the peer at `sender_ip`.
    fn entry(&mut self, entry: &Address, dir: &str, now_secs: i64, sender_ip: &str, v2: bool) {
        let offset = now_secs - i64::from(entry.timestamp);
        let (when, seconds) = if offset >= 0 {
            ("past", offset)
        } else {
            ("future", -offset)
        };
        let (offsets, bits, services, services_name) = if v2 {
            (
                &self.addrv2_timestamp_offset,
                &self.addrv2_services_bits,
                &self.addrv2_services,
                "peerobserver_p2p_addrv2_services",
            )
        } else {
            (
                &self.addr_timestamp_offset,
                &self.addr_services_bits,
                &self.addr_services,
                "peerobserver_p2p_addr_services",
            )
        };
        offsets
            .with_label_values(&[dir, when])
            .observe(seconds as f64);
        for bit in (0..64).filter(|bit| entry.services & (1u64 << bit) != 0) {
            bits.with_label_values(&[dir]).observe(f64::from(bit));
        }
        let service_field = entry.services.to_string();
        if self.cap.admit(services_name, &[dir, &service_field]) {
            services.with_label_values(&[dir, &service_field]).inc();
        }
        let (network, text) = network_of(entry);
        if text == Some(sender_ip) {
            self.selfannouncements
                .with_label_values(&[network, dir])
                .inc();
        } else if matches!(network, "IPv4" | "IPv6")
            && text.is_some_and(|t| subnet_of(t) == subnet_of(sender_ip))
        {
            self.subnetannouncements
                .with_label_values(&[network, dir])
                .inc();
        }
    }
}
