//! The recorder loop: bus -> recording file(s), with rotation and a live status line.
//!
//! Two formats ([`RecordFormat`]): peerlab's MCAP (default; events and counter snapshots,
//! receive time and subject kept) or peer-observer archives (events only, as the archiver
//! writes them: `<output>.<YYYYMMDD-HHMMSS-mmm>.bin[.zst]`, rotated by written bytes; no
//! subject, no receive time, no metadata).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::anonymize::Anonymizer;
use super::archive::{ArchiveOptions, ArchiveWriter};
use super::format::is_stats_subject;
use super::{Layout, RecordingError, RecordingWriter, WriterStats};
use crate::bus::{BusError, NatsOptions, SubjectScheme, Subscriber};
use crate::event::counters::RecorderCounters;
use crate::event::{peek_timestamp, EventKind};
use crate::shutdown::Shutdown;

/// What to record.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// MCAP: the output file; with rotation the files are `<stem>-0001.<ext>`,
    /// `<stem>-0002.<ext>`, ... Archive: the base name, files are
    /// `<output>.<YYYYMMDD-HHMMSS-mmm>.bin[.zst]`.
    pub output: PathBuf,
    /// The file format.
    pub format: RecordFormat,
    /// MCAP: which indexes the files carry (archives have none).
    pub layout: Layout,
    /// Subject patterns (default: every event subject of the scheme).
    pub subjects: Vec<String>,
    /// Only these kinds (default: all).
    pub kinds: Vec<EventKind>,
    /// Rotate after this many payload bytes (MCAP; archives rotate by
    /// [`ArchiveOptions::max_file_size`]).
    pub rotate_bytes: Option<u64>,
    /// Rotate after this long.
    pub rotate_after: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// After each rotation, delete this recorder's oldest files while they total more than
    /// this many bytes (the newest is always kept; see [`super::retention`]).
    pub keep_bytes: Option<u64>,
    /// The command line, stored in the file's metadata with secrets redacted
    /// ([`crate::secret::redact_arguments`]).
    pub arguments: Vec<String>,
    /// Replace peer addresses by keyed pseudonyms (see [`super::anonymize`]).
    pub anonymize: Option<AnonymizeKey>,
    /// Where the recorder publishes its own counters (set from the subject scheme when it
    /// connects; `None`: not published).
    pub scheme_stats_subject: Option<String>,
}

impl RecordOptions {
    /// Everything of every subject into `output` (one file, no rotation, no anonymization)
    /// until stopped; `arguments` is what the metadata says the recording was made with.
    pub fn new(output: impl Into<PathBuf>, arguments: Vec<String>) -> RecordOptions {
        RecordOptions {
            output: output.into(),
            format: RecordFormat::Mcap,
            layout: Layout::default(),
            subjects: Vec::new(),
            kinds: Vec::new(),
            rotate_bytes: None,
            rotate_after: None,
            duration: None,
            keep_bytes: None,
            arguments,
            anonymize: None,
            scheme_stats_subject: None,
        }
    }
}

/// The format a recorder writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// peerlab's MCAP recording (see [`super::format`]).
    #[default]
    Mcap,
    /// peer-observer archive files (see [`super::archive`]); counter snapshots are not
    /// recorded (they are not events).
    Archive(ArchiveOptions),
}

/// The files being written.
enum Output {
    Mcap {
        writer: Box<RecordingWriter>,
        files: FileSequence,
        layout: Layout,
        metadata: BTreeMap<String, String>,
        done: Vec<PathBuf>,
    },
    Archive(ArchiveWriter),
}

impl Output {
    fn create(
        options: &RecordOptions,
        metadata: BTreeMap<String, String>,
    ) -> Result<Output, RecordingError> {
        Ok(match &options.format {
            RecordFormat::Mcap => {
                let mut files = FileSequence::new(
                    &options.output,
                    options.rotate_bytes.is_some() || options.rotate_after.is_some(),
                );
                let writer = Box::new(RecordingWriter::create_with(
                    &files.next_path(),
                    &metadata,
                    options.layout,
                )?);
                Output::Mcap {
                    writer,
                    files,
                    layout: options.layout,
                    metadata,
                    done: Vec::new(),
                }
            }
            RecordFormat::Archive(archive) => {
                Output::Archive(ArchiveWriter::rotating(&options.output, archive.clone())?)
            }
        })
    }

