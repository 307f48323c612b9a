//! The Bitcoin P2P wire format, both directions, and nothing else: no sockets, no tasks.
//!
//! This module owns the v1 framing ([`framing`]: header, magic, checksum, size limit), the
//! decoding of a payload into peer-observer's `MessageEvent.msg` arm ([`decode`]), its exact
//! inverse ([`encode`]) and the naming of addresses that are not IPs ([`address`]: Tor v2/v3
//! and I2P names, one base32, SHA3 from the `sha3` crate). The eBPF extractor decodes with it,
//! the peer engine frames and re-encodes with it, the anonymizer names with it, so the two
//! directions cannot drift apart.
//!
//! Invariants:
//! - **No I/O.** Every function here is pure over byte slices and schema values, so it is
//!   tested by round trips and proptests alone.
//! - **Never panics on input**: untrusted lengths are checked before anything is reserved
//!   (see [`framing`]), decoders cap every allocation (see [`decode`]).
//! - **Exact inverse**: `encode(decode(command, payload)) == (command, payload)` for every
//!   payload the decoder turns into a structured arm (the two lossy corners are in
//!   [`encode`]'s door sign).

pub mod address;
pub mod decode;
pub mod encode;
pub mod framing;
#[cfg(test)]
pub(crate) mod samples;

pub use decode::{decode_message, decoded_kind};
pub use encode::{encode_msg, ReencodeError};
pub use framing::{
    checksum, command_field, frame, Received, COMMAND_LEN, HEADER_LEN, MAX_PAYLOAD_LEN,
    REGTEST_MAGIC,
};
pub(crate) use framing::{encode_message, parse_frame};
