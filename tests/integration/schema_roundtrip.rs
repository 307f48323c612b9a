//! Schema-wide checks driven by the descriptor rather than by hand-written values:
//!
//! - every message type survives a decode/encode through its generated prost type with every
//!   field populated and every oneof arm exercised, so no field is missing from the generated
//!   code (prost silently drops fields it does not know);
//! - the strict required-field check reports exactly the missing paths;
//! - malformed bytes are reported as `StrictError::Decode`, never a panic.

use std::collections::BTreeSet;

use peerlab::event::proto::bitcoin_primitives::{ConnType, Transaction};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::message::{
    message_event::Msg, MessageEvent, Metadata, Ping,
};
use peerlab::event::proto::ebpf_extractor::Ebpf;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::p2p_extractor::{p2p::P2pEvent, P2p};
use peerlab::event::proto::rpc_extractor::{
    rpc::RpcEvent, AddrManInfo, AddrManInfoNetwork, PeerInfo, PeerInfos, Rpc,
};
use peerlab::event::registry::{reencode, MESSAGE_NAMES};
use peerlab::event::strict::{check_event, check_required, StrictError};
use peerlab::event::{descriptor_pool, Event, EVENT_MESSAGE_NAME};
use prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor, ReflectMessage as _,
    Value,
};

// ---------------------------------------------------------------------------------------------
// Generating fully populated messages from the descriptor
// ---------------------------------------------------------------------------------------------

fn descriptor(full_name: &str) -> MessageDescriptor {
    descriptor_pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("`{full_name}` is not in the descriptor pool"))
}

/// The oneofs a message really declares; proto3 `optional` would add synthetic ones, which
/// are plain fields for our purpose (none exist in this proto2 schema).
fn real_oneofs(desc: &MessageDescriptor) -> impl Iterator<Item = OneofDescriptor> + '_ {
    desc.oneofs().filter(|oneof| !oneof.is_synthetic())
}

fn in_real_oneof(field: &FieldDescriptor) -> bool {
    field
        .containing_oneof()
        .is_some_and(|oneof| !oneof.is_synthetic())
}

/// How many variants of `desc` [`build`] needs so that every oneof arm, at any depth, is
/// chosen at least once: a oneof needs the sum of its arms' counts (arms are tried one after
/// the other), a message the largest need among its fields. The schema has no recursive
/// messages, so this terminates.
fn variant_count(desc: &MessageDescriptor) -> usize {
    let plain = desc
        .fields()
        .filter(|f| !in_real_oneof(f))
        .map(|f| field_variant_count(&f));
    let oneofs =
        real_oneofs(desc).map(|oneof| oneof.fields().map(|f| field_variant_count(&f)).sum());
    plain.chain(oneofs).max().unwrap_or(1).max(1)
}

fn field_variant_count(field: &FieldDescriptor) -> usize {
    match field.kind() {
        // A map field's kind is its synthetic entry message, so this covers map values too.
        Kind::Message(message) => variant_count(&message),
        _ => 1,
    }
}

/// Variant `variant` of `desc` with every field set to a non-default value; oneofs take the
/// arm that `variant` selects (see [`variant_count`]).
fn build(desc: &MessageDescriptor, variant: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    for field in desc.fields().filter(|f| !in_real_oneof(f)) {
        message.set_field(&field, field_value(&field, variant));
    }
    for oneof in real_oneofs(desc) {
        let (arm, arm_variant) = pick_arm(&oneof, variant);
        message.set_field(&arm, field_value(&arm, arm_variant));
    }
    message
}

/// The arm of `oneof` for `variant`, and the variant to build that arm with: arm 0 gets the
/// first `count(arm 0)` variants, arm 1 the next ones, and so on, wrapping around.
fn pick_arm(oneof: &OneofDescriptor, variant: usize) -> (FieldDescriptor, usize) {
    let arms: Vec<(FieldDescriptor, usize)> = oneof
        .fields()
        .map(|f| (f.clone(), field_variant_count(&f)))
        .collect();
    let total: usize = arms.iter().map(|(_, count)| count).sum();
    let mut index = variant % total;
    for (arm, count) in arms {
        if index < count {
            return (arm, index);
        }
        index -= count;
    }
    unreachable!("index < total")
}

