//! Replay: recorded events back onto the bus, at the recorded pacing times a speed factor.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message as _;
use tokio::time::Instant;

use super::{read_recording, RecordedMessage, RecordingError};
use crate::bus::{Publisher, Subject};
use crate::event::{Event, EventKind};

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

/// Replays until the files are done (once, or forever with `repeat`) or `stop` resolves.
pub async fn replay(
    publisher: &Publisher,
    options: &ReplayOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<ReplaySummary, RecordingError> {
    let mut summary = ReplaySummary::default();
    let mut lateness = Vec::new();
    let started = Instant::now();
    tokio::pin!(stop);
    'passes: loop {
        for path in &options.files {
            let recording = read_recording(path)?;
            if let Some(cut) = &recording.truncated {
                tracing::warn!(file = %path.display(), offset = cut.offset, "{}; replaying what is complete", cut.reason);
            }
            let selected = select(recording.messages, options, &mut summary);
            let bar = progress(selected.len() as u64, path);
            let retime_offset_ms = options.retime.then(|| retime_offset(&selected)).flatten();
            let base = selected.first().map(|m| m.log_time).unwrap_or(0);
            let mut subjects: HashMap<Arc<str>, Subject> = HashMap::new();
            let pass_start = Instant::now();
            for message in selected {
                if options.speed > 0.0 {
                    let offset_ns =
                        (message.log_time.saturating_sub(base) as f64 / options.speed) as u64;
                    let scheduled = pass_start + Duration::from_nanos(offset_ns);
                    tokio::select! {
                        _ = &mut stop => break 'passes,
                        _ = tokio::time::sleep_until(scheduled) => {}
                    }
                    lateness.push(Instant::now().saturating_duration_since(scheduled));
                } else if futures::FutureExt::now_or_never(&mut stop).is_some() {
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
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
        summary.passes += 1;
        if !options.repeat {
            break;
        }
    }
    summary.elapsed = started.elapsed();
    summary.timing = percentiles(&mut lateness);
    Ok(summary)
}

/// The events of one file that pass the filters and the time window, in file order.
fn select(
    messages: Vec<RecordedMessage>,
    options: &ReplayOptions,
    summary: &mut ReplaySummary,
) -> Vec<RecordedMessage> {
    let first = messages
        .iter()
        .find(|m| is_event(m))
        .map(|m| m.log_time)
        .unwrap_or(0);
    let from = options.from.map(|d| first + d.as_nanos() as u64);
    let to = options.to.map(|d| first + d.as_nanos() as u64);
    let total = messages.len();
    let chosen: Vec<_> = messages
        .into_iter()
        .filter(is_event)
        .filter(|m| {
            options.subjects.is_empty()
                || options.subjects.iter().any(|s| s.as_str() == &*m.subject)
        })
        .filter(|m| {
            options.kinds.is_empty()
                || kind_of(&m.subject).is_some_and(|k| options.kinds.contains(&k))
        })
        .filter(|m| from.is_none_or(|f| m.log_time >= f) && to.is_none_or(|t| m.log_time <= t))
        .collect();
    summary.skipped += (total - chosen.len()) as u64;
    chosen
}

fn is_event(message: &RecordedMessage) -> bool {
    !super::format::is_stats_subject(&message.subject)
}

/// The kind named by a subject's last token (flat or prefixed scheme).
fn kind_of(subject: &str) -> Option<EventKind> {
    subject.rsplit('.').next()?.parse().ok()
}

fn retime_offset(selected: &[RecordedMessage]) -> Option<i64> {
    let first = selected.first()?;
    let first_ms = (first.publish_time / 1_000_000) as i64;
    Some(crate::event::now_millis() as i64 - first_ms)
}

/// The event with its timestamp shifted by `offset_ms` (unchanged if it does not decode).
fn retimed(data: &[u8], offset_ms: i64) -> Bytes {
    match Event::decode(data) {
        Ok(mut event) => {
            event.timestamp = event.timestamp.saturating_add_signed(offset_ms);
            Bytes::from(event.encode_to_vec())
        }
        Err(_) => Bytes::copy_from_slice(data),
    }
}

fn percentiles(samples: &mut [Duration]) -> Option<TimingError> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Some(TimingError {
        p50: at(0.5),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    })
}

fn progress(total: u64, path: &std::path::Path) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("replay {msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
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
