//! Core's JSON replies -> `rpc_extractor` protobuf messages (extractors.md §2.3), pure.
//!
//! Each reply is deserialized into a private struct shaped like Core's JSON, then mapped
//! field by field, so a missing or mistyped field is an error that names the field rather than
//! a zero on the bus. Fields the spec gives a default for ("0 if absent") are
//! `#[serde(default)]`; `Option` fields are the proto's `optional` ones.
//!
//! Invariants:
//! - never panics on a reply (no indexing, no `unwrap`): whatever does not convert is a
//!   [`ConvertError`], which the extractor counts as a failed call;
//! - fee rates Core gives in BTC/kvB become sat/vB through an integer sat/kwu rate
//!   ([`sat_per_vb`]), exactly as upstream does, except `minfeefilter` and `total_fee`, which
//!   the spec copies as given;
//! - hashes the spec calls display-order hex strings are checked to be hashes and kept in
//!   display order; `getorphantxs`' `transaction` is built by the P2P decoder's own function
//!   (internal byte order, raw bytes filled).
//!
//! `getpeerinfo` lives in [`super::peers`] (it is a third of the mapping on its own).

use std::collections::{BTreeMap, HashMap};

use bitcoin::consensus::encode::deserialize;
use bitcoin::hex::FromHex as _;
use bitcoin::{Amount, BlockHash, FeeRate, Transaction, Txid, Wtxid};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::event::proto::rpc_extractor as proto;
use crate::event::proto::rpc_extractor::rpc::RpcEvent;

use super::calls::RpcMethod;

/// A reply that does not convert; the message names the field or value and says why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unexpected reply: {0}")]
pub struct ConvertError(pub String);

/// Deserializes a reply into its JSON shape; serde's message names the missing or mistyped
/// field.
pub(super) fn parse<T: DeserializeOwned>(json: Value) -> Result<T, ConvertError> {
    serde_json::from_value(json).map_err(|e| ConvertError(e.to_string()))
}

/// The `rpc_event` arm for the reply of `method` (every method but `estimatesmartfee`, whose
/// six calls each need their target and mode: see [`estimate_smart_fee`]).
pub fn convert(method: RpcMethod, json: Value) -> Result<RpcEvent, ConvertError> {
    Ok(match method {
        RpcMethod::GetPeerInfo => RpcEvent::PeerInfos(super::peers::peer_infos(json)?),
        RpcMethod::GetMempoolInfo => RpcEvent::MempoolInfo(mempool_info(json)?),
        RpcMethod::Uptime => RpcEvent::Uptime(parse(json)?),
        RpcMethod::GetNetTotals => RpcEvent::NetTotals(net_totals(json)?),
        RpcMethod::GetMemoryInfo => RpcEvent::MemoryInfo(memory_info(json)?),
        RpcMethod::GetAddrmanInfo => RpcEvent::AddrmanInfo(addrman_info(json)?),
        RpcMethod::GetChainTxStats => RpcEvent::ChainTxStats(chain_tx_stats(json)?),
        RpcMethod::GetNetworkInfo => RpcEvent::NetworkInfo(network_info(json)?),
        RpcMethod::GetBlockchainInfo => RpcEvent::BlockchainInfo(blockchain_info(json)?),
        RpcMethod::GetOrphanTxs => RpcEvent::OrphanTxs(orphan_txs(json)?),
        RpcMethod::GetRawAddrman => RpcEvent::Addrman(raw_addrman(json)?),
        RpcMethod::EstimateSmartFee => {
            return Err(ConvertError(
                "estimatesmartfee is converted per target and mode".into(),
            ))
        }
    })
}

/// A BTC/kvB fee rate as sat/vB: parsed to whole sat/kvB, floored to an integer sat/kwu rate
/// (rust-bitcoin's `FeeRate`, as upstream), then divided by 250. A negative, non-finite or
/// over-precise value is an error.
pub fn sat_per_vb(btc_per_kvb: f64) -> Result<f64, ConvertError> {
    let per_kvb = Amount::from_btc(btc_per_kvb)
        .map_err(|e| ConvertError(format!("fee rate {btc_per_kvb} BTC/kvB: {e}")))?;
    // 1 vB = 4 weight units, so sat/kvB / 4 = sat/kwu (floored, like upstream's FeeRate).
    let rate = FeeRate::from_sat_per_kwu(per_kvb.to_sat() / 4);
    Ok(rate.to_sat_per_kwu() as f64 / 250.0)
}

