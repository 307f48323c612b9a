//! The fleet collector's recorder: the JetStream fleet stream (every honeynode's events, see
//! [`crate::bus::jetstream`]) into MCAP files, acknowledging only what is on disk.
//!
//! Invariants:
//! - a message is acknowledged only after the chunk holding it was flushed to its file, so a
//!   collector killed at any point loses nothing: what it had not flushed is redelivered;
//! - no message is recorded twice across restarts: each message's MCAP sequence is the low 32
//!   bits of its stream sequence, and on start-up the collector reads the last complete
//!   message of its newest file, rebuilds the full sequence from the consumer's acknowledged
//!   floor (what was written is at most 2^32 past it) and skips redelivered messages up to it;
//! - every run writes new files named `fleet-<ms since the epoch>.mcap`, never appending to
//!   or overwriting an earlier run's, so name order is write order;
//! - the recording keeps each message's subject (`<prefix>.<node>.<subject>`), so per-node
//!   kinds are counted by reading it back ([`count_by_node`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::recorder::now_nanos;
use super::{RecordingError, RecordingStream, RecordingWriter};
use crate::bus::jetstream::{
    ensure_collector_stream, FleetFeed, FleetMessage, StreamLimits, FLEET_STREAM,
};
use crate::bus::{BusError, NatsOptions};
use crate::event::peek_timestamp;
use crate::shutdown::Shutdown;

/// What the collector records and how it keeps its files.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Where the recordings go (created if missing).
    pub output_dir: PathBuf,
    /// The honeynodes whose streams the fleet stream sources.
    pub nodes: Vec<String>,
    /// The subject prefix the nodes use (`<prefix>.<node>.<subject>`).
    pub prefix: String,
    /// The durable consumer's name (one per collector recording the stream).
    pub durable: String,
    /// Limits of the fleet stream on the collector's server.
    pub stream_limits: StreamLimits,
    /// Start a new file after this many payload bytes.
    pub rotate_bytes: Option<u64>,
    /// Start a new file after this long.
    pub rotate_after: Option<Duration>,
    /// Delete the oldest files while all of them exceed this many bytes.
    pub keep_bytes: Option<u64>,
    /// Stop after this long (default: until stopped).
    pub duration: Option<Duration>,
    /// The command line, stored (redacted) in each file's metadata.
    pub arguments: Vec<String>,
}

/// What a collector run did.
#[derive(Debug, Clone, Default)]
pub struct CollectSummary {
    /// Files written by this run.
    pub files: Vec<PathBuf>,
    /// Messages recorded.
    pub recorded: u64,
    /// Redelivered messages skipped because an earlier run had already recorded them.
    pub skipped_duplicates: u64,
    /// The stream sequence this run resumed after.
    pub resumed_after: u64,
    /// Messages recorded per node.
    pub per_node: BTreeMap<String, u64>,
}

/// Errors of the collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// NATS or JetStream trouble.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A recording file could not be written or read.
    #[error(transparent)]
    File(#[from] RecordingError),
    /// The output directory is unusable.
    #[error("recordings directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The consumer stopped delivering (deleted on the server?).
    #[error("the consumer on {FLEET_STREAM} ended; is the stream still there?")]
    FeedEnded,
}

/// Most messages delivered but not yet acknowledged: more than a second of a busy fleet, since
/// acknowledgements go out once per flush.
const MAX_UNACKNOWLEDGED: usize = 1 << 20;