    fn write(
        &mut self,
        subject: &str,
        log_time: u64,
        publish_time: u64,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        match self {
            Output::Mcap { writer, .. } => writer.write(subject, log_time, publish_time, payload),
            Output::Archive(writer) => writer.write(payload),
        }
    }

    fn flush_if_due(&mut self) -> Result<(), RecordingError> {
        match self {
            Output::Mcap { writer, .. } if writer.flush_due() => writer.flush(),
            Output::Archive(writer) if writer.flush_due() => writer.flush(),
            _ => Ok(()),
        }
    }

    /// Counters of the current file.
    fn file_stats(&self) -> WriterStats {
        match self {
            Output::Mcap { writer, .. } => writer.stats(),
            Output::Archive(writer) => writer.file_stats(),
        }
    }

    fn rotate(&mut self) -> Result<(), RecordingError> {
        match self {
            Output::Mcap {
                writer,
                files,
                layout,
                metadata,
                done,
            } => {
                let next = RecordingWriter::create_with(&files.next_path(), metadata, *layout)?;
                let full = std::mem::replace(writer, Box::new(next));
                done.push(full.path().to_path_buf());
                full.finish()?;
                Ok(())
            }
            Output::Archive(writer) => writer.rotate(),
        }
    }

    fn finish(self) -> Result<Vec<PathBuf>, RecordingError> {
        match self {
            Output::Mcap {
                writer, mut done, ..
            } => {
                done.push(writer.path().to_path_buf());
                writer.finish()?;
                Ok(done)
            }
            Output::Archive(writer) => writer.finish().map(|(_, files)| files),
        }
    }
}

/// Where `--anonymize` takes its key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnonymizeKey {
    /// A fresh random key: pseudonyms consistent within this recording only.
    Random,
    /// A key file: pseudonyms stable across recordings made with it.
    File(PathBuf),
}

/// What a recording session did.
#[derive(Debug, Clone, Default)]
pub struct RecordSummary {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Messages written.
    pub messages: u64,
    /// Payload bytes written.
    pub payload_bytes: u64,
    /// Messages received but filtered out.
    pub filtered: u64,
    /// Times NATS reported this recorder as a slow consumer (messages were dropped).
    pub slow_consumer_events: u64,
}

/// Errors of the recorder.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// Bus trouble.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// File trouble.
    #[error(transparent)]
    File(#[from] RecordingError),
}

/// Records until `stop` fires (or `options.duration` passes). `written` counts messages as
/// they are written, for callers that watch progress.
pub async fn record(
    nats: &NatsOptions,
    scheme: SubjectScheme,
    options: &RecordOptions,
    written: Arc<AtomicU64>,
    stop: Shutdown,
) -> Result<RecordSummary, RecorderError> {
    Recorder::connect(nats, scheme, options)
        .await?
        .run(written, stop)
        .await
}

/// A recorder that is subscribed (every event published from now on will be recorded) but
/// not yet writing: callers that start producers afterwards lose nothing to a race.
pub struct Recorder {
    subscriber: Subscriber,
    anonymizer: Option<Anonymizer>,
    metadata: BTreeMap<String, String>,
    options: RecordOptions,
}

impl Recorder {
    /// Subscribes (confirmed by the server) and prepares the anonymizer; no file yet.
    pub async fn connect(
        nats: &NatsOptions,
        scheme: SubjectScheme,
        options: &RecordOptions,
    ) -> Result<Recorder, RecorderError> {
        connect_recorder(nats, scheme, options).await
    }

