//! Records -> `event.Event`s, filled exactly as peer-observer's wire format says.
//!
//! Hashes and txids stay in the internal byte order the tracepoints hand over. Every required
//! field is set. P2P payloads are decoded by [`crate::p2p::decode`]; what does not
//! decode travels as `Unknown` with its raw bytes.

use crate::event::proto::bitcoin_primitives::ConnType;
use crate::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use crate::event::proto::ebpf_extractor::message::{
    message_event::Msg, MessageEvent, Metadata, Unknown,
};
use crate::event::proto::ebpf_extractor::{connection, mempool, validation, Ebpf};
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::proto::peerlab::utxocache::{self, utxocache_event};
use crate::event::{now_millis, Event};
use crate::p2p::decode::decode_message;

use super::records::{c_string, ProbeId, Record};

/// Bitcoin Core's connection type string -> `ConnType` (never a new enum value: proto2
/// decoders reject unknown values of a required enum).
pub fn conn_type(name: &str) -> ConnType {
    match name {
        "inbound" => ConnType::Inbound,
        "outbound-full-relay" => ConnType::OutboundFullRelay,
        "block-relay-only" => ConnType::BlockRelayOnly,
        "feeler" => ConnType::Feeler,
        _ => ConnType::Unknown, // manual, addr-fetch, private-broadcast
    }
}

