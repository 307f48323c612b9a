//! The RPC extractor against a real regtest bitcoind and a real nats-server: each `rpc` event
//! carries what the node's RPC returns (checked here against the raw JSON, independently of
//! the extractor's conversion code), every event passes the strict required-field check, a
//! node that is down or refuses the credentials is waited for, and `--disable-<rpc>` holds.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::encode::deserialize;
use bitcoin::hashes::Hash as _;
use bitcoin::hex::FromHex as _;
use bitcoin::{Amount, Transaction, Txid};
use peerlab::bus::{BusMessage, NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::counters::ExtractorCounters;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::rpc_extractor::rpc::RpcEvent;
use peerlab::event::proto::rpc_extractor::FeeEstimateMode;
use peerlab::event::{strict, Event};
use peerlab::extractors::rpc::{RpcConfig, RpcExtractor};
use peerlab::extractors::Extractor as _;
use peerlab::node::{NodeRpc, RegtestConfig, RegtestNode, RpcAuth};
use peerlab::peer::{NetworkMessage, Peer, PeerConfig};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;
use serde_json::{json, Value};

/// The extractor's counter subject with flat subjects.
fn stats_subject() -> String {
    SubjectScheme::Flat.stats_subject(RpcExtractor::COMPONENT)
}

/// A nats-server and a subscriber on `rpc` and the extractor's counter subject.
async fn bus() -> (NatsServer, Subscriber) {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let subscriber = Subscriber::connect(
        &NatsOptions::local(nats.url()),
        SubjectScheme::Flat,
        &["rpc".to_string(), stats_subject()],
    )
    .await
    .expect("subscribe");
    (nats, subscriber)
}

/// The next message, within the timeout.
async fn next_message(subscriber: &mut Subscriber) -> BusMessage {
    tokio::time::timeout(common::TIMEOUT, subscriber.next())
        .await
        .expect("a message within the timeout")
        .expect("subscription open")
}

/// The next `rpc` event's arm; every event on the way is strictly checked, counter snapshots
/// are skipped.
async fn next_rpc(subscriber: &mut Subscriber) -> RpcEvent {
    loop {
        let message = next_message(subscriber).await;
        if message.subject == stats_subject() {
            continue;
        }
        assert_eq!(message.subject, "rpc");
        strict::check_event(&message.payload)
            .expect("every published event passes the strict required-field check");
        let event = Event::decode(message.payload.as_ref()).expect("decodes");
        let Some(PeerObserverEvent::RpcExtractor(rpc)) = event.peer_observer_event else {
            panic!("not an rpc event: {event:?}");
        };
        return rpc.rpc_event.expect("an arm");
    }
}

fn arm_name(arm: &RpcEvent) -> &'static str {
    match arm {
        RpcEvent::PeerInfos(_) => "peer_infos",
        RpcEvent::MempoolInfo(_) => "mempool_info",
        RpcEvent::Uptime(_) => "uptime",
        RpcEvent::NetTotals(_) => "net_totals",
        RpcEvent::MemoryInfo(_) => "memory_info",
        RpcEvent::AddrmanInfo(_) => "addrman_info",
        RpcEvent::ChainTxStats(_) => "chain_tx_stats",
        RpcEvent::NetworkInfo(_) => "network_info",
        RpcEvent::BlockchainInfo(_) => "blockchain_info",
        RpcEvent::OrphanTxs(_) => "orphan_txs",
        RpcEvent::Addrman(_) => "addrman",
        RpcEvent::EstimateSmartFee(_) => "estimate_smart_fee",
    }
}

/// The arms of the first frequent tick, then of the first less-frequent tick, in call order.
const FIRST_TICKS: [&str; 17] = [
    "peer_infos",
    "mempool_info",
    "uptime",
    "net_totals",
    "memory_info",
    "addrman_info",
    "network_info",
    "orphan_txs",
    "estimate_smart_fee",
    "estimate_smart_fee",
    "estimate_smart_fee",
    "estimate_smart_fee",
    "estimate_smart_fee",
    "estimate_smart_fee",
    "chain_tx_stats",
    "blockchain_info",
    "addrman",
];

