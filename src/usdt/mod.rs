//! USDT (statically defined tracepoints) support on top of ELF files and, later, aya.
//!
//! This module owns reading a binary's `.note.stapsdt` notes into [`ProbeNote`]s: where each
//! probe site is, its semaphore, and its argument specification. It knows nothing about
//! Bitcoin Core; [`crate::node`] uses it to check that a bitcoind is traceable.

mod notes;

pub use notes::{read_probe_notes, ProbeNote, UsdtError};
