//! Tools: consumers of the bus (the logger now; metrics and websocket later).
//!
//! Tools only read events; they never publish. Each tool takes [`crate::bus::BusMessage`]s
//! and turns them into something for a person or another program.

pub mod logger;
