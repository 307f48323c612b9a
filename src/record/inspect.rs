//! `peerlab inspect` and `peerlab cat`: summaries and JSON lines of a recording.
//!
//! A [`Summarizer`] takes messages one at a time (pure, no I/O) and builds a [`Summary`];
//! [`render_text`] and the `Serialize` impl present it. [`cat_line`] is one message as a
//! JSON line; [`summarize_file`] runs a [`Summarizer`] over a [`RecordingSource`] (MCAP or
//! peer-observer archive; for an archive `log_time` is the event's timestamp and the
//! metadata is its header). The two
//! commands (in the binary) only glue these to stdout, so memory stays bounded by one chunk
//! (plus one counter per distinct peer) whatever the file's size.
//!
//! Events are decoded with the crate's own descriptors (the same ones `cat` and the logger
//! use), not with the descriptor set embedded in the file. Messages on `peerlab.stats.*`
//! subjects are the extractor's JSON counter snapshots, not events.
//!
//! Errors of the readers ([`RecordingStream`](super::RecordingStream), archives) already
//! name the file (and the offset where one applies), so they are passed on without
//! repeating the path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage as _, Value as Field};
use serde::Serialize;
use serde_json::Value;

use super::{RecordedMessage, Recording, RecordingError, RecordingSource};
use crate::event::counters::ExtractorCounters;
use crate::event::{descriptor_pool, DESCRIPTOR_SET, EVENT_MESSAGE_NAME};
use crate::tools::logger::decode_json_with;

/// How many peers the summary lists.
pub const TOP_PEERS: usize = 10;

/// The P2P message event, whose `meta.addr` names the peer.
const MESSAGE_EVENT: &str = "ebpf_extractor.message.MessageEvent";

/// A capinfos-like summary of a recording.
///
/// `peerlab inspect --json` prints exactly this object; the field names below are stable.
/// Times are nanoseconds since the UNIX epoch (`*_ns`) plus the same instant as UTC text.
/// Lists are sorted by count (descending), then by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `file`: the path as given.
    pub file: String,
    /// `file_bytes`: size of the file.
    pub file_bytes: u64,
    /// `truncated`: `null` for a complete file, else `{offset, reason}`.
    pub truncated: Option<TruncationInfo>,
    /// `metadata`: the `peerlab.recording` metadata record (`peerlab_version`, `node`,
    /// `subject_scheme`, `nats`, `arguments`, `started_at_ns`); `{}` for other tools' files.
    /// For a peer-observer archive: `format` (`peer-observer archive`), `compression`
    /// (`zstd`/`none`), `created` (header, seconds), `created_utc`, `low_data`, and when
    /// frames were skipped `skipped_undecodable` / `skipped_unroutable`.
    pub metadata: BTreeMap<String, String>,
    /// `messages`: every message, events and stats snapshots.
    pub messages: u64,
    /// `payload_bytes`: sum of the message sizes (uncompressed).
    pub payload_bytes: u64,
    /// `start_ns`: smallest `log_time` (`null` without messages).
    pub start_ns: Option<u64>,
    /// `end_ns`: largest `log_time` (`null` without messages).
    pub end_ns: Option<u64>,
    /// `start`: `start_ns` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub start: Option<String>,
    /// `end`: `end_ns` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub end: Option<String>,
    /// `duration_s`: `end_ns - start_ns` in seconds (0 without messages).
    pub duration_s: f64,
    /// `rate_per_s`: messages per second over the duration (`null` when the duration is 0).
    pub rate_per_s: Option<f64>,
    /// `subjects`: per subject `{subject, messages, bytes, rate_per_s}`.
    pub subjects: Vec<SubjectStats>,
    /// `kinds`: per event kind `{kind, messages}`; the kind is the path of set oneof arms
    /// below the envelope, e.g. `validation.block_connected`, `message.version`,
    /// `connection.inbound` (eBPF events without the `ebpf_extractor.` prefix, others with
    /// theirs, e.g. `rpc_extractor.peer_infos`; `(none)` for an empty envelope).
    pub kinds: Vec<KindStats>,
    /// `distinct_peers`: number of distinct `meta.addr` among P2P message events.
    pub distinct_peers: u64,
    /// `top_peers`: the [`TOP_PEERS`] addresses with the most P2P message events,
    /// `{addr, messages}`.
    pub top_peers: Vec<PeerStats>,
    /// `drops`: per stats subject, the drop counters of its last snapshot; `[]` when none
    /// were recorded.
    pub drops: Vec<DropCounters>,
    /// `undecodable_events`: event messages that do not decode as `event.Event`.
    pub undecodable_events: u64,
    /// `undecodable_stats`: stats messages that are not a JSON object.
    pub undecodable_stats: u64,
}

