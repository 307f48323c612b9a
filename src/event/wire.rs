//! The bytes of an `event.Event`: prost's encoding, repaired where proto2 needs it.
//!
//! Everything that encodes an event for the bus or a file (the publisher, the anonymizer,
//! replay with `--retime`) goes through [`encode`], so no path can drop what proto2 needs.
//!
//! prost writes a map entry without its value when the value equals the default. For
//! `AddrManInfo.networks` that happens to every network with no addresses (`{new: 0, tried: 0,
//! total: 0}`, the usual case for onion, i2p and cjdns), and a decoder that checks proto2's
//! required fields (C++, Python; our [`strict`](super::strict) check) then finds
//! `new`, `tried` and `total` missing. So that arm is encoded here with every value written
//! out; every other event is prost's encoding unchanged.
//!
//! The other maps of messages in `rpc_extractor.proto` (`Addrman.new`/`tried` and
//! `AddrmanBucket.entries`) cannot hold a default value: a bucket exists only with an entry,
//! and an entry has a required address and network.
//!
//! Invariant: [`encode`] decodes (with prost) to exactly the event it was given.

use prost::encoding::{bytes, string, uint64};
use prost::Message as _;

use super::proto::event::event::PeerObserverEvent;
use super::proto::rpc_extractor::rpc::RpcEvent;
use super::proto::rpc_extractor::AddrManInfo;
use super::Event;

/// Field numbers from `event.proto` and `rpc_extractor.proto`.
const EVENT_TIMESTAMP: u32 = 10;
const EVENT_RPC_EXTRACTOR: u32 = 2;
const RPC_ADDRMAN_INFO: u32 = 6;
const ADDRMAN_INFO_NETWORKS: u32 = 1;
const MAP_KEY: u32 = 1;
const MAP_VALUE: u32 = 2;

/// The wire bytes of `event` (see the module docs).
pub fn encode(event: &Event) -> Vec<u8> {
    let Some(info) = addrman_info_event(event) else {
        return event.encode_to_vec();
    };
    let mut rpc_bytes = Vec::new();
    bytes::encode(RPC_ADDRMAN_INFO, &addrman_info(info), &mut rpc_bytes);
    let mut out = Vec::new();
    bytes::encode(EVENT_RPC_EXTRACTOR, &rpc_bytes, &mut out);
    uint64::encode(EVENT_TIMESTAMP, &event.timestamp, &mut out);
    out
}

/// [`encode`], appended to `buf` (the eBPF extractor writes every event into one arena).
pub fn encode_into(event: &Event, buf: &mut impl ::bytes::BufMut) {
    match addrman_info_event(event) {
        Some(_) => buf.put_slice(&encode(event)),
        // prost's own encoding cannot fail for lack of room: a BufMut grows as needed.
        None => {
            let _ = event.encode(buf);
        }
    }
}

fn addrman_info_event(event: &Event) -> Option<&AddrManInfo> {
    let Some(PeerObserverEvent::RpcExtractor(rpc)) = &event.peer_observer_event else {
        return None;
    };
    match &rpc.rpc_event {
        Some(RpcEvent::AddrmanInfo(info)) => Some(info),
        _ => None,
    }
}

/// `AddrManInfo` with every map entry's value written, zeros included.
fn addrman_info(info: &AddrManInfo) -> Vec<u8> {
    let mut out = Vec::new();
    // Sorted by name, so equal events encode to equal bytes.
    let mut networks: Vec<_> = info.networks.iter().collect();
    networks.sort_by(|a, b| a.0.cmp(b.0));
    for (name, counts) in networks {
        let mut entry = Vec::new();
        string::encode(MAP_KEY, name, &mut entry);
        // Required scalars are always written by prost, zeros included.
        bytes::encode(MAP_VALUE, &counts.encode_to_vec(), &mut entry);
        bytes::encode(ADDRMAN_INFO_NETWORKS, &entry, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::proto::rpc_extractor::{AddrManInfoNetwork, Rpc};
    use crate::event::strict;

    fn rpc_event(arm: RpcEvent) -> Event {
        Event {
            timestamp: 1_700_000_000_000,
            peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
                rpc_event: Some(arm),
            })),
        }
    }

    fn info(counts: &[(&str, u64)]) -> Event {
        rpc_event(RpcEvent::AddrmanInfo(AddrManInfo {
            networks: counts
                .iter()
                .map(|(name, n)| {
                    let value = AddrManInfoNetwork {
                        new: *n,
                        tried: 0,
                        total: *n,
                    };
                    (name.to_string(), value)
                })
                .collect(),
        }))
    }

    #[test]
    fn empty_networks_keep_their_required_zeros_on_the_wire() {
        let event = info(&[("ipv4", 2), ("onion", 0), ("i2p", 0), ("all_networks", 2)]);
        // prost alone drops the all-zero values: the strict check catches it.
        assert!(strict::check_event(&event.encode_to_vec()).is_err());
        let bytes = encode(&event);
        strict::check_event(&bytes).expect("every required field is on the wire");
        assert_eq!(Event::decode(bytes.as_slice()).unwrap(), event);
        assert_eq!(crate::event::peek_timestamp(&bytes), Some(event.timestamp));
    }

    #[test]
    fn other_events_are_prosts_encoding() {
        let event = rpc_event(RpcEvent::Uptime(0));
        assert_eq!(encode(&event), event.encode_to_vec());
        let empty = info(&[]);
        assert_eq!(Event::decode(encode(&empty).as_slice()).unwrap(), empty);
        strict::check_event(&encode(&empty)).expect("strict");
    }
}
