//! Decoding of P2P message payloads into peer-observer's `MessageEvent.msg` arms.
//!
//! The eBPF extractor sees, for every P2P message bitcoind sends or receives, the message type
//! (`command`) and the payload without the 24-byte header. [`decode_message`] turns that pair
//! into the matching [`Msg`] arm; [`decoded_kind`] names the arm for logs and tests.
//!
//! Invariants:
//! - **Never fails, never drops.** An unknown message type, a payload that does not decode, a
//!   payload with trailing bytes, and a payload whose values an arm cannot hold exactly (a bool
//!   byte other than 0/1, a bloom flag or reject code outside the schema's enum) all become
//!   `Msg::Unknown { command, payload }` carrying the exact raw bytes. A structured arm is only
//!   produced when the whole payload was consumed, so the arm describes the payload completely.
//! - **Internal byte order.** Every hash, txid and wtxid in a `bytes` field is in Bitcoin Core's
//!   internal order: the serialized order, rust-bitcoin's `to_byte_array()`, i.e. the reverse
//!   of the hex shown by RPC and explorers.
//! - **Never panics, bounded memory.** All parsing goes through rust-bitcoin's consensus
//!   decoders over the payload slice; they cap every length-prefixed allocation (their largest
//!   preallocations, 16 MiB for a witness and 32 MiB of merkle-block bits, are zeroed memory the
//!   OS only backs as it is written). The few loops written here push one item per decoded
//!   record and never reserve from an untrusted count.
//!
//! Where rust-bitcoin's own message type would lose or reject something Bitcoin Core accepts,
//! this module reads the fields with rust-bitcoin primitives instead, and says why at the spot:
//! `version` (BIP37 makes `relay` optional), `reject` (the hash is optional), `headers` (the
//! message type is private in rust-bitcoin), `addrv2` (one odd entry must not sink the message),
//! `alert` (rust-bitcoin rejects every signed alert) and `feefilter` (any i64 is kept).

use std::net::Ipv6Addr;

use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use bitcoin::block;
use bitcoin::consensus::encode::{self, deserialize, serialize, Decodable, VarInt};
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::{AddrV2, Address as P2pAddress};
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage, Inventory};
use bitcoin::p2p::message_bloom::{BloomFlags, FilterAdd, FilterLoad};
use bitcoin::p2p::message_compact_blocks::SendCmpct;
use bitcoin::p2p::message_filter::{
    CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters,
};
use bitcoin::p2p::message_network::RejectReason;
use bitcoin::p2p::ServiceFlags;
use bitcoin::{MerkleBlock, Transaction};

use super::address::{i2p, onion_v2, onion_v3};
use crate::event::proto::bitcoin_primitives as primitives;
use crate::event::proto::ebpf_extractor::message as wire;
use primitives::address::Address as AddressArm;
use primitives::inventory_item::Item;
use wire::message_event::Msg;

/// Every P2P message type with a structured arm (wire names), for tests of this decoder and
/// of its inverse (`p2p::encode`).
#[cfg(test)]
pub(crate) const KNOWN_COMMANDS: &[&str] = &[
    "version",
    "verack",
    "ping",
    "pong",
    "inv",
    "getdata",
    "notfound",
    "tx",
    "block",
    "headers",
    "getheaders",
    "getblocks",
    "addr",
    "addrv2",
    "sendaddrv2",
    "feefilter",
    "reject",
    "sendcmpct",
    "cmpctblock",
    "getblocktxn",
    "blocktxn",
    "alert",
    "filterload",
    "filteradd",
    "filterclear",
    "merkleblock",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "sendheaders",
    "getaddr",
    "mempool",
    "wtxidrelay",
];

/// Result of decoding one payload; any error means "keep it raw".
type Decoded = Result<Msg, encode::Error>;

/// Decodes one P2P message payload into its MessageEvent arm. Never fails: unknown message
/// types, payloads that do not decode, and payloads with trailing garbage become
/// `Msg::Unknown(Unknown { command, payload })` with the raw bytes.
pub fn decode_message(command: &str, payload: &[u8]) -> Msg {
    decode_known(command, payload).unwrap_or_else(|_| {
        Msg::Unknown(wire::Unknown {
            command: command.to_string(),
            payload: payload.to_vec(),
        })
    })
}

/// The name of the `MessageEvent.msg` arm `msg` occupies (the protobuf field name).
pub fn decoded_kind(msg: &Msg) -> &'static str {
    match msg {
        Msg::Ping(_) => "ping",
        Msg::Pong(_) => "pong",
        Msg::Inv(_) => "inv",
        Msg::Getdata(_) => "getdata",
        Msg::Tx(_) => "tx",
        Msg::Headers(_) => "headers",
        Msg::Addr(_) => "addr",
        Msg::Addrv2(_) => "addrv2",
        Msg::Feefilter(_) => "feefilter",
        Msg::Getheaders(_) => "getheaders",
        Msg::Getblocks(_) => "getblocks",
        Msg::Version(_) => "version",
        Msg::Notfound(_) => "notfound",
        Msg::Reject(_) => "reject",
        Msg::Compactblock(_) => "compactblock",
        Msg::Sendcompact(_) => "sendcompact",
        Msg::Block(_) => "block",
        Msg::Getblocktxn(_) => "getblocktxn",
        Msg::Blocktxn(_) => "blocktxn",
        Msg::Alert(_) => "alert",
        Msg::Filteradd(_) => "filteradd",
        Msg::Filterload(_) => "filterload",
        Msg::Getcfcheckpt(_) => "getcfcheckpt",
        Msg::Cfheaders(_) => "cfheaders",
        Msg::Cfilter(_) => "cfilter",
        Msg::Cfcheckpt(_) => "cfcheckpt",
        Msg::Getcfheaders(_) => "getcfheaders",
        Msg::Getcfilter(_) => "getcfilter",
        Msg::Merkleblock(_) => "merkleblock",
        Msg::Unknown(_) => "unknown",
        Msg::Verack(_) => "verack",
        Msg::Sendheaders(_) => "sendheaders",
        Msg::Getaddr(_) => "getaddr",
        Msg::Mempool(_) => "mempool",
        Msg::Wtxidrelay(_) => "wtxidrelay",
        Msg::Sendaddrv2(_) => "sendaddrv2",
        Msg::Filterclear(_) => "filterclear",
        Msg::Emptyaddrv2(_) => "emptyaddrv2",
        Msg::Oldping(_) => "oldping",
    }
}

/// Dispatches on the P2P message type (the wire command, not the protobuf arm name).
fn decode_known(command: &str, payload: &[u8]) -> Decoded {
    match command {
        "verack" => empty(payload, Msg::Verack),
        "sendheaders" => empty(payload, Msg::Sendheaders),
        "getaddr" => empty(payload, Msg::Getaddr),
        "mempool" => empty(payload, Msg::Mempool),
        "wtxidrelay" => empty(payload, Msg::Wtxidrelay),
        "sendaddrv2" => empty(payload, Msg::Sendaddrv2),
        "filterclear" => empty(payload, Msg::Filterclear),
        // Pre-BIP31 peers send a ping without nonce.
        "ping" if payload.is_empty() => Ok(Msg::Oldping(true)),
        "ping" => Ok(Msg::Ping(wire::Ping {
            value: deserialize(payload)?,
        })),
        "pong" => Ok(Msg::Pong(wire::Pong {
            value: deserialize(payload)?,
        })),
        "inv" => Ok(Msg::Inv(wire::Inv {
            items: inventory(payload)?,
        })),
        "getdata" => Ok(Msg::Getdata(wire::GetData {
            items: inventory(payload)?,
        })),
        "notfound" => Ok(Msg::Notfound(wire::NotFound {
            items: inventory(payload)?,
        })),
        "tx" => Ok(Msg::Tx(wire::Tx {
            tx: transaction(&deserialize(payload)?),
        })),
        "block" => block(payload),
        "headers" => headers(payload),
        "getheaders" => getheaders(payload),
        "getblocks" => getblocks(payload),
        "addr" => addr(payload),
        // An empty addrv2 (not even a count) is what some peers send; peer-observer flags it.
        "addrv2" if payload.is_empty() => Ok(Msg::Emptyaddrv2(true)),
        "addrv2" => addrv2(payload),
        "version" => version(payload),
        "reject" => reject(payload),
        // Core accepts any value here (and ignores values outside MoneyRange), so unlike
        // rust-bitcoin's NetworkMessage we keep every i64 instead of dropping the message.
        "feefilter" => Ok(Msg::Feefilter(wire::FeeFilter {
            fee: deserialize(payload)?,
        })),
        "sendcmpct" => sendcmpct(payload),
        "cmpctblock" => cmpctblock(payload),
        "getblocktxn" => getblocktxn(payload),
        "blocktxn" => blocktxn(payload),
        "alert" => Ok(alert(payload)),
        "filterload" => filterload(payload),
        "filteradd" => Ok(Msg::Filteradd(wire::FilterAdd {
            filter: deserialize::<FilterAdd>(payload)?.data,
        })),
        "merkleblock" => merkleblock(payload),
        "getcfilters" => getcfilters(payload),
        "cfilter" => cfilter(payload),
        "getcfheaders" => getcfheaders(payload),
        "cfheaders" => cfheaders(payload),
        "getcfcheckpt" => getcfcheckpt(payload),
        "cfcheckpt" => cfcheckpt(payload),
        _ => Err(encode::Error::ParseFailed(
            "message type has no structured arm",
        )),
    }
}

