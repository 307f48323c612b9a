//! The spool: an append-only, bounded FIFO of `(subject, payload)` records in segment files
//! on disk, where a publisher keeps what its in-memory buffer cannot hold while NATS is away.
//!
//! The directory holds:
//! - `<id>.seg` (20-digit id, increasing): a segment, [`MAGIC`] and then length-prefixed,
//!   checksummed records (the byte layout is in `spool/format.rs`);
//! - `cursor`: where reading resumes, rewritten after each consumed batch;
//! - `lock`: held (an OS file lock) while a spool is open, so two publishers never share one.
//!
//! Invariants:
//! - Records come out in the order they went in, across segments and across restarts: what a
//!   previous run left behind is read first.
//! - The segment files never total more than `max_bytes`: a record that would cross the bound
//!   is refused (the caller counts it as dropped), never written. Reading does not free space
//!   until a whole segment is drained, so at least `max_bytes` minus one segment (a sixteenth
//!   of the bound, at most 64 MiB) is always usable.
//! - Only the newest segment this process created is appended to, one whole batch per write;
//!   after a failed write that segment is closed and truncated back to its last whole record,
//!   so a later record never sits behind garbage.
//! - A record is returned only whole and with a matching checksum. A torn tail (a crash in the
//!   middle of a write) or a damaged record ends the reading of its segment and is reported
//!   ([`Damage`]), never panicked on; reading goes on with the next segment.
//! - Reading does not consume: [`Spool::commit`] does, after the caller's delivery was
//!   confirmed, so a crash in between delivers a batch twice, never loses it.
//! - A segment is deleted once reading has passed its end; an empty spool has no segments.
//! - Nothing is fsynced (the spool is an overflow, written at tens of MB/s): what was written
//!   survives a crash of the process, and a crash of the machine leaves at worst a torn tail.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use format::MAGIC;
use format::{
    encode, read_cursor, read_one, scan_segment, write_cursor, Scan, MAX_BODY, RECORD_HEADER,
};

mod format;

/// Smallest bound a spool accepts.
pub const MIN_MAX_BYTES: u64 = 4 << 10;

/// Where a spool lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool's own directory (created if missing); one publisher per directory.
    pub dir: PathBuf,
    /// Most bytes its segment files may hold together.
    pub max_bytes: u64,
}

/// What can go wrong opening or writing a spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The directory cannot be created, written or locked.
    #[error("cannot use the spool directory {dir}: {reason}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The bound is too small to hold anything useful.
    #[error("a spool of {max_bytes} bytes is too small (at least {MIN_MAX_BYTES} bytes)")]
    TooSmall {
        /// The bound asked for.
        max_bytes: u64,
    },
    /// Reading or writing a file of the spool failed.
    #[error("spool file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

impl SpoolError {
    fn io(path: &Path, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A place in the spool: the next record to read, or the end of what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    segment: u64,
    offset: u64,
    /// Ordinal of the record at this place since the spool was opened (recovered records
    /// first), so the distance between two positions is a record count.
    index: u64,
}

/// One spooled record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The subject it is published on.
    pub subject: String,
    /// The payload.
    pub payload: Bytes,
}

/// Records read from the head of the spool, not yet consumed.
#[derive(Debug)]
pub struct Peeked {
    /// In spool order.
    pub records: Vec<Record>,
    /// Records skipped because they were damaged (their segment was read no further).
    pub lost: u64,
    /// Pass to [`Spool::commit`] once the records were delivered.
    pub end: Position,
}

/// What became of a batch handed to [`Spool::push_batch`].
#[derive(Debug)]
pub struct Pushed {
    /// Records written, in order.
    pub stored: usize,
    /// Records not written: over the bound, or lost to a write error.
    pub not_stored: usize,
    /// The end of the spool after the batch.
    pub end: Position,
    /// The write error that stopped the batch, if one did.
    pub error: Option<SpoolError>,
}

/// A part of a segment that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub path: PathBuf,
    /// Where the unreadable part starts.
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub bytes: u64,
    /// What is wrong there.
    pub reason: String,
}

/// What [`Spool::open`] found left by an earlier run.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Whole records waiting to be read.
    pub records: u64,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// Torn tails and damaged records found (not readable, reported here once).
    pub damaged: Vec<Damage>,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    /// After the last whole record: reading stops here.
    end: u64,
    /// Bytes on disk (more than `end` when a torn tail is kept until the segment is drained).
    size: u64,
    /// Ordinal of its first record.
    first_index: u64,
    /// Whole records in it.
    records: u64,
}

