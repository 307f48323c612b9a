//! `peerlab record`, `replay`, `inspect`, `cat` and `convert`: recordings (MCAP) and
//! peer-observer archives (`.bin`, `.bin.zst`), told apart by the file name.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use peerlab::bus::{Publisher, PublisherConfig, SubjectScheme};
use peerlab::event::descriptor_pool;
use peerlab::event::EventKind;
use peerlab::record::archive::{DEFAULT_COMPRESSION_LEVEL, DEFAULT_MAX_FILE_SIZE};
use peerlab::record::inspect::{cat_line_with, recording_schema, render_text, summarize_file};
use peerlab::record::{Layout, RecordingSource};

use super::nats::{NatsArgs, SubjectSchemeArgs};
use super::signals::shutdown_on_signals;
use super::values::{recording_offset, speed_factor, whole_seconds};

/// Record events from NATS into an MCAP file (default) or peer-observer archive files.
///
/// MCAP (`--format mcap`): schema `event.Event`, protobuf; one channel per subject, zstd
/// chunks and statistics (opens in Foxglove and the `mcap` CLI); keeps each message's
/// subject and receive time, and the extractors' counter snapshots. A chunk is flushed every
/// second, so a killed recorder loses at most 1 s. No message or chunk indexes by default
/// (they cost about 40 % of the file): viewers read such a file from its start; `--indexed`
/// writes them, for seeking in Foxglove and the `mcap` CLI in files of gigabytes.
///
/// Archive (`--format archive`): the files peer-observer's `archiver` writes and its
/// `replayer` reads: an `ArchiveHeader` then each event, length-delimited, in one zstd
/// stream (`.bin.zst`) or raw (`.bin`, `--compression-level 0`). Events only: subjects are
/// rebuilt from the events when read, times are the events' own timestamps. Files are
/// `FILE.<YYYYMMDD-HHMMSS-mmm UTC>.bin[.zst]`, a new one when `--max-file-size` is reached.
/// Written data is flushed every second.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// MCAP: the output file (with rotation: FILE-0001.mcap, FILE-0002.mcap, ...).
    /// Archive: the base name, e.g. `/data/archive` for `/data/archive.<time>.bin.zst`.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// File format: `mcap` (peerlab recording) or `archive` (peer-observer archiver files).
    #[arg(long, value_enum, default_value_t = Format::Mcap)]
    pub format: Format,
    /// MCAP: also write message and chunk indexes (16 bytes per event, uncompressed), so
    /// Foxglove and the `mcap` CLI can seek instead of reading the file from its start.
    #[arg(long)]
    pub indexed: bool,
    /// Archive: zstd level 1 to 22 (`.bin.zst`), or 0 for raw `.bin` files.
    /// peer-observer's archiver defaults to 22 (smaller, much slower).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_COMPRESSION_LEVEL,
          value_parser = clap::value_parser!(i32).range(0..=22))]
    pub compression_level: i32,
    /// Archive: start a new file once this many bytes were written to the current one
    /// (compressed bytes when compressing), checked after each event.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_SIZE,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_file_size: u64,
    /// Only these subjects (NATS patterns allowed; repeatable). Default: every event subject.
    #[arg(long = "subject", value_name = "SUBJECT")]
    pub subjects: Vec<String>,
    /// Only these event kinds (netmsg, netconn, mempool, validation, ...), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<EventKind>,
    /// MCAP: start a new file after this many MiB of events (1 to 1048576, i.e. 1 TiB).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub rotate_mib: Option<u64>,
    /// Start a new file after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub rotate_secs: Option<u64>,
    /// Size budget for rotated files: after each rotation, delete this recorder's oldest
    /// files (by name) while all of them together exceed this many MiB; the newest file is
    /// always kept. Needs --rotate-mib or --rotate-secs (or an archive).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub keep_mib: Option<u64>,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub duration: Option<u64>,
    /// Replace peer addresses with keyed pseudonyms (same network type, consistent within
    /// the recording) so the file can be shared.
    #[arg(long)]
    pub anonymize: bool,
    /// Key for --anonymize (64 hex digits, or any file content); default: a random key.
    #[arg(long, value_name = "FILE", requires = "anonymize")]
    pub anonymize_key: Option<PathBuf>,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub subjects_scheme: SubjectSchemeArgs,
}

