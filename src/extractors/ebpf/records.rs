//! Ring-buffer records as the BPF programs write them (mirrors of `bpf/events.h`).
//!
//! Layouts are `#[repr(C)]` copies of the C structs, with the same size assertions as the C
//! side. [`Record::parse`] checks the length before reading, so a short or unknown record is
//! an error value, never undefined behaviour.

use std::ffi::CStr;

/// Probe ids (`enum probe_id`): counters index and record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ProbeId {
    /// net:inbound_message
    InboundMessage = 0,
    /// net:outbound_message
    OutboundMessage = 1,
    /// net:inbound_connection
    InboundConnection = 2,
    /// net:outbound_connection
    OutboundConnection = 3,
    /// net:closed_connection
    ClosedConnection = 4,
    /// net:evicted_inbound_connection
    EvictedInboundConnection = 5,
    /// net:misbehaving_connection
    MisbehavingConnection = 6,
    /// mempool:added
    MempoolAdded = 7,
    /// mempool:removed
    MempoolRemoved = 8,
    /// mempool:replaced
    MempoolReplaced = 9,
    /// mempool:rejected
    MempoolRejected = 10,
    /// validation:block_connected
    BlockConnected = 11,
    /// utxocache:flush
    UtxocacheFlush = 12,
    /// utxocache:add
    UtxocacheAdd = 13,
    /// utxocache:spent
    UtxocacheSpent = 14,
    /// utxocache:uncache
    UtxocacheUncache = 15,
}

impl ProbeId {
    /// Every probe, in id order.
    pub const ALL: [ProbeId; 16] = [
        ProbeId::InboundMessage,
        ProbeId::OutboundMessage,
        ProbeId::InboundConnection,
        ProbeId::OutboundConnection,
        ProbeId::ClosedConnection,
        ProbeId::EvictedInboundConnection,
        ProbeId::MisbehavingConnection,
        ProbeId::MempoolAdded,
        ProbeId::MempoolRemoved,
        ProbeId::MempoolReplaced,
        ProbeId::MempoolRejected,
        ProbeId::BlockConnected,
        ProbeId::UtxocacheFlush,
        ProbeId::UtxocacheAdd,
        ProbeId::UtxocacheSpent,
        ProbeId::UtxocacheUncache,
    ];

    /// The probe named `provider:name`.
    pub fn from_tracepoint(name: &str) -> Option<ProbeId> {
        ProbeId::ALL.into_iter().find(|p| p.tracepoint() == name)
    }

    /// The id with this number.
    pub fn from_u32(n: u32) -> Option<ProbeId> {
        ProbeId::ALL.get(n as usize).copied()
    }

    /// `provider:name` of the tracepoint.
    pub fn tracepoint(self) -> &'static str {
        crate::node::BITCOIN_CORE_TRACEPOINTS[match self {
            ProbeId::InboundMessage => 0,
            ProbeId::OutboundMessage => 1,
            ProbeId::InboundConnection => 2,
            ProbeId::OutboundConnection => 3,
            ProbeId::ClosedConnection => 4,
            ProbeId::EvictedInboundConnection => 5,
            ProbeId::MisbehavingConnection => 6,
            ProbeId::MempoolAdded => 7,
            ProbeId::MempoolRemoved => 8,
            ProbeId::MempoolReplaced => 9,
            ProbeId::MempoolRejected => 10,
            ProbeId::BlockConnected => 11,
            ProbeId::UtxocacheFlush => 12,
            ProbeId::UtxocacheAdd => 13,
            ProbeId::UtxocacheSpent => 14,
            ProbeId::UtxocacheUncache => 15,
        }]
    }

    /// The BPF program (C function) that handles this probe.
    pub fn program(self) -> &'static str {
        match self {
            ProbeId::InboundMessage => "inbound_message",
            ProbeId::OutboundMessage => "outbound_message",
            ProbeId::InboundConnection => "inbound_connection",
            ProbeId::OutboundConnection => "outbound_connection",
            ProbeId::ClosedConnection => "closed_connection",
            ProbeId::EvictedInboundConnection => "evicted_inbound_connection",
            ProbeId::MisbehavingConnection => "misbehaving_connection",
            ProbeId::MempoolAdded => "mempool_added",
            ProbeId::MempoolRemoved => "mempool_removed",
            ProbeId::MempoolReplaced => "mempool_replaced",
            ProbeId::MempoolRejected => "mempool_rejected",
            ProbeId::BlockConnected => "block_connected",
            ProbeId::UtxocacheFlush => "utxocache_flush",
            ProbeId::UtxocacheAdd => "utxocache_add",
            ProbeId::UtxocacheSpent => "utxocache_spent",
            ProbeId::UtxocacheUncache => "utxocache_uncache",
        }
    }
}