    /// Records until `stop` fires (or `options.duration` passes).
    pub async fn run(
        self,
        written: Arc<AtomicU64>,
        stop: Shutdown,
    ) -> Result<RecordSummary, RecorderError> {
        run_recorder(self, written, stop).await
    }
}

async fn connect_recorder(
    nats: &NatsOptions,
    scheme: SubjectScheme,
    options: &RecordOptions,
) -> Result<Recorder, RecorderError> {
    let mut patterns = if options.subjects.is_empty() {
        vec![scheme.wildcard()]
    } else {
        options.subjects.clone()
    };
    // Counter snapshots are not events: archives have no place for them.
    if options.format == RecordFormat::Mcap {
        patterns.push(scheme.stats_wildcard());
    }
    let subscriber = Subscriber::connect(nats, scheme.clone(), &patterns).await?;
    let anonymizer = match &options.anonymize {
        None => None,
        Some(AnonymizeKey::Random) => {
            Some(Anonymizer::random().map_err(|source| RecordingError::Io {
                path: "/dev/urandom".into(),
                source,
            })?)
        }
        Some(AnonymizeKey::File(path)) => Some(Anonymizer::from_key_file(path).map_err(
            |source| RecordingError::Io {
                path: path.clone(),
                source,
            },
        )?),
    };
    let metadata = metadata(options, nats, &scheme);
    let mut options = options.clone();
    // Not `stats_subject`: a recorder of a whole fleet (`--node '*'`) cannot publish there.
    options.scheme_stats_subject = Some(scheme.own_stats_subject("recorder"));
    Ok(Recorder {
        subscriber,
        anonymizer,
        metadata,
        options,
    })
}

/// How often the recorder publishes its counters.
const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// The recorder's lag behind the events' own times.
#[derive(Debug, Default)]
struct LagTracker {
    last_ms: u64,
    max_ms: u64,
}

impl LagTracker {
    fn observe(&mut self, lag_ms: u64) {
        self.last_ms = lag_ms;
        self.max_ms = self.max_ms.max(lag_ms);
    }

    /// The snapshot to publish; the maximum starts again for the next period.
    fn snapshot(&mut self, summary: &RecordSummary, slow: u64) -> RecorderCounters {
        let counters = RecorderCounters {
            recorded: summary.messages,
            lag_ms: self.last_ms,
            max_lag_ms: self.max_ms,
            slow_consumer_events: slow,
        };
        self.max_ms = self.last_ms;
        counters
    }
}

