//! Re-encoding of decoded P2P messages: the exact inverse of [`crate::p2p::decode`].
//!
//! A recording keeps a peer's messages as peer-observer `MessageEvent.msg` arms. To replay
//! them to a node, [`encode_msg`] turns an arm back into the P2P message type and the payload
//! (without the 24-byte header, which [`super::frame`] adds).
//!
//! Invariants:
//! - **Exact inverse.** For every `(command, payload)` that
//!   [`decode_message`](crate::p2p::decode::decode_message) turns into a structured
//!   arm, `encode_msg(&decode_message(command, payload))` is `Ok((command, payload))` byte for
//!   byte. It differs in only two places, where the decoder itself is lossy: a `version`
//!   without the optional relay byte, and an inventory MSG_ERROR item with a non-zero hash
//!   (see `version` and `inventory_item`). In every case, `decode(encode(x)) == x` holds
//!   for each arm `x` the decoder produces. `Msg::Unknown` comes back verbatim.
//! - **Never invents bytes.** Every byte written comes from a field of the arm. Transactions
//!   are written from their `raw` serialization. A field with no wire form is a
//!   [`ReencodeError`]: a transaction without `raw`, a hash that is not 32 bytes, a number too
//!   wide for its wire field, an address string that does not parse. The decoder derives some
//!   fields, and the wire has no slot for them: `txid`, `wtxid`, a header's `hash`, the
//!   timestamp of a `version` address, the value of a bool arm. These fields are never read.
//! - **Hashes are in internal byte order**, as the decoder writes them, so they go on the wire
//!   unchanged.
//! - **Never panics on input.** Lengths, widths and orderings are checked before anything is
//!   written.

use std::net::{Ipv4Addr, Ipv6Addr};

use bitcoin::consensus::encode::{Encodable, VarInt};
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
use bitcoin::{block, CompactTarget};

use super::address;
use crate::event::proto::bitcoin_primitives as primitives;
use crate::event::proto::ebpf_extractor::message as wire;
use primitives::address::Address as AddressArm;
use primitives::inventory_item::Item;
use wire::message_event::Msg;

/// Why an arm cannot be turned back into wire bytes. `field` names the schema field as
/// `Message.field` (e.g. `Transaction.raw`).
#[derive(Debug, thiserror::Error)]
pub enum ReencodeError {
    /// A transaction without its consensus serialization: txid and wtxid cannot rebuild it.
    #[error("{field}: transaction has no raw serialization")]
    MissingRawTransaction {
        /// Where the transaction sits.
        field: &'static str,
    },
    /// A fixed-size byte field (a hash, a short id) has the wrong length.
    #[error("{field}: {actual} bytes, expected {expected}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// The wire size.
        expected: usize,
        /// What the arm holds.
        actual: usize,
    },
    /// A sub-message or oneof the wire form needs is unset.
    #[error("{field} is not set")]
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// A number is wider than its wire field.
    #[error("{field}: {value} exceeds the wire maximum {max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// What the arm holds.
        value: u64,
        /// The largest value the wire field carries.
        max: u64,
    },
    /// An enum field holds a number the schema does not define.
    #[error("{field}: {value} is not a defined enum value")]
    UnknownEnumValue {
        /// The field.
        field: &'static str,
        /// What the arm holds.
        value: i32,
    },
    /// An address string does not parse, or names a network the message cannot carry.
    #[error("{field}: {reason}: {value:?}")]
    InvalidAddress {
        /// The address arm.
        field: &'static str,
        /// The string (or a description of the arm).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The values cannot be expressed in the wire's encoding of the field.
    #[error("{field}: {reason}")]
    NotEncodable {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

type Encoded = Result<Vec<u8>, ReencodeError>;

/// The command and payload that `decode_message` turns into `msg`, i.e. the message to send
/// (without its 24-byte header). `Msg::Unknown` is returned verbatim.
pub fn encode_msg(msg: &Msg) -> Result<(String, Vec<u8>), ReencodeError> {
    // The commands are the decoder's own dispatch strings. An empty payload is the message
    // for every bool arm. The decoder only ever sets these arms to `true`, and the arm being
    // present is the message, so the value is never read.
    let (command, payload) = match msg {
        Msg::Unknown(unknown) => return Ok((unknown.command.clone(), unknown.payload.clone())),
        Msg::Verack(_) => ("verack", Vec::new()),
        Msg::Sendheaders(_) => ("sendheaders", Vec::new()),
        Msg::Getaddr(_) => ("getaddr", Vec::new()),
        Msg::Mempool(_) => ("mempool", Vec::new()),
        Msg::Wtxidrelay(_) => ("wtxidrelay", Vec::new()),
        Msg::Sendaddrv2(_) => ("sendaddrv2", Vec::new()),
        Msg::Filterclear(_) => ("filterclear", Vec::new()),
        // A pre-BIP31 ping: no nonce.
        Msg::Oldping(_) => ("ping", Vec::new()),
        // An addrv2 without even an entry count (an `addrv2` with count 0 is `Addrv2`).
        Msg::Emptyaddrv2(_) => ("addrv2", Vec::new()),
        Msg::Ping(arm) => ("ping", encoded(&arm.value)),
        Msg::Pong(arm) => ("pong", encoded(&arm.value)),
        Msg::Feefilter(arm) => ("feefilter", encoded(&arm.fee)),
        Msg::Inv(arm) => ("inv", inventory(&arm.items)?),
        Msg::Getdata(arm) => ("getdata", inventory(&arm.items)?),
        Msg::Notfound(arm) => ("notfound", inventory(&arm.items)?),
        Msg::Tx(arm) => ("tx", raw_transaction(&arm.tx, "Tx.tx")?.to_vec()),
        Msg::Block(arm) => ("block", block(arm)?),
        Msg::Headers(arm) => ("headers", headers(&arm.headers)?),
        Msg::Getheaders(arm) => ("getheaders", getheaders(arm)?),
        Msg::Getblocks(arm) => ("getblocks", getblocks(arm)?),
        Msg::Merkleblock(arm) => ("merkleblock", merkleblock(arm)?),
        Msg::Addr(arm) => ("addr", addr(&arm.addresses)?),
        Msg::Addrv2(arm) => ("addrv2", addrv2(&arm.addresses)?),
        Msg::Version(arm) => ("version", version(arm)?),
        Msg::Reject(arm) => ("reject", reject(arm)?),
        Msg::Sendcompact(arm) => ("sendcmpct", sendcmpct(arm)),
        Msg::Compactblock(arm) => ("cmpctblock", cmpctblock(arm)?),
        Msg::Getblocktxn(arm) => ("getblocktxn", getblocktxn(arm)?),
        Msg::Blocktxn(arm) => ("blocktxn", blocktxn(arm)?),
        // The decoder keeps the whole alert payload, so it goes back as is.
        Msg::Alert(arm) => ("alert", arm.alert.clone()),
        Msg::Filterload(arm) => ("filterload", filterload(arm)?),
        Msg::Filteradd(arm) => (
            "filteradd",
            encoded(&FilterAdd {
                data: arm.filter.clone(),
            }),
        ),
        Msg::Getcfilter(arm) => ("getcfilters", getcfilters(arm)?),
        Msg::Cfilter(arm) => ("cfilter", cfilter(arm)?),
        Msg::Getcfheaders(arm) => ("getcfheaders", getcfheaders(arm)?),
        Msg::Cfheaders(arm) => ("cfheaders", cfheaders(arm)?),
        Msg::Getcfcheckpt(arm) => ("getcfcheckpt", getcfcheckpt(arm)?),
        Msg::Cfcheckpt(arm) => ("cfcheckpt", cfcheckpt(arm)?),
    };
    Ok((command.to_owned(), payload))
}

// ---- writing helpers -------------------------------------------------------------------------

/// Appends `value`'s consensus encoding. Writing into a `Vec` cannot fail (rust-bitcoin's own
/// `serialize` relies on this too), so the io error has nothing to report.
fn put<T: Encodable + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = value.consensus_encode(out);
}

/// `value`'s consensus encoding on its own.
fn encoded<T: Encodable + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, value);
    out
}

