//! USDT (statically defined tracepoints) on top of aya, which has no USDT support.
//!
//! This module owns the three pieces a USDT tracer needs and nothing Bitcoin-specific:
//! - [`read_probe_notes`]: the probe sites of an ELF binary (`.note.stapsdt`), with file
//!   offsets for the probe and its semaphore;
//! - [`UsdtSpec`]: each site's argument specification, in the layout `bpf/usdt.h` reads;
//! - [`attach_usdt`]: a loaded program attached to one site through a perf event whose
//!   `ref_ctr_offset` makes the kernel manage the semaphore, with a BPF cookie.
//!
//! A probe can have several sites (inlining copies it); callers attach to every one.

mod attach;
mod notes;
mod spec;

pub use attach::{attach_usdt, UprobePmu, UsdtLink};
pub use notes::{read_probe_notes, ProbeNote, UsdtError};
pub use spec::{ArgType, UsdtArgSpec, UsdtSpec, USDT_MAX_ARGS};
