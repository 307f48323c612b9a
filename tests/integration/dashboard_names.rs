//! Every metric name peer-observer's Grafana dashboards query (the union list of
//! `shared/spec/metrics.md` §6) is in the metrics tool's text exposition once it has seen the
//! events peerlab's extractors produce: the three sample recordings (real pipelines), plus
//! one hand-built event for each arm or value the samples lack (a closed connection, a
//! rejected transaction, a mutated block, addr/addrv2 from a LinkingLion address that
//! announce it and a neighbour in its /24, an addrv2 relay to the P2P extractor, a fee estimate, a peer
//! with a mapped AS). Registration is not enough: a labelled family is only exposed with its
//! first series, so the test reads the rendered text and names every missing family.

use std::path::Path;

use peerlab::event::proto::bitcoin_primitives::{address, Address};
use peerlab::event::proto::ebpf_extractor::connection::{
    connection_event, ClosedConnection, Connection, ConnectionEvent,
};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::mempool::{mempool_event, MempoolEvent, Rejected};
use peerlab::event::proto::ebpf_extractor::message::{
    message_event::Msg, Addr, AddrV2, MessageEvent, Metadata,
};
use peerlab::event::proto::ebpf_extractor::Ebpf;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::log_extractor::{log, BlockCheckedLog, Log};
use peerlab::event::proto::p2p_extractor::{p2p, AddressAnnouncement, P2p};
use peerlab::event::proto::rpc_extractor::rpc::RpcEvent;
use peerlab::event::proto::rpc_extractor::{
    EstimateSmartFee, FeeEstimateMode, PeerInfo, PeerInfos, Rpc,
};
use peerlab::event::Event;
use peerlab::tools::metrics::iplists::IpLists;
use peerlab::tools::metrics::MetricsEngine;

const RECORDINGS: [&str; 3] = [
    "recordings/observer-sample.mcap",
    "recordings/regtest-sample.mcap",
    "recordings/rehearsal-sample.mcap",
];

/// When the hand-built events happen (ms since the epoch).
const NOW_MS: u64 = 1_795_972_440_000;
/// In a LinkingLion prefix (built into the tool), so the `_linkinglion` families count it.
const LINKINGLION: &str = "143.20.137.9";

/// The dashboards' union (70 names) from the spec.
fn dashboard_names() -> Vec<String> {
    let dir = std::env::var_os("PEERLAB_SPEC_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec"),
        std::path::PathBuf::from,
    );
    let spec = std::fs::read_to_string(dir.join("metrics.md"))
        .expect("the metrics spec (set PEERLAB_SPEC_DIR to shared/spec)");
    let union = spec
        .split("**Union (70 families after stripping suffixes):**")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the dashboards' union list");
    let names: Vec<String> = union
        .split(',')
        .map(|n| n.trim().trim_end_matches('.').to_string())
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(names.len(), 70, "{names:?}");
    names
}

fn event(inner: PeerObserverEvent) -> Event {
    Event {
        timestamp: NOW_MS,
        peer_observer_event: Some(inner),
    }
}

fn ebpf(inner: EbpfEvent) -> Event {
    event(PeerObserverEvent::EbpfExtractor(Ebpf {
        ebpf_event: Some(inner),
    }))
}

fn rpc(inner: RpcEvent) -> Event {
    event(PeerObserverEvent::RpcExtractor(Rpc {
        rpc_event: Some(inner),
    }))
}

fn ipv4(ip: &str) -> Address {
    Address {
        timestamp: (NOW_MS / 1000) as u32 - 3600,
        address: Some(address::Address::Ipv4(ip.into())),
        services: 0x409,
        port: 8333,
    }
}

/// An inbound address message from the LinkingLion peer announcing itself and a neighbour.
fn addr_message(command: &str, msg: Msg) -> Event {
    ebpf(EbpfEvent::Message(MessageEvent {
        meta: Metadata {
            peer_id: 90,
            addr: format!("{LINKINGLION}:8333"),
            conn_type: 1,
            command: command.into(),
            inbound: true,
            size: 61,
        },
        msg: Some(msg),
    }))
}