/// How often the current file is flushed and what it holds acknowledged.
const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// Records the fleet stream until `stop` fires or `options.duration` passes. `written`
/// counts recorded messages as they go, for progress.
pub async fn collect(
    nats: &NatsOptions,
    options: &CollectOptions,
    written: Arc<AtomicU64>,
    stop: Shutdown,
) -> Result<CollectSummary, CollectError> {
    std::fs::create_dir_all(&options.output_dir).map_err(|source| CollectError::Dir {
        path: options.output_dir.clone(),
        source,
    })?;
    let connection = crate::bus::connect(nats).await?;
    ensure_collector_stream(
        connection.client.clone(),
        &options.nodes,
        options.stream_limits,
    )
    .await?;
    let mut feed = FleetFeed::open(
        connection.client.clone(),
        &options.durable,
        MAX_UNACKNOWLEDGED,
    )
    .await?;
    let floor = feed.ack_floor();
    let resume_after = match last_recorded_sequence(&options.output_dir)? {
        Some(low) => full_sequence(floor, low),
        None => floor,
    };
    tracing::info!(
        acknowledged = floor,
        resume_after,
        "collecting {FLEET_STREAM} from {} node(s) into {}",
        options.nodes.len(),
        options.output_dir.display()
    );
    let mut summary = CollectSummary {
        resumed_after: resume_after,
        ..CollectSummary::default()
    };
    let metadata = metadata(options);
    let mut writer = new_file(&options.output_dir, &metadata)?;
    let mut file_started = Instant::now();
    let mut unacknowledged: Option<FleetMessage> = None;
    let mut flush = tokio::time::interval(FLUSH_PERIOD);
    let deadline = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let outcome = loop {
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = &mut deadline => break Ok(()),
            _ = flush.tick() => {
                if let Err(error) = make_durable(&mut writer, &mut unacknowledged).await {
                    break Err(error);
                }
            }
            message = feed.next() => {
                let Some(message) = message else { break Err(CollectError::FeedEnded) };
                if message.stream_sequence <= resume_after {
                    // Recorded by an earlier run that was stopped before acknowledging it.
                    summary.skipped_duplicates += 1;
                    unacknowledged = Some(message);
                    continue;
                }
                let publish_time = peek_timestamp(&message.payload).map_or(0, |ms| ms.saturating_mul(1_000_000));
                // Low 32 bits on purpose: the MCAP field is 32 bits wide (see the door sign).
                let sequence = message.stream_sequence as u32;
                if let Err(error) = writer.write_numbered(&message.subject, now_nanos(), publish_time, sequence, &message.payload) {
                    break Err(error.into());
                }
                if let Some(node) = node_of(&message.subject, &options.prefix) {
                    *summary.per_node.entry(node.to_string()).or_default() += 1;
                }
                summary.recorded += 1;
                written.fetch_add(1, Ordering::Relaxed);
                unacknowledged = Some(message);
                let rotate = options.rotate_bytes.is_some_and(|b| writer.stats().payload_bytes >= b)
                    || options.rotate_after.is_some_and(|d| file_started.elapsed() >= d);
                if rotate {
                    if let Err(error) = make_durable(&mut writer, &mut unacknowledged).await {
                        break Err(error);
                    }
                    let next = match new_file(&options.output_dir, &metadata) {
                        Ok(next) => next,
                        Err(error) => break Err(error),
                    };
                    let full = std::mem::replace(&mut writer, next);
                    summary.files.push(full.path().to_path_buf());
                    if let Err(error) = full.finish() {
                        break Err(error.into());
                    }
                    file_started = Instant::now();
                    if let Some(budget) = options.keep_bytes {
                        prune(&options.output_dir, budget);
                    }
                }
            }
        }
    };
    // Whatever happened, keep and acknowledge what was written.
    let durable = make_durable(&mut writer, &mut unacknowledged).await;
    summary.files.push(writer.path().to_path_buf());
    let finished = writer.finish();
    outcome?;
    durable?;
    finished?;
    Ok(summary)
}

/// Flushes the current chunk, then acknowledges everything up to the last message handled.
async fn make_durable(
    writer: &mut RecordingWriter,
    unacknowledged: &mut Option<FleetMessage>,
) -> Result<(), CollectError> {
    let Some(last) = unacknowledged.as_ref() else {
        return Ok(());
    };
    writer.flush()?;
    match FleetFeed::ack_through(last).await {
        Ok(()) => *unacknowledged = None,
        // Not fatal: the next acknowledgement covers this one (policy "all"); until then the
        // messages stay pending, and a restart skips them as duplicates.
        Err(error) => tracing::warn!("{error}; retrying with the next flush"),
    }
    Ok(())
}

/// The node token of `<prefix>.<node>.<rest>`.
fn node_of<'a>(subject: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    rest.split_once('.').map(|(node, _)| node)
}

/// The full stream sequence whose low 32 bits are `low`, at or after `floor` (the consumer's
/// acknowledged floor; everything written is at or past it, by less than 2^32).
pub fn full_sequence(floor: u64, low: u32) -> u64 {
    let ahead = u64::from(low.wrapping_sub(floor as u32));
    floor + ahead
}

/// Whether `name` is one of the collector's files.
fn is_collector_file(name: &str) -> bool {
    name.starts_with("fleet-") && name.ends_with(".mcap")
}