/// A cached reader positioned at `(segment, offset)`.
struct Reader {
    segment: u64,
    offset: u64,
    file: BufReader<File>,
}

/// A bounded on-disk FIFO (see the module docs).
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Open for appending to the newest segment, when this process created it and no write
    /// to it failed.
    writer: Option<File>,
    /// The next record to read (everything before it was committed).
    read: Position,
    /// Ordinal the next pushed record gets.
    write_index: u64,
    next_id: u64,
    reader: Option<Reader>,
    cursor: File,
    /// Held for the spool's lifetime: the OS lock on `lock`.
    _lock: File,
}

impl Spool {
    /// Opens (creating if missing) the spool in `config.dir` and reads what an earlier run
    /// left there, checking every record.
    pub fn open(config: &SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        if config.max_bytes < MIN_MAX_BYTES {
            return Err(SpoolError::TooSmall {
                max_bytes: config.max_bytes,
            });
        }
        let dir = config.dir.clone();
        let dir_error = |reason: String| SpoolError::Dir {
            dir: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| dir_error(format!("cannot create it: {e}")))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| dir_error(format!("cannot write in it: {e}")))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => dir_error(
                "another publisher holds it (each publisher needs a directory of its own)".into(),
            ),
            std::fs::TryLockError::Error(e) => dir_error(format!("cannot lock it: {e}")),
        })?;
        let cursor_path = dir.join("cursor");
        let cursor = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&cursor_path)
            .map_err(|e| dir_error(format!("cannot write in it: {e}")))?;
        let saved = read_cursor(&cursor);

        let mut ids = Vec::new();
        let entries =
            std::fs::read_dir(&dir).map_err(|e| dir_error(format!("cannot list it: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| dir_error(format!("cannot list it: {e}")))?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(id) = id {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        let mut read = None;
        let mut index = 0u64;
        let mut next_id = saved.map_or(0, |(segment, _)| segment + 1);
        for id in ids {
            next_id = next_id.max(id + 1);
            let path = segment_path(&dir, id);
            if saved.is_some_and(|(segment, _)| id < segment) {
                // Drained before the previous run ended; only its deletion was missed.
                remove_segment(&path);
                continue;
            }
            let resume_at = saved.and_then(|(segment, offset)| (segment == id).then_some(offset));
            // An unreadable segment is damage like a torn one: reported, skipped, deleted
            // once passed, rather than a spool (and its publisher) that cannot start.
            let scan = scan_segment(&path).unwrap_or_else(|e| Scan::unreadable(&path, e));
            if let Some(damage) = scan.damage {
                recovery.damaged.push(damage);
            }
            // Records before the saved cursor were delivered already; a cursor that is not a
            // record boundary (never written so) is ignored, re-sending the segment.
            let skipped = resume_at.and_then(|offset| {
                scan.boundaries
                    .iter()
                    .position(|b| *b == offset)
                    .map(|n| (offset, n as u64))
            });
            let first_index = index;
            if read.is_none() {
                read = Some(match skipped {
                    Some((offset, n)) => Position {
                        segment: id,
                        offset,
                        index: first_index + n,
                    },
                    None => Position {
                        segment: id,
                        offset: MAGIC.len() as u64,
                        index: first_index,
                    },
                });
            }
            recovery.bytes += scan.size;
            index += scan.records;
            segments.push_back(Segment {
                id,
                path,
                end: scan.end,
                size: scan.size,
                first_index,
                records: scan.records,
            });
        }
        let read = read.unwrap_or(Position {
            segment: next_id,
            offset: MAGIC.len() as u64,
            index: 0,
        });
        recovery.records = index - read.index;
        let mut spool = Spool {
            segment_bytes: (config.max_bytes / 16).clamp(1 << 10, 64 << 20),
            max_bytes: config.max_bytes,
            dir,
            segments,
            writer: None,
            read,
            write_index: index,
            next_id,
            reader: None,
            cursor,
            _lock: lock,
        };
        spool.drop_drained();
        Ok((spool, recovery))
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records not yet consumed.
    pub fn len(&self) -> u64 {
        self.write_index - self.read.index
    }

    /// Whether every record was consumed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// The bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Appends one record; `false` when it was not stored (see [`push_batch`](Self::push_batch)).
    pub fn push(&mut self, subject: &str, payload: &[u8]) -> Result<bool, SpoolError> {
        let pushed = self.push_batch([(subject, payload)]);
        match pushed.error {
            Some(e) => Err(e),
            None => Ok(pushed.stored == 1),
        }
    }

    /// Appends records in order. A record that would take the files past the bound is not
    /// stored (later, smaller ones may be); a write error stops the batch, and every record
    /// not yet written counts as not stored.
    pub fn push_batch<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Pushed {
        let mut pushed = Pushed {
            stored: 0,
            not_stored: 0,
            end: self.read,
            error: None,
        };
        // Records are encoded into one buffer and written with one call per segment.
        let mut buffer = Vec::new();
        let mut buffered = 0usize;
        for (subject, payload) in records {
            if pushed.error.is_some() {
                pushed.not_stored += 1;
                continue;
            }
            let body = 2 + subject.len() as u64 + payload.len() as u64;
            if subject.len() > usize::from(u16::MAX) || body > MAX_BODY {
                pushed.not_stored += 1;
                continue;
            }
            let len = RECORD_HEADER + body;
            let current = self
                .writer
                .is_some()
                .then(|| self.segments.back())
                .flatten();
            let rotate = match current {
                None => true,
                Some(s) => s.size + buffer.len() as u64 >= self.segment_bytes,
            };
            let needed = len + if rotate { MAGIC.len() as u64 } else { 0 };
            if self.bytes() + buffer.len() as u64 + needed > self.max_bytes {
                pushed.not_stored += 1;
                continue;
            }
            if rotate {
                if let Err(e) = self.write_buffer(&mut buffer, &mut buffered, &mut pushed) {
                    pushed.error = Some(e);
                    pushed.not_stored += 1;
                    continue;
                }
                if let Err(e) = self.new_segment() {
                    pushed.error = Some(e);
                    pushed.not_stored += 1;
                    continue;
                }
            }
            encode(&mut buffer, subject, payload);
            buffered += 1;
        }
        if pushed.error.is_none() {
            if let Err(e) = self.write_buffer(&mut buffer, &mut buffered, &mut pushed) {
                pushed.error = Some(e);
            }
        }
        pushed.end = self.end();
        pushed
    }

    /// The position after the last record.
    fn end(&self) -> Position {
        match self.segments.back() {
            Some(s) => Position {
                segment: s.id,
                offset: s.end,
                index: self.write_index,
            },
            None => self.read,
        }
    }

    /// Writes the buffered records to the newest segment. On failure they are lost (counted
    /// in `pushed.not_stored`), the segment is cut back to its last whole record and closed.
    fn write_buffer(
        &mut self,
        buffer: &mut Vec<u8>,
        buffered: &mut usize,
        pushed: &mut Pushed,
    ) -> Result<(), SpoolError> {
        if *buffered == 0 {
            return Ok(());
        }
        let count = std::mem::take(buffered);
        let (Some(writer), Some(segment)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            pushed.not_stored += count;
            buffer.clear();
            return Ok(());
        };
        let result = writer.write_all(buffer);
        let written = buffer.len() as u64;
        buffer.clear();
        match result {
            Ok(()) => {
                segment.end += written;
                segment.size += written;
                segment.records += count as u64;
                self.write_index += count as u64;
                pushed.stored += count;
                Ok(())
            }
            Err(e) => {
                pushed.not_stored += count;
                let error = SpoolError::io(&segment.path, e);
                // A later record must not sit behind a partly written one: cut the file back
                // and append to a new segment from now on. If even that fails, reading stops
                // at `end` anyway and the garbage goes with the segment.
                if writer.set_len(segment.end).is_err() {
                    segment.size = writer.metadata().map_or(segment.size, |m| m.len());
                }
                self.writer = None;
                Err(error)
            }
        }
    }

    /// Starts a new newest segment, its magic written.
    fn new_segment(&mut self) -> Result<(), SpoolError> {
        self.writer = None;
        let id = self.next_id;
        let path = segment_path(&self.dir, id);
        let created = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(MAGIC).map(|()| file));
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                remove_segment(&path);
                return Err(SpoolError::io(&path, e));
            }
        };
        self.next_id += 1;
        if self.segments.is_empty() {
            // The empty spool's read position moves to where the first record will be.
            self.read = Position {
                segment: id,
                offset: MAGIC.len() as u64,
                index: self.write_index,
            };
        }
        self.segments.push_back(Segment {
            id,
            path,
            end: MAGIC.len() as u64,
            size: MAGIC.len() as u64,
            first_index: self.write_index,
            records: 0,
        });
        self.writer = Some(file);
        Ok(())
    }

    /// Reads up to `max_records` from the head without consuming them. The end is never
    /// left at the end of a segment that has a successor, so committing it lets that segment
    /// go, and damaged records past it are counted in [`Peeked::lost`] here, not skipped
    /// silently by the commit.
    pub fn peek(&mut self, max_records: usize) -> Peeked {
        let mut peeked = Peeked {
            records: Vec::new(),
            lost: 0,
            end: self.read,
        };
        let mut pos = self.read;
        while pos.index < self.write_index {
            let Some(at) = self.segments.iter().position(|s| s.id == pos.segment) else {
                // Unreachable while indexes and segments agree; never loop on it.
                break;
            };
            let segment = &self.segments[at];
            if pos.offset >= segment.end {
                // Past this segment's last whole record: what it still counted is lost.
                peeked.lost += (segment.first_index + segment.records).saturating_sub(pos.index);
                let Some(next) = self.segments.get(at + 1) else {
                    pos.index = self.write_index;
                    break;
                };
                pos = Position {
                    segment: next.id,
                    offset: MAGIC.len() as u64,
                    index: next.first_index,
                };
                continue;
            }
            if peeked.records.len() >= max_records {
                break;
            }
            match self.read_record(at, pos.offset) {
                Ok((record, len)) => {
                    peeked.records.push(record);
                    pos.offset += len;
                    pos.index += 1;
                }
                Err(reason) => {
                    // Damaged since it was written or checked: read no further in it.
                    let segment = &mut self.segments[at];
                    tracing::error!(
                        file = %segment.path.display(),
                        offset = pos.offset,
                        "spool record unreadable ({reason}); the rest of this segment is lost"
                    );
                    segment.end = pos.offset;
                    self.reader = None;
                }
            }
        }
        peeked.end = pos;
        peeked
    }

    /// Reads the record at `offset` of segment `at`; its encoded length with it.
    fn read_record(&mut self, at: usize, offset: u64) -> Result<(Record, u64), String> {
        let segment = &self.segments[at];
        let reuse = self
            .reader
            .as_ref()
            .is_some_and(|r| r.segment == segment.id && r.offset == offset);
        if !reuse {
            let mut file = File::open(&segment.path).map_err(|e| e.to_string())?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| e.to_string())?;
            self.reader = Some(Reader {
                segment: segment.id,
                offset,
                file: BufReader::with_capacity(256 << 10, file),
            });
        }
        let limit = segment.end - offset;
        let Some(reader) = self.reader.as_mut() else {
            return Err("no reader".into());
        };
        match read_one(&mut reader.file, limit) {
            Ok(Some((record, len))) => {
                reader.offset += len;
                Ok((record, len))
            }
            Ok(None) => Err("unexpected end of file".into()),
            Err(e) => {
                self.reader = None;
                Err(e)
            }
        }
    }

    /// Consumes everything before `through` (from [`Peeked::end`] or [`Pushed::end`]),
    /// deleting the segments it drained and saving where reading resumes.
    pub fn commit(&mut self, through: Position) {
        if through.index <= self.read.index {
            return;
        }
        self.read = through;
        self.drop_drained();
        if let Err(e) = write_cursor(&self.cursor, self.read.segment, self.read.offset) {
            // Only costs duplicates after a restart: the segments are still ordered.
            tracing::warn!(error = %e, dir = %self.dir.display(),
                "cannot save the spool's read position; a restart may re-send what was delivered");
        }
    }

    /// Deletes the segments reading has passed; all of them when the spool is empty.
    fn drop_drained(&mut self) {
        let empty = self.is_empty();
        while let Some(front) = self.segments.front() {
            let newest = self.segments.len() == 1 && self.writer.is_some();
            let passed = front.id < self.read.segment
                || (front.id == self.read.segment && self.read.offset >= front.end && !newest);
            if !(passed || empty) {
                break;
            }
            if let Some(segment) = self.segments.pop_front() {
                if self
                    .reader
                    .as_ref()
                    .is_some_and(|r| r.segment == segment.id)
                {
                    self.reader = None;
                }
                remove_segment(&segment.path);
            }
        }
        if self.segments.is_empty() {
            self.writer = None;
            self.read = Position {
                segment: self.next_id,
                offset: MAGIC.len() as u64,
                index: self.write_index,
            };
        } else if let Some(front) = self.segments.front() {
            if front.id > self.read.segment {
                self.read = Position {
                    segment: front.id,
                    offset: MAGIC.len() as u64,
                    index: front.first_index,
                };
            }
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn remove_segment(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot delete a drained spool segment");
        }
    }
}

#[cfg(test)]
mod tests;