/// `struct record_header`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RecordHeader {
    /// Probe id.
    pub kind: u32,
    reserved: u32,
    /// CLOCK_MONOTONIC nanoseconds when the probe fired.
    pub ktime_ns: u64,
}

/// `struct message_record` (payload follows).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MessageRecord {
    pub h: RecordHeader,
    pub truncated: u8,
    /// 1 when `addr` and `conn_type` were not read (an earlier record carried them).
    pub peer_known: u8,
    pad: [u8; 6],
    pub peer_id: i64,
    pub size: u64,
    pub copied: u64,
    pub addr: [u8; 68],
    pub conn_type: [u8; 20],
    pub command: [u8; 20],
    pad2: u32,
}

/// `struct connection_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ConnectionRecord {
    pub h: RecordHeader,
    pub network: i32,
    pad: u32,
    pub peer_id: i64,
    pub value: u64,
    pub addr: [u8; 68],
    pub conn_type: [u8; 20],
}

/// `struct misbehaving_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MisbehavingRecord {
    pub h: RecordHeader,
    pad: u64,
    pub peer_id: i64,
    pub message: [u8; 128],
}

/// `struct mempool_added_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MempoolAddedRecord {
    pub h: RecordHeader,
    pub vsize: i32,
    pad: u32,
    pub fee: i64,
    pub txid: [u8; 32],
}

/// `struct mempool_removed_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MempoolRemovedRecord {
    pub h: RecordHeader,
    pub vsize: i32,
    pad: u32,
    pub fee: i64,
    pub entry_time: u64,
    pub txid: [u8; 32],
    pub reason: [u8; 16],
}

/// `struct mempool_replaced_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MempoolReplacedRecord {
    pub h: RecordHeader,
    pub replaced_vsize: i32,
    pad: u32,
    pub replaced_fee: i64,
    pub replaced_entry_time: u64,
    pub replacement_fee: i64,
    pub replacement_vsize: i32,
    pub replaced_by_transaction: u8,
    pad2: [u8; 3],
    pub replaced_txid: [u8; 32],
    pub replacement_id: [u8; 32],
}

/// `struct mempool_rejected_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MempoolRejectedRecord {
    pub h: RecordHeader,
    pad: u32,
    pub txid: [u8; 32],
    pub reason: [u8; 120],
}

/// `struct block_connected_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockConnectedRecord {
    pub h: RecordHeader,
    pub height: i32,
    pad: u32,
    pub transactions: u64,
    pub sigops: i64,
    pub duration_ns: i64,
    pub inputs: i32,
    pad2: u32,
    pub hash: [u8; 32],
}

/// `struct utxocache_flush_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UtxocacheFlushRecord {
    pub h: RecordHeader,
    pub mode: u32,
    pad: u32,
    pub duration_us: i64,
    pub coins: u64,
    pub bytes: u64,
    pub prune: u8,
    pad2: [u8; 7],
}

