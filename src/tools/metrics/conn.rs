//! The `peerobserver_conn_*` families, from the eBPF extractor's connection events
//! (metrics.md §4.3), and the mempool and validation families (§4.4, §4.5).

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use super::iplists::IpLists;
use super::labels::ip_of;
use super::register::{as_i64, Register, SeriesCap};
use crate::event::proto::ebpf_extractor::connection::connection_event::Event as ConnEvent;
use crate::event::proto::ebpf_extractor::mempool::mempool_event::Event as MempoolEvent;
use crate::event::proto::ebpf_extractor::validation::validation_event::Event as ValidationEvent;

/// Connection families.
pub struct ConnMetrics {
    inbound: IntCounter,
    inbound_network: IntCounterVec,
    inbound_banlist_monero: IntCounter,
    inbound_banlist_gmax: IntCounter,
    inbound_list_linkinglion: IntCounter,
    inbound_tor_exit: IntCounter,
    inbound_current: IntGauge,
    outbound: IntCounter,
    outbound_current: IntGauge,
    outbound_network: IntCounterVec,
    closed_network: IntCounterVec,
    closed: IntCounter,
    closed_age: IntCounter,
    evicted_inbound: IntCounter,
    misbehaving: IntCounterVec,
    misbehaving_reason: IntCounterVec,
    cap: SeriesCap,
}

impl ConnMetrics {
    /// Registers every family.
    pub fn new(r: &Register<'_>, cap: SeriesCap) -> prometheus::Result<ConnMetrics> {
        let net = ["network"];
        Ok(ConnMetrics {
            inbound: r.counter("peerobserver_conn_inbound", "Inbound connections")?,
            inbound_network: r.counter_vec(
                "peerobserver_conn_inbound_network",
                "Inbound connections by network",
                &net,
            )?,
            inbound_banlist_monero: r.counter(
                "peerobserver_conn_inbound_banlist_monero",
                "Inbound connections from the Monero banlist",
            )?,
            inbound_banlist_gmax: r.counter(
                "peerobserver_conn_inbound_banlist_gmax",
                "Inbound connections from the gmax 2018 banlist",
            )?,
            inbound_list_linkinglion: r.counter(
                "peerobserver_conn_inbound_list_linkinglion",
                "Inbound connections from LinkingLion",
            )?,
            inbound_tor_exit: r.counter(
                "peerobserver_conn_inbound_tor_exit",
                "Inbound connections from Tor exits",
            )?,
            inbound_current: r.gauge_int(
                "peerobserver_conn_inbound_current",
                "Inbound connections at the latest inbound event",
            )?,
            outbound: r.counter("peerobserver_conn_outbound", "Outbound connections")?,
            outbound_current: r.gauge_int(
                "peerobserver_conn_outbound_current",
                "Outbound connections at the latest outbound event",
            )?,
            outbound_network: r.counter_vec(
                "peerobserver_conn_outbound_network",
                "Outbound connections by network",
                &net,
            )?,
            closed_network: r.counter_vec(
                "peerobserver_conn_closed_network",
                "Closed connections by network",
                &net,
            )?,
            closed: r.counter("peerobserver_conn_closed", "Closed connections")?,
            closed_age: r.counter(
                "peerobserver_conn_closed_age",
                "Summed age in seconds of closed connections",
            )?,
            evicted_inbound: r.counter(
                "peerobserver_conn_evicted_inbound",
                "Evicted inbound connections",
            )?,
            misbehaving: r.counter_vec(
                "peerobserver_conn_misbehaving",
                "Misbehaviour by peer id and message",
                &["id", "misbehavingmessage"],
            )?,
            misbehaving_reason: r.counter_vec(
                "peerobserver_conn_misbehaving_reason",
                "Misbehaviour by message",
                &["misbehavingmessage"],
            )?,
            cap,
        })
    }

