//! The event schema: peer-observer's protobuf wire format, compiled into Rust types.
//!
//! This module owns the `.proto` files in `proto/` (as generated Rust in [`proto`]), the
//! embedded `FileDescriptorSet` that recordings carry ([`DESCRIPTOR_SET`]), the mapping from an
//! event to its category ([`EventKind`]), and the strict required-field check
//! ([`strict::check_required`]) that proto2 decoders in other languages apply.
//!
//! Invariants:
//! - field numbers, types, labels and package names equal `shared/spec/event-wire-format.md`
//!   (tests compare the descriptor with the spec and with hand-computed golden encodings);
//! - a payload on the bus is exactly one `event.Event`, plain (not length-delimited) encoding.

pub mod descriptor;
pub mod kind;
pub mod registry;
pub mod strict;

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
