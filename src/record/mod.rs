//! Record and replay: event streams kept in MCAP files or peer-observer archives, replayed
//! through the same bus.
//!
//! This module owns the recording format ([`format`](mod@format): MCAP with schema `event.Event`,
//! encoding `protobuf`, the embedded descriptor set, one channel per subject), writing it
//! ([`RecordingWriter`], crash-safe: a chunk is flushed at least every second), reading it
//! back with errors that name the file and offset ([`read_recording`]), and the recorder loop
//! that subscribes to NATS ([`recorder`]). It also reads and writes peer-observer's archive
//! files ([`archive`]: `.bin` / `.bin.zst`, a length-delimited `ArchiveHeader` then
//! length-delimited events; [`ArchiveReader`], [`ArchiveWriter`]), and reads either format
//! through one [`RecordingSource`] (chosen by the file name), which replay, inspect, cat and
//! [`convert`] (MCAP <-> archive) use. A fleet's collector records the JetStream fleet stream
//! with [`collect`] (acknowledging only what is flushed); rotating recorders keep a size
//! budget with [`retention`].
//!
//! Invariants: a message's bytes in a recording or archive are exactly the bytes that were on
//! the bus; in MCAP `log_time` is the receive time and `publish_time` the event's own
//! timestamp (ns), an archive keeps neither subject nor receive time (the subject is rebuilt
//! flat from the event, both times are its timestamp); reading a file that was cut short
//! yields every message of its complete chunks (MCAP) or frames (archive) and says where the
//! cut is; no byte sequence makes a reader panic or allocate more than one bounded chunk or
//! frame.

pub mod anonymize;
pub mod archive;
pub mod collect;
pub mod convert;
pub mod format;
pub mod inspect;
mod reader;
pub mod recorder;
pub mod replayer;
pub mod retention;
mod source;
mod writer;

pub use archive::{ArchiveOptions, ArchiveReader, ArchiveWriter};
pub use reader::{
    read_recording, RecordedMessage, Recording, RecordingError, RecordingStream, Truncation,
    MAX_CHUNK_BYTES,
};
pub use source::RecordingSource;
pub use writer::{Layout, RecordingWriter, WriterStats};