/// [`sat_per_vb`] of an optional field: 0 if absent.
fn sat_per_vb_or_zero(btc_per_kvb: Option<f64>) -> Result<f64, ConvertError> {
    btc_per_kvb.map_or(Ok(0.0), sat_per_vb)
}

/// A block hash as display-order hex, checked to be one.
fn block_hash(text: &str, field: &str) -> Result<String, ConvertError> {
    text.parse::<BlockHash>()
        .map(|h| h.to_string())
        .map_err(|e| ConvertError(format!("{field} {text:?} is not a block hash: {e}")))
}

/// Core ≥ 28 returns `warnings` as a list; older versions as one string (empty for none).
#[derive(Deserialize)]
#[serde(untagged)]
enum Warnings {
    List(Vec<String>),
    One(String),
}

impl Warnings {
    fn into_list(self) -> Vec<String> {
        match self {
            Warnings::List(list) => list,
            Warnings::One(text) if text.is_empty() => Vec::new(),
            Warnings::One(text) => vec![text],
        }
    }
}

// ---- getmempoolinfo ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct MempoolInfoJson {
    loaded: bool,
    size: i64,
    bytes: i64,
    usage: i64,
    total_fee: f64,
    maxmempool: i64,
    mempoolminfee: Option<f64>,
    minrelaytxfee: Option<f64>,
    incrementalrelayfee: Option<f64>,
    unbroadcastcount: i64,
    /// Removed in Core 29 (full RBF is always on): false if absent.
    #[serde(default)]
    fullrbf: bool,
}

/// `getmempoolinfo`.
pub fn mempool_info(json: Value) -> Result<proto::MempoolInfo, ConvertError> {
    let j: MempoolInfoJson = parse(json)?;
    Ok(proto::MempoolInfo {
        loaded: j.loaded,
        size: j.size,
        bytes: j.bytes,
        usage: j.usage,
        total_fee: j.total_fee,
        max_mempool: j.maxmempool,
        mempoolminfee: sat_per_vb_or_zero(j.mempoolminfee)?,
        minrelaytxfee: sat_per_vb_or_zero(j.minrelaytxfee)?,
        incrementalrelayfee: sat_per_vb_or_zero(j.incrementalrelayfee)?,
        unbroadcastcount: j.unbroadcastcount,
        fullrbf: j.fullrbf,
    })
}

// ---- getnettotals -----------------------------------------------------------------------------

#[derive(Deserialize)]
struct NetTotalsJson {
    totalbytesrecv: u64,
    totalbytessent: u64,
    timemillis: u64,
    uploadtarget: UploadTargetJson,
}

#[derive(Deserialize)]
struct UploadTargetJson {
    timeframe: u64,
    target: u64,
    target_reached: bool,
    serve_historical_blocks: bool,
    bytes_left_in_cycle: u64,
    time_left_in_cycle: u64,
}

/// `getnettotals`.
pub fn net_totals(json: Value) -> Result<proto::NetTotals, ConvertError> {
    let j: NetTotalsJson = parse(json)?;
    let u = j.uploadtarget;
    Ok(proto::NetTotals {
        total_bytes_received: j.totalbytesrecv,
        total_bytes_sent: j.totalbytessent,
        time_millis: j.timemillis,
        upload_target: proto::UploadTarget {
            timeframe: u.timeframe,
            target: u.target,
            target_reached: u.target_reached,
            serve_historical_blocks: u.serve_historical_blocks,
            bytes_left_in_cycle: u.bytes_left_in_cycle,
            time_left_in_cycle: u.time_left_in_cycle,
        },
    })
}

// ---- getmemoryinfo ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct MemoryInfoJson {
    /// Required: upstream panics without it; here it is an error for the call.
    locked: LockedJson,
}

#[derive(Deserialize)]
struct LockedJson {
    used: u64,
    free: u64,
    total: u64,
    locked: u64,
    chunks_used: u64,
    chunks_free: u64,
}

/// `getmemoryinfo stats`: the `locked` object.
pub fn memory_info(json: Value) -> Result<proto::MemoryInfo, ConvertError> {
    let l = parse::<MemoryInfoJson>(json)?.locked;
    Ok(proto::MemoryInfo {
        used: l.used,
        free: l.free,
        total: l.total,
        locked: l.locked,
        chunks_used: l.chunks_used,
        chunks_free: l.chunks_free,
    })
}

// ---- getaddrmaninfo ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct AddrmanNetworkJson {
    new: u64,
    tried: u64,
    total: u64,
}

