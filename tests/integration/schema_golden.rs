//! Golden encodings of representative events, worked out by hand from the protobuf encoding
//! rules and NOT produced by prost. A renumbered field changes a tag byte, a retyped field
//! changes the value bytes (varint vs zigzag vs fixed64, sign extension), so either fails here.
//!
//! Rules used in the comments:
//! - tag byte(s) = varint((field_number << 3) | wire_type); wire types: 0 varint, 1 fixed64,
//!   2 length-delimited (LEN);
//! - varint: 7 bits per byte, least significant group first, high bit set on all but the last;
//! - int32/int64 negatives are sign-extended to 64 bits, so they always take 10 bytes;
//! - sint32/sint64 are zigzag-mapped first: n >= 0 -> 2n, n < 0 -> -2n - 1;
//! - fixed64 is 8 bytes little-endian.
//!
//! Field order: prost 0.14 sorts a message's fields by tag before generating `encode`, placing
//! a oneof at its LOWEST tag whatever arm is set (prost-derive `lib.rs`, "Sort the fields by
//! tag number"); the struct declaration order does not matter. prost-build declares
//! `Event.timestamp` (tag 10) before the oneof (tags 1..4), yet the oneof arm is written
//! first. In this schema that order equals plain field-number order (no oneof arm has a tag
//! above a later regular field: `Address.unknown` = 8 < `services` = 9). The goldens follow
//! it; a test below checks that another order (timestamp first) decodes to the same value.

use peerlab::event::proto::bitcoin_primitives::{address, Address, ConnType};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::mempool::{mempool_event, Added, MempoolEvent};
use peerlab::event::proto::ebpf_extractor::message::{
    message_event::Msg, FeeFilter, MessageEvent, Metadata, Ping, Version,
};
use peerlab::event::proto::ebpf_extractor::validation::{
    validation_event, BlockConnected, ValidationEvent,
};
use peerlab::event::proto::ebpf_extractor::Ebpf;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::p2p_extractor::{p2p::P2pEvent, P2p};
use peerlab::event::proto::rpc_extractor::{rpc::RpcEvent, Rpc};
use peerlab::event::Event;
use prost::Message;

/// `Event.timestamp` used by every golden: 1_700_000_000_000 ms (2023-11-14).
const TIMESTAMP_MS: u64 = 1_700_000_000_000;

/// `Event.timestamp` on the wire: tag (10 << 3) | 0 = 0x50, then the varint of
/// 1_700_000_000_000 = 0x18B_CFE5_6800, whose 7-bit groups (low first) are
/// 0x00 0x50 0x15 0x7F 0x3C 0x31.
const TIMESTAMP_FIELD: [u8; 7] = [0x50, 0x80, 0xD0, 0x95, 0xFF, 0xBC, 0x31];

/// The peer address used by the netmsg goldens (12 bytes of ASCII).
const PEER_ADDR: &str = "1.2.3.4:8333";

/// Asserts prost encodes `value` to exactly `golden`, and decodes `golden` back to `value`.
fn assert_golden<M: Message + Default + PartialEq + std::fmt::Debug>(value: &M, golden: &[u8]) {
    let encoded = value.encode_to_vec();
    assert_eq!(
        hex::encode(&encoded),
        hex::encode(golden),
        "prost encoding (left) differs from the hand-computed golden (right)"
    );
    let decoded = M::decode(golden).expect("golden bytes decode");
    assert_eq!(&decoded, value, "golden bytes decode to a different value");
}

/// Concatenates golden fragments; lets each field's bytes sit on its own commented line.
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn ebpf_event(event: EbpfEvent) -> Event {
    Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(event),
        })),
    }
}

fn netmsg_event(meta: Metadata, msg: Msg) -> Event {
    ebpf_event(EbpfEvent::Message(MessageEvent {
        meta,
        msg: Some(msg),
    }))
}

fn metadata(conn_type: ConnType, command: &str, inbound: bool, size: u64) -> Metadata {
    Metadata {
        peer_id: 7,
        addr: PEER_ADDR.to_string(),
        conn_type: conn_type as i32,
        command: command.to_string(),
        inbound,
        size,
    }
}

