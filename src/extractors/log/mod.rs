//! The log extractor: Bitcoin Core's `debug.log` -> `log_extractor.log` events on the bus.
//!
//! peer-observer's log extractor reads a FIFO fed by `tail -F debug.log`; this one follows
//! `debug.log` by path itself ([`follow`]: rotation by rename or copy-truncate, a FIFO as
//! well, for compatibility) and parses each line exactly as peer-observer does ([`parse`]):
//! timestamp, category, level and thread, `BlockConnected` and `BlockChecked` lines into
//! their arms, every other line as an unknown message. Events go out on subject
//! `log-extractor`, one per line.
//!
//! Invariants:
//! - lines are published in the order they were written, one event each, none repeated;
//! - nothing is dropped silently: lines without the expected shape are published (as
//!   peer-observer does) and counted as `unparsed_lines`; lines cut to
//!   [`follow::MAX_LINE_BYTES`] are counted as `truncated_lines`; while the publisher's
//!   buffer is full the reader waits (the lines stay in the file: a backlog read with
//!   `--from-start` outruns NATS), and only what a stop leaves unsent is counted as
//!   `publish_dropped`;
//! - a `debug.log` that does not exist yet is waited for, and a read error is logged and
//!   retried, never fatal.

pub mod follow;
pub mod parse;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{publish_counters, Extractor};
use crate::bus::Publisher;
use crate::event::counters::ExtractorCounters;
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::{now_millis, Event};
use crate::shutdown::Shutdown;
use follow::{Follower, Line, Start};

/// How to run the log extractor.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `debug.log` (or a FIFO fed with its lines).
    pub path: PathBuf,
    /// Where reading a regular file starts (default: its end, like `tail -F`).
    pub start: Start,
    /// How long to sleep once caught up with the file (peer-observer: 25 ms, when nothing is
    /// new). Lines written meanwhile are read in one go.
    pub poll_interval: Duration,
    /// How often counters are published (a read error is logged and retried at most once
    /// a second; a missing file is logged once).
    pub report_period: Duration,
}

impl LogConfig {
    /// Defaults for following `path`.
    pub fn new(path: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            path: path.into(),
            start: Start::End,
            poll_interval: Duration::from_millis(25),
            report_period: Duration::from_secs(10),
        }
    }
}

/// What can go wrong running the log extractor.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The reading task died.
    #[error("log extractor task failed: {0}")]
    Task(String),
}

/// Live counters.
#[derive(Debug, Default)]
struct LogStats {
    lines: AtomicU64,
    unparsed: AtomicU64,
    truncated: AtomicU64,
    rotations: AtomicU64,
    read_errors: AtomicU64,
    published: AtomicU64,
    publish_dropped: AtomicU64,
}

impl LogStats {
    fn counters(&self) -> ExtractorCounters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExtractorCounters {
            records: load(&self.lines),
            published: load(&self.published),
            publish_dropped: load(&self.publish_dropped),
            unparsed_lines: load(&self.unparsed),
            truncated_lines: load(&self.truncated),
            rotations: load(&self.rotations),
            read_errors: load(&self.read_errors),
            ..ExtractorCounters::default()
        }
    }
}

/// A running log extractor.
pub struct LogExtractor {
    stats: Arc<LogStats>,
    shutdown: Shutdown,
    /// Taken by `stop`.
    task: Option<JoinHandle<()>>,
}

impl Drop for LogExtractor {
    /// The reading loop runs on a blocking thread, which a runtime waits for when it shuts
    /// down: an extractor dropped without `stop` must still end it.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Extractor for LogExtractor {
    type Config = LogConfig;
    type Error = LogError;
    const COMPONENT: &'static str = "log-extractor";

