//! Writing archives: [`ArchiveWriter`] (see the module docs for its invariants).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use prost::Message as _;

use super::*;
use crate::event::proto::header::ArchiveHeader;
use crate::record::format::FLUSH_INTERVAL;
use crate::record::{RecordingError, WriterStats};

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
                let ms = (crate::record::recorder::now_nanos() / 1_000_000).max(*last_ms + 1);
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
            created: crate::record::recorder::now_nanos() / 1_000_000_000,
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
    let utc = crate::record::inspect::format_utc(ms.saturating_mul(1_000_000));
    let digits: String = utc.chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}-{}", &digits[0..8], &digits[8..14], &digits[14..17])
}