/// A CompactSize count or length prefix.
fn put_len(out: &mut Vec<u8>, len: usize) {
    put(out, &VarInt::from(len));
}

/// Narrows a schema integer to its wire width; too wide is an error, never a truncation.
fn narrow<T: TryFrom<u64>>(value: u64, field: &'static str, max: T) -> Result<T, ReencodeError>
where
    u64: From<T>,
{
    T::try_from(value).map_err(|_| ReencodeError::OutOfRange {
        field,
        value,
        max: u64::from(max),
    })
}

/// A fixed-size byte field.
fn fixed<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], ReencodeError> {
    bytes.try_into().map_err(|_| ReencodeError::WrongLength {
        field,
        expected: N,
        actual: bytes.len(),
    })
}

/// A 32-byte hash, already in internal (wire) byte order.
fn hash<H: Hash<Bytes = [u8; 32]>>(bytes: &[u8], field: &'static str) -> Result<H, ReencodeError> {
    fixed::<32>(bytes, field).map(H::from_byte_array)
}

fn hashes<H: Hash<Bytes = [u8; 32]>>(
    list: &[Vec<u8>],
    field: &'static str,
) -> Result<Vec<H>, ReencodeError> {
    list.iter().map(|bytes| hash(bytes, field)).collect()
}

/// A transaction's exact received bytes. txid and wtxid are derived from them, so they are
/// not read.
fn raw_transaction<'a>(
    tx: &'a primitives::Transaction,
    field: &'static str,
) -> Result<&'a [u8], ReencodeError> {
    tx.raw
        .as_deref()
        .ok_or(ReencodeError::MissingRawTransaction { field })
}

/// A counted list of transactions, each as its raw bytes.
fn put_transactions(
    out: &mut Vec<u8>,
    txs: &[primitives::Transaction],
    field: &'static str,
) -> Result<(), ReencodeError> {
    put_len(out, txs.len());
    for tx in txs {
        out.extend_from_slice(raw_transaction(tx, field)?);
    }
    Ok(())
}

/// The six header fields on the wire. `hash` is derived from them, so it is not read.
fn block_header(header: &primitives::BlockHeader) -> Result<block::Header, ReencodeError> {
    Ok(block::Header {
        version: block::Version::from_consensus(header.version),
        prev_blockhash: hash(&header.prev_blockhash, "BlockHeader.prev_blockhash")?,
        merkle_root: hash(&header.merkle_root, "BlockHeader.merkle_root")?,
        time: header.time,
        bits: CompactTarget::from_consensus(header.bits),
        nonce: header.nonce,
    })
}

// ---- inventory -------------------------------------------------------------------------------

fn inventory(items: &[primitives::InventoryItem]) -> Encoded {
    let items = items
        .iter()
        .map(inventory_item)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(encoded(&items))
}

fn inventory_item(item: &primitives::InventoryItem) -> Result<Inventory, ReencodeError> {
    const FIELD: &str = "InventoryItem.item";
    let item = item
        .item
        .as_ref()
        .ok_or(ReencodeError::MissingField { field: FIELD })?;
    Ok(match item {
        // Lossy decoder spot: every MSG_ERROR (type 0) becomes `Error(true)` and its hash,
        // which has no meaning, is dropped. It goes back with the all-zero hash rust-bitcoin
        // writes for MSG_ERROR. A received error item with another hash therefore re-encodes
        // differently, and decoding the result still gives `Error(true)`.
        Item::Error(_) => Inventory::Error,
        Item::Transaction(h) => Inventory::Transaction(hash(h, FIELD)?),
        Item::Block(h) => Inventory::Block(hash(h, FIELD)?),
        Item::Wtx(h) => Inventory::WTx(hash(h, FIELD)?),
        Item::WitnessTransaction(h) => Inventory::WitnessTransaction(hash(h, FIELD)?),
        Item::WitnessBlock(h) => Inventory::WitnessBlock(hash(h, FIELD)?),
        Item::CompactBlock(h) => Inventory::CompactBlock(hash(h, FIELD)?),
        Item::Unknown(unknown) => Inventory::Unknown {
            inv_type: unknown.inv_type,
            hash: fixed(&unknown.hash, "UnknownItem.hash")?,
        },
    })
}

