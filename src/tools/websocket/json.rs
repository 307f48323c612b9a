//! Events as peer-observer's websocket tool sends them (tools.md §1.3): the JSON serde writes
//! for its prost types, produced here from the event's schema so every message of the wire
//! format is covered without a hand-written case per type.
//!
//! The rules, applied recursively: the forwarded unit is `Event.peer_observer_event`, tagged
//! by its variant (`{"EbpfExtractor": ...}`); a message is an object of its plain fields by
//! proto name, then each oneof as a key of its own name whose value is
//! `{"<UpperCamelArm>": value}` (or `null` when unset); bytes are arrays of numbers; enums
//! their integer; an unset proto2 `optional` is `null`; maps are objects with string keys;
//! 64-bit integers stay numbers; non-finite floats are `null`.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage as _, Value};
use serde_json::{Map, Number, Value as Json};

use crate::event::descriptor_pool;

const EVENT: &str = "event.Event";

/// `snake_case` -> `UpperCamel`, as prost names oneof variants (`peer_infos` ->
/// `PeerInfos`, `addrv2` -> `Addrv2`).
pub fn upper_camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The websocket JSON of an encoded `event.Event`; `None` when it does not decode or has no
/// content.
pub fn event_json(payload: &[u8]) -> Option<Json> {
    let descriptor = descriptor_pool().get_message_by_name(EVENT)?;
    let event = DynamicMessage::decode(descriptor, payload).ok()?;
    let oneof = event.descriptor().oneofs().next()?;
    let field = oneof.fields().find(|f| event.has_field(f))?;
    let value = event.get_field(&field);
    let mut tagged = Map::new();
    tagged.insert(upper_camel(field.name()), field_value(&field, &value));
    Some(Json::Object(tagged))
}

fn message_json(message: &DynamicMessage) -> Json {
    let descriptor = message.descriptor();
    let mut object = Map::new();
    for field in descriptor
        .fields()
        .filter(|f| f.containing_oneof().is_none())
    {
        let value = if field.supports_presence() && !message.has_field(&field) {
            Json::Null
        } else {
            field_value(&field, &message.get_field(&field))
        };
        object.insert(field.name().to_string(), value);
    }
    for oneof in descriptor.oneofs() {
        let value = match oneof.fields().find(|f| message.has_field(f)) {
            Some(field) => {
                let mut arm = Map::new();
                arm.insert(
                    upper_camel(field.name()),
                    field_value(&field, &message.get_field(&field)),
                );
                Json::Object(arm)
            }
            None => Json::Null,
        };
        object.insert(oneof.name().to_string(), value);
    }
    Json::Object(object)
}

fn field_value(field: &FieldDescriptor, value: &Value) -> Json {
    match value {
        Value::List(items) => Json::Array(items.iter().map(|v| scalar(field, v)).collect()),
        Value::Map(entries) => {
            let mut object = Map::new();
            for (key, v) in entries {
                let key = match key {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(u) => u.to_string(),
                    MapKey::U64(u) => u.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                let value_field = match field.kind() {
                    Kind::Message(entry) => entry.map_entry_value_field(),
                    _ => field.clone(),
                };
                object.insert(key, scalar(&value_field, v));
            }
            Json::Object(object)
        }
        other => scalar(field, other),
    }
}

fn scalar(_field: &FieldDescriptor, value: &Value) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(i) | Value::EnumNumber(i) => Json::from(*i),
        Value::I64(i) => Json::from(*i),
        Value::U32(u) => Json::from(*u),
        Value::U64(u) => Json::from(*u),
        Value::F32(f) => Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(bytes) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
        Value::Message(m) => message_json(m),
        Value::List(_) | Value::Map(_) => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::proto::ebpf_extractor::message::{
        message_event::Msg, MessageEvent, Metadata, Ping,
    };
    use crate::event::proto::ebpf_extractor::{ebpf::EbpfEvent, Ebpf};
    use crate::event::proto::event::event::PeerObserverEvent;
    use crate::event::proto::rpc_extractor::{rpc::RpcEvent, Rpc};
    use crate::event::Event;

    fn encode(event: PeerObserverEvent) -> Vec<u8> {
        crate::event::wire::encode(&Event {
            timestamp: 1,
            peer_observer_event: Some(event),
        })
    }

    #[test]
    fn a_ping_has_the_shape_of_the_spec_example() {
        let payload = encode(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(EbpfEvent::Message(MessageEvent {
                meta: Metadata {
                    peer_id: 42,
                    addr: "203.0.113.7:8333".into(),
                    conn_type: 1,
                    command: "ping".into(),
                    inbound: true,
                    size: 8,
                },
                msg: Some(Msg::Ping(Ping { value: 8_231_975 })),
            })),
        }));
        let expected: Json = serde_json::from_str(
            r#"{"EbpfExtractor":{"ebpf_event":{"Message":{"meta":{"peer_id":42,"addr":"203.0.113.7:8333","conn_type":1,"command":"ping","inbound":true,"size":8},"msg":{"Ping":{"value":8231975}}}}}}"#,
        )
        .expect("the spec's example");
        assert_eq!(event_json(&payload), Some(expected));
    }

    #[test]
    fn scalar_arms_are_tagged_values_and_garbage_is_none() {
        let payload = encode(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(RpcEvent::Uptime(123)),
        }));
        let json = event_json(&payload).expect("json");
        assert_eq!(json["RpcExtractor"]["rpc_event"]["Uptime"], 123);
        assert_eq!(event_json(b"\xff\xff\xff"), None);
        assert_eq!(upper_camel("block_connected_log"), "BlockConnectedLog");
        assert_eq!(upper_camel("addrv2"), "Addrv2");
    }
}
