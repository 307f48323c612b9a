//! `record --anonymize`: no original peer address survives anywhere in the file, and every
//! peer keeps one pseudonym throughout the recording.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerlab::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme};
use peerlab::event::proto::bitcoin_primitives::{address, Address, ConnType};
use peerlab::event::proto::ebpf_extractor::connection::{self, connection_event};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::message::{self, message_event::Msg};
use peerlab::event::proto::ebpf_extractor::Ebpf;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::log_extractor::{self, log::LogEvent};
use peerlab::event::proto::rpc_extractor::{self, rpc::RpcEvent};
use peerlab::event::Event;
use peerlab::record::read_recording;
use peerlab::record::recorder::{record, AnonymizeKey, RecordOptions};
use peerlab::stack::NatsServer;
use prost::Message as _;

const PEERS: [&str; 3] = [
    "203.0.113.5:8333",
    "198.51.100.77:18444",
    "[2a01:4f8:10a::2]:8333",
];
const ADDR_ENTRY_V4: &str = "192.0.2.44";
const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
const NODE_OWN: &str = "198.18.0.9";

fn ebpf(body: EbpfEvent) -> Event {
    Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(body),
        })),
    }
}

fn conn(addr: &str, id: u64) -> connection::Connection {
    connection::Connection {
        peer_id: id,
        addr: addr.into(),
        conn_type: ConnType::Inbound as i32,
        network: 1,
    }
}

fn meta(addr: &str, id: u64, command: &str) -> message::Metadata {
    message::Metadata {
        peer_id: id,
        addr: addr.into(),
        conn_type: ConnType::Inbound as i32,
        command: command.into(),
        inbound: true,
        size: 1,
    }
}

fn v4(ip: &str) -> Address {
    Address {
        timestamp: 1,
        address: Some(address::Address::Ipv4(ip.into())),
        services: 1,
        port: 8333,
    }
}

/// Events touching every field the anonymizer must cover, each peer several times.
fn events() -> Vec<Event> {
    let mut events = Vec::new();
    for (id, peer) in PEERS.iter().enumerate() {
        let id = id as u64;
        events.push(ebpf(EbpfEvent::Connection(connection::ConnectionEvent {
            event: Some(connection_event::Event::Inbound(
                connection::InboundConnection {
                    conn: conn(peer, id),
                    existing_connections: 1,
                },
            )),
        })));
        let host = peer
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']))
            .unwrap_or(peer);
        let host_address = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => Address {
                address: Some(address::Address::Ipv6(host.into())),
                ..v4("0.0.0.0")
            },
            _ => v4(host),
        };
        events.push(ebpf(EbpfEvent::Message(message::MessageEvent {
            meta: meta(peer, id, "version"),
            msg: Some(Msg::Version(message::Version {
                version: 70016,
                services: 9,
                timestamp: 1,
                receiver: v4(NODE_OWN),
                sender: host_address,
                nonce: 1,
                user_agent: "/x/".into(),
                start_height: 0,
                relay: true,
            })),
        })));
        events.push(ebpf(EbpfEvent::Message(message::MessageEvent {
            meta: meta(peer, id, "addrv2"),
            msg: Some(Msg::Addrv2(message::AddrV2 {
                addresses: vec![
                    v4(ADDR_ENTRY_V4),
                    Address {
                        address: Some(address::Address::Torv3(ONION.into())),
                        ..v4("0.0.0.0")
                    },
                ],
            })),
        })));
        // An undecodable message whose raw bytes carry the peer's IPv4 address.
        if let Ok(std::net::IpAddr::V4(ip)) = host.parse::<std::net::IpAddr>() {
            let mut payload = vec![0xde, 0xad];
            payload.extend_from_slice(&ip.octets());
            events.push(ebpf(EbpfEvent::Message(message::MessageEvent {
                meta: meta(peer, id, "weird"),
                msg: Some(Msg::Unknown(message::Unknown {
                    command: "weird".into(),
                    payload,
                })),
            })));
        }
        // An undecodable message whose bytes carry the peer's address as text (issue 9.3).
        events.push(ebpf(EbpfEvent::Message(message::MessageEvent {
            meta: meta(peer, id, "chatty"),
            msg: Some(Msg::Unknown(message::Unknown {
                command: "chatty".into(),
                payload: format!("\u{1}peer at {peer}; relay {ADDR_ENTRY_V4}").into_bytes(),
            })),
        })));
        events.push(ebpf(EbpfEvent::Connection(connection::ConnectionEvent {
            event: Some(connection_event::Event::Closed(
                connection::ClosedConnection {
                    conn: conn(peer, id),
                    time_established: 5,
                },
            )),
        })));
    }
    events.push(Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::LogExtractor(log_extractor::Log {
            log_timestamp: 1,
            category: log_extractor::LogDebugCategory::Net as i32,
            threadname: "msghand".into(),
            log_level: log_extractor::LogLevel::Debug as i32,
            log_line_bytes: 64,
            log_event: Some(LogEvent::UnknownLogMessage(
                log_extractor::UnknownLogMessage {
                    raw_message: "Added connection to 203.0.113.5:8333 peer=0".into(),
                },
            )),
        })),
    });
    let mut info = rpc_extractor::PeerInfo {
        address: PEERS[1].into(),
        address_local: format!("{NODE_OWN}:18444"),
        ..Default::default()
    };
    info.address_bind = format!("{NODE_OWN}:18444");
    events.push(Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(rpc_extractor::Rpc {
            rpc_event: Some(RpcEvent::PeerInfos(rpc_extractor::PeerInfos {
                infos: vec![info],
            })),
        })),
    });
    events
}