#[test]
fn validation_block_connected() {
    let hash: Vec<u8> = (0x00..0x20).collect();
    let event = ebpf_event(EbpfEvent::Validation(ValidationEvent {
        event: Some(validation_event::Event::BlockConnected(BlockConnected {
            hash: hash.clone(),
            height: 840_000,
            transactions: 3_050,
            inputs: 7_000,
            sigops: 20_000,
            connection_time: 123_456_789,
        })),
    }));
    let golden = bytes(&[
        &[0x0A, 0x39], // Event.ebpf_extractor: field 1 LEN, 57 bytes
        &[0x2A, 0x37], // ebpf.validation: field 5 LEN (5 << 3 | 2 = 0x2A), 55 bytes
        &[0x0A, 0x35], // ValidationEvent.block_connected: field 1 LEN, 53 bytes
        &[0x0A, 0x20], // BlockConnected.hash: field 1 LEN, 32 bytes ...
        &hash,         // ... 0x00..=0x1F verbatim (internal byte order)
        // height: field 2 varint; int32 840000 = 0xCD140 -> 7-bit groups 0x40 0x22 0x33
        &[0x10, 0xC0, 0xA2, 0x33],
        // transactions: field 3 varint; int64 3050 = 0xBEA -> 0x6A 0x17
        &[0x18, 0xEA, 0x17],
        // inputs: field 4 varint; int32 7000 = 0x1B58 -> 0x58 0x36
        &[0x20, 0xD8, 0x36],
        // sigops: field 5 varint; int64 20000 = 0x4E20 -> 0x20 0x1C 0x01
        &[0x28, 0xA0, 0x9C, 0x01],
        // connection_time: field 6 varint; uint64 123456789 = 0x75BCD15 -> 0x15 0x1A 0x6F 0x3A
        &[0x30, 0x95, 0x9A, 0xEF, 0x3A],
        &TIMESTAMP_FIELD, // Event.timestamp last: tag 10 sorts after the oneof (tags 1..4)
    ]);
    assert_golden(&event, &golden);
}

#[test]
fn netmsg_ping() {
    let event = netmsg_event(
        metadata(ConnType::OutboundFullRelay, "ping", false, 8),
        Msg::Ping(Ping {
            value: 0x0123_4567_89AB_CDEF,
        }),
    );
    let golden = bytes(&[
        &[0x0A, 0x2B], // Event.ebpf_extractor: field 1 LEN, 43 bytes
        &[0x0A, 0x29], // ebpf.message: field 1 LEN, 41 bytes
        &[0x0A, 0x1C], // MessageEvent.meta: field 1 LEN, 28 bytes
        &[0x08, 0x07], // Metadata.peer_id: field 1 varint, 7
        &[0x12, 0x0C], // Metadata.addr: field 2 LEN, 12 bytes ...
        PEER_ADDR.as_bytes(),
        &[0x18, 0x02], // Metadata.conn_type: field 3 varint, enum OutboundFullRelay = 2
        &[0x22, 0x04], // Metadata.command: field 4 LEN, 4 bytes ...
        b"ping",
        &[0x28, 0x00], // Metadata.inbound: field 5 varint, false (required: written anyway)
        &[0x30, 0x08], // Metadata.size: field 6 varint, 8
        &[0x12, 0x09], // MessageEvent.ping: field 2 LEN, 9 bytes
        &[0x09],       // Ping.value: field 1, wire type 1 (fixed64): 1 << 3 | 1 = 0x09 ...
        &[0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01], // ... 0x0123456789ABCDEF, LE
        &TIMESTAMP_FIELD, // Event.timestamp
    ]);
    assert_golden(&event, &golden);
}

#[test]
fn netmsg_feefilter_zigzag() {
    let event = netmsg_event(
        metadata(ConnType::Inbound, "feefilter", true, 8),
        Msg::Feefilter(FeeFilter { fee: 1_000 }),
    );
    let golden = bytes(&[
        &[0x0A, 0x2A], // Event.ebpf_extractor: field 1 LEN, 42 bytes
        &[0x0A, 0x28], // ebpf.message: field 1 LEN, 40 bytes
        &[0x0A, 0x21], // MessageEvent.meta: field 1 LEN, 33 bytes
        &[0x08, 0x07], // Metadata.peer_id: 7
        &[0x12, 0x0C], // Metadata.addr: 12 bytes ...
        PEER_ADDR.as_bytes(),
        &[0x18, 0x01], // Metadata.conn_type: enum Inbound = 1
        &[0x22, 0x09], // Metadata.command: 9 bytes ...
        b"feefilter",
        &[0x28, 0x01], // Metadata.inbound: true
        &[0x30, 0x08], // Metadata.size: 8
        &[0x52, 0x03], // MessageEvent.feefilter: field 10 LEN (10 << 3 | 2 = 0x52), 3 bytes
        // FeeFilter.fee: field 1 varint; sint64 1000 zigzags to 2000 = 0x7D0 -> 0x50 0x0F.
        // (As int64 it would be 0xE8 0x07, so a sint64 -> int64 retype fails here.)
        &[0x08, 0xD0, 0x0F],
        &TIMESTAMP_FIELD, // Event.timestamp
    ]);
    assert_golden(&event, &golden);
}

