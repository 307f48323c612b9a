//! Extractors: turning what a node does into `event.Event`s on the bus.
//!
//! This module owns everything between bitcoind and the [`crate::bus::Publisher`]: the eBPF
//! extractor ([`ebpf`]), which decodes P2P payloads with [`crate::p2p`]. Extractors only
//! publish; they never read the bus.

pub mod ebpf;