/// Repeated fields and maps get two distinct elements; singular fields one value.
fn field_value(field: &FieldDescriptor, variant: usize) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("map fields have an entry message")
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let entries = (0..2).map(|element| {
            let key = single_value(&key_field, variant, element)
                .into_map_key()
                .expect("map key kinds are scalars");
            (key, single_value(&value_field, variant, element))
        });
        Value::Map(entries.collect())
    } else if field.is_list() {
        Value::List(
            (0..2)
                .map(|element| single_value(field, variant, element))
                .collect(),
        )
    } else {
        single_value(field, variant, 0)
    }
}

/// A non-default value of the field's type. Values differ per field and per list element,
/// and integers are large or negative so every varint/zigzag/fixed path carries real bits.
fn single_value(field: &FieldDescriptor, variant: usize, element: usize) -> Value {
    let seed = u64::from(field.number()) + 100 * element as u64;
    let signed = seed as i64 + 1;
    match field.kind() {
        Kind::Double => Value::F64(seed as f64 + 0.25),
        Kind::Float => Value::F32(seed as f32 + 0.5),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-(signed as i32) * 1_000),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(i64::MIN + signed),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(u32::MAX - seed as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::MAX - seed),
        // Two list elements as [true, false]: still a non-empty list, and order is checked.
        Kind::Bool => Value::Bool(element == 0),
        Kind::String => Value::String(format!("{}-{variant}-{element}", field.name())),
        Kind::Bytes => Value::Bytes(vec![seed as u8, 0xFF, variant as u8, element as u8].into()),
        Kind::Enum(enum_desc) => {
            let non_zero: Vec<i32> = enum_desc
                .values()
                .map(|v| v.number())
                .filter(|&n| n != 0)
                .collect();
            // An enum with only a zero value has nothing else valid to offer.
            Value::EnumNumber(
                non_zero
                    .get(element % non_zero.len().max(1))
                    .copied()
                    .unwrap_or(0),
            )
        }
        Kind::Message(message) => Value::Message(build(&message, variant + element)),
    }
}

/// Records `oneof-full-name.arm` for every oneof arm set anywhere inside `message`.
fn collect_arms(message: &DynamicMessage, arms: &mut BTreeSet<String>) {
    for (field, value) in message.fields() {
        if in_real_oneof(&field) {
            arms.insert(field.full_name().to_string());
        }
        for sub in sub_messages(value) {
            collect_arms(sub, arms);
        }
    }
}

fn sub_messages(value: &Value) -> Vec<&DynamicMessage> {
    match value {
        Value::Message(sub) => vec![sub],
        Value::List(items) => items.iter().filter_map(Value::as_message).collect(),
        Value::Map(entries) => entries.values().filter_map(Value::as_message).collect(),
        _ => Vec::new(),
    }
}