// ---- reading helpers -------------------------------------------------------------------------

/// Reads one value from the front of `r` and advances it; a slice is a finite reader.
fn read<T: Decodable>(r: &mut &[u8]) -> Result<T, encode::Error> {
    T::consensus_decode_from_finite_reader(r)
}

/// Succeeds only if nothing is left: trailing bytes would be silently lost otherwise.
fn finish(rest: &[u8]) -> Result<(), encode::Error> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(encode::Error::ParseFailed(
            "trailing bytes after the message",
        ))
    }
}

/// Reads a serialized bool strictly: Core and rust-bitcoin read any non-zero byte as true, but
/// the arm could not show which byte was sent, so anything but 0/1 keeps the payload raw.
fn read_strict_bool(r: &mut &[u8]) -> Result<bool, encode::Error> {
    match read::<u8>(r)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(encode::Error::ParseFailed("bool byte is neither 0 nor 1")),
    }
}

/// Splits `len` bytes off the front of `r`.
fn take<'a>(r: &mut &'a [u8], len: usize) -> Result<&'a [u8], encode::Error> {
    if len > r.len() {
        return Err(encode::Error::ParseFailed("length exceeds the payload"));
    }
    let (head, tail) = r.split_at(len);
    *r = tail;
    Ok(head)
}

/// A message type whose payload is empty by definition.
fn empty(payload: &[u8], arm: fn(bool) -> Msg) -> Decoded {
    finish(payload).map(|()| arm(true))
}

// ---- shared primitives -----------------------------------------------------------------------

/// A 32-byte hash in internal (serialized) byte order.
fn internal<H: Hash<Bytes = [u8; 32]>>(hash: H) -> Vec<u8> {
    hash.to_byte_array().to_vec()
}

/// A transaction as `bitcoin_primitives.Transaction` (txid/wtxid in internal byte order, raw
/// bytes filled); shared with the RPC extractor (`getorphantxs`) so both build it one way.
pub(crate) fn transaction(tx: &Transaction) -> primitives::Transaction {
    primitives::Transaction {
        txid: internal(tx.compute_txid()),
        wtxid: internal(tx.compute_wtxid()),
        // rust-bitcoin only accepts canonical encodings, so this equals the received bytes.
        raw: Some(serialize(tx)),
    }
}

fn block_header(header: &block::Header) -> primitives::BlockHeader {
    primitives::BlockHeader {
        version: header.version.to_consensus(),
        prev_blockhash: internal(header.prev_blockhash),
        merkle_root: internal(header.merkle_root),
        time: header.time,
        bits: header.bits.to_consensus(),
        nonce: header.nonce,
        hash: internal(header.block_hash()),
    }
}

/// rust-bitcoin's `Inventory` keeps the type number: each known number has its own variant and
/// `Unknown` carries any other (0 included), so decoding through it loses nothing.
fn inventory(payload: &[u8]) -> Result<Vec<primitives::InventoryItem>, encode::Error> {
    let items: Vec<Inventory> = deserialize(payload)?;
    Ok(items.iter().map(inventory_item).collect())
}

fn inventory_item(inv: &Inventory) -> primitives::InventoryItem {
    let item = match *inv {
        // MSG_ERROR (0); its hash carries no meaning.
        Inventory::Error | Inventory::Unknown { inv_type: 0, .. } => Item::Error(true),
        Inventory::Transaction(txid) => Item::Transaction(internal(txid)),
        Inventory::Block(hash) => Item::Block(internal(hash)),
        Inventory::WTx(wtxid) => Item::Wtx(internal(wtxid)),
        Inventory::WitnessTransaction(txid) => Item::WitnessTransaction(internal(txid)),
        Inventory::WitnessBlock(hash) => Item::WitnessBlock(internal(hash)),
        Inventory::CompactBlock(hash) => Item::CompactBlock(internal(hash)),
        Inventory::Unknown { inv_type, hash } => Item::Unknown(primitives::UnknownItem {
            inv_type,
            hash: hash.to_vec(),
        }),
    };
    primitives::InventoryItem { item: Some(item) }
}

// ---- blocks and headers ----------------------------------------------------------------------

fn block(payload: &[u8]) -> Decoded {
    let block: bitcoin::Block = deserialize(payload)?;
    Ok(Msg::Block(wire::Block {
        header: block_header(&block.header),
        transactions: block.txdata.iter().map(transaction).collect(),
    }))
}

/// `headers` is a list of (header, tx count) pairs. rust-bitcoin's decoder for it is private,
/// so the list is read here; Core ignores the tx count, but the arm cannot carry a non-zero
/// one, so such a payload stays raw.
fn headers(payload: &[u8]) -> Decoded {
    let mut r = payload;
    let count = read::<VarInt>(&mut r)?.0;
    let mut headers = Vec::new();
    for _ in 0..count {
        let header: block::Header = read(&mut r)?;
        if read::<VarInt>(&mut r)?.0 != 0 {
            return Err(encode::Error::ParseFailed(
                "headers entry with transactions",
            ));
        }
        headers.push(block_header(&header));
    }
    finish(r)?;
    Ok(Msg::Headers(wire::Headers { headers }))
}

fn getheaders(payload: &[u8]) -> Decoded {
    let msg: GetHeadersMessage = deserialize(payload)?;
    Ok(Msg::Getheaders(wire::GetHeaders {
        version: msg.version,
        locator_hashes: msg.locator_hashes.into_iter().map(internal).collect(),
        stop_hash: internal(msg.stop_hash),
    }))
}

fn getblocks(payload: &[u8]) -> Decoded {
    let msg: GetBlocksMessage = deserialize(payload)?;
    Ok(Msg::Getblocks(wire::GetBlocks {
        version: msg.version,
        locator_hashes: msg.locator_hashes.into_iter().map(internal).collect(),
        stop_hash: internal(msg.stop_hash),
    }))
}

fn merkleblock(payload: &[u8]) -> Decoded {
    let msg: MerkleBlock = deserialize(payload)?;
    Ok(Msg::Merkleblock(wire::MerkleBlock {
        header: block_header(&msg.header),
        num_transactions: msg.txn.num_transactions(),
        // All bits of the flag bytes, least significant first (padding bits included).
        bits: msg.txn.bits().to_vec(),
        hashes: msg.txn.hashes().iter().copied().map(internal).collect(),
    }))
}

// ---- compact blocks (BIP152) -----------------------------------------------------------------

/// `sendcmpct` via rust-bitcoin, plus the strict bool rule: Core punishes an announce byte
/// above 1, and rust-bitcoin would report it as a plain `true`.
fn sendcmpct(payload: &[u8]) -> Decoded {
    let msg: SendCmpct = deserialize(payload)?;
    if payload.first().is_some_and(|&announce| announce > 1) {
        return Err(encode::Error::ParseFailed(
            "sendcmpct announce byte above 1",
        ));
    }
    Ok(Msg::Sendcompact(wire::SendCompact {
        send_compact: msg.send_compact,
        version: msg.version,
    }))
}