// ---- blocks and headers ----------------------------------------------------------------------

fn block(msg: &wire::Block) -> Encoded {
    let mut out = encoded(&block_header(&msg.header)?);
    put_transactions(&mut out, &msg.transactions, "Block.transactions")?;
    Ok(out)
}

/// Written by hand, as the decoder reads it: each header is followed by a tx count. The decoder
/// only accepts a count of 0, so 0 is written.
fn headers(headers: &[primitives::BlockHeader]) -> Encoded {
    let mut out = Vec::new();
    put_len(&mut out, headers.len());
    for header in headers {
        put(&mut out, &block_header(header)?);
        put_len(&mut out, 0);
    }
    Ok(out)
}

fn getheaders(msg: &wire::GetHeaders) -> Encoded {
    Ok(encoded(&GetHeadersMessage {
        version: msg.version,
        locator_hashes: hashes(&msg.locator_hashes, "GetHeaders.locator_hashes")?,
        stop_hash: hash(&msg.stop_hash, "GetHeaders.stop_hash")?,
    }))
}

fn getblocks(msg: &wire::GetBlocks) -> Encoded {
    Ok(encoded(&GetBlocksMessage {
        version: msg.version,
        locator_hashes: hashes(&msg.locator_hashes, "GetBlocks.locator_hashes")?,
        stop_hash: hash(&msg.stop_hash, "GetBlocks.stop_hash")?,
    }))
}

/// Written by hand: rust-bitcoin's partial merkle tree cannot be built from its parts. The
/// decoder keeps every bit of the flag bytes (padding included), least significant first, so
/// whole bytes are required. Padding a partial byte would add bits the arm does not have.
fn merkleblock(msg: &wire::MerkleBlock) -> Encoded {
    const BITS: &str = "MerkleBlock.bits";
    if !msg.bits.len().is_multiple_of(8) {
        return Err(ReencodeError::NotEncodable {
            field: BITS,
            reason: "bit count is not a multiple of 8 (whole flag bytes)",
        });
    }
    let mut out = encoded(&block_header(&msg.header)?);
    put(&mut out, &msg.num_transactions);
    let tree_hashes: Vec<bitcoin::TxMerkleNode> = hashes(&msg.hashes, "MerkleBlock.hashes")?;
    put(&mut out, &tree_hashes);
    let flag_bytes: Vec<u8> = msg
        .bits
        .chunks(8)
        .map(|bits| {
            bits.iter()
                .enumerate()
                .fold(0u8, |byte, (i, &bit)| byte | (u8::from(bit) << i))
        })
        .collect();
    put(&mut out, &flag_bytes);
    Ok(out)
}

// ---- compact blocks (BIP152) -----------------------------------------------------------------

fn sendcmpct(msg: &wire::SendCompact) -> Vec<u8> {
    encoded(&SendCmpct {
        send_compact: msg.send_compact,
        version: msg.version,
    })
}

/// Written by hand so prefilled transactions go out as their raw bytes. The layout is that of
/// rust-bitcoin's `HeaderAndShortIds`: header, nonce, 6-byte short ids, then (differential
/// index, tx) pairs. The index is a CompactSize that rust-bitcoin caps at u16.
fn cmpctblock(msg: &wire::CompactBlock) -> Encoded {
    let mut out = encoded(&block_header(&msg.header)?);
    put(&mut out, &msg.nonce);
    put_len(&mut out, msg.short_ids.len());
    for short_id in &msg.short_ids {
        out.extend_from_slice(&fixed::<6>(short_id, "CompactBlock.short_ids")?);
    }
    put_len(&mut out, msg.transactions.len());
    for prefilled in &msg.transactions {
        let index = narrow(
            u64::from(prefilled.diff_index),
            "PrefilledTransaction.diff_index",
            u16::MAX,
        )?;
        put(&mut out, &VarInt::from(index));
        out.extend_from_slice(raw_transaction(&prefilled.tx, "PrefilledTransaction.tx")?);
    }
    Ok(out)
}

/// The arm holds absolute indexes, and the wire holds differences (each index minus the
/// previous one plus one). Written by hand because rust-bitcoin's encoder panics on indexes
/// that are not increasing. The checks mirror its decoder: strictly increasing and below
/// u64::MAX.
fn getblocktxn(msg: &wire::GetBlockTxn) -> Encoded {
    let mut out = encoded(&hash::<bitcoin::BlockHash>(
        &msg.block_hash,
        "GetBlockTxn.block_hash",
    )?);
    put_len(&mut out, msg.tx_indexes.len());
    let mut next = 0u64;
    for &index in &msg.tx_indexes {
        let (Some(difference), Some(after)) = (index.checked_sub(next), index.checked_add(1))
        else {
            return Err(ReencodeError::NotEncodable {
                field: "GetBlockTxn.tx_indexes",
                reason: "indexes must be strictly increasing and below u64::MAX",
            });
        };
        put(&mut out, &VarInt(difference));
        next = after;
    }
    Ok(out)
}

fn blocktxn(msg: &wire::BlockTxn) -> Encoded {
    let mut out = encoded(&hash::<bitcoin::BlockHash>(
        &msg.block_hash,
        "BlockTxn.block_hash",
    )?);
    put_transactions(&mut out, &msg.transactions, "BlockTxn.transactions")?;
    Ok(out)
}

