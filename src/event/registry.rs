//! Generated dispatch from a message's full name to its prost type (see `build.rs`).
//!
//! Lets tests prove that every message type in the schema survives a decode/encode through
//! the generated code, without hand-maintaining a list of types.

include!(concat!(env!("OUT_DIR"), "/message_registry.rs"));