fn cmpctblock(payload: &[u8]) -> Decoded {
    let msg: HeaderAndShortIds = deserialize(payload)?;
    Ok(Msg::Compactblock(wire::CompactBlock {
        header: block_header(&msg.header),
        nonce: msg.nonce,
        short_ids: msg
            .short_ids
            .iter()
            .map(|id| id.to_bytes().to_vec())
            .collect(),
        transactions: msg
            .prefilled_txs
            .iter()
            .map(|prefilled| primitives::PrefilledTransaction {
                // Differentially encoded, exactly as on the wire.
                diff_index: u32::from(prefilled.idx),
                tx: transaction(&prefilled.tx),
            })
            .collect(),
    }))
}

/// The wire carries differentially encoded indexes; rust-bitcoin turns them into absolute
/// transaction positions, which is what `tx_indexes` holds (as in peer-observer).
fn getblocktxn(payload: &[u8]) -> Decoded {
    let msg: BlockTransactionsRequest = deserialize(payload)?;
    Ok(Msg::Getblocktxn(wire::GetBlockTxn {
        block_hash: internal(msg.block_hash),
        tx_indexes: msg.indexes,
    }))
}

fn blocktxn(payload: &[u8]) -> Decoded {
    let msg: BlockTransactions = deserialize(payload)?;
    Ok(Msg::Blocktxn(wire::BlockTxn {
        block_hash: internal(msg.block_hash),
        transactions: msg.transactions.iter().map(transaction).collect(),
    }))
}

// ---- network messages ------------------------------------------------------------------------

/// `version`, read field by field because rust-bitcoin's `VersionMessage` requires the relay
/// byte, which BIP37 makes optional (absent means relay). The older optional fields (nonce,
/// user agent, start height) are required here: every peer Core talks to sends them, and the
/// arm could not tell a missing value from a default one.
fn version(payload: &[u8]) -> Decoded {
    let mut r = payload;
    let version: u32 = read(&mut r)?;
    let services: ServiceFlags = read(&mut r)?;
    let timestamp: i64 = read(&mut r)?;
    let receiver: P2pAddress = read(&mut r)?;
    let sender: P2pAddress = read(&mut r)?;
    let nonce: u64 = read(&mut r)?;
    let user_agent: String = read(&mut r)?;
    let start_height: i32 = read(&mut r)?;
    let relay = if r.is_empty() {
        true
    } else {
        read_strict_bool(&mut r)?
    };
    finish(r)?;
    Ok(Msg::Version(wire::Version {
        version,
        services: services.to_u64(),
        timestamp,
        // The addresses in `version` carry no timestamp.
        receiver: v1_address(0, &receiver),
        sender: v1_address(0, &sender),
        nonce,
        user_agent,
        start_height,
        relay,
    }))
}

/// `reject` (BIP61), read field by field because rust-bitcoin's `Reject` requires the hash,
/// which is only sent when the rejected object is a tx or block.
fn reject(payload: &[u8]) -> Decoded {
    let mut r = payload;
    let rejected_command: String = read(&mut r)?;
    let code: RejectReason = read(&mut r)?;
    let reason_details: String = read(&mut r)?;
    let hash = match r.len() {
        0 => Vec::new(),
        32 => r.to_vec(),
        _ => return Err(encode::Error::ParseFailed("reject hash is not 32 bytes")),
    };
    Ok(Msg::Reject(wire::Reject {
        rejected_command,
        reason: reject_reason(code) as i32,
        reason_details,
        hash,
    }))
}

fn reject_reason(code: RejectReason) -> wire::reject::RejectReason {
    use wire::reject::RejectReason as Wire;
    match code {
        RejectReason::Malformed => Wire::Malformed,
        RejectReason::Invalid => Wire::Invalid,
        RejectReason::Obsolete => Wire::Obsolete,
        RejectReason::Duplicate => Wire::Duplicate,
        RejectReason::NonStandard => Wire::Nonstandard,
        RejectReason::Dust => Wire::Dust,
        // 0x42, REJECT_INSUFFICIENTFEE in Core.
        RejectReason::Fee => Wire::Fee,
        RejectReason::Checkpoint => Wire::Checkpoint,
    }
}

/// The legacy alert is `vchMsg || vchSig`, two length-prefixed byte strings. rust-bitcoin
/// models it as a single one and so rejects every signed alert; the arm has one bytes field,
/// so it keeps the whole payload, which never fails and loses nothing.
fn alert(payload: &[u8]) -> Msg {
    Msg::Alert(wire::Alert {
        alert: payload.to_vec(),
    })
}

// ---- addresses -------------------------------------------------------------------------------

/// OnionCat prefix under which addr (v1) carries Tor v2 addresses (fd87:d87e:eb43::/48).
const ONIONCAT_PREFIX: [u8; 6] = [0xfd, 0x87, 0xd8, 0x7e, 0xeb, 0x43];

/// BIP155 caps every address at 512 bytes; Core rejects the message above that.
const MAX_ADDRV2_SIZE: u64 = 512;

fn addr(payload: &[u8]) -> Decoded {
    let entries: Vec<(u32, P2pAddress)> = deserialize(payload)?;
    Ok(Msg::Addr(wire::Addr {
        addresses: entries
            .iter()
            .map(|(timestamp, address)| v1_address(*timestamp, address))
            .collect(),
    }))
}

/// An addr (v1) / version address: 16 bytes of IPv6, where IPv4 is mapped (::ffff:0:0/96)
/// and Tor v2 hides behind the OnionCat prefix.
fn v1_address(timestamp: u32, address: &P2pAddress) -> primitives::Address {
    let ip = Ipv6Addr::from(address.address);
    let octets = ip.octets();
    let arm = if let Some(ipv4) = ip.to_ipv4_mapped() {
        AddressArm::Ipv4(ipv4.to_string())
    } else if let Some(onion) = octets.strip_prefix(&ONIONCAT_PREFIX) {
        AddressArm::Torv2(onion_v2(onion))
    } else {
        AddressArm::Ipv6(ip.to_string())
    };
    primitives::Address {
        timestamp,
        address: Some(arm),
        services: address.services.to_u64(),
        port: u32::from(address.port),
    }
}

/// `addrv2` (BIP155). Entries are read here rather than as rust-bitcoin `AddrV2Message`s
/// because rust-bitcoin rejects the whole message over one entry Core merely ignores (an
/// IPv4-mapped or OnionCat address under the IPv6 id, a CJDNS address outside fc00::/8);
/// such an entry becomes an `unknown` address with its raw bytes instead.
fn addrv2(payload: &[u8]) -> Decoded {
    let mut r = payload;
    let count = read::<VarInt>(&mut r)?.0;
    let mut addresses = Vec::new();
    for _ in 0..count {
        addresses.push(addrv2_entry(&mut r)?);
    }
    finish(r)?;
    Ok(Msg::Addrv2(wire::AddrV2 { addresses }))
}

fn addrv2_entry(r: &mut &[u8]) -> Result<primitives::Address, encode::Error> {
    let timestamp: u32 = read(r)?;
    let services = read::<VarInt>(r)?.0;
    let arm = addrv2_network_address(r)?;
    let port = u16::from_be_bytes(read::<[u8; 2]>(r)?);
    Ok(primitives::Address {
        timestamp,
        address: Some(arm),
        services,
        port: u32::from(port),
    })
}

/// The (network id, address) part of an addrv2 entry, through rust-bitcoin's `AddrV2` first.
fn addrv2_network_address(r: &mut &[u8]) -> Result<AddressArm, encode::Error> {
    let start = *r;
    match read::<AddrV2>(r) {
        Ok(address) => Ok(addrv2_arm(address)),
        Err(_) => {
            *r = start;
            raw_addrv2_network_address(r)
        }
    }
}

/// Fallback for an address rust-bitcoin refused: length errors fail the message, as in Core;
/// an address that is merely invalid for its network is kept raw.
fn raw_addrv2_network_address(r: &mut &[u8]) -> Result<AddressArm, encode::Error> {
    let id: u8 = read(r)?;
    let len = read::<VarInt>(r)?.0;
    if len > MAX_ADDRV2_SIZE {
        return Err(encode::Error::ParseFailed(
            "addrv2 address longer than 512 bytes",
        ));
    }
    if bip155_size(id).is_some_and(|size| size != len) {
        return Err(encode::Error::ParseFailed(
            "addrv2 address size wrong for its network",
        ));
    }
    // `len` is at most 512 here, so the conversion cannot truncate.
    let bytes = take(r, len as usize)?;
    Ok(AddressArm::Unknown(primitives::UnknownAddress {
        id: u32::from(id),
        address: bytes.to_vec(),
    }))
}

