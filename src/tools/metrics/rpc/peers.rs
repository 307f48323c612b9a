//! `peer_infos` → `peerobserver_rpc_peer_info_*`: every value is recomputed from the whole
//! `getpeerinfo` list of one event.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::{Gauge, IntGauge, IntGaugeVec};

use super::{count, saturating_sum};
use crate::event::proto::rpc_extractor::{PeerInfo, PeerInfos};
use crate::tools::metrics::iplists::IpLists;
use crate::tools::metrics::labels::{direction, ip_of, mean, median};
use crate::tools::metrics::register::{as_i64, Register};

/// 1 sat/vB in `minfeefilter`'s unit, BTC/kvB: peers filtering below it relay sub-1-sat/vB
/// transactions.
const ONE_SAT_PER_VBYTE: f64 = 0.000_010_00;

/// A `ping_wait` above this many seconds marks a peer that may be about to time out.
const PING_WAIT_LIMIT_SECONDS: f64 = 5.0;

/// A `time_offset` beyond ± this many seconds counts as a skewed clock.
const TIME_OFFSET_LIMIT_SECONDS: i64 = 10;

pub(super) struct PeerInfoFamilies {
    // Peers on the IP lists (metrics.md §5); 0 while a list is not loaded.
    list_gmax: IntGauge,
    list_monero: IntGauge,
    list_tor_exit: IntGauge,
    list_linkinglion: IntGauge,
    list_linkinglion_pre2026: IntGauge,
    list_bitprojects: IntGaugeVec,
    // Plain counts and sums over all peers.
    addr_ratelimited_peers: IntGauge,
    addr_ratelimited_total: IntGauge,
    addr_processed_total: IntGauge,
    timeoffset_plus10s: IntGauge,
    timeoffset_minus10s: IntGauge,
    bip152_hb_to: IntGauge,
    bip152_hb_from: IntGauge,
    num_peers: IntGauge,
    addr_relay_enabled_peers: IntGauge,
    inflight_block_peers: IntGauge,
    inflight_distinct_heights: IntGauge,
    ping_wait_over_5s: IntGauge,
    sub1satvb_relay: IntGauge,
    // Peers per label value; reset on every event so vanished values disappear.
    by_transport: IntGaugeVec,
    by_network: IntGaugeVec,
    by_connection_type: IntGaugeVec,
    by_protocol_version: IntGaugeVec,
    by_asn: IntGaugeVec,
    // Ping statistics in milliseconds (the event carries seconds).
    ping_median: Gauge,
    ping_mean: Gauge,
    minping_median: Gauge,
    minping_mean: Gauge,
    inbound_ipv4_diversity: Gauge,
    invtosend: InvToSend,
    cpuload: CpuLoad,
}

/// `inv_to_send` statistics over transaction-relaying peers.
struct InvToSend {
    sum: IntGauge,
    max: IntGauge,
    median: Gauge,
    mean: Gauge,
    min: IntGauge,
}

/// `cpu_load` statistics (Knots and patched nodes only) over peers that report one.
struct CpuLoad {
    sum: Gauge,
    max: Gauge,
    median: Gauge,
    mean: Gauge,
    min: Gauge,
}