// ---- network messages ------------------------------------------------------------------------

/// Field by field, as the decoder reads it. Lossy decoder spot: BIP37 makes the trailing
/// relay byte optional, and the decoder reads a missing byte as `relay: true`. The arm cannot
/// tell whether the byte was there, so it is always written. A version received without it
/// re-encodes one byte longer (ending in 0x01), and decoding the result gives the same arm.
fn version(msg: &wire::Version) -> Encoded {
    let mut out = Vec::new();
    put(&mut out, &msg.version);
    put(&mut out, &ServiceFlags::from(msg.services));
    put(&mut out, &msg.timestamp);
    // The addresses in `version` carry no timestamp, so theirs is not read.
    put(&mut out, &v1_address(&msg.receiver, "Version.receiver")?);
    put(&mut out, &v1_address(&msg.sender, "Version.sender")?);
    put(&mut out, &msg.nonce);
    put(&mut out, &msg.user_agent);
    put(&mut out, &msg.start_height);
    put(&mut out, &msg.relay);
    Ok(out)
}

/// Field by field, as the decoder reads it: BIP61 only sends the hash for a tx or block, so
/// an empty `hash` means none.
fn reject(msg: &wire::Reject) -> Encoded {
    let mut out = Vec::new();
    put(&mut out, &msg.rejected_command);
    put(&mut out, &reject_code(msg.reason)?);
    put(&mut out, &msg.reason_details);
    if !msg.hash.is_empty() {
        out.extend_from_slice(&fixed::<32>(&msg.hash, "Reject.hash")?);
    }
    Ok(out)
}

fn reject_code(reason: i32) -> Result<RejectReason, ReencodeError> {
    use wire::reject::RejectReason as Wire;
    let reason = Wire::try_from(reason).map_err(|_| ReencodeError::UnknownEnumValue {
        field: "Reject.reason",
        value: reason,
    })?;
    Ok(match reason {
        Wire::Malformed => RejectReason::Malformed,
        Wire::Invalid => RejectReason::Invalid,
        Wire::Obsolete => RejectReason::Obsolete,
        Wire::Duplicate => RejectReason::Duplicate,
        Wire::Nonstandard => RejectReason::NonStandard,
        Wire::Dust => RejectReason::Dust,
        Wire::Fee => RejectReason::Fee,
        Wire::Checkpoint => RejectReason::Checkpoint,
    })
}

// ---- addresses -------------------------------------------------------------------------------

/// OnionCat prefix under which addr (v1) carries Tor v2 addresses (fd87:d87e:eb43::/48). It is
/// the decoder's constant, which is private there.
const ONIONCAT_PREFIX: [u8; 6] = [0xfd, 0x87, 0xd8, 0x7e, 0xeb, 0x43];

fn addr(addresses: &[primitives::Address]) -> Encoded {
    let entries = addresses
        .iter()
        .map(|address| Ok((address.timestamp, v1_address(address, "Addr.addresses")?)))
        .collect::<Result<Vec<_>, ReencodeError>>()?;
    Ok(encoded(&entries))
}

/// An addr (v1) / version address: services, 16 bytes of IPv6, big-endian port. IPv4 is
/// mapped (::ffff:0:0/96), and Tor v2 goes behind the OnionCat prefix, inverting the
/// decoder's classification. The other networks exist only in addrv2.
fn v1_address(
    address: &primitives::Address,
    field: &'static str,
) -> Result<P2pAddress, ReencodeError> {
    let ip = match address_arm(address, field)? {
        AddressArm::Ipv4(text) => parse_ipv4(text, field)?.to_ipv6_mapped(),
        AddressArm::Ipv6(text) => parse_ipv6(text, field)?,
        AddressArm::Torv2(name) => {
            let mut octets = [0u8; 16];
            octets[..6].copy_from_slice(&ONIONCAT_PREFIX);
            octets[6..].copy_from_slice(&torv2_service_id(name, field)?);
            Ipv6Addr::from(octets)
        }
        other => {
            return Err(ReencodeError::InvalidAddress {
                field,
                value: format!("{other:?}"),
                reason: "only addrv2 can carry this network",
            })
        }
    };
    Ok(P2pAddress {
        services: ServiceFlags::from(address.services),
        address: ip.segments(),
        port: port(address, field)?,
    })
}

/// Entries are written by hand, as the decoder reads them (BIP155): time, CompactSize
/// services, network id and address, big-endian port.
fn addrv2(addresses: &[primitives::Address]) -> Encoded {
    let mut out = Vec::new();
    put_len(&mut out, addresses.len());
    for address in addresses {
        put_addrv2_entry(&mut out, address)?;
    }
    Ok(out)
}

fn put_addrv2_entry(out: &mut Vec<u8>, address: &primitives::Address) -> Result<(), ReencodeError> {
    const FIELD: &str = "AddrV2.addresses";
    let network_address = addrv2_network_address(address_arm(address, FIELD)?)?;
    put(out, &address.timestamp);
    put(out, &VarInt(address.services));
    put(out, &network_address);
    out.extend_from_slice(&port(address, FIELD)?.to_be_bytes());
    Ok(())
}

/// Inverts the decoder's naming of each BIP155 network. `Unknown` addresses go back with
/// their own id and bytes. These include the decoder's fallback for entries that rust-bitcoin
/// refuses, and the bytes are exactly what arrived.
fn addrv2_network_address(arm: &AddressArm) -> Result<AddrV2, ReencodeError> {
    Ok(match arm {
        AddressArm::Ipv4(text) => AddrV2::Ipv4(parse_ipv4(text, "Address.ipv4")?),
        AddressArm::Ipv6(text) => AddrV2::Ipv6(parse_ipv6(text, "Address.ipv6")?),
        AddressArm::Cjdns(text) => AddrV2::Cjdns(parse_ipv6(text, "Address.cjdns")?),
        AddressArm::Torv2(name) => AddrV2::TorV2(torv2_service_id(name, "Address.torv2")?),
        AddressArm::Torv3(name) => AddrV2::TorV3(torv3_pubkey(name)?),
        AddressArm::I2p(name) => AddrV2::I2p(i2p_hash(name)?),
        AddressArm::Unknown(unknown) => AddrV2::Unknown(
            narrow(u64::from(unknown.id), "UnknownAddress.id", u8::MAX)?,
            unknown.address.clone(),
        ),
    })
}

