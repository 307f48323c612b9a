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

use crate::event::proto::bitcoin_primitives as primitives;
use crate::event::proto::ebpf_extractor::message as wire;
use primitives::address::Address as AddressArm;
use primitives::inventory_item::Item;
use wire::message_event::Msg;

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

fn transaction(tx: &Transaction) -> primitives::Transaction {
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
        AddrV2::I2p(hash) => AddressArm::I2p(format!("{}.b32.i2p", base32_lower(&hash))),
        AddrV2::Cjdns(ip) => AddressArm::Cjdns(ip.to_string()),
        AddrV2::Unknown(id, bytes) => AddressArm::Unknown(primitives::UnknownAddress {
            id: u32::from(id),
            address: bytes,
        }),
    }
}

/// A Tor v2 name: base32 of the 10-byte service id.
fn onion_v2(service_id: &[u8]) -> String {
    format!("{}.onion", base32_lower(service_id))
}

/// A Tor v3 name (rend-spec-v3 §6): base32(PUBKEY | CHECKSUM | VERSION) + ".onion", where
/// CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[..2] and VERSION = 3.
fn onion_v3(pubkey: &[u8; 32]) -> String {
    const VERSION: u8 = 3;
    let mut preimage = Vec::with_capacity(48);
    preimage.extend_from_slice(b".onion checksum");
    preimage.extend_from_slice(pubkey);
    preimage.push(VERSION);
    let checksum = sha3::sha3_256(&preimage);

    let mut name = [0u8; 35];
    name[..32].copy_from_slice(pubkey);
    name[32..34].copy_from_slice(&checksum[..2]);
    name[34] = VERSION;
    format!("{}.onion", base32_lower(&name))
}

/// RFC 4648 base32, lowercase, unpadded: the form Tor and I2P names use.
fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity((data.len() * 8).div_ceil(5));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
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

/// SHA3-256 (FIPS 202) for the Tor v3 checksum: neither rust-bitcoin nor the crate's
/// dependencies provide it, and the checksum is what makes a v3 name usable.
mod sha3 {
    const RATE: usize = 136;

    const ROUND_CONSTANTS: [u64; 24] = [
        0x0000_0000_0000_0001,
        0x0000_0000_0000_8082,
        0x8000_0000_0000_808a,
        0x8000_0000_8000_8000,
        0x0000_0000_0000_808b,
        0x0000_0000_8000_0001,
        0x8000_0000_8000_8081,
        0x8000_0000_0000_8009,
        0x0000_0000_0000_008a,
        0x0000_0000_0000_0088,
        0x0000_0000_8000_8009,
        0x0000_0000_8000_000a,
        0x0000_0000_8000_808b,
        0x8000_0000_0000_008b,
        0x8000_0000_0000_8089,
        0x8000_0000_0000_8003,
        0x8000_0000_0000_8002,
        0x8000_0000_0000_0080,
        0x0000_0000_0000_800a,
        0x8000_0000_8000_000a,
        0x8000_0000_8000_8081,
        0x8000_0000_0000_8080,
        0x0000_0000_8000_0001,
        0x8000_0000_8000_8008,
    ];

    /// ρ rotation of each lane visited along the π walk starting at lane 1.
    const RHO: [u32; 24] = [
        1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44,
    ];

    /// The π walk: the lane each step moves the previous lane into.
    const PI: [usize; 24] = [
        10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1,
    ];

    pub(super) fn sha3_256(data: &[u8]) -> [u8; 32] {
        let mut state = [0u64; 25];
        let mut blocks = data.chunks_exact(RATE);
        for block in &mut blocks {
            absorb(&mut state, block);
        }
        // Domain bits 01, then pad10*1.
        let rest = blocks.remainder();
        let mut last = [0u8; RATE];
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] ^= 0x06;
        last[RATE - 1] ^= 0x80;
        absorb(&mut state, &last);

        let mut digest = [0u8; 32];
        for (out, lane) in digest.chunks_exact_mut(8).zip(state) {
            out.copy_from_slice(&lane.to_le_bytes());
        }
        digest
    }

    fn absorb(state: &mut [u64; 25], block: &[u8]) {
        for (lane, bytes) in state.iter_mut().zip(block.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *lane ^= u64::from_le_bytes(word);
        }
        keccak_f1600(state);
    }

    fn keccak_f1600(a: &mut [u64; 25]) {
        for round_constant in ROUND_CONSTANTS {
            // θ: xor each lane with the parities of two neighbouring columns.
            let mut parity = [0u64; 5];
            for (x, p) in parity.iter_mut().enumerate() {
                *p = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
            }
            for (i, lane) in a.iter_mut().enumerate() {
                let x = i % 5;
                *lane ^= parity[(x + 4) % 5] ^ parity[(x + 1) % 5].rotate_left(1);
            }
            // ρ and π: rotate each lane and move it along the π walk.
            let mut carried = a[1];
            for (&target, &rotation) in PI.iter().zip(RHO.iter()) {
                let displaced = a[target];
                a[target] = carried.rotate_left(rotation);
                carried = displaced;
            }
            // χ: the only non-linear step, row by row.
            for row in a.chunks_exact_mut(5) {
                let old = [row[0], row[1], row[2], row[3], row[4]];
                for (x, lane) in row.iter_mut().enumerate() {
                    *lane = old[x] ^ (!old[(x + 1) % 5] & old[(x + 2) % 5]);
                }
            }
            // ι
            a[0] ^= round_constant;
        }
    }
}

#[cfg(test)]
mod tests {
    // TESTS
}
