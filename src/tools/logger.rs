//! The logger tool: events as readable lines or JSON lines, optionally filtered by kind.
//!
//! [`Logger`] is the tool (it writes to the output it is given, line by line, and stops when
//! that output closes); [`format_message`] is the formatting alone, for callers that print
//! elsewhere.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost_reflect::{DynamicMessage, SerializeOptions};
use serde::Serialize;

use super::Tool;
use crate::bus::{BusMessage, Subscriber};
use crate::event::{descriptor_pool, EventKind, EVENT_MESSAGE_NAME};
use crate::shutdown::Shutdown;

/// The logger: every event (or those of `kinds`) as one line on `out`.
pub struct Logger {
    /// Line format.
    pub format: LogFormat,
    /// Only these kinds (empty: all).
    pub kinds: Vec<EventKind>,
    /// Stop after this many lines.
    pub count: Option<u64>,
    /// Where lines go (the binary gives it stdout).
    pub out: Box<dyn Write + Send>,
    /// Lines written so far, for a caller that waits for the logger to catch up.
    pub printed: Arc<AtomicU64>,
}

impl Logger {
    /// A logger of every kind, writing `format` lines to `out`.
    pub fn new(format: LogFormat, out: Box<dyn Write + Send>) -> Logger {
        Logger {
            format,
            kinds: Vec::new(),
            count: None,
            out,
            printed: Arc::default(),
        }
    }
}

/// What the logger printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoggerSummary {
    /// Lines written.
    pub printed: u64,
}

impl Tool for Logger {
    type Summary = LoggerSummary;
    type Error = std::io::Error;

    /// Writes lines until `shutdown`, the end of the subscription, `count` lines, or a closed
    /// output (e.g. piped into `head`: not an error).
    async fn run(
        mut self,
        mut subscriber: Subscriber,
        shutdown: Shutdown,
    ) -> Result<LoggerSummary, std::io::Error> {
        let mut summary = LoggerSummary::default();
        while self.count.is_none_or(|c| summary.printed < c) {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = subscriber.next() => message,
            };
            let Some(message) = message else { break };
            let Some(line) = format_message(&message, self.format, &self.kinds) else {
                continue;
            };
            match writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                Err(e) => return Err(e),
            }
            summary.printed += 1;
            self.printed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(summary)
    }
}

/// Output form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `<subject> <compact event JSON>` for people.
    Text,
    /// One JSON object per line: `{"subject":..., "event":{...}}`.
    Json,
}

/// Formats one bus message; `None` when its kind is filtered out.
pub fn format_message(
    message: &BusMessage,
    format: LogFormat,
    kinds: &[EventKind],
) -> Option<String> {
    if !kinds.is_empty() && !message.kind.is_some_and(|k| kinds.contains(&k)) {
        return None;
    }
    let event = match decode_json(&message.payload) {
        Ok(value) => value,
        Err(reason) => serde_json::json!({ "undecodable": reason, "bytes": message.payload.len() }),
    };
    Some(match format {
        LogFormat::Json => {
            #[derive(Serialize)]
            struct Line<'a> {
                subject: &'a str,
                event: serde_json::Value,
            }
            serde_json::to_string(&Line {
                subject: &message.subject,
                event,
            })
            .unwrap_or_default()
        }
        LogFormat::Text => format!("{:<11} {}", message.subject, readable(&event)),
    })
}

/// Fields holding a hash or txid: shown as display-order hex in text output (the wire carries
/// internal byte order; people and block explorers use the reverse).
const HASH_FIELDS: [&str; 13] = [
    "hash",
    "txid",
    "wtxid",
    "replaced_txid",
    "replacement_id",
    "prev_blockhash",
    "merkle_root",
    "stop_hash",
    "block_hash",
    "transaction",
    "block",
    "wtx",
    "witness_transaction",
];

/// `validation.block_connected height=1 hash=00ab.. ...`: the innermost event's path, then
/// its fields, with hashes as display hex and the envelope's timestamp left out.
fn readable(event: &serde_json::Value) -> String {
    let mut path = Vec::new();
    let mut node = event;
    while let Some(object) = node.as_object() {
        let inner: Vec<_> = object
            .iter()
            .filter(|(k, _)| k.as_str() != "timestamp")
            .collect();
        match inner.as_slice() {
            [(key, value)] if value.is_object() => {
                if key.as_str() != "ebpf_extractor" {
                    path.push(key.as_str());
                }
                node = value;
            }
            _ => break,
        }
    }
    let fields = match node.as_object() {
        Some(object) => object
            .iter()
            .map(|(k, v)| format!("{k}={}", render(k, v)))
            .collect::<Vec<_>>()
            .join(" "),
        None => node.to_string(),
    };
    format!("{} {fields}", path.join("."))
}

fn render(key: &str, value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if HASH_FIELDS.contains(&key) => {
            display_hex(s).unwrap_or_else(|| s.clone())
        }
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", render(k, v)))
                .collect();
            format!("{{{}}}", inner.join(" "))
        }
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(|v| render(key, v)).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// base64 (protobuf JSON's bytes encoding) of a 32-byte hash -> reversed hex.
fn display_hex(base64: &str) -> Option<String> {
    use base64::Engine as _;
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    if bytes.len() != 32 {
        return None;
    }
    bytes.reverse();
    Some(hex::encode(bytes))
}

/// Decodes an `event.Event` into JSON through the embedded descriptors (field names as in the
/// .proto files, 64-bit integers as numbers, bytes as base64 as protobuf's JSON mapping says).
pub fn decode_json(payload: &[u8]) -> Result<serde_json::Value, String> {
    decode_json_with(descriptor_pool(), payload)
}

/// [`decode_json`] with another schema (a recording's own, when it predates this peerlab's
/// wire format).
pub fn decode_json_with(
    pool: &prost_reflect::DescriptorPool,
    payload: &[u8],
) -> Result<serde_json::Value, String> {
    let descriptor = pool
        .get_message_by_name(EVENT_MESSAGE_NAME)
        .ok_or_else(|| "schema lacks event.Event".to_string())?;
    let message = DynamicMessage::decode(descriptor, payload).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_the_event_path_and_display_order_hashes() {
        use base64::Engine as _;
        let mut internal = [0u8; 32];
        internal[0] = 0xab; // internal order: first byte is the last displayed
        let event = serde_json::json!({
            "timestamp": 1,
            "ebpf_extractor": {"validation": {"block_connected": {
                "height": 5,
                "hash": base64::engine::general_purpose::STANDARD.encode(internal),
            }}}
        });
        let line = readable(&event);
        assert!(line.starts_with("validation.block_connected "), "{line}");
        assert!(line.contains("height=5"), "{line}");
        assert!(
            line.contains(&format!("hash={}ab", "00".repeat(31))),
            "{line}"
        );
    }
}