/// `getaddrmaninfo`: one map entry per JSON key (`ipv4`, ..., `all_networks`).
pub fn addrman_info(json: Value) -> Result<proto::AddrManInfo, ConvertError> {
    let networks: BTreeMap<String, AddrmanNetworkJson> = parse(json)?;
    Ok(proto::AddrManInfo {
        networks: networks
            .into_iter()
            .map(|(name, n)| {
                let counts = proto::AddrManInfoNetwork {
                    new: n.new,
                    tried: n.tried,
                    total: n.total,
                };
                (name, counts)
            })
            .collect(),
    })
}

// ---- getchaintxstats --------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChainTxStatsJson {
    time: u32,
    txcount: u32,
    window_final_block_hash: String,
    #[serde(default)]
    window_final_block_height: u32,
    window_block_count: u32,
    /// Absent when the window is empty (e.g. at genesis).
    window_tx_count: Option<u32>,
    window_interval: Option<u32>,
    txrate: Option<f64>,
}

/// `getchaintxstats` (default window).
pub fn chain_tx_stats(json: Value) -> Result<proto::ChainTxStats, ConvertError> {
    let j: ChainTxStatsJson = parse(json)?;
    Ok(proto::ChainTxStats {
        time: j.time,
        tx_count: j.txcount,
        window_final_block_hash: block_hash(&j.window_final_block_hash, "window_final_block_hash")?,
        window_final_block_height: j.window_final_block_height,
        window_block_count: j.window_block_count,
        window_tx_count: j.window_tx_count,
        window_interval: j.window_interval,
        tx_rate: j.txrate,
    })
}

// ---- getnetworkinfo ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct NetworkInfoJson {
    version: i32,
    subversion: String,
    protocolversion: i32,
    localservices: String,
    #[serde(default)]
    localservicesnames: Vec<String>,
    localrelay: bool,
    timeoffset: i32,
    connections: u32,
    #[serde(default)]
    connections_in: u32,
    #[serde(default)]
    connections_out: u32,
    networkactive: bool,
    networks: Vec<NetworkJson>,
    relayfee: Option<f64>,
    incrementalfee: Option<f64>,
    localaddresses: Vec<LocalAddressJson>,
    warnings: Warnings,
}

#[derive(Deserialize)]
struct NetworkJson {
    name: String,
    limited: bool,
    reachable: bool,
    proxy: String,
    proxy_randomize_credentials: bool,
}

#[derive(Deserialize)]
struct LocalAddressJson {
    address: String,
    port: u32,
    score: u32,
}

/// `getnetworkinfo`; `relayfee` and `incrementalfee` in sat/vB.
pub fn network_info(json: Value) -> Result<proto::NetworkInfo, ConvertError> {
    let j: NetworkInfoJson = parse(json)?;
    Ok(proto::NetworkInfo {
        version: j.version,
        subversion: j.subversion,
        protocol_version: j.protocolversion,
        local_services: j.localservices,
        local_services_names: j.localservicesnames,
        local_relay: j.localrelay,
        time_offset: j.timeoffset,
        connections: j.connections,
        connections_in: j.connections_in,
        connections_out: j.connections_out,
        network_active: j.networkactive,
        networks: j
            .networks
            .into_iter()
            .map(|n| proto::NetworkInfoNetwork {
                name: n.name,
                limited: n.limited,
                reachable: n.reachable,
                proxy: n.proxy,
                proxy_randomize_credentials: n.proxy_randomize_credentials,
            })
            .collect(),
        relay_fee: sat_per_vb_or_zero(j.relayfee)?,
        incremental_fee: sat_per_vb_or_zero(j.incrementalfee)?,
        local_addresses: j
            .localaddresses
            .into_iter()
            .map(|a| proto::NetworkInfoLocalAddress {
                address: a.address,
                port: a.port,
                score: a.score,
            })
            .collect(),
        warnings: j.warnings.into_list(),
    })
}

// ---- getblockchaininfo ------------------------------------------------------------------------

#[derive(Deserialize)]
struct BlockchainInfoJson {
    chain: String,
    blocks: u32,
    headers: u32,
    bestblockhash: String,
    difficulty: f64,
    #[serde(default)]
    time: u32,
    mediantime: u32,
    verificationprogress: f64,
    initialblockdownload: bool,
    chainwork: String,
    size_on_disk: u64,
    pruned: bool,
    /// Only present when pruning.
    #[serde(default)]
    pruneheight: u32,
    #[serde(default)]
    prune_target_size: u64,
    warnings: Warnings,
}