fn address_arm<'a>(
    address: &'a primitives::Address,
    field: &'static str,
) -> Result<&'a AddressArm, ReencodeError> {
    address
        .address
        .as_ref()
        .ok_or(ReencodeError::MissingField { field })
}

fn port(address: &primitives::Address, field: &'static str) -> Result<u16, ReencodeError> {
    narrow(u64::from(address.port), field, u16::MAX)
}

fn invalid_address(field: &'static str, text: &str, reason: &'static str) -> ReencodeError {
    ReencodeError::InvalidAddress {
        field,
        value: text.to_owned(),
        reason,
    }
}

fn parse_ipv4(text: &str, field: &'static str) -> Result<Ipv4Addr, ReencodeError> {
    text.parse()
        .map_err(|_| invalid_address(field, text, "not an IPv4 address"))
}

fn parse_ipv6(text: &str, field: &'static str) -> Result<Ipv6Addr, ReencodeError> {
    text.parse()
        .map_err(|_| invalid_address(field, text, "not an IPv6 address"))
}

/// The 10-byte service id of a Tor v2 name (`<base32>.onion`).
fn torv2_service_id(name: &str, field: &'static str) -> Result<[u8; 10], ReencodeError> {
    name.strip_suffix(".onion")
        .and_then(address::base32_decode)
        .ok_or_else(|| invalid_address(field, name, "not a Tor v2 .onion name"))
}

/// The public key of a Tor v3 name: base32(PUBKEY | CHECKSUM | VERSION) + ".onion". Only the
/// key goes on the wire. The checksum and version are checked so that a mistyped name is an
/// error rather than a different address.
fn torv3_pubkey(name: &str) -> Result<[u8; 32], ReencodeError> {
    address::torv3_pubkey(name).ok_or_else(|| {
        invalid_address(
            "Address.torv3",
            name,
            "not a Tor v3 .onion name with a valid checksum and version",
        )
    })
}

/// The 32-byte destination hash of an I2P name (`<base32>.b32.i2p`).
fn i2p_hash(name: &str) -> Result<[u8; 32], ReencodeError> {
    name.strip_suffix(".b32.i2p")
        .and_then(address::base32_decode)
        .ok_or_else(|| invalid_address("Address.i2p", name, "not an I2P .b32.i2p name"))
}

// ---- bloom filters (BIP37) and compact filters (BIP157) --------------------------------------

fn filterload(msg: &wire::FilterLoad) -> Encoded {
    use wire::filter_load::BloomFlags as Wire;
    let flags = match Wire::try_from(msg.flags) {
        Ok(Wire::None) => BloomFlags::None,
        Ok(Wire::All) => BloomFlags::All,
        Ok(Wire::PubkeyOnly) => BloomFlags::PubkeyOnly,
        Err(_) => {
            return Err(ReencodeError::UnknownEnumValue {
                field: "FilterLoad.flags",
                value: msg.flags,
            })
        }
    };
    Ok(encoded(&FilterLoad {
        filter: msg.filter.clone(),
        hash_funcs: msg.hash_funcs,
        tweak: msg.tweak,
        flags,
    }))
}

/// BIP157 filter types are one byte on the wire; the schema widens them to u32.
fn filter_type(value: u32, field: &'static str) -> Result<u8, ReencodeError> {
    narrow(u64::from(value), field, u8::MAX)
}

/// The schema's `getcfilter` arm is the P2P message `getcfilters`.
fn getcfilters(msg: &wire::GetCFilter) -> Encoded {
    Ok(encoded(&GetCFilters {
        filter_type: filter_type(msg.filter_type, "GetCFilter.filter_type")?,
        start_height: msg.start_height,
        stop_hash: hash(&msg.stop_hash, "GetCFilter.stop_hash")?,
    }))
}

fn cfilter(msg: &wire::CFilter) -> Encoded {
    Ok(encoded(&CFilter {
        filter_type: filter_type(msg.filter_type, "CFilter.filter_type")?,
        block_hash: hash(&msg.block_hash, "CFilter.block_hash")?,
        filter: msg.filter.clone(),
    }))
}

fn getcfheaders(msg: &wire::GetCfHeaders) -> Encoded {
    Ok(encoded(&GetCFHeaders {
        filter_type: filter_type(msg.filter_type, "GetCFHeaders.filter_type")?,
        start_height: msg.start_height,
        stop_hash: hash(&msg.stop_hash, "GetCFHeaders.stop_hash")?,
    }))
}

fn cfheaders(msg: &wire::CfHeaders) -> Encoded {
    Ok(encoded(&CFHeaders {
        filter_type: filter_type(msg.filter_type, "CFHeaders.filter_type")?,
        stop_hash: hash(&msg.stop_hash, "CFHeaders.stop_hash")?,
        previous_filter_header: hash(
            &msg.previous_filter_header,
            "CFHeaders.previous_filter_header",
        )?,
        filter_hashes: hashes(&msg.filter_hashes, "CFHeaders.filter_hashes")?,
    }))
}

fn getcfcheckpt(msg: &wire::GetCfCheckpt) -> Encoded {
    Ok(encoded(&GetCFCheckpt {
        filter_type: filter_type(msg.filter_type, "GetCFCheckpt.filter_type")?,
        stop_hash: hash(&msg.stop_hash, "GetCFCheckpt.stop_hash")?,
    }))
}

