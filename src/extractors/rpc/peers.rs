//! `getpeerinfo` -> `rpc_extractor.PeerInfos` (extractors.md §2.3), pure.
//!
//! Invariants (on top of [`super::convert`]'s):
//! - `services` stays Core's hex string, `minfeefilter` stays BTC/kvB, and `pingtime`,
//!   `minping` and `pingwait` stay in seconds, as upstream copies them (the proto comment
//!   saying ms is wrong);
//! - fields Core omits for some peers or versions (`addrbind`, `addrlocal`, `mapped_as`, the
//!   pings, `startingheight` (gone in Core 31), `synced_*`, `inflight`, the addr-relay
//!   fields, `connection_type`, `inv_to_send`, Knots' `cpu_load`) are 0, `""`, false or `[]`
//!   when absent; every other field is required.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::convert::{parse, ConvertError};
use crate::event::proto::rpc_extractor as proto;

#[derive(Deserialize)]
struct PeerJson {
    id: u32,
    addr: String,
    #[serde(default)]
    addrbind: String,
    #[serde(default)]
    addrlocal: String,
    network: String,
    #[serde(default)]
    mapped_as: u32,
    services: String,
    relaytxes: bool,
    lastsend: i64,
    lastrecv: i64,
    last_transaction: i64,
    last_block: i64,
    bytessent: u64,
    bytesrecv: u64,
    conntime: i64,
    timeoffset: i64,
    #[serde(default)]
    pingtime: f64,
    #[serde(default)]
    minping: f64,
    #[serde(default)]
    pingwait: f64,
    version: u32,
    subver: String,
    inbound: bool,
    bip152_hb_to: bool,
    bip152_hb_from: bool,
    #[serde(default)]
    startingheight: i64,
    #[serde(default)]
    synced_headers: i64,
    #[serde(default)]
    synced_blocks: i64,
    #[serde(default)]
    inflight: Vec<u64>,
    #[serde(default)]
    addr_relay_enabled: bool,
    #[serde(default)]
    addr_processed: u64,
    #[serde(default)]
    addr_rate_limited: u64,
    permissions: Vec<String>,
    minfeefilter: f64,
    bytessent_per_msg: HashMap<String, u64>,
    bytesrecv_per_msg: HashMap<String, u64>,
    #[serde(default)]
    connection_type: String,
    transport_protocol_type: String,
    #[serde(default)]
    inv_to_send: u64,
    #[serde(default)]
    cpu_load: f64,
}

/// `getpeerinfo`: one `PeerInfo` per peer, in Core's order.
pub fn peer_infos(json: Value) -> Result<proto::PeerInfos, ConvertError> {
    let peers: Vec<PeerJson> = parse(json)?;
    Ok(proto::PeerInfos {
        infos: peers.into_iter().map(peer_info).collect(),
    })
}

