//! What the observer saw during a rehearsal: every event from the bus, with its time and
//! the node-side peer id it concerns, and the matching of scenario event checks against them.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::compare::{at_path, holds};
use crate::scenario::{arm_names, EventCategory, EventCheck, EventPath};
use crate::tools::logger::decode_json;

/// One event as seen on the bus.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Seconds since the scenario's time zero.
    pub t_secs: f64,
    /// The category (`message`, `connection`, ...), when it is an eBPF event.
    pub category: Option<String>,
    /// The arm (`addr`, `misbehaving`, ...).
    pub arm: Option<String>,
    /// The category object (`{"meta":..., "addr":...}` or `{"misbehaving": {...}}`).
    pub body: Value,
    /// The node's id of the peer the event concerns.
    pub peer_id: Option<u64>,
    /// The peer address (`ip:port`) when the event carries it.
    pub peer_addr: Option<String>,
    /// The scenario group of that peer (set by `assign_groups`).
    pub group: Option<String>,
    /// The node that published it (a topology's `peerlab.<node>.*` subjects; `None` on a
    /// single node's flat subjects).
    pub node: Option<String>,
}

impl Observed {
    /// Decodes a bus payload into what scenario checks judge: one observation, none for
    /// payloads of no scenario category (see [`EventCategory`]), or one per peer for an arm
    /// that lists peers ([`EventPath::per_peer_list`], e.g. `rpc.peer_infos`).
    pub fn from_payload(t_secs: f64, payload: &[u8]) -> Vec<Observed> {
        let Ok(json) = decode_json(payload) else {
            return Vec::new();
        };
        for (key, category) in [
            ("log_extractor", EventCategory::Log),
            ("rpc_extractor", EventCategory::Rpc),
            ("p2p_extractor", EventCategory::P2p),
            ("ipc_extractor", EventCategory::Ipc),
        ] {
            if let Some(body) = json.get(key) {
                return Observed::extractor_event(t_secs, category, body).per_peer();
            }
        }
        Observed::ebpf_event(t_secs, &json).into_iter().collect()
    }

    /// An eBPF extractor event.
    fn ebpf_event(t_secs: f64, json: &Value) -> Option<Observed> {
        let ebpf = json.get("ebpf_extractor")?.as_object()?;
        let (category, body) = ebpf.iter().next()?;
        let arm = match category.as_str() {
            // A message's arm is the key beside `meta`.
            "message" => body
                .as_object()?
                .keys()
                .find(|k| k.as_str() != "meta")
                .cloned(),
            _ => body.as_object()?.keys().next().cloned(),
        };
        let arm_body = arm.as_ref().and_then(|a| body.get(a));
        let peer_id = at_path(body, "meta.peer_id")
            .or_else(|| arm_body.and_then(|b| at_path(b, "conn.peer_id")))
            .or_else(|| arm_body.and_then(|b| b.get("id")))
            .and_then(super::compare::number)
            .map(|n| n as u64);
        let peer_addr = at_path(body, "meta.addr")
            .or_else(|| arm_body.and_then(|b| at_path(b, "conn.addr")))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Some(Observed {
            t_secs,
            category: Some(category.clone()),
            arm,
            body: body.clone(),
            peer_id,
            peer_addr,
            group: None,
            node: None,
        })
    }

