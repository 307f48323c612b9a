//! Reading archives: [`ArchiveReader`] (see the module docs for its invariants).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost::Message as _;

use super::*;
use crate::bus::SubjectScheme;
use crate::event::proto::header::ArchiveHeader;
use crate::event::{Event, EventKind};
use crate::record::{RecordedMessage, RecordingError, Truncation};

/// Frames the reader left out, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveSkips {
    /// Event frames that do not decode as `event.Event`.
    pub undecodable: u64,
    /// Events with no oneof arm peerlab knows (no subject to rebuild).
    pub unroutable: u64,
}

impl ArchiveSkips {
    /// Every skipped frame.
    pub fn total(&self) -> u64 {
        self.undecodable + self.unroutable
    }
}

/// Counts the bytes read from the file (for progress through a compressed stream).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How one length prefix ended.
enum Prefix {
    /// A complete varint: its value and how many bytes it took.
    Length(u64, u64),
    /// The data ended before its first byte: a clean end.
    End,
    /// The data ended inside it.
    Cut,
}

/// How one frame ended.
enum Frame {
    Body(Vec<u8>),
    End,
    /// Cut short, with the reason.
    Cut(&'static str),
}

/// The events of an archive, read one frame at a time (see the module docs).
///
/// Iterating yields every event in file order, then ends; an error ends the iteration.
/// [`header`](Self::header) is known once [`open`](Self::open) returns;
/// [`truncated`](Self::truncated) and the final [`skipped`](Self::skipped) once the
/// iteration has ended.
pub struct ArchiveReader {
    path: PathBuf,
    input: Box<dyn Read + Send>,
    file_read: Arc<AtomicU64>,
    file_bytes: u64,
    compressed: bool,
    /// Offset of the next frame in the uncompressed stream.
    offset: u64,
    header: ArchiveHeader,
    metadata: BTreeMap<String, String>,
    subjects: Vec<(EventKind, Arc<str>)>,
    truncated: Option<Truncation>,
    skipped: ArchiveSkips,
    events: u64,
    finished: bool,
}

impl ArchiveReader {
    /// Opens an archive (compressed when the name ends in `.zst`) and reads its header.
    pub fn open(path: &Path) -> Result<ArchiveReader, RecordingError> {
        ArchiveReader::open_as(path, is_compressed_path(path))
    }

