//! Replay: recorded events back onto the bus, at the recorded pacing times a speed factor.
//!
//! Files of either format ([`RecordingSource`]: MCAP, or peer-observer archives, whose
//! `log_time` is the event's own timestamp since they keep no receive time).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tokio::time::Instant;

use super::{RecordedMessage, RecordingError, RecordingSource};
use crate::bus::{Publisher, Subject};
use crate::event::{Event, EventKind};
use crate::shutdown::Shutdown;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Recordings, in order.
    pub files: Vec<PathBuf>,
    /// 1 = recorded pacing, 2 = twice as fast, 0 = as fast as possible.
    pub speed: f64,
    /// Skip messages before this offset from the file's first message.
    pub from: Option<Duration>,
    /// Stop at this offset from the file's first message.
    pub to: Option<Duration>,
    /// Only these subjects (exact).
    pub subjects: Vec<String>,
    /// Only these kinds.
    pub kinds: Vec<EventKind>,
    /// Start over at the end until stopped.
    pub repeat: bool,
    /// Shift `Event.timestamp` so the first event is "now".
    pub retime: bool,
}

impl ReplayOptions {
    /// Every event of `files`, once, at the recorded pacing.
    pub fn new(files: Vec<PathBuf>) -> ReplayOptions {
        ReplayOptions {
            files,
            speed: 1.0,
            from: None,
            to: None,
            subjects: Vec::new(),
            kinds: Vec::new(),
            repeat: false,
            retime: false,
        }
    }
}

/// Actual minus scheduled send time, over a paced replay.
#[derive(Debug, Clone, Copy)]
pub struct TimingError {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Worst.
    pub max: Duration,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Events handed to the publisher.
    pub published: u64,
    /// Messages left out by the filters, the window, or because they are not events (stats).
    pub skipped: u64,
    /// Complete passes over the files.
    pub passes: u64,
    /// Timing error of paced replays.
    pub timing: Option<TimingError>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Replays until the files are done (once, or forever with `repeat`) or `stop` fires.
pub async fn replay(
    publisher: &Publisher,
    options: &ReplayOptions,
    stop: &Shutdown,
) -> Result<ReplaySummary, RecordingError> {
    let mut summary = ReplaySummary::default();
    let mut lateness = Lateness::default();
    let started = Instant::now();
    'passes: loop {
        for path in &options.files {
            let mut stream = RecordingSource::open(path)?;
            let bar = super::source::file_progress("replay", stream.file_bytes(), path);
            // `--from`/`--to` count from the file's first event; pacing from the first
            // event replayed.
            let mut first_event: Option<u64> = None;
            // (log time, instant) of the first event replayed: pacing counts from there, so
            // the time spent reading past skipped messages does not make early events late.
            let mut base: Option<(u64, Instant)> = None;
            let mut retime_offset_ms: Option<Option<i64>> = None;
            let mut subjects: HashMap<Arc<str>, Subject> = HashMap::new();
            while let Some(message) = stream.next() {
                let message = message?;
                bar.set_position(stream.position());
                if !is_event(&message) {
                    summary.skipped += 1;
                    continue;
                }
                let first = *first_event.get_or_insert(message.log_time);
                if !selected(&message, options, first) {
                    summary.skipped += 1;
                    continue;
                }
                let (base, pass_start) = *base.get_or_insert((message.log_time, Instant::now()));
                let retime_offset_ms = *retime_offset_ms
                    .get_or_insert_with(|| options.retime.then(|| retime_offset(&message)));
                if options.speed > 0.0 {
                    let offset_ns =
                        (message.log_time.saturating_sub(base) as f64 / options.speed) as u64;
                    let scheduled = pass_start + Duration::from_nanos(offset_ns);
                    tokio::select! {
                        _ = stop.cancelled() => break 'passes,
                        _ = tokio::time::sleep_until(scheduled) => {}
                    }
                    lateness.record(Instant::now().saturating_duration_since(scheduled));
                } else if stop.is_cancelled() {
                    break 'passes;
                }
                let subject = subjects
                    .entry(message.subject.clone())
                    .or_insert_with(|| Subject::from(&*message.subject))
                    .clone();
                let payload = match retime_offset_ms {
                    Some(offset) => retimed(&message.data, offset),
                    None => Bytes::from(message.data),
                };
                publisher.publish_raw_wait(subject, payload).await;
                summary.published += 1;
            }
            bar.finish_and_clear();
            if let Some(cut) = stream.truncated() {
                tracing::warn!(file = %path.display(), offset = cut.offset, "{}; replayed what was complete", cut.reason);
            }
        }
        summary.passes += 1;
        if !options.repeat {
            break;
        }
    }
    summary.elapsed = started.elapsed();
    summary.timing = lateness.percentiles();
    Ok(summary)
}

/// Whether an event passes the filters and the time window (`first`: the file's first event).
fn selected(message: &RecordedMessage, options: &ReplayOptions, first: u64) -> bool {
    let from = options
        .from
        .map(|d| first.saturating_add(d.as_nanos() as u64));
    let to = options
        .to
        .map(|d| first.saturating_add(d.as_nanos() as u64));
    (options.subjects.is_empty()
        || options
            .subjects
            .iter()
            .any(|s| s.as_str() == &*message.subject))
        && (options.kinds.is_empty()
            || kind_of(&message.subject).is_some_and(|k| options.kinds.contains(&k)))
        && from.is_none_or(|f| message.log_time >= f)
        && to.is_none_or(|t| message.log_time <= t)
}

fn is_event(message: &RecordedMessage) -> bool {
    !super::format::is_stats_subject(&message.subject)
}

/// The kind named by a subject's last token (flat or prefixed scheme).
fn kind_of(subject: &str) -> Option<EventKind> {
    subject.rsplit('.').next()?.parse().ok()
}

/// How far to shift timestamps so that `first` (the first event replayed) happens now.
fn retime_offset(first: &RecordedMessage) -> i64 {
    let first_ms = (first.publish_time / 1_000_000) as i64;
    crate::event::now_millis() as i64 - first_ms
}

/// The event with its timestamp shifted by `offset_ms` (unchanged if it does not decode).
fn retimed(data: &[u8], offset_ms: i64) -> Bytes {
    match Event::decode(data) {
        Ok(mut event) => {
            event.timestamp = event.timestamp.saturating_add_signed(offset_ms);
            Bytes::from(crate::event::wire::encode(&event))
        }
        Err(_) => Bytes::copy_from_slice(data),
    }
}

/// Lateness of paced sends in 1 µs buckets up to 100 ms (and the exact maximum): memory
/// stays fixed however long the replay runs. Percentiles beyond 100 ms read as 100 ms.
struct Lateness {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

/// Number of 1 µs buckets; the last one also holds everything later.
const LATENESS_BUCKETS: usize = 100_000;

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            buckets: vec![0; LATENESS_BUCKETS],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Lateness {
    fn record(&mut self, late: Duration) {
        let micros = (late.as_micros() as usize).min(LATENESS_BUCKETS - 1);
        self.buckets[micros] += 1;
        self.count += 1;
        self.max = self.max.max(late);
    }

    fn percentiles(&self) -> Option<TimingError> {
        if self.count == 0 {
            return None;
        }
        let at = |q: f64| {
            let rank = ((self.count - 1) as f64 * q).round() as u64;
            let mut seen = 0;
            for (micros, n) in self.buckets.iter().enumerate() {
                seen += n;
                if seen > rank {
                    return Duration::from_micros(micros as u64);
                }
            }
            self.max
        };
        Some(TimingError {
            p50: at(0.5),
            p99: at(0.99),
            max: self.max,
        })
    }
}