/// The fixed address size of each BIP155 network id.
fn bip155_size(id: u8) -> Option<u64> {
    match id {
        1 => Some(4),  // IPv4
        2 => Some(16), // IPv6
        3 => Some(10), // Tor v2
        4 => Some(32), // Tor v3
        5 => Some(32), // I2P
        6 => Some(16), // CJDNS
        _ => None,
    }
}

fn addrv2_arm(address: AddrV2) -> AddressArm {
    match address {
        AddrV2::Ipv4(ip) => AddressArm::Ipv4(ip.to_string()),
        AddrV2::Ipv6(ip) => AddressArm::Ipv6(ip.to_string()),
        AddrV2::TorV2(id) => AddressArm::Torv2(onion_v2(&id)),
        AddrV2::TorV3(pubkey) => AddressArm::Torv3(onion_v3(&pubkey)),
        AddrV2::I2p(hash) => AddressArm::I2p(i2p(&hash)),
        AddrV2::Cjdns(ip) => AddressArm::Cjdns(ip.to_string()),
        AddrV2::Unknown(id, bytes) => AddressArm::Unknown(primitives::UnknownAddress {
            id: u32::from(id),
            address: bytes,
        }),
    }
}

// ---- bloom filters (BIP37) and compact filters (BIP157) --------------------------------------

/// rust-bitcoin refuses flags beyond 2, which the arm's enum could not hold either.
fn filterload(payload: &[u8]) -> Decoded {
    let msg: FilterLoad = deserialize(payload)?;
    let flags = match msg.flags {
        BloomFlags::None => wire::filter_load::BloomFlags::None,
        BloomFlags::All => wire::filter_load::BloomFlags::All,
        BloomFlags::PubkeyOnly => wire::filter_load::BloomFlags::PubkeyOnly,
    };
    Ok(Msg::Filterload(wire::FilterLoad {
        filter: msg.filter,
        hash_funcs: msg.hash_funcs,
        tweak: msg.tweak,
        flags: flags as i32,
    }))
}

/// The P2P message is `getcfilters`; the schema's arm is `getcfilter`.
fn getcfilters(payload: &[u8]) -> Decoded {
    let msg: GetCFilters = deserialize(payload)?;
    Ok(Msg::Getcfilter(wire::GetCFilter {
        filter_type: u32::from(msg.filter_type),
        start_height: msg.start_height,
        stop_hash: internal(msg.stop_hash),
    }))
}

fn cfilter(payload: &[u8]) -> Decoded {
    let msg: CFilter = deserialize(payload)?;
    Ok(Msg::Cfilter(wire::CFilter {
        filter_type: u32::from(msg.filter_type),
        block_hash: internal(msg.block_hash),
        filter: msg.filter,
    }))
}

fn getcfheaders(payload: &[u8]) -> Decoded {
    let msg: GetCFHeaders = deserialize(payload)?;
    Ok(Msg::Getcfheaders(wire::GetCfHeaders {
        filter_type: u32::from(msg.filter_type),
        start_height: msg.start_height,
        stop_hash: internal(msg.stop_hash),
    }))
}

fn cfheaders(payload: &[u8]) -> Decoded {
    let msg: CFHeaders = deserialize(payload)?;
    Ok(Msg::Cfheaders(wire::CfHeaders {
        filter_type: u32::from(msg.filter_type),
        stop_hash: internal(msg.stop_hash),
        previous_filter_header: internal(msg.previous_filter_header),
        filter_hashes: msg.filter_hashes.into_iter().map(internal).collect(),
    }))
}

fn getcfcheckpt(payload: &[u8]) -> Decoded {
    let msg: GetCFCheckpt = deserialize(payload)?;
    Ok(Msg::Getcfcheckpt(wire::GetCfCheckpt {
        filter_type: u32::from(msg.filter_type),
        stop_hash: internal(msg.stop_hash),
    }))
}

