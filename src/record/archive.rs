//! peer-observer archive files (the `archiver` tool's format), read and written.
//!
//! Layout (`shared/spec/event-wire-format.md`, "Archive files"): optionally one streaming
//! zstd frame around everything (`.bin.zst`; `.bin` is raw; chosen by the `.zst` extension,
//! never by magic); one length-delimited `header.ArchiveHeader` (base-128 varint byte count,
//! then the message); then zero or more length-delimited `event.Event`s, each exactly the
//! bytes that travelled as the NATS payload. No magic, index or footer.
//!
//! Invariants of [`ArchiveReader`]:
//! - it streams: one frame in memory at a time. A frame may claim at most
//!   [`MAX_FRAME_BYTES`]; a larger claim is corruption (an error naming the offset), never an
//!   allocation of that size, and a body's buffer grows only as its bytes actually arrive;
//! - data that ends exactly at a frame boundary is a clean end; a cut inside a varint or a
//!   body is a [`Truncation`] at the offset of the incomplete frame, after every complete
//!   event before it; a file whose first frame is not a header (empty, cut inside it, or not
//!   an `ArchiveHeader` with its required `created`) is [`RecordingError::MissingHeader`];
//! - offsets are in the uncompressed stream (for `.bin` they are file offsets);
//! - non-shortest varints and unknown fields (header and events) are accepted;
//! - subjects are not stored: each is rebuilt from the event's oneof arm with the flat scheme
//!   (`EventKind::of`); `log_time` = `publish_time` = `Event.timestamp` in ns (an archive
//!   keeps no receive time);
//! - an event frame that does not decode as `event.Event`, or decodes with no known arm
//!   (nothing to route by), is a **counted skip** ([`ArchiveReader::skipped`], logged), not an
//!   error: the framing around it is intact, so every later event is still trustworthy.
//!
//! Invariants of [`ArchiveWriter`]: the header says `created` = now in seconds and
//! `low_data = false`; each event is written length-delimited, its bytes untouched; with
//! rotation, files are `<base>.<YYYYMMDD-HHMMSS-mmm UTC>.bin[.zst]` (names strictly
//! increasing) and a new file starts when the bytes written to the current one (compressed
//! bytes when compressing) reach the maximum, checked after each event.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;

use super::format::FLUSH_INTERVAL;
use super::{RecordedMessage, RecordingError, Truncation, WriterStats};
use crate::bus::SubjectScheme;
use crate::event::proto::header::ArchiveHeader;
use crate::event::{Event, EventKind};

/// Largest frame (header or event) we agree to read; a larger length prefix is corruption.
/// Whole blocks travel in events (NATS allows 15 MiB for the largest), so this is generous.
pub const MAX_FRAME_BYTES: u64 = 64 << 20;
/// peer-observer archiver's default `--max-file-size`.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 30;
/// peerlab's default zstd level (the archiver's is 22: a little smaller, far slower).
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
/// Metadata key [`ArchiveReader::metadata`] sets to [`ARCHIVE_FORMAT`].
pub const FORMAT_KEY: &str = "format";
/// What the `format` metadata key says for archives.
pub const ARCHIVE_FORMAT: &str = "peer-observer archive";
/// Longest base-128 varint of a u64.
const MAX_VARINT_BYTES: usize = 10;

/// Whether `path` names an archive (`.bin` or `.bin.zst`) rather than an MCAP recording.
pub fn is_archive_path(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".bin") || name.ends_with(".bin.zst")
}

/// Whether an archive path is zstd-compressed: its name ends in `.zst` (never by magic).
pub fn is_compressed_path(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".zst"))
}

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
                what: super::reader::not_a_file(meta.file_type()),
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
                super::inspect::format_utc(header.created.saturating_mul(1_000_000_000)),
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

/// How to write archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// zstd level 1..=22 (`.bin.zst`), or 0 for raw `.bin` (the archiver's convention).
    pub compression_level: i32,
    /// Start a new file when this many bytes were written to the current one.
    pub max_file_size: u64,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Counts the bytes written to the file (compressed bytes when compressing).
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type FileSink = CountingWriter<BufWriter<File>>;