/// The event for a record (`None` is reserved for records with no wire-format message).
pub fn to_event(probe: ProbeId, record: Record) -> Option<Event> {
    let body = match record {
        Record::Message(m, payload) => {
            let command = c_string(&m.command);
            // A payload we could not copy whole is kept raw rather than half-decoded.
            let msg = if m.truncated != 0 || (payload.len() as u64) < m.size {
                Msg::Unknown(Unknown {
                    command: command.clone(),
                    payload,
                })
            } else {
                decode_message(&command, &payload)
            };
            EbpfEvent::Message(MessageEvent {
                meta: Metadata {
                    peer_id: m.peer_id as u64,
                    addr: c_string(&m.addr),
                    conn_type: conn_type(&c_string(&m.conn_type)) as i32,
                    command,
                    inbound: probe == ProbeId::InboundMessage,
                    size: m.size,
                },
                msg: Some(msg),
            })
        }
        Record::Connection(c) => {
            let conn = connection::Connection {
                peer_id: c.peer_id as u64,
                addr: c_string(&c.addr),
                conn_type: conn_type(&c_string(&c.conn_type)) as i32,
                network: c.network as u32,
            };
            use connection::connection_event::Event as E;
            let event = match probe {
                ProbeId::InboundConnection => E::Inbound(connection::InboundConnection {
                    conn,
                    existing_connections: c.value,
                }),
                ProbeId::OutboundConnection => E::Outbound(connection::OutboundConnection {
                    conn,
                    existing_connections: c.value,
                }),
                ProbeId::EvictedInboundConnection => {
                    E::InboundEvicted(connection::EvictedInboundConnection {
                        conn,
                        time_established: c.value,
                    })
                }
                ProbeId::ClosedConnection => E::Closed(connection::ClosedConnection {
                    conn,
                    time_established: c.value,
                }),
                // A connection record from any other probe cannot be converted: counted as
                // unpublished, never sent.
                ProbeId::InboundMessage
                | ProbeId::OutboundMessage
                | ProbeId::MisbehavingConnection
                | ProbeId::MempoolAdded
                | ProbeId::MempoolRemoved
                | ProbeId::MempoolReplaced
                | ProbeId::MempoolRejected
                | ProbeId::BlockConnected
                | ProbeId::UtxocacheFlush
                | ProbeId::UtxocacheAdd
                | ProbeId::UtxocacheSpent
                | ProbeId::UtxocacheUncache => return None,
            };
            EbpfEvent::Connection(connection::ConnectionEvent { event: Some(event) })
        }
        Record::Misbehaving(m) => EbpfEvent::Connection(connection::ConnectionEvent {
            event: Some(connection::connection_event::Event::Misbehaving(
                connection::MisbehavingConnection {
                    id: m.peer_id as u64,
                    message: c_string(&m.message),
                },
            )),
        }),
        Record::MempoolAdded(a) => {
            mempool_event(mempool::mempool_event::Event::Added(mempool::Added {
                txid: a.txid.to_vec(),
                vsize: a.vsize,
                fee: a.fee,
            }))
        }
        Record::MempoolRemoved(r) => {
            mempool_event(mempool::mempool_event::Event::Removed(mempool::Removed {
                txid: r.txid.to_vec(),
                reason: c_string(&r.reason),
                vsize: r.vsize,
                fee: r.fee,
                entry_time: r.entry_time,
            }))
        }
        Record::MempoolReplaced(r) => {
            mempool_event(mempool::mempool_event::Event::Replaced(mempool::Replaced {
                replaced_txid: r.replaced_txid.to_vec(),
                replaced_vsize: r.replaced_vsize,
                replaced_fee: r.replaced_fee,
                replaced_entry_time: r.replaced_entry_time,
                replacement_id: r.replacement_id.to_vec(),
                replacement_vsize: r.replacement_vsize,
                replacement_fee: r.replacement_fee,
                replaced_by_transaction: r.replaced_by_transaction != 0,
            }))
        }
        Record::MempoolRejected(r) => {
            mempool_event(mempool::mempool_event::Event::Rejected(mempool::Rejected {
                txid: r.txid.to_vec(),
                reason: c_string(&r.reason),
            }))
        }
        Record::BlockConnected(b) => EbpfEvent::Validation(validation::ValidationEvent {
            event: Some(validation::validation_event::Event::BlockConnected(
                validation::BlockConnected {
                    hash: b.hash.to_vec(),
                    height: b.height,
                    transactions: b.transactions as i64,
                    inputs: b.inputs,
                    sigops: b.sigops,
                    connection_time: b.duration_ns as u64,
                },
            )),
        }),
        Record::UtxocacheFlush(f) => {
            utxocache_event(utxocache_event::Event::Flush(utxocache::Flush {
                duration: f.duration_us,
                mode: f.mode,
                coins: f.coins,
                bytes: f.bytes,
                prune: f.prune != 0,
            }))
        }
        Record::UtxocacheCoin(c) => {
            let coin = utxocache::Coin {
                txid: c.txid.to_vec(),
                vout: c.vout,
                height: c.height,
                value: c.value,
                coinbase: c.coinbase != 0,
            };
            utxocache_event(match probe {
                ProbeId::UtxocacheAdd => utxocache_event::Event::Add(coin),
                ProbeId::UtxocacheSpent => utxocache_event::Event::Spent(coin),
                ProbeId::UtxocacheUncache => utxocache_event::Event::Uncache(coin),
                // A coin record from any other probe cannot be converted: counted as
                // unpublished, never sent.
                ProbeId::InboundMessage
                | ProbeId::OutboundMessage
                | ProbeId::InboundConnection
                | ProbeId::OutboundConnection
                | ProbeId::ClosedConnection
                | ProbeId::EvictedInboundConnection
                | ProbeId::MisbehavingConnection
                | ProbeId::MempoolAdded
                | ProbeId::MempoolRemoved
                | ProbeId::MempoolReplaced
                | ProbeId::MempoolRejected
                | ProbeId::BlockConnected
                | ProbeId::UtxocacheFlush => return None,
            })
        }
    };
    Some(Event {
        timestamp: now_millis(),
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(body),
        })),
    })
}

fn utxocache_event(event: utxocache_event::Event) -> EbpfEvent {
    EbpfEvent::Utxocache(utxocache::UtxocacheEvent { event: Some(event) })
}

fn mempool_event(event: mempool::mempool_event::Event) -> EbpfEvent {
    EbpfEvent::Mempool(mempool::MempoolEvent { event: Some(event) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_types_map_without_new_values() {
        assert_eq!(conn_type("inbound"), ConnType::Inbound);
        assert_eq!(
            conn_type("outbound-full-relay"),
            ConnType::OutboundFullRelay
        );
        assert_eq!(conn_type("block-relay-only"), ConnType::BlockRelayOnly);
        assert_eq!(conn_type("feeler"), ConnType::Feeler);
        for other in ["manual", "addr-fetch", "private-broadcast", ""] {
            assert_eq!(conn_type(other), ConnType::Unknown);
        }
    }
}