/// Where a file stops early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruncationInfo {
    /// `offset`: byte offset of the first incomplete record.
    pub offset: u64,
    /// `reason`: what is missing.
    pub reason: String,
}

/// Messages on one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectStats {
    /// `subject`.
    pub subject: String,
    /// `messages`.
    pub messages: u64,
    /// `bytes`: payload bytes.
    pub bytes: u64,
    /// `rate_per_s`: messages per second over the whole recording (`null` for a 0 duration).
    pub rate_per_s: Option<f64>,
}

/// Events of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindStats {
    /// `kind`, e.g. `message.ping`.
    pub kind: String,
    /// `messages`.
    pub messages: u64,
}

/// P2P message events of one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStats {
    /// `addr`: the peer's address as the extractor reported it.
    pub addr: String,
    /// `messages`.
    pub messages: u64,
}

/// The drop counters of a stats subject's last snapshot. The counters are cumulative since
/// the extractor started, which may be before the recording did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropCounters {
    /// `subject`, e.g. `peerlab.stats.ebpf-extractor` or, in a fleet,
    /// `fleet.node1.peerlab.stats.ebpf-extractor`.
    pub subject: String,
    /// `node`: the node named in a fleet's counter subject (`null` with flat subjects).
    pub node: Option<String>,
    /// `snapshots`: how many snapshots of this subject the file holds.
    pub snapshots: u64,
    /// `last_log_time_ns`: when the last one was received.
    pub last_log_time_ns: u64,
    /// `dropped_in_kernel`: events lost in the BPF ring buffers (`null` if absent).
    pub dropped_in_kernel: Option<u64>,
    /// `publish_dropped`: events the publisher could not buffer (`null` if absent).
    pub publish_dropped: Option<u64>,
    /// `dropped_by_probe`: the non-zero per-tracepoint `probes.<name>.dropped` counters.
    pub dropped_by_probe: BTreeMap<String, u64>,
}

/// The capinfos-like summary of the recording at `path` (MCAP, or a peer-observer archive
/// by its `.bin`/`.bin.zst` name), read as a stream (one chunk or frame in memory at a time).
pub fn summarize_file(path: &Path) -> Result<Summary, RecordingError> {
    let mut stream = RecordingSource::open(path)?;
    let mut summarizer = Summarizer::default();
    for message in &mut stream {
        summarizer.add(&message?);
    }
    Ok(summarizer.finish(
        path,
        stream.file_bytes(),
        stream.truncated(),
        stream.metadata().clone(),
    ))
}

/// One line of `peerlab cat`, fields in this order: `subject`, `log_time`, `publish_time`
/// (ns), then `event` (the protobuf JSON of the `event.Event`), or `stats` (the parsed
/// snapshot) on stats subjects. A payload that does not decode becomes
/// `{"undecodable": reason, "bytes": n}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatLine<'m> {
    /// The subject.
    pub subject: &'m str,
    /// Receive time, ns.
    pub log_time: u64,
    /// The event's own time, ns.
    pub publish_time: u64,
    /// The decoded event (event subjects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// The parsed snapshot (stats subjects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
}

/// The `peerlab cat` line of one message, decoded with this peerlab's schema.
pub fn cat_line(message: &RecordedMessage) -> CatLine<'_> {
    cat_line_with(message, descriptor_pool())
}

/// The schema a recording's events are shown with: the recording's own descriptor set when it
/// is not this peerlab's (a recording made before a wire-format change, e.g. the log
/// extractor's renumbered oneof, then shows its events as they were written), `None` to use
/// ours (the same set, none embedded, or one that does not describe `event.Event`).
pub fn recording_schema(descriptor_set: &[u8]) -> Option<DescriptorPool> {
    if descriptor_set.is_empty() || descriptor_set == DESCRIPTOR_SET {
        return None;
    }
    match DescriptorPool::decode(descriptor_set) {
        Ok(pool) if pool.get_message_by_name(EVENT_MESSAGE_NAME).is_some() => Some(pool),
        Ok(_) | Err(_) => {
            tracing::warn!(
                "the recording's embedded schema is unusable; decoding with this peerlab's"
            );
            None
        }
    }
}

