//! Hand-built events through `RpcMetrics`, checked on the text exposition the dashboards
//! scrape.

use std::collections::HashMap;

use prometheus::{Registry, TextEncoder};

use super::RpcMetrics;
use crate::event::proto::rpc_extractor::rpc::RpcEvent;
use crate::event::proto::rpc_extractor::{
    AddrManInfo, AddrManInfoNetwork, Addrman, AddrmanBucket, AddrmanEntry, BlockchainInfo,
    ChainTxStats, EstimateSmartFee, FeeEstimateMode, MemoryInfo, MempoolInfo, NetTotals,
    NetworkInfo, NetworkInfoLocalAddress, NetworkInfoNetwork, OrphanTx, OrphanTxs, PeerInfo,
    PeerInfos,
};
use crate::tools::metrics::iplists::{IpListFiles, IpLists};
use crate::tools::metrics::register::Register;

/// Every family of metrics.md §4.6, without the `peerobserver_rpc_` prefix.
const SPEC_FAMILIES: [&str; 108] = [
    "peer_info_list_peers_gmax_ban",
    "peer_info_list_peers_monero_ban",
    "peer_info_list_peers_tor_exit",
    "peer_info_list_peers_linkinglion",
    "peer_info_list_peers_linkinglion_pre2026",
    "peer_info_list_peers_bitprojects",
    "peer_info_addr_ratelimited_peers",
    "peer_info_addr_ratelimited_total",
    "peer_info_addr_processed_total",
    "peer_info_timeoffset_plus10s",
    "peer_info_timeoffset_minus10s",
    "peer_info_bip152_highbandwidth_to",
    "peer_info_bip152_highbandwidth_from",
    "peer_info_num_peers",
    "peer_info_addr_relay_enabled_peers",
    "peer_info_inflight_block_peers",
    "peer_info_inflight_distinct_blocks_heights",
    "peer_info_ping_wait_larger_5_seconds_block_peers",
    "peer_info_transport_protocol_type_peers",
    "peer_info_network_peers",
    "peer_info_connection_type_peers",
    "peer_info_protocol_version_peers",
    "peer_info_asn_peers",
    "peer_info_ping_median",
    "peer_info_ping_mean",
    "peer_info_minping_median",
    "peer_info_minping_mean",
    "peer_info_sub1satvb_relay",
    "peer_info_connection_divserity_inbound_ipv4",
    "peer_info_invtosend_sum",
    "peer_info_invtosend_max",
    "peer_info_invtosend_median",
    "peer_info_invtosend_mean",
    "peer_info_invtosend_min",
    "peer_info_cpuload_sum",
    "peer_info_cpuload_max",
    "peer_info_cpuload_median",
    "peer_info_cpuload_mean",
    "peer_info_cpuload_min",
    "mempoolinfo_mempool_loaded",
    "mempoolinfo_transaction_count",
    "mempoolinfo_transaction_fees",
    "mempoolinfo_transaction_vbyte",
    "mempoolinfo_memory_usage",
    "mempoolinfo_memory_max",
    "mempoolinfo_min_mempool_feerate",
    "mempoolinfo_min_relay_tx_feerate",
    "mempoolinfo_incremental_relay_feerate",
    "uptime",
    "nettotals_total_bytes_received",
    "nettotals_total_bytes_sent",
    "memoryinfo_locked_used",
    "memoryinfo_locked_free",
    "memoryinfo_locked_total",
    "memoryinfo_locked_locked",
    "memoryinfo_locked_chunks_used",
    "memoryinfo_locked_chunks_free",
    "addrmaninfo",
    "chaintxstats_tx_count",
    "chaintxstats_window_final_block_height",
    "chaintxstats_window_block_count",
    "chaintxstats_window_tx_count",
    "chaintxstats_window_interval",
    "chaintxstats_tx_rate",
    "networkinfo_version",
    "networkinfo_protocol_version",
    "networkinfo_time_offset",
    "networkinfo_connections",
    "networkinfo_connections_in",
    "networkinfo_connections_out",
    "networkinfo_network_active",
    "networkinfo_relay_fee",
    "networkinfo_incremental_fee",
    "networkinfo_warnings",
    "networkinfo_local_addresses_count",
    "networkinfo_networks",
    "blockchaininfo_blocks",
    "blockchaininfo_headers",
    "blockchaininfo_difficulty",
    "blockchaininfo_verification_progress",
    "blockchaininfo_initial_block_download",
    "blockchaininfo_size_on_disk",
    "blockchaininfo_pruned",
    "blockchaininfo_prune_height",
    "blockchaininfo_prune_target_size",
    "blockchaininfo_warnings",
    "getorphantxs_count",
    "getorphantxs_bytes",
    "getorphantxs_vsize",
    "getorphantxs_weight",
    "getorphantxs_added_bytes",
    "getorphantxs_added_count",
    "getorphantxs_removed_bytes",
    "getorphantxs_removed_count",
    "getorphantxs_from_mean",
    "getorphantxs_from_min",
    "getorphantxs_from_max",
    "getrawaddrman_ports",
    "getrawaddrman_service_bits",
    "getrawaddrman_services",
    "getrawaddrman_distinct_asns",
    "getrawaddrman_distinct_sources",
    "getrawaddrman_distinct_source_asn",
    "getrawaddrman_added_entry",
    "getrawaddrman_replaced_entry",
    "getrawaddrman_changed_services",
    "getrawaddrman_changed_timestamps",
    "estimatesmartfee_feerate",
];

