//! `peerlab record`, `replay`, `inspect` and `cat`: recordings.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use peerlab::bus::{Publisher, PublisherConfig, SubjectScheme};
use peerlab::event::descriptor_pool;
use peerlab::event::EventKind;
use peerlab::record::inspect::{cat_line_with, recording_schema, render_text, summarize_file};
use peerlab::record::RecordingStream;

use super::nats::{NatsArgs, SubjectSchemeArgs};
use super::signals::shutdown_on_signals;
use super::values::{recording_offset, speed_factor, whole_seconds};

/// Record events from NATS into an MCAP file (schema `event.Event`, protobuf).
///
/// One channel per subject, zstd chunks with indexes and statistics (opens in Foxglove and
/// the `mcap` CLI). A chunk is flushed every second, so a killed recorder loses at most 1 s.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Output file (with rotation: FILE-0001.mcap, FILE-0002.mcap, ...).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Only these subjects (NATS patterns allowed; repeatable). Default: every event subject.
    #[arg(long = "subject", value_name = "SUBJECT")]
    pub subjects: Vec<String>,
    /// Only these event kinds (netmsg, netconn, mempool, validation, ...), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<EventKind>,
    /// Start a new file after this many MiB of events (1 to 1048576, i.e. 1 TiB).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub rotate_mib: Option<u64>,
    /// Start a new file after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub rotate_secs: Option<u64>,
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
        use peerlab::record::recorder::{AnonymizeKey, RecordOptions};
        let options = RecordOptions {
            output: self.output,
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
        };
        let summary = peerlab::record::recorder::record(
            &self.nats.to_options(),
            self.subjects_scheme.scheme(),
            &options,
            Default::default(),
            shutdown_on_signals(None),
        )
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

/// Publish recorded events to NATS at the recorded pacing (times --speed).
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Recordings, replayed one after another.
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
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The recording.
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
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// The recording.
    pub file: PathBuf,
}

impl CatArgs {
    /// Prints every message as a JSON line; what comes before damage is printed, then the
    /// error ends the output.
    pub fn run(self) -> anyhow::Result<()> {
        let mut stream = RecordingStream::open(&self.file)?;
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

/// Runs `write` on a buffered stdout; a closed pipe (`peerlab cat f | head`) ends it quietly.
fn to_stdout(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
