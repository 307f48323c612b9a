//! Writing a recording: zstd chunks, statistics, one channel per subject; indexes on request.
//!
//! The default layout is the smallest one every reader of the format takes: zstd chunks, a
//! summary with the schema, channels and statistics, and no indexes. Message indexes cost 16
//! bytes per event outside the compression (as much as half an event), and Foxglove's indexed
//! reader refuses chunk indexes without them, so the two go together: [`Layout::Indexed`]
//! writes both, which lets Foxglove and the `mcap` CLI seek in a large file instead of reading
//! it from the start. peerlab's own reader streams either layout, time windows included.
//!
//! Messages written by [`RecordingWriter::write`] carry MCAP sequence 0: a per-file counter
//! repeats what a message's position says, and zstd cannot shrink a counter interleaved with
//! events (it cost 3.6 bytes per event). The collector's [`RecordingWriter::write_numbered`]
//! stores the fleet stream's sequence, which is information.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mcap::records::{MessageHeader, Metadata};
use mcap::{Compression, WriteOptions, Writer};

use super::format::{
    is_stats_subject, FLUSH_INTERVAL, MESSAGE_ENCODING, METADATA_NAME, PROFILE, SCHEMA_ENCODING,
    SCHEMA_NAME, STATS_ENCODING,
};
use super::RecordingError;
use crate::event::DESCRIPTOR_SET;

/// Which indexes a recording carries (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// Chunks, schema, channels and statistics; no message or chunk indexes.
    #[default]
    Compact,
    /// Plus message indexes and chunk indexes, for seeking in Foxglove and the `mcap` CLI.
    Indexed,
}

/// Counters of one writer.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    /// Messages written.
    pub messages: u64,
    /// Payload bytes written (before compression).
    pub payload_bytes: u64,
}

/// An open recording file.
pub struct RecordingWriter {
    path: PathBuf,
    writer: Writer<BufWriter<File>>,
    schema_id: u16,
    channels: HashMap<String, u16>,
    last_flush: Instant,
    stats: WriterStats,
}

impl RecordingWriter {
    /// Creates `path` in the default [`Layout`] and writes the header, schema and a metadata
    /// record.
    pub fn create(
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<RecordingWriter, RecordingError> {
        RecordingWriter::create_with(path, metadata, Layout::default())
    }

    /// [`RecordingWriter::create`] with the given layout.
    pub fn create_with(
        path: &Path,
        metadata: &BTreeMap<String, String>,
        layout: Layout,
    ) -> Result<RecordingWriter, RecordingError> {
        let indexed = layout == Layout::Indexed;
        let io = |source: std::io::Error| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(io)?;
        let mcap_error = |e: mcap::McapError| RecordingError::Write {
            path: path.to_path_buf(),
            reason: format!("{}; no event was written to it", describe(&e)),
        };
        let mut writer = WriteOptions::new()
            .profile(PROFILE)
            .library(concat!("peerlab ", env!("CARGO_PKG_VERSION")))
            .compression(Some(Compression::Zstd))
            .chunk_size(Some(1 << 20))
            // zstd on the writing thread: the crate's default (a worker per core) hands each
            // small write to a worker pool and cost 1.4x the CPU per event for the same bytes
            // (`benches/record_replay.rs`, CPU column), CPU the observed node needs more.
            .compression_threads(0)
            .emit_statistics(true)
            .emit_message_indexes(indexed)
            .emit_chunk_indexes(indexed)
            .create(BufWriter::with_capacity(1 << 20, file))
            .map_err(mcap_error)?;
        let schema_id = writer
            .add_schema(SCHEMA_NAME, SCHEMA_ENCODING, DESCRIPTOR_SET)
            .map_err(mcap_error)?;
        writer
            .write_metadata(&Metadata {
                name: METADATA_NAME.to_string(),
                metadata: metadata.clone(),
            })
            .map_err(mcap_error)?;
        Ok(RecordingWriter {
            path: path.to_path_buf(),
            writer,
            schema_id,
            channels: HashMap::new(),
            last_flush: Instant::now(),
            stats: WriterStats::default(),
        })
    }

    /// Appends one bus message (MCAP sequence 0, see the module docs). Flushes the current
    /// chunk when [`FLUSH_INTERVAL`] has passed.
    pub fn write(
        &mut self,
        subject: &str,
        log_time: u64,
        publish_time: u64,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        self.write_numbered(subject, log_time, publish_time, 0, payload)
    }

    /// Appends one bus message with the sequence number `sequence` (the collector stores the
    /// low 32 bits of the JetStream stream sequence, so a restart knows what the file holds).
    pub fn write_numbered(
        &mut self,
        subject: &str,
        log_time: u64,
        publish_time: u64,
        sequence: u32,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        let channel_id = match self.channels.get(subject) {
            Some(id) => *id,
            None => {
                // Counters are JSON: a channel without schema, so MCAP tools do not try to
                // decode them as events.
                let (schema_id, encoding) = if is_stats_subject(subject) {
                    (0, STATS_ENCODING)
                } else {
                    (self.schema_id, MESSAGE_ENCODING)
                };
                let id = self
                    .writer
                    .add_channel(schema_id, subject, encoding, &BTreeMap::new())
                    .map_err(|e| self.error(e))?;
                self.channels.insert(subject.to_string(), id);
                id
            }
        };
        let header = MessageHeader {
            channel_id,
            sequence,
            log_time,
            publish_time,
        };
        self.writer
            .write_to_known_channel(&header, payload)
            .map_err(|e| self.error(e))?;
        self.stats.messages += 1;
        self.stats.payload_bytes += payload.len() as u64;
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the current chunk and pushes it to the file (what a crash cannot take back).
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.last_flush = Instant::now();
        self.writer.flush().map_err(|e| self.error(e))
    }

    /// Whether a flush is due (for callers that flush on a timer while idle).
    pub fn flush_due(&self) -> bool {
        self.last_flush.elapsed() >= FLUSH_INTERVAL
    }

    /// Writes the summary (indexes, statistics) and closes the file.
    pub fn finish(mut self) -> Result<WriterStats, RecordingError> {
        self.writer.finish().map_err(|e| self.error(e))?;
        Ok(self.stats)
    }

    /// Counters so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: mcap::McapError) -> RecordingError {
        RecordingError::Write {
            path: self.path.clone(),
            reason: format!(
                "{}; {} events were handed to this file before, and it stays readable up to its last complete chunk (flushed every second)",
                describe(&e),
                self.stats.messages
            ),
        }
    }
}

/// The cause of a writer error in the user's terms: for I/O, the operating system's own
/// words ("No space left on device"), not the mcap crate's generic wrapper.
fn describe(e: &mcap::McapError) -> String {
    match e {
        mcap::McapError::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}