/// The families of [`SPEC_FAMILIES`] that are counters; all others are gauges.
const SPEC_COUNTERS: [&str; 8] = [
    "getorphantxs_added_bytes",
    "getorphantxs_added_count",
    "getorphantxs_removed_bytes",
    "getorphantxs_removed_count",
    "getrawaddrman_added_entry",
    "getrawaddrman_replaced_entry",
    "getrawaddrman_changed_services",
    "getrawaddrman_changed_timestamps",
];

/// A registry with `RpcMetrics` in it, fed one event at a time.
struct Harness {
    registry: Registry,
    metrics: RpcMetrics,
    lists: IpLists,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_lists(IpLists::default())
    }

    fn with_lists(lists: IpLists) -> Harness {
        let registry = Registry::new();
        let metrics = RpcMetrics::new(&Register::new(&registry)).expect("families register once");
        Harness {
            registry,
            metrics,
            lists,
        }
    }

    fn feed(&mut self, event: RpcEvent) {
        self.metrics.observe(&event, &self.lists);
    }

    /// The text exposition, as scraped.
    fn text(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("encodes")
    }
}

/// Each of `lines` is a whole line of `text`.
#[track_caller]
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing line `{line}` in:\n{text}"
        );
    }
}

/// No line of `text` starts with any of `prefixes`.
#[track_caller]
fn assert_no_lines(text: &str, prefixes: &[&str]) {
    for prefix in prefixes {
        let found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        assert!(
            found.is_empty(),
            "unexpected lines for `{prefix}`: {found:?}"
        );
    }
}

/// A peer with the fields the label families read; everything else default.
fn peer(address: &str, network: &str, connection_type: &str) -> PeerInfo {
    PeerInfo {
        address: address.to_string(),
        network: network.to_string(),
        connection_type: connection_type.to_string(),
        inbound: connection_type == "inbound",
        transport_protocol_type: "v1".to_string(),
        version: 70016,
        ..PeerInfo::default()
    }
}

fn peer_infos(infos: Vec<PeerInfo>) -> RpcEvent {
    RpcEvent::PeerInfos(PeerInfos { infos })
}

/// Three peers on different networks and connection types: an inbound LinkingLion peer
/// that relays below 1 sat/vB, an outbound relay peer with a stuck ping, and a
/// block-relay-only IPv6 peer in LinkingLion's pre-2026 prefix without a ping.
fn three_peers() -> Vec<PeerInfo> {
    vec![
        PeerInfo {
            transport_protocol_type: "v2".to_string(),
            mapped_as: 3320,
            ping_time: 0.5,
            minimum_ping: 0.125,
            addr_rate_limited: 5,
            addr_processed: 100,
            addr_relay_enabled: true,
            relay_transactions: true,
            minfeefilter: 0.000_001,
            bytes_received_per_message: HashMap::from([("tx".to_string(), 100)]),
            inv_to_send: 10,
            inflight: vec![800_000, 800_001],
            time_offset: 11,
            bip152_hb_from: true,
            cpu_load: 0.5,
            ..peer("143.20.137.5:8333", "ipv4", "inbound")
        },
        PeerInfo {
            ping_time: 0.25,
            minimum_ping: 0.0625,
            ping_wait: 6.0,
            addr_processed: 50,
            relay_transactions: true,
            minfeefilter: 0.0001,
            bytes_sent_per_message: HashMap::from([("tx".to_string(), 1)]),
            inv_to_send: 30,
            inflight: vec![800_001],
            time_offset: -11,
            bip152_hb_to: true,
            cpu_load: f64::NAN,
            ..peer("1.2.3.4:8333", "ipv4", "outbound-full-relay")
        },
        PeerInfo {
            transport_protocol_type: "v2".to_string(),
            version: 70015,
            mapped_as: 3320,
            addr_rate_limited: 2,
            inv_to_send: 1000,
            cpu_load: 1.5,
            ..peer("[2604:d500:4:1::2]:8333", "ipv6", "block-relay-only")
        },
    ]
}