/// `getblockchaininfo`.
pub fn blockchain_info(json: Value) -> Result<proto::BlockchainInfo, ConvertError> {
    let j: BlockchainInfoJson = parse(json)?;
    Ok(proto::BlockchainInfo {
        chain: j.chain,
        blocks: j.blocks,
        headers: j.headers,
        bestblockhash: block_hash(&j.bestblockhash, "bestblockhash")?,
        difficulty: j.difficulty,
        time: j.time,
        mediantime: j.mediantime,
        verificationprogress: j.verificationprogress,
        initialblockdownload: j.initialblockdownload,
        chainwork: j.chainwork,
        size_on_disk: j.size_on_disk,
        pruned: j.pruned,
        prune_height: j.pruneheight,
        prune_target_size: j.prune_target_size,
        warnings: j.warnings.into_list(),
    })
}

// ---- getorphantxs 2 ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct OrphanJson {
    txid: String,
    wtxid: String,
    bytes: u64,
    vsize: u64,
    weight: u64,
    from: Vec<u64>,
    /// Only with verbosity 2.
    hex: String,
}

/// `getorphantxs 2`: each orphan's `hex` is decoded; its txid and wtxid must match the ones
/// Core lists (a mismatch means the reply is not what it claims to be).
pub fn orphan_txs(json: Value) -> Result<proto::OrphanTxs, ConvertError> {
    let orphans: Vec<OrphanJson> = parse(json)?;
    let orphans = orphans
        .into_iter()
        .map(orphan)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(proto::OrphanTxs { orphans })
}

fn orphan(j: OrphanJson) -> Result<proto::OrphanTx, ConvertError> {
    let txid: Txid = j
        .txid
        .parse()
        .map_err(|e| ConvertError(format!("orphan txid {:?}: {e}", j.txid)))?;
    let wtxid: Wtxid = j
        .wtxid
        .parse()
        .map_err(|e| ConvertError(format!("orphan wtxid {:?}: {e}", j.wtxid)))?;
    let raw = Vec::<u8>::from_hex(&j.hex)
        .map_err(|e| ConvertError(format!("orphan {txid}: hex: {e}")))?;
    let tx: Transaction = deserialize(&raw)
        .map_err(|e| ConvertError(format!("orphan {txid}: not a transaction: {e}")))?;
    if tx.compute_txid() != txid || tx.compute_wtxid() != wtxid {
        return Err(ConvertError(format!(
            "orphan {txid}: its hex decodes to txid {} / wtxid {}",
            tx.compute_txid(),
            tx.compute_wtxid()
        )));
    }
    Ok(proto::OrphanTx {
        txid: txid.to_string(),
        wtxid: wtxid.to_string(),
        bytes: j.bytes,
        vsize: j.vsize,
        weight: j.weight,
        from: j.from,
        transaction: crate::p2p::decode::transaction(&tx),
    })
}

// ---- getrawaddrman ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawAddrmanJson {
    new: BTreeMap<String, AddrmanEntryJson>,
    tried: BTreeMap<String, AddrmanEntryJson>,
}

#[derive(Deserialize)]
struct AddrmanEntryJson {
    address: String,
    port: u32,
    network: String,
    services: u64,
    time: i64,
    source: String,
    source_network: String,
    mapped_as: Option<u32>,
    source_mapped_as: Option<u32>,
}

/// `getrawaddrman`: the `"<bucket>/<position>"` keys become the two map levels.
pub fn raw_addrman(json: Value) -> Result<proto::Addrman, ConvertError> {
    let j: RawAddrmanJson = parse(json)?;
    Ok(proto::Addrman {
        new: buckets(j.new, "new")?,
        tried: buckets(j.tried, "tried")?,
    })
}

fn buckets(
    table: BTreeMap<String, AddrmanEntryJson>,
    name: &str,
) -> Result<HashMap<u32, proto::AddrmanBucket>, ConvertError> {
    let mut buckets: HashMap<u32, proto::AddrmanBucket> = HashMap::new();
    for (key, e) in table {
        let (bucket, position) = bucket_position(&key).ok_or_else(|| {
            ConvertError(format!(
                "{name} table key {key:?} is not <bucket>/<position>"
            ))
        })?;
        let entry = proto::AddrmanEntry {
            address: e.address,
            port: e.port,
            network: e.network,
            services: e.services,
            time: e.time,
            source: e.source,
            source_network: e.source_network,
            mapped_as: e.mapped_as,
            source_mapped_as: e.source_mapped_as,
        };
        buckets
            .entry(bucket)
            .or_default()
            .entries
            .insert(position, entry);
    }
    Ok(buckets)
}

