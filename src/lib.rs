//! peerlab: peer-observer's honeynode observer stack plus a record-and-replay testbed.
pub mod bus;
pub mod commands;
pub mod event;
pub mod extractor;
pub mod harness;
pub mod logging;
pub mod node;
pub mod peer;
pub mod tools;
pub mod usdt;