/// The node's reply to `method`, called by the test itself.
fn call(node: &RegtestNode, method: &str, params: &[Value]) -> Value {
    tokio::task::block_in_place(|| node.rpc(method, params))
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// BTC/kvB -> sat/vB as the spec states it: whole sat/kvB, floored to sat/kwu, / 250.
fn sat_per_vb(btc_per_kvb: f64) -> f64 {
    ((btc_per_kvb * 1e8).round() as u64 / 4) as f64 / 250.0
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn b(v: &Value) -> bool {
    v.as_bool().unwrap_or_else(|| panic!("not a bool: {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| s(x).to_string()).collect())
        .unwrap_or_default()
}

/// A regtest node with blocks, three mempool transactions, two addrman entries, one inbound
/// peer (kept open by the caller) and three orphans that peer announced.
async fn busy_node() -> (RegtestNode, Peer, Vec<Transaction>) {
    let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
    tokio::task::block_in_place(|| -> Result<(), peerlab::node::NodeError> {
        node.mine(104)?;
        for height in 1..=3 {
            let coin = node.coinbase_coin(height)?;
            let tx = node.spend(&coin, Amount::from_sat(1_000 + height * 100), false)?;
            node.send(&tx)?;
        }
        Ok(())
    })
    .expect("mine and spend");
    call(&node, "addpeeraddress", &[json!("1.2.3.4"), json!(8333)]);
    call(
        &node,
        "addpeeraddress",
        &[json!("5.6.7.8"), json!(8333), json!(true)],
    );

    let mut peer = Peer::connect(SocketAddr::V4(node.p2p_addr()), PeerConfig::default())
        .await
        .expect("TCP connect");
    peer.handshake().await.expect("handshake");
    let orphans = peerlab::attack::chain::orphan_transactions(3, 7);
    assert_eq!(orphans.len(), 3);
    for tx in &orphans {
        peer.send(NetworkMessage::Tx(tx.clone()))
            .await
            .expect("send orphan");
    }
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let held = call(&node, "getorphantxs", &[]);
        if held.as_array().map_or(0, Vec::len) == orphans.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node did not keep the orphans: {held}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (node, peer, orphans)
}

/// Config for the extractor on `node`: long periods, so only the first ticks run while the
/// test compares.
fn config_for(node: &RegtestNode) -> RpcConfig {
    RpcConfig {
        query_interval: Duration::from_secs(600),
        query_interval_less_frequent: Duration::from_secs(600),
        ..RpcConfig::new(
            format!("http://{}", node.rpc_addr()),
            RpcAuth::Cookie(node.cookie_file().to_path_buf()),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_event_equals_what_the_node_returns_right_after() {
    let (nats, mut subscriber) = bus().await;
    let (node, peer, orphans) = busy_node().await;
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor =
        RpcExtractor::start(config_for(&node), publisher.clone(), Shutdown::new()).expect("starts");

    let mut arms = Vec::new();
    for _ in 0..FIRST_TICKS.len() {
        arms.push(next_rpc(&mut subscriber).await);
    }
    let order: Vec<&str> = arms.iter().map(arm_name).collect();
    assert_eq!(
        order, FIRST_TICKS,
        "both timers tick at start, calls in spec order"
    );

    let mut estimates = Vec::new();
    for arm in &arms {
        match arm {
            RpcEvent::PeerInfos(p) => {
                let json = call(&node, "getpeerinfo", &[]);
                let peers = json.as_array().expect("array");
                assert_eq!(p.infos.len(), 1, "our one peer");
                assert_eq!(peers.len(), 1);
                let (e, j) = (&p.infos[0], &peers[0]);
                assert_eq!(e.id as u64, u(&j["id"]));
                assert_eq!(e.address, s(&j["addr"]));
                assert_eq!(e.address, peer.local_addr().to_string());
                assert_eq!(e.address_bind, s(&j["addrbind"]));
                assert_eq!(e.address_local, j["addrlocal"].as_str().unwrap_or(""));
                assert_eq!(e.network, s(&j["network"]));
                assert_eq!(e.mapped_as as u64, j["mapped_as"].as_u64().unwrap_or(0));
                assert_eq!(e.services, s(&j["services"]), "the hex string");
                assert_eq!(e.relay_transactions, b(&j["relaytxes"]));
                assert_eq!(e.last_transaction, i(&j["last_transaction"]));
                assert_eq!(e.last_block, i(&j["last_block"]));
                assert_eq!(e.connection_time, i(&j["conntime"]));
                assert_eq!(e.time_offset, i(&j["timeoffset"]));
                assert_eq!(e.version as u64, u(&j["version"]));
                assert_eq!(e.subversion, s(&j["subver"]));
                assert_eq!(e.inbound, b(&j["inbound"]));
                assert_eq!(e.bip152_hb_to, b(&j["bip152_hb_to"]));
                assert_eq!(e.bip152_hb_from, b(&j["bip152_hb_from"]));
                assert_eq!(e.starting_height, j["startingheight"].as_i64().unwrap_or(0));
                assert_eq!(e.synced_headers, i(&j["synced_headers"]));
                assert_eq!(e.synced_blocks, i(&j["synced_blocks"]));
                let inflight: Vec<u64> = j["inflight"].as_array().unwrap().iter().map(u).collect();
                assert_eq!(e.inflight, inflight);
                assert_eq!(e.addr_relay_enabled, b(&j["addr_relay_enabled"]));
                assert_eq!(e.permissions, strings(&j["permissions"]));
                assert_eq!(e.minfeefilter, f(&j["minfeefilter"]), "BTC/kvB as given");
                assert_eq!(e.connection_type, s(&j["connection_type"]));
                assert_eq!(e.transport_protocol_type, s(&j["transport_protocol_type"]));
                assert_eq!(e.inv_to_send, j["inv_to_send"].as_u64().unwrap_or(0));
                assert_eq!(e.cpu_load, 0.0, "Knots only");
                // Traffic and pings move between the two calls: counters only grow, and the
                // ping fields (seconds) are what Core reports or at most what it reports now.
                assert!(e.bytes_sent <= u(&j["bytessent"]));
                assert!(e.bytes_received <= u(&j["bytesrecv"]));
                assert!(e.last_send <= i(&j["lastsend"]));
                assert!(e.last_received <= i(&j["lastrecv"]));
                assert!(e.addr_processed <= u(&j["addr_processed"]));
                assert!(e.addr_rate_limited <= u(&j["addr_rate_limited"]));
                assert!(e.ping_time <= j["pingtime"].as_f64().unwrap_or(0.0) + 1.0);
                assert!(e.minimum_ping <= j["minping"].as_f64().unwrap_or(f64::MAX));
                assert!(e.ping_wait <= j["pingwait"].as_f64().unwrap_or(0.0));
                for (field, map) in [
                    ("bytessent_per_msg", &e.bytes_sent_per_message),
                    ("bytesrecv_per_msg", &e.bytes_received_per_message),
                ] {
                    let now = j[field].as_object().expect(field);
                    assert!(!map.is_empty(), "{field}");
                    for (message, bytes) in map {
                        assert!(*bytes <= u(&now[message]), "{field}.{message}");
                    }
                }
            }
            RpcEvent::MempoolInfo(e) => {
                let j = call(&node, "getmempoolinfo", &[]);
                assert_eq!(e.size, 3, "the three spends");
                assert_eq!(e.loaded, b(&j["loaded"]));
                assert_eq!(e.size, i(&j["size"]));
                assert_eq!(e.bytes, i(&j["bytes"]));
                assert_eq!(e.usage, i(&j["usage"]));
                assert_eq!(e.total_fee, f(&j["total_fee"]), "BTC as given");
                assert_eq!(e.max_mempool, i(&j["maxmempool"]));
                assert_eq!(e.mempoolminfee, sat_per_vb(f(&j["mempoolminfee"])));
                assert_eq!(e.minrelaytxfee, sat_per_vb(f(&j["minrelaytxfee"])));
                assert_eq!(
                    e.incrementalrelayfee,
                    sat_per_vb(f(&j["incrementalrelayfee"]))
                );
                assert!(e.minrelaytxfee > 0.0, "converted, not defaulted");
                assert_eq!(e.unbroadcastcount, i(&j["unbroadcastcount"]));
                assert_eq!(e.fullrbf, j["fullrbf"].as_bool().unwrap_or(false));
            }
            RpcEvent::Uptime(e) => {
                // Seconds since start: the test's call comes at most a few seconds later.
                let now = u(&call(&node, "uptime", &[]));
                assert!((*e as u64) <= now && now <= *e as u64 + 30, "{e} vs {now}");
            }
            RpcEvent::NetTotals(e) => {
                let j = call(&node, "getnettotals", &[]);
                // Running byte totals only grow; the clock moves by the seconds in between.
                assert!(e.total_bytes_received <= u(&j["totalbytesrecv"]));
                assert!(e.total_bytes_sent <= u(&j["totalbytessent"]));
                assert!(e.total_bytes_received > 0, "our peer's traffic");
                let now = u(&j["timemillis"]);
                assert!(e.time_millis <= now && now <= e.time_millis + 30_000);
                let (t, jt) = (&e.upload_target, &j["uploadtarget"]);
                assert_eq!(t.timeframe, u(&jt["timeframe"]));
                assert_eq!(t.target, u(&jt["target"]));
                assert_eq!(t.target_reached, b(&jt["target_reached"]));
                assert_eq!(t.serve_historical_blocks, b(&jt["serve_historical_blocks"]));
                assert_eq!(t.bytes_left_in_cycle, u(&jt["bytes_left_in_cycle"]));
                assert_eq!(t.time_left_in_cycle, u(&jt["time_left_in_cycle"]));
            }
            RpcEvent::MemoryInfo(e) => {
                let j = &call(&node, "getmemoryinfo", &[json!("stats")])["locked"];
                assert_eq!(e.used, u(&j["used"]));
                assert_eq!(e.free, u(&j["free"]));
                assert_eq!(e.total, u(&j["total"]));
                assert_eq!(e.locked, u(&j["locked"]));
                assert_eq!(e.chunks_used, u(&j["chunks_used"]));
                assert_eq!(e.chunks_free, u(&j["chunks_free"]));
            }
            RpcEvent::AddrmanInfo(e) => {
                let j = call(&node, "getaddrmaninfo", &[]);
                let networks = j.as_object().expect("object");
                assert_eq!(e.networks.len(), networks.len());
                for (name, counts) in networks {
                    let got = &e.networks[name];
                    assert_eq!(got.new, u(&counts["new"]), "{name}");
                    assert_eq!(got.tried, u(&counts["tried"]), "{name}");
                    assert_eq!(got.total, u(&counts["total"]), "{name}");
                }
                assert_eq!(e.networks["all_networks"].total, 2, "the two addresses");
            }
            RpcEvent::NetworkInfo(e) => {
                let j = call(&node, "getnetworkinfo", &[]);
                assert_eq!(e.version as i64, i(&j["version"]));
                assert_eq!(e.subversion, s(&j["subversion"]));
                assert_eq!(e.protocol_version as i64, i(&j["protocolversion"]));
                assert_eq!(e.local_services, s(&j["localservices"]));
                assert_eq!(e.local_services_names, strings(&j["localservicesnames"]));
                assert_eq!(e.local_relay, b(&j["localrelay"]));
                assert_eq!(e.time_offset as i64, i(&j["timeoffset"]));
                assert_eq!(e.connections as u64, u(&j["connections"]));
                assert_eq!(e.connections_in as u64, u(&j["connections_in"]));
                assert_eq!(e.connections_out as u64, u(&j["connections_out"]));
                assert_eq!(e.connections_in, 1, "our peer");
                assert_eq!(e.network_active, b(&j["networkactive"]));
                let networks = j["networks"].as_array().expect("networks");
                assert_eq!(e.networks.len(), networks.len());
                for (got, want) in e.networks.iter().zip(networks) {
                    assert_eq!(got.name, s(&want["name"]));
                    assert_eq!(got.limited, b(&want["limited"]));
                    assert_eq!(got.reachable, b(&want["reachable"]));
                    assert_eq!(got.proxy, s(&want["proxy"]));
                    assert_eq!(
                        got.proxy_randomize_credentials,
                        b(&want["proxy_randomize_credentials"])
                    );
                }
                assert_eq!(e.relay_fee, sat_per_vb(f(&j["relayfee"])), "sat/vB");
                assert_eq!(e.incremental_fee, sat_per_vb(f(&j["incrementalfee"])));
                let local = j["localaddresses"].as_array().expect("localaddresses");
                assert_eq!(e.local_addresses.len(), local.len());
                assert_eq!(e.warnings, strings(&j["warnings"]));
            }
            RpcEvent::OrphanTxs(e) => {
                let j = call(&node, "getorphantxs", &[json!(2)]);
                let listed = j.as_array().expect("array");
                assert_eq!(e.orphans.len(), orphans.len());
                assert_eq!(listed.len(), orphans.len());
                for want in listed {
                    let got = e
                        .orphans
                        .iter()
                        .find(|o| o.txid == s(&want["txid"]))
                        .unwrap_or_else(|| panic!("orphan {} missing", want["txid"]));
                    assert_eq!(got.wtxid, s(&want["wtxid"]));
                    assert_eq!(got.bytes, u(&want["bytes"]));
                    assert_eq!(got.vsize, u(&want["vsize"]));
                    assert_eq!(got.weight, u(&want["weight"]));
                    let from: Vec<u64> = want["from"].as_array().unwrap().iter().map(u).collect();
                    assert_eq!(got.from, from);
                    assert_eq!(got.from, [0], "announced by our peer (id 0)");
                    // The transaction: ids as bytes in internal order, the raw bytes as sent.
                    let raw = Vec::<u8>::from_hex(s(&want["hex"])).expect("hex");
                    let tx: Transaction = deserialize(&raw).expect("tx");
                    assert!(orphans.contains(&tx), "one of the orphans we sent");
                    let txid: Txid = s(&want["txid"]).parse().expect("txid");
                    assert_eq!(got.transaction.txid, txid.to_byte_array().to_vec());
                    assert_eq!(
                        got.transaction.wtxid,
                        tx.compute_wtxid().to_byte_array().to_vec()
                    );
                    assert_eq!(got.transaction.raw.as_deref(), Some(raw.as_slice()));
                }
            }
            RpcEvent::EstimateSmartFee(e) => estimates.push(e.clone()),
            RpcEvent::ChainTxStats(e) => {
                let j = call(&node, "getchaintxstats", &[]);
                assert_eq!(e.time as u64, u(&j["time"]));
                assert_eq!(e.tx_count as u64, u(&j["txcount"]));
                assert_eq!(e.window_final_block_hash, s(&j["window_final_block_hash"]));
                assert_eq!(
                    e.window_final_block_height as u64,
                    u(&j["window_final_block_height"])
                );
                assert_eq!(e.window_final_block_height, 104);
                assert_eq!(e.window_block_count as u64, u(&j["window_block_count"]));
                assert_eq!(
                    e.window_tx_count.map(u64::from),
                    j["window_tx_count"].as_u64()
                );
                assert_eq!(
                    e.window_interval.map(u64::from),
                    j["window_interval"].as_u64()
                );
                assert_eq!(e.tx_rate, j["txrate"].as_f64());
            }
            RpcEvent::BlockchainInfo(e) => {
                let j = call(&node, "getblockchaininfo", &[]);
                assert_eq!(e.chain, s(&j["chain"]));
                assert_eq!(e.blocks as u64, u(&j["blocks"]));
                assert_eq!(e.headers as u64, u(&j["headers"]));
                assert_eq!(e.bestblockhash, s(&j["bestblockhash"]), "display order");
                assert_eq!(e.difficulty, f(&j["difficulty"]));
                assert_eq!(e.time as u64, u(&j["time"]));
                assert_eq!(e.mediantime as u64, u(&j["mediantime"]));
                // Core estimates the progress against the wall clock: it may move a little.
                assert!((e.verificationprogress - f(&j["verificationprogress"])).abs() < 1e-3);
                assert_eq!(e.initialblockdownload, b(&j["initialblockdownload"]));
                assert_eq!(e.chainwork, s(&j["chainwork"]));
                assert_eq!(e.size_on_disk, u(&j["size_on_disk"]));
                assert_eq!(e.pruned, b(&j["pruned"]));
                assert_eq!(
                    e.prune_height as u64,
                    j["pruneheight"].as_u64().unwrap_or(0)
                );
                assert_eq!(
                    e.prune_target_size,
                    j["prune_target_size"].as_u64().unwrap_or(0)
                );
                assert_eq!(e.warnings, strings(&j["warnings"]));
            }
            RpcEvent::Addrman(e) => {
                let j = call(&node, "getrawaddrman", &[]);
                for (table, got) in [("new", &e.new), ("tried", &e.tried)] {
                    let entries = j[table].as_object().expect(table);
                    assert_eq!(entries.len(), 1, "{table}: one address each");
                    let total: usize = got.values().map(|b| b.entries.len()).sum();
                    assert_eq!(total, entries.len(), "{table}");
                    for (key, want) in entries {
                        let (bucket, position) = key.split_once('/').expect("bucket/position");
                        let bucket: u32 = bucket.parse().expect("bucket");
                        let position: u32 = position.parse().expect("position");
                        let entry = &got[&bucket].entries[&position];
                        assert_eq!(entry.address, s(&want["address"]));
                        assert_eq!(entry.port as u64, u(&want["port"]));
                        assert_eq!(entry.network, s(&want["network"]));
                        assert_eq!(entry.services, u(&want["services"]));
                        assert_eq!(entry.time, i(&want["time"]));
                        assert_eq!(entry.source, s(&want["source"]));
                        assert_eq!(entry.source_network, s(&want["source_network"]));
                        assert_eq!(entry.mapped_as.map(u64::from), want["mapped_as"].as_u64());
                        assert_eq!(
                            entry.source_mapped_as.map(u64::from),
                            want["source_mapped_as"].as_u64()
                        );
                    }
                }
            }
        }
    }

    // estimatesmartfee: targets 1, 6, 144 (outer) x economical, conservative (inner).
    let mut asked = Vec::new();
    for target in [1u32, 6, 144] {
        for (mode, enum_value) in [
            ("economical", FeeEstimateMode::Economical),
            ("conservative", FeeEstimateMode::Conservative),
        ] {
            asked.push((target, mode, enum_value));
        }
    }
    assert_eq!(estimates.len(), asked.len());
    for (e, (target, mode, enum_value)) in estimates.iter().zip(asked) {
        let j = call(&node, "estimatesmartfee", &[json!(target), json!(mode)]);
        assert_eq!(e.requested_blocks, target);
        assert_eq!(e.mode, enum_value as i32);
        assert_eq!(e.blocks as u64, u(&j["blocks"]), "{target} {mode}");
        assert_eq!(e.fee_rate, j["feerate"].as_f64().map(sat_per_vb));
        assert_eq!(e.errors, strings(&j["errors"]));
    }

    let counters = extractor.stop().await.expect("stops");
    assert!(counters.rpc_errors.is_empty(), "{:?}", counters.rpc_errors);
    assert_eq!(counters.rpc_connect_errors, 0);
    assert_eq!(counters.published, FIRST_TICKS.len() as u64);
    assert_eq!(counters.publish_dropped, 0);
    assert_eq!(counters.rpc_calls.len(), 12, "{:?}", counters.rpc_calls);
    assert_eq!(counters.rpc_calls["estimatesmartfee"], 6);
    assert_eq!(counters.rpc_calls["getpeerinfo"], 1);
    peer.close().await;
}

/// Kills (SIGKILL) and reaps the bitcoind the test started, also when the test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls the extractor's counters until `accept` holds (bounded).
async fn wait_counters(
    extractor: &RpcExtractor,
    what: &str,
    accept: impl Fn(&ExtractorCounters) -> bool,
) -> ExtractorCounters {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let counters = extractor.counters();
        if accept(&counters) {
            return counters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: counters are {counters:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_the_extractor_is_waited_for_then_polled() {
    let (nats, mut subscriber) = bus().await;
    let datadir = tempfile::tempdir().expect("datadir");
    let rpc_port = peerlab::stack::free_port().expect("port");
    let p2p_port = peerlab::stack::free_port().expect("port");
    // The cookie does not exist yet: bitcoind writes it when it starts.
    let cookie = datadir.path().join("regtest").join(".cookie");
    let config = RpcConfig {
        connect_backoff_max: Duration::from_millis(500),
        query_interval: Duration::from_secs(600),
        query_interval_less_frequent: Duration::from_secs(600),
        ..RpcConfig::new(
            format!("http://127.0.0.1:{rpc_port}"),
            RpcAuth::Cookie(cookie),
        )
    };
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor = RpcExtractor::start(config, publisher, Shutdown::new()).expect("starts");
    let waiting = wait_counters(&extractor, "failed attempts while the node is down", |c| {
        c.rpc_connect_errors >= 2
    })
    .await;
    assert_eq!(waiting.published, 0);

    let bitcoind = Command::new(common::bitcoind())
        .arg(format!("-datadir={}", datadir.path().display()))
        .arg(format!("-rpcport={rpc_port}"))
        .arg(format!("-port={p2p_port}"))
        .args([
            "-regtest",
            "-listen=0",
            "-connect=0",
            "-dnsseed=0",
            "-fixedseeds=0",
            "-printtoconsole=0",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("bitcoind starts");
    let _bitcoind = KillOnDrop(bitcoind);

    // Once it answers, both timers tick. They run independently, so the frequent
    // timer's getpeerinfo and the less frequent one's calls may arrive in either order.
    let mut peers = None;
    let mut blockchain = None;
    while peers.is_none() || blockchain.is_none() {
        match next_rpc(&mut subscriber).await {
            RpcEvent::PeerInfos(infos) if peers.is_none() => peers = Some(infos),
            RpcEvent::BlockchainInfo(info) if blockchain.is_none() => blockchain = Some(info),
            _ => {}
        }
    }
    let (Some(peers), Some(blockchain)) = (peers, blockchain) else {
        unreachable!("the loop ends when both arrived")
    };
    assert!(peers.infos.is_empty(), "nobody connects to this node");
    assert_eq!(blockchain.chain, "regtest");
    assert_eq!(blockchain.blocks, 0);

    let counters = extractor.stop().await.expect("stops");
    assert!(counters.rpc_connect_errors >= 2);
    assert_eq!(counters.rpc_calls["getpeerinfo"], 1);
    assert!(counters.rpc_errors.is_empty(), "{:?}", counters.rpc_errors);
}

/// Runs `peerlab extract rpc` with `args` against the NATS server at `nats`; returns its
/// stderr once it exited (bounded), asserting a clean exit.
async fn run_binary(nats: &str, args: &[&str]) -> String {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["extract", "rpc", "-a", nats, "--log", "info"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("peerlab runs");
    let output = tokio::time::timeout(common::TIMEOUT, child.wait_with_output())
        .await
        .expect("exits after --duration")
        .expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The counter snapshots on the bus until one satisfies `accept`; returns that one.
async fn snapshot_where(
    subscriber: &mut Subscriber,
    mut each: impl FnMut(&ExtractorCounters),
    accept: impl Fn(&ExtractorCounters) -> bool,
) -> ExtractorCounters {
    loop {
        let message = next_message(subscriber).await;
        if message.subject != stats_subject() {
            continue;
        }
        let counters = ExtractorCounters::from_json(&message.payload).expect("a snapshot");
        each(&counters);
        if accept(&counters) {
            return counters;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_rpc_password_is_retried_counted_and_logged_without_the_password() {
    let (nats, mut subscriber) = bus().await;
    let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
    let dir = tempfile::tempdir().expect("dir");
    let password = "not-the-node-s3cret-pw";
    let password_file = dir.path().join("rpc-password");
    std::fs::write(&password_file, format!("{password}\n")).expect("write");
    let host = node.rpc_addr().to_string();
    let stderr = run_binary(
        &nats.url(),
        &[
            "--rpc-host",
            &host,
            "--rpc-user",
            "peerlab",
            "--rpc-password-file",
            password_file.to_str().expect("utf-8 path"),
            "--stats-interval",
            "1",
            "--duration",
            "3",
        ],
    )
    .await;
    assert!(
        stderr.contains("waiting for the node's RPC server"),
        "each failed attempt is logged: {stderr}"
    );
    assert!(!stderr.contains(password), "the password leaked: {stderr}");
    // The final snapshot (published at stop) counts every refused attempt and nothing else.
    let last = snapshot_where(&mut subscriber, |_| {}, |c| c.rpc_connect_errors >= 2).await;
    assert_eq!(last.published, 0);
    assert!(last.rpc_calls.is_empty());
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_rpc_is_never_called_by_the_binary() {
    let (nats, mut subscriber) = bus().await;
    let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
    let host = node.rpc_addr().to_string();
    let cookie = node.cookie_file().to_str().expect("utf-8 path").to_string();
    let url = nats.url();
    let args = [
        "--rpc-host",
        &host,
        "--rpc-cookie-file",
        &cookie,
        "--disable-getpeerinfo",
        "--query-interval",
        "1",
        "--duration",
        "4",
    ];
    let binary = run_binary(&url, &args);
    let events = async {
        // getpeerinfo comes first in every frequent tick, so had it been called, its event
        // would precede each tick's mempool_info. Two ticks seen, none had it.
        let mut mempool_infos = 0;
        while mempool_infos < 2 {
            let arm = next_rpc(&mut subscriber).await;
            assert_ne!(arm_name(&arm), "peer_infos", "getpeerinfo was disabled");
            if matches!(arm, RpcEvent::MempoolInfo(_)) {
                mempool_infos += 1;
            }
        }
        subscriber
    };
    let (_, mut subscriber) = tokio::join!(binary, events);
    let last = snapshot_where(
        &mut subscriber,
        |c| assert!(!c.rpc_calls.contains_key("getpeerinfo"), "{c:?}"),
        |c| c.rpc_calls.get("getmempoolinfo").copied().unwrap_or(0) >= 2,
    )
    .await;
    assert!(last.rpc_errors.is_empty(), "{:?}", last.rpc_errors);
    let per_method: BTreeMap<_, _> = last.rpc_calls.clone();
    assert_eq!(per_method.len(), 11, "the other eleven ran: {per_method:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_counted_and_the_rest_of_the_tick_still_runs() {
    let (nats, mut subscriber) = bus().await;
    // The node refuses getmemoryinfo and estimatesmartfee to the cookie user (HTTP 403): real
    // RPC errors for two calls of the frequent tick, one in its middle, one at its end.
    let allowed = [
        "getblockchaininfo",
        "getpeerinfo",
        "getmempoolinfo",
        "uptime",
        "getnettotals",
        "getaddrmaninfo",
        "getnetworkinfo",
        "getorphantxs",
        "getchaintxstats",
        "getrawaddrman",
    ];
    let mut config = RegtestConfig::new(common::bitcoind());
    config
        .extra_args
        .push(format!("-rpcwhitelist=__cookie__:{}", allowed.join(",")));
    let node = RegtestNode::start(&config).expect("node");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor =
        RpcExtractor::start(config_for(&node), publisher, Shutdown::new()).expect("starts");

    let expected: Vec<&str> = FIRST_TICKS
        .iter()
        .copied()
        .filter(|arm| *arm != "memory_info" && *arm != "estimate_smart_fee")
        .collect();
    let mut order = Vec::new();
    for _ in 0..expected.len() {
        order.push(arm_name(&next_rpc(&mut subscriber).await));
    }
    assert_eq!(order, expected, "the calls after a refused one still ran");

    let counters = wait_counters(&extractor, "the two refused calls counted", |c| {
        c.rpc_errors.values().sum::<u64>() == 2
    })
    .await;
    assert_eq!(counters.rpc_errors["getmemoryinfo"], 1);
    assert_eq!(
        counters.rpc_errors["estimatesmartfee"], 1,
        "the rest of the six aborted"
    );
    assert!(!counters.rpc_calls.contains_key("getmemoryinfo"));
    assert!(!counters.rpc_calls.contains_key("estimatesmartfee"));
    assert_eq!(counters.rpc_calls["getorphantxs"], 1);
    assert_eq!(
        counters.rpc_connect_errors, 0,
        "no reconnect: other calls answered"
    );
    let last = extractor.stop().await.expect("stops");
    assert_eq!(last.published, expected.len() as u64);
}
