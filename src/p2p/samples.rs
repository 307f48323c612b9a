//! Sample P2P data shared by the tests of the decoder ([`decode`](super::decode)) and
//! of its inverse ([`encode`](super::encode)), so both test the same messages; the eBPF
//! extractor's encoder is checked against prost with them too.

use std::net::SocketAddr;

use bitcoin::absolute::LockTime;
use bitcoin::bip152::{BlockTransactions, BlockTransactionsRequest, HeaderAndShortIds};
use bitcoin::bip158::{FilterHash, FilterHeader};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address as P2pAddress};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage, Inventory};
use bitcoin::p2p::message_bloom::{BloomFlags, FilterAdd, FilterLoad};
use bitcoin::p2p::message_compact_blocks::{BlockTxn, CmpctBlock, GetBlockTxn, SendCmpct};
use bitcoin::p2p::message_filter::{
    CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters,
};
use bitcoin::p2p::message_network::{Reject, RejectReason, VersionMessage};
use bitcoin::p2p::ServiceFlags;
use bitcoin::{
    transaction, Amount, BlockHash, MerkleBlock, Network, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Txid, Witness, Wtxid,
};

/// The Tor v3 and I2P names in Bitcoin Core's net tests, with their raw keys.
pub(crate) const TORV3_NAME: &str =
    "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
pub(crate) const TORV3_PUBKEY: &str =
    "79bcc625184b05194975c28b66b66b0469f7f6556fb1ac3189a79b40dda32f1f";
pub(crate) const I2P_HASH: &str =
    "a0ce38ce2224d2cecaf9929388f73379259c0c27e0debdbd7ca4cd085b55e25a";
/// 32 ascending bytes: not a palindrome, so internal and display order differ.
pub(crate) fn ascending(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

pub(crate) fn block_hash(start: u8) -> BlockHash {
    BlockHash::from_byte_array(ascending(start))
}

pub(crate) fn array32(hex_str: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&hex::decode(hex_str).expect("hex"));
    out
}

pub(crate) fn socket(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(crate) fn version_message(relay: bool) -> VersionMessage {
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let mut msg = VersionMessage::new(
        services,
        1_700_000_000,
        P2pAddress::new(&socket("1.2.3.4:8333"), ServiceFlags::NONE),
        P2pAddress::new(&socket("[2001:db8::1]:18444"), services),
        0xdead_beef_cafe_f00d,
        "/Satoshi:27.0.0/".into(),
        850_000,
    );
    msg.relay = relay;
    msg
}

pub(crate) fn reject_payload(code: u8, hash: &[u8]) -> Vec<u8> {
    let mut payload = serialize(&"tx".to_string());
    payload.push(code);
    payload.extend(serialize(&"reason".to_string()));
    payload.extend_from_slice(hash);
    payload
}

// ---- sample messages -----------------------------------------------------------------------

pub(crate) fn witness_tx() -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::from_consensus(840_000),
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array(ascending(7)),
                vout: 1,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[vec![1u8, 2, 3], vec![4u8]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(50_000),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }],
    }
}

/// A legacy (pre-segwit) transaction: no marker, no witness.
pub(crate) fn legacy_tx() -> Transaction {
    let mut tx = witness_tx();
    tx.version = transaction::Version::ONE;
    tx.input[0].witness = Witness::new();
    tx.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51; 3]);
    tx
}

/// The genesis block plus a segwit and a legacy transaction.
pub(crate) fn three_tx_block() -> bitcoin::Block {
    let mut block = genesis_block(Network::Bitcoin);
    block.txdata.push(witness_tx());
    block.txdata.push(legacy_tx());
    block
}

pub(crate) fn addrv2_entry(addr: AddrV2, services: ServiceFlags) -> AddrV2Message {
    AddrV2Message {
        time: 1_700_000_000,
        services,
        addr,
        port: 8333,
    }
}