impl PeerInfoFamilies {
    pub(super) fn new(r: &Register<'_>) -> prometheus::Result<PeerInfoFamilies> {
        const P: &str = "peerobserver_rpc_peer_info_";
        let int = |name: &str, help: &str| r.gauge_int(&format!("{P}{name}"), help);
        let float = |name: &str, help: &str| r.gauge(&format!("{P}{name}"), help);
        let per = |name: &str, help: &str, label: &str| {
            r.gauge_int_vec(&format!("{P}{name}"), help, &[label])
        };
        Ok(PeerInfoFamilies {
            list_gmax: int("list_peers_gmax_ban", "Peers on the gmax banlist.")?,
            list_monero: int("list_peers_monero_ban", "Peers on the Monero banlist.")?,
            list_tor_exit: int("list_peers_tor_exit", "Peers connecting from Tor exits.")?,
            list_linkinglion: int(
                "list_peers_linkinglion",
                "Peers in LinkingLion's current prefixes.",
            )?,
            list_linkinglion_pre2026: int(
                "list_peers_linkinglion_pre2026",
                "Peers in LinkingLion's pre-2026 prefixes.",
            )?,
            list_bitprojects: per(
                "list_peers_bitprojects",
                "Peers on the bitprojects list, by direction.",
                "direction",
            )?,
            addr_ratelimited_peers: int(
                "addr_ratelimited_peers",
                "Peers with at least one rate-limited address.",
            )?,
            addr_ratelimited_total: int(
                "addr_ratelimited_total",
                "Rate-limited addresses summed over peers.",
            )?,
            addr_processed_total: int(
                "addr_processed_total",
                "Processed addresses summed over peers.",
            )?,
            timeoffset_plus10s: int(
                "timeoffset_plus10s",
                "Peers whose clock is more than 10 s ahead.",
            )?,
            timeoffset_minus10s: int(
                "timeoffset_minus10s",
                "Peers whose clock is more than 10 s behind.",
            )?,
            bip152_hb_to: int(
                "bip152_highbandwidth_to",
                "Peers we selected as high-bandwidth compact block peers.",
            )?,
            bip152_hb_from: int(
                "bip152_highbandwidth_from",
                "Peers that selected us as a high-bandwidth compact block peer.",
            )?,
            num_peers: int("num_peers", "Connected peers.")?,
            addr_relay_enabled_peers: int(
                "addr_relay_enabled_peers",
                "Peers we relay addresses with.",
            )?,
            inflight_block_peers: int(
                "inflight_block_peers",
                "Peers with blocks requested but not yet received.",
            )?,
            inflight_distinct_heights: int(
                "inflight_distinct_blocks_heights",
                "Distinct heights of in-flight blocks over all peers.",
            )?,
            ping_wait_over_5s: int(
                "ping_wait_larger_5_seconds_block_peers",
                "Peers with an outstanding ping older than 5 s.",
            )?,
            sub1satvb_relay: int(
                "sub1satvb_relay",
                "Transaction-relaying peers whose fee filter is below 1 sat/vB.",
            )?,
            by_transport: per(
                "transport_protocol_type_peers",
                "Peers by transport protocol.",
                "transport_protocol_type",
            )?,
            by_network: per("network_peers", "Peers by network.", "network")?,
            by_connection_type: per(
                "connection_type_peers",
                "Peers by connection type.",
                "connection_type",
            )?,
            by_protocol_version: per(
                "protocol_version_peers",
                "Peers by P2P protocol version.",
                "protocol_version",
            )?,
            by_asn: per("asn_peers", "Peers by mapped AS (unmapped skipped).", "ASN")?,
            ping_median: float("ping_median", "Median ping of peers with one, in ms.")?,
            ping_mean: float("ping_mean", "Mean ping of peers with one, in ms.")?,
            minping_median: float("minping_median", "Median minimum ping, in ms.")?,
            minping_mean: float("minping_mean", "Mean minimum ping, in ms.")?,
            // The misspelling is upstream's name, which the dashboards query.
            inbound_ipv4_diversity: float(
                "connection_divserity_inbound_ipv4",
                "Distinct /16 prefixes per inbound IPv4 peer.",
            )?,
            invtosend: InvToSend {
                sum: int("invtosend_sum", "Queued invs summed over tx-relay peers.")?,
                max: int("invtosend_max", "Most queued invs of a tx-relay peer.")?,
                median: float("invtosend_median", "Median queued invs of tx-relay peers.")?,
                mean: float("invtosend_mean", "Mean queued invs of tx-relay peers.")?,
                min: int("invtosend_min", "Fewest queued invs of a tx-relay peer.")?,
            },
            cpuload: CpuLoad {
                sum: float("cpuload_sum", "Peer CPU load summed over peers.")?,
                max: float("cpuload_max", "Highest peer CPU load.")?,
                median: float("cpuload_median", "Median peer CPU load.")?,
                mean: float("cpuload_mean", "Mean peer CPU load.")?,
                min: float("cpuload_min", "Lowest peer CPU load.")?,
            },
        })
    }