/// `struct utxocache_coin_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UtxocacheCoinRecord {
    pub h: RecordHeader,
    pub vout: u32,
    pub height: u32,
    pub coinbase: u8,
    pad: [u8; 7],
    pub value: i64,
    pub txid: [u8; 32],
}

const _: () = {
    use std::mem::size_of;
    assert!(size_of::<RecordHeader>() == 16);
    assert!(size_of::<MessageRecord>() == 160);
    assert!(size_of::<ConnectionRecord>() == 128);
    assert!(size_of::<MisbehavingRecord>() == 160);
    assert!(size_of::<MempoolAddedRecord>() == 64);
    assert!(size_of::<MempoolRemovedRecord>() == 88);
    assert!(size_of::<MempoolReplacedRecord>() == 120);
    assert!(size_of::<MempoolRejectedRecord>() == 176);
    assert!(size_of::<BlockConnectedRecord>() == 88);
    assert!(size_of::<UtxocacheFlushRecord>() == 56);
    assert!(size_of::<UtxocacheCoinRecord>() == 72);
};

/// A parsed record.
#[derive(Debug, Clone)]
pub enum Record {
    /// In/outbound P2P message with its (possibly truncated) payload.
    Message(MessageRecord, Vec<u8>),
    /// A connection opened, closed or evicted.
    Connection(ConnectionRecord),
    /// Misbehaviour.
    Misbehaving(MisbehavingRecord),
    /// mempool:added
    MempoolAdded(MempoolAddedRecord),
    /// mempool:removed
    MempoolRemoved(MempoolRemovedRecord),
    /// mempool:replaced
    MempoolReplaced(MempoolReplacedRecord),
    /// mempool:rejected
    MempoolRejected(MempoolRejectedRecord),
    /// validation:block_connected
    BlockConnected(BlockConnectedRecord),
    /// utxocache:flush
    UtxocacheFlush(UtxocacheFlushRecord),
    /// utxocache:add/spent/uncache
    UtxocacheCoin(UtxocacheCoinRecord),
}

/// Why a record could not be parsed (counted and reported by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Shorter than its struct.
    #[error("record of kind {kind} is {len} bytes, expected at least {expected}")]
    Short {
        /// Kind.
        kind: u32,
        /// Actual length.
        len: usize,
        /// Needed length.
        expected: usize,
    },
    /// Unknown kind.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// A message record of a peer whose address the extractor was never sent (see
    /// `peers.rs`).
    #[error("message record of peer {0}, whose address and connection type were never recorded")]
    UnknownPeer(i64),
}

/// Copies a `T` out of the front of `bytes` after checking the length.
fn read<T: Copy>(bytes: &[u8], kind: u32) -> Result<T, RecordError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() < expected {
        return Err(RecordError::Short {
            kind,
            len: bytes.len(),
            expected,
        });
    }
    // SAFETY: the length is checked above, T is a plain-old-data #[repr(C)] struct of integers
    // and byte arrays (every bit pattern valid), and read_unaligned tolerates any alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl Record {
    /// Parses one ring-buffer record.
    pub fn parse(bytes: &[u8]) -> Result<(u64, ProbeId, Record), RecordError> {
        let header: RecordHeader = read(bytes, u32::MAX)?;
        let kind = header.kind;
        let probe = ProbeId::from_u32(kind).ok_or(RecordError::UnknownKind(kind))?;
        let record = match probe {
            ProbeId::InboundMessage | ProbeId::OutboundMessage => {
                let (m, payload) = message_parts(bytes, kind)?;
                Record::Message(m, payload.to_vec())
            }
            ProbeId::InboundConnection
            | ProbeId::OutboundConnection
            | ProbeId::ClosedConnection
            | ProbeId::EvictedInboundConnection => Record::Connection(read(bytes, kind)?),
            ProbeId::MisbehavingConnection => Record::Misbehaving(read(bytes, kind)?),
            ProbeId::MempoolAdded => Record::MempoolAdded(read(bytes, kind)?),
            ProbeId::MempoolRemoved => Record::MempoolRemoved(read(bytes, kind)?),
            ProbeId::MempoolReplaced => Record::MempoolReplaced(read(bytes, kind)?),
            ProbeId::MempoolRejected => Record::MempoolRejected(read(bytes, kind)?),
            ProbeId::BlockConnected => Record::BlockConnected(read(bytes, kind)?),
            ProbeId::UtxocacheFlush => Record::UtxocacheFlush(read(bytes, kind)?),
            ProbeId::UtxocacheAdd | ProbeId::UtxocacheSpent | ProbeId::UtxocacheUncache => {
                Record::UtxocacheCoin(read(bytes, kind)?)
            }
        };
        Ok((header.ktime_ns, probe, record))
    }
}