/// [`cat_line`] with the given schema (see [`recording_schema`]).
pub fn cat_line_with<'m>(message: &'m RecordedMessage, pool: &DescriptorPool) -> CatLine<'m> {
    let stats = is_stats(&message.subject);
    let body = if stats {
        parse_stats(&message.data)
    } else {
        decode_json_with(pool, &message.data)
    };
    let body = body.unwrap_or_else(
        |reason| serde_json::json!({ "undecodable": reason, "bytes": message.data.len() }),
    );
    let (event, stats) = if stats {
        (None, Some(body))
    } else {
        (Some(body), None)
    };
    CatLine {
        subject: &message.subject,
        log_time: message.log_time,
        publish_time: message.publish_time,
        event,
        stats,
    }
}

/// Whether `subject` carries peerlab's JSON counters rather than events.
fn is_stats(subject: &str) -> bool {
    super::format::is_stats_subject(subject)
}

fn parse_stats(data: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(data) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("stats snapshot is not a JSON object".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Builds the summary of a recording held in memory.
pub fn summarize(recording: &Recording) -> Summary {
    let mut summarizer = Summarizer::default();
    for message in &recording.messages {
        summarizer.add(message);
    }
    summarizer.finish(
        &recording.path,
        recording.file_bytes,
        recording.truncated.as_ref(),
        recording.metadata.clone(),
    )
}

/// A summary built one message at a time.
#[derive(Default)]
pub struct Summarizer {
    messages: u64,
    payload_bytes: u64,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    /// Subject -> (messages, bytes).
    subjects: HashMap<String, (u64, u64)>,
    events: EventTally,
    drops: BTreeMap<String, DropCounters>,
    undecodable_stats: u64,
}

impl Summarizer {
    /// Counts one message.
    pub fn add(&mut self, message: &RecordedMessage) {
        self.messages += 1;
        self.payload_bytes += message.data.len() as u64;
        self.start_ns = Some(
            self.start_ns
                .map_or(message.log_time, |t| t.min(message.log_time)),
        );
        self.end_ns = Some(
            self.end_ns
                .map_or(message.log_time, |t| t.max(message.log_time)),
        );
        let subject = match self.subjects.get_mut(&*message.subject) {
            Some(entry) => entry,
            None => self
                .subjects
                .entry(message.subject.to_string())
                .or_default(),
        };
        subject.0 += 1;
        subject.1 += message.data.len() as u64;
        if is_stats(&message.subject) {
            self.add_stats(message);
        } else {
            self.events.add(&message.data);
        }
    }

    /// The summary of everything added.
    pub fn finish(
        self,
        path: &Path,
        file_bytes: u64,
        truncated: Option<&super::Truncation>,
        metadata: BTreeMap<String, String>,
    ) -> Summary {
        let (start_ns, end_ns) = (self.start_ns, self.end_ns);
        let duration_s = match (start_ns, end_ns) {
            (Some(s), Some(e)) => (e - s) as f64 / 1e9,
            _ => 0.0,
        };
        let rate = |count: u64| (duration_s > 0.0).then(|| count as f64 / duration_s);
        let mut subjects: Vec<SubjectStats> = self
            .subjects
            .into_iter()
            .map(|(subject, (messages, bytes))| SubjectStats {
                subject,
                messages,
                bytes,
                rate_per_s: rate(messages),
            })
            .collect();
        subjects.sort_by(|a, b| {
            b.messages
                .cmp(&a.messages)
                .then_with(|| a.subject.cmp(&b.subject))
        });
        let events = self.events;
        Summary {
            file: path.display().to_string(),
            file_bytes,
            truncated: truncated.map(|t| TruncationInfo {
                offset: t.offset,
                reason: t.reason.clone(),
            }),
            metadata,
            messages: self.messages,
            payload_bytes: self.payload_bytes,
            start_ns,
            end_ns,
            start: start_ns.map(format_utc),
            end: end_ns.map(format_utc),
            duration_s,
            rate_per_s: rate(self.messages),
            subjects,
            kinds: sorted_counts(events.kinds)
                .into_iter()
                .map(|(kind, messages)| KindStats { kind, messages })
                .collect(),
            distinct_peers: events.peers.len() as u64,
            top_peers: sorted_counts(events.peers)
                .into_iter()
                .take(TOP_PEERS)
                .map(|(addr, messages)| PeerStats { addr, messages })
                .collect(),
            drops: self.drops.into_values().collect(),
            undecodable_events: events.undecodable,
            undecodable_stats: self.undecodable_stats,
        }
    }

    /// Keeps the last snapshot's drop counters per stats subject.
    fn add_stats(&mut self, message: &RecordedMessage) {
        // The recorder's own counters carry no drops of an extractor.
        if message.subject.ends_with(".recorder")
            && serde_json::from_slice::<crate::event::counters::RecorderCounters>(&message.data)
                .is_ok()
        {
            return;
        }
        // A publisher's own snapshot (`<owner>-publisher`): its drops, nothing in the kernel.
        let publisher = message
            .subject
            .ends_with("-publisher")
            .then(|| serde_json::from_slice::<crate::bus::StatsSnapshot>(&message.data).ok())
            .flatten();
        let snapshot = match (publisher, ExtractorCounters::from_json(&message.data)) {
            (Some(stats), _) => ExtractorCounters {
                publish_dropped: stats.dropped(),
                ..ExtractorCounters::default()
            },
            (None, Ok(snapshot)) => snapshot,
            (None, Err(_)) => {
                self.undecodable_stats += 1;
                return;
            }
        };
        let entry = self
            .drops
            .entry(message.subject.to_string())
            .or_insert_with(|| DropCounters {
                subject: message.subject.to_string(),
                node: node_of_stats_subject(&message.subject),
                snapshots: 0,
                last_log_time_ns: 0,
                dropped_in_kernel: None,
                publish_dropped: None,
                dropped_by_probe: BTreeMap::new(),
            });
        entry.snapshots += 1;
        entry.last_log_time_ns = message.log_time;
        entry.dropped_in_kernel = Some(snapshot.dropped_in_kernel);
        entry.publish_dropped = Some(snapshot.publish_dropped);
        entry.dropped_by_probe = snapshot.probe_drops();
    }
}

/// The node of a fleet's counter subject (`<prefix>.<node>.peerlab.stats.<component>`): the
/// token before `peerlab.stats`; `None` for flat subjects.
fn node_of_stats_subject(subject: &str) -> Option<String> {
    let (before, _) = subject.split_once(&format!(".{}.", crate::bus::STATS_TOKENS))?;
    before.rsplit('.').next().map(str::to_string)
}

/// Counts by kind and peer of the event messages.
#[derive(Default)]
struct EventTally {
    kinds: HashMap<String, u64>,
    peers: HashMap<String, u64>,
    undecodable: u64,
}

impl EventTally {
    fn add(&mut self, payload: &[u8]) {
        match classify(payload) {
            Ok((kind, peer)) => {
                *self.kinds.entry(kind).or_default() += 1;
                if let Some(addr) = peer {
                    *self.peers.entry(addr).or_default() += 1;
                }
            }
            Err(_) => self.undecodable += 1,
        }
    }
}

/// The kind of an encoded event (see [`Summary::kinds`]) and, for a P2P message, its peer.
pub fn classify(payload: &[u8]) -> Result<(String, Option<String>), String> {
    let descriptor = descriptor_pool()
        .get_message_by_name(EVENT_MESSAGE_NAME)
        .ok_or_else(|| "schema lacks event.Event".to_string())?;
    let event = DynamicMessage::decode(descriptor, payload).map_err(|e| e.to_string())?;
    let mut path: Vec<String> = Vec::new();
    let mut peer = None;
    let mut node = &event;
    while let Some((field, value)) = set_oneof_arm(node) {
        path.push(field.name().to_string());
        let Field::Message(inner) = value else { break };
        if inner.descriptor().full_name() == MESSAGE_EVENT {
            peer = peer_addr(inner);
        }
        node = inner;
    }
    if path.len() > 1 && path[0] == "ebpf_extractor" {
        path.remove(0);
    }
    let kind = if path.is_empty() {
        "(none)".to_string()
    } else {
        path.join(".")
    };
    Ok((kind, peer))
}

/// The field set in `message`'s (first) real oneof, if any.
fn set_oneof_arm(message: &DynamicMessage) -> Option<(prost_reflect::FieldDescriptor, &Field)> {
    message.fields().find(|(field, _)| {
        field
            .containing_oneof()
            .is_some_and(|oneof| !oneof.is_synthetic())
    })
}

fn peer_addr(message_event: &DynamicMessage) -> Option<String> {
    let meta = message_event.get_field_by_name("meta")?;
    let addr = meta.as_message()?.get_field_by_name("addr")?;
    addr.as_str().map(str::to_string)
}

/// Counts sorted by count (descending), then name.
fn sorted_counts(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// The summary as text for people.
pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "file:          {} ({})",
        s.file,
        human_bytes(s.file_bytes)
    ));
    line(match &s.truncated {
        None => "complete:      yes".to_string(),
        Some(t) => format!(
            "complete:      NO, truncated at offset {}: {}",
            t.offset, t.reason
        ),
    });
    for text in metadata_lines(&s.metadata) {
        line(text);
    }
    if let (Some(start), Some(end), Some(start_ns), Some(end_ns)) =
        (&s.start, &s.end, s.start_ns, s.end_ns)
    {
        line(format!("start:         {start} ({start_ns} ns)"));
        line(format!("end:           {end} ({end_ns} ns)"));
    }
    line(format!("duration:      {}", human_duration(s.duration_s)));
    line(format!(
        "messages:      {} ({}); payload {}",
        s.messages,
        per_second(s.rate_per_s),
        human_bytes(s.payload_bytes)
    ));
    line(String::new());
    line("per subject:".to_string());
    line(format!(
        "  {:>10}  {:>10}  {:>12}  subject",
        "messages", "rate", "bytes"
    ));
    for sub in &s.subjects {
        line(format!(
            "  {:>10}  {:>10}  {:>12}  {}",
            sub.messages,
            per_second(sub.rate_per_s),
            sub.bytes,
            sub.subject
        ));
    }
    line(String::new());
    line("per event kind:".to_string());
    for kind in &s.kinds {
        line(format!("  {:>10}  {}", kind.messages, kind.kind));
    }
    line(format!(
        "undecodable:   {} events, {} stats snapshots",
        s.undecodable_events, s.undecodable_stats
    ));
    line(String::new());
    line(format!(
        "top peers (of {} seen in P2P messages):",
        s.distinct_peers
    ));
    for peer in &s.top_peers {
        line(format!("  {:>10}  {}", peer.messages, peer.addr));
    }
    line(String::new());
    for text in drop_lines(&s.drops) {
        line(text);
    }
    out
}