fn cfcheckpt(msg: &wire::CfCheckpt) -> Encoded {
    Ok(encoded(&CFCheckpt {
        filter_type: filter_type(msg.filter_type, "CFCheckpt.filter_type")?,
        stop_hash: hash(&msg.stop_hash, "CFCheckpt.stop_hash")?,
        filter_headers: hashes(&msg.filter_headers, "CFCheckpt.filter_headers")?,
    }))
}

#[cfg(test)]
mod tests {
    use bitcoin::consensus::encode::{deserialize, serialize};
    use proptest::prelude::*;

    use super::*;
    use crate::p2p::decode::decode_message;
    use crate::p2p::decode::{decoded_kind, KNOWN_COMMANDS};
    use crate::p2p::samples::*;

    /// Every arm of `MessageEvent.msg`, as `decoded_kind` names them.
    const ALL_ARMS: &[&str] = &[
        "ping",
        "pong",
        "inv",
        "getdata",
        "tx",
        "headers",
        "addr",
        "addrv2",
        "feefilter",
        "getheaders",
        "getblocks",
        "version",
        "notfound",
        "reject",
        "compactblock",
        "sendcompact",
        "block",
        "getblocktxn",
        "blocktxn",
        "alert",
        "filteradd",
        "filterload",
        "getcfcheckpt",
        "cfheaders",
        "cfilter",
        "cfcheckpt",
        "getcfheaders",
        "getcfilter",
        "merkleblock",
        "unknown",
        "verack",
        "sendheaders",
        "getaddr",
        "mempool",
        "wtxidrelay",
        "sendaddrv2",
        "filterclear",
        "emptyaddrv2",
        "oldping",
    ];

    fn encode_ok(msg: &Msg) -> (String, Vec<u8>) {
        match encode_msg(msg) {
            Ok(encoded) => encoded,
            Err(error) => panic!("{}: {error}", decoded_kind(msg)),
        }
    }

    fn decoded_arm(command: &str, payload: &[u8]) -> Msg {
        let msg = decode_message(command, payload);
        assert_ne!(
            decoded_kind(&msg),
            "unknown",
            "{command} sample is structured"
        );
        msg
    }

    // ---- round trips ---------------------------------------------------------------------------

    #[test]
    fn every_arm_round_trips_byte_for_byte() {
        let mut covered = std::collections::BTreeSet::new();
        for (command, payload) in structured_samples() {
            let decoded = decoded_arm(command, &payload);
            covered.insert(decoded_kind(&decoded));
            let (re_command, re_payload) = encode_ok(&decoded);
            assert_eq!(re_command, command);
            assert_eq!(
                hex::encode(&re_payload),
                hex::encode(&payload),
                "{command} / {}",
                decoded_kind(&decoded)
            );
        }
        for (command, payload) in unknown_samples() {
            let decoded = decode_message(command, &payload);
            covered.insert(decoded_kind(&decoded));
            assert_eq!(encode_ok(&decoded), (command.to_string(), payload));
        }
        let missing: Vec<_> = ALL_ARMS
            .iter()
            .filter(|arm| !covered.contains(*arm))
            .collect();
        assert!(missing.is_empty(), "arms without a sample: {missing:?}");
        assert_eq!(covered.len(), ALL_ARMS.len());
    }

    #[test]
    fn unknown_is_returned_verbatim_even_for_a_known_command() {
        // A well-formed ping kept raw (as a recording may hold it) is not re-interpreted.
        let msg = Msg::Unknown(wire::Unknown {
            command: "ping".into(),
            payload: vec![1, 2, 3, 4, 5, 6, 7, 8],
        });
        assert_eq!(
            encode_ok(&msg),
            ("ping".to_string(), vec![1, 2, 3, 4, 5, 6, 7, 8])
        );
    }

    #[test]
    fn bool_arms_are_their_message_whatever_the_value() {
        assert_eq!(encode_ok(&Msg::Verack(false)), ("verack".into(), vec![]));
        assert_eq!(encode_ok(&Msg::Oldping(true)), ("ping".into(), vec![]));
        assert_eq!(
            encode_ok(&Msg::Emptyaddrv2(true)),
            ("addrv2".into(), vec![])
        );
    }

    #[test]
    fn getcfilter_arm_is_the_getcfilters_message() {
        let msg = Msg::Getcfilter(wire::GetCFilter {
            filter_type: 0,
            start_height: 1,
            stop_hash: ascending(3).to_vec(),
        });
        assert_eq!(encode_ok(&msg).0, "getcfilters");
    }

    // ---- the decoder's lossy spots ---------------------------------------------------------------

    #[test]
    fn version_without_relay_byte_gets_an_explicit_relay_byte() {
        let full = serialize(&version_message(true));
        assert_eq!(full.last(), Some(&1));
        let without_relay = &full[..full.len() - 1];
        let decoded = decoded_arm("version", without_relay);
        let (command, payload) = encode_ok(&decoded);
        assert_eq!(command, "version");
        assert_eq!(payload, full);
        assert_eq!(decode_message(&command, &payload), decoded);
    }

    #[test]
    fn msg_error_hash_is_written_as_zeros() {
        let payload = serialize(&vec![Inventory::Unknown {
            inv_type: 0,
            hash: ascending(9),
        }]);
        let decoded = decoded_arm("inv", &payload);
        let (command, re_payload) = encode_ok(&decoded);
        assert_eq!(re_payload, serialize(&vec![Inventory::Error]));
        assert_eq!(&re_payload[..5], &payload[..5]);
        assert_eq!(&re_payload[5..], &[0; 32]);
        assert_eq!(decode_message(&command, &re_payload), decoded);
    }

    // ---- errors --------------------------------------------------------------------------------

    fn sample_arm(command: &str) -> Msg {
        let (command, payload) = structured_samples()
            .into_iter()
            .find(|(c, _)| *c == command)
            .expect("a sample for the command");
        decoded_arm(command, &payload)
    }