#[test]
fn p2p_feefilter_announcement_negative_zigzag() {
    let event = Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::P2pExtractor(P2p {
            p2p_event: Some(P2pEvent::FeefilterAnnouncement(-1_000)),
        })),
    };
    let golden = bytes(&[
        &[0x1A, 0x03], // Event.p2p_extractor: field 3 LEN (3 << 3 | 2 = 0x1A), 3 bytes
        // p2p.feefilter_announcement: field 4 varint (0x20); sint64 -1000 zigzags to
        // 2 * 1000 - 1 = 1999 = 0x7CF -> 0x4F 0x0F. As int64 it would take 10 bytes.
        &[0x20, 0xCF, 0x0F],
        &TIMESTAMP_FIELD, // Event.timestamp
    ]);
    assert_golden(&event, &golden);
}

#[test]
fn netmsg_version_with_addresses() {
    let receiver = Address {
        timestamp: 0, // the version message's addresses carry no time
        services: 1,
        port: 8333,
        address: Some(address::Address::Ipv4("1.2.3.4".to_string())),
    };
    let sender = Address {
        timestamp: 1_700_000_000,
        services: 0xC09,
        port: 18_444,
        address: Some(address::Address::Ipv4("10.0.0.1".to_string())),
    };
    let event = netmsg_event(
        metadata(ConnType::Inbound, "version", true, 102),
        Msg::Version(Version {
            version: 70_016,
            services: 0xC09,
            timestamp: 1_700_000_000,
            receiver,
            sender,
            nonce: 0xDEAD_BEEF,
            user_agent: "/Satoshi:27.0.0/".to_string(),
            start_height: 840_000,
            relay: true,
        }),
    );
    let golden = bytes(&[
        &[0x0A, 0x7B], // Event.ebpf_extractor: field 1 LEN, 123 bytes
        &[0x0A, 0x79], // ebpf.message: field 1 LEN, 121 bytes
        &[0x0A, 0x1F], // MessageEvent.meta: field 1 LEN, 31 bytes
        &[0x08, 0x07], // Metadata.peer_id: 7
        &[0x12, 0x0C], // Metadata.addr: 12 bytes ...
        PEER_ADDR.as_bytes(),
        &[0x18, 0x01], // Metadata.conn_type: enum Inbound = 1
        &[0x22, 0x07], // Metadata.command: 7 bytes ...
        b"version",
        &[0x28, 0x01], // Metadata.inbound: true
        &[0x30, 0x66], // Metadata.size: 102
        &[0x6A, 0x56], // MessageEvent.version: field 13 LEN (13 << 3 | 2 = 0x6A), 86 bytes
        // Version.version: field 1 varint; uint32 70016 = 0x11180 -> 0x00 0x23 0x04
        &[0x08, 0x80, 0xA3, 0x04],
        // Version.services: field 2 varint; uint64 0xC09 -> 0x09 0x18
        &[0x10, 0x89, 0x18],
        // Version.timestamp: field 3 varint; sint64 1_700_000_000 zigzags to 3_400_000_000
        // = 0xCAA7_E200 -> 0x00 0x44 0x1F 0x55 0x0C
        &[0x18, 0x80, 0xC4, 0x9F, 0xD5, 0x0C],
        // Version.receiver: field 4 LEN, 16 bytes. Address's oneof sits at its lowest tag (2),
        // between timestamp (1) and services (9).
        &[0x22, 0x10],
        &[0x08, 0x00], // Address.timestamp: field 1 varint, 0 (required: written anyway)
        &[0x12, 0x07], // Address.ipv4: field 2 LEN, 7 bytes ...
        b"1.2.3.4",
        &[0x48, 0x01],       // Address.services: field 9 varint (9 << 3 = 0x48), 1
        &[0x50, 0x8D, 0x41], // Address.port: field 10 varint (0x50); 8333 = 0x208D -> 0x0D 0x41
        // Version.sender: field 5 LEN, 23 bytes
        &[0x2A, 0x17],
        &[0x08, 0x80, 0xE2, 0xCF, 0xAA, 0x06], // Address.timestamp: uint32 0x6553F100
        &[0x12, 0x08],                         // Address.ipv4: field 2 LEN, 8 bytes ...
        b"10.0.0.1",
        &[0x48, 0x89, 0x18],       // Address.services: 0xC09
        &[0x50, 0x8C, 0x90, 0x01], // Address.port: 18444 = 0x480C -> 0x0C 0x20 0x01
        // Version.nonce: field 6 varint; uint64 0xDEADBEEF -> 0x6F 0x7D 0x36 0x75 0x0D
        &[0x30, 0xEF, 0xFD, 0xB6, 0xF5, 0x0D],
        // Version.user_agent: field 7 LEN, 16 bytes ...
        &[0x3A, 0x10],
        b"/Satoshi:27.0.0/",
        // Version.start_height: field 8 varint (0x40); sint32 840000 zigzags to 1_680_000
        // = 0x19A280 -> 0x00 0x45 0x66
        &[0x40, 0x80, 0xC5, 0x66],
        &[0x48, 0x01],    // Version.relay: field 9 varint, true
        &TIMESTAMP_FIELD, // Event.timestamp
    ]);
    assert_golden(&event, &golden);
}