    /// Updates the families for one connection event at `timestamp_ms`.
    pub fn observe(&mut self, event: &ConnEvent, timestamp_ms: u64, lists: &IpLists) {
        match event {
            ConnEvent::Inbound(inbound) => {
                self.inbound.inc();
                self.inbound_network
                    .with_label_values(&[&inbound.conn.network.to_string()])
                    .inc();
                self.inbound_current
                    .set(as_i64(inbound.existing_connections));
                let ip = ip_of(&inbound.conn.addr);
                for (on_list, counter) in [
                    (lists.monero(&ip), &self.inbound_banlist_monero),
                    (lists.gmax(&ip), &self.inbound_banlist_gmax),
                    (lists.linkinglion(&ip), &self.inbound_list_linkinglion),
                    (lists.tor_exit(&ip), &self.inbound_tor_exit),
                ] {
                    if on_list {
                        counter.inc();
                    }
                }
            }
            ConnEvent::Outbound(outbound) => {
                self.outbound.inc();
                self.outbound_current
                    .set(as_i64(outbound.existing_connections));
                self.outbound_network
                    .with_label_values(&[&outbound.conn.network.to_string()])
                    .inc();
            }
            ConnEvent::Closed(closed) => {
                self.closed.inc();
                self.closed_network
                    .with_label_values(&[&closed.conn.network.to_string()])
                    .inc();
                // Upstream subtracts unsigned; a connection "established in the future"
                // (clock skew) adds nothing instead of wrapping.
                let age = (timestamp_ms / 1000).saturating_sub(closed.time_established);
                self.closed_age.inc_by(age);
            }
            ConnEvent::InboundEvicted(_) => self.evicted_inbound.inc(),
            ConnEvent::Misbehaving(misbehaving) => {
                let id = misbehaving.id.to_string();
                let labels = [id.as_str(), misbehaving.message.as_str()];
                if self.cap.admit("peerobserver_conn_misbehaving", &labels) {
                    self.misbehaving.with_label_values(&labels).inc();
                }
                let reason = [misbehaving.message.as_str()];
                if self
                    .cap
                    .admit("peerobserver_conn_misbehaving_reason", &reason)
                {
                    self.misbehaving_reason.with_label_values(&reason).inc();
                }
            }
        }
    }
}

/// Mempool and validation families.
pub struct ChainMetrics {
    added: IntCounter,
    added_vbytes: IntCounter,
    replaced: IntCounter,
    replaced_vbytes: IntCounter,
    rejected: IntCounterVec,
    removed: IntCounterVec,
    latest_height: IntGauge,
    latest_connection_time: IntGauge,
    latest_sigops: IntGauge,
    latest_inputs: IntGauge,
    latest_transactions: IntGauge,
    connection_time: IntCounter,
}

impl ChainMetrics {
    /// Registers every family.
    pub fn new(r: &Register<'_>) -> prometheus::Result<ChainMetrics> {
        Ok(ChainMetrics {
            added: r.counter(
                "peerobserver_mempool_added",
                "Transactions added to the mempool",
            )?,
            added_vbytes: r.counter(
                "peerobserver_mempool_added_vbytes",
                "vbytes added to the mempool",
            )?,
            replaced: r.counter(
                "peerobserver_mempool_replaced",
                "Transactions replaced in the mempool",
            )?,
            replaced_vbytes: r.counter(
                "peerobserver_mempool_replaced_vbytes",
                "vbytes of replaced transactions",
            )?,
            rejected: r.counter_vec(
                "peerobserver_mempool_rejected",
                "Transactions rejected by reason",
                &["reason"],
            )?,
            removed: r.counter_vec(
                "peerobserver_mempool_removed",
                "Transactions removed by reason",
                &["reason"],
            )?,
            latest_height: r.gauge_int(
                "peerobserver_validation_block_connected_latest_height",
                "Height of the latest connected block",
            )?,
            latest_connection_time: r.gauge_int(
                "peerobserver_validation_block_connected_latest_connection_time",
                "Connection time of the latest block in microseconds",
            )?,
            latest_sigops: r.gauge_int(
                "peerobserver_validation_block_connected_latest_sigops",
                "Sigops of the latest block",
            )?,
            latest_inputs: r.gauge_int(
                "peerobserver_validation_block_connected_latest_inputs",
                "Inputs of the latest block",
            )?,
            latest_transactions: r.gauge_int(
                "peerobserver_validation_block_connected_latest_transactions",
                "Transactions of the latest block",
            )?,
            connection_time: r.counter(
                "peerobserver_validation_block_connected_connection_time",
                "Summed block connection time in microseconds",
            )?,
        })
    }

    /// Updates the mempool families.
    pub fn observe_mempool(&mut self, event: &MempoolEvent) {
        match event {
            MempoolEvent::Added(added) => {
                self.added.inc();
                self.added_vbytes
                    .inc_by(u64::try_from(added.vsize).unwrap_or(0));
            }
            MempoolEvent::Replaced(replaced) => {
                self.replaced.inc();
                self.replaced_vbytes
                    .inc_by(u64::try_from(replaced.replaced_vsize).unwrap_or(0));
            }
            MempoolEvent::Rejected(rejected) => {
                self.rejected.with_label_values(&[&rejected.reason]).inc();
            }
            MempoolEvent::Removed(removed) => {
                self.removed.with_label_values(&[&removed.reason]).inc();
            }
        }
    }

    /// Updates the validation families (the tracepoint's nanoseconds become microseconds).
    pub fn observe_validation(&mut self, event: &ValidationEvent) {
        match event {
            ValidationEvent::BlockConnected(block) => {
                let micros = block.connection_time / 1000;
                self.latest_height.set(i64::from(block.height));
                self.latest_connection_time.set(as_i64(micros));
                self.latest_sigops.set(block.sigops);
                self.latest_inputs.set(i64::from(block.inputs));
                self.latest_transactions.set(block.transactions);
                self.connection_time.inc_by(micros);
            }
        }
    }
}