    pub(super) fn observe(&self, infos: &PeerInfos, lists: &IpLists) {
        let peers = infos.infos.as_slice();
        // Port-stripped IPs, index-aligned with `peers`.
        let ips: Vec<String> = peers.iter().map(|p| ip_of(&p.address)).collect();
        self.observe_lists(peers, &ips, lists);
        self.observe_counts(peers);
        self.observe_groups(peers);
        self.observe_pings(peers);
        self.observe_inbound_ipv4_diversity(peers, &ips);
        self.observe_invtosend(peers);
        self.observe_cpuload(peers);
    }

    fn observe_lists(&self, peers: &[PeerInfo], ips: &[String], lists: &IpLists) {
        let on = |listed: fn(&IpLists, &str) -> bool| {
            count(ips.iter().filter(|ip| listed(lists, ip)).count())
        };
        self.list_gmax.set(on(IpLists::gmax));
        self.list_monero.set(on(IpLists::monero));
        self.list_tor_exit.set(on(IpLists::tor_exit));
        self.list_linkinglion.set(on(IpLists::linkinglion));
        self.list_linkinglion_pre2026
            .set(on(IpLists::linkinglion_pre2026));
        // Both directions every time, so a direction that drops to zero reads 0, not stale.
        for inbound in [true, false] {
            let n = peers
                .iter()
                .zip(ips)
                .filter(|(peer, ip)| peer.inbound == inbound && lists.bitprojects(ip))
                .count();
            self.list_bitprojects
                .with_label_values(&[direction(inbound)])
                .set(count(n));
        }
    }

    fn observe_counts(&self, peers: &[PeerInfo]) {
        let peers_where =
            |pred: fn(&PeerInfo) -> bool| count(peers.iter().filter(|p| pred(p)).count());
        self.num_peers.set(count(peers.len()));
        self.addr_ratelimited_peers
            .set(peers_where(|p| p.addr_rate_limited > 0));
        self.addr_ratelimited_total.set(as_i64(saturating_sum(
            peers.iter().map(|p| p.addr_rate_limited),
        )));
        self.addr_processed_total.set(as_i64(saturating_sum(
            peers.iter().map(|p| p.addr_processed),
        )));
        self.addr_relay_enabled_peers
            .set(peers_where(|p| p.addr_relay_enabled));
        self.timeoffset_plus10s
            .set(peers_where(|p| p.time_offset > TIME_OFFSET_LIMIT_SECONDS));
        self.timeoffset_minus10s
            .set(peers_where(|p| p.time_offset < -TIME_OFFSET_LIMIT_SECONDS));
        self.bip152_hb_to.set(peers_where(|p| p.bip152_hb_to));
        self.bip152_hb_from.set(peers_where(|p| p.bip152_hb_from));
        self.ping_wait_over_5s
            .set(peers_where(|p| p.ping_wait > PING_WAIT_LIMIT_SECONDS));

        self.inflight_block_peers
            .set(peers_where(|p| !p.inflight.is_empty()));
        let heights: BTreeSet<u64> = peers
            .iter()
            .flat_map(|p| p.inflight.iter().copied())
            .collect();
        self.inflight_distinct_heights.set(count(heights.len()));

        // Spy nodes that never exchange a `tx` message are not counted as relaying.
        self.sub1satvb_relay.set(peers_where(|p| {
            p.relay_transactions
                && p.minfeefilter < ONE_SAT_PER_VBYTE
                && (p.bytes_received_per_message.contains_key("tx")
                    || p.bytes_sent_per_message.contains_key("tx"))
        }));
    }