fn metadata_lines(metadata: &BTreeMap<String, String>) -> Vec<String> {
    if metadata.get(super::archive::FORMAT_KEY).map(String::as_str)
        == Some(super::archive::ARCHIVE_FORMAT)
    {
        let get = |key: &str| metadata.get(key).map(String::as_str).unwrap_or("?");
        let mut lines = vec![
            format!(
                "format:        peer-observer archive (compression: {})",
                get("compression")
            ),
            format!(
                "created:       {} ({} s, header)",
                get("created_utc"),
                get("created")
            ),
            format!("low_data:      {}", get("low_data")),
            "times:         event timestamps (archives keep no receive time)".to_string(),
        ];
        if metadata.contains_key("skipped_undecodable") {
            lines.push(format!(
                "skipped:       {} frames not an event.Event, {} events with no known arm",
                get("skipped_undecodable"),
                get("skipped_unroutable")
            ));
        }
        return lines;
    }
    if metadata.is_empty() {
        return vec!["recorded by:   unknown (no peerlab.recording metadata)".to_string()];
    }
    let get = |key: &str| metadata.get(key).map(String::as_str).unwrap_or("?");
    let node = match get("node") {
        "" => "(none)",
        node => node,
    };
    vec![
        format!("recorded by:   peerlab {}", get("peerlab_version")),
        format!("node:          {node}"),
        format!("subjects:      {}", get("subject_scheme")),
        format!("arguments:     {}", get("arguments")),
    ]
}