/// Every text and binary form of an address that must not appear.
fn forbidden(host: &str) -> Vec<Vec<u8>> {
    let mut forms = vec![host.as_bytes().to_vec()];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            forms.push(ip.octets().to_vec());
            forms.push(ip.to_ipv6_mapped().octets().to_vec());
        }
        Ok(std::net::IpAddr::V6(ip)) => forms.push(ip.octets().to_vec()),
        Err(_) => {}
    }
    forms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_original_address_survives_and_pseudonyms_are_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("anon.mcap");
    let nats = NatsServer::start(&common::nats_server()).expect("nats");
    let options = RecordOptions {
        anonymize: Some(AnonymizeKey::Random),
        ..RecordOptions::new(
            &file,
            vec!["peerlab".into(), "record".into(), "--anonymize".into()],
        )
    };
    let written = Arc::new(AtomicU64::new(0));
    let stop_tx = peerlab::shutdown::Shutdown::new();
    let stop_rx = stop_tx.clone();
    let nats_options = NatsOptions::local(nats.url());
    let recorder = {
        let (nats_options, written) = (nats_options.clone(), written.clone());
        tokio::spawn(async move {
            record(
                &nats_options,
                SubjectScheme::Flat,
                &options,
                written,
                stop_rx,
            )
            .await
        })
    };
    // A publisher round trip after the recorder subscribed: wait for the file header.
    tokio::time::timeout(common::TIMEOUT, async {
        while !file.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("recorder started");
    let events = events();
    let publisher = Publisher::connect(
        &nats_options,
        SubjectScheme::Flat,
        PublisherConfig::default(),
    )
    .await
    .expect("pub");
    for event in &events {
        assert!(publisher.publish_event(event));
    }
    publisher.close(common::TIMEOUT).await;
    tokio::time::timeout(common::TIMEOUT, async {
        while written.load(Ordering::Relaxed) < events.len() as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("all events recorded");
    stop_tx.cancel();
    recorder.await.expect("task").expect("recording");

    let raw = std::fs::read(&file).expect("file");
    let recording = read_recording(&file).expect("readable");
    assert_eq!(recording.messages.len(), events.len());
    let mut hosts: Vec<String> = PEERS
        .iter()
        .map(|p| {
            p.rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                .unwrap_or_default()
        })
        .collect();
    hosts.extend([
        ADDR_ENTRY_V4.to_string(),
        ONION.to_string(),
        NODE_OWN.to_string(),
    ]);
    for host in &hosts {
        for form in forbidden(host) {
            assert!(
                !common::contains(&raw, &form),
                "{host} ({form:02x?}) found in the raw file"
            );
            for (i, m) in recording.messages.iter().enumerate() {
                assert!(
                    !common::contains(&m.data, &form),
                    "{host} ({form:02x?}) found in message {i}"
                );
            }
        }
    }

    // Each peer keeps one pseudonym (by peer id) and peers stay distinct.
    let mut pseudonyms: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for m in &recording.messages {
        let event = Event::decode(m.data.as_slice()).expect("still a valid event");
        peerlab::event::strict::check_event(&m.data).expect("still strictly valid");
        let (id, addr) = match event.peer_observer_event {
            Some(PeerObserverEvent::EbpfExtractor(Ebpf {
                ebpf_event: Some(EbpfEvent::Message(m)),
            })) => (m.meta.peer_id, m.meta.addr),
            Some(PeerObserverEvent::EbpfExtractor(Ebpf {
                ebpf_event: Some(EbpfEvent::Connection(c)),
            })) => match c.event {
                Some(connection_event::Event::Inbound(e)) => (e.conn.peer_id, e.conn.addr),
                Some(connection_event::Event::Closed(e)) => (e.conn.peer_id, e.conn.addr),
                _ => continue,
            },
            _ => continue,
        };
        pseudonyms.entry(id).or_default().insert(addr);
    }
    assert_eq!(pseudonyms.len(), PEERS.len());
    for (id, addrs) in &pseudonyms {
        assert_eq!(
            addrs.len(),
            1,
            "peer {id} has several pseudonyms: {addrs:?}"
        );
        let addr = addrs.iter().next().expect("one");
        let original = PEERS[*id as usize];
        assert_eq!(
            addr.rsplit_once(':').map(|(_, p)| p),
            original.rsplit_once(':').map(|(_, p)| p),
            "port kept"
        );
        assert_eq!(
            addr.starts_with('['),
            original.starts_with('['),
            "network type kept: {addr} for {original}"
        );
    }
    let distinct: BTreeSet<_> = pseudonyms.values().flatten().collect();
    assert_eq!(distinct.len(), PEERS.len(), "distinct peers stay distinct");
    assert_eq!(
        recording.metadata.get("anonymized").map(String::as_str),
        Some("yes, random key")
    );
}