/// A P2P message record and its payload, borrowed from the ring (`None` for a record of
/// another kind): the encoder's way in, with no copy of the payload.
pub fn read_message(bytes: &[u8]) -> Result<Option<(MessageRecord, &[u8])>, RecordError> {
    let header: RecordHeader = read(bytes, u32::MAX)?;
    let kind = header.kind;
    if kind != ProbeId::InboundMessage as u32 && kind != ProbeId::OutboundMessage as u32 {
        return Ok(None);
    }
    message_parts(bytes, kind).map(Some)
}

/// The message header and the payload bytes it says were copied, bounded by the record.
fn message_parts(bytes: &[u8], kind: u32) -> Result<(MessageRecord, &[u8]), RecordError> {
    let m: MessageRecord = read(bytes, kind)?;
    let start = std::mem::size_of::<MessageRecord>();
    let end = start.saturating_add(m.copied as usize).min(bytes.len());
    Ok((m, &bytes[start..end]))
}

#[cfg(test)]
impl MessageRecord {
    /// An all-zero record (tests fill in what they need).
    pub fn zeroed() -> MessageRecord {
        // SAFETY: plain integers and byte arrays: all zeros is a valid value.
        unsafe { std::mem::zeroed() }
    }

    /// The record's bytes as the BPF program lays them out.
    pub fn to_bytes(self) -> Vec<u8> {
        let size = std::mem::size_of::<MessageRecord>();
        // SAFETY: `self` is a #[repr(C)] struct of `size` initialised bytes (padding fields
        // are explicit members).
        unsafe { std::slice::from_raw_parts((&self as *const MessageRecord).cast::<u8>(), size) }
            .to_vec()
    }
}

/// A NUL-terminated C string from a fixed buffer (lossy UTF-8; no NUL = whole buffer).
pub fn c_string(buffer: &[u8]) -> String {
    match CStr::from_bytes_until_nul(buffer) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(buffer).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(
            Record::parse(&[0u8; 4]),
            Err(RecordError::Short { .. })
        ));
        let mut bytes = vec![0u8; 200];
        bytes[0] = 99;
        assert_eq!(
            Record::parse(&bytes).err(),
            Some(RecordError::UnknownKind(99))
        );
        bytes[0] = ProbeId::BlockConnected as u8;
        assert!(matches!(
            Record::parse(&bytes[..40]),
            Err(RecordError::Short { expected: 88, .. })
        ));
    }

    #[test]
    fn message_payload_is_bounded_by_the_record() {
        let mut bytes = vec![0u8; 170];
        bytes[0] = ProbeId::InboundMessage as u8;
        bytes[40..48].copy_from_slice(&1000u64.to_le_bytes()); // `copied` claims more than present
        let (_, _, record) = Record::parse(&bytes).expect("parses");
        assert!(matches!(record, Record::Message(_, payload) if payload.len() == 10));
    }

    #[test]
    fn c_strings_stop_at_nul() {
        assert_eq!(c_string(b"inbound\0garbage"), "inbound");
        assert_eq!(c_string(b"full"), "full");
    }
}