fn drop_lines(drops: &[DropCounters]) -> Vec<String> {
    if drops.is_empty() {
        return vec!["drops:         no drop counters recorded".to_string()];
    }
    let mut lines =
        vec!["drops (last snapshot; cumulative since the extractor started):".to_string()];
    for d in drops {
        let count = |c: Option<u64>| c.map_or("?".to_string(), |c| c.to_string());
        lines.push(format!(
            "  {}: dropped_in_kernel={} publish_dropped={} ({} snapshots, last at {})",
            d.subject,
            count(d.dropped_in_kernel),
            count(d.publish_dropped),
            d.snapshots,
            format_utc(d.last_log_time_ns)
        ));
        for (probe, dropped) in &d.dropped_by_probe {
            lines.push(format!("    {probe}: {dropped} dropped"));
        }
    }
    lines
}

fn per_second(rate: Option<f64>) -> String {
    rate.map_or("n/a".to_string(), |r| format!("{r:.1}/s"))
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = None;
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = Some(u);
    }
    match unit {
        None => format!("{bytes} bytes"),
        Some(u) => format!("{bytes} bytes, {value:.1} {u}"),
    }
}

fn human_duration(seconds: f64) -> String {
    let whole = seconds as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if h > 0 {
        format!("{seconds:.3} s ({h}h{m:02}m{s:02}s)")
    } else if m > 0 {
        format!("{seconds:.3} s ({m}m{s:02}s)")
    } else {
        format!("{seconds:.3} s")
    }
}