#[test]
fn mempool_added() {
    let txid: Vec<u8> = (0xE0..=0xFF).collect();
    let event = ebpf_event(EbpfEvent::Mempool(MempoolEvent {
        event: Some(mempool_event::Event::Added(Added {
            txid: txid.clone(),
            vsize: 141,
            fee: 2_820,
        })),
    }));
    let golden = bytes(&[
        &[0x0A, 0x2C],       // Event.ebpf_extractor: field 1 LEN, 44 bytes
        &[0x22, 0x2A],       // ebpf.mempool: field 4 LEN (4 << 3 | 2 = 0x22), 42 bytes
        &[0x0A, 0x28],       // MempoolEvent.added: field 1 LEN, 40 bytes
        &[0x0A, 0x20],       // Added.txid: field 1 LEN, 32 bytes ...
        &txid,               // ... 0xE0..=0xFF verbatim
        &[0x10, 0x8D, 0x01], // Added.vsize: field 2 varint; int32 141 = 0x8D -> 0x0D 0x01
        &[0x18, 0x84, 0x16], // Added.fee: field 3 varint; int64 2820 = 0xB04 -> 0x04 0x16
        &TIMESTAMP_FIELD,    // Event.timestamp
    ]);
    assert_golden(&event, &golden);
}

/// Negative int32/int64 are sign-extended to 64 bits: always 10 bytes, never 5, and never
/// zigzag. Encoders in other languages that get this wrong break interop.
#[test]
fn mempool_added_negative_int32_is_sign_extended() {
    let added = Added {
        txid: vec![0xAB],
        vsize: -1,
        fee: -2,
    };
    let golden = bytes(&[
        &[0x0A, 0x01, 0xAB], // Added.txid: field 1 LEN, 1 byte
        // Added.vsize: field 2 varint; int32 -1 = 0xFFFF_FFFF_FFFF_FFFF as 64 bits
        &[0x10],
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        // Added.fee: field 3 varint; int64 -2 = 0xFFFF_FFFF_FFFF_FFFE
        &[0x18],
        &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    ]);
    assert_golden(&added, &golden);
}

#[test]
fn rpc_uptime() {
    let event = Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(RpcEvent::Uptime(86_400)),
        })),
    };
    let golden = bytes(&[
        &[0x12, 0x04], // Event.rpc_extractor: field 2 LEN, 4 bytes
        // rpc.uptime: field 3 varint (0x18); uint32 86400 = 0x15180 -> 0x00 0x23 0x05
        &[0x18, 0x80, 0xA3, 0x05],
        &TIMESTAMP_FIELD, // Event.timestamp
    ]);
    assert_golden(&event, &golden);
}

/// Decoders must accept fields in any order: an encoder that follows prost-build's struct
/// declaration order (or any other) may write `timestamp` before the oneof arm.
#[test]
fn timestamp_first_order_decodes_like_prost_order() {
    let timestamp_first = bytes(&[
        &TIMESTAMP_FIELD,
        &[0x12, 0x04, 0x18, 0x80, 0xA3, 0x05], // rpc_extractor { uptime: 86400 }
    ]);
    let expected = Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(RpcEvent::Uptime(86_400)),
        })),
    };
    assert_eq!(Event::decode(timestamp_first.as_slice()).unwrap(), expected);
}

/// prost writes a proto2 `required` scalar even when it holds the default value (unlike a
/// proto3 implicit-presence field), which strict decoders in other languages rely on.
#[test]
fn prost_encodes_default_valued_required_fields() {
    let golden = [
        0x08, 0x00, // peer_id: 0
        0x12, 0x00, // addr: "" (LEN 0)
        0x18, 0x00, // conn_type: Unknown = 0
        0x22, 0x00, // command: ""
        0x28, 0x00, // inbound: false
        0x30, 0x00, // size: 0
    ];
    assert_golden(&Metadata::default(), &golden);
}