enum Sink {
    Raw(FileSink),
    Zstd(zstd::stream::write::Encoder<'static, FileSink>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Raw(w) => w,
            Sink::Zstd(w) => w,
        }
    }

    fn written(&self) -> u64 {
        match self {
            Sink::Raw(w) => w.count,
            Sink::Zstd(w) => w.get_ref().count,
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut file = match self {
            Sink::Raw(w) => w,
            Sink::Zstd(w) => w.finish()?,
        };
        file.flush()?;
        file.inner.get_ref().sync_data()
    }
}

/// How the writer names its files.
enum Naming {
    /// Exactly this file, never rotated.
    Fixed(PathBuf),
    /// `<base>.<YYYYMMDD-HHMMSS-mmm>.bin[.zst]`, rotated by size.
    Rotating {
        base: PathBuf,
        /// Millisecond of the last name used (names strictly increase).
        last_ms: u64,
    },
}

/// Writes archive files (see the module docs).
pub struct ArchiveWriter {
    naming: Naming,
    options: ArchiveOptions,
    sink: Option<(PathBuf, Sink)>,
    files: Vec<PathBuf>,
    stats: WriterStats,
    file_stats: WriterStats,
    last_flush: Instant,
}

impl ArchiveWriter {
    /// Writes `<base>.<timestamp>.bin[.zst]` files (e.g. base `/data/archive`), starting a
    /// new one when [`ArchiveOptions::max_file_size`] is reached. The first file is created
    /// now.
    pub fn rotating(base: &Path, options: ArchiveOptions) -> Result<ArchiveWriter, RecordingError> {
        ArchiveWriter::start(
            Naming::Rotating {
                base: base.to_path_buf(),
                last_ms: 0,
            },
            options,
        )
    }

    /// Writes exactly `path`, never rotated; compressed (at `compression_level`, 0 meaning
    /// zstd's default) when the name ends in `.zst`, raw otherwise.
    pub fn create(path: &Path, compression_level: i32) -> Result<ArchiveWriter, RecordingError> {
        let compression_level = match (is_compressed_path(path), compression_level) {
            (false, _) => 0,
            (true, 0) => DEFAULT_COMPRESSION_LEVEL,
            (true, level) => level,
        };
        ArchiveWriter::start(
            Naming::Fixed(path.to_path_buf()),
            ArchiveOptions {
                compression_level,
                max_file_size: u64::MAX,
            },
        )
    }

    fn start(naming: Naming, options: ArchiveOptions) -> Result<ArchiveWriter, RecordingError> {
        let mut writer = ArchiveWriter {
            naming,
            options,
            sink: None,
            files: Vec::new(),
            stats: WriterStats::default(),
            file_stats: WriterStats::default(),
            last_flush: Instant::now(),
        };
        writer.open_next()?;
        Ok(writer)
    }

    fn next_path(&mut self) -> PathBuf {
        let extension = if self.options.compression_level == 0 {
            "bin"
        } else {
            "bin.zst"
        };
        match &mut self.naming {
            Naming::Fixed(path) => path.clone(),
            Naming::Rotating { base, last_ms } => {
                let ms = (super::recorder::now_nanos() / 1_000_000).max(*last_ms + 1);
                *last_ms = ms;
                let stamp = file_stamp(ms);
                let name = format!(
                    "{}.{stamp}.{extension}",
                    base.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("archive")
                );
                base.with_file_name(name)
            }
        }
    }

