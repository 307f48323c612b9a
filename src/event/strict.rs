//! The strict required-field check that proto2 decoders in C++ or Python apply.
//!
//! prost (like most Rust decoders) accepts a message with a missing `required` field and fills
//! a default, so a bug that forgets a field would go unnoticed until a peer-observer tool
//! written in another language rejects the event. This check walks the descriptor instead:
//! every `required` field of every present (sub)message must be on the wire.

use prost_reflect::{
    Cardinality, DynamicMessage, Kind, MapKey, MessageDescriptor, ReflectMessage, Value,
};

use super::descriptor_pool;

/// Why an encoded message fails the strict check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StrictError {
    /// The schema has no message of this name.
    #[error("no message named `{0}` in the schema")]
    UnknownMessage(String),
    /// The bytes are not a valid protobuf encoding of the message.
    #[error("cannot decode as {message}: {reason}")]
    Decode {
        /// Full message name.
        message: String,
        /// Decoder's explanation.
        reason: String,
    },
    /// Required fields are absent; each entry is a path like `ebpf_extractor.message.meta.addr`.
    #[error("missing required field(s): {}", .0.join(", "))]
    MissingRequired(Vec<String>),
}

/// Decodes `bytes` as `full_name` and reports every missing required field, recursively.
pub fn check_required(full_name: &str, bytes: &[u8]) -> Result<(), StrictError> {
    let descriptor = descriptor_pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| StrictError::UnknownMessage(full_name.to_string()))?;
    let message = DynamicMessage::decode(descriptor, bytes).map_err(|e| StrictError::Decode {
        message: full_name.to_string(),
        reason: e.to_string(),
    })?;
    let mut missing = Vec::new();
    collect_missing(&message, "", &mut missing);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StrictError::MissingRequired(missing))
    }
}

/// Checks an `event.Event`, the payload of every bus message.
pub fn check_event(bytes: &[u8]) -> Result<(), StrictError> {
    check_required(super::EVENT_MESSAGE_NAME, bytes)
}

fn collect_missing(message: &DynamicMessage, path: &str, missing: &mut Vec<String>) {
    let descriptor: MessageDescriptor = message.descriptor();
    for field in descriptor.fields() {
        let field_path = join(path, field.name());
        if field.cardinality() == Cardinality::Required && !message.has_field(&field) {
            missing.push(field_path);
            continue;
        }
        // proto2 enums are closed: C++ and Python decoders move an undefined value to the
        // unknown fields, so a required enum holding one counts as missing for them.
        if let (Cardinality::Required, Kind::Enum(enum_descriptor)) =
            (field.cardinality(), field.kind())
        {
            if let Value::EnumNumber(number) = message.get_field(&field).as_ref() {
                if enum_descriptor.get_value(*number).is_none() {
                    missing.push(format!("{field_path} (undefined enum value {number})"));
                }
            }
            continue;
        }
        if !message.has_field(&field) || !matches!(field.kind(), Kind::Message(_)) {
            continue;
        }
        match message.get_field(&field).as_ref() {
            Value::Message(sub) => collect_missing(sub, &field_path, missing),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(sub) = item {
                        collect_missing(sub, &format!("{field_path}[{i}]"), missing);
                    }
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    if let Value::Message(sub) = value {
                        collect_missing(sub, &format!("{field_path}[{}]", key_label(key)), missing);
                    }
                }
            }
            _ => {}
        }
    }
}

fn key_label(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