impl RecordArgs {
    /// Records until Ctrl-C, SIGTERM or `--duration`, then logs where it wrote.
    pub async fn run(self) -> anyhow::Result<()> {
        use peerlab::record::recorder::{AnonymizeKey, RecordFormat, RecordOptions, Recorder};
        use peerlab::record::ArchiveOptions;
        let format = match self.format {
            Format::Mcap => RecordFormat::Mcap,
            Format::Archive => {
                if self.rotate_mib.is_some() {
                    anyhow::bail!(
                        "--rotate-mib is for MCAP recordings; archives rotate by --max-file-size"
                    );
                }
                RecordFormat::Archive(ArchiveOptions {
                    compression_level: self.compression_level,
                    max_file_size: self.max_file_size,
                })
            }
        };
        if self.keep_mib.is_some()
            && matches!(format, RecordFormat::Mcap)
            && self.rotate_mib.is_none()
            && self.rotate_secs.is_none()
        {
            anyhow::bail!(
                "--keep-mib deletes old rotated files: add --rotate-mib or --rotate-secs so there \
                 is more than one file"
            );
        }
        let options = RecordOptions {
            output: self.output,
            keep_bytes: self.keep_mib.map(|m| m << 20),
            format,
            layout: match self.indexed {
                true => Layout::Indexed,
                false => Layout::Compact,
            },
            subjects: self.subjects,
            kinds: self.kind,
            rotate_bytes: self.rotate_mib.map(|m| m << 20),
            rotate_after: self.rotate_secs.map(Duration::from_secs),
            duration: self.duration.map(Duration::from_secs),
            // Stored in the file's metadata with secrets redacted.
            arguments: peerlab::secret::command_line(),
            anonymize: match (self.anonymize, self.anonymize_key) {
                (false, _) => None,
                (true, Some(file)) => Some(AnonymizeKey::File(file)),
                (true, None) => Some(AnonymizeKey::Random),
            },
            // Set from the subject scheme when the recorder connects.
            scheme_stats_subject: None,
        };
        let shutdown = shutdown_on_signals(None);
        // A signal also ends the wait for NATS (which retries forever by default).
        let nats = self.nats.to_options();
        let connect = Recorder::connect(&nats, self.subjects_scheme.scheme(), &options);
        let recorder = tokio::select! {
            connected = connect => connected.context("recording failed")?,
            _ = shutdown.cancelled() => {
                tracing::warn!("stopped before a NATS server answered; nothing recorded");
                return Ok(());
            }
        };
        let summary = recorder
            .run(Default::default(), shutdown)
            .await
            .context("recording failed")?;
        let files: Vec<String> = summary
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        tracing::info!(
            events = summary.messages,
            payload_mib = format!("{:.2}", summary.payload_bytes as f64 / (1 << 20) as f64),
            filtered = summary.filtered,
            slow_consumer_events = summary.slow_consumer_events,
            files = %files.join(", "),
            "recording finished"
        );
        if summary.slow_consumer_events > 0 {
            tracing::warn!(
                "NATS reported this recorder as a slow consumer {} time(s): some events were dropped by the server",
                summary.slow_consumer_events
            );
        }
        Ok(())
    }
}

/// The file format `peerlab record` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// peerlab's MCAP recording.
    Mcap,
    /// peer-observer archive files (`.bin.zst`, or `.bin` with `--compression-level 0`).
    Archive,
}

/// Publish recorded events to NATS at the recorded pacing (times --speed).
///
/// Reads MCAP recordings and peer-observer archives (`.bin`, `.bin.zst`; chosen by the
/// name). Archives are paced by the events' own timestamps and published on the flat
/// subject of each event's kind.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Recordings or archives, replayed one after another.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Pacing factor: 1 = as recorded, 2 = twice as fast, 0 = as fast as possible
    /// (0 to 1000000).
    #[arg(long, default_value_t = 1.0, value_parser = speed_factor)]
    pub speed: f64,
    /// Skip the first SECONDS of the recording (fractions allowed).
    #[arg(long, value_name = "SECONDS", value_parser = recording_offset)]
    pub from: Option<f64>,
    /// Stop at SECONDS after the recording's start (fractions allowed).
    #[arg(long, value_name = "SECONDS", value_parser = recording_offset)]
    pub to: Option<f64>,
    /// Only these subjects (exact names; repeatable).
    #[arg(long = "subject", value_name = "SUBJECT")]
    pub subjects: Vec<String>,
    /// Only these event kinds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<EventKind>,
    /// Start over at the end, until Ctrl-C.
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Shift every Event.timestamp so the replay looks like it happens now.
    #[arg(long)]
    pub retime: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
}

impl ReplayArgs {
    /// Replays the files, then reports counts and (for paced replays) the timing error;
    /// fails when an event did not reach NATS.
    pub async fn run(self) -> anyhow::Result<()> {
        let options = peerlab::record::replayer::ReplayOptions {
            files: self.files,
            speed: self.speed,
            from: self.from.map(Duration::from_secs_f64),
            to: self.to.map(Duration::from_secs_f64),
            subjects: self.subjects,
            kinds: self.kind,
            repeat: self.repeat,
            retime: self.retime,
        };
        let publisher = Publisher::connect(
            &self.nats.to_options(),
            SubjectScheme::Flat,
            PublisherConfig::default(),
        )
        .await
        .context("connecting to NATS")?;
        let shutdown = shutdown_on_signals(None);
        let summary = peerlab::record::replayer::replay(&publisher, &options, &shutdown)
            .await
            .context("replay failed")?;
        let bus = publisher.close(Duration::from_secs(30)).await;
        let rate = summary.published as f64 / summary.elapsed.as_secs_f64().max(1e-9);
        tracing::info!(
            published = summary.published,
            delivered_to_nats = bus.sent,
            dropped = bus.dropped(),
            skipped = summary.skipped,
            passes = summary.passes,
            rate = format!("{rate:.0}/s"),
            "replay finished"
        );
        if let Some(t) = summary.timing {
            tracing::info!(
                p50_us = t.p50.as_micros() as u64,
                p99_us = t.p99.as_micros() as u64,
                max_us = t.max.as_micros() as u64,
                "timing error (actual minus scheduled send time)"
            );
        }
        if bus.dropped() > 0 {
            anyhow::bail!(
                "{} of {} replayed events did not reach NATS (buffer full: {}, larger than the server's max_payload: {}, not taken before shutdown: {}); {} delivered",
                bus.dropped(),
                bus.offered,
                bus.dropped_buffer_full,
                bus.dropped_too_large,
                bus.dropped_at_shutdown,
                bus.sent
            );
        }
        Ok(())
    }
}