async fn run_recorder(
    recorder: Recorder,
    written: Arc<AtomicU64>,
    stop: Shutdown,
) -> Result<RecordSummary, RecorderError> {
    let Recorder {
        mut subscriber,
        mut anonymizer,
        metadata,
        options,
    } = recorder;
    let options = &options;
    let mut output = Output::create(options, metadata)?;
    let mut file_started = Instant::now();
    let mut summary = RecordSummary::default();
    let status = Status::new();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    // The recorder's own counters go on the bus for the metrics tool (lag behind the node).
    let status_subject = options.scheme_stats_subject.clone();
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + STATUS_PERIOD, STATUS_PERIOD);
    let mut lag = LagTracker::default();
    let deadline = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut deadline => break,
            _ = report.tick() => {
                // Archives rotate inside their writer: their budget is applied here.
                if let (Some(budget), Output::Archive(_)) = (options.keep_bytes, &output) {
                    prune_own_files(options, budget);
                }
                if let Some(subject) = &status_subject {
                    let counters = lag.snapshot(&summary, subscriber.slow_consumer_events());
                    if let Ok(json) = serde_json::to_vec(&counters) {
                        // Best effort: a lost snapshot is replaced by the next one.
                        let _ = subscriber.publish_status(subject.clone(), json.into()).await;
                    }
                }
            }
            _ = ticker.tick() => {
                output.flush_if_due()?;
                summary.slow_consumer_events = subscriber.slow_consumer_events();
                status.update(&summary, output.file_stats().payload_bytes, started);
            }
            message = subscriber.next() => {
                let Some(message) = message else { break };
                // Our own counters come back on the stats subscription; they describe the
                // recording, they are not part of it.
                if status_subject.as_deref() == Some(message.subject.as_str()) {
                    continue;
                }
                let is_stats = is_stats_subject(&message.subject);
                if !is_stats && !options.kinds.is_empty() && !message.kind.is_some_and(|k| options.kinds.contains(&k)) {
                    summary.filtered += 1;
                    continue;
                }
                // An archive holds events only: counter snapshots and payloads on subjects
                // that are not an event kind would be frames peer-observer cannot read.
                if matches!(output, Output::Archive(_)) && (is_stats || message.kind.is_none()) {
                    summary.filtered += 1;
                    continue;
                }
                let log_time = now_nanos();
                let publish_time = if is_stats { log_time } else { peek_timestamp(&message.payload).map_or(0, |ms| ms.saturating_mul(1_000_000)) };
                match anonymizer.as_mut().filter(|_| !is_stats) {
                    Some(anonymizer) => {
                        let payload = anonymizer.anonymize(&message.payload);
                        output.write(&message.subject, log_time, publish_time, &payload)?;
                    }
                    None => output.write(&message.subject, log_time, publish_time, &message.payload)?,
                }
                if !is_stats && publish_time > 0 {
                    lag.observe(log_time.saturating_sub(publish_time) / 1_000_000);
                }
                summary.messages += 1;
                written.fetch_add(1, Ordering::Relaxed);
                summary.payload_bytes += message.payload.len() as u64;
                let rotate = options.rotate_bytes.is_some_and(|b| output.file_stats().payload_bytes >= b)
                    || options.rotate_after.is_some_and(|d| file_started.elapsed() >= d);
                if rotate {
                    output.rotate()?;
                    file_started = Instant::now();
                    if let Some(budget) = options.keep_bytes {
                        prune_own_files(options, budget);
                    }
                }
            }
        }
    }
    summary.files = output.finish()?;
    summary.slow_consumer_events = subscriber.slow_consumer_events();
    status.finish();
    Ok(summary)
}

/// Applies the size budget to the files this recorder writes (by their naming pattern). A
/// failure is logged, not fatal: recording matters more than pruning.
fn prune_own_files(options: &RecordOptions, budget: u64) {
    let dir = match options.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = options.output.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let result = match options.format {
        RecordFormat::Mcap => {
            let (stem, ext) = FileSequence::stem_and_ext(&options.output);
            let prefix = format!("{stem}-");
            let suffix = format!(".{ext}");
            super::retention::prune_to_budget(&dir, budget, |n| {
                n.starts_with(&prefix) && n.ends_with(&suffix)
            })
        }
        RecordFormat::Archive(_) => {
            let prefix = format!("{name}.");
            super::retention::prune_to_budget(&dir, budget, |n| {
                n.starts_with(&prefix) && (n.ends_with(".bin") || n.ends_with(".bin.zst"))
            })
        }
    };
    if let Err(error) = result {
        tracing::warn!(dir = %dir.display(), "cannot apply the recordings' size budget: {error}");
    }
}

