//! Following `debug.log` by path, like `tail -F`, or reading a FIFO like peer-observer.
//!
//! [`Follower::poll`] reads whatever is new and hands out complete lines, in file order.
//! It is blocking (plain file reads) and meant to be called in a loop on a blocking thread.
//!
//! Invariants:
//! - **No line lost or repeated across a rotation by rename** (logrotate's default, or a
//!   rename followed by SIGHUP, after which bitcoind reopens `debug.log`): the renamed file
//!   stays open and is read to its end for as long as bitcoind may still write to it (until
//!   the new file has data), and only then is it closed. Lines of the old file always come
//!   before lines of the new one.
//!   A file that sits at the path for less than one poll (two rotations within ~25 ms)
//!   is never seen, as with `tail -F`.
//! - **Copy-truncate** (the file shrinks below what was read) restarts at the beginning of the
//!   file; what bitcoind wrote between the copy and the truncation is gone from this file
//!   before it could be read, which is the known limit of that rotation style.
//! - **Bounded memory**: a line longer than [`MAX_LINE_BYTES`] is handed out cut to that
//!   length, with its real length, and the rest of it is skipped as it is read.
//! - A path that does not exist yet is waited for and, once it appears, read from its first
//!   line; a FIFO is opened without waiting for a writer, and a writer that goes away and
//!   comes back is followed.
//! - Known limit: bitcoind shrinks a large `debug.log` in place at startup when no `-debug`
//!   category is set (`-shrinkdebugfile`); that looks like a copy-truncate, so the kept tail
//!   is read again. Run the node with `-shrinkdebugfile=0` (or any `-debug=`) to avoid it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Longest line handed out whole (Core's own lines are far shorter).
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// How much is read at a time.
pub const READ_CHUNK: usize = 64 << 10;

/// Where reading starts when a regular file is first opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// At its end: only lines written from now on (like `tail -F -n 0`).
    #[default]
    End,
    /// At its beginning: every line already in it.
    Beginning,
}

/// One complete line.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Its bytes without the newline, cut to [`MAX_LINE_BYTES`].
    pub bytes: &'a [u8],
    /// Its real length, without the newline.
    pub len: usize,
}

impl Line<'_> {
    /// Whether the line was cut.
    pub fn truncated(&self) -> bool {
        self.len > self.bytes.len()
    }
}

/// What one [`Follower::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes read.
    pub bytes: u64,
    /// Complete lines handed out.
    pub lines: u64,
    /// Rotations noticed (a new file at the path, or the file truncated).
    pub rotations: u64,
}

/// An open file and the line it is in the middle of.
struct Reader {
    file: File,
    /// Device and inode, to notice that the path now names another file.
    identity: (u64, u64),
    /// Bytes read so far (to notice a truncation).
    position: u64,
    /// The start of the current line (at most [`MAX_LINE_BYTES`]).
    pending: Vec<u8>,
    /// The current line's real length so far.
    pending_len: usize,
    fifo: bool,
}

/// Follows the file (or FIFO) at one path.
pub struct Follower {
    path: PathBuf,
    start: Start,
    current: Option<Reader>,
    /// A rotated-away file bitcoind may still be writing to.
    previous: Option<Reader>,
    buffer: Vec<u8>,
}