    fn open_next(&mut self) -> Result<(), RecordingError> {
        let path = self.next_path();
        let io = |source| RecordingError::Io {
            path: path.clone(),
            source,
        };
        let file = File::create(&path).map_err(io)?;
        let counting = CountingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            count: 0,
        };
        let mut sink = if self.options.compression_level == 0 {
            Sink::Raw(counting)
        } else {
            Sink::Zstd(
                zstd::stream::write::Encoder::new(counting, self.options.compression_level)
                    .map_err(io)?,
            )
        };
        let header = ArchiveHeader {
            created: super::recorder::now_nanos() / 1_000_000_000,
            low_data: Some(false),
        };
        sink.writer()
            .write_all(&header.encode_length_delimited_to_vec())
            .map_err(io)?;
        self.files.push(path.clone());
        self.sink = Some((path, sink));
        self.file_stats = WriterStats::default();
        Ok(())
    }

    /// Appends one event (its bytes exactly as on the bus), then rotates if the file is full.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), RecordingError> {
        let Some((path, sink)) = self.sink.as_mut() else {
            return Err(RecordingError::Write {
                path: self.files.last().cloned().unwrap_or_default(),
                reason: "the archive writer is closed".into(),
            });
        };
        let mut prefix = Vec::with_capacity(MAX_VARINT_BYTES);
        prost::encoding::encode_varint(payload.len() as u64, &mut prefix);
        let out = sink.writer();
        out.write_all(&prefix)
            .and_then(|()| out.write_all(payload))
            .map_err(|source| RecordingError::Io {
                path: path.clone(),
                source,
            })?;
        for stats in [&mut self.stats, &mut self.file_stats] {
            stats.messages += 1;
            stats.payload_bytes += payload.len() as u64;
        }
        if sink.written() >= self.options.max_file_size {
            self.rotate()?;
        } else if self.flush_due() {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the current file and starts the next (a no-op for a fixed file name).
    pub fn rotate(&mut self) -> Result<(), RecordingError> {
        if matches!(self.naming, Naming::Fixed(_)) {
            return Ok(());
        }
        self.close_current()?;
        self.open_next()
    }

    /// Pushes what was written so far to the file (a zstd block boundary when compressing):
    /// what a crash cannot take back.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.last_flush = Instant::now();
        if let Some((path, sink)) = self.sink.as_mut() {
            sink.writer().flush().map_err(|source| RecordingError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Whether a flush is due (for callers that flush on a timer while idle).
    pub fn flush_due(&self) -> bool {
        self.last_flush.elapsed() >= FLUSH_INTERVAL
    }

    fn close_current(&mut self) -> Result<(), RecordingError> {
        if let Some((path, sink)) = self.sink.take() {
            sink.finish()
                .map_err(|source| RecordingError::Io { path, source })?;
        }
        Ok(())
    }

    /// Ends the last file; returns the counters and every file written, in order.
    pub fn finish(mut self) -> Result<(WriterStats, Vec<PathBuf>), RecordingError> {
        self.close_current()?;
        Ok((self.stats, std::mem::take(&mut self.files)))
    }

    /// Counters over every file.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Counters of the current file.
    pub fn file_stats(&self) -> WriterStats {
        self.file_stats
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        self.sink
            .as_ref()
            .map(|(path, _)| path.as_path())
            .or(self.files.last().map(PathBuf::as_path))
            .unwrap_or(Path::new(""))
    }
}

/// `YYYYMMDD-HHMMSS-mmm` (UTC) of a millisecond timestamp, as in archive file names.
pub fn file_stamp(ms: u64) -> String {
    // `format_utc` gives `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    let utc = super::inspect::format_utc(ms.saturating_mul(1_000_000));
    let digits: String = utc.chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}-{}", &digits[0..8], &digits[8..14], &digits[14..17])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::proto::ebpf_extractor::{ebpf::EbpfEvent, Ebpf};
    use crate::event::proto::event::event::PeerObserverEvent;
    use crate::event::proto::rpc_extractor;

    fn event(ms: u64, rpc: bool) -> Vec<u8> {
        let arm = if rpc {
            PeerObserverEvent::RpcExtractor(rpc_extractor::Rpc::default())
        } else {
            PeerObserverEvent::EbpfExtractor(Ebpf {
                ebpf_event: Some(EbpfEvent::Mempool(Default::default())),
            })
        };
        Event {
            timestamp: ms,
            peer_observer_event: Some(arm),
        }
        .encode_to_vec()
    }

    fn write(dir: &Path, name: &str, level: i32, events: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(name);
        let mut writer = ArchiveWriter::create(&path, level).expect("create");
        for e in events {
            writer.write(e).expect("write");
        }
        let (stats, files) = writer.finish().expect("finish");
        assert_eq!(stats.messages, events.len() as u64);
        assert_eq!(files, vec![path.clone()]);
        path
    }

    #[test]
    fn stamps_follow_the_archiver_naming() {
        assert_eq!(file_stamp(951_827_696_789), "20000229-123456-789");
        assert_eq!(file_stamp(0), "19700101-000000-000");
    }

    #[test]
    fn paths_choose_the_format() {
        assert!(is_archive_path(Path::new(
            "/a/archive.20260101-000000-000.bin"
        )));
        assert!(is_archive_path(Path::new("x.bin.zst")));
        assert!(!is_archive_path(Path::new("x.mcap")));
        assert!(is_compressed_path(Path::new("x.bin.zst")));
        assert!(!is_compressed_path(Path::new("x.bin")));
    }

    #[test]
    fn written_archives_read_back_raw_and_compressed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events: Vec<Vec<u8>> = (0..50).map(|i| event(1_000 + i, i % 3 == 0)).collect();
        for (name, level) in [("a.bin", 0), ("a.bin.zst", 0), ("b.bin.zst", 19)] {
            let path = write(dir.path(), name, level, &events);
            let mut reader = ArchiveReader::open(&path).expect("open");
            assert!(reader.created() > 1_700_000_000, "created is in seconds");
            assert!(!reader.low_data());
            let read: Vec<RecordedMessage> = (&mut reader).map(|m| m.expect("event")).collect();
            assert_eq!(read.len(), events.len());
            for (i, (message, bytes)) in read.iter().zip(&events).enumerate() {
                assert_eq!(&message.data, bytes);
                assert_eq!(
                    &*message.subject,
                    if i % 3 == 0 { "rpc" } else { "mempool" }
                );
                assert_eq!(message.log_time, (1_000 + i as u64) * 1_000_000);
                assert_eq!(message.publish_time, message.log_time);
            }
            assert!(reader.truncated().is_none());
            assert_eq!(reader.skipped(), ArchiveSkips::default());
        }
    }

    #[test]
    fn rotation_starts_new_files_with_increasing_names_and_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = ArchiveOptions {
            compression_level: 0,
            max_file_size: 100,
        };
        let mut writer = ArchiveWriter::rotating(&dir.path().join("archive"), options).expect("w");
        let events: Vec<Vec<u8>> = (0..30).map(|i| event(i, false)).collect();
        for e in &events {
            writer.write(e).expect("write");
        }
        let (_, files) = writer.finish().expect("finish");
        assert!(files.len() > 2, "{files:?}");
        let mut names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names
            .iter()
            .all(|n| n.starts_with("archive.") && n.ends_with(".bin")));
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s.dedup();
            s
        };
        assert_eq!(sorted, names);
        let mut back = Vec::new();
        for file in &files {
            // Each file but the last reached the limit after its last event.
            let reader = ArchiveReader::open(file).expect("each file has a header");
            back.extend(reader.map(|m| m.expect("event").data));
        }
        assert_eq!(back, events);
        names.clear();
    }

    #[test]
    fn an_undecodable_frame_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.bin");
        let mut bytes = ArchiveHeader {
            created: 5,
            low_data: None,
        }
        .encode_length_delimited_to_vec();
        for body in [
            event(1, false),
            vec![0xff, 0xff],
            Event::default().encode_to_vec(),
            event(2, true),
        ] {
            prost::encoding::encode_varint(body.len() as u64, &mut bytes);
            bytes.extend(body);
        }
        std::fs::write(&path, bytes).expect("write");
        let mut reader = ArchiveReader::open(&path).expect("open");
        let subjects: Vec<String> = (&mut reader)
            .map(|m| m.expect("ok").subject.to_string())
            .collect();
        assert_eq!(subjects, ["mempool", "rpc"]);
        assert_eq!(
            reader.skipped(),
            ArchiveSkips {
                undecodable: 1,
                unroutable: 1
            }
        );
        assert_eq!(reader.metadata()["skipped_undecodable"], "1");
        assert_eq!(reader.created(), 5);
        assert!(!reader.low_data(), "unset low_data reads as false");
    }

    #[test]
    fn a_huge_length_prefix_is_corruption_at_its_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.bin");
        let mut bytes = ArchiveHeader {
            created: 5,
            low_data: Some(true),
        }
        .encode_length_delimited_to_vec();
        let at = bytes.len() as u64;
        prost::encoding::encode_varint(1 << 40, &mut bytes);
        bytes.extend([0u8; 16]);
        std::fs::write(&path, bytes).expect("write");
        let mut reader = ArchiveReader::open(&path).expect("open");
        assert!(reader.low_data());
        match reader.next() {
            Some(Err(RecordingError::Corrupt { offset, .. })) => assert_eq!(offset, at),
            other => panic!("expected corruption, got {other:?}"),
        }
        assert!(reader.next().is_none());
    }
}