/// The sequence (low 32 bits) of the last complete message in the newest collector file that
/// has one; `None` when no file holds a message.
fn last_recorded_sequence(dir: &Path) -> Result<Option<u32>, CollectError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CollectError::Dir {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_collector_file)
        })
        .collect();
    files.sort();
    for path in files.iter().rev() {
        let mut last = None;
        // A file cut short by a kill ends at its last complete chunk: exactly what was
        // acknowledged or may have been.
        for message in RecordingStream::open(path)? {
            match message {
                Ok(message) => last = Some(message.sequence),
                Err(error) => {
                    tracing::warn!("{error}; resuming after its last complete message");
                    break;
                }
            }
        }
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

/// A new file named by the current time; a later name if that one exists.
fn new_file(
    dir: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<RecordingWriter, CollectError> {
    let mut millis = now_nanos() / 1_000_000;
    let path = loop {
        let path = dir.join(format!("fleet-{millis:013}.mcap"));
        if !path.exists() {
            break path;
        }
        millis += 1;
    };
    Ok(RecordingWriter::create(&path, metadata)?)
}

fn prune(dir: &Path, budget: u64) {
    if let Err(error) = super::retention::prune_to_budget(dir, budget, is_collector_file) {
        tracing::warn!(dir = %dir.display(), "cannot apply the recordings' size budget: {error}");
    }
}

fn metadata(options: &CollectOptions) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "peerlab_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("role".to_string(), "fleet collector".to_string()),
        ("stream".to_string(), FLEET_STREAM.to_string()),
        ("nodes".to_string(), options.nodes.join(",")),
        (
            "subject_scheme".to_string(),
            format!("{}.<node>.<subject>", options.prefix),
        ),
        (
            "sequence".to_string(),
            "low 32 bits of the fleet stream sequence".to_string(),
        ),
        (
            "arguments".to_string(),
            crate::secret::redact_arguments(&options.arguments).join(" "),
        ),
        ("started_at_ns".to_string(), now_nanos().to_string()),
    ])
}

/// Messages per `(node, subject after the node token)`.
pub type NodeCounts = BTreeMap<(String, String), u64>;

/// Reads recordings back and counts messages per node and subject kind, and how many
/// sequence numbers occur more than once (duplicates).
pub fn count_by_node(files: &[PathBuf], prefix: &str) -> Result<(NodeCounts, u64), RecordingError> {
    let mut counts = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut repeated = 0;
    for path in files {
        for message in RecordingStream::open(path)? {
            let message = message?;
            let Some(node) = node_of(&message.subject, prefix) else {
                continue;
            };
            let kind = message
                .subject
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_prefix(node))
                .and_then(|r| r.strip_prefix('.'))
                .unwrap_or_default()
                .to_string();
            *counts.entry((node.to_string(), kind)).or_default() += 1;
            if !seen.insert(message.sequence) {
                repeated += 1;
            }
        }
    }
    Ok((counts, repeated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_sequence_is_rebuilt_from_the_floor_and_the_low_bits() {
        assert_eq!(full_sequence(0, 0), 0);
        assert_eq!(full_sequence(10, 15), 15);
        assert_eq!(full_sequence(10, 10), 10);
        // Past a 32-bit wrap: the floor just below 2^32, the low bits just above 0.
        let floor = (1u64 << 32) - 5;
        assert_eq!(full_sequence(floor, 3), (1u64 << 32) + 3);
        let floor = (7u64 << 32) + 100;
        assert_eq!(full_sequence(floor, 250), (7u64 << 32) + 250);
    }

    #[test]
    fn the_node_is_the_token_after_the_prefix() {
        assert_eq!(node_of("peerlab.node1.netmsg", "peerlab"), Some("node1"));
        assert_eq!(
            node_of("peerlab.n2.peerlab.stats.ebpf", "peerlab"),
            Some("n2")
        );
        assert_eq!(node_of("other.node1.netmsg", "peerlab"), None);
        assert_eq!(node_of("peerlab.node1", "peerlab"), None);
    }

    #[test]
    fn the_last_sequence_comes_from_the_newest_file_with_messages() {
        let dir = tempfile::tempdir().expect("dir");
        let meta = BTreeMap::new();
        let mut old = RecordingWriter::create(&dir.path().join("fleet-0000000000001.mcap"), &meta)
            .expect("create");
        old.write_numbered("peerlab.a.netmsg", 1, 1, 41, b"x")
            .expect("write");
        old.write_numbered("peerlab.a.netmsg", 2, 2, 42, b"y")
            .expect("write");
        old.finish().expect("finish");
        // A newer file that a kill left without a single complete message.
        RecordingWriter::create(&dir.path().join("fleet-0000000000002.mcap"), &meta)
            .expect("create")
            .finish()
            .expect("finish");
        std::fs::write(dir.path().join("notes.mcap"), b"not ours").expect("write");
        assert_eq!(last_recorded_sequence(dir.path()).expect("reads"), Some(42));
        let empty = tempfile::tempdir().expect("dir");
        assert_eq!(last_recorded_sequence(empty.path()).expect("reads"), None);
    }
}