    /// Splits an event whose arm lists peers into one observation per peer (the arm's body
    /// becomes that peer's element, and the peer's id and address are set); other events
    /// stay one observation.
    fn per_peer(self) -> Vec<Observed> {
        let list = self
            .category
            .as_deref()
            .zip(self.arm.as_deref())
            .and_then(|(c, a)| {
                let category = EventCategory::ALL.into_iter().find(|k| k.name() == c)?;
                EventPath {
                    category,
                    arm: Some(a.to_string()),
                }
                .per_peer_list()
            });
        let (Some(list), Some(arm)) = (list, self.arm.clone()) else {
            return vec![self];
        };
        let peers = self
            .body
            .get(&arm)
            .and_then(|b| b.get(list))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        peers
            .into_iter()
            .map(|peer| {
                let mut body = self.body.clone();
                let peer_id = peer
                    .get("id")
                    .and_then(super::compare::number)
                    .map(|n| n as u64);
                let peer_addr = peer
                    .get("address")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(fields) = body.as_object_mut() {
                    fields.insert(arm.clone(), peer);
                }
                Observed {
                    body,
                    peer_id,
                    peer_addr,
                    ..self.clone()
                }
            })
            .collect()
    }

    /// A log, RPC, P2P-extractor or IPC event: its arm is the body's key that names one of the category's arms
    /// (the other keys are the envelope: timestamp, level, ...). No peer.
    fn extractor_event(t_secs: f64, category: EventCategory, body: &Value) -> Observed {
        let arms = category_arms(category);
        let arm = body
            .as_object()
            .and_then(|fields| fields.keys().find(|k| arms.contains(k)))
            .cloned();
        Observed {
            t_secs,
            category: Some(category.name().to_string()),
            arm,
            body: body.clone(),
            peer_id: None,
            peer_addr: None,
            group: None,
            node: None,
        }
    }
}

/// The arm names of the extractor categories, read once from the schema.
fn category_arms(category: EventCategory) -> &'static [String] {
    static LOG: LazyLock<Vec<String>> = LazyLock::new(|| arm_names(EventCategory::Log));
    static RPC: LazyLock<Vec<String>> = LazyLock::new(|| arm_names(EventCategory::Rpc));
    static P2P: LazyLock<Vec<String>> = LazyLock::new(|| arm_names(EventCategory::P2p));
    static IPC: LazyLock<Vec<String>> = LazyLock::new(|| arm_names(EventCategory::Ipc));
    match category {
        EventCategory::Log => &LOG,
        EventCategory::Rpc => &RPC,
        EventCategory::P2p => &P2P,
        EventCategory::Ipc => &IPC,
        EventCategory::Message
        | EventCategory::Connection
        | EventCategory::Mempool
        | EventCategory::Validation
        | EventCategory::Utxocache => &[],
    }
}

/// Sets each event's group from the address our peer connected from (`addr_groups`).
///
/// Events that name only the node's peer id (misbehaving) take the address the latest
/// earlier event gave that id, in stream order: ids start again from 0 when the node
/// restarts, so one id may belong to two peers of a run. Ids are per node: in a topology
/// the same id on two nodes is two peers.
pub fn assign_groups(observed: &mut [Observed], addr_groups: &HashMap<String, String>) {
    let mut addr_of: HashMap<(Option<String>, u64), String> = HashMap::new();
    for event in observed.iter_mut() {
        if let (Some(id), Some(addr)) = (event.peer_id, &event.peer_addr) {
            addr_of.insert((event.node.clone(), id), addr.clone());
        }
        let addr = event.peer_addr.as_ref().or_else(|| {
            event
                .peer_id
                .and_then(|id| addr_of.get(&(event.node.clone(), id)))
        });
        event.group = addr.and_then(|a| addr_groups.get(a)).cloned();
    }
}

/// How many events satisfy `check` before `deadline_secs` (only `node`'s when given).
pub fn count_matching(
    check: &EventCheck,
    node: Option<&str>,
    deadline_secs: f64,
    observed: &[Observed],
) -> u64 {
    observed
        .iter()
        .filter(|o| o.t_secs <= deadline_secs)
        .filter(|o| node.is_none() || o.node.as_deref() == node)
        .filter(|o| o.category.as_deref() == Some(category_name(check.event.category)))
        .filter(|o| check.event.arm.is_none() || o.arm == check.event.arm)
        .filter(|o| match &check.group {
            None => true,
            Some(group) => o.group.as_ref() == Some(group),
        })
        .filter(|o| {
            check.filters.iter().all(|(path, filter)| {
                let in_arm = o
                    .arm
                    .as_ref()
                    .and_then(|a| o.body.get(a))
                    .and_then(|b| at_path(b, path));
                let value = in_arm.or_else(|| at_path(&o.body, path));
                value.is_some_and(|v| holds(v, filter.op, &filter.value))
            })
        })
        .count() as u64
}

