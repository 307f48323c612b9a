//! `peerlab convert`: MCAP recordings to peer-observer archives and back, streaming.
//!
//! The input's format comes from its name ([`RecordingSource`]), the output's likewise
//! (`.bin` = raw archive, `.bin.zst` = zstd archive, anything else = MCAP). Every event keeps
//! its bytes exactly; its subject survives an MCAP -> archive -> MCAP round trip when it is
//! the flat subject of its kind (archives store no subjects: they are rebuilt, flat).
//! peerlab's counter snapshots (`peerlab.stats.*`, JSON, not events) have no place in an
//! archive and are counted as left out. An archive becomes an MCAP file whose `log_time` and
//! `publish_time` are the event's timestamp.
//!
//! A truncated input converts what it holds (the summary says where it stops); a corrupt one
//! stops the conversion with the error, after closing the output so what was converted
//! stays readable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::archive::is_archive_path;
use super::format::is_stats_subject;
use super::{
    ArchiveWriter, RecordedMessage, RecordingError, RecordingSource, RecordingWriter, Truncation,
};

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The recording or archive to read.
    pub input: PathBuf,
    /// The file to write (its name chooses the format).
    pub output: PathBuf,
    /// zstd level of a `.bin.zst` output (1..=22; 0 = peerlab's default).
    pub compression_level: i32,
    /// The command line, stored (redacted) in an MCAP output's metadata.
    pub arguments: Vec<String>,
}

/// What a conversion did.
#[derive(Debug, Clone, Default)]
pub struct ConvertSummary {
    /// Events written.
    pub events: u64,
    /// Event payload bytes written.
    pub payload_bytes: u64,
    /// Messages of the input left out because the output cannot hold them (counter
    /// snapshots into an archive).
    pub left_out: u64,
    /// Where the input stops early, if it does.
    pub truncated: Option<Truncation>,
    /// `mcap` or `archive`.
    pub input_format: &'static str,
    /// `mcap` or `archive`.
    pub output_format: &'static str,
    /// Size of the output file.
    pub output_bytes: u64,
}

enum Sink {
    Mcap(Box<RecordingWriter>),
    Archive(Box<ArchiveWriter>),
}

impl Sink {
    fn write(&mut self, message: &RecordedMessage) -> Result<(), RecordingError> {
        match self {
            Sink::Mcap(w) => w.write(
                &message.subject,
                message.log_time,
                message.publish_time,
                &message.data,
            ),
            Sink::Archive(w) => w.write(&message.data),
        }
    }

    fn finish(self) -> Result<(), RecordingError> {
        match self {
            Sink::Mcap(w) => w.finish().map(drop),
            Sink::Archive(w) => w.finish().map(drop),
        }
    }
}

fn format_name(archive: bool) -> &'static str {
    if archive {
        "archive"
    } else {
        "mcap"
    }
}

/// Converts `options.input` into `options.output` (see the module docs).
pub fn convert(options: &ConvertOptions) -> Result<ConvertSummary, RecordingError> {
    let (input, output) = (&options.input, &options.output);
    let mut source = RecordingSource::open(input)?;
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(RecordingError::Write {
                path: output.clone(),
                reason: "it is the input file; convert into another file".into(),
            });
        }
    }
    let to_archive = is_archive_path(output);
    let mut summary = ConvertSummary {
        input_format: format_name(source.is_archive()),
        output_format: format_name(to_archive),
        ..ConvertSummary::default()
    };
    let mut sink = if to_archive {
        Sink::Archive(Box::new(ArchiveWriter::create(
            output,
            options.compression_level,
        )?))
    } else {
        Sink::Mcap(Box::new(RecordingWriter::create(
            output,
            &mcap_metadata(&source, input, &options.arguments),
        )?))
    };
    let bar = super::source::file_progress("convert", source.file_bytes(), input);
    let mut failure = None;
    while let Some(message) = source.next() {
        bar.set_position(source.position());
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        if to_archive && is_stats_subject(&message.subject) {
            summary.left_out += 1;
            continue;
        }
        if let Err(e) = sink.write(&message) {
            failure = Some(e);
            break;
        }
        summary.events += 1;
        summary.payload_bytes += message.data.len() as u64;
    }
    bar.finish_and_clear();
    // Close the output first: what was converted before an error stays readable.
    let closed = sink.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    closed?;
    summary.truncated = source.truncated().cloned();
    summary.output_bytes = std::fs::metadata(output)
        .map(|m| m.len())
        .map_err(|source| RecordingError::Io {
            path: output.clone(),
            source,
        })?;
    Ok(summary)
}

/// The `peerlab.recording` metadata of an MCAP output: the input's own (MCAP), or what an
/// archive says about itself; plus where it was converted from.
fn mcap_metadata(
    source: &RecordingSource,
    input: &Path,
    arguments: &[String],
) -> BTreeMap<String, String> {
    let mut metadata = match source {
        RecordingSource::Mcap(stream) => stream.metadata().clone(),
        RecordingSource::Archive(archive) => BTreeMap::from([
            ("node".to_string(), String::new()),
            ("subject_scheme".to_string(), "flat".to_string()),
            (
                "started_at_ns".to_string(),
                archive.created().saturating_mul(1_000_000_000).to_string(),
            ),
            ("archive_created".to_string(), archive.created().to_string()),
            (
                "archive_low_data".to_string(),
                archive.low_data().to_string(),
            ),
            ("anonymized".to_string(), "unknown".to_string()),
        ]),
    };
    metadata.insert(
        "peerlab_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    metadata.insert(
        "arguments".to_string(),
        crate::secret::redact_arguments(arguments).join(" "),
    );
    metadata.insert(
        "converted_from".to_string(),
        format!("{} ({})", input.display(), format_name(source.is_archive())),
    );
    metadata
}
