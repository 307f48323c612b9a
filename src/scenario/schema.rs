//! Event paths and filters checked against the embedded event schema.
//!
//! The categories are the arms of `ebpf_extractor.ebpf`, plus `log` (`log_extractor.log`) and
//! `rpc` (`rpc_extractor.rpc`); the arms of a category are the fields of its event message's
//! oneof (`connection.misbehaving`, `message.addr`, `log.block_checked_log`, ...), all read
//! from [`crate::event::descriptor_pool`], so a renamed arm in `proto/` shows up here.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::decode::suggestion;
use super::types::{EventCategory, EventPath, Filter, Op, Scalar};
use crate::event::descriptor_pool;

const EBPF_MESSAGE: &str = "ebpf_extractor.ebpf";

/// The message type of a category (`ebpf_extractor.connection.ConnectionEvent`).
fn category_message(category: EventCategory) -> MessageDescriptor {
    if let Some(name) = category.own_message() {
        return descriptor_pool()
            .get_message_by_name(name)
            .expect("the embedded schema has the log and rpc messages");
    }
    let ebpf = descriptor_pool()
        .get_message_by_name(EBPF_MESSAGE)
        .expect("the embedded schema has ebpf_extractor.ebpf");
    let field = ebpf
        .get_field_by_name(category.name())
        .expect("every EventCategory is an arm of ebpf_extractor.ebpf");
    match field.kind() {
        Kind::Message(m) => m,
        _ => unreachable!("arms of ebpf_extractor.ebpf are messages"),
    }
}

/// The arms of a category: the fields of its (only) oneof.
fn arms(category: EventCategory) -> Vec<FieldDescriptor> {
    category_message(category)
        .oneofs()
        .flat_map(|o| o.fields().collect::<Vec<_>>())
        .collect()
}