/// `"12/34"` -> `(12, 34)`; anything else (upstream panics) -> `None`.
fn bucket_position(key: &str) -> Option<(u32, u32)> {
    let (bucket, position) = key.split_once('/')?;
    Some((bucket.parse().ok()?, position.parse().ok()?))
}

// ---- estimatesmartfee -------------------------------------------------------------------------

#[derive(Deserialize)]
struct EstimateSmartFeeJson {
    /// Absent when Core has no estimate (then `errors` says why).
    feerate: Option<f64>,
    #[serde(default)]
    errors: Vec<String>,
    blocks: u32,
}

/// One `estimatesmartfee <target> <mode>` reply; `mode` is Core's spelling (`economical`,
/// `conservative`).
pub fn estimate_smart_fee(
    json: Value,
    target: u32,
    mode: &str,
) -> Result<proto::EstimateSmartFee, ConvertError> {
    let j: EstimateSmartFeeJson = parse(json)?;
    let mode = match mode {
        "economical" => proto::FeeEstimateMode::Economical,
        "conservative" => proto::FeeEstimateMode::Conservative,
        other => return Err(ConvertError(format!("unknown estimate mode {other:?}"))),
    };
    Ok(proto::EstimateSmartFee {
        fee_rate: j.feerate.map(sat_per_vb).transpose()?,
        blocks: j.blocks,
        requested_blocks: target,
        mode: mode as i32,
        errors: j.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fee_rates_go_through_an_integer_sat_per_kwu_rate() {
        // 1 sat/vB = 1000 sat/kvB = 250 sat/kwu.
        assert_eq!(sat_per_vb(0.00001).unwrap(), 1.0);
        // Core's default minrelaytxfee since v29: 100 sat/kvB = 25 sat/kwu = 0.1 sat/vB.
        assert_eq!(sat_per_vb(0.000001).unwrap(), 0.1);
        // 101 sat/kvB floors to 25 sat/kwu, as rust-bitcoin's FeeRate does upstream.
        assert_eq!(sat_per_vb(0.00000101).unwrap(), 0.1);
        assert_eq!(sat_per_vb(0.00012345).unwrap(), 12.344);
        assert_eq!(sat_per_vb(0.0).unwrap(), 0.0);
        assert!(sat_per_vb(-0.0001).is_err());
        assert!(sat_per_vb(f64::NAN).is_err());
        assert!(sat_per_vb(0.000000001).is_err(), "below a satoshi");
    }

    fn mempool_json() -> Value {
        json!({
            "loaded": true, "size": 3, "bytes": 573, "usage": 4496,
            "total_fee": 0.00003000, "maxmempool": 300000000,
            "mempoolminfee": 0.00000100, "minrelaytxfee": 0.00000100,
            "incrementalrelayfee": 0.00000100, "unbroadcastcount": 2,
            "permitbaremultisig": true, "maxdatacarriersize": 100000
        })
    }

    #[test]
    fn mempool_info_converts_fees_and_defaults_fullrbf() {
        let m = mempool_info(mempool_json()).unwrap();
        assert!(m.loaded);
        assert_eq!((m.size, m.bytes, m.usage), (3, 573, 4496));
        assert_eq!(m.total_fee, 0.00003);
        assert_eq!(m.max_mempool, 300_000_000);
        assert_eq!(m.mempoolminfee, 0.1);
        assert_eq!(m.minrelaytxfee, 0.1);
        assert_eq!(m.incrementalrelayfee, 0.1);
        assert_eq!(m.unbroadcastcount, 2);
        assert!(!m.fullrbf, "absent since Core 29");

        let mut old = mempool_json();
        old["fullrbf"] = json!(true);
        old.as_object_mut().unwrap().remove("incrementalrelayfee");
        let m = mempool_info(old).unwrap();
        assert!(m.fullrbf);
        assert_eq!(m.incrementalrelayfee, 0.0, "0 if absent");
    }

    #[test]
    fn a_missing_or_mistyped_required_field_names_the_field() {
        let mut missing = mempool_json();
        missing.as_object_mut().unwrap().remove("usage");
        let e = mempool_info(missing).unwrap_err();
        assert!(e.0.contains("usage"), "{e}");
        let mut mistyped = mempool_json();
        mistyped["size"] = json!("three");
        assert!(mempool_info(mistyped).is_err());
        let mut negative_fee = mempool_json();
        negative_fee["mempoolminfee"] = json!(-1.0);
        assert!(mempool_info(negative_fee).is_err());
        assert!(mempool_info(json!([])).is_err());
        assert!(convert(RpcMethod::Uptime, json!(-5)).is_err());
        assert!(
            convert(RpcMethod::Uptime, json!(u64::MAX)).is_err(),
            "over u32"
        );
        assert_eq!(
            convert(RpcMethod::Uptime, json!(42)).unwrap(),
            RpcEvent::Uptime(42)
        );
    }

    #[test]
    fn net_totals_and_memory_info_copy_every_field() {
        let n = net_totals(json!({
            "totalbytesrecv": 10, "totalbytessent": 20, "timemillis": 1795961180820u64,
            "uploadtarget": {"timeframe": 86400, "target": 5, "target_reached": true,
                "serve_historical_blocks": false, "bytes_left_in_cycle": 3,
                "time_left_in_cycle": 4}
        }))
        .unwrap();
        assert_eq!(n.total_bytes_received, 10);
        assert_eq!(n.total_bytes_sent, 20);
        assert_eq!(n.time_millis, 1_795_961_180_820);
        let u = n.upload_target;
        assert_eq!(
            (u.timeframe, u.target, u.bytes_left_in_cycle),
            (86400, 5, 3)
        );
        assert!(u.target_reached && !u.serve_historical_blocks);
        assert_eq!(u.time_left_in_cycle, 4);
        assert!(
            net_totals(json!({"totalbytesrecv": 1, "totalbytessent": 2, "timemillis": 3})).is_err()
        );

        let m = memory_info(
            json!({"locked": {"used": 352, "free": 261792, "total": 262144,
            "locked": 262144, "chunks_used": 1, "chunks_free": 2}}),
        )
        .unwrap();
        assert_eq!(
            (
                m.used,
                m.free,
                m.total,
                m.locked,
                m.chunks_used,
                m.chunks_free
            ),
            (352, 261792, 262144, 262144, 1, 2)
        );
        // Upstream panics on a reply without `locked` (e.g. mode mallocinfo's string).
        assert!(memory_info(json!("<malloc version=\"1\">")).is_err());
        assert!(memory_info(json!({})).is_err());
    }

    #[test]
    fn addrman_info_keeps_every_network_key() {
        let a = addrman_info(json!({
            "ipv4": {"new": 1, "tried": 2, "total": 3},
            "all_networks": {"new": 1, "tried": 2, "total": 3}
        }))
        .unwrap();
        assert_eq!(a.networks.len(), 2);
        assert_eq!(a.networks["ipv4"].tried, 2);
        assert_eq!(a.networks["all_networks"].total, 3);
        assert!(addrman_info(json!({"ipv4": {"new": 1}})).is_err());
    }

    const GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

    #[test]
    fn chain_tx_stats_keep_the_display_hash_and_optional_window_fields() {
        let at_genesis = chain_tx_stats(json!({
            "time": 1296688602, "txcount": 1, "window_final_block_hash": GENESIS,
            "window_final_block_height": 0, "window_block_count": 0
        }))
        .unwrap();
        assert_eq!(at_genesis.window_final_block_hash, GENESIS);
        assert_eq!(at_genesis.window_tx_count, None);
        assert_eq!(at_genesis.window_interval, None);
        assert_eq!(at_genesis.tx_rate, None);

        let later = chain_tx_stats(json!({
            "time": 1296688700, "txcount": 120, "window_final_block_hash": GENESIS,
            "window_block_count": 100, "window_tx_count": 119, "window_interval": 98,
            "txrate": 1.2142857
        }))
        .unwrap();
        assert_eq!(later.window_final_block_height, 0, "0 if absent");
        assert_eq!(later.window_tx_count, Some(119));
        assert_eq!(later.window_interval, Some(98));
        assert_eq!(later.tx_rate, Some(1.2142857));

        assert!(chain_tx_stats(json!({
            "time": 1, "txcount": 1, "window_final_block_hash": "zz", "window_block_count": 0
        }))
        .is_err());
    }

    fn network_info_json() -> Value {
        json!({
            "version": 319900, "subversion": "/Satoshi:31.99.0/", "protocolversion": 70017,
            "localservices": "0000000000000c09",
            "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"],
            "localrelay": true, "timeoffset": 0, "networkactive": true,
            "connections": 2, "connections_in": 1, "connections_out": 1,
            "networks": [{"name": "ipv4", "limited": false, "reachable": true, "proxy": "",
                "proxy_randomize_credentials": false},
                {"name": "onion", "limited": true, "reachable": false,
                "proxy": "127.0.0.1:9050", "proxy_randomize_credentials": true}],
            "relayfee": 0.00000100, "incrementalfee": 0.00001000,
            "localaddresses": [{"address": "1.2.3.4", "port": 8333, "score": 4}],
            "warnings": ["This is a pre-release test build"]
        })
    }

    #[test]
    fn network_info_converts_fees_lists_and_defaults() {
        let n = network_info(network_info_json()).unwrap();
        assert_eq!(n.version, 319900);
        assert_eq!(n.protocol_version, 70017);
        assert_eq!(n.local_services, "0000000000000c09");
        assert_eq!(n.local_services_names.len(), 4);
        assert_eq!(
            (n.connections, n.connections_in, n.connections_out),
            (2, 1, 1)
        );
        assert_eq!(n.networks.len(), 2);
        assert_eq!(n.networks[1].proxy, "127.0.0.1:9050");
        assert!(n.networks[1].proxy_randomize_credentials);
        assert_eq!(n.relay_fee, 0.1);
        assert_eq!(n.incremental_fee, 1.0);
        assert_eq!(n.local_addresses[0].address, "1.2.3.4");
        assert_eq!(n.local_addresses[0].port, 8333);
        assert_eq!(n.local_addresses[0].score, 4);
        assert_eq!(n.warnings, ["This is a pre-release test build"]);

        // An older Core: no names, no in/out split, no fees, warnings as one string.
        let mut old = network_info_json();
        let o = old.as_object_mut().unwrap();
        for key in [
            "localservicesnames",
            "connections_in",
            "connections_out",
            "relayfee",
            "incrementalfee",
        ] {
            o.remove(key);
        }
        o.insert("warnings".into(), json!(""));
        let n = network_info(old).unwrap();
        assert!(n.local_services_names.is_empty());
        assert_eq!((n.connections_in, n.connections_out), (0, 0));
        assert_eq!((n.relay_fee, n.incremental_fee), (0.0, 0.0));
        assert!(n.warnings.is_empty());

        let mut bad = network_info_json();
        bad["networks"][0]
            .as_object_mut()
            .unwrap()
            .remove("reachable");
        assert!(network_info(bad).is_err());
    }

    #[test]
    fn blockchain_info_defaults_the_pruning_fields() {
        let b = blockchain_info(json!({
            "chain": "regtest", "blocks": 0, "headers": 0, "bestblockhash": GENESIS,
            "bits": "207fffff", "difficulty": 4.656542373906925e-10, "time": 1296688602,
            "mediantime": 1296688602, "verificationprogress": 1.0,
            "initialblockdownload": true,
            "chainwork": "0000000000000000000000000000000000000000000000000000000000000002",
            "size_on_disk": 293, "pruned": false, "warnings": []
        }))
        .unwrap();
        assert_eq!(b.chain, "regtest");
        assert_eq!(b.bestblockhash, GENESIS);
        assert_eq!(b.time, 1296688602);
        assert_eq!((b.prune_height, b.prune_target_size), (0, 0));
        assert!(b.warnings.is_empty());
        assert_eq!(b.difficulty, 4.656542373906925e-10);

        let pruned = blockchain_info(json!({
            "chain": "main", "blocks": 10, "headers": 11, "bestblockhash": GENESIS,
            "difficulty": 1.0, "mediantime": 5, "verificationprogress": 0.5,
            "initialblockdownload": false, "chainwork": "00", "size_on_disk": 1,
            "pruned": true, "pruneheight": 7, "prune_target_size": 550000000u64,
            "warnings": "one warning"
        }))
        .unwrap();
        assert_eq!(pruned.time, 0, "0 if absent");
        assert_eq!(
            (pruned.prune_height, pruned.prune_target_size),
            (7, 550_000_000)
        );
        assert_eq!(pruned.warnings, ["one warning"]);
    }

    /// A one-input, one-output segwit transaction.
    fn orphan_tx() -> Transaction {
        use bitcoin::{
            absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness,
        };
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: "1111111111111111111111111111111111111111111111111111111111111111"
                        .parse()
                        .unwrap(),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![0x51]]),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        }
    }

    #[test]
    fn orphans_carry_display_hex_ids_and_the_transaction_in_internal_order() {
        use bitcoin::consensus::encode::serialize_hex;
        use bitcoin::hashes::Hash as _;
        let tx = orphan_tx();
        let reply = json!([{
            "txid": tx.compute_txid().to_string(), "wtxid": tx.compute_wtxid().to_string(),
            "bytes": 85, "vsize": 58, "weight": 229, "from": [0, 3],
            "hex": serialize_hex(&tx)
        }]);
        let o = orphan_txs(reply.clone()).unwrap();
        let orphan = &o.orphans[0];
        assert_eq!(orphan.txid, tx.compute_txid().to_string());
        assert_eq!(orphan.wtxid, tx.compute_wtxid().to_string());
        assert_ne!(orphan.txid, orphan.wtxid, "segwit: the ids differ");
        assert_eq!((orphan.bytes, orphan.vsize, orphan.weight), (85, 58, 229));
        assert_eq!(orphan.from, [0, 3]);
        let t = &orphan.transaction;
        assert_eq!(t.txid, tx.compute_txid().to_byte_array().to_vec());
        assert_eq!(t.wtxid, tx.compute_wtxid().to_byte_array().to_vec());
        assert_eq!(
            t.raw.as_deref(),
            Some(bitcoin::consensus::serialize(&tx).as_slice())
        );

        assert!(orphan_txs(json!([])).unwrap().orphans.is_empty());

        let mut bad_hex = reply.clone();
        bad_hex[0]["hex"] = json!("00zz");
        assert!(orphan_txs(bad_hex).is_err());
        let mut truncated = reply.clone();
        truncated[0]["hex"] = json!(&serialize_hex(&tx)[..20]);
        assert!(orphan_txs(truncated).is_err());
        let mut wrong_id = reply.clone();
        wrong_id[0]["txid"] = json!("22".repeat(32));
        assert!(orphan_txs(wrong_id).is_err());
        // Verbosity 1 (no hex) is not what the extractor asks for.
        let mut no_hex = reply;
        no_hex[0].as_object_mut().unwrap().remove("hex");
        assert!(orphan_txs(no_hex).is_err());
    }

    fn entry(address: &str) -> Value {
        json!({"address": address, "port": 8333, "services": 9, "time": 1795961328,
            "network": "ipv4", "source": address, "source_network": "ipv4"})
    }

    #[test]
    fn raw_addrman_splits_bucket_and_position() {
        let mut with_asn = entry("5.6.7.8");
        with_asn["mapped_as"] = json!(64496);
        with_asn["source_mapped_as"] = json!(64497);
        let a = raw_addrman(json!({
            "new": {"876/0": entry("1.2.3.4"), "876/5": entry("1.2.3.5")},
            "tried": {"251/52": with_asn}
        }))
        .unwrap();
        assert_eq!(a.new.len(), 1);
        let bucket = &a.new[&876].entries;
        assert_eq!(bucket.len(), 2);
        assert_eq!(bucket[&0].address, "1.2.3.4");
        assert_eq!(bucket[&5].address, "1.2.3.5");
        assert_eq!(bucket[&0].mapped_as, None);
        let tried = &a.tried[&251].entries[&52];
        assert_eq!(tried.services, 9);
        assert_eq!(tried.time, 1795961328);
        assert_eq!(tried.mapped_as, Some(64496));
        assert_eq!(tried.source_mapped_as, Some(64497));

        for key in ["876", "876/", "/0", "a/0", "1/2/3", "-1/0", "4294967296/0"] {
            let reply = json!({"new": {key: entry("1.2.3.4")}, "tried": {}});
            let e = raw_addrman(reply).unwrap_err();
            assert!(e.0.contains("not <bucket>/<position>"), "{key}: {e}");
        }
        assert!(
            raw_addrman(json!({"new": {}})).is_err(),
            "tried is required"
        );
    }

    #[test]
    fn estimatesmartfee_keeps_the_request_and_converts_the_rate() {
        let e = estimate_smart_fee(json!({"feerate": 0.00012345, "blocks": 2}), 1, "economical")
            .unwrap();
        assert_eq!(e.fee_rate, Some(12.344));
        assert_eq!((e.blocks, e.requested_blocks), (2, 1));
        assert_eq!(e.mode, proto::FeeEstimateMode::Economical as i32);
        assert!(e.errors.is_empty(), "[] if absent");

        let none = estimate_smart_fee(
            json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0}),
            144,
            "conservative",
        )
        .unwrap();
        assert_eq!(none.fee_rate, None);
        assert_eq!(none.requested_blocks, 144);
        assert_eq!(none.mode, proto::FeeEstimateMode::Conservative as i32);
        assert_eq!(none.errors.len(), 1);

        assert!(estimate_smart_fee(json!({"feerate": 0.0001}), 6, "economical").is_err());
        assert!(estimate_smart_fee(json!({"blocks": 1}), 6, "unset").is_err());
        assert!(convert(RpcMethod::EstimateSmartFee, json!({})).is_err());
    }
}