fn peer_info(p: PeerJson) -> proto::PeerInfo {
    proto::PeerInfo {
        id: p.id,
        address: p.addr,
        address_bind: p.addrbind,
        address_local: p.addrlocal,
        network: p.network,
        mapped_as: p.mapped_as,
        services: p.services,
        relay_transactions: p.relaytxes,
        last_send: p.lastsend,
        last_received: p.lastrecv,
        last_transaction: p.last_transaction,
        last_block: p.last_block,
        bytes_sent: p.bytessent,
        bytes_received: p.bytesrecv,
        connection_time: p.conntime,
        time_offset: p.timeoffset,
        ping_time: p.pingtime,
        minimum_ping: p.minping,
        ping_wait: p.pingwait,
        version: p.version,
        subversion: p.subver,
        inbound: p.inbound,
        bip152_hb_to: p.bip152_hb_to,
        bip152_hb_from: p.bip152_hb_from,
        starting_height: p.startingheight,
        synced_headers: p.synced_headers,
        synced_blocks: p.synced_blocks,
        inflight: p.inflight,
        addr_relay_enabled: p.addr_relay_enabled,
        addr_processed: p.addr_processed,
        addr_rate_limited: p.addr_rate_limited,
        permissions: p.permissions,
        minfeefilter: p.minfeefilter,
        bytes_sent_per_message: p.bytessent_per_msg,
        bytes_received_per_message: p.bytesrecv_per_msg,
        connection_type: p.connection_type,
        transport_protocol_type: p.transport_protocol_type,
        inv_to_send: p.inv_to_send,
        cpu_load: p.cpu_load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An inbound v2 peer as Core 31 returns it (no `startingheight`, no `addrlocal`, no
    /// `mapped_as`, no `pingwait`).
    fn core31_peer() -> Value {
        json!({
            "id": 0, "addr": "127.0.0.1:36774", "addrbind": "127.0.0.1:28556",
            "network": "not_publicly_routable", "services": "0000000000000c09",
            "servicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"],
            "relaytxes": true, "last_inv_sequence": 1, "inv_to_send": 3,
            "lastsend": 1795961325, "lastrecv": 1795961326, "last_transaction": 0,
            "last_block": 0, "bytessent": 4480, "bytesrecv": 1534, "conntime": 1795961325,
            "timeoffset": -1, "pingtime": 0.000173899, "minping": 0.000173899,
            "version": 70017, "subver": "/Satoshi:31.99.0/", "inbound": true,
            "bip152_hb_to": false, "bip152_hb_from": true, "presynced_headers": -1,
            "synced_headers": -1, "synced_blocks": -1, "inflight": [],
            "addr_relay_enabled": true, "addr_processed": 2, "addr_rate_limited": 1,
            "permissions": ["noban"], "minfeefilter": 0.09936506,
            "bytessent_per_msg": {"feefilter": 29, "version": 136},
            "bytesrecv_per_msg": {"getaddr": 33},
            "connection_type": "inbound", "transport_protocol_type": "v2",
            "session_id": "14ed66919bbca2e47b2728fa74f9b5772d0494e47fe5e65152723d06afeff402"
        })
    }

    #[test]
    fn every_field_is_copied_with_its_unit_and_absent_ones_default() {
        let infos = peer_infos(json!([core31_peer()])).unwrap().infos;
        let p = &infos[0];
        assert_eq!(p.id, 0);
        assert_eq!(p.address, "127.0.0.1:36774");
        assert_eq!(p.address_bind, "127.0.0.1:28556");
        assert_eq!(p.address_local, "", "absent");
        assert_eq!(p.network, "not_publicly_routable");
        assert_eq!(p.mapped_as, 0, "absent");
        assert_eq!(p.services, "0000000000000c09", "the hex string as given");
        assert!(p.relay_transactions);
        assert_eq!((p.last_send, p.last_received), (1795961325, 1795961326));
        assert_eq!((p.last_transaction, p.last_block), (0, 0));
        assert_eq!((p.bytes_sent, p.bytes_received), (4480, 1534));
        assert_eq!(p.connection_time, 1795961325);
        assert_eq!(p.time_offset, -1);
        assert_eq!(p.ping_time, 0.000173899, "seconds, as given");
        assert_eq!(p.minimum_ping, 0.000173899);
        assert_eq!(p.ping_wait, 0.0, "absent");
        assert_eq!(p.version, 70017);
        assert_eq!(p.subversion, "/Satoshi:31.99.0/");
        assert!(p.inbound && !p.bip152_hb_to && p.bip152_hb_from);
        assert_eq!(p.starting_height, 0, "gone in Core 31");
        assert_eq!((p.synced_headers, p.synced_blocks), (-1, -1));
        assert!(p.inflight.is_empty());
        assert!(p.addr_relay_enabled);
        assert_eq!((p.addr_processed, p.addr_rate_limited), (2, 1));
        assert_eq!(p.permissions, ["noban"]);
        assert_eq!(p.minfeefilter, 0.09936506, "BTC/kvB, as given");
        assert_eq!(p.bytes_sent_per_message["version"], 136);
        assert_eq!(p.bytes_received_per_message.len(), 1);
        assert_eq!(p.connection_type, "inbound");
        assert_eq!(p.transport_protocol_type, "v2");
        assert_eq!(p.inv_to_send, 3);
        assert_eq!(p.cpu_load, 0.0, "Knots only");
    }

    #[test]
    fn optional_fields_are_taken_when_present() {
        let mut peer = core31_peer();
        let o = peer.as_object_mut().unwrap();
        o.insert("addrlocal".into(), json!("1.2.3.4:8333"));
        o.insert("mapped_as".into(), json!(64496));
        o.insert("pingwait".into(), json!(2.5));
        o.insert("startingheight".into(), json!(840000));
        o.insert("inflight".into(), json!([840001, 840002]));
        o.insert("cpu_load".into(), json!(0.25));
        let p = &peer_infos(json!([peer])).unwrap().infos[0];
        assert_eq!(p.address_local, "1.2.3.4:8333");
        assert_eq!(p.mapped_as, 64496);
        assert_eq!(p.ping_wait, 2.5);
        assert_eq!(p.starting_height, 840000);
        assert_eq!(p.inflight, [840001, 840002]);
        assert_eq!(p.cpu_load, 0.25);
    }

    #[test]
    fn a_malformed_peer_fails_the_whole_call() {
        assert!(peer_infos(json!([])).unwrap().infos.is_empty());
        for (key, value) in [
            ("id", Value::Null),
            ("id", json!(-1)),
            ("services", json!(1033)),
            ("minfeefilter", json!("0.1")),
            ("bytessent_per_msg", json!({"version": -1})),
            ("inflight", json!(["x"])),
        ] {
            let mut peer = core31_peer();
            peer[key] = value;
            assert!(peer_infos(json!([core31_peer(), peer])).is_err(), "{key}");
        }
        let mut missing = core31_peer();
        missing
            .as_object_mut()
            .unwrap()
            .remove("transport_protocol_type");
        let e = peer_infos(json!([missing])).unwrap_err();
        assert!(e.0.contains("transport_protocol_type"), "{e}");
        assert!(peer_infos(json!({"id": 0})).is_err());
    }
}