/// Structured messages built with rust-bitcoin, at least one for every arm but `unknown`.
pub(crate) fn network_samples() -> Vec<NetworkMessage> {
    let block = three_tx_block();
    let wanted = witness_tx().compute_txid();
    let merkle = MerkleBlock::from_block_with_predicate(&block, |txid| *txid == wanted);
    let compact = HeaderAndShortIds::from_block(&block, 42, 2, &[2]).expect("compact block");
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let inventory = vec![
        Inventory::Error,
        Inventory::Transaction(Txid::from_byte_array(ascending(0))),
        Inventory::Block(block_hash(80)),
        Inventory::WTx(Wtxid::from_byte_array(ascending(40))),
        Inventory::WitnessTransaction(Txid::from_byte_array(ascending(1))),
        Inventory::WitnessBlock(block_hash(81)),
        Inventory::CompactBlock(block_hash(82)),
        Inventory::Unknown {
            inv_type: 3,
            hash: ascending(120),
        },
    ];
    // Tor v2 example from Bitcoin Core's tests (fd87:d87e:eb43:edb1:8e4:3588:e546:35ca).
    let onioncat = P2pAddress {
        services,
        address: [
            0xfd87, 0xd87e, 0xeb43, 0xedb1, 0x08e4, 0x3588, 0xe546, 0x35ca,
        ],
        port: 9050,
    };
    let mut version_to_onion = version_message(false);
    version_to_onion.receiver = onioncat.clone();
    let ipv4_mapped = {
        let mut bytes = vec![0u8; 10];
        bytes.extend([0xff, 0xff, 1, 2, 3, 4]);
        bytes
    };
    vec![
        NetworkMessage::Version(version_message(true)),
        NetworkMessage::Version(version_to_onion),
        NetworkMessage::Verack,
        NetworkMessage::SendHeaders,
        NetworkMessage::GetAddr,
        NetworkMessage::MemPool,
        NetworkMessage::WtxidRelay,
        NetworkMessage::SendAddrV2,
        NetworkMessage::FilterClear,
        NetworkMessage::Ping(0x0102_0304_0506_0708),
        NetworkMessage::Pong(0x0102_0304_0506_0708),
        NetworkMessage::Inv(inventory.clone()),
        NetworkMessage::GetData(inventory.clone()),
        NetworkMessage::NotFound(inventory),
        NetworkMessage::Tx(witness_tx()),
        NetworkMessage::Tx(legacy_tx()),
        NetworkMessage::Block(block.clone()),
        NetworkMessage::Headers(vec![block.header, genesis_block(Network::Regtest).header]),
        NetworkMessage::GetHeaders(GetHeadersMessage::new(
            vec![block_hash(1), block_hash(2)],
            block_hash(3),
        )),
        NetworkMessage::GetBlocks(GetBlocksMessage::new(vec![block_hash(1)], block_hash(2))),
        NetworkMessage::Addr(vec![
            (
                1_700_000_000,
                P2pAddress::new(&socket("1.2.3.4:8333"), services),
            ),
            (
                1_700_000_001,
                P2pAddress::new(&socket("[2001:db8::1]:18444"), services),
            ),
            (1_700_000_002, onioncat),
        ]),
        NetworkMessage::AddrV2(vec![
            addrv2_entry(AddrV2::Ipv4("8.8.4.4".parse().expect("ip")), services),
            // Services above 0xfc take a multi-byte CompactSize.
            addrv2_entry(
                AddrV2::Ipv6("2001:db8::2".parse().expect("ip")),
                ServiceFlags::from(0x0400 | 0x0009),
            ),
            addrv2_entry(
                AddrV2::TorV2([0xed, 0xb1, 0x08, 0xe4, 0x35, 0x88, 0xe5, 0x46, 0x35, 0xca]),
                services,
            ),
            addrv2_entry(AddrV2::TorV3(array32(TORV3_PUBKEY)), services),
            addrv2_entry(AddrV2::I2p(array32(I2P_HASH)), services),
            addrv2_entry(AddrV2::Cjdns("fc00::1".parse().expect("ip")), services),
            addrv2_entry(AddrV2::Unknown(42, vec![1, 2, 3]), services),
            // Entries rust-bitcoin refuses; the decoder keeps them as unknown addresses.
            addrv2_entry(AddrV2::Unknown(2, ipv4_mapped), services),
            addrv2_entry(AddrV2::Unknown(6, vec![0xfd; 16]), services),
        ]),
        NetworkMessage::FeeFilter(1_000),
        NetworkMessage::Reject(Reject {
            message: "block".into(),
            ccode: RejectReason::Invalid,
            reason: "bad-txns".into(),
            hash: sha256d::Hash::from_byte_array(ascending(1)),
        }),
        NetworkMessage::SendCmpct(SendCmpct {
            send_compact: true,
            version: 2,
        }),
        NetworkMessage::SendCmpct(SendCmpct {
            send_compact: false,
            version: 1,
        }),
        NetworkMessage::CmpctBlock(CmpctBlock {
            compact_block: compact,
        }),
        NetworkMessage::GetBlockTxn(GetBlockTxn {
            txs_request: BlockTransactionsRequest {
                block_hash: block_hash(9),
                indexes: vec![0, 2, 5, 300],
            },
        }),
        NetworkMessage::BlockTxn(BlockTxn {
            transactions: BlockTransactions {
                block_hash: block_hash(4),
                transactions: vec![witness_tx(), legacy_tx()],
            },
        }),
        NetworkMessage::FilterLoad(FilterLoad {
            filter: vec![0xab; 10],
            hash_funcs: 11,
            tweak: 0xdead_beef,
            flags: BloomFlags::PubkeyOnly,
        }),
        NetworkMessage::FilterAdd(FilterAdd {
            data: vec![1, 2, 3],
        }),
        NetworkMessage::MerkleBlock(merkle),
        NetworkMessage::GetCFilters(GetCFilters {
            filter_type: 0,
            start_height: 100,
            stop_hash: block_hash(10),
        }),
        NetworkMessage::CFilter(CFilter {
            filter_type: 0,
            block_hash: block_hash(10),
            filter: vec![5, 6],
        }),
        NetworkMessage::GetCFHeaders(GetCFHeaders {
            filter_type: 0,
            start_height: 7,
            stop_hash: block_hash(10),
        }),
        NetworkMessage::CFHeaders(CFHeaders {
            filter_type: 0,
            stop_hash: block_hash(10),
            previous_filter_header: FilterHeader::from_byte_array(ascending(20)),
            filter_hashes: vec![
                FilterHash::from_byte_array(ascending(30)),
                FilterHash::from_byte_array(ascending(31)),
            ],
        }),
        NetworkMessage::GetCFCheckpt(GetCFCheckpt {
            filter_type: 0,
            stop_hash: block_hash(10),
        }),
        NetworkMessage::CFCheckpt(CFCheckpt {
            filter_type: 0,
            stop_hash: block_hash(10),
            filter_headers: vec![FilterHeader::from_byte_array(ascending(40))],
        }),
    ]
}

