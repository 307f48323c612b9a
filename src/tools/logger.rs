//! The logger tool: events as readable lines or JSON lines, optionally filtered by kind.

use prost_reflect::{DynamicMessage, SerializeOptions};
use serde::Serialize;

use crate::bus::BusMessage;
use crate::event::{descriptor_pool, EventKind, EVENT_MESSAGE_NAME};

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
        LogFormat::Text => format!("{:<14} {}", message.subject, event),
    })
}

/// Decodes an `event.Event` into JSON through the embedded descriptors (field names as in the
/// .proto files, 64-bit integers as numbers, bytes as base64 as protobuf's JSON mapping says).
pub fn decode_json(payload: &[u8]) -> Result<serde_json::Value, String> {
    let descriptor = descriptor_pool()
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