/// Summarise a recording: time span, counts and rates per subject and kind, top peers.
///
/// Takes MCAP recordings and peer-observer archives (`.bin`, `.bin.zst`); for an archive the
/// metadata is its header (created, low_data) and times are the events' timestamps.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The recording or archive.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl InspectArgs {
    /// Prints a capinfos-like summary (JSON with `--json`).
    pub fn run(self) -> anyhow::Result<()> {
        let summary = summarize_file(&self.file)?;
        let text = if self.json {
            let mut line =
                serde_json::to_string_pretty(&summary).context("cannot serialize the summary")?;
            line.push('\n');
            line
        } else {
            render_text(&summary)
        };
        to_stdout(|out| out.write_all(text.as_bytes()))
    }
}

/// Print every event of a recording as a JSON line.
///
/// Takes MCAP recordings and peer-observer archives (`.bin`, `.bin.zst`); for an archive
/// `subject` is rebuilt from the event and both times are its timestamp.
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// The recording or archive.
    pub file: PathBuf,
}

impl CatArgs {
    /// Prints every message as a JSON line; what comes before damage is printed, then the
    /// error ends the output.
    pub fn run(self) -> anyhow::Result<()> {
        let mut stream = RecordingSource::open(&self.file)?;
        // A recording made before a wire-format change is shown as it was written.
        let own_schema = recording_schema(stream.descriptor_set());
        if own_schema.is_some() {
            tracing::info!(
                "{}: decoding with the recording's own schema (it differs from this peerlab's)",
                self.file.display()
            );
        }
        let schema = own_schema.as_ref().unwrap_or(descriptor_pool());
        let mut failure = None;
        to_stdout(|out| {
            for message in &mut stream {
                match message {
                    Ok(message) => {
                        serde_json::to_writer(&mut *out, &cat_line_with(&message, schema))?;
                        out.write_all(b"\n")?;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        if let Some(t) = stream.truncated() {
            tracing::warn!(
                "{}: truncated at offset {}: {}",
                self.file.display(),
                t.offset,
                t.reason
            );
        }
        Ok(())
    }
}

/// Convert between MCAP recordings and peer-observer archives, by OUT's name.
///
/// OUT ending in `.bin.zst` (zstd) or `.bin` (raw) is written as an archive, anything else
/// as MCAP; IN is read likewise. Streams (bounded memory, progress on stderr); every event
/// keeps its bytes. Archives hold events only: counter snapshots are left out, and subjects
/// come back as each event's flat subject. A truncated input converts what it holds.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The recording or archive to read.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The file to write: `.bin.zst` / `.bin` = archive, else MCAP.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// zstd level (1 to 22) of a `.bin.zst` output.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_COMPRESSION_LEVEL,
          value_parser = clap::value_parser!(i32).range(1..=22))]
    pub compression_level: i32,
}

impl ConvertArgs {
    /// Converts, then logs a one-line summary (and a warning for a truncated input).
    pub fn run(self) -> anyhow::Result<()> {
        let options = peerlab::record::convert::ConvertOptions {
            input: self.input,
            output: self.output,
            compression_level: self.compression_level,
            arguments: peerlab::secret::command_line(),
        };
        let summary = peerlab::record::convert::convert(&options).context("conversion failed")?;
        if let Some(t) = &summary.truncated {
            tracing::warn!(
                "{}: truncated at offset {}: {}; converted what was complete",
                options.input.display(),
                t.offset,
                t.reason
            );
        }
        tracing::info!(
            events = summary.events,
            left_out = summary.left_out,
            payload_mib = format!("{:.2}", summary.payload_bytes as f64 / (1 << 20) as f64),
            output_bytes = summary.output_bytes,
            "converted {} ({}) -> {} ({})",
            options.input.display(),
            summary.input_format,
            options.output.display(),
            summary.output_format
        );
        Ok(())
    }
}

/// Runs `write` on a buffered stdout; a closed pipe (`peerlab cat f | head`) ends it quietly.
fn to_stdout(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