/// Every oneof arm declared anywhere in the schema.
fn all_arms() -> BTreeSet<String> {
    descriptor_pool()
        .all_messages()
        .flat_map(|m| {
            real_oneofs(&m)
                .flat_map(|o| {
                    o.fields()
                        .map(|f| f.full_name().to_string())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fails unless every non-oneof field of `message` (recursively) is set to a non-default value;
/// guards the generator itself, so the round trip cannot pass by leaving fields out.
fn assert_fully_populated(message: &DynamicMessage, path: &str) {
    for field in message.descriptor().fields().filter(|f| !in_real_oneof(f)) {
        let value = message.get_field(&field);
        assert!(
            message.has_field(&field) && !value.is_default_for_field(&field),
            "{path}.{} is not populated",
            field.name()
        );
    }
    for (field, value) in message.fields() {
        for sub in sub_messages(value) {
            assert_fully_populated(sub, &format!("{path}.{}", field.name()));
        }
    }
}

/// The first field that differs between `original` and `back`, as a readable path (the
/// `Debug` of a dynamic message dumps whole descriptors).
fn difference(original: &DynamicMessage, back: &DynamicMessage, path: &str) -> Option<String> {
    for field in original.descriptor().fields() {
        let here = format!("{path}.{}", field.name());
        match (original.has_field(&field), back.has_field(&field)) {
            (false, false) => continue,
            (true, false) => return Some(format!("{here} was dropped")),
            (false, true) => return Some(format!("{here} appeared")),
            (true, true) => {}
        }
        let (before, after) = (original.get_field(&field), back.get_field(&field));
        match (before.as_ref(), after.as_ref()) {
            _ if before == after => {}
            (Value::Message(a), Value::Message(b)) => return difference(a, b, &here),
            (a, b) if sub_messages(a).is_empty() => return Some(format!("{here}: {a:?} -> {b:?}")),
            _ => return Some(format!("{here} changed")),
        }
    }
    None
}

/// Encodes `original`, passes the bytes through the generated prost type, and checks the result
/// decodes to the same dynamic message (a field unknown to prost would be dropped).
fn assert_prost_roundtrip(name: &str, original: &DynamicMessage) {
    let bytes = original.encode_to_vec();
    let reencoded = reencode(name, &bytes)
        .unwrap_or_else(|| panic!("`{name}` has no generated type in the registry"))
        .unwrap_or_else(|e| panic!("prost cannot decode {name}: {e}"));
    let back = DynamicMessage::decode(original.descriptor(), reencoded.as_slice())
        .unwrap_or_else(|e| panic!("re-encoded {name} does not decode: {e}"));
    if &back != original {
        let what = difference(original, &back, name).unwrap_or_else(|| "unknown fields".into());
        panic!("{name} changed in the prost round trip: {what}");
    }
    assert_eq!(
        check_required(name, &bytes),
        Ok(()),
        "{name}: fully populated yet not strict-valid"
    );
}

#[test]
fn registry_lists_every_message_of_the_schema() {
    let in_pool: BTreeSet<String> = descriptor_pool()
        .all_messages()
        .filter(|m| !m.is_map_entry())
        .map(|m| m.full_name().to_string())
        .collect();
    let registered: BTreeSet<String> = MESSAGE_NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(registered, in_pool);
    assert_eq!(
        registered.len(),
        MESSAGE_NAMES.len(),
        "MESSAGE_NAMES has duplicates"
    );
}

#[test]
fn every_message_with_every_field_and_oneof_arm_survives_prost() {
    let mut arms_seen = BTreeSet::new();
    let mut messages_checked = 0;
    for &name in MESSAGE_NAMES {
        let desc = descriptor(name);
        for variant in 0..variant_count(&desc) {
            let original = build(&desc, variant);
            assert_fully_populated(&original, name);
            assert_prost_roundtrip(name, &original);
            collect_arms(&original, &mut arms_seen);
            messages_checked += 1;
        }
    }
    let missing: Vec<_> = all_arms().difference(&arms_seen).cloned().collect();
    assert!(
        missing.is_empty(),
        "oneof arms never exercised: {missing:?}"
    );
    // Sanity bound: the nested oneofs of `event.Event` alone need dozens of variants.
    assert!(
        messages_checked > 100,
        "only {messages_checked} messages generated"
    );
}

// ---------------------------------------------------------------------------------------------
// Strict required-field check
// ---------------------------------------------------------------------------------------------

fn ping_event() -> Event {
    Event {
        timestamp: 1_700_000_000_000,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(EbpfEvent::Message(MessageEvent {
                meta: Metadata {
                    peer_id: 7,
                    addr: "1.2.3.4:8333".to_string(),
                    conn_type: ConnType::OutboundFullRelay as i32,
                    command: "ping".to_string(),
                    inbound: false,
                    size: 8,
                },
                msg: Some(Msg::Ping(Ping { value: 42 })),
            })),
        })),
    }
}

fn peer_info(id: u32) -> PeerInfo {
    PeerInfo {
        id,
        address: format!("10.0.0.{id}:8333"),
        ..PeerInfo::default()
    }
}

fn rpc_event(event: RpcEvent) -> Event {
    Event {
        timestamp: 1_700_000_000_000,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(event),
        })),
    }
}

