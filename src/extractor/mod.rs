//! Extractors: turning what a node does into `event.Event`s on the bus.
//!
//! This module owns everything between bitcoind and the [`crate::bus::Publisher`]: the eBPF
//! extractor ([`ebpf`]) and the decoding of P2P payloads into wire-format messages
//! ([`p2p_decode`]). Extractors only publish; they never read the bus.

pub mod ebpf;
pub mod names;
pub mod p2p_decode;
#[cfg(test)]
pub(crate) mod p2p_samples;
