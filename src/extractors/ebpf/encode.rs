//! Ring records -> wire bytes, written straight into one shared buffer.
//!
//! This is the extractor's hot path: a node under a flood emits two P2P message records per
//! message, and each must leave as one `event.Event` on `netmsg`. Building prost structs for
//! them would allocate three strings and a payload copy per event, and encoding them a fourth
//! buffer. Here a message record is encoded by hand from the record's own bytes (the address,
//! connection type and command are borrowed, not copied), and every event is written into
//! an arena ([`BytesMut`]) that is split off per event, so an event costs no allocation of
//! its own: the arena allocates once per [`ARENA_CHUNK`] bytes. Only the decoded P2P payload
//! allocates, and only for message types that carry lists or bytes (`ping` and `pong` do
//! not). Records of every other kind are rare; they go through [`to_event`] and prost, into
//! the same arena.
//!
//! Invariant: for every record, [`RecordEncoder::encode`] writes exactly the bytes
//! [`crate::event::wire::encode`] gives for [`to_event`] of that record with the same
//! timestamp (tested below for every message type the decoder knows, truncated payloads and
//! odd strings included).

use std::borrow::Cow;

use bytes::{BufMut as _, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message as _;

use super::convert::{conn_type, to_event};
use super::peers::PeerTable;
use super::records::{read_message, MessageRecord, ProbeId, Record, RecordError};
use crate::event::proto::ebpf_extractor::message::message_event::Msg;
use crate::event::proto::ebpf_extractor::message::Unknown;
use crate::event::EventKind;
use crate::p2p::decode::decode_message;

/// Bytes the arena allocates at a time (events larger than this get an allocation of their
/// own size).
pub const ARENA_CHUNK: usize = 256 << 10;

/// Field numbers of `event.proto`, `ebpf_extractor.proto` and `ebpf_extractor/message.proto`.
const EVENT_EBPF: u32 = 1;
const EVENT_TIMESTAMP: u32 = 10;
const EBPF_MESSAGE: u32 = 1;
const MESSAGE_META: u32 = 1;
const META_PEER_ID: u32 = 1;
const META_ADDR: u32 = 2;
const META_CONN_TYPE: u32 = 3;
const META_COMMAND: u32 = 4;
const META_INBOUND: u32 = 5;
const META_SIZE: u32 = 6;

/// One encoded event, with what the drain needs to order and route it.
#[derive(Debug)]
pub struct Encoded {
    /// When the BPF program took the record (CLOCK_MONOTONIC ns): the merge key across rings.
    pub ktime_ns: u64,
    /// The subject it goes to.
    pub kind: EventKind,
    /// The `event.Event` bytes.
    pub payload: Bytes,
}

/// Encodes ring records into events (see the module docs).
#[derive(Debug, Default)]
pub struct RecordEncoder {
    arena: BytesMut,
    peers: PeerTable,
}

impl RecordEncoder {
    /// A new encoder with an empty arena.
    pub fn new() -> RecordEncoder {
        RecordEncoder::default()
    }

    /// Encodes the ring record `bytes` as an event stamped `timestamp_ms`. `Ok(None)` for a
    /// record with no wire-format message; an error for a record that does not parse.
    pub fn encode(
        &mut self,
        bytes: &[u8],
        timestamp_ms: u64,
    ) -> Result<Option<Encoded>, RecordError> {
        if let Some((record, payload)) = read_message(bytes)? {
            let inbound = record.h.kind == ProbeId::InboundMessage as u32;
            let RecordEncoder { arena, peers } = self;
            if record.peer_known == 0 {
                let addr = c_str(&record.addr);
                let conn = conn_type(&c_str(&record.conn_type)) as i32;
                peers.learn(record.peer_id, &addr, conn);
                write_message(
                    arena,
                    &record,
                    (&addr, conn),
                    payload,
                    inbound,
                    timestamp_ms,
                );
            } else {
                let strings = peers
                    .get(record.peer_id)
                    .ok_or(RecordError::UnknownPeer(record.peer_id))?;
                let peer = (&*strings.addr, strings.conn_type);
                write_message(arena, &record, peer, payload, inbound, timestamp_ms);
            }
            return Ok(Some(Encoded {
                ktime_ns: record.h.ktime_ns,
                kind: EventKind::NetMsg,
                payload: arena.split().freeze(),
            }));
        }
        let (ktime_ns, probe, record) = Record::parse(bytes)?;
        let Some(mut event) = to_event(probe, record) else {
            return Ok(None);
        };
        event.timestamp = timestamp_ms;
        let Some(kind) = EventKind::of(&event) else {
            return Ok(None);
        };
        make_room(&mut self.arena, event.encoded_len());
        crate::event::wire::encode_into(&event, &mut self.arena);
        Ok(Some(Encoded {
            ktime_ns,
            kind,
            payload: self.arena.split().freeze(),
        }))
    }

    /// Whether the BPF side must be told to send every peer's strings again (the peer
    /// table started over); see `peers.rs`.
    pub fn take_peer_reset(&mut self) -> bool {
        self.peers.take_reset()
    }
}

/// Writes `event.Event { ebpf_extractor { message { meta, msg } }, timestamp }` in prost's
/// field order (fields sorted by number, the oneof at its lowest). `peer` is the address and
/// `ConnType` (from the record, or from the peer table when the record left them out).
fn write_message(
    buf: &mut BytesMut,
    m: &MessageRecord,
    peer: (&str, i32),
    payload: &[u8],
    inbound: bool,
    timestamp: u64,
) {
    let (addr, conn) = peer;
    let command = c_str(&m.command);
    // A payload we could not copy whole is kept raw rather than half-decoded (as `to_event`
    // does).
    let msg = if m.truncated != 0 || (payload.len() as u64) < m.size {
        Msg::Unknown(Unknown {
            command: command.to_string(),
            payload: payload.to_vec(),
        })
    } else {
        decode_message(&command, payload)
    };
    let peer_id = m.peer_id as u64;
    let meta_len = key_len(META_PEER_ID)
        + encoded_len_varint(peer_id)
        + string_len(META_ADDR, addr)
        + key_len(META_CONN_TYPE)
        + encoded_len_varint(conn as i64 as u64)
        + string_len(META_COMMAND, &command)
        + key_len(META_INBOUND)
        + 1
        + key_len(META_SIZE)
        + encoded_len_varint(m.size);
    let message_len = nested_len(MESSAGE_META, meta_len) + msg.encoded_len();
    let ebpf_len = nested_len(EBPF_MESSAGE, message_len);
    let total =
        nested_len(EVENT_EBPF, ebpf_len) + key_len(EVENT_TIMESTAMP) + encoded_len_varint(timestamp);
    make_room(buf, total);
    nested_header(EVENT_EBPF, ebpf_len, buf);
    nested_header(EBPF_MESSAGE, message_len, buf);
    nested_header(MESSAGE_META, meta_len, buf);
    encode_key(META_PEER_ID, WireType::Varint, buf);
    encode_varint(peer_id, buf);
    string(META_ADDR, addr, buf);
    encode_key(META_CONN_TYPE, WireType::Varint, buf);
    encode_varint(conn as i64 as u64, buf);
    string(META_COMMAND, &command, buf);
    encode_key(META_INBOUND, WireType::Varint, buf);
    encode_varint(u64::from(inbound), buf);
    encode_key(META_SIZE, WireType::Varint, buf);
    encode_varint(m.size, buf);
    msg.encode(buf);
    encode_key(EVENT_TIMESTAMP, WireType::Varint, buf);
    encode_varint(timestamp, buf);
}

/// Makes sure `len` more bytes fit without the arena growing mid-event. While earlier events
/// still share the old chunk, this moves on to a fresh one.
fn make_room(arena: &mut BytesMut, len: usize) {
    if arena.capacity() - arena.len() < len {
        arena.reserve(len.max(ARENA_CHUNK));
    }
}

/// A NUL-terminated string from a fixed record field, as [`super::records::c_string`] reads
/// it, borrowed when it is valid UTF-8.
fn c_str(field: &[u8]) -> Cow<'_, str> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end])
}