/// `event` as a dynamic message, so required fields can be removed (prost always writes them).
fn dynamic_event(event: &Event) -> DynamicMessage {
    DynamicMessage::decode(
        descriptor(EVENT_MESSAGE_NAME),
        event.encode_to_vec().as_slice(),
    )
    .expect("prost output decodes")
}

/// The sub-message at a dotted path of singular message fields, e.g. `rpc_extractor.peer_infos`.
fn sub_message_mut<'a>(message: &'a mut DynamicMessage, path: &str) -> &'a mut DynamicMessage {
    path.split('.').fold(message, |current, name| {
        current
            .get_field_by_name_mut(name)
            .and_then(Value::as_message_mut)
            .unwrap_or_else(|| panic!("no message field `{name}` on the way to `{path}`"))
    })
}

/// The `index`-th message of the repeated field `name`.
fn list_element_mut<'a>(
    message: &'a mut DynamicMessage,
    name: &str,
    index: usize,
) -> &'a mut DynamicMessage {
    message
        .get_field_by_name_mut(name)
        .and_then(Value::as_list_mut)
        .and_then(|items| items.get_mut(index))
        .and_then(Value::as_message_mut)
        .unwrap_or_else(|| panic!("no element {index} in `{name}`"))
}

/// Asserts the strict check reports exactly `expected` (in any order; duplicates count).
fn assert_missing(result: Result<(), StrictError>, expected: &[&str]) {
    let Err(StrictError::MissingRequired(mut reported)) = result else {
        panic!("expected missing required fields {expected:?}, got {result:?}");
    };
    let mut expected: Vec<String> = expected.iter().map(|p| p.to_string()).collect();
    reported.sort();
    expected.sort();
    assert_eq!(reported, expected);
}

#[test]
fn complete_events_pass_the_strict_check() {
    assert_eq!(check_event(&ping_event().encode_to_vec()), Ok(()));
    // A required field holding its default value is still on the wire, hence present.
    assert_eq!(
        check_required(
            "ebpf_extractor.message.Metadata",
            &Metadata::default().encode_to_vec()
        ),
        Ok(())
    );
}

#[test]
fn missing_meta_addr_is_reported_with_its_path() {
    let mut event = dynamic_event(&ping_event());
    sub_message_mut(&mut event, "ebpf_extractor.message.meta").clear_field_by_name("addr");
    assert_missing(
        check_event(&event.encode_to_vec()),
        &["ebpf_extractor.message.meta.addr"],
    );
}

#[test]
fn missing_fields_inside_repeated_elements_are_reported_per_index() {
    let event = rpc_event(RpcEvent::PeerInfos(PeerInfos {
        infos: vec![peer_info(1), peer_info(2), peer_info(3)],
    }));
    let mut dynamic = dynamic_event(&event);
    let infos = sub_message_mut(&mut dynamic, "rpc_extractor.peer_infos");
    list_element_mut(infos, "infos", 1).clear_field_by_name("address");
    list_element_mut(infos, "infos", 2).clear_field_by_name("cpu_load");
    list_element_mut(infos, "infos", 2).clear_field_by_name("id");
    dynamic.clear_field_by_name("timestamp");
    assert_missing(
        check_event(&dynamic.encode_to_vec()),
        &[
            "timestamp",
            "rpc_extractor.peer_infos.infos[1].address",
            "rpc_extractor.peer_infos.infos[2].cpu_load",
            "rpc_extractor.peer_infos.infos[2].id",
        ],
    );
}

#[test]
fn missing_fields_inside_map_values_are_reported_per_key() {
    let network = AddrManInfoNetwork {
        new: 1,
        tried: 2,
        total: 3,
    };
    let event = rpc_event(RpcEvent::AddrmanInfo(AddrManInfo {
        networks: [
            ("ipv4".to_string(), network),
            ("onion".to_string(), network),
        ]
        .into(),
    }));
    let mut dynamic = dynamic_event(&event);
    let networks = sub_message_mut(&mut dynamic, "rpc_extractor.addrman_info")
        .get_field_by_name_mut("networks")
        .and_then(Value::as_map_mut)
        .expect("networks is a map");
    for value in networks.values_mut() {
        value
            .as_message_mut()
            .expect("message values")
            .clear_field_by_name("tried");
    }
    assert_missing(
        check_event(&dynamic.encode_to_vec()),
        &[
            "rpc_extractor.addrman_info.networks[ipv4].tried",
            "rpc_extractor.addrman_info.networks[onion].tried",
        ],
    );
}