fn metadata(
    options: &RecordOptions,
    nats: &NatsOptions,
    scheme: &SubjectScheme,
) -> BTreeMap<String, String> {
    let node = match scheme {
        SubjectScheme::Flat => String::new(),
        SubjectScheme::Prefixed { node, .. } => node.clone(),
    };
    BTreeMap::from([
        (
            "peerlab_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("node".to_string(), node),
        ("subject_scheme".to_string(), scheme.describe()),
        (
            "nats".to_string(),
            crate::secret::redact_url_list(&nats.addresses.join(",")),
        ),
        (
            "arguments".to_string(),
            crate::secret::redact_arguments(&options.arguments).join(" "),
        ),
        ("started_at_ns".to_string(), now_nanos().to_string()),
        (
            "anonymized".to_string(),
            match &options.anonymize {
                None => "no",
                Some(AnonymizeKey::Random) => "yes, random key",
                Some(AnonymizeKey::File(_)) => "yes, key file",
            }
            .to_string(),
        ),
    ])
}

/// Names of successive files: the output itself, or numbered files when rotating.
struct FileSequence {
    base: PathBuf,
    rotating: bool,
    index: u32,
}

impl FileSequence {
    /// Numbered files continue after the highest number already in the directory, so a
    /// restarted recorder never overwrites what an earlier run wrote.
    fn new(base: &Path, rotating: bool) -> FileSequence {
        let mut sequence = FileSequence {
            base: base.to_path_buf(),
            rotating,
            index: 0,
        };
        if rotating {
            sequence.index = sequence.highest_existing_index();
        }
        sequence
    }

    fn stem_and_ext(base: &Path) -> (String, String) {
        let stem = base
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("recording");
        let ext = base.extension().and_then(|s| s.to_str()).unwrap_or("mcap");
        (stem.to_string(), ext.to_string())
    }

    fn highest_existing_index(&self) -> u32 {
        let (stem, ext) = FileSequence::stem_and_ext(&self.base);
        let dir = match self.base.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let number = name
                    .strip_prefix(&format!("{stem}-"))?
                    .strip_suffix(&format!(".{ext}"))?;
                number.parse::<u32>().ok()
            })
            .max()
            .unwrap_or(0)
    }

    fn next_path(&mut self) -> PathBuf {
        self.index += 1;
        if !self.rotating {
            return self.base.clone();
        }
        let (stem, ext) = FileSequence::stem_and_ext(&self.base);
        self.base
            .with_file_name(format!("{stem}-{:04}.{ext}", self.index))
    }
}

/// The live status line (a log line every 10 s when stderr is not a terminal).
struct Status {
    bar: ProgressBar,
    last_log: std::cell::Cell<Instant>,
}

impl Status {
    fn new() -> Status {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Status {
            bar,
            last_log: std::cell::Cell::new(Instant::now()),
        }
    }

    fn update(&self, summary: &RecordSummary, bytes: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "recording: {} events ({:.0}/s), {:.1} MiB in this file, slow-consumer drops reported: {}",
            summary.messages,
            summary.messages as f64 / secs,
            bytes as f64 / (1 << 20) as f64,
            summary.slow_consumer_events
        );
        if self.bar.is_hidden() {
            if self.last_log.get().elapsed() >= Duration::from_secs(10) {
                self.last_log.set(Instant::now());
                tracing::info!("{line}");
            }
        } else {
            self.bar.set_message(line);
            self.bar.tick();
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Nanoseconds since the UNIX epoch.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_files_continue_after_the_files_of_an_earlier_run() {
        let dir = tempfile::tempdir().expect("dir");
        for name in [
            "rec-0001.mcap",
            "rec-0007.mcap",
            "rec-x.mcap",
            "other-0009.mcap",
        ] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        let mut files = FileSequence::new(&dir.path().join("rec.mcap"), true);
        assert_eq!(files.next_path(), dir.path().join("rec-0008.mcap"));
        let mut single = FileSequence::new(&dir.path().join("rec.mcap"), false);
        assert_eq!(single.next_path(), dir.path().join("rec.mcap"));
    }

    #[test]
    fn the_lag_snapshot_keeps_the_last_lag_and_the_period_maximum() {
        let mut lag = LagTracker::default();
        for ms in [5, 800, 20] {
            lag.observe(ms);
        }
        let summary = RecordSummary {
            messages: 3,
            ..RecordSummary::default()
        };
        let first = lag.snapshot(&summary, 1);
        assert_eq!(
            (first.recorded, first.lag_ms, first.max_lag_ms),
            (3, 20, 800)
        );
        assert_eq!(first.slow_consumer_events, 1);
        // The next period's maximum starts from the last lag, not from the old peak.
        lag.observe(10);
        assert_eq!(lag.snapshot(&summary, 1).max_lag_ms, 20);
    }
}