/// The category of the alerts the collector's heuristics raise (not an event category of the
/// wire format).
pub const ALERT_CATEGORY: &str = "alert";

impl Observed {
    /// An alert raised at `t_secs`: its kind is the arm, its peer the alert's.
    pub fn alert(t_secs: f64, alert: &crate::tools::alerts::Alert) -> Observed {
        Observed {
            t_secs,
            category: Some(ALERT_CATEGORY.to_string()),
            arm: Some(alert.kind.name().to_string()),
            body: serde_json::to_value(alert).unwrap_or(Value::Null),
            peer_id: Some(alert.peer_id),
            peer_addr: Some(alert.addr.clone()),
            group: None,
            node: None,
        }
    }
}

/// How many alerts satisfy `check` before `deadline_secs`.
pub fn count_alerts(
    check: &crate::scenario::AlertCheck,
    deadline_secs: f64,
    observed: &[Observed],
) -> u64 {
    observed
        .iter()
        .filter(|o| o.t_secs <= deadline_secs)
        .filter(|o| o.category.as_deref() == Some(ALERT_CATEGORY))
        .filter(|o| check.alert == "*" || o.arm.as_deref() == Some(check.alert.as_str()))
        .filter(|o| check.group.is_none() || o.group == check.group)
        .count() as u64
}

fn category_name(category: EventCategory) -> &'static str {
    category.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::proto::event::event::PeerObserverEvent;
    use crate::event::proto::rpc_extractor::{rpc::RpcEvent, PeerInfo, PeerInfos, Rpc};
    use crate::event::Event;
    use crate::scenario::{Filter, Op, Scalar};

    fn peer(id: u32, address: &str, addr_rate_limited: u64) -> PeerInfo {
        PeerInfo {
            id,
            address: address.into(),
            addr_rate_limited,
            ..PeerInfo::default()
        }
    }

    #[test]
    fn peer_infos_are_one_observation_per_peer_with_its_group() {
        let event = Event {
            timestamp: 1,
            peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
                rpc_event: Some(RpcEvent::PeerInfos(PeerInfos {
                    infos: vec![
                        peer(3, "127.0.0.1:40001", 1950),
                        peer(4, "127.0.0.1:40002", 0),
                    ],
                })),
            })),
        };
        let payload = crate::event::wire::encode(&event);
        let mut observed = Observed::from_payload(1.0, &payload);
        assert_eq!(observed.len(), 2);
        assert_eq!(observed[0].peer_id, Some(3));
        assert_eq!(observed[1].peer_addr.as_deref(), Some("127.0.0.1:40002"));
        let groups = HashMap::from([("127.0.0.1:40001".to_string(), "chatty".to_string())]);
        assign_groups(&mut observed, &groups);

        let check = |group: Option<&str>, at_least: u64| EventCheck {
            event: "rpc.peer_infos".parse().expect("path"),
            group: group.map(str::to_string),
            filters: [(
                "addr_rate_limited".to_string(),
                Filter {
                    op: Op::Ge,
                    value: Scalar::Int(at_least as i64),
                },
            )]
            .into_iter()
            .collect(),
            min: 1,
            max: None,
            deadline_secs: None,
        };
        assert_eq!(
            count_matching(&check(Some("chatty"), 1900), None, 2.0, &observed),
            1
        );
        assert_eq!(count_matching(&check(None, 0), None, 2.0, &observed), 2);
        assert_eq!(count_matching(&check(None, 2000), None, 2.0, &observed), 0);
    }
}
