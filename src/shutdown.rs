//! The one way a long-running piece is told to stop: [`Shutdown`].
//!
//! Every extractor, tool, recorder, replay, scripted peer and rehearsal takes a `Shutdown`
//! and stops when it fires; nothing polls a flag or owns a private stop channel. It is
//! tokio-util's `CancellationToken` under the name this crate uses: cheap to clone, fired
//! once with [`cancel`](Shutdown::cancel) and awaited with
//! [`cancelled`](Shutdown::cancelled). A piece that must stop with its parent but also on
//! its own takes a [`child_token`](Shutdown::child_token).
//!
//! Invariants: firing is idempotent and cannot be undone; a piece that was handed a fired
//! `Shutdown` stops at its next await point; who fires it (Ctrl-C, SIGTERM, `--duration`, a
//! rehearsal's end, a test) is decided at the edge, never inside the library.

pub use tokio_util::sync::CancellationToken as Shutdown;