/// The log extractor's message after upstream c31e333: `threadname` (3), the oneof renumbered
/// to 4..6 (here arm 6, `block_checked_log`), `log_level` (7) and `log_line_bytes` (8). The
/// oneof's lowest tag is 4, so prost writes it after field 3 and before field 7.
#[test]
fn log_block_checked_with_the_new_fields() {
    use peerlab::event::proto::log_extractor::{
        log::LogEvent, BlockCheckedLog, Log, LogDebugCategory, LogLevel,
    };
    let event = Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::LogExtractor(Log {
            log_timestamp: 1_000_000,
            category: LogDebugCategory::Validation as i32,
            threadname: "msghand".into(),
            log_event: Some(LogEvent::BlockCheckedLog(BlockCheckedLog {
                block_hash: "aa".into(),
                state: "bad-cb-amount".into(),
                debug_message: "x".into(),
            })),
            log_level: LogLevel::Debug as i32,
            log_line_bytes: 300,
        })),
    };
    let golden = bytes(&[
        &[0x22, 0x2C], // Event.log_extractor: field 4 LEN, 44 bytes
        // log_timestamp: field 1 varint; 1_000_000 = 0xF4240 -> groups 0x40 0x04 0x3D
        &[0x08, 0xC0, 0x84, 0x3D],
        &[0x10, 0x1A], // category: field 2 varint, VALIDATION = 26
        // threadname: field 3 LEN (0x1A), 7 bytes "msghand"
        &[0x1A, 0x07, b'm', b's', b'g', b'h', b'a', b'n', b'd'],
        &[0x32, 0x16], // block_checked_log: field 6 LEN (6 << 3 | 2 = 0x32), 22 bytes
        &[0x0A, 0x02, b'a', b'a'], // block_hash: field 1 LEN "aa"
        &[0x12, 0x0D], // state: field 2 LEN, 13 bytes
        b"bad-cb-amount",
        &[0x1A, 0x01, b'x'], // debug_message: field 3 LEN "x"
        &[0x38, 0x03],       // log_level: field 7 varint (7 << 3 = 0x38), DEBUG = 3
        // log_line_bytes: field 8 varint (0x40); 300 = 0x12C -> 0x2C|0x80, 0x02
        &[0x40, 0xAC, 0x02],
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// The ipc extractor's `BlockTip` on arm 5 of `Event`.
#[test]
fn ipc_block_tip() {
    use peerlab::event::proto::ipc_extractor::{ipc::IpcEvent, BlockTip, Ipc};
    let event = Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::IpcExtractor(Ipc {
            ipc_event: Some(IpcEvent::BlockTip(BlockTip {
                height: 101,
                hash: vec![0xAB, 0xCD],
            })),
        })),
    };
    let golden = bytes(&[
        &[0x2A, 0x08], // Event.ipc_extractor: field 5 LEN (5 << 3 | 2 = 0x2A), 8 bytes
        &[0x0A, 0x06], // ipc.block_tip: field 1 LEN, 6 bytes
        &[0x08, 0x65], // height: field 1 varint, int32 101
        &[0x12, 0x02, 0xAB, 0xCD], // hash: field 2 LEN, 2 bytes
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// `rpc.estimate_smart_fee` (arm 12, new): a double (fixed64, wire type 1), an enum and a
/// repeated string.
#[test]
fn rpc_estimate_smart_fee() {
    use peerlab::event::proto::rpc_extractor::{EstimateSmartFee, FeeEstimateMode};
    let event = Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(RpcEvent::EstimateSmartFee(EstimateSmartFee {
                fee_rate: Some(1.5),
                blocks: 2,
                requested_blocks: 1,
                mode: FeeEstimateMode::Conservative as i32,
                errors: vec!["e".into()],
            })),
        })),
    };
    let golden = bytes(&[
        &[0x12, 0x14], // Event.rpc_extractor: field 2 LEN, 20 bytes
        &[0x62, 0x12], // rpc.estimate_smart_fee: field 12 LEN (12 << 3 | 2 = 0x62), 18 bytes
        // fee_rate: field 1 fixed64 (0x09); 1.5 = 0x3FF8000000000000, little-endian
        &[0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F],
        &[0x10, 0x02],       // blocks: field 2 varint 2
        &[0x18, 0x01],       // requested_blocks: field 3 varint 1
        &[0x20, 0x02],       // mode: field 4 varint, CONSERVATIVE = 2
        &[0x2A, 0x01, b'e'], // errors: field 5 LEN "e"
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// The archive header (archive files only, never on NATS): `created` in seconds, and
/// `low_data` written only when set.
#[test]
fn archive_header() {
    use peerlab::event::proto::header::ArchiveHeader;
    // created: field 1 varint; 1_700_000_000 = 0x6553F100 -> groups 0x00 0x62 0x4F 0x2A 0x06
    let created = [0x08, 0x80, 0xE2, 0xCF, 0xAA, 0x06];
    let header = ArchiveHeader {
        created: 1_700_000_000,
        low_data: None,
    };
    assert_golden(&header, &created);
    let low_data = ArchiveHeader {
        low_data: Some(true),
        ..header
    };
    assert_golden(&low_data, &bytes(&[&created, &[0x10, 0x01]])); // low_data: field 2 varint 1
}

/// An `Event` carrying one `rpc` arm.
fn rpc_event(event: RpcEvent) -> Event {
    Event {
        timestamp: TIMESTAMP_MS,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(event),
        })),
    }
}