#[test]
fn a_missing_required_message_is_reported_once_not_descended_into() {
    // `meta` absent altogether: its own required fields are not listed on top of it.
    let mut event = dynamic_event(&ping_event());
    sub_message_mut(&mut event, "ebpf_extractor.message").clear_field_by_name("meta");
    assert_missing(
        check_event(&event.encode_to_vec()),
        &["ebpf_extractor.message.meta"],
    );
}

#[test]
fn check_required_works_on_any_message_not_just_events() {
    // Transaction.raw is optional; txid and wtxid are required.
    let tx = Transaction {
        txid: vec![1; 32],
        wtxid: vec![2; 32],
        raw: None,
    };
    assert_eq!(
        check_required("bitcoin_primitives.Transaction", &tx.encode_to_vec()),
        Ok(())
    );
    assert_missing(
        check_required("bitcoin_primitives.Transaction", &[]),
        &["txid", "wtxid"],
    );
    // A message whose fields are all optional or repeated is complete when empty.
    let empty_p2p = P2p { p2p_event: None };
    assert_eq!(
        check_required("p2p_extractor.p2p", &empty_p2p.encode_to_vec()),
        Ok(())
    );
    let feefilter = P2p {
        p2p_event: Some(P2pEvent::FeefilterAnnouncement(-1)),
    };
    assert_eq!(
        check_required("p2p_extractor.p2p", &feefilter.encode_to_vec()),
        Ok(())
    );
}

/// A proto2 enum is closed: C++ and Python parsers move an unknown value of a `required` enum
/// to the unknown fields, so the field counts as missing and the parse fails (the spec relies
/// on this: "proto2 decoders reject unknown values of a required enum"). The strict check
/// reports it, even though prost-reflect itself keeps the unknown number as a set field.
#[test]
fn unknown_value_of_required_enum_counts_as_missing() {
    let mut event = ping_event();
    if let Some(PeerObserverEvent::EbpfExtractor(Ebpf {
        ebpf_event: Some(EbpfEvent::Message(m)),
    })) = event.peer_observer_event.as_mut()
    {
        m.meta.conn_type = 5; // ConnType has values 0..=4 only
    }
    assert_missing(
        check_event(&event.encode_to_vec()),
        &["ebpf_extractor.message.meta.conn_type (undefined enum value 5)"],
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_is_a_decode_error_not_a_panic() {
    let cases: [(&[u8], &str); 7] = [
        (&[0xFF, 0xFF, 0xFF], "varint tag that never ends"),
        (
            &[0x0A, 0x05, 0x01],
            "LEN field announcing 5 bytes, 1 present",
        ),
        (&[0x0F], "field 1 with invalid wire type 7"),
        (&[0x00, 0x00], "field number 0"),
        (&[0x52, 0x00], "timestamp (varint field 10) sent as LEN"),
        (&[0x50, 0x80], "timestamp varint truncated"),
        (
            &[0x0A, 0x01, 0xFF],
            "valid outer framing, invalid inner ebpf message",
        ),
    ];
    for (bytes, why) in cases {
        match check_event(bytes) {
            Err(StrictError::Decode { message, reason }) => {
                assert_eq!(message, EVENT_MESSAGE_NAME, "{why}");
                assert!(!reason.is_empty(), "{why}: empty reason");
            }
            other => panic!("{why}: expected a decode error, got {other:?}"),
        }
    }
}

#[test]
fn unknown_message_name_is_reported() {
    assert_eq!(
        check_required("no.such.Message", &[]),
        Err(StrictError::UnknownMessage("no.such.Message".to_string()))
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes never panic the strict check; every outcome is a documented one.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let outcome = check_event(&bytes);
            let documented = matches!(
                outcome,
                Ok(()) | Err(StrictError::Decode { .. }) | Err(StrictError::MissingRequired(_))
            );
            prop_assert!(documented, "unexpected outcome {:?}", outcome);
        }
    }
}