/// Structured payloads rust-bitcoin's `NetworkMessage` cannot produce, built by hand.
pub(crate) fn hand_samples() -> Vec<(&'static str, Vec<u8>)> {
    let zero_input_tx = Transaction {
        input: vec![],
        ..legacy_tx()
    };
    // A signed alert: vchMsg then vchSig.
    let mut signed_alert = serialize(&vec![9u8; 20]);
    signed_alert.extend(serialize(&vec![7u8; 71]));
    vec![
        ("ping", vec![]),
        ("addrv2", vec![]),
        ("addrv2", vec![0]),
        ("inv", vec![0]),
        ("headers", vec![0]),
        ("reject", reject_payload(0x42, &[])),
        ("reject", reject_payload(0x10, &ascending(5))),
        ("feefilter", serialize(&-5i64)),
        ("feefilter", serialize(&i64::MIN)),
        ("alert", signed_alert),
        ("alert", vec![]),
        ("tx", serialize(&zero_input_tx)),
        ("version", serialize(&version_message(false))),
    ]
}

/// Messages that stay `Msg::Unknown`.
pub(crate) fn unknown_samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("sendtxrcncl", vec![1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
        ("pong", vec![]),
        ("ping", vec![0; 7]),
        ("verack", vec![0]),
        ("version", vec![0xff; 3]),
        ("", vec![]),
    ]
}

/// Every structured sample as (wire command, payload).
pub(crate) fn structured_samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut samples: Vec<_> = network_samples()
        .iter()
        .map(|msg| (msg.cmd(), serialize(msg)))
        .collect();
    samples.extend(hand_samples());
    samples
}

/// Every sample message as (wire command, payload): the structured ones and those that stay
/// `Msg::Unknown`.
pub(crate) fn all_messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = structured_samples();
    all.extend(unknown_samples());
    all
}