impl Follower {
    /// Follows `path`; nothing is opened until the first [`poll`](Self::poll).
    pub fn new(path: impl Into<PathBuf>, start: Start) -> Follower {
        Follower {
            path: path.into(),
            start,
            current: None,
            previous: None,
            buffer: vec![0; READ_CHUNK],
        }
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path has been opened (it exists).
    pub fn is_open(&self) -> bool {
        self.current.is_some()
    }

    /// Opens the path now, if it exists, so that `Start::End` means the end as of this call
    /// rather than as of the first [`poll`](Self::poll) (which may run later, on another
    /// thread): lines written in between are read, not skipped.
    pub fn open_now(&mut self) -> io::Result<()> {
        if self.current.is_none() {
            match self.open(self.start)? {
                Some(reader) => self.current = Some(reader),
                None => self.start = Start::Beginning,
            }
        }
        Ok(())
    }

    /// Reads what is new and calls `on_line` for every complete line, oldest first.
    /// `Ok` with zero bytes means nothing new (or the path does not exist yet).
    pub fn poll(&mut self, mut on_line: impl FnMut(Line<'_>)) -> io::Result<Progress> {
        let mut progress = Progress::default();
        if self.current.is_none() {
            match self.open(self.start)? {
                Some(reader) => self.current = Some(reader),
                None => {
                    // A file that appears later is new: every line of it is read.
                    self.start = Start::Beginning;
                    return Ok(progress);
                }
            }
        }
        self.drain_both(&mut on_line, &mut progress)?;
        let Some(current) = self.current.as_mut() else {
            return Ok(progress);
        };
        if current.fifo {
            return Ok(progress);
        }
        // At the end of the file: has it been rotated?
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != current.identity => {
                // Renamed away and a new file created: keep reading the old one until
                // bitcoind writes to the new one; the new one is read from its beginning.
                if let Some(fresh) = self.open(Start::Beginning)? {
                    if let Some(mut older) = self.previous.take() {
                        flush_partial(&mut older, &mut on_line, &mut progress);
                    }
                    self.previous = self.current.replace(fresh);
                    progress.rotations += 1;
                    self.drain_both(&mut on_line, &mut progress)?;
                }
            }
            Ok(meta) if meta.len() < current.position => {
                // Copy-truncate: the same file, emptied.
                flush_partial(current, &mut on_line, &mut progress);
                current.file.seek(SeekFrom::Start(0))?;
                current.position = 0;
                progress.rotations += 1;
                drain(current, &mut self.buffer, &mut on_line, &mut progress)?;
            }
            // Unchanged, or renamed and not yet recreated (bitcoind still writes to the
            // renamed file until it reopens).
            _ => {}
        }
        Ok(progress)
    }

    /// Drains the rotated-away file (first: its lines are older), then the current one;
    /// closes the rotated-away file once it is quiet and bitcoind writes to the new one.
    fn drain_both(
        &mut self,
        on_line: &mut impl FnMut(Line<'_>),
        progress: &mut Progress,
    ) -> io::Result<()> {
        if let Some(previous) = self.previous.as_mut() {
            let before = progress.bytes;
            drain(previous, &mut self.buffer, on_line, progress)?;
            let quiet = progress.bytes == before;
            let switched = self.current.as_ref().is_some_and(|c| c.position > 0);
            if quiet && switched {
                if let Some(mut old) = self.previous.take() {
                    flush_partial(&mut old, on_line, progress);
                }
            }
        }
        if let Some(current) = self.current.as_mut() {
            drain(current, &mut self.buffer, on_line, progress)?;
        }
        Ok(())
    }

    /// Hands out a last partial line of every open file (at shutdown: bitcoind writes whole
    /// lines, so a partial one is all there will be).
    pub fn finish(&mut self, mut on_line: impl FnMut(Line<'_>)) -> Progress {
        let mut progress = Progress::default();
        for reader in [self.previous.as_mut(), self.current.as_mut()]
            .into_iter()
            .flatten()
        {
            flush_partial(reader, &mut on_line, &mut progress);
        }
        progress
    }

    /// Opens the path; `None` when it does not exist (yet).
    fn open(&self, start: Start) -> io::Result<Option<Reader>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let fifo = meta.file_type().is_fifo();
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        if fifo {
            // Do not wait for a writer to appear.
            options.custom_flags(libc::O_NONBLOCK);
        }
        let mut file = match options.open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let position = match (fifo, start) {
            (false, Start::End) => file.seek(SeekFrom::End(0))?,
            _ => 0,
        };
        Ok(Some(Reader {
            file,
            identity: (meta.dev(), meta.ino()),
            position,
            pending: Vec::new(),
            pending_len: 0,
            fifo,
        }))
    }
}

/// Reads `reader` to its current end, handing out complete lines.
fn drain(
    reader: &mut Reader,
    buffer: &mut [u8],
    on_line: &mut impl FnMut(Line<'_>),
    progress: &mut Progress,
) -> io::Result<()> {
    loop {
        let n = match reader.file.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        reader.position += n as u64;
        progress.bytes += n as u64;
        let mut rest = &buffer[..n];
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            append(reader, &rest[..newline]);
            emit(reader, on_line, progress);
            rest = &rest[newline + 1..];
        }
        append(reader, rest);
    }
}

fn append(reader: &mut Reader, bytes: &[u8]) {
    let room = MAX_LINE_BYTES.saturating_sub(reader.pending.len());
    reader
        .pending
        .extend_from_slice(&bytes[..bytes.len().min(room)]);
    reader.pending_len += bytes.len();
}

fn emit(reader: &mut Reader, on_line: &mut impl FnMut(Line<'_>), progress: &mut Progress) {
    // A `\r\n` ending is one line ending.
    let mut bytes = reader.pending.as_slice();
    let mut len = reader.pending_len;
    if bytes.last() == Some(&b'\r') && len == bytes.len() {
        bytes = &bytes[..bytes.len() - 1];
        len -= 1;
    }
    on_line(Line { bytes, len });
    progress.lines += 1;
    reader.pending.clear();
    reader.pending_len = 0;
}

fn flush_partial(reader: &mut Reader, on_line: &mut impl FnMut(Line<'_>), progress: &mut Progress) {
    if reader.pending_len > 0 {
        emit(reader, on_line, progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn collect(follower: &mut Follower) -> Vec<String> {
        let mut lines = Vec::new();
        follower
            .poll(|line| lines.push(String::from_utf8_lossy(line.bytes).into_owned()))
            .expect("poll");
        lines
    }

    fn append_to(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append");
        file.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn a_missing_file_is_waited_for_and_then_read_from_its_start_or_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("debug.log");
        let mut follower = Follower::new(&path, Start::End);
        assert!(collect(&mut follower).is_empty());
        assert!(!follower.is_open());
        // A file that appears after the start is new: read from its first line.
        append_to(&path, "first\n");
        assert_eq!(collect(&mut follower), ["first"]);
        // A file that exists at the start is followed from its end.
        let mut at_end = Follower::new(&path, Start::End);
        assert!(collect(&mut at_end).is_empty(), "starts at the end");
        append_to(&path, "new 1\nnew");
        assert_eq!(collect(&mut at_end), ["new 1"]);
        append_to(&path, " 2\n");
        assert_eq!(
            collect(&mut at_end),
            ["new 2"],
            "a partial line is completed"
        );
        let mut from_start = Follower::new(&path, Start::Beginning);
        assert_eq!(collect(&mut from_start), ["first", "new 1", "new 2"]);
    }

    #[test]
    fn rename_rotation_loses_and_repeats_nothing_even_with_writes_after_the_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("debug.log");
        let rotated = dir.path().join("debug.log.1");
        append_to(&path, "");
        let mut follower = Follower::new(&path, Start::Beginning);
        append_to(&path, "a\n");
        assert_eq!(collect(&mut follower), ["a"]);
        // Rename; the writer still writes to the renamed file (no SIGHUP yet), and a new
        // empty file already exists (logrotate's `create`).
        std::fs::rename(&path, &rotated).expect("rename");
        append_to(&path, "");
        append_to(&rotated, "b\n");
        assert_eq!(collect(&mut follower), ["b"]);
        append_to(&rotated, "c\n");
        // The writer reopens: from now on it writes to the new file.
        append_to(&path, "d\n");
        let mut all = collect(&mut follower);
        all.extend(collect(&mut follower));
        assert_eq!(all, ["c", "d"]);
        // A second rotation.
        std::fs::rename(&path, &rotated).expect("rename again");
        append_to(&path, "e\n");
        let mut all = collect(&mut follower);
        all.extend(collect(&mut follower));
        assert_eq!(all, ["e"]);
    }

    #[test]
    fn copy_truncate_starts_over_at_the_beginning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("debug.log");
        append_to(&path, "");
        let mut follower = Follower::new(&path, Start::Beginning);
        append_to(&path, "one\ntwo\n");
        assert_eq!(collect(&mut follower), ["one", "two"]);
        std::fs::File::create(&path).expect("truncate");
        append_to(&path, "3\n");
        assert_eq!(collect(&mut follower), ["3"]);
    }

    #[test]
    fn a_huge_line_is_cut_with_its_real_length_and_the_next_line_is_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("debug.log");
        let huge = "x".repeat(1 << 20);
        append_to(&path, &format!("{huge}\nnext\r\n"));
        let mut follower = Follower::new(&path, Start::Beginning);
        let mut seen = Vec::new();
        follower
            .poll(|line| seen.push((line.bytes.len(), line.len, line.truncated())))
            .expect("poll");
        assert_eq!(seen, [(MAX_LINE_BYTES, 1 << 20, true), (4, 4, false)]);
    }

    #[test]
    fn a_fifo_is_read_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pipe");
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let mut follower = Follower::new(&path, Start::End);
        assert!(collect(&mut follower).is_empty(), "no writer yet");
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("writer");
        writer.write_all(b"through the pipe\n").expect("write");
        assert_eq!(collect(&mut follower), ["through the pipe"]);
        drop(writer);
        assert!(collect(&mut follower).is_empty(), "writer gone");
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("writer again");
        writer.write_all(b"again\n").expect("write");
        assert_eq!(collect(&mut follower), ["again"]);
    }
}