/// Nanoseconds since the UNIX epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn format_utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = ns / 1_000_000 % 1000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_matches_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789
        assert_eq!(
            format_utc(951_827_696_789_000_000),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            format_utc(1_709_251_199_999_999_999),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            format_utc(1_735_689_600_000_000_000),
            "2025-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_utc(4_102_444_800_000_000_000),
            "2100-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn civil_from_days_round_trips_every_day_for_four_centuries() {
        // Compare with a naive day-by-day calendar walk.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][m as usize - 1];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn stats_subjects_are_recognised() {
        assert!(is_stats("peerlab.stats.ebpf-extractor"));
        assert!(!is_stats("netmsg"));
        assert!(!is_stats("peerlab.node1.netmsg"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(10), "10 bytes");
        assert_eq!(human_bytes(2048), "2048 bytes, 2.0 KiB");
        assert_eq!(human_duration(3723.5), "3723.500 s (1h02m03s)");
        assert_eq!(per_second(None), "n/a");
    }

    /// The log extractor's message as it was before upstream c31e333: oneof arms 3, 4, 5
    /// and none of `threadname`, `log_level`, `log_line_bytes`.
    fn schema_before_c31e333() -> Vec<u8> {
        use prost::Message as _;
        let mut set = prost_types::FileDescriptorSet::decode(DESCRIPTOR_SET).expect("our set");
        for file in &mut set.file {
            if file.package() != "log_extractor" {
                continue;
            }
            for message in &mut file.message_type {
                if message.name() != "log" {
                    continue;
                }
                message
                    .field
                    .retain(|f| !matches!(f.name(), "threadname" | "log_level" | "log_line_bytes"));
                for field in &mut message.field {
                    if field.oneof_index.is_some() {
                        field.number = Some(field.number() - 1);
                    }
                }
            }
        }
        set.encode_to_vec()
    }

    #[test]
    fn recordings_made_before_a_wire_format_change_are_shown_with_their_own_schema() {
        let old_set = schema_before_c31e333();
        let pool = recording_schema(&old_set).expect("a different, usable schema");
        assert!(
            recording_schema(DESCRIPTOR_SET).is_none(),
            "ours: no second pool"
        );
        assert!(recording_schema(b"").is_none());
        assert!(recording_schema(b"\xff\xff not a descriptor set").is_none());
        // An old log event: Event.log_extractor (4) = log { log_timestamp (1) = 5,
        // category (2) = 0, unknown_log_message (3, old number) = { raw_message = "hello" } },
        // Event.timestamp (10) = 1.
        let data = vec![
            0x22, 0x0D, 0x08, 0x05, 0x10, 0x00, 0x1A, 0x07, 0x0A, 0x05, b'h', b'e', b'l', b'l',
            b'o', 0x50, 0x01,
        ];
        let message = RecordedMessage {
            subject: "log-extractor".into(),
            log_time: 1,
            publish_time: 1,
            data,
            sequence: 1,
        };
        let old = serde_json::to_value(cat_line_with(&message, &pool)).expect("json");
        assert_eq!(
            old["event"]["log_extractor"]["unknown_log_message"]["raw_message"], "hello",
            "{old}"
        );
        // With today's schema the same bytes read as a thread name: why the file's own
        // schema is used.
        let new = serde_json::to_value(cat_line(&message)).expect("json");
        assert!(
            new["event"]["log_extractor"]["unknown_log_message"].is_null(),
            "{new}"
        );
    }
}
