//! `peerlab record`, `replay`, `inspect` and `cat`: recordings.

use std::path::PathBuf;
use std::time::Duration;

use peerlab::event::EventKind;

use super::nats::{NatsArgs, SubjectSchemeArgs};
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
    /// Records until stopped.
    pub fn run(self) -> anyhow::Result<()> {
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
        peerlab::commands::record::run(
            &options,
            &self.nats.to_options(),
            self.subjects_scheme.scheme(),
        )
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
    /// Replays the files.
    pub fn run(self) -> anyhow::Result<()> {
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
        peerlab::commands::record::replay(&options, &self.nats.to_options())
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
    /// Prints the summary.
    pub fn run(self) -> anyhow::Result<()> {
        peerlab::record::inspect::inspect(&self.file, self.json)
    }
}

/// Print every event of a recording as a JSON line.
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// The recording.
    pub file: PathBuf,
}

impl CatArgs {
    /// Prints every message.
    pub fn run(self) -> anyhow::Result<()> {
        peerlab::record::inspect::cat(&self.file)
    }
}