    #[test]
    fn transaction_without_raw_is_an_error() {
        let Msg::Tx(mut tx) = sample_arm("tx") else {
            panic!("not a tx");
        };
        tx.tx.raw = None;
        assert!(matches!(
            encode_msg(&Msg::Tx(tx)),
            Err(ReencodeError::MissingRawTransaction { field: "Tx.tx" })
        ));

        let Msg::Block(mut block) = sample_arm("block") else {
            panic!("not a block");
        };
        block.transactions[1].raw = None;
        assert!(matches!(
            encode_msg(&Msg::Block(block)),
            Err(ReencodeError::MissingRawTransaction {
                field: "Block.transactions"
            })
        ));
    }

    #[test]
    fn a_31_byte_hash_is_an_error() {
        let short = ascending(0)[..31].to_vec();
        let getheaders = Msg::Getheaders(wire::GetHeaders {
            version: 70016,
            locator_hashes: vec![],
            stop_hash: short.clone(),
        });
        assert!(matches!(
            encode_msg(&getheaders),
            Err(ReencodeError::WrongLength {
                field: "GetHeaders.stop_hash",
                expected: 32,
                actual: 31
            })
        ));
        let inv = Msg::Inv(wire::Inv {
            items: vec![primitives::InventoryItem {
                item: Some(Item::Transaction(short)),
            }],
        });
        assert!(matches!(
            encode_msg(&inv),
            Err(ReencodeError::WrongLength {
                expected: 32,
                actual: 31,
                ..
            })
        ));
    }

    fn with_address(arm: AddressArm, port: u32) -> primitives::Address {
        primitives::Address {
            timestamp: 1,
            address: Some(arm),
            services: 1,
            port,
        }
    }

    fn addrv2_of(arm: AddressArm) -> Msg {
        Msg::Addrv2(wire::AddrV2 {
            addresses: vec![with_address(arm, 8333)],
        })
    }

    fn addr_of(arm: AddressArm) -> Msg {
        Msg::Addr(wire::Addr {
            addresses: vec![with_address(arm, 8333)],
        })
    }

    #[test]
    fn unparseable_or_misplaced_addresses_are_errors() {
        let bad_v3 = TORV3_NAME.replacen('p', "q", 1);
        let cases = [
            addr_of(AddressArm::Ipv4("1.2.3".into())),
            addr_of(AddressArm::Ipv6("2001:db8::zz".into())),
            addr_of(AddressArm::Torv2("5wyqrzbvrdsumnok.onio".into())),
            // Tor v3 only exists in addrv2.
            addr_of(AddressArm::Torv3(TORV3_NAME.into())),
            addrv2_of(AddressArm::Torv3(bad_v3)),
            addrv2_of(AddressArm::Torv2("5WYQRZBVRDSUMNOK.onion".into())),
            // 52 characters whose last carries non-zero padding bits.
            addrv2_of(AddressArm::I2p(format!("{}.b32.i2p", "a".repeat(51) + "b"))),
            addrv2_of(AddressArm::Cjdns("fc00::1::2".into())),
        ];
        for msg in cases {
            assert!(
                matches!(encode_msg(&msg), Err(ReencodeError::InvalidAddress { .. })),
                "{msg:?}"
            );
        }
        // The correct names encode.
        assert!(encode_msg(&addrv2_of(AddressArm::Torv3(TORV3_NAME.into()))).is_ok());
        assert!(encode_msg(&addr_of(AddressArm::Torv2("5wyqrzbvrdsumnok.onion".into()))).is_ok());
    }

    #[test]
    fn values_without_a_wire_form_are_errors() {
        let too_wide_port = Msg::Addr(wire::Addr {
            addresses: vec![with_address(AddressArm::Ipv4("1.2.3.4".into()), 70_000)],
        });
        assert!(matches!(
            encode_msg(&too_wide_port),
            Err(ReencodeError::OutOfRange {
                value: 70_000,
                max: 65_535,
                ..
            })
        ));
        let no_address = Msg::Addrv2(wire::AddrV2 {
            addresses: vec![primitives::Address {
                timestamp: 0,
                address: None,
                services: 0,
                port: 0,
            }],
        });
        assert!(matches!(
            encode_msg(&no_address),
            Err(ReencodeError::MissingField { .. })
        ));
        let wide_network_id = addrv2_of(AddressArm::Unknown(primitives::UnknownAddress {
            id: 256,
            address: vec![],
        }));
        assert!(matches!(
            encode_msg(&wide_network_id),
            Err(ReencodeError::OutOfRange { max: 255, .. })
        ));
        let no_item = Msg::Getdata(wire::GetData {
            items: vec![primitives::InventoryItem { item: None }],
        });
        assert!(matches!(
            encode_msg(&no_item),
            Err(ReencodeError::MissingField { .. })
        ));

        let Msg::Reject(mut reject) = sample_arm("reject") else {
            panic!("not a reject");
        };
        reject.reason = 99;
        assert!(matches!(
            encode_msg(&Msg::Reject(reject)),
            Err(ReencodeError::UnknownEnumValue { value: 99, .. })
        ));

        let Msg::Filterload(mut filterload) = sample_arm("filterload") else {
            panic!("not a filterload");
        };
        filterload.flags = 3;
        assert!(matches!(
            encode_msg(&Msg::Filterload(filterload)),
            Err(ReencodeError::UnknownEnumValue { value: 3, .. })
        ));

        let Msg::Cfilter(mut cfilter) = sample_arm("cfilter") else {
            panic!("not a cfilter");
        };
        cfilter.filter_type = 256;
        assert!(matches!(
            encode_msg(&Msg::Cfilter(cfilter)),
            Err(ReencodeError::OutOfRange { max: 255, .. })
        ));

        let Msg::Compactblock(compact) = sample_arm("cmpctblock") else {
            panic!("not a compact block");
        };
        let mut short_id = compact.clone();
        short_id.short_ids[0].pop();
        assert!(matches!(
            encode_msg(&Msg::Compactblock(short_id)),
            Err(ReencodeError::WrongLength {
                expected: 6,
                actual: 5,
                ..
            })
        ));
        let mut wide_index = compact;
        wide_index.transactions[0].diff_index = 70_000;
        assert!(matches!(
            encode_msg(&Msg::Compactblock(wide_index)),
            Err(ReencodeError::OutOfRange { max: 65_535, .. })
        ));

        let Msg::Merkleblock(mut merkle) = sample_arm("merkleblock") else {
            panic!("not a merkleblock");
        };
        merkle.bits.truncate(3);
        assert!(matches!(
            encode_msg(&Msg::Merkleblock(merkle)),
            Err(ReencodeError::NotEncodable { .. })
        ));

        let Msg::Reject(mut reject) = sample_arm("reject") else {
            panic!("not a reject");
        };
        reject.hash = vec![0; 33];
        assert!(matches!(
            encode_msg(&Msg::Reject(reject)),
            Err(ReencodeError::WrongLength { actual: 33, .. })
        ));
    }

