//! One way to read either format: [`RecordingSource`] is an MCAP [`RecordingStream`] or a
//! peer-observer [`ArchiveReader`], chosen by the file name (`.bin` / `.bin.zst` = archive,
//! anything else = MCAP), so replay, inspect, cat and convert take both with no flag.
//!
//! Both yield [`RecordedMessage`]s in file order with errors that name the file and offset,
//! stream (bounded memory), and report a cut the same way ([`Truncation`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::archive::{is_archive_path, ArchiveReader};
use super::{RecordedMessage, RecordingError, RecordingStream, Truncation};

/// A recording of either format, read as a stream.
pub enum RecordingSource {
    /// A peerlab MCAP recording.
    Mcap(RecordingStream),
    /// A peer-observer archive.
    Archive(ArchiveReader),
}

impl RecordingSource {
    /// Opens `path` as an archive when its name ends in `.bin` or `.bin.zst`, else as MCAP.
    pub fn open(path: &Path) -> Result<RecordingSource, RecordingError> {
        if is_archive_path(path) {
            ArchiveReader::open(path).map(RecordingSource::Archive)
        } else {
            RecordingStream::open(path).map(RecordingSource::Mcap)
        }
    }

    /// Whether this is an archive.
    pub fn is_archive(&self) -> bool {
        matches!(self, RecordingSource::Archive(_))
    }

    /// MCAP: the `peerlab.recording` metadata; archive: format, compression, header fields
    /// (and skipped frames once the iteration has ended).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        match self {
            RecordingSource::Mcap(s) => s.metadata(),
            RecordingSource::Archive(a) => a.metadata(),
        }
    }

    /// Where and why the file stops early; known once the iteration has ended.
    pub fn truncated(&self) -> Option<&Truncation> {
        match self {
            RecordingSource::Mcap(s) => s.truncated(),
            RecordingSource::Archive(a) => a.truncated(),
        }
    }

    /// File size in bytes.
    pub fn file_bytes(&self) -> u64 {
        match self {
            RecordingSource::Mcap(s) => s.file_bytes(),
            RecordingSource::Archive(a) => a.file_bytes(),
        }
    }

    /// File bytes read so far (for progress).
    pub fn position(&self) -> u64 {
        match self {
            RecordingSource::Mcap(s) => s.position(),
            RecordingSource::Archive(a) => a.position(),
        }
    }

    /// The schema the file embeds (MCAP), empty for an archive.
    pub fn descriptor_set(&self) -> &[u8] {
        match self {
            RecordingSource::Mcap(s) => s.descriptor_set(),
            // Archives carry no schema: their events are read with this peerlab's.
            RecordingSource::Archive(_) => &[],
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            RecordingSource::Mcap(s) => s.path(),
            RecordingSource::Archive(a) => a.path(),
        }
    }
}

impl Iterator for RecordingSource {
    type Item = Result<RecordedMessage, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RecordingSource::Mcap(s) => s.next(),
            RecordingSource::Archive(a) => a.next(),
        }
    }
}

/// A progress bar over a file's bytes, labelled `verb file-name` (replay and convert show it;
/// events are counted only once read).
pub(crate) fn file_progress(verb: &str, file_bytes: u64, path: &Path) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(file_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{verb} {{msg}} [{{bar:30}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string(),
    );
    bar
}