fn cfcheckpt(payload: &[u8]) -> Decoded {
    let msg: CFCheckpt = deserialize(payload)?;
    Ok(Msg::Cfcheckpt(wire::CfCheckpt {
        filter_type: u32::from(msg.filter_type),
        stop_hash: internal(msg.stop_hash),
        filter_headers: msg.filter_headers.into_iter().map(internal).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::bip158::{FilterHash, FilterHeader};
    use bitcoin::blockdata::constants::genesis_block;
    use bitcoin::hashes::sha256d;
    use bitcoin::p2p::address::AddrV2Message;
    use bitcoin::p2p::message::NetworkMessage;
    use bitcoin::p2p::message_compact_blocks::{BlockTxn, CmpctBlock, GetBlockTxn};
    use bitcoin::p2p::message_network::Reject;
    use bitcoin::{
        transaction, Amount, Network, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Txid, Witness,
        Wtxid,
    };
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;
    use crate::event::strict::check_required;
    use crate::p2p::samples::*;

    /// Serializes `msg` as rust-bitcoin puts it on the wire, then decodes it back.
    fn roundtrip(msg: &NetworkMessage) -> Msg {
        let decoded = decode_message(msg.cmd(), &serialize(msg));
        assert_wire_valid(&decoded);
        decoded
    }

    /// Inside a full MessageEvent, the arm passes the strict proto2 required-field check.
    fn assert_wire_valid(msg: &Msg) {
        let event = wire::MessageEvent {
            meta: wire::Metadata {
                peer_id: 1,
                addr: "127.0.0.1:8333".into(),
                conn_type: primitives::ConnType::Inbound as i32,
                command: "test".into(),
                inbound: true,
                size: 0,
            },
            msg: Some(msg.clone()),
        };
        check_required(
            "ebpf_extractor.message.MessageEvent",
            &event.encode_to_vec(),
        )
        .expect("every required field is present");
    }

    fn raw(command: &str, payload: &[u8]) -> Msg {
        Msg::Unknown(wire::Unknown {
            command: command.into(),
            payload: payload.to_vec(),
        })
    }

    fn assert_unknown(command: &str, payload: &[u8]) {
        assert_eq!(
            decode_message(command, payload),
            raw(command, payload),
            "{command}"
        );
    }

    fn witness_tx() -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array(ascending(7)),
                    vout: 1,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![1u8, 2, 3], vec![4u8]]),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(50_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        }
    }

    /// The genesis block plus a segwit transaction (the merkle root is not checked anywhere).
    fn two_tx_block() -> bitcoin::Block {
        let mut block = genesis_block(Network::Bitcoin);
        block.txdata.push(witness_tx());
        block
    }

    fn expected_tx(tx: &Transaction) -> primitives::Transaction {
        primitives::Transaction {
            txid: tx.compute_txid().to_byte_array().to_vec(),
            wtxid: tx.compute_wtxid().to_byte_array().to_vec(),
            raw: Some(serialize(tx)),
        }
    }

    fn address_arm(address: &primitives::Address) -> &AddressArm {
        address.address.as_ref().expect("address arm is set")
    }

    // ---- ping / pong / bool arms -------------------------------------------------------------

    #[test]
    fn ping_and_pong_carry_the_nonce() {
        let nonce = 0x0102_0304_0506_0708;
        assert_eq!(
            roundtrip(&NetworkMessage::Ping(nonce)),
            Msg::Ping(wire::Ping { value: nonce })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::Pong(nonce)),
            Msg::Pong(wire::Pong { value: nonce })
        );
    }

    #[test]
    fn empty_ping_is_oldping_but_empty_pong_is_unknown() {
        assert_eq!(decode_message("ping", &[]), Msg::Oldping(true));
        assert_unknown("pong", &[]);
        assert_unknown("ping", &[0; 7]);
        assert_unknown("ping", &[0; 9]);
    }

    #[test]
    fn payloadless_messages_map_to_their_bool_arm() {
        let cases = [
            (NetworkMessage::Verack, Msg::Verack(true)),
            (NetworkMessage::SendHeaders, Msg::Sendheaders(true)),
            (NetworkMessage::GetAddr, Msg::Getaddr(true)),
            (NetworkMessage::MemPool, Msg::Mempool(true)),
            (NetworkMessage::WtxidRelay, Msg::Wtxidrelay(true)),
            (NetworkMessage::SendAddrV2, Msg::Sendaddrv2(true)),
            (NetworkMessage::FilterClear, Msg::Filterclear(true)),
        ];
        for (message, expected) in cases {
            assert_eq!(roundtrip(&message), expected);
            // A payload where none belongs is kept raw rather than dropped.
            assert_unknown(message.cmd(), &[0]);
        }
    }

    // ---- inventory ---------------------------------------------------------------------------

    #[test]
    fn inventory_types_map_to_their_items() {
        let txid = Txid::from_byte_array(ascending(0));
        let wtxid = Wtxid::from_byte_array(ascending(40));
        let hash = block_hash(80);
        let items = vec![
            Inventory::Error,
            Inventory::Transaction(txid),
            Inventory::Block(hash),
            Inventory::WTx(wtxid),
            Inventory::WitnessTransaction(txid),
            Inventory::WitnessBlock(hash),
            Inventory::CompactBlock(hash),
            Inventory::Unknown {
                inv_type: 3,
                hash: ascending(120),
            },
        ];
        let expected = vec![
            Item::Error(true),
            Item::Transaction(txid.to_byte_array().to_vec()),
            Item::Block(hash.to_byte_array().to_vec()),
            Item::Wtx(wtxid.to_byte_array().to_vec()),
            Item::WitnessTransaction(txid.to_byte_array().to_vec()),
            Item::WitnessBlock(hash.to_byte_array().to_vec()),
            Item::CompactBlock(hash.to_byte_array().to_vec()),
            Item::Unknown(primitives::UnknownItem {
                inv_type: 3,
                hash: ascending(120).to_vec(),
            }),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|item| primitives::InventoryItem { item: Some(item) })
            .collect();

        assert_eq!(
            roundtrip(&NetworkMessage::Inv(items.clone())),
            Msg::Inv(wire::Inv {
                items: expected.clone()
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::GetData(items.clone())),
            Msg::Getdata(wire::GetData {
                items: expected.clone()
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::NotFound(items)),
            Msg::Notfound(wire::NotFound { items: expected })
        );
    }

    #[test]
    fn inv_txid_arrives_in_internal_byte_order() {
        let txid = witness_tx().compute_txid();
        let Msg::Inv(inv) = roundtrip(&NetworkMessage::Inv(vec![Inventory::WTx(
            Wtxid::from_byte_array(txid.to_byte_array()),
        )])) else {
            panic!("not an inv");
        };
        let Some(Item::Wtx(bytes)) = &inv.items[0].item else {
            panic!("not a wtx item");
        };
        assert_eq!(bytes.as_slice(), txid.to_byte_array().as_slice());
        // Display (RPC) order is the reverse.
        assert_ne!(hex::encode(bytes), txid.to_string());
        let mut reversed = bytes.clone();
        reversed.reverse();
        assert_eq!(hex::encode(reversed), txid.to_string());
    }

    #[test]
    fn empty_inv_is_an_empty_list() {
        assert_eq!(
            decode_message("inv", &[0]),
            Msg::Inv(wire::Inv { items: vec![] })
        );
    }

    // ---- transactions, blocks, headers --------------------------------------------------------

    #[test]
    fn tx_carries_txid_wtxid_and_raw() {
        let tx = witness_tx();
        let Msg::Tx(decoded) = roundtrip(&NetworkMessage::Tx(tx.clone())) else {
            panic!("not a tx");
        };
        assert_eq!(decoded.tx, expected_tx(&tx));
        assert_ne!(decoded.tx.txid, decoded.tx.wtxid, "segwit tx: ids differ");
    }

    #[test]
    fn block_carries_header_and_transactions() {
        let block = two_tx_block();
        let Msg::Block(decoded) = roundtrip(&NetworkMessage::Block(block.clone())) else {
            panic!("not a block");
        };
        let header = &decoded.header;
        assert_eq!(header.version, 1);
        assert_eq!(header.time, 1_231_006_505);
        assert_eq!(header.bits, 0x1d00_ffff);
        assert_eq!(header.nonce, 2_083_236_893);
        assert_eq!(header.prev_blockhash, vec![0; 32]);
        assert_eq!(
            header.merkle_root,
            block.header.merkle_root.to_byte_array().to_vec()
        );
        // The genesis hash 000000000019d6…8ce26f, in internal order.
        assert_eq!(
            hex::encode(&header.hash),
            "6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000"
        );
        let expected: Vec<_> = block.txdata.iter().map(expected_tx).collect();
        assert_eq!(decoded.transactions, expected);
    }

    #[test]
    fn headers_carry_hash_and_fields() {
        let genesis = genesis_block(Network::Bitcoin).header;
        let mut second = genesis;
        second.prev_blockhash = genesis.block_hash();
        second.nonce = 7;
        let Msg::Headers(decoded) = roundtrip(&NetworkMessage::Headers(vec![genesis, second]))
        else {
            panic!("not headers");
        };
        assert_eq!(decoded.headers.len(), 2);
        assert_eq!(
            decoded.headers[0].hash,
            genesis.block_hash().to_byte_array().to_vec()
        );
        assert_eq!(decoded.headers[1].prev_blockhash, decoded.headers[0].hash);
        assert_eq!(decoded.headers[1].nonce, 7);
        assert_eq!(
            decoded.headers[1].hash,
            second.block_hash().to_byte_array().to_vec()
        );
    }

    #[test]
    fn headers_with_a_transaction_count_stay_raw() {
        let mut payload = serialize(&VarInt(1));
        payload.extend(serialize(&genesis_block(Network::Bitcoin).header));
        payload.push(1);
        assert_unknown("headers", &payload);
    }

    #[test]
    fn getheaders_and_getblocks_carry_locator_and_stop() {
        let locator = vec![block_hash(1), block_hash(2)];
        let stop = block_hash(3);
        let expected_locator: Vec<Vec<u8>> =
            locator.iter().map(|h| h.to_byte_array().to_vec()).collect();
        assert_eq!(
            roundtrip(&NetworkMessage::GetHeaders(GetHeadersMessage::new(
                locator.clone(),
                stop
            ))),
            Msg::Getheaders(wire::GetHeaders {
                version: bitcoin::p2p::PROTOCOL_VERSION,
                locator_hashes: expected_locator.clone(),
                stop_hash: ascending(3).to_vec(),
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::GetBlocks(GetBlocksMessage::new(
                locator, stop
            ))),
            Msg::Getblocks(wire::GetBlocks {
                version: bitcoin::p2p::PROTOCOL_VERSION,
                locator_hashes: expected_locator,
                stop_hash: ascending(3).to_vec(),
            })
        );
    }

    #[test]
    fn merkleblock_carries_tree() {
        let block = two_tx_block();
        let wanted = witness_tx().compute_txid();
        let merkle = MerkleBlock::from_block_with_predicate(&block, |txid| *txid == wanted);
        let Msg::Merkleblock(decoded) = roundtrip(&NetworkMessage::MerkleBlock(merkle.clone()))
        else {
            panic!("not a merkleblock");
        };
        assert_eq!(decoded.header, block_header(&block.header));
        assert_eq!(decoded.num_transactions, 2);
        let hashes: Vec<Vec<u8>> = merkle
            .txn
            .hashes()
            .iter()
            .map(|h| h.to_byte_array().to_vec())
            .collect();
        assert_eq!(decoded.hashes, hashes);
        // Flag bytes are whole bytes: the tree's bits, then zero padding.
        assert_eq!(decoded.bits.len() % 8, 0);
        assert!(decoded.bits.starts_with(merkle.txn.bits()));
        assert!(decoded.bits[merkle.txn.bits().len()..]
            .iter()
            .all(|bit| !bit));
    }

    // ---- compact blocks ----------------------------------------------------------------------

    #[test]
    fn sendcmpct_strict_announce_byte() {
        let msg = SendCmpct {
            send_compact: true,
            version: 2,
        };
        assert_eq!(
            roundtrip(&NetworkMessage::SendCmpct(msg)),
            Msg::Sendcompact(wire::SendCompact {
                send_compact: true,
                version: 2
            })
        );
        let mut payload = serialize(&msg);
        payload[0] = 2;
        assert_unknown("sendcmpct", &payload);
    }

    #[test]
    fn cmpctblock_carries_short_ids_and_prefilled() {
        let block = two_tx_block();
        let compact = HeaderAndShortIds::from_block(&block, 42, 2, &[]).expect("compact block");
        let Msg::Compactblock(decoded) = roundtrip(&NetworkMessage::CmpctBlock(CmpctBlock {
            compact_block: compact.clone(),
        })) else {
            panic!("not a compact block");
        };
        assert_eq!(decoded.header, block_header(&block.header));
        assert_eq!(decoded.nonce, 42);
        assert_eq!(
            decoded.short_ids,
            vec![compact.short_ids[0].to_bytes().to_vec()]
        );
        assert_eq!(
            decoded.transactions,
            vec![primitives::PrefilledTransaction {
                diff_index: 0,
                tx: expected_tx(&block.txdata[0]),
            }]
        );
    }

    #[test]
    fn getblocktxn_turns_differential_indexes_absolute() {
        let request = BlockTransactionsRequest {
            block_hash: block_hash(9),
            indexes: vec![0, 2, 5],
        };
        let payload = serialize(&request);
        // On the wire: count 3, then the differences 0, 1, 2.
        assert_eq!(&payload[32..], &[3, 0, 1, 2]);
        assert_eq!(
            roundtrip(&NetworkMessage::GetBlockTxn(GetBlockTxn {
                txs_request: request
            })),
            Msg::Getblocktxn(wire::GetBlockTxn {
                block_hash: ascending(9).to_vec(),
                tx_indexes: vec![0, 2, 5],
            })
        );
    }

    #[test]
    fn blocktxn_carries_transactions() {
        let tx = witness_tx();
        assert_eq!(
            roundtrip(&NetworkMessage::BlockTxn(BlockTxn {
                transactions: BlockTransactions {
                    block_hash: block_hash(4),
                    transactions: vec![tx.clone()],
                },
            })),
            Msg::Blocktxn(wire::BlockTxn {
                block_hash: ascending(4).to_vec(),
                transactions: vec![expected_tx(&tx)],
            })
        );
    }

    // ---- addresses ---------------------------------------------------------------------------

    #[test]
    fn addr_maps_ipv4_ipv6_and_onioncat() {
        let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
        // Tor v2 example from Bitcoin Core's tests (fd87:d87e:eb43:edb1:8e4:3588:e546:35ca).
        let onion = P2pAddress {
            services,
            address: [
                0xfd87, 0xd87e, 0xeb43, 0xedb1, 0x08e4, 0x3588, 0xe546, 0x35ca,
            ],
            port: 9050,
        };
        let entries = vec![
            (
                1_700_000_000,
                P2pAddress::new(&socket("1.2.3.4:8333"), services),
            ),
            (
                1_700_000_001,
                P2pAddress::new(&socket("[2001:db8::1]:18444"), services),
            ),
            (1_700_000_002, onion),
        ];
        let Msg::Addr(decoded) = roundtrip(&NetworkMessage::Addr(entries)) else {
            panic!("not addr");
        };
        let expected = [
            (1_700_000_000, AddressArm::Ipv4("1.2.3.4".into()), 8333),
            (1_700_000_001, AddressArm::Ipv6("2001:db8::1".into()), 18444),
            (
                1_700_000_002,
                AddressArm::Torv2("5wyqrzbvrdsumnok.onion".into()),
                9050,
            ),
        ];
        assert_eq!(decoded.addresses.len(), expected.len());
        for (address, (timestamp, arm, port)) in decoded.addresses.iter().zip(expected) {
            assert_eq!(address.timestamp, timestamp);
            assert_eq!(address_arm(address), &arm);
            assert_eq!(address.port, port);
            assert_eq!(address.services, services.to_u64());
        }
    }

    const I2P_NAME: &str = "udhdrtrcetjm5sxzskjyr5ztpeszydbh4dpl3pl4utgqqw2v4jna.b32.i2p";

    fn addrv2_entry_of(addr: AddrV2) -> AddrV2Message {
        AddrV2Message {
            time: 1_700_000_000,
            services: ServiceFlags::NETWORK,
            addr,
            port: 8333,
        }
    }

    #[test]
    fn addrv2_maps_every_network() {
        let cases = [
            (
                AddrV2::Ipv4("8.8.4.4".parse().expect("ip")),
                AddressArm::Ipv4("8.8.4.4".into()),
            ),
            (
                AddrV2::Ipv6("2001:db8::2".parse().expect("ip")),
                AddressArm::Ipv6("2001:db8::2".into()),
            ),
            (
                AddrV2::TorV2([0xed, 0xb1, 0x08, 0xe4, 0x35, 0x88, 0xe5, 0x46, 0x35, 0xca]),
                AddressArm::Torv2("5wyqrzbvrdsumnok.onion".into()),
            ),
            (
                AddrV2::TorV3(array32(TORV3_PUBKEY)),
                AddressArm::Torv3(TORV3_NAME.into()),
            ),
            (
                AddrV2::I2p(array32(I2P_HASH)),
                AddressArm::I2p(I2P_NAME.into()),
            ),
            (
                AddrV2::Cjdns("fc00::1".parse().expect("ip")),
                AddressArm::Cjdns("fc00::1".into()),
            ),
            (
                AddrV2::Unknown(42, vec![1, 2, 3]),
                AddressArm::Unknown(primitives::UnknownAddress {
                    id: 42,
                    address: vec![1, 2, 3],
                }),
            ),
        ];
        let entries = cases
            .iter()
            .map(|(a, _)| addrv2_entry_of(a.clone()))
            .collect();
        let Msg::Addrv2(decoded) = roundtrip(&NetworkMessage::AddrV2(entries)) else {
            panic!("not addrv2");
        };
        assert_eq!(decoded.addresses.len(), cases.len());
        for (address, (_, arm)) in decoded.addresses.iter().zip(&cases) {
            assert_eq!(address_arm(address), arm);
            assert_eq!(address.timestamp, 1_700_000_000);
            assert_eq!(address.services, 1);
            assert_eq!(address.port, 8333);
        }
    }

    #[test]
    fn addrv2_keeps_entries_core_ignores_as_unknown_addresses() {
        let mapped = {
            let mut bytes = vec![0u8; 10];
            bytes.extend([0xff, 0xff, 1, 2, 3, 4]);
            bytes
        };
        let not_fc = vec![0xfd; 16];
        let entries = vec![
            addrv2_entry_of(AddrV2::Unknown(2, mapped.clone())),
            addrv2_entry_of(AddrV2::Unknown(6, not_fc.clone())),
        ];
        let Msg::Addrv2(decoded) = roundtrip(&NetworkMessage::AddrV2(entries)) else {
            panic!("not addrv2");
        };
        let arms: Vec<_> = decoded.addresses.iter().map(address_arm).cloned().collect();
        assert_eq!(
            arms,
            vec![
                AddressArm::Unknown(primitives::UnknownAddress {
                    id: 2,
                    address: mapped
                }),
                AddressArm::Unknown(primitives::UnknownAddress {
                    id: 6,
                    address: not_fc
                }),
            ]
        );
    }

    #[test]
    fn addrv2_with_a_wrong_address_size_stays_raw() {
        let entries = vec![addrv2_entry_of(AddrV2::Unknown(1, vec![1, 2, 3]))];
        assert_unknown("addrv2", &serialize(&entries));
        let too_long = vec![addrv2_entry_of(AddrV2::Unknown(99, vec![0; 513]))];
        assert_unknown("addrv2", &serialize(&too_long));
    }

    #[test]
    fn empty_addrv2_payload_is_emptyaddrv2() {
        assert_eq!(decode_message("addrv2", &[]), Msg::Emptyaddrv2(true));
        assert_eq!(
            decode_message("addrv2", &[0]),
            Msg::Addrv2(wire::AddrV2 { addresses: vec![] })
        );
    }

    // ---- version, reject, feefilter, alert ---------------------------------------------------

    fn expected_version(relay: bool) -> Msg {
        let services = (ServiceFlags::NETWORK | ServiceFlags::WITNESS).to_u64();
        Msg::Version(wire::Version {
            version: bitcoin::p2p::PROTOCOL_VERSION,
            services,
            timestamp: 1_700_000_000,
            receiver: primitives::Address {
                timestamp: 0,
                address: Some(AddressArm::Ipv4("1.2.3.4".into())),
                services: 0,
                port: 8333,
            },
            sender: primitives::Address {
                timestamp: 0,
                address: Some(AddressArm::Ipv6("2001:db8::1".into())),
                services,
                port: 18444,
            },
            nonce: 0xdead_beef_cafe_f00d,
            user_agent: "/Satoshi:27.0.0/".into(),
            start_height: 850_000,
            relay,
        })
    }

    #[test]
    fn version_carries_every_field() {
        for relay in [false, true] {
            let decoded = roundtrip(&NetworkMessage::Version(version_message(relay)));
            assert_eq!(decoded, expected_version(relay));
        }
    }

    #[test]
    fn version_without_relay_byte_means_relay() {
        let payload = serialize(&version_message(false));
        let without_relay = &payload[..payload.len() - 1];
        assert_eq!(
            decode_message("version", without_relay),
            expected_version(true)
        );
    }

    #[test]
    fn version_with_odd_relay_byte_or_user_agent_stays_raw() {
        let mut payload = serialize(&version_message(true));
        if let Some(relay) = payload.last_mut() {
            *relay = 2;
        }
        assert_unknown("version", &payload);

        // Non-UTF-8 user agent: the arm's string could not hold it.
        let mut msg = version_message(true);
        msg.user_agent = "/x/".into();
        let mut payload = serialize(&msg);
        let position = payload.len() - 4 - 1 - 2; // the 'x', before start height and relay
        payload[position] = 0xff;
        assert_unknown("version", &payload);
    }

    #[test]
    fn reject_with_hash() {
        let msg = Reject {
            message: "tx".into(),
            ccode: RejectReason::Fee,
            reason: "min relay fee not met".into(),
            hash: sha256d::Hash::from_byte_array(ascending(5)),
        };
        assert_eq!(
            roundtrip(&NetworkMessage::Reject(msg)),
            Msg::Reject(wire::Reject {
                rejected_command: "tx".into(),
                reason: wire::reject::RejectReason::Fee as i32,
                reason_details: "min relay fee not met".into(),
                hash: ascending(5).to_vec(),
            })
        );
    }

    #[test]
    fn reject_codes_and_optional_hash() {
        use wire::reject::RejectReason as Wire;
        let codes = [
            (0x01, Wire::Malformed),
            (0x10, Wire::Invalid),
            (0x11, Wire::Obsolete),
            (0x12, Wire::Duplicate),
            (0x40, Wire::Nonstandard),
            (0x41, Wire::Dust),
            (0x42, Wire::Fee),
            (0x43, Wire::Checkpoint),
        ];
        for (code, expected) in codes {
            let decoded = decode_message("reject", &reject_payload(code, &[]));
            assert_wire_valid(&decoded);
            assert_eq!(
                decoded,
                Msg::Reject(wire::Reject {
                    rejected_command: "tx".into(),
                    reason: expected as i32,
                    reason_details: "reason".into(),
                    hash: vec![],
                })
            );
        }
        assert_unknown("reject", &reject_payload(0x99, &[]));
        assert_unknown("reject", &reject_payload(0x10, &[1, 2, 3]));
    }

    #[test]
    fn feefilter_keeps_any_i64() {
        assert_eq!(
            roundtrip(&NetworkMessage::FeeFilter(1_000)),
            Msg::Feefilter(wire::FeeFilter { fee: 1_000 })
        );
        // Outside MoneyRange: Core ignores the value, rust-bitcoin's NetworkMessage rejects it.
        assert_eq!(
            decode_message("feefilter", &serialize(&-5i64)),
            Msg::Feefilter(wire::FeeFilter { fee: -5 })
        );
    }

    #[test]
    fn alert_keeps_the_whole_payload() {
        let payload = serialize(&NetworkMessage::Alert(vec![1, 2, 3]));
        assert_eq!(
            decode_message("alert", &payload),
            Msg::Alert(wire::Alert {
                alert: payload.clone()
            })
        );
        // A signed alert: vchMsg then vchSig.
        let mut signed = serialize(&vec![9u8; 20]);
        signed.extend(serialize(&vec![7u8; 71]));
        assert_eq!(
            decode_message("alert", &signed),
            Msg::Alert(wire::Alert {
                alert: signed.clone()
            })
        );
    }

    // ---- bloom filters and BIP157 ------------------------------------------------------------

    #[test]
    fn filterload_and_filteradd() {
        let load = FilterLoad {
            filter: vec![0xab; 10],
            hash_funcs: 11,
            tweak: 0xdead_beef,
            flags: BloomFlags::PubkeyOnly,
        };
        assert_eq!(
            roundtrip(&NetworkMessage::FilterLoad(load.clone())),
            Msg::Filterload(wire::FilterLoad {
                filter: vec![0xab; 10],
                hash_funcs: 11,
                tweak: 0xdead_beef,
                flags: wire::filter_load::BloomFlags::PubkeyOnly as i32,
            })
        );
        let mut payload = serialize(&load);
        if let Some(flags) = payload.last_mut() {
            *flags = 3;
        }
        assert_unknown("filterload", &payload);

        assert_eq!(
            roundtrip(&NetworkMessage::FilterAdd(FilterAdd {
                data: vec![1, 2, 3]
            })),
            Msg::Filteradd(wire::FilterAdd {
                filter: vec![1, 2, 3]
            })
        );
    }

    #[test]
    fn compact_filter_messages() {
        let stop = block_hash(10);
        assert_eq!(
            roundtrip(&NetworkMessage::GetCFilters(GetCFilters {
                filter_type: 0,
                start_height: 100,
                stop_hash: stop,
            })),
            Msg::Getcfilter(wire::GetCFilter {
                filter_type: 0,
                start_height: 100,
                stop_hash: ascending(10).to_vec(),
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::CFilter(CFilter {
                filter_type: 0,
                block_hash: stop,
                filter: vec![5, 6],
            })),
            Msg::Cfilter(wire::CFilter {
                filter_type: 0,
                block_hash: ascending(10).to_vec(),
                filter: vec![5, 6],
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::GetCFHeaders(GetCFHeaders {
                filter_type: 0,
                start_height: 7,
                stop_hash: stop,
            })),
            Msg::Getcfheaders(wire::GetCfHeaders {
                filter_type: 0,
                start_height: 7,
                stop_hash: ascending(10).to_vec(),
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::CFHeaders(CFHeaders {
                filter_type: 0,
                stop_hash: stop,
                previous_filter_header: FilterHeader::from_byte_array(ascending(20)),
                filter_hashes: vec![FilterHash::from_byte_array(ascending(30))],
            })),
            Msg::Cfheaders(wire::CfHeaders {
                filter_type: 0,
                stop_hash: ascending(10).to_vec(),
                previous_filter_header: ascending(20).to_vec(),
                filter_hashes: vec![ascending(30).to_vec()],
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::GetCFCheckpt(GetCFCheckpt {
                filter_type: 0,
                stop_hash: stop,
            })),
            Msg::Getcfcheckpt(wire::GetCfCheckpt {
                filter_type: 0,
                stop_hash: ascending(10).to_vec(),
            })
        );
        assert_eq!(
            roundtrip(&NetworkMessage::CFCheckpt(CFCheckpt {
                filter_type: 0,
                stop_hash: stop,
                filter_headers: vec![FilterHeader::from_byte_array(ascending(40))],
            })),
            Msg::Cfcheckpt(wire::CfCheckpt {
                filter_type: 0,
                stop_hash: ascending(10).to_vec(),
                filter_headers: vec![ascending(40).to_vec()],
            })
        );
    }

    // ---- unknown, garbage, truncation, fuzz --------------------------------------------------

    #[test]
    fn unknown_commands_stay_raw() {
        // `getcfilter` is the arm's name, not a P2P message type.
        for command in ["sendtxrcncl", "feature", "getcfilter", "", "\u{1}garbage"] {
            assert_unknown(command, &[1, 2, 3]);
            assert_unknown(command, &[]);
        }
    }

    #[test]
    fn garbage_payloads_stay_raw_with_exact_bytes() {
        let garbage = [0xff, 0xfe, 0xfd];
        for command in KNOWN_COMMANDS.iter().filter(|c| **c != "alert") {
            assert_unknown(command, &garbage);
        }
    }

    /// Length prefixes far beyond the payload fail at the end of the data, without huge
    /// allocations (rust-bitcoin caps them) and without looping per announced item.
    #[test]
    fn huge_length_prefixes_stay_raw() {
        let huge_count = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        for command in KNOWN_COMMANDS.iter().filter(|c| **c != "alert") {
            assert_unknown(command, &huge_count);
        }
        // A merkleblock announcing 4,000,000 flag bytes it does not carry.
        let mut merkle = serialize(&genesis_block(Network::Bitcoin).header);
        merkle.extend([1, 0, 0, 0, 0]);
        merkle.extend(serialize(&VarInt(4_000_000)));
        assert_unknown("merkleblock", &merkle);
        // A segwit tx whose input announces 4,000,000 witness elements.
        let mut tx = serialize(&witness_tx());
        // The witness "02 03010203 0104" sits before the 4-byte locktime.
        let witness_start = tx.len() - 4 - 7;
        assert_eq!(&tx[witness_start..tx.len() - 4], &[2, 3, 1, 2, 3, 1, 4]);
        tx.truncate(witness_start);
        tx.extend(serialize(&VarInt(4_000_000)));
        assert_unknown("tx", &tx);
    }

    /// One valid payload per structured message type.
    fn valid_samples() -> Vec<(&'static str, Vec<u8>)> {
        let block = two_tx_block();
        let merkle = MerkleBlock::from_block_with_predicate(&block, |_| true);
        let compact = HeaderAndShortIds::from_block(&block, 1, 2, &[]).expect("compact block");
        let txid = witness_tx().compute_txid();
        let messages = vec![
            NetworkMessage::Version(version_message(true)),
            NetworkMessage::Ping(5),
            NetworkMessage::Pong(5),
            NetworkMessage::Inv(vec![Inventory::Transaction(txid)]),
            NetworkMessage::GetData(vec![Inventory::Block(block_hash(1))]),
            NetworkMessage::NotFound(vec![Inventory::WTx(Wtxid::from_byte_array(ascending(2)))]),
            NetworkMessage::Tx(witness_tx()),
            NetworkMessage::Block(block.clone()),
            NetworkMessage::Headers(vec![block.header]),
            NetworkMessage::GetHeaders(GetHeadersMessage::new(vec![block_hash(1)], block_hash(2))),
            NetworkMessage::GetBlocks(GetBlocksMessage::new(vec![block_hash(1)], block_hash(2))),
            NetworkMessage::Addr(vec![(
                1,
                P2pAddress::new(&socket("1.2.3.4:8333"), ServiceFlags::NETWORK),
            )]),
            NetworkMessage::AddrV2(vec![addrv2_entry_of(AddrV2::TorV3(array32(TORV3_PUBKEY)))]),
            NetworkMessage::FeeFilter(1_000),
            NetworkMessage::Reject(Reject {
                message: "block".into(),
                ccode: RejectReason::Invalid,
                reason: "bad".into(),
                hash: sha256d::Hash::from_byte_array(ascending(1)),
            }),
            NetworkMessage::SendCmpct(SendCmpct {
                send_compact: false,
                version: 2,
            }),
            NetworkMessage::CmpctBlock(CmpctBlock {
                compact_block: compact,
            }),
            NetworkMessage::GetBlockTxn(GetBlockTxn {
                txs_request: BlockTransactionsRequest {
                    block_hash: block_hash(1),
                    indexes: vec![1, 3],
                },
            }),
            NetworkMessage::BlockTxn(BlockTxn {
                transactions: BlockTransactions {
                    block_hash: block_hash(1),
                    transactions: vec![witness_tx()],
                },
            }),
            NetworkMessage::FilterLoad(FilterLoad {
                filter: vec![1; 4],
                hash_funcs: 3,
                tweak: 4,
                flags: BloomFlags::All,
            }),
            NetworkMessage::FilterAdd(FilterAdd { data: vec![1; 4] }),
            NetworkMessage::MerkleBlock(merkle),
            NetworkMessage::GetCFilters(GetCFilters {
                filter_type: 0,
                start_height: 1,
                stop_hash: block_hash(1),
            }),
            NetworkMessage::CFilter(CFilter {
                filter_type: 0,
                block_hash: block_hash(1),
                filter: vec![1, 2],
            }),
            NetworkMessage::GetCFHeaders(GetCFHeaders {
                filter_type: 0,
                start_height: 1,
                stop_hash: block_hash(1),
            }),
            NetworkMessage::CFHeaders(CFHeaders {
                filter_type: 0,
                stop_hash: block_hash(1),
                previous_filter_header: FilterHeader::from_byte_array(ascending(1)),
                filter_hashes: vec![FilterHash::from_byte_array(ascending(2))],
            }),
            NetworkMessage::GetCFCheckpt(GetCFCheckpt {
                filter_type: 0,
                stop_hash: block_hash(1),
            }),
            NetworkMessage::CFCheckpt(CFCheckpt {
                filter_type: 0,
                stop_hash: block_hash(1),
                filter_headers: vec![FilterHeader::from_byte_array(ascending(3))],
            }),
        ];
        messages.iter().map(|m| (m.cmd(), serialize(m))).collect()
    }

    #[test]
    fn every_sample_decodes_to_a_structured_arm() {
        for (command, payload) in valid_samples() {
            let decoded = decode_message(command, &payload);
            assert_ne!(decoded_kind(&decoded), "unknown", "{command}");
            assert_wire_valid(&decoded);
        }
    }

    #[test]
    fn trailing_bytes_keep_the_payload_raw() {
        for (command, mut payload) in valid_samples() {
            payload.push(0);
            assert_unknown(command, &payload);
        }
    }

    /// A prefix of a valid payload only decodes where a trailing field is optional.
    fn prefix_may_decode(command: &str, prefix_len: usize, full_len: usize) -> bool {
        match command {
            "ping" | "addrv2" => prefix_len == 0,
            "version" => prefix_len == full_len - 1,
            "reject" => prefix_len == full_len - 32,
            _ => false,
        }
    }

    #[test]
    fn truncated_payloads_never_panic_and_stay_raw() {
        for (command, payload) in valid_samples() {
            for len in 0..payload.len() {
                let decoded = decode_message(command, &payload[..len]);
                assert_wire_valid(&decoded);
                if !prefix_may_decode(command, len, payload.len()) {
                    assert_eq!(decoded, raw(command, &payload[..len]), "{command} {len}");
                }
            }
        }
    }

    #[test]
    fn decoded_kind_names_the_arm() {
        assert_eq!(decoded_kind(&decode_message("ping", &[])), "oldping");
        assert_eq!(decoded_kind(&decode_message("addrv2", &[])), "emptyaddrv2");
        assert_eq!(decoded_kind(&decode_message("verack", &[])), "verack");
        assert_eq!(decoded_kind(&decode_message("sendtxrcncl", &[])), "unknown");
        let version = serialize(&version_message(true));
        assert_eq!(
            decoded_kind(&decode_message("version", &version)),
            "version"
        );
    }

    // ---- helpers: base32, SHA3, onion names ----------------------------------------------------

    #[test]
    fn onion_and_i2p_names() {
        assert_eq!(onion_v3(&array32(TORV3_PUBKEY)), TORV3_NAME);
        assert_eq!(i2p(&array32(I2P_HASH)), I2P_NAME);
    }

    fn command_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(KNOWN_COMMANDS).prop_map(str::to_string),
            1 => "[a-z]{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn random_payloads_never_panic_or_lose_bytes(
            command in command_strategy(),
            payload in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let decoded = decode_message(&command, &payload);
            assert_wire_valid(&decoded);
            if let Msg::Unknown(unknown) = &decoded {
                prop_assert_eq!(&unknown.command, &command);
                prop_assert_eq!(&unknown.payload, &payload);
            }
        }

        #[test]
        fn corrupted_valid_payloads_never_panic(
            sample in any::<prop::sample::Index>(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let samples = valid_samples();
            let (command, mut payload) = sample.get(&samples).clone();
            let index = position.index(payload.len());
            payload[index] = byte;
            let decoded = decode_message(command, &payload);
            assert_wire_valid(&decoded);
        }
    }
}
