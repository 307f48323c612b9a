//! The engine's families against hand-built events: exact exposition lines, the reset and cap
//! rules, and coverage of every family name in the spec.

use super::*;
use crate::event::proto::bitcoin_primitives::{address, inventory_item, Address, InventoryItem};
use crate::event::proto::ebpf_extractor::connection::{
    connection_event, ClosedConnection, Connection, ConnectionEvent, InboundConnection,
    MisbehavingConnection,
};
use crate::event::proto::ebpf_extractor::message::{
    message_event::Msg, Addr, Inv, MessageEvent, Metadata, Ping, Version,
};
use crate::event::proto::ebpf_extractor::validation::{
    validation_event, BlockConnected, ValidationEvent,
};
use crate::event::proto::ebpf_extractor::Ebpf;
use crate::event::proto::ipc_extractor::{ipc, BlockTip, Ipc};
use crate::event::proto::log_extractor::{log, BlockCheckedLog, Log};
use crate::event::proto::p2p_extractor::{p2p, P2p};

const NOW_MS: u64 = 1_700_000_000_000;

fn ebpf(event: EbpfEvent) -> Event {
    Event {
        timestamp: NOW_MS,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(event),
        })),
    }
}

fn message(addr: &str, inbound: bool, command: &str, size: u64, msg: Msg) -> Event {
    ebpf(EbpfEvent::Message(MessageEvent {
        meta: Metadata {
            peer_id: 7,
            addr: addr.into(),
            conn_type: 1,
            command: command.into(),
            inbound,
            size,
        },
        msg: Some(msg),
    }))
}

fn ipv4_entry(ip: &str, timestamp: u32, services: u64) -> Address {
    Address {
        timestamp,
        address: Some(address::Address::Ipv4(ip.into())),
        services,
        port: 8333,
    }
}