/// The arms and values the samples lack, one event each.
fn hand_built() -> Vec<Event> {
    let announced = vec![ipv4(LINKINGLION), ipv4("143.20.137.200")];
    vec![
        ebpf(EbpfEvent::Connection(ConnectionEvent {
            event: Some(connection_event::Event::Closed(ClosedConnection {
                conn: Connection {
                    peer_id: 90,
                    addr: format!("{LINKINGLION}:8333"),
                    conn_type: 1,
                    network: 1,
                },
                time_established: NOW_MS / 1000 - 60,
            })),
        })),
        ebpf(EbpfEvent::Mempool(MempoolEvent {
            event: Some(mempool_event::Event::Rejected(Rejected {
                txid: vec![7; 32],
                reason: "min relay fee not met".into(),
            })),
        })),
        event(PeerObserverEvent::LogExtractor(Log {
            log_timestamp: NOW_MS * 1000,
            category: 26,
            threadname: "msghand".into(),
            log_level: 3,
            log_line_bytes: 150,
            log_event: Some(log::LogEvent::BlockCheckedLog(BlockCheckedLog {
                block_hash: "00".repeat(32),
                state: "bad-txnmrklroot".into(),
                debug_message: "hashMerkleRoot mismatch".into(),
            })),
        })),
        addr_message(
            "addr",
            Msg::Addr(Addr {
                addresses: announced.clone(),
            }),
        ),
        addr_message(
            "addrv2",
            Msg::Addrv2(AddrV2 {
                addresses: announced.clone(),
            }),
        ),
        event(PeerObserverEvent::P2pExtractor(P2p {
            p2p_event: Some(p2p::P2pEvent::AddressAnnouncement(AddressAnnouncement {
                addresses: announced,
            })),
        })),
        rpc(RpcEvent::EstimateSmartFee(EstimateSmartFee {
            fee_rate: Some(12.5),
            blocks: 6,
            requested_blocks: 6,
            mode: FeeEstimateMode::Economical as i32,
            errors: Vec::new(),
        })),
        rpc(RpcEvent::PeerInfos(PeerInfos {
            infos: vec![PeerInfo {
                id: 90,
                address: format!("{LINKINGLION}:8333"),
                network: "ipv4".into(),
                mapped_as: 3320,
                connection_type: "inbound".into(),
                transport_protocol_type: "v2".into(),
                inbound: true,
                ..PeerInfo::default()
            }],
        })),
    ]
}

/// Whether the exposition has a series of `name` (a histogram's `_bucket`/`_sum`/`_count`).
fn exposed(text: &str, name: &str) -> bool {
    text.lines().filter(|l| !l.starts_with('#')).any(|line| {
        let series = line.split(['{', ' ']).next().unwrap_or("");
        series == name
            || series
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|suffix| matches!(suffix, "bucket" | "sum" | "count"))
    })
}

#[test]
fn every_dashboard_metric_is_exposed_for_the_events_peerlab_produces() {
    let mut engine = MetricsEngine::new(IpLists::default()).expect("the families register");
    for recording in RECORDINGS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(recording);
        let recording = peerlab::record::read_recording(&path).expect("a sample recording");
        for message in &recording.messages {
            engine.observe_message(&message.subject, &message.data);
        }
    }
    for event in hand_built() {
        engine.observe_event(&event);
    }
    let text = engine.render();
    // `rpc_peer_info_invtosend` is one panel's regex over the `invtosend_*` families.
    let missing: Vec<String> = dashboard_names()
        .into_iter()
        .filter(|name| {
            let name = match name.as_str() {
                "peerobserver_rpc_peer_info_invtosend" => {
                    "peerobserver_rpc_peer_info_invtosend_max"
                }
                other => other,
            };
            !exposed(&text, name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} dashboard metrics are not in the exposition: {missing:?}",
        missing.len()
    );
}
