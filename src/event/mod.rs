//! The event schema: peer-observer's protobuf wire format, compiled into Rust types.
//!
//! This module owns the `.proto` files in `proto/` (as generated Rust in [`proto`]), the
//! embedded `FileDescriptorSet` that recordings carry ([`DESCRIPTOR_SET`]), the mapping from an
//! event to its category ([`EventKind`]), and the strict required-field check
//! ([`strict::check_required`]) that proto2 decoders in other languages apply. It also owns
//! the one JSON message of peerlab's own on the bus, the extractors' counter snapshots
//! ([`counters::ExtractorCounters`]).
//!
//! Invariants:
//! - field numbers, types, labels and package names equal `shared/spec/event-wire-format.md`
//!   (tests compare the descriptor with the spec and with hand-computed golden encodings);
//! - a payload on the bus is exactly one `event.Event`, plain (not length-delimited) encoding.

pub mod counters;
pub mod descriptor;
pub mod kind;
pub mod registry;
pub mod strict;
pub mod wire;

pub use descriptor::{descriptor_pool, DESCRIPTOR_SET, EVENT_MESSAGE_NAME};
pub use kind::EventKind;

/// The generated prost types, one module per protobuf package.
#[allow(clippy::all, missing_docs, non_camel_case_types)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto_modules.rs"));
}

pub use proto::event::Event;

/// Milliseconds since the UNIX epoch, the unit of `Event.timestamp`.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `Event.timestamp` read straight from the encoding (field 10), without decoding the rest:
/// the recorder needs it for every message, and events can be megabytes (blocks).
pub fn peek_timestamp(bytes: &[u8]) -> Option<u64> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let key = read_varint(&mut rest)?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                let value = read_varint(&mut rest)?;
                if field == 10 {
                    return Some(value);
                }
            }
            1 => rest = rest.get(8..)?,
            2 => {
                let len = usize::try_from(read_varint(&mut rest)?).ok()?;
                rest = rest.get(len..)?;
            }
            5 => rest = rest.get(4..)?,
            _ => return None,
        }
    }
    None
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    #[test]
    fn peek_timestamp_matches_a_full_decode() {
        let event = super::Event {
            timestamp: 1_795_555_999_472,
            peer_observer_event: None,
        };
        assert_eq!(
            super::peek_timestamp(&event.encode_to_vec()),
            Some(1_795_555_999_472)
        );
        assert_eq!(super::peek_timestamp(&[0xff]), None);
        assert_eq!(super::peek_timestamp(&[]), None);
    }
}