/// The exposition lines (no comments) of `engine`.
fn lines(engine: &MetricsEngine) -> Vec<String> {
    engine
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn assert_line(engine: &MetricsEngine, expected: &str) {
    let all = lines(engine);
    assert!(
        all.iter().any(|l| l == expected),
        "missing `{expected}`; have:\n{}",
        all.iter()
            .filter(|l| l.starts_with(expected.split(['{', ' ']).next().unwrap_or("")))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn engine() -> MetricsEngine {
    MetricsEngine::new(IpLists::default()).expect("families register")
}

#[test]
fn p2p_messages_fill_counts_bytes_addr_inv_ping_and_version_families() {
    let mut e = engine();
    let now = (NOW_MS / 1000) as u32;
    let addr = Addr {
        addresses: vec![
            // The sender announcing itself, 100 s old, NETWORK|WITNESS.
            ipv4_entry("203.0.113.7", now - 100, 0x409),
            // Its /24 neighbour, 10 s in the future.
            ipv4_entry("203.0.113.9", now + 10, 1),
        ],
    };
    e.observe_event(&message(
        "203.0.113.7:8333",
        true,
        "addr",
        61,
        Msg::Addr(addr),
    ));
    let inv = Inv {
        items: (0..36)
            .map(|_| InventoryItem {
                item: Some(inventory_item::Item::Wtx(vec![0; 32])),
            })
            .collect(),
    };
    e.observe_event(&message(
        "198.51.100.2:8333",
        false,
        "inv",
        1297,
        Msg::Inv(inv),
    ));
    e.observe_event(&message(
        "198.51.100.2:8333",
        true,
        "ping",
        8,
        Msg::Ping(Ping { value: 300 }),
    ));
    let version = Version {
        user_agent: "/Satoshi:30.0.0/".into(),
        ..Version::default()
    };
    e.observe_event(&message(
        "143.20.137.5:8333",
        true,
        "version",
        102,
        Msg::Version(version),
    ));

    assert_line(
        &e,
        r#"peerobserver_p2p_message_count{connection_type="1",direction="inbound",message="addr"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_message_bytes{connection_type="1",direction="outbound",message="inv"} 1297"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_addresses_bucket{direction="inbound",le="2"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_addresses_bucket{direction="inbound",le="1"} 0"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_timestamp_offset_seconds_sum{direction="inbound",timestamp_offset="past"} 100"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_timestamp_offset_seconds_sum{direction="inbound",timestamp_offset="future"} 10"#,
    );
    // 0x409 has bits 0, 3 and 10; 1 has bit 0: four observations, three of them <= 3.
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_services_bits_count{direction="inbound"} 4"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_services_bits_bucket{direction="inbound",le="3"} 3"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_addr_services{direction="inbound",services="1033"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_address_selfannouncements{direction="inbound",network="IPv4"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_address_subnetannouncements{direction="inbound",network="IPv4"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_inv_entries{direction="outbound",inv_type="WTx"} 36"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_invs_homogeneous{direction="outbound"} 1"#,
    );
    assert_line(&e, "peerobserver_p2p_invs_outbound_large 1");
    assert_line(&e, r#"peerobserver_p2p_ping_inbound_value{value="u16"} 1"#);
    // A LinkingLion sender: its agent is replaced and its traffic counted apart.
    assert_line(
        &e,
        r#"peerobserver_p2p_version_useragent{useragent="LinkingLion"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_p2p_message_count_linkinglion{direction="inbound",message="version"} 1"#,
    );
    assert_line(&e, r#"peerlab_metrics_messages{kind="netmsg"} 4"#);
}

#[test]
fn connections_blocks_log_p2p_extractor_and_ipc_events_fill_their_families() {
    let mut e = engine();
    let conn = |peer_id| Connection {
        peer_id,
        addr: "203.0.113.7:8333".into(),
        conn_type: 1,
        network: 1,
    };
    for (event, ts) in [
        (
            connection_event::Event::Inbound(InboundConnection {
                conn: conn(1),
                existing_connections: 5,
            }),
            NOW_MS,
        ),
        (
            connection_event::Event::Closed(ClosedConnection {
                conn: conn(1),
                time_established: NOW_MS / 1000 - 30,
            }),
            NOW_MS,
        ),
        (
            connection_event::Event::Misbehaving(MisbehavingConnection {
                id: 1,
                message: "header with invalid proof of work".into(),
            }),
            NOW_MS,
        ),
    ] {
        let mut event = ebpf(EbpfEvent::Connection(ConnectionEvent {
            event: Some(event),
        }));
        event.timestamp = ts;
        e.observe_event(&event);
    }
    e.observe_event(&ebpf(EbpfEvent::Validation(ValidationEvent {
        event: Some(validation_event::Event::BlockConnected(BlockConnected {
            hash: vec![0; 32],
            height: 105,
            transactions: 2,
            inputs: 1,
            sigops: 4,
            connection_time: 2_500_000,
        })),
    })));
    e.observe_event(&Event {
        timestamp: NOW_MS,
        peer_observer_event: Some(PeerObserverEvent::LogExtractor(Log {
            log_timestamp: 1,
            category: 26,
            threadname: "msghand".into(),
            log_event: Some(log::LogEvent::BlockCheckedLog(BlockCheckedLog {
                block_hash: "00".repeat(32),
                state: "bad-txnmrklroot".into(),
                debug_message: "hashMerkleRoot mismatch".into(),
            })),
            log_level: 3,
            log_line_bytes: 140,
        })),
    });
    e.observe_event(&Event {
        timestamp: NOW_MS,
        peer_observer_event: Some(PeerObserverEvent::P2pExtractor(P2p {
            p2p_event: Some(p2p::P2pEvent::FeefilterAnnouncement(1000)),
        })),
    });
    e.observe_event(&Event {
        timestamp: NOW_MS,
        peer_observer_event: Some(PeerObserverEvent::IpcExtractor(Ipc {
            ipc_event: Some(ipc::IpcEvent::BlockTip(BlockTip {
                height: 105,
                hash: vec![0; 32],
            })),
        })),
    });

    assert_line(&e, "peerobserver_conn_inbound 1");
    assert_line(&e, "peerobserver_conn_inbound_current 5");
    assert_line(&e, r#"peerobserver_conn_inbound_network{network="1"} 1"#);
    assert_line(&e, "peerobserver_conn_closed_age 30");
    assert_line(
        &e,
        r#"peerobserver_conn_misbehaving{id="1",misbehavingmessage="header with invalid proof of work"} 1"#,
    );
    assert_line(
        &e,
        "peerobserver_validation_block_connected_latest_height 105",
    );
    assert_line(
        &e,
        "peerobserver_validation_block_connected_latest_connection_time 2500",
    );
    assert_line(
        &e,
        r#"peerobserver_log_events{category="validation",level="debug"} 1"#,
    );
    assert_line(
        &e,
        r#"peerobserver_log_bytes{category="validation",level="debug"} 140"#,
    );
    assert_line(
        &e,
        r#"peerobserver_log_mutated_blocks{status="bad-txnmrklroot"} 1"#,
    );
    assert_line(&e, "peerobserver_p2pextractor_feefilter_last 1000");
    assert_line(&e, "peerobserver_ipc_block_tip_height 105");
    // Unlabelled families are there from the start.
    assert_line(&e, "peerobserver_mempool_added 0");
    assert_line(&e, "peerobserver_conn_outbound 0");
}

#[test]
fn counter_snapshots_become_pipeline_counters_across_restarts() {
    let mut e = engine();
    let snapshot = |published: u64, pid: u32| {
        let mut counters = ExtractorCounters {
            traced_pid: pid,
            published,
            ..ExtractorCounters::default()
        };
        counters.probes.insert(
            "net:inbound_message".into(),
            crate::event::counters::ProbeCounts {
                emitted: published,
                dropped: 1,
            },
        );
        counters.to_json()
    };
    let subject = "peerlab.stats.ebpf-extractor";
    e.observe_message(subject, &snapshot(10, 100));
    e.observe_message(subject, &snapshot(25, 100));
    assert_line(
        &e,
        r#"peerlab_extractor_published{component="ebpf-extractor"} 25"#,
    );
    assert_line(
        &e,
        r#"peerlab_extractor_restarts{component="ebpf-extractor"} 0"#,
    );
    // The node restarted (new pid), then the extractor (totals start again).
    e.observe_message(subject, &snapshot(30, 200));
    e.observe_message(subject, &snapshot(4, 200));
    assert_line(
        &e,
        r#"peerlab_extractor_published{component="ebpf-extractor"} 34"#,
    );
    assert_line(
        &e,
        r#"peerlab_extractor_restarts{component="ebpf-extractor"} 2"#,
    );
    assert_line(
        &e,
        r#"peerlab_tracepoint_dropped{component="ebpf-extractor",tracepoint="net:inbound_message"} 2"#,
    );
    // Garbage on an event subject and on a stats subject is counted, not fatal.
    e.observe_message("netmsg", b"\xff\xff not protobuf");
    e.observe_message(subject, b"{not json");
    assert_line(&e, "peerlab_metrics_undecodable 2");
}

#[test]
fn peer_chosen_label_values_are_capped_and_counted() {
    let registry = Registry::new();
    let r = Register::new(&registry);
    let capped = r
        .counter_vec("peerlab_metrics_series_capped", "capped", &["family"])
        .expect("register");
    let mut cap = SeriesCap::new(capped, 3);
    for agent in ["/a/", "/b/", "/c/", "/d/", "/a/"] {
        cap.admit("peerobserver_p2p_version_useragent", &[agent]);
    }
    let text = http::render(&registry);
    assert!(
        text.contains(
            r#"peerlab_metrics_series_capped{family="peerobserver_p2p_version_useragent"} 1"#
        ),
        "{text}"
    );
}

/// The metrics spec (`$PEERLAB_SPEC_DIR/metrics.md`, else the copy beside this crate).
fn spec() -> String {
    let dir = std::env::var_os("PEERLAB_SPEC_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec"),
        std::path::PathBuf::from,
    );
    std::fs::read_to_string(dir.join("metrics.md")).expect("the metrics spec")
}

/// Exactly the spec's §4 families are registered under `peerobserver_`, no more, no less.
#[test]
fn the_registered_families_are_the_spec_families() {
    let spec = spec();
    let section = spec
        .split("## 4. Families by event source")
        .nth(1)
        .and_then(|rest| rest.split("## 5.").next())
        .expect("section 4");
    let mut listed: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("peerobserver_"))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed.len(), 179, "the spec lists 179 families");
    let engine = engine();
    let mut registered: Vec<&str> = engine
        .families()
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("peerobserver_"))
        .collect();
    registered.sort_unstable();
    assert_eq!(registered, listed);
}

/// Every metric the upstream dashboards query (the spec's §6 union) is a registered family,
/// so no panel of theirs is empty for want of a name.
#[test]
fn every_dashboard_metric_is_registered() {
    let spec = spec();
    let union = spec
        .split("**Union (70 families after stripping suffixes):**")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the dashboards' union list");
    let names: Vec<&str> = union
        .split(',')
        .map(|n| n.trim().trim_end_matches('.'))
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(names.len(), 70, "{names:?}");
    let engine = engine();
    // The union's `rpc_peer_info_invtosend` is how one panel's regex reads: its series are
    // the `invtosend_*` families.
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !engine.families().iter().any(|f| f == *n))
        .filter(|n| **n != "peerobserver_rpc_peer_info_invtosend")
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics not registered: {missing:?}"
    );
}

#[test]
fn publisher_snapshots_become_offered_sent_and_dropped() {
    let mut e = engine();
    let snapshot = |offered, sent, full| {
        serde_json::to_vec(&crate::bus::StatsSnapshot {
            offered,
            sent,
            dropped_buffer_full: full,
            ..Default::default()
        })
        .expect("json")
    };
    let subject = "peerlab.stats.stack-publisher";
    e.observe_message(subject, &snapshot(100, 90, 2));
    e.observe_message(subject, &snapshot(150, 148, 2));
    assert_line(
        &e,
        r#"peerlab_publisher_offered{publisher="stack-publisher"} 150"#,
    );
    assert_line(
        &e,
        r#"peerlab_publisher_sent{publisher="stack-publisher"} 148"#,
    );
    assert_line(
        &e,
        r#"peerlab_publisher_dropped{publisher="stack-publisher",reason="buffer_full"} 2"#,
    );
    assert_line(&e, "peerlab_metrics_undecodable 0");
}

#[test]
fn publisher_spool_counters_become_spool_families() {
    let mut e = engine();
    let snapshot = |spooled, events, bytes, dropped_spool| {
        serde_json::to_vec(&crate::bus::StatsSnapshot {
            offered: 1000,
            spooled,
            spool_recovered: 7,
            spool_events: events,
            spool_bytes: bytes,
            dropped_spool,
            ..Default::default()
        })
        .expect("json")
    };
    let subject = "peerlab.stats.ebpf-extractor-publisher";
    e.observe_message(subject, &snapshot(600, 600, 40_000, 0));
    e.observe_message(subject, &snapshot(900, 0, 0, 3));
    let p = r#"publisher="ebpf-extractor-publisher""#;
    assert_line(&e, &format!("peerlab_publisher_spooled{{{p}}} 900"));
    assert_line(&e, &format!("peerlab_publisher_spool_recovered{{{p}}} 7"));
    // Gauges: the latest value, not a sum.
    assert_line(&e, &format!("peerlab_publisher_spool_events{{{p}}} 0"));
    assert_line(&e, &format!("peerlab_publisher_spool_bytes{{{p}}} 0"));
    assert_line(
        &e,
        &format!(r#"peerlab_publisher_dropped{{{p},reason="spool"}} 3"#),
    );
    assert_line(&e, "peerlab_metrics_undecodable 0");
}

#[test]
fn recorder_snapshots_give_its_lag_and_counts() {
    let mut e = engine();
    let snapshot = |recorded, lag_ms, max_lag_ms| {
        serde_json::to_vec(&crate::event::counters::RecorderCounters {
            recorded,
            lag_ms,
            max_lag_ms,
            slow_consumer_events: 0,
        })
        .expect("json")
    };
    e.observe_message("peerlab.stats.recorder", &snapshot(500, 120, 900));
    e.observe_message("peerlab.stats.recorder", &snapshot(800, 40, 300));
    assert_line(&e, "peerlab_recorder_lag_seconds 0.04");
    assert_line(&e, "peerlab_recorder_max_lag_seconds 0.3");
    assert_line(&e, r#"peerlab_recorder_messages{component="recorder"} 800"#);
    assert_line(&e, "peerlab_metrics_undecodable 0");
}