/// The gmax list holds the LinkingLion peer, the bitprojects list the outbound peer.
fn loaded_lists(dir: &std::path::Path) -> IpLists {
    let gmax = dir.join("gmax.txt");
    let bitprojects = dir.join("bitprojects.txt");
    std::fs::write(&gmax, "143.20.137.5\n").expect("writes");
    std::fs::write(&bitprojects, "1.2.3.4\n").expect("writes");
    IpLists::load(&IpListFiles {
        gmax: Some(gmax),
        bitprojects: Some(bitprojects),
        ..IpListFiles::default()
    })
    .expect("loads")
}

#[test]
fn peer_infos_count_group_and_summarise_the_peer_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::with_lists(loaded_lists(dir.path()));
    h.feed(peer_infos(three_peers()));
    let text = h.text();
    assert_lines(
        &text,
        &[
            "peerobserver_rpc_peer_info_num_peers 3",
            // Family resets: one series per value present.
            r#"peerobserver_rpc_peer_info_network_peers{network="ipv4"} 2"#,
            r#"peerobserver_rpc_peer_info_network_peers{network="ipv6"} 1"#,
            r#"peerobserver_rpc_peer_info_connection_type_peers{connection_type="inbound"} 1"#,
            r#"peerobserver_rpc_peer_info_connection_type_peers{connection_type="outbound-full-relay"} 1"#,
            r#"peerobserver_rpc_peer_info_connection_type_peers{connection_type="block-relay-only"} 1"#,
            r#"peerobserver_rpc_peer_info_transport_protocol_type_peers{transport_protocol_type="v1"} 1"#,
            r#"peerobserver_rpc_peer_info_transport_protocol_type_peers{transport_protocol_type="v2"} 2"#,
            r#"peerobserver_rpc_peer_info_protocol_version_peers{protocol_version="70015"} 1"#,
            r#"peerobserver_rpc_peer_info_protocol_version_peers{protocol_version="70016"} 2"#,
            r#"peerobserver_rpc_peer_info_asn_peers{ASN="3320"} 2"#,
            // IP lists: built-in prefixes, loaded files, and lists not loaded (0).
            "peerobserver_rpc_peer_info_list_peers_linkinglion 1",
            "peerobserver_rpc_peer_info_list_peers_linkinglion_pre2026 1",
            "peerobserver_rpc_peer_info_list_peers_gmax_ban 1",
            "peerobserver_rpc_peer_info_list_peers_monero_ban 0",
            "peerobserver_rpc_peer_info_list_peers_tor_exit 0",
            r#"peerobserver_rpc_peer_info_list_peers_bitprojects{direction="inbound"} 0"#,
            r#"peerobserver_rpc_peer_info_list_peers_bitprojects{direction="outbound"} 1"#,
            // Counts and sums.
            "peerobserver_rpc_peer_info_addr_ratelimited_peers 2",
            "peerobserver_rpc_peer_info_addr_ratelimited_total 7",
            "peerobserver_rpc_peer_info_addr_processed_total 150",
            "peerobserver_rpc_peer_info_addr_relay_enabled_peers 1",
            "peerobserver_rpc_peer_info_timeoffset_plus10s 1",
            "peerobserver_rpc_peer_info_timeoffset_minus10s 1",
            "peerobserver_rpc_peer_info_bip152_highbandwidth_to 1",
            "peerobserver_rpc_peer_info_bip152_highbandwidth_from 1",
            "peerobserver_rpc_peer_info_inflight_block_peers 2",
            "peerobserver_rpc_peer_info_inflight_distinct_blocks_heights 2",
            "peerobserver_rpc_peer_info_ping_wait_larger_5_seconds_block_peers 1",
            "peerobserver_rpc_peer_info_sub1satvb_relay 1",
            "peerobserver_rpc_peer_info_connection_divserity_inbound_ipv4 1",
            // Pings in ms over peers with one (the third has none).
            "peerobserver_rpc_peer_info_ping_median 375",
            "peerobserver_rpc_peer_info_ping_mean 375",
            "peerobserver_rpc_peer_info_minping_median 93.75",
            "peerobserver_rpc_peer_info_minping_mean 93.75",
            // inv_to_send over the two relaying peers only.
            "peerobserver_rpc_peer_info_invtosend_sum 40",
            "peerobserver_rpc_peer_info_invtosend_max 30",
            "peerobserver_rpc_peer_info_invtosend_min 10",
            "peerobserver_rpc_peer_info_invtosend_median 20",
            "peerobserver_rpc_peer_info_invtosend_mean 20",
            // cpu_load: NaN dropped, 0.5 and 1.5 left.
            "peerobserver_rpc_peer_info_cpuload_sum 2",
            "peerobserver_rpc_peer_info_cpuload_max 1.5",
            "peerobserver_rpc_peer_info_cpuload_min 0.5",
            "peerobserver_rpc_peer_info_cpuload_mean 1",
            "peerobserver_rpc_peer_info_cpuload_median 1",
        ],
    );
    // Unmapped peers (AS 0) are not a series.
    assert_no_lines(&text, &[r#"peerobserver_rpc_peer_info_asn_peers{ASN="0"}"#]);
}

#[test]
fn peer_infos_reset_vanished_values_and_keep_the_not_updated_families() {
    let mut h = Harness::new();
    h.feed(peer_infos(three_peers()));
    // One outbound onion peer: no ping, no tx relay, no CPU load, no ASN.
    h.feed(peer_infos(vec![peer("abc.onion:8333", "onion", "manual")]));
    let text = h.text();
    assert_lines(
        &text,
        &[
            "peerobserver_rpc_peer_info_num_peers 1",
            r#"peerobserver_rpc_peer_info_network_peers{network="onion"} 1"#,
            r#"peerobserver_rpc_peer_info_connection_type_peers{connection_type="manual"} 1"#,
            "peerobserver_rpc_peer_info_list_peers_linkinglion 0",
            r#"peerobserver_rpc_peer_info_list_peers_bitprojects{direction="inbound"} 0"#,
            r#"peerobserver_rpc_peer_info_list_peers_bitprojects{direction="outbound"} 0"#,
            "peerobserver_rpc_peer_info_ping_median 0",
            "peerobserver_rpc_peer_info_minping_mean 0",
            // Not updated when their set is empty: the first event's values stay.
            "peerobserver_rpc_peer_info_invtosend_sum 40",
            "peerobserver_rpc_peer_info_cpuload_sum 2",
            "peerobserver_rpc_peer_info_connection_divserity_inbound_ipv4 1",
        ],
    );
    assert_no_lines(
        &text,
        &[
            r#"peerobserver_rpc_peer_info_network_peers{network="ipv4"}"#,
            r#"peerobserver_rpc_peer_info_network_peers{network="ipv6"}"#,
            r#"peerobserver_rpc_peer_info_connection_type_peers{connection_type="inbound"}"#,
            r#"peerobserver_rpc_peer_info_transport_protocol_type_peers{transport_protocol_type="v2"}"#,
            // Reset with nothing to set: the whole family is gone.
            "peerobserver_rpc_peer_info_asn_peers",
        ],
    );
}

#[test]
fn peer_infos_survive_malformed_and_extreme_values() {
    let mut h = Harness::new();
    let odd = |address: &str, network: &str| PeerInfo {
        ping_time: f64::NAN,
        minimum_ping: f64::INFINITY,
        cpu_load: f64::NEG_INFINITY,
        addr_processed: u64::MAX,
        relay_transactions: true,
        inv_to_send: u64::MAX,
        ..peer(address, network, "inbound")
    };
    h.feed(peer_infos(vec![
        odd("", ""),
        odd("not an address", "ipv4"),
        odd("[:::]", "ipv6"),
        odd("10.1.1.1:1", "IPv4"),
        odd("10.1.2.2:1", "ipv4"),
        odd("10.2.0.1:1", "IPV4"),
        odd("no.t.ip:8333", "ipv4"),
    ]));
    let text = h.text();
    assert_lines(
        &text,
        &[
            "peerobserver_rpc_peer_info_num_peers 7",
            // Sums saturate and clamp to i64::MAX (the text format prints it as an f64).
            "peerobserver_rpc_peer_info_addr_processed_total 9223372036854776000",
            "peerobserver_rpc_peer_info_invtosend_sum 9223372036854776000",
            // NaN pings are no pings; an infinite one is kept (the `prometheus` crate prints
            // it as `inf`, which Prometheus' parser accepts).
            "peerobserver_rpc_peer_info_ping_median 0",
            "peerobserver_rpc_peer_info_minping_median inf",
            // Network matched case-insensitively; only IPs with four dot parts count:
            // 10.1 and 10.2 over three peers.
            "peerobserver_rpc_peer_info_connection_divserity_inbound_ipv4 0.6666666666666666",
        ],
    );
    // No positive CPU load: not updated.
    assert_lines(&text, &["peerobserver_rpc_peer_info_cpuload_sum 0"]);

    h.feed(peer_infos(Vec::new()));
    let text = h.text();
    assert_lines(&text, &["peerobserver_rpc_peer_info_num_peers 0"]);
    assert_no_lines(&text, &["peerobserver_rpc_peer_info_network_peers"]);
}

#[test]
fn node_snapshots_are_set_as_carried() {
    let mut h = Harness::new();
    h.feed(RpcEvent::MempoolInfo(MempoolInfo {
        loaded: true,
        size: 1500,
        bytes: 600_000,
        usage: 2_000_000,
        total_fee: 0.125,
        max_mempool: 300_000_000,
        mempoolminfee: 1.0,
        minrelaytxfee: 0.1,
        incrementalrelayfee: 0.1,
        ..MempoolInfo::default()
    }));
    h.feed(RpcEvent::Uptime(3600));
    h.feed(RpcEvent::NetTotals(NetTotals {
        total_bytes_received: 10,
        total_bytes_sent: u64::MAX,
        ..NetTotals::default()
    }));
    h.feed(RpcEvent::MemoryInfo(MemoryInfo {
        used: 1,
        free: 2,
        total: 3,
        locked: 4,
        chunks_used: 5,
        chunks_free: 6,
    }));
    h.feed(RpcEvent::AddrmanInfo(AddrManInfo {
        networks: HashMap::from([(
            "ipv4".to_string(),
            AddrManInfoNetwork {
                new: 10,
                tried: 5,
                total: 15,
            },
        )]),
    }));
    h.feed(RpcEvent::NetworkInfo(NetworkInfo {
        version: 290_000,
        protocol_version: 70016,
        time_offset: -2,
        connections: 10,
        connections_in: 2,
        connections_out: 8,
        network_active: true,
        relay_fee: 1.0,
        incremental_fee: 0.5,
        warnings: vec!["a".to_string(), "b".to_string()],
        local_addresses: vec![NetworkInfoLocalAddress::default(); 3],
        networks: vec![
            NetworkInfoNetwork {
                name: "ipv4".to_string(),
                limited: false,
                reachable: true,
                ..NetworkInfoNetwork::default()
            },
            NetworkInfoNetwork {
                name: "onion".to_string(),
                limited: true,
                reachable: false,
                ..NetworkInfoNetwork::default()
            },
        ],
        ..NetworkInfo::default()
    }));
    h.feed(RpcEvent::BlockchainInfo(BlockchainInfo {
        blocks: 100,
        headers: 101,
        difficulty: 4.5,
        verificationprogress: 0.5,
        initialblockdownload: true,
        size_on_disk: 12_345,
        pruned: true,
        prune_height: 50,
        prune_target_size: 1000,
        warnings: vec!["w".to_string()],
        ..BlockchainInfo::default()
    }));
    let text = h.text();
    assert_lines(
        &text,
        &[
            "peerobserver_rpc_mempoolinfo_mempool_loaded 1",
            "peerobserver_rpc_mempoolinfo_transaction_count 1500",
            "peerobserver_rpc_mempoolinfo_transaction_fees 0.125",
            "peerobserver_rpc_mempoolinfo_transaction_vbyte 600000",
            "peerobserver_rpc_mempoolinfo_memory_usage 2000000",
            "peerobserver_rpc_mempoolinfo_memory_max 300000000",
            "peerobserver_rpc_mempoolinfo_min_mempool_feerate 1",
            "peerobserver_rpc_mempoolinfo_min_relay_tx_feerate 0.1",
            "peerobserver_rpc_mempoolinfo_incremental_relay_feerate 0.1",
            "peerobserver_rpc_uptime 3600",
            "peerobserver_rpc_nettotals_total_bytes_received 10",
            "peerobserver_rpc_nettotals_total_bytes_sent 9223372036854776000",
            "peerobserver_rpc_memoryinfo_locked_used 1",
            "peerobserver_rpc_memoryinfo_locked_free 2",
            "peerobserver_rpc_memoryinfo_locked_total 3",
            "peerobserver_rpc_memoryinfo_locked_locked 4",
            "peerobserver_rpc_memoryinfo_locked_chunks_used 5",
            "peerobserver_rpc_memoryinfo_locked_chunks_free 6",
            r#"peerobserver_rpc_addrmaninfo{network="ipv4",table="new"} 10"#,
            r#"peerobserver_rpc_addrmaninfo{network="ipv4",table="tried"} 5"#,
            r#"peerobserver_rpc_addrmaninfo{network="ipv4",table="total"} 15"#,
            "peerobserver_rpc_networkinfo_version 290000",
            "peerobserver_rpc_networkinfo_protocol_version 70016",
            "peerobserver_rpc_networkinfo_time_offset -2",
            "peerobserver_rpc_networkinfo_connections 10",
            "peerobserver_rpc_networkinfo_connections_in 2",
            "peerobserver_rpc_networkinfo_connections_out 8",
            "peerobserver_rpc_networkinfo_network_active 1",
            "peerobserver_rpc_networkinfo_relay_fee 1",
            "peerobserver_rpc_networkinfo_incremental_fee 0.5",
            "peerobserver_rpc_networkinfo_warnings 2",
            "peerobserver_rpc_networkinfo_local_addresses_count 3",
            r#"peerobserver_rpc_networkinfo_networks{network="ipv4",property="limited"} 0"#,
            r#"peerobserver_rpc_networkinfo_networks{network="ipv4",property="reachable"} 1"#,
            r#"peerobserver_rpc_networkinfo_networks{network="onion",property="limited"} 1"#,
            r#"peerobserver_rpc_networkinfo_networks{network="onion",property="reachable"} 0"#,
            "peerobserver_rpc_blockchaininfo_blocks 100",
            "peerobserver_rpc_blockchaininfo_headers 101",
            "peerobserver_rpc_blockchaininfo_difficulty 4.5",
            "peerobserver_rpc_blockchaininfo_verification_progress 0.5",
            "peerobserver_rpc_blockchaininfo_initial_block_download 1",
            "peerobserver_rpc_blockchaininfo_size_on_disk 12345",
            "peerobserver_rpc_blockchaininfo_pruned 1",
            "peerobserver_rpc_blockchaininfo_prune_height 50",
            "peerobserver_rpc_blockchaininfo_prune_target_size 1000",
            "peerobserver_rpc_blockchaininfo_warnings 1",
        ],
    );
}

#[test]
fn chain_tx_stats_set_window_fields_only_when_present() {
    let mut h = Harness::new();
    let stats = |window: Option<(u32, u32, f64)>| {
        RpcEvent::ChainTxStats(ChainTxStats {
            tx_count: 1000,
            window_final_block_height: 200,
            window_block_count: 30,
            window_tx_count: window.map(|w| w.0),
            window_interval: window.map(|w| w.1),
            tx_rate: window.map(|w| w.2),
            ..ChainTxStats::default()
        })
    };
    h.feed(stats(None));
    assert_lines(
        &h.text(),
        &[
            "peerobserver_rpc_chaintxstats_tx_count 1000",
            "peerobserver_rpc_chaintxstats_window_final_block_height 200",
            "peerobserver_rpc_chaintxstats_window_block_count 30",
            "peerobserver_rpc_chaintxstats_window_tx_count 0",
            "peerobserver_rpc_chaintxstats_tx_rate 0",
        ],
    );
    h.feed(stats(Some((500, 18_000, 0.25))));
    h.feed(stats(None));
    assert_lines(
        &h.text(),
        &[
            "peerobserver_rpc_chaintxstats_window_tx_count 500",
            "peerobserver_rpc_chaintxstats_window_interval 18000",
            "peerobserver_rpc_chaintxstats_tx_rate 0.25",
        ],
    );
}

fn orphan(wtxid: &str, bytes: u64, from: &[u64]) -> OrphanTx {
    OrphanTx {
        wtxid: wtxid.to_string(),
        bytes,
        vsize: bytes / 2,
        weight: bytes * 2,
        from: from.to_vec(),
        ..OrphanTx::default()
    }
}

#[test]
fn orphan_counters_compare_with_the_previous_orphanage() {
    let mut h = Harness::new();
    let orphans = |orphans: Vec<OrphanTx>| RpcEvent::OrphanTxs(OrphanTxs { orphans });

    // The first event counts everything as added.
    h.feed(orphans(vec![
        orphan("a", 100, &[1, 2]),
        orphan("b", 200, &[3]),
    ]));
    assert_lines(
        &h.text(),
        &[
            "peerobserver_rpc_getorphantxs_count 2",
            "peerobserver_rpc_getorphantxs_bytes 300",
            "peerobserver_rpc_getorphantxs_vsize 150",
            "peerobserver_rpc_getorphantxs_weight 600",
            "peerobserver_rpc_getorphantxs_added_count 2",
            "peerobserver_rpc_getorphantxs_added_bytes 300",
            "peerobserver_rpc_getorphantxs_removed_count 0",
            "peerobserver_rpc_getorphantxs_removed_bytes 0",
            "peerobserver_rpc_getorphantxs_from_mean 1.5",
            "peerobserver_rpc_getorphantxs_from_min 1",
            "peerobserver_rpc_getorphantxs_from_max 2",
        ],
    );

    // `a` went away, `c` is new, `b` stays.
    h.feed(orphans(vec![orphan("b", 200, &[3]), orphan("c", 50, &[])]));
    assert_lines(
        &h.text(),
        &[
            "peerobserver_rpc_getorphantxs_count 2",
            "peerobserver_rpc_getorphantxs_added_count 3",
            "peerobserver_rpc_getorphantxs_added_bytes 350",
            "peerobserver_rpc_getorphantxs_removed_count 1",
            "peerobserver_rpc_getorphantxs_removed_bytes 100",
            "peerobserver_rpc_getorphantxs_from_min 0",
        ],
    );

    // An empty orphanage: everything removed; upstream's NaN mean and i64::MAX minimum.
    h.feed(orphans(Vec::new()));
    assert_lines(
        &h.text(),
        &[
            "peerobserver_rpc_getorphantxs_count 0",
            "peerobserver_rpc_getorphantxs_bytes 0",
            "peerobserver_rpc_getorphantxs_added_count 3",
            "peerobserver_rpc_getorphantxs_removed_count 3",
            "peerobserver_rpc_getorphantxs_removed_bytes 350",
            "peerobserver_rpc_getorphantxs_from_mean NaN",
            "peerobserver_rpc_getorphantxs_from_min 9223372036854776000",
            "peerobserver_rpc_getorphantxs_from_max 0",
        ],
    );
}

fn entry(address: &str, port: u32, services: u64, time: i64) -> AddrmanEntry {
    AddrmanEntry {
        address: address.to_string(),
        port,
        services,
        time,
        source: "9.9.9.9".to_string(),
        ..AddrmanEntry::default()
    }
}

/// Buckets from (bucket, [(position, entry)]).
fn table(buckets: Vec<(u32, Vec<(u32, AddrmanEntry)>)>) -> HashMap<u32, AddrmanBucket> {
    buckets
        .into_iter()
        .map(|(bucket, entries)| {
            let entries = entries.into_iter().collect();
            (bucket, AddrmanBucket { entries })
        })
        .collect()
}

#[test]
fn addrman_breaks_down_tables_and_counts_changes_from_the_second_event() {
    let mut h = Harness::new();
    let first = Addrman {
        new: table(vec![(
            0,
            vec![
                (
                    0,
                    AddrmanEntry {
                        mapped_as: Some(1),
                        ..entry("1.1.1.1", 8333, 9, 100)
                    },
                ),
                (1, entry("2.2.2.2", 18333, 1, 100)),
            ],
        )]),
        tried: table(vec![(
            5,
            vec![(
                0,
                AddrmanEntry {
                    source: "8.8.8.8".to_string(),
                    source_mapped_as: Some(7),
                    ..entry("3.3.3.3", 8333, 1033, 50)
                },
            )],
        )]),
    };
    h.feed(RpcEvent::Addrman(first));
    let text = h.text();
    assert_lines(
        &text,
        &[
            r#"peerobserver_rpc_getrawaddrman_ports{port="8333",table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_ports{port="18333",table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_ports{port="8333",table="tried"} 1"#,
            // Services 9 = bits 0 and 3, labelled as index + 1.
            r#"peerobserver_rpc_getrawaddrman_service_bits{service_bit="1",table="new"} 2"#,
            r#"peerobserver_rpc_getrawaddrman_service_bits{service_bit="4",table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_service_bits{service_bit="11",table="tried"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_services{service="9",table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_services{service="1",table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_services{service="1033",table="tried"} 1"#,
            // AS 1 and an absent AS (counted as 0).
            r#"peerobserver_rpc_getrawaddrman_distinct_asns{table="new"} 2"#,
            r#"peerobserver_rpc_getrawaddrman_distinct_sources{table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_distinct_source_asn{table="new"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_distinct_asns{table="tried"} 1"#,
            r#"peerobserver_rpc_getrawaddrman_distinct_source_asn{table="tried"} 1"#,
        ],
    );
    // Nothing to compare with yet.
    assert_no_lines(
        &text,
        &[
            "peerobserver_rpc_getrawaddrman_added_entry",
            "peerobserver_rpc_getrawaddrman_replaced_entry",
            "peerobserver_rpc_getrawaddrman_changed_services",
            "peerobserver_rpc_getrawaddrman_changed_timestamps",
        ],
    );

    let second = Addrman {
        new: table(vec![
            // Same address with new services and time; another address in slot 1.
            (
                0,
                vec![
                    (0, entry("1.1.1.1", 8333, 1, 200)),
                    (1, entry("4.4.4.4", 8333, 1, 100)),
                ],
            ),
            // A whole new bucket adds all of its entries.
            (
                3,
                vec![
                    (0, entry("5.5.5.5", 8333, 1, 100)),
                    (7, entry("6.6.6.6", 8333, 1, 100)),
                ],
            ),
        ]),
        // The tried entry went away: counted nowhere.
        tried: HashMap::new(),
    };
    h.feed(RpcEvent::Addrman(second.clone()));
    let text = h.text();
    let changes = [
        r#"peerobserver_rpc_getrawaddrman_added_entry{table="new"} 2"#,
        r#"peerobserver_rpc_getrawaddrman_replaced_entry{table="new"} 1"#,
        r#"peerobserver_rpc_getrawaddrman_changed_services{table="new"} 1"#,
        r#"peerobserver_rpc_getrawaddrman_changed_timestamps{table="new"} 1"#,
        r#"peerobserver_rpc_getrawaddrman_added_entry{table="tried"} 0"#,
        r#"peerobserver_rpc_getrawaddrman_replaced_entry{table="tried"} 0"#,
        r#"peerobserver_rpc_getrawaddrman_changed_services{table="tried"} 0"#,
        r#"peerobserver_rpc_getrawaddrman_changed_timestamps{table="tried"} 0"#,
    ];
    assert_lines(&text, &changes);
    assert_lines(
        &text,
        &[
            r#"peerobserver_rpc_getrawaddrman_ports{port="8333",table="new"} 4"#,
            r#"peerobserver_rpc_getrawaddrman_distinct_asns{table="tried"} 0"#,
            r#"peerobserver_rpc_getrawaddrman_distinct_sources{table="tried"} 0"#,
        ],
    );
    // Family reset: series of the previous tables that no longer occur are gone.
    assert_no_lines(
        &text,
        &[
            r#"peerobserver_rpc_getrawaddrman_ports{port="18333""#,
            r#"peerobserver_rpc_getrawaddrman_ports{port="8333",table="tried"}"#,
            r#"peerobserver_rpc_getrawaddrman_services{service="9""#,
            r#"peerobserver_rpc_getrawaddrman_service_bits{service_bit="4""#,
        ],
    );

    // The same tables again: the counters do not move.
    h.feed(RpcEvent::Addrman(second));
    assert_lines(&h.text(), &changes);
}

#[test]
fn estimatesmartfee_sets_a_series_only_for_an_estimate() {
    let mut h = Harness::new();
    let estimate = |fee_rate: Option<f64>, requested_blocks: u32, mode: i32| {
        RpcEvent::EstimateSmartFee(EstimateSmartFee {
            fee_rate,
            blocks: requested_blocks,
            requested_blocks,
            mode,
            errors: Vec::new(),
        })
    };
    h.feed(estimate(Some(12.5), 6, FeeEstimateMode::Economical as i32));
    h.feed(estimate(
        Some(20.0),
        6,
        FeeEstimateMode::Conservative as i32,
    ));
    h.feed(estimate(None, 1, FeeEstimateMode::Conservative as i32));
    // A mode outside the enum reads as UNSET.
    h.feed(estimate(Some(3.0), 144, 99));
    let text = h.text();
    assert_lines(
        &text,
        &[
            r#"peerobserver_rpc_estimatesmartfee_feerate{mode="ECONOMICAL",target_block="6"} 12.5"#,
            r#"peerobserver_rpc_estimatesmartfee_feerate{mode="CONSERVATIVE",target_block="6"} 20"#,
            r#"peerobserver_rpc_estimatesmartfee_feerate{mode="UNSET",target_block="144"} 3"#,
        ],
    );
    assert_no_lines(
        &text,
        &[r#"peerobserver_rpc_estimatesmartfee_feerate{mode="CONSERVATIVE",target_block="1"}"#],
    );

    // No estimate later: the last one stays.
    h.feed(estimate(None, 6, FeeEstimateMode::Economical as i32));
    assert_lines(
        &h.text(),
        &[r#"peerobserver_rpc_estimatesmartfee_feerate{mode="ECONOMICAL",target_block="6"} 12.5"#],
    );
}

#[test]
fn every_spec_family_is_registered_with_its_type() {
    let mut h = Harness::new();
    // Unlabelled families appear at once; labelled ones need a series, so feed one event of
    // every arm (addrman twice: its counters start with the second event).
    h.feed(peer_infos(three_peers()));
    h.feed(RpcEvent::MempoolInfo(MempoolInfo::default()));
    h.feed(RpcEvent::Uptime(1));
    h.feed(RpcEvent::NetTotals(NetTotals::default()));
    h.feed(RpcEvent::MemoryInfo(MemoryInfo::default()));
    h.feed(RpcEvent::AddrmanInfo(AddrManInfo {
        networks: HashMap::from([("ipv4".to_string(), AddrManInfoNetwork::default())]),
    }));
    h.feed(RpcEvent::ChainTxStats(ChainTxStats::default()));
    h.feed(RpcEvent::NetworkInfo(NetworkInfo {
        networks: vec![NetworkInfoNetwork::default()],
        ..NetworkInfo::default()
    }));
    h.feed(RpcEvent::BlockchainInfo(BlockchainInfo::default()));
    h.feed(RpcEvent::OrphanTxs(OrphanTxs::default()));
    let addrman = Addrman {
        new: table(vec![(0, vec![(0, entry("1.1.1.1", 8333, 1, 1))])]),
        tried: HashMap::new(),
    };
    h.feed(RpcEvent::Addrman(addrman.clone()));
    h.feed(RpcEvent::Addrman(addrman));
    h.feed(RpcEvent::EstimateSmartFee(EstimateSmartFee {
        fee_rate: Some(1.0),
        ..EstimateSmartFee::default()
    }));

    let gathered: HashMap<String, prometheus::proto::MetricType> = h
        .registry
        .gather()
        .iter()
        .map(|family| (family.name().to_string(), family.get_field_type()))
        .collect();
    let mut expected: Vec<String> = SPEC_FAMILIES
        .iter()
        .map(|name| format!("peerobserver_rpc_{name}"))
        .collect();
    expected.sort();
    let mut names: Vec<String> = gathered.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names, expected,
        "registered families differ from metrics.md §4.6"
    );

    for name in SPEC_FAMILIES {
        let kind = if SPEC_COUNTERS.contains(&name) {
            prometheus::proto::MetricType::COUNTER
        } else {
            prometheus::proto::MetricType::GAUGE
        };
        assert_eq!(
            gathered.get(&format!("peerobserver_rpc_{name}")),
            Some(&kind),
            "type of {name}"
        );
    }
}