/// `rpc.chain_tx_stats` (arm 7): required uint32s and a hex string, then the three optionals
/// Core returns for a non-empty window, written because they are set.
#[test]
fn rpc_chain_tx_stats() {
    use peerlab::event::proto::rpc_extractor::ChainTxStats;
    let event = rpc_event(RpcEvent::ChainTxStats(ChainTxStats {
        time: 1_700_000_000,
        tx_count: 300,
        window_final_block_hash: "ab".into(),
        window_final_block_height: 101,
        window_block_count: 100,
        window_tx_count: Some(150),
        window_interval: Some(3_000),
        tx_rate: Some(0.25),
    }));
    let golden = bytes(&[
        &[0x12, 0x22], // Event.rpc_extractor: field 2 LEN, 34 bytes
        &[0x3A, 0x20], // rpc.chain_tx_stats: field 7 LEN (7 << 3 | 2 = 0x3A), 32 bytes
        // time: field 1 varint; 1_700_000_000 = 0x6553F100 -> 0x00 0x62 0x4F 0x2A 0x06
        &[0x08, 0x80, 0xE2, 0xCF, 0xAA, 0x06],
        &[0x10, 0xAC, 0x02], // tx_count: field 2 varint; 300 = 0x12C -> 0x2C 0x02
        &[0x1A, 0x02, b'a', b'b'], // window_final_block_hash: field 3 LEN "ab"
        &[0x20, 0x65],       // window_final_block_height: field 4 varint, 101
        &[0x28, 0x64],       // window_block_count: field 5 varint, 100
        &[0x30, 0x96, 0x01], // window_tx_count: field 6 varint; 150 = 0x96 -> 0x16 0x01
        &[0x38, 0xB8, 0x17], // window_interval: field 7 varint; 3000 = 0xBB8 -> 0x38 0x17
        // tx_rate: field 8 fixed64 (8 << 3 | 1 = 0x41); 0.25 = 0x3FD0000000000000, LE
        &[0x41, 0, 0, 0, 0, 0, 0, 0xD0, 0x3F],
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// `rpc.network_info` (arm 8): a negative int32 (sign-extended to 10 bytes), repeated strings,
/// repeated messages and doubles.
#[test]
fn rpc_network_info() {
    use peerlab::event::proto::rpc_extractor::{
        NetworkInfo, NetworkInfoLocalAddress, NetworkInfoNetwork,
    };
    let event = rpc_event(RpcEvent::NetworkInfo(NetworkInfo {
        version: 290_000,
        subversion: "/S:29/".into(),
        protocol_version: 70_016,
        local_services: "0409".into(),
        local_services_names: vec!["W".into()],
        local_relay: true,
        time_offset: -1,
        connections: 2,
        connections_in: 1,
        connections_out: 1,
        network_active: true,
        networks: vec![NetworkInfoNetwork {
            name: "ipv4".into(),
            limited: false,
            reachable: true,
            proxy: String::new(),
            proxy_randomize_credentials: false,
        }],
        relay_fee: 0.5,
        incremental_fee: 0.25,
        local_addresses: vec![NetworkInfoLocalAddress {
            address: "1.2.3.4".into(),
            port: 8_333,
            score: 1,
        }],
        warnings: Vec::new(),
    }));
    let golden = bytes(&[
        &[0x12, 0x62], // Event.rpc_extractor: field 2 LEN, 98 bytes
        &[0x42, 0x60], // rpc.network_info: field 8 LEN (8 << 3 | 2 = 0x42), 96 bytes
        // version: field 1 varint; int32 290000 = 0x46CD0 -> 0x50 0x59 0x11
        &[0x08, 0xD0, 0xD9, 0x11],
        &[0x12, 0x06], // subversion: field 2 LEN, 6 bytes ...
        b"/S:29/",
        // protocol_version: field 3 varint; 70016 = 0x11180 -> 0x00 0x23 0x04
        &[0x18, 0x80, 0xA3, 0x04],
        &[0x22, 0x04], // local_services: field 4 LEN, 4 bytes ...
        b"0409",
        &[0x2A, 0x01, b'W'], // local_services_names: field 5 LEN, one element "W"
        &[0x30, 0x01],       // local_relay: field 6 varint, true
        // time_offset: field 7 varint; int32 -1 sign-extended to 64 bits: 10 bytes
        &[
            0x38, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ],
        &[0x40, 0x02], // connections: field 8 varint, 2
        &[0x48, 0x01], // connections_in: field 9 varint, 1
        &[0x50, 0x01], // connections_out: field 10 varint, 1
        &[0x58, 0x01], // network_active: field 11 varint (11 << 3 = 0x58), true
        &[0x62, 0x0E], // networks: field 12 LEN (0x62), one element of 14 bytes
        &[0x0A, 0x04], // NetworkInfoNetwork.name: field 1 LEN, 4 bytes ...
        b"ipv4",
        &[0x10, 0x00], // limited: field 2 varint, false (required: written anyway)
        &[0x18, 0x01], // reachable: field 3 varint, true
        &[0x22, 0x00], // proxy: field 4 LEN, "" (required: written anyway)
        &[0x28, 0x00], // proxy_randomize_credentials: field 5 varint, false
        // relay_fee: field 13 fixed64 (13 << 3 | 1 = 0x69); 0.5 = 0x3FE0000000000000, LE
        &[0x69, 0, 0, 0, 0, 0, 0, 0xE0, 0x3F],
        // incremental_fee: field 14 fixed64 (0x71); 0.25 = 0x3FD0000000000000, LE
        &[0x71, 0, 0, 0, 0, 0, 0, 0xD0, 0x3F],
        &[0x7A, 0x0E], // local_addresses: field 15 LEN (0x7A), one element of 14 bytes
        &[0x0A, 0x07], // NetworkInfoLocalAddress.address: field 1 LEN, 7 bytes ...
        b"1.2.3.4",
        &[0x10, 0x8D, 0x41], // port: field 2 varint; 8333 = 0x208D -> 0x0D 0x41
        &[0x18, 0x01],       // score: field 3 varint, 1
        // warnings: field 16, empty: a repeated field with no element writes nothing
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// `rpc.blockchain_info` (arm 9): every field required, so the pruning fields Core omits
/// when not pruning are written as zeros.
#[test]
fn rpc_blockchain_info() {
    use peerlab::event::proto::rpc_extractor::BlockchainInfo;
    let event = rpc_event(RpcEvent::BlockchainInfo(BlockchainInfo {
        chain: "regtest".into(),
        blocks: 101,
        headers: 101,
        bestblockhash: "ab".into(),
        difficulty: 1.0,
        time: 1_700_000_000,
        mediantime: 1_699_999_000,
        verificationprogress: 1.0,
        initialblockdownload: false,
        chainwork: "ca".into(),
        size_on_disk: 30_000,
        pruned: false,
        prune_height: 0,
        prune_target_size: 0,
        warnings: vec!["w".into()],
    }));
    let golden = bytes(&[
        &[0x12, 0x44], // Event.rpc_extractor: field 2 LEN, 68 bytes
        &[0x4A, 0x42], // rpc.blockchain_info: field 9 LEN (9 << 3 | 2 = 0x4A), 66 bytes
        &[0x0A, 0x07], // chain: field 1 LEN, 7 bytes ...
        b"regtest",
        &[0x10, 0x65],             // blocks: field 2 varint, 101
        &[0x18, 0x65],             // headers: field 3 varint, 101
        &[0x22, 0x02, b'a', b'b'], // bestblockhash: field 4 LEN "ab"
        // difficulty: field 5 fixed64 (5 << 3 | 1 = 0x29); 1.0 = 0x3FF0000000000000, LE
        &[0x29, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F],
        // time: field 6 varint; 1_700_000_000 = 0x6553F100 -> 0x00 0x62 0x4F 0x2A 0x06
        &[0x30, 0x80, 0xE2, 0xCF, 0xAA, 0x06],
        // mediantime: field 7 varint; 1_699_999_000 = 0x6553ED18 -> 0x18 0x5A 0x4F 0x2A 0x06
        &[0x38, 0x98, 0xDA, 0xCF, 0xAA, 0x06],
        // verificationprogress: field 8 fixed64 (0x41); 1.0, LE
        &[0x41, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F],
        &[0x48, 0x00],             // initialblockdownload: field 9 varint, false
        &[0x52, 0x02, b'c', b'a'], // chainwork: field 10 LEN (0x52) "ca"
        // size_on_disk: field 11 varint (0x58); 30000 = 0x7530 -> 0x30 0x6A 0x01
        &[0x58, 0xB0, 0xEA, 0x01],
        &[0x60, 0x00],       // pruned: field 12 varint, false
        &[0x68, 0x00],       // prune_height: field 13 varint, 0
        &[0x70, 0x00],       // prune_target_size: field 14 varint, 0
        &[0x7A, 0x01, b'w'], // warnings: field 15 LEN (0x7A), one element "w"
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// `rpc.orphan_txs` (arm 10): a repeated uint64 of a proto2 file is NOT packed (one tag per
/// element), and the required `bitcoin_primitives.Transaction` nests its bytes.
#[test]
fn rpc_orphan_txs() {
    use peerlab::event::proto::bitcoin_primitives::Transaction;
    use peerlab::event::proto::rpc_extractor::{OrphanTx, OrphanTxs};
    let event = rpc_event(RpcEvent::OrphanTxs(OrphanTxs {
        orphans: vec![OrphanTx {
            txid: "aa".into(),
            wtxid: "bb".into(),
            bytes: 85,
            vsize: 85,
            weight: 340,
            from: vec![3, 7],
            transaction: Transaction {
                txid: vec![0x01],
                wtxid: vec![0x02],
                raw: Some(vec![0x03]),
            },
        }],
    }));
    let golden = bytes(&[
        &[0x12, 0x22],             // Event.rpc_extractor: field 2 LEN, 34 bytes
        &[0x52, 0x20],             // rpc.orphan_txs: field 10 LEN (10 << 3 | 2 = 0x52), 32 bytes
        &[0x0A, 0x1E],             // OrphanTxs.orphans: field 1 LEN, one element of 30 bytes
        &[0x0A, 0x02, b'a', b'a'], // txid: field 1 LEN "aa"
        &[0x12, 0x02, b'b', b'b'], // wtxid: field 2 LEN "bb"
        &[0x18, 0x55],             // bytes: field 3 varint, 85
        &[0x20, 0x55],             // vsize: field 4 varint, 85
        &[0x28, 0xD4, 0x02],       // weight: field 5 varint; 340 = 0x154 -> 0x54 0x02
        // from: field 6 varint, unpacked: a tag per element (packed would be 0x32 0x02 0x03
        // 0x07)
        &[0x30, 0x03, 0x30, 0x07],
        &[0x3A, 0x09],       // transaction: field 7 LEN, 9 bytes
        &[0x0A, 0x01, 0x01], // Transaction.txid: field 1 LEN, 1 byte
        &[0x12, 0x01, 0x02], // Transaction.wtxid: field 2 LEN, 1 byte
        &[0x1A, 0x01, 0x03], // Transaction.raw: field 3 LEN, 1 byte
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}

/// `rpc.addrman` (arm 11): maps are repeated entry messages with the key as field 1 and the
/// value as field 2. prost leaves a key or value out of its entry when it equals the
/// default, so the keys here are not 0; an empty map (`tried`) writes nothing; an unset
/// optional (`mapped_as`) is not written.
#[test]
fn rpc_addrman() {
    use peerlab::event::proto::rpc_extractor::{Addrman, AddrmanBucket, AddrmanEntry};
    let entry = AddrmanEntry {
        address: "1.2.3.4".into(),
        port: 8_333,
        network: "ipv4".into(),
        services: 9,
        time: 1_700_000_000,
        source: "5.6.7.8".into(),
        source_network: "ipv4".into(),
        mapped_as: None,
        source_mapped_as: Some(64_512),
    };
    let event = rpc_event(RpcEvent::Addrman(Addrman {
        new: [(
            5,
            AddrmanBucket {
                entries: [(3, entry)].into(),
            },
        )]
        .into(),
        tried: Default::default(),
    }));
    let golden = bytes(&[
        &[0x12, 0x3B], // Event.rpc_extractor: field 2 LEN, 59 bytes
        &[0x5A, 0x39], // rpc.addrman: field 11 LEN (11 << 3 | 2 = 0x5A), 57 bytes
        &[0x0A, 0x37], // Addrman.new: field 1 LEN, one map entry of 55 bytes
        &[0x08, 0x05], // entry key: field 1 varint, bucket 5
        &[0x12, 0x33], // entry value: field 2 LEN, an AddrmanBucket of 51 bytes
        &[0x0A, 0x31], // AddrmanBucket.entries: field 1 LEN, one map entry of 49 bytes
        &[0x08, 0x03], // entry key: field 1 varint, position 3
        &[0x12, 0x2D], // entry value: field 2 LEN, an AddrmanEntry of 45 bytes
        &[0x0A, 0x07], // address: field 1 LEN, 7 bytes ...
        b"1.2.3.4",
        &[0x10, 0x8D, 0x41], // port: field 2 varint; 8333 = 0x208D -> 0x0D 0x41
        &[0x1A, 0x04],       // network: field 3 LEN, 4 bytes ...
        b"ipv4",
        &[0x20, 0x09], // services: field 4 varint, 9
        // time: field 5 varint; int64 1_700_000_000 -> 0x00 0x62 0x4F 0x2A 0x06
        &[0x28, 0x80, 0xE2, 0xCF, 0xAA, 0x06],
        &[0x32, 0x07], // source: field 6 LEN, 7 bytes ...
        b"5.6.7.8",
        &[0x3A, 0x04], // source_network: field 7 LEN, 4 bytes ...
        b"ipv4",
        // mapped_as (field 8) unset: absent. source_mapped_as: field 9 varint (0x48);
        // 64512 = 0xFC00 -> 0x00 0x78 0x03
        &[0x48, 0x80, 0xF8, 0x03],
        &TIMESTAMP_FIELD,
    ]);
    assert_golden(&event, &golden);
}