    /// Starts following at once; a missing file is waited for in the background.
    fn start(
        config: LogConfig,
        publisher: Arc<Publisher>,
        shutdown: Shutdown,
    ) -> Result<LogExtractor, LogError> {
        let stats = Arc::new(LogStats::default());
        let shutdown = shutdown.child_token();
        // Positioned here, not on the reading thread: "from the end" is the end as of start.
        let mut follower = Follower::new(&config.path, config.start);
        if let Err(error) = follower.open_now() {
            tracing::warn!(path = %config.path.display(), %error, "cannot open debug.log yet; retrying");
        }
        let task = {
            let (stats, shutdown) = (stats.clone(), shutdown.clone());
            tokio::task::spawn_blocking(move || {
                follow_lines(follower, &config, &publisher, &stats, &shutdown)
            })
        };
        Ok(LogExtractor {
            stats,
            shutdown,
            task: Some(task),
        })
    }

    fn counters(&self) -> ExtractorCounters {
        self.stats.counters()
    }

    /// Reads what is left, publishes it, and returns the final counters.
    async fn stop(mut self) -> Result<ExtractorCounters, LogError> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.map_err(|e| LogError::Task(e.to_string()))?;
        }
        Ok(self.stats.counters())
    }
}

/// The reading loop (blocking thread): poll, publish, sleep when idle, until shutdown; then
/// one last read so lines written before the stop are not lost.
fn follow_lines(
    mut follower: Follower,
    config: &LogConfig,
    publisher: &Publisher,
    stats: &LogStats,
    shutdown: &Shutdown,
) {
    let mut next_report = Instant::now() + config.report_period;
    let mut waiting_logged = false;
    let mut publish = |line: Line<'_>| publish_line(line, publisher, stats, shutdown);
    loop {
        let stopping = shutdown.is_cancelled();
        match follower.poll(&mut publish) {
            Ok(progress) => {
                stats
                    .rotations
                    .fetch_add(progress.rotations, Ordering::Relaxed);
                if progress.rotations > 0 {
                    tracing::info!(path = %config.path.display(), "debug.log rotated; following the new file");
                }
                if !follower.is_open() && !waiting_logged {
                    tracing::info!(path = %config.path.display(), "waiting for debug.log to appear");
                    waiting_logged = true;
                } else if follower.is_open() && waiting_logged {
                    tracing::info!(path = %config.path.display(), "following debug.log");
                    waiting_logged = false;
                }
                if stopping {
                    follower.finish(&mut publish);
                    break;
                }
                // Caught up (less than a read's worth was new): wait before reading again, so
                // a node logging without pause (two lines per message under a ping flood) is
                // read in batches, not a few lines per wake-up and hand-over to the publisher.
                // A backlog (whole chunks) is read without a pause.
                if progress.bytes < follow::READ_CHUNK as u64 {
                    std::thread::sleep(config.poll_interval);
                }
            }
            Err(e) => {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %config.path.display(), error = %e, "cannot read debug.log (counted); retrying");
                if stopping {
                    break;
                }
                std::thread::sleep(config.report_period.min(Duration::from_secs(1)));
            }
        }
        if Instant::now() >= next_report {
            publish_counters(publisher, LogExtractor::COMPONENT, &stats.counters());
            next_report = Instant::now() + config.report_period;
        }
    }
    publish_counters(publisher, LogExtractor::COMPONENT, &stats.counters());
}

fn publish_line(line: Line<'_>, publisher: &Publisher, stats: &LogStats, shutdown: &Shutdown) {
    stats.lines.fetch_add(1, Ordering::Relaxed);
    let mut parsed = parse::parse_line(line.bytes);
    parsed.log.log_line_bytes = line.len as u64;
    if !parsed.shaped {
        stats.unparsed.fetch_add(1, Ordering::Relaxed);
    }
    if line.truncated() {
        stats.truncated.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            bytes = line.len,
            kept = line.bytes.len(),
            "a debug.log line longer than the limit was cut (counted)"
        );
    }
    let event = Event {
        timestamp: now_millis(),
        peer_observer_event: Some(PeerObserverEvent::LogExtractor(parsed.log)),
    };
    stats.published.fetch_add(1, Ordering::Relaxed);
    if !publisher.publish_event_patiently(&event, || shutdown.is_cancelled()) {
        stats.publish_dropped.fetch_add(1, Ordering::Relaxed);
    }
}