    fn observe_groups(&self, peers: &[PeerInfo]) {
        set_per_value(
            &self.by_transport,
            peers.iter().map(|p| p.transport_protocol_type.as_str()),
        );
        set_per_value(&self.by_network, peers.iter().map(|p| p.network.as_str()));
        set_per_value(
            &self.by_connection_type,
            peers.iter().map(|p| p.connection_type.as_str()),
        );
        set_per_value(&self.by_protocol_version, peers.iter().map(|p| p.version));
        // 0 means "no ASMap loaded", not an AS.
        set_per_value(
            &self.by_asn,
            peers.iter().map(|p| p.mapped_as).filter(|asn| *asn != 0),
        );
    }

    fn observe_pings(&self, peers: &[PeerInfo]) {
        // A ping of 0 means "not measured yet", so only positive values count (NaN never
        // passes `> 0`). Seconds in the event, milliseconds in the gauges.
        let millis = |seconds: fn(&PeerInfo) -> f64| -> Vec<f64> {
            peers
                .iter()
                .map(seconds)
                .filter(|s| *s > 0.0)
                .map(|s| s * 1000.0)
                .collect()
        };
        let mut pings = millis(|p| p.ping_time);
        let mut min_pings = millis(|p| p.minimum_ping);
        self.ping_mean.set(mean(&pings).unwrap_or(0.0));
        self.ping_median.set(median(&mut pings).unwrap_or(0.0));
        self.minping_mean.set(mean(&min_pings).unwrap_or(0.0));
        self.minping_median
            .set(median(&mut min_pings).unwrap_or(0.0));
    }

    /// Distinct first-two-octet prefixes over inbound IPv4 peers, divided by their number;
    /// left as it was when there are none (no 0/0).
    fn observe_inbound_ipv4_diversity(&self, peers: &[PeerInfo], ips: &[String]) {
        let mut prefixes = BTreeSet::new();
        let mut inbound_ipv4 = 0usize;
        for (peer, ip) in peers.iter().zip(ips) {
            if !(peer.inbound && peer.network.eq_ignore_ascii_case("ipv4")) {
                continue;
            }
            // An IP that is not four dot-separated parts is skipped, not counted.
            if let [a, b, _, _] = ip.split('.').collect::<Vec<_>>()[..] {
                inbound_ipv4 += 1;
                prefixes.insert((a, b));
            }
        }
        if inbound_ipv4 > 0 {
            self.inbound_ipv4_diversity
                .set(prefixes.len() as f64 / inbound_ipv4 as f64);
        }
    }

    /// Left as they were when no peer relays transactions.
    fn observe_invtosend(&self, peers: &[PeerInfo]) {
        let values: Vec<u64> = peers
            .iter()
            .filter(|p| p.relay_transactions)
            .map(|p| p.inv_to_send)
            .collect();
        let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
            return;
        };
        let s = &self.invtosend;
        s.sum.set(as_i64(saturating_sum(values.iter().copied())));
        s.max.set(as_i64(max));
        s.min.set(as_i64(min));
        let mut floats: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        s.mean.set(mean(&floats).unwrap_or(0.0));
        s.median.set(median(&mut floats).unwrap_or(0.0));
    }

    /// Left as they were when no peer reports a positive load (NaN never passes `> 0`).
    fn observe_cpuload(&self, peers: &[PeerInfo]) {
        let mut loads: Vec<f64> = peers
            .iter()
            .map(|p| p.cpu_load)
            .filter(|load| *load > 0.0)
            .collect();
        loads.sort_by(f64::total_cmp);
        let (Some(&min), Some(&max)) = (loads.first(), loads.last()) else {
            return;
        };
        let s = &self.cpuload;
        s.sum.set(loads.iter().sum());
        s.max.set(max);
        s.min.set(min);
        s.mean.set(mean(&loads).unwrap_or(0.0));
        s.median.set(median(&mut loads).unwrap_or(0.0));
    }
}

/// Family reset, then one series per distinct key (as decimal or text) with the number of
/// times it occurs.
fn set_per_value<K: Ord + ToString>(family: &IntGaugeVec, keys: impl Iterator<Item = K>) {
    let mut counts: BTreeMap<K, i64> = BTreeMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    family.reset();
    for (key, n) in counts {
        family.with_label_values(&[key.to_string()]).set(n);
    }
}