    #[test]
    fn getblocktxn_indexes_must_be_strictly_increasing() {
        let request = |indexes: Vec<u64>| {
            Msg::Getblocktxn(wire::GetBlockTxn {
                block_hash: ascending(1).to_vec(),
                tx_indexes: indexes,
            })
        };
        for indexes in [vec![5, 5], vec![5, 4], vec![u64::MAX]] {
            assert!(
                matches!(
                    encode_msg(&request(indexes.clone())),
                    Err(ReencodeError::NotEncodable { .. })
                ),
                "{indexes:?}"
            );
        }
        let (_, payload) = encode_ok(&request(vec![0, 2, 5, u64::MAX - 1]));
        assert_eq!(
            decode_message("getblocktxn", &payload),
            request(vec![0, 2, 5, u64::MAX - 1])
        );
    }

    // ---- property: exact inverse over arbitrary and corrupted payloads ---------------------------

    /// A `version` payload's length when it ends after the start height (no relay byte).
    fn version_len_without_relay(version: &wire::Version) -> usize {
        // version, services, timestamp, two 26-byte addresses, nonce; user agent; start height
        4 + 8 + 8 + 26 + 26 + 8 + serialize(&version.user_agent).len() + 4
    }

    /// What `encode_msg` must give back for a payload the decoder structured: the payload
    /// itself, except at the decoder's two lossy spots (worked out independently here).
    fn expected_payload(payload: &[u8], decoded: &Msg) -> Vec<u8> {
        match decoded {
            Msg::Version(version) if payload.len() == version_len_without_relay(version) => {
                [payload, &[1]].concat()
            }
            Msg::Inv(_) | Msg::Getdata(_) | Msg::Notfound(_) => {
                let items: Vec<Inventory> = deserialize(payload).expect("the decoder accepted it");
                let zeroed: Vec<Inventory> = items
                    .into_iter()
                    .map(|item| {
                        if item.is_error() {
                            Inventory::Error
                        } else {
                            item
                        }
                    })
                    .collect();
                serialize(&zeroed)
            }
            _ => payload.to_vec(),
        }
    }

    fn check_inverse(command: &str, payload: &[u8]) -> Result<(), TestCaseError> {
        let decoded = decode_message(command, payload);
        let (re_command, re_payload) = match encode_msg(&decoded) {
            Ok(encoded) => encoded,
            Err(error) => return Err(TestCaseError::fail(format!("{command}: {error}"))),
        };
        prop_assert_eq!(&re_command, command);
        if let Msg::Unknown(_) = decoded {
            prop_assert_eq!(&re_payload, payload);
        } else {
            prop_assert_eq!(
                hex::encode(&re_payload),
                hex::encode(expected_payload(payload, &decoded)),
                "{} / {}",
                command,
                decoded_kind(&decoded)
            );
            prop_assert_eq!(decode_message(&re_command, &re_payload), decoded);
        }
        Ok(())
    }

    fn command_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => proptest::sample::select(KNOWN_COMMANDS).prop_map(str::to_string),
            1 => "[a-z]{0,12}",
        ]
    }

    /// Mostly short payloads: many fixed-size messages (ping, feefilter, sendcmpct, the
    /// BIP157 requests) decode from any bytes of the right length.
    fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..48),
            proptest::collection::vec(any::<u8>(), 0..600),
        ]
    }

    /// How a valid sample is damaged: one byte replaced, cut short, its last byte dropped
    /// (which reaches a `version` without relay byte), or one byte inserted.
    #[derive(Debug, Clone)]
    enum Damage {
        Replace(u8),
        Truncate,
        DropLast,
        Insert(u8),
    }

    fn damage_strategy() -> impl Strategy<Value = Damage> {
        prop_oneof![
            any::<u8>().prop_map(Damage::Replace),
            Just(Damage::Truncate),
            Just(Damage::DropLast),
            any::<u8>().prop_map(Damage::Insert),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_payloads_reencode_exactly(
            command in command_strategy(),
            payload in payload_strategy(),
        ) {
            check_inverse(&command, &payload)?;
        }

        #[test]
        fn damaged_samples_reencode_exactly(
            sample in any::<prop::sample::Index>(),
            position in any::<prop::sample::Index>(),
            damage in damage_strategy(),
        ) {
            let samples = structured_samples();
            let (command, mut payload) = sample.get(&samples).clone();
            let index = position.index(payload.len().max(1));
            match damage {
                Damage::Replace(byte) => {
                    if let Some(slot) = payload.get_mut(index) {
                        *slot = byte;
                    }
                }
                Damage::Truncate => payload.truncate(index),
                Damage::DropLast => {
                    payload.pop();
                }
                Damage::Insert(byte) => payload.insert(index.min(payload.len()), byte),
            }
            check_inverse(command, &payload)?;
        }
    }
}