fn string_len(tag: u32, value: &str) -> usize {
    nested_len(tag, value.len())
}

fn string(tag: u32, value: &str, buf: &mut BytesMut) {
    nested_header(tag, value.len(), buf);
    buf.put_slice(value.as_bytes());
}

/// Length of a length-delimited field whose body is `len` bytes.
fn nested_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn nested_header(tag: u32, len: usize, buf: &mut BytesMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::wire;
    use crate::p2p::samples;

    /// A message record as the BPF program writes it: header, then `copied` payload bytes.
    fn message_record(
        probe: ProbeId,
        command: &[u8],
        payload: &[u8],
        size: u64,
        addr: &[u8],
        conn: &[u8],
    ) -> Vec<u8> {
        let mut record = MessageRecord::zeroed();
        record.h.kind = probe as u32;
        record.h.ktime_ns = 123_456_789;
        record.peer_id = 7;
        record.size = size;
        record.copied = payload.len() as u64;
        record.truncated = u8::from(size > payload.len() as u64 && payload.len() >= 128);
        record.addr[..addr.len()].copy_from_slice(addr);
        record.conn_type[..conn.len()].copy_from_slice(conn);
        record.command[..command.len()].copy_from_slice(command);
        let mut bytes = record.to_bytes();
        bytes.extend_from_slice(payload);
        bytes
    }

    /// What the prost path gives for the same record and timestamp.
    fn expected(bytes: &[u8], timestamp: u64) -> Option<Vec<u8>> {
        let (_, probe, record) = Record::parse(bytes).expect("parses");
        let mut event = to_event(probe, record)?;
        event.timestamp = timestamp;
        Some(wire::encode(&event))
    }

    fn check(bytes: &[u8]) {
        let mut encoder = RecordEncoder::new();
        for timestamp in [0, 1, 1_795_000_000_123] {
            let encoded = encoder.encode(bytes, timestamp).expect("encodes");
            assert_eq!(
                encoded.map(|e| e.payload.to_vec()),
                expected(bytes, timestamp),
                "record {bytes:?} at {timestamp}"
            );
        }
    }

    #[test]
    fn every_sample_message_encodes_as_prost_does() {
        for (command, payload) in samples::all_messages() {
            for probe in [ProbeId::InboundMessage, ProbeId::OutboundMessage] {
                for (addr, conn) in [
                    (&b"127.0.0.1:18444"[..], &b"inbound"[..]),
                    (b"[2001:db8::1]:8333", b"outbound-full-relay"),
                    (b"", b"manual"),
                ] {
                    check(&message_record(
                        probe,
                        command.as_bytes(),
                        &payload,
                        payload.len() as u64,
                        addr,
                        conn,
                    ));
                }
            }
        }
    }

    #[test]
    fn odd_records_encode_as_prost_does() {
        let ping = 42u64.to_le_bytes();
        // Truncated (size larger than what was copied), unknown command, bad UTF-8, fields
        // filling their whole buffer without a NUL, an undecodable payload.
        check(&message_record(
            ProbeId::InboundMessage,
            b"block",
            &[1; 128],
            4_000_001,
            b"a",
            b"inbound",
        ));
        check(&message_record(
            ProbeId::InboundMessage,
            b"ping",
            &ping[..4],
            8,
            b"a",
            b"inbound",
        ));
        check(&message_record(
            ProbeId::InboundMessage,
            b"made-up",
            b"xyz",
            3,
            b"a",
            b"feeler",
        ));
        check(&message_record(
            ProbeId::OutboundMessage,
            b"ping",
            &ping,
            8,
            &[0xff, 0xfe, b'x'],
            b"inbound",
        ));
        check(&message_record(
            ProbeId::InboundMessage,
            &[b'p'; 20],
            &ping,
            8,
            &[b'1'; 68],
            &[b'c'; 20],
        ));
        check(&message_record(
            ProbeId::InboundMessage,
            b"inv",
            &[0xfd, 0xff],
            2,
            b"a",
            b"inbound",
        ));
        check(&message_record(
            ProbeId::InboundMessage,
            b"verack",
            &[],
            0,
            b"a",
            b"block-relay-only",
        ));
    }

    #[test]
    fn events_share_the_arena_without_touching_each_other() {
        let mut encoder = RecordEncoder::new();
        let ping = 9u64.to_le_bytes();
        let record = message_record(ProbeId::InboundMessage, b"ping", &ping, 8, b"a", b"inbound");
        let events: Vec<_> = (0..10_000u64)
            .map(|t| {
                encoder
                    .encode(&record, t)
                    .expect("encodes")
                    .expect("an event")
            })
            .collect();
        for (t, event) in events.iter().enumerate() {
            assert_eq!(Some(event.payload.to_vec()), expected(&record, t as u64));
            assert_eq!(event.kind, EventKind::NetMsg);
            assert_eq!(event.ktime_ns, 123_456_789);
        }
    }

    #[test]
    fn a_known_peer_is_named_from_its_first_record() {
        let mut encoder = RecordEncoder::new();
        let ping = 5u64.to_le_bytes();
        let first = message_record(
            ProbeId::InboundMessage,
            b"ping",
            &ping,
            8,
            b"10.0.0.1:8333",
            b"outbound-full-relay",
        );
        let mut later = first.clone();
        later[17] = 1; // peer_known: the BPF side left the strings out
        later[48..136].fill(0);
        // Unknown until its first record was seen, then named from it, byte for byte.
        assert!(matches!(
            encoder.encode(&later, 1),
            Err(RecordError::UnknownPeer(7))
        ));
        let with_strings = encoder
            .encode(&first, 1)
            .expect("encodes")
            .expect("an event");
        let without = encoder
            .encode(&later, 1)
            .expect("encodes")
            .expect("an event");
        assert_eq!(with_strings.payload, without.payload);
        assert_eq!(Some(without.payload.to_vec()), expected(&first, 1));
    }

    #[test]
    fn short_records_are_errors_not_events() {
        let mut encoder = RecordEncoder::new();
        let mut record = message_record(ProbeId::InboundMessage, b"ping", &[], 8, b"a", b"inbound");
        record.truncate(100);
        assert!(matches!(
            encoder.encode(&record, 1),
            Err(RecordError::Short { .. })
        ));
        assert!(encoder.encode(&[0u8; 3], 1).is_err());
    }
}