    /// Opens an archive, compressed or not as told, and reads its header.
    pub fn open_as(path: &Path, compressed: bool) -> Result<ArchiveReader, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.into(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(RecordingError::NotAFile {
                path: path.into(),
                what: crate::record::reader::not_a_file(meta.file_type()),
            });
        }
        let file = File::open(path).map_err(io)?;
        let file_read = Arc::new(AtomicU64::new(0));
        let counting = CountingReader {
            inner: file,
            count: file_read.clone(),
        };
        let input: Box<dyn Read + Send> = if compressed {
            let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
                1 << 16,
                counting,
            ))
            .map_err(io)?;
            Box::new(BufReader::with_capacity(1 << 16, decoder))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, counting))
        };
        let mut reader = ArchiveReader {
            path: path.into(),
            input,
            file_read,
            file_bytes: meta.len(),
            compressed,
            offset: 0,
            header: ArchiveHeader::default(),
            metadata: BTreeMap::new(),
            subjects: Vec::new(),
            truncated: None,
            skipped: ArchiveSkips::default(),
            events: 0,
            finished: false,
        };
        reader.read_header()?;
        Ok(reader)
    }

    fn missing_header(&self, reason: impl Into<String>) -> RecordingError {
        RecordingError::MissingHeader {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn corrupt(&self, offset: u64, reason: String) -> RecordingError {
        RecordingError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    fn read_header(&mut self) -> Result<(), RecordingError> {
        let body = match self.read_frame(0)? {
            Frame::Body(body) => body,
            Frame::End => return Err(self.missing_header("the data is empty")),
            Frame::Cut(what) => {
                return Err(self.missing_header(format!("the data ends inside the header ({what})")))
            }
        };
        let header = ArchiveHeader::decode(body.as_slice()).map_err(|e| {
            self.missing_header(format!("the first frame is not an ArchiveHeader: {e}"))
        })?;
        // prost does not enforce proto2 `required`: check that `created` is there, so that a
        // file starting with an event is not taken for one with a header.
        let presence = HeaderPresence::decode(body.as_slice()).unwrap_or_default();
        if presence.created.is_none() {
            return Err(self.missing_header(
                "the first frame lacks ArchiveHeader.created (field 1, required)",
            ));
        }
        self.metadata = BTreeMap::from([
            (FORMAT_KEY.to_string(), ARCHIVE_FORMAT.to_string()),
            (
                "compression".to_string(),
                if self.compressed { "zstd" } else { "none" }.to_string(),
            ),
            ("created".to_string(), header.created.to_string()),
            (
                "created_utc".to_string(),
                crate::record::inspect::format_utc(header.created.saturating_mul(1_000_000_000)),
            ),
            ("low_data".to_string(), header.low_data().to_string()),
        ]);
        self.header = header;
        Ok(())
    }

    /// Reads one byte; `Ok(None)` at a clean end of the data, `Err(None)` when a compressed
    /// stream ends inside its zstd frame (a cut).
    fn read_byte(&mut self, at: u64) -> Result<Option<u8>, Option<RecordingError>> {
        let mut byte = [0u8; 1];
        loop {
            match self.input.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(None),
                Err(e) => return Err(Some(self.stream_error(at, e))),
            }
        }
    }

    /// Reads one length prefix, shortest form or not, at most [`MAX_VARINT_BYTES`] bytes.
    fn read_prefix(&mut self, at: u64) -> Result<Prefix, RecordingError> {
        let mut bytes = [0u8; MAX_VARINT_BYTES];
        for n in 0..MAX_VARINT_BYTES {
            let byte = match self.read_byte(at) {
                Ok(Some(byte)) => byte,
                Ok(None) if n == 0 => return Ok(Prefix::End),
                Ok(None) | Err(None) => return Ok(Prefix::Cut),
                Err(Some(e)) => return Err(e),
            };
            bytes[n] = byte;
            if byte & 0x80 == 0 {
                let mut slice = &bytes[..=n];
                return prost::encoding::decode_varint(&mut slice)
                    .map(|len| Prefix::Length(len, n as u64 + 1))
                    .map_err(|e| self.corrupt(at, format!("length prefix: {e}")));
            }
        }
        Err(self.corrupt(
            at,
            format!("length prefix is longer than {MAX_VARINT_BYTES} bytes"),
        ))
    }

    /// Reads the frame at `at` (the current offset); on success the offset moves past it.
    fn read_frame(&mut self, at: u64) -> Result<Frame, RecordingError> {
        let (len, prefix_bytes) = match self.read_prefix(at)? {
            Prefix::End => return Ok(Frame::End),
            Prefix::Cut => return Ok(Frame::Cut("the data ends inside a length prefix")),
            Prefix::Length(len, bytes) => (len, bytes),
        };
        if len > MAX_FRAME_BYTES {
            return Err(self.corrupt(
                at,
                format!(
                    "frame claims {len} bytes, more than the {} MiB any archive frame may have",
                    MAX_FRAME_BYTES >> 20
                ),
            ));
        }
        // Grow the buffer as bytes arrive: a false length on a short file allocates little.
        let mut body = Vec::with_capacity(len.min(1 << 16) as usize);
        match (&mut self.input).take(len).read_to_end(&mut body) {
            Ok(n) if n as u64 == len => {
                self.offset = at + prefix_bytes + len;
                Ok(Frame::Body(body))
            }
            Ok(_) => Ok(Frame::Cut("the data ends inside a frame body")),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Ok(Frame::Cut("the data ends inside a frame body"))
            }
            Err(e) => Err(self.stream_error(at, e)),
        }
    }

    /// An error of the underlying stream; for a compressed file, zstd's own words.
    fn stream_error(&self, at: u64, e: std::io::Error) -> RecordingError {
        if self.compressed {
            self.corrupt(at, format!("zstd stream does not decompress: {e}"))
        } else {
            RecordingError::Io {
                path: self.path.clone(),
                source: e,
            }
        }
    }

    /// The next event, or `None` at the end (clean or truncated).
    fn next_event(&mut self) -> Result<Option<RecordedMessage>, RecordingError> {
        loop {
            let at = self.offset;
            let body = match self.read_frame(at)? {
                Frame::Body(body) => body,
                Frame::End => return Ok(None),
                Frame::Cut(reason) => {
                    self.truncated = Some(Truncation {
                        offset: at,
                        reason: format!("{reason} (was the archiver killed?)"),
                    });
                    return Ok(None);
                }
            };
            let event = match Event::decode(body.as_slice()) {
                Ok(event) => event,
                Err(e) => {
                    self.skipped.undecodable += 1;
                    tracing::warn!(file = %self.path.display(), offset = at, "skipped an archive frame that is not an event.Event: {e}");
                    continue;
                }
            };
            let Some(kind) = EventKind::of(&event) else {
                self.skipped.unroutable += 1;
                tracing::warn!(file = %self.path.display(), offset = at, "skipped an event with no known oneof arm (no subject to rebuild)");
                continue;
            };
            let ns = event.timestamp.saturating_mul(1_000_000);
            self.events += 1;
            return Ok(Some(RecordedMessage {
                subject: self.subject(kind),
                log_time: ns,
                publish_time: ns,
                data: body,
                sequence: 0,
            }));
        }
    }

    fn subject(&mut self, kind: EventKind) -> Arc<str> {
        if let Some((_, subject)) = self.subjects.iter().find(|(k, _)| *k == kind) {
            return subject.clone();
        }
        let subject: Arc<str> = Arc::from(SubjectScheme::Flat.subject(kind).as_str());
        self.subjects.push((kind, subject.clone()));
        subject
    }

    /// The header.
    pub fn header(&self) -> &ArchiveHeader {
        &self.header
    }

    /// `ArchiveHeader.created`: seconds since the UNIX epoch.
    pub fn created(&self) -> u64 {
        self.header.created
    }

    /// `ArchiveHeader.low_data` (unset reads as `false`).
    pub fn low_data(&self) -> bool {
        self.header.low_data()
    }

    /// What inspect shows as metadata: format, compression, created, low_data; once the
    /// iteration has ended, also the skipped frames.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Where and why the data stops early; known once the iteration has ended.
    pub fn truncated(&self) -> Option<&Truncation> {
        self.truncated.as_ref()
    }

    /// Frames left out so far.
    pub fn skipped(&self) -> ArchiveSkips {
        self.skipped
    }

    /// Events yielded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// File size in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// File bytes read so far (for progress; compressed bytes when compressed).
    pub fn position(&self) -> u64 {
        self.file_read.load(Ordering::Relaxed).min(self.file_bytes)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn finish(&mut self) {
        self.finished = true;
        let skipped = self.skipped;
        if skipped.total() > 0 {
            self.metadata.insert(
                "skipped_undecodable".to_string(),
                skipped.undecodable.to_string(),
            );
            self.metadata.insert(
                "skipped_unroutable".to_string(),
                skipped.unroutable.to_string(),
            );
        }
    }
}

impl Iterator for ArchiveReader {
    type Item = Result<RecordedMessage, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.next_event() {
            Ok(Some(message)) => Some(Ok(message)),
            Ok(None) => {
                self.finish();
                None
            }
            Err(e) => {
                // Nothing after a damaged frame is trusted.
                self.finish();
                Some(Err(e))
            }
        }
    }
}

/// `ArchiveHeader` with `created` optional: tells whether the required field is present.
#[derive(Clone, PartialEq, prost::Message)]
struct HeaderPresence {
    #[prost(uint64, optional, tag = "1")]
    created: Option<u64>,
}