/// The names of a category's arms, in schema order.
pub fn arm_names(category: EventCategory) -> Vec<String> {
    arms(category)
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

/// Parses `<category>.<arm>` / `<category>.*`, checking both against the schema.
pub(crate) fn parse_event_path(s: &str) -> Result<EventPath, String> {
    let categories: Vec<&str> = EventCategory::ALL.iter().map(|c| c.name()).collect();
    let Some((cat, arm)) = s.split_once('.') else {
        return Err(format!(
            "bad event path {s:?}: expected <category>.<arm> such as \"connection.misbehaving\" \
             or \"message.addr\" (categories: {})",
            categories.join(", ")
        ));
    };
    let Some(category) = EventCategory::ALL.into_iter().find(|c| c.name() == cat) else {
        return Err(format!(
            "bad event path {s:?}: unknown category {cat:?} (expected one of: {}){}",
            categories.join(", "),
            suggestion(cat, &categories)
        ));
    };
    if arm == "*" {
        return Ok(EventPath {
            category,
            arm: None,
        });
    }
    let names = arm_names(category);
    if names.iter().any(|n| n == arm) {
        return Ok(EventPath {
            category,
            arm: Some(arm.to_string()),
        });
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Err(format!(
        "bad event path {s:?}: {cat} has no event {arm:?} (expected one of: {}, or *){}",
        refs.join(", "),
        suggestion(arm, &refs)
    ))
}

/// Where a filter path may start: the arm's payload, then the category's own fields.
fn roots(path: &EventPath) -> Vec<(String, MessageDescriptor, bool)> {
    let mut roots = Vec::new();
    if let Some(arm) = &path.arm {
        if let Some(field) = arms(path.category).into_iter().find(|f| f.name() == arm) {
            if let Kind::Message(m) = field.kind() {
                // A per-peer list is judged element by element: filters name the element's
                // fields.
                let element = path
                    .per_peer_list()
                    .and_then(|list| m.get_field_by_name(list))
                    .and_then(|f| match f.kind() {
                        Kind::Message(element) => Some(element),
                        _ => None,
                    });
                roots.push((path.to_string(), element.unwrap_or(m), false));
            }
        }
    }
    roots.push((
        path.category.name().to_string(),
        category_message(path.category),
        true,
    ));
    roots
}

/// The scalar field at a dotted `field` path of events matching `path`.
pub(crate) fn resolve_filter_field(
    path: &EventPath,
    field: &str,
) -> Result<FieldDescriptor, String> {
    let segments: Vec<&str> = field.split('.').collect();
    let mut available = Vec::new();
    for (_, message, envelope) in roots(path) {
        let first = message
            .get_field_by_name(segments[0])
            .filter(|f| !envelope || f.containing_oneof().is_none());
        match first {
            Some(f) => return resolve_rest(f, &segments, field),
            None => available.extend(
                message
                    .fields()
                    .filter(|f| !envelope || f.containing_oneof().is_none())
                    .map(|f| f.name().to_string()),
            ),
        }
    }
    let refs: Vec<&str> = available.iter().map(String::as_str).collect();
    let listed = if refs.is_empty() {
        "it has none; filter on a specific event instead of *".to_string()
    } else {
        format!("fields: {}", refs.join(", "))
    };
    Err(format!(
        "{path} events have no field {:?} ({listed}){}",
        segments[0],
        suggestion(segments[0], &refs)
    ))
}

fn resolve_rest(
    mut field: FieldDescriptor,
    segments: &[&str],
    whole: &str,
) -> Result<FieldDescriptor, String> {
    for (i, next) in segments.iter().enumerate().skip(1) {
        let so_far = segments[..i].join(".");
        if field.is_list() || field.is_map() {
            return Err(format!(
                "{so_far:?} is a repeated field; filters compare single values"
            ));
        }
        let Kind::Message(m) = field.kind() else {
            return Err(format!(
                "{so_far:?} is a {}, it has no field {next:?}",
                kind_name(&field.kind())
            ));
        };
        field = m.get_field_by_name(next).ok_or_else(|| {
            let names: Vec<String> = m.fields().map(|f| f.name().to_string()).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            format!(
                "{so_far:?} has no field {next:?} (fields: {}){}",
                refs.join(", "),
                suggestion(next, &refs)
            )
        })?;
    }
    if field.is_list() || field.is_map() {
        return Err(format!(
            "{whole:?} is a repeated field; filters compare single values"
        ));
    }
    if let Kind::Message(m) = field.kind() {
        let names: Vec<String> = m.fields().map(|f| f.name().to_string()).collect();
        return Err(format!(
            "{whole:?} is a message; filter on one of its fields: {}",
            names
                .iter()
                .map(|n| format!("{whole}.{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(field)
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Double | Kind::Float => "float",
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => "signed integer",
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => "unsigned integer",
        Kind::Bool => "boolean",
        Kind::String => "string",
        Kind::Bytes => "bytes field (compared as lowercase hex)",
        Kind::Message(_) => "message",
        Kind::Enum(_) => "enum",
    }
}

/// Checks that `filter` fits the field at `field` of `path`'s events.
pub(crate) fn check_filter(path: &EventPath, field: &str, filter: &Filter) -> Result<(), String> {
    let descriptor = resolve_filter_field(path, field)?;
    let kind = descriptor.kind();
    let what = kind_name(&kind);
    let value = &filter.value;
    let op = filter.op;
    let bad_value = |expected: &str| {
        Err(format!(
            "{field:?} is a {what}: expected {expected}, found {}",
            value.describe()
        ))
    };
    let bad_op = |allowed: &str| {
        Err(format!(
            "{field:?} is a {what}: operator {op} does not apply (use {allowed})"
        ))
    };
    match kind {
        Kind::Bool => {
            if !matches!(value, Scalar::Bool(_)) {
                return bad_value("true or false");
            }
            if !matches!(op, Op::Eq | Op::Ne) {
                return bad_op("== or !=");
            }
        }
        Kind::String => {
            if !matches!(value, Scalar::String(_)) {
                return bad_value("a string");
            }
            if op.is_ordering() {
                return bad_op("==, !=, starts_with or contains");
            }
        }
        Kind::Bytes => {
            let Scalar::String(hex) = value else {
                return bad_value("a hex string");
            };
            if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return bad_value("a hex string");
            }
            if op.is_ordering() {
                return bad_op("==, !=, starts_with or contains");
            }
        }
        Kind::Double | Kind::Float => {
            if !value.is_number() {
                return bad_value("a number");
            }
            if op.is_textual() {
                return bad_op("==, !=, >, >=, < or <=");
            }
        }
        Kind::Enum(e) => {
            match value {
                Scalar::Int(_) => {}
                Scalar::String(name) if e.get_value_by_name(name).is_some() => {}
                _ => {
                    let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
                    return bad_value(&format!("one of {}", names.join(", ")));
                }
            }
            if !matches!(op, Op::Eq | Op::Ne) {
                return bad_op("== or !=");
            }
        }
        Kind::Message(_) => unreachable!("resolve_filter_field returns scalar fields"),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            match value {
                Scalar::Int(i) if *i >= 0 => {}
                _ => return bad_value("a non-negative integer"),
            }
            if op.is_textual() {
                return bad_op("==, !=, >, >=, < or <=");
            }
        }
        _ => {
            if !matches!(value, Scalar::Int(_)) {
                return bad_value("an integer");
            }
            if op.is_textual() {
                return bad_op("==, !=, >, >=, < or <=");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> EventPath {
        parse_event_path(s).unwrap()
    }

    #[test]
    fn event_paths_follow_the_schema() {
        assert_eq!(
            path("connection.misbehaving"),
            EventPath {
                category: EventCategory::Connection,
                arm: Some("misbehaving".into())
            }
        );
        assert_eq!(path("message.*").arm, None);
        for ok in [
            "message.addr",
            "message.addrv2",
            "message.verack",
            "connection.closed",
            "connection.inbound_evicted",
            "mempool.rejected",
            "validation.block_connected",
            "utxocache.flush",
        ] {
            assert_eq!(path(ok).to_string(), ok);
        }
        let err = parse_event_path("connection.misbehave").unwrap_err();
        assert!(err.contains("did you mean \"misbehaving\""), "{err}");
        assert!(parse_event_path("addrman.new")
            .unwrap_err()
            .contains("unknown category"));
        assert!(parse_event_path("misbehaving")
            .unwrap_err()
            .contains("<category>.<arm>"));
        assert!(parse_event_path("message.addr.x").is_err());
    }

    #[test]
    fn filters_resolve_in_the_payload_then_the_envelope() {
        let eq = |value| Filter { op: Op::Eq, value };
        let misbehaving = path("connection.misbehaving");
        check_filter(&misbehaving, "message", &eq(Scalar::String("x".into()))).unwrap();
        check_filter(&misbehaving, "id", &eq(Scalar::Int(3))).unwrap();
        let addr = path("message.addr");
        check_filter(&addr, "meta.inbound", &eq(Scalar::Bool(true))).unwrap();
        check_filter(
            &addr,
            "meta.conn_type",
            &eq(Scalar::String("Inbound".into())),
        )
        .unwrap();
        check_filter(
            &addr,
            "meta.conn_type",
            &eq(Scalar::String("INBOUND".into())),
        )
        .unwrap_err();
        let closed = path("connection.closed");
        check_filter(
            &closed,
            "conn.addr",
            &eq(Scalar::String("127.0.0.1:1".into())),
        )
        .unwrap();
        // The envelope's oneof arms are not filter roots.
        assert!(check_filter(&addr, "inv", &eq(Scalar::Int(1))).is_err());
        let err =
            check_filter(&addr, "meta.inbound", &eq(Scalar::String("yes".into()))).unwrap_err();
        assert!(err.contains("true or false"), "{err}");
        let err = check_filter(&addr, "addresses", &eq(Scalar::Int(1))).unwrap_err();
        assert!(err.contains("repeated"), "{err}");
        let err =
            check_filter(&path("connection.*"), "conn.addr", &eq(Scalar::Int(1))).unwrap_err();
        assert!(err.contains("no field \"conn\""), "{err}");
        let ge = Filter {
            op: Op::Ge,
            value: Scalar::Int(1000),
        };
        check_filter(&addr, "meta.size", &ge).unwrap();
        assert!(check_filter(&misbehaving, "message", &ge).is_err());
    }
}
