//! Chain data for attack scenarios: tip discovery over P2P and builders for bad headers,
//! invalid blocks and valid or orphan transactions.
//!
//! This module owns everything a scripted peer needs to know or forge about the node's
//! chain. The builders are pure and deterministic from a `u64` seed (a SplitMix64,
//! `Rng`); only [`discover_tip`] talks to the node. What the builders aim at, from Bitcoin
//! Core's `net_processing.cpp` (see `shared/spec/bitcoin-core.md` §5):
//!
//! - A `headers` message is checked in this order before Core looks at whether it connects:
//!   every header's proof of work against its own nBits ("header with invalid proof of
//!   work"), then that each header's parent is the previous header ("non-continuous headers
//!   sequence"). Headers that do not connect are only answered with `getheaders`.
//! - Regtest has nMinimumChainWork 0, so a short valid fork from genesis is stored as a
//!   headers-only chain tip, unpunished (Core ignores it only once it forks more than 144
//!   blocks of work below the tip).
//! - A `block` whose parent is known is first checked by `IsBlockMutated`: merkle root
//!   mismatch or a duplicated txid pair at any merkle level (CVE-2012-2459) is "mutated
//!   block". Other invalid blocks (high hash, `bad-cb-amount`, `prev-blk-not-found`) are
//!   punished with an empty message `""`.
//! - Regtest consensus: bits 0x207fffff without retargeting, version >= 4, time above the
//!   median of the last 11 and at most now + 2 h, BIP34 height push at the start of a 2..=100
//!   byte coinbase scriptSig, subsidy 50 BTC halving every 150 blocks.
//!
//! Transactions spend [`KeylessCoin`]s (P2WSH(OP_TRUE)), so no keys are needed; they stay
//! standard: outputs above dust, at least 65 non-witness bytes, fee rate >= 1 sat/vB.

use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::block::{self, Header};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use bitcoin::script::Builder;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Target,
    Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness,
};
use tokio::time::{timeout_at, Instant};
use tracing::debug;

use super::params::{HeadersKind, InvalidBlockKind};
use crate::node::KeylessCoin;
use crate::p2p::Received;
use crate::peer::{Peer, PeerError, Rng};

/// Regtest nBits: the proof-of-work limit, never retargeted.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Headers Core sends per `headers` message at most; a full answer means "ask again".
pub const MAX_HEADERS_RESULTS: usize = 2000;
/// Block version: BIP9 top bits, which is >= 4 as regtest requires.
const BLOCK_VERSION: i32 = 0x2000_0000;
/// Regtest subsidy halving interval.
const HALVING_INTERVAL: u32 = 150;
/// The initial block subsidy, 50 BTC.
const INITIAL_SUBSIDY_SAT: u64 = 50 * 100_000_000;
/// Outputs of a split transaction: with the split itself that is 25 transactions, Core's
/// default descendant limit, so spending each output once never exceeds it.
const SPLIT_OUTPUTS: usize = 24;
/// Fee floor of every transaction we build.
const MIN_FEE_SAT: u64 = 2_000;
/// Fee rate of every transaction we build (well above the 1 sat/vB relay minimum).
const FEE_RATE_SAT_PER_VB: u64 = 4;
/// Value of the output of an orphan (above the P2WSH dust limit of 330 sat).
const ORPHAN_OUTPUT_SAT: u64 = 10_000;

/// The node's best block as learned over P2P.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// Hash of `header`.
    pub hash: BlockHash,
    /// Height of the block (genesis is 0).
    pub height: u32,
    /// The block's header.
    pub header: block::Header,
}

impl ChainTip {
    /// The regtest genesis block at height 0.
    pub fn regtest_genesis() -> ChainTip {
        let header = bitcoin::constants::genesis_block(Network::Regtest).header;
        ChainTip {
            hash: header.block_hash(),
            height: 0,
            header,
        }
    }
}

/// Asks the node for its headers from genesis (getheaders with locator [regtest genesis],
/// repeated with the last hash while 2000 come back) and returns its tip; bounded by `limit`.
/// The regtest genesis alone (height 0) when the node answers with no headers.
///
/// Unrelated messages are skipped (pings are answered by [`Peer`] itself), and so is a
/// `headers` message that does not start at a hash we asked from (an announcement). The
/// locator also carries genesis, so a reorg between two rounds restarts from genesis instead
/// of stalling. Errors: `Timeout` after `limit`, `Protocol` when the node's answer does not
/// chain, and whatever sending or receiving fails with.
pub async fn discover_tip(peer: &mut Peer, limit: Duration) -> Result<ChainTip, PeerError> {
    let deadline = Instant::now() + limit;
    let genesis = ChainTip::regtest_genesis();
    let mut tip = genesis;
    loop {
        let locator = locator_for(&tip, &genesis);
        let request = GetHeadersMessage::new(locator.clone(), BlockHash::all_zeros());
        timeout_at(deadline, peer.send(NetworkMessage::GetHeaders(request)))
            .await
            .map_err(|_| timed_out(limit))??;
        let headers = next_headers(peer, &locator, deadline, limit).await?;
        let full = headers.len() >= MAX_HEADERS_RESULTS;
        tip = extend_tip(&tip, &genesis, &headers)?;
        debug!(height = tip.height, hash = %tip.hash, received = headers.len(), "discovering tip");
        if !full {
            return Ok(tip);
        }
    }
}

/// `[tip, genesis]`, or just `[genesis]` while the tip is genesis.
fn locator_for(tip: &ChainTip, genesis: &ChainTip) -> Vec<BlockHash> {
    if tip.hash == genesis.hash {
        vec![genesis.hash]
    } else {
        vec![tip.hash, genesis.hash]
    }
}

/// The next `headers` message answering a locator of `asked`, before `deadline`.
async fn next_headers(
    peer: &mut Peer,
    asked: &[BlockHash],
    deadline: Instant,
    limit: Duration,
) -> Result<Vec<Header>, PeerError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let received = peer
        .recv_until(|received| answers(received, asked), remaining)
        .await
        .map_err(|e| match e {
            PeerError::Timeout(_) => timed_out(limit),
            other => other,
        })?;
    match received.message {
        Some(NetworkMessage::Headers(headers)) => Ok(headers),
        _ => Err(PeerError::Protocol(
            "expected a headers message".to_string(),
        )),
    }
}

/// Whether `received` is a `headers` answer to a locator of `asked`: empty, or starting on
/// one of those hashes.
fn answers(received: &Received, asked: &[BlockHash]) -> bool {
    match &received.message {
        Some(NetworkMessage::Headers(headers)) => headers
            .first()
            .is_none_or(|first| asked.contains(&first.prev_blockhash)),
        _ => false,
    }
}

/// `tip` (or `genesis`, after a reorg) extended by `headers`, which must chain.
fn extend_tip(
    tip: &ChainTip,
    genesis: &ChainTip,
    headers: &[Header],
) -> Result<ChainTip, PeerError> {
    let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
        return Ok(*tip);
    };
    let base = if first.prev_blockhash == tip.hash {
        tip
    } else if first.prev_blockhash == genesis.hash {
        genesis
    } else {
        return Err(PeerError::Protocol(format!(
            "headers start on {}, which we did not ask from",
            first.prev_blockhash
        )));
    };
    let mut prev = base.hash;
    for header in headers {
        if header.prev_blockhash != prev {
            return Err(PeerError::Protocol(format!(
                "the node's headers do not chain at {}",
                header.prev_blockhash
            )));
        }
        prev = header.block_hash();
    }
    let count = u32::try_from(headers.len()).unwrap_or(u32::MAX);
    Ok(ChainTip {
        hash: prev,
        height: base.height.saturating_add(count),
        header: *last,
    })
}

fn timed_out(limit: Duration) -> PeerError {
    PeerError::Timeout(format!("discovering the tip took more than {limit:?}"))
}

/// `headers_per_message` bad headers of `kind` (for message number `i` of a peer with `seed`),
/// building on `tip`:
///
/// - `InvalidPow`: a chain on `tip` with bits 0x207fffff whose every hash is above the
///   target, so the first header already fails. At least 1 header.
/// - `NonContinuous`: headers with valid regtest PoW; the first connects to `tip`, every later
///   one points to a random parent, so each pair is a break. At least 2 headers.
/// - `LowWork`: a valid, continuous chain forking from the regtest genesis with
///   `min(headers_per_message, tip.height - 1)` headers (empty when that is 0), so less work
///   than the active chain; times increase from the genesis time.
///
/// More than [`MAX_HEADERS_RESULTS`] are built when asked (that is misbehaviour of its own).
/// Merkle roots are random, so different seeds give different headers.
pub fn bad_headers(
    kind: HeadersKind,
    tip: &ChainTip,
    headers_per_message: u32,
    seed: u64,
) -> Vec<block::Header> {
    let mut rng = Rng::new(seed ^ 0x6865_6164_6572_7300);
    match kind {
        HeadersKind::InvalidPow => {
            chain_on(tip, headers_per_message.max(1), false, &mut rng, |_| None)
        }
        HeadersKind::NonContinuous => {
            // A random parent for every header after the first: the first pair already breaks.
            let mut parents = Rng::new(rng.next());
            chain_on(tip, headers_per_message.max(2), true, &mut rng, |k| {
                (k > 0).then(|| random_block_hash(&mut parents))
            })
        }
        HeadersKind::LowWork => {
            let count = headers_per_message.min(tip.height.saturating_sub(1));
            chain_on(&ChainTip::regtest_genesis(), count, true, &mut rng, |_| {
                None
            })
        }
    }
}

/// `count` headers on `base`, times `base.time + 1 + k`, PoW valid or not as `valid_pow`
/// says. Header `k` builds on the previous one unless `parent(k)` names another parent.
fn chain_on(
    base: &ChainTip,
    count: u32,
    valid_pow: bool,
    rng: &mut Rng,
    mut parent: impl FnMut(u32) -> Option<BlockHash>,
) -> Vec<Header> {
    let mut headers = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut prev = base.hash;
    for k in 0..count {
        let mut header = Header {
            version: block::Version::from_consensus(BLOCK_VERSION),
            prev_blockhash: parent(k).unwrap_or(prev),
            merkle_root: random_merkle_root(rng),
            time: base.header.time.wrapping_add(1).wrapping_add(k),
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: rng.next_u32(),
        };
        grind(&mut header, valid_pow);
        prev = header.block_hash();
        headers.push(header);
    }
    headers
}

/// A block of `kind` on top of `tip` (`MissingPrev`: on a random unknown parent), with a valid
/// BIP34 coinbase paying to [`KeylessCoin::script_pubkey`], valid PoW unless `BadPow`, and
/// time `tip.time + 1` plus a seed-derived offset below 60 s:
///
/// - `Mutated`: transactions `[coinbase, a, b, b]`, merkle root computed from that list (it
///   equals the root of `[coinbase, a, b]`, so only the duplicate betrays it).
/// - `BadMerkle`: `[coinbase, a]` with a random merkle root.
/// - `BadPow`: a correct block whose hash is above the target.
/// - `BadCoinbaseValue`: `[coinbase]` paying `subsidy(height) + 1` sat.
/// - `MissingPrev`: a correct-looking block whose parent is random.
///
/// `a` and `b` are small distinct transactions without witness (so witness malleation
/// checks have nothing to object to); they spend random outpoints and are not valid.
pub fn invalid_block(kind: InvalidBlockKind, tip: &ChainTip, seed: u64) -> Block {
    let mut rng = Rng::new(seed ^ 0x626c_6f63_6b00_0000);
    let height = tip.height.saturating_add(1);
    let prev_blockhash = match kind {
        InvalidBlockKind::MissingPrev => random_block_hash(&mut rng),
        _ => tip.hash,
    };
    let mut value = subsidy(height);
    if kind == InvalidBlockKind::BadCoinbaseValue {
        value += Amount::from_sat(1);
    }
    let coinbase = coinbase_tx(height, value, &mut rng);
    let txdata = match kind {
        InvalidBlockKind::Mutated => {
            let a = filler_tx(&mut rng);
            let b = filler_tx(&mut rng);
            vec![coinbase, a, b.clone(), b]
        }
        InvalidBlockKind::BadMerkle => vec![coinbase, filler_tx(&mut rng)],
        _ => vec![coinbase],
    };
    let offset = u32::try_from(rng.next() % 60).unwrap_or(0);
    let mut block = Block {
        header: Header {
            version: block::Version::from_consensus(BLOCK_VERSION),
            prev_blockhash,
            merkle_root: TxMerkleNode::all_zeros(),
            time: tip.header.time.wrapping_add(1).wrapping_add(offset),
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: rng.next_u32(),
        },
        txdata,
    };
    block.header.merkle_root = match kind {
        InvalidBlockKind::BadMerkle => random_merkle_root(&mut rng),
        // Never empty: there is always a coinbase.
        _ => block
            .compute_merkle_root()
            .unwrap_or_else(TxMerkleNode::all_zeros),
    };
    grind(&mut block.header, kind != InvalidBlockKind::BadPow);
    block
}

/// The regtest block subsidy at `height`: 50 BTC halved every 150 blocks.
pub fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(INITIAL_SUBSIDY_SAT >> halvings)
}

/// A coinbase for `height` paying `value` to the keyless script. Its scriptSig is the BIP34
/// height push (exactly as Core's `CScript() << height`) followed by 8 random bytes: that
/// keeps it within 2..=100 bytes even when the height is a single OP_N, and makes blocks of
/// different seeds differ.
fn coinbase_tx(height: u32, value: Amount, rng: &mut Rng) -> Transaction {
    let mut extra = [0u8; 8];
    rng.fill(&mut extra);
    let script_sig = Builder::new()
        .push_int(i64::from(height))
        .push_slice(extra)
        .into_script();
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: KeylessCoin::script_pubkey(),
        }],
    }
}

/// A small transaction spending a random outpoint, without witness.
fn filler_tx(rng: &mut Rng) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: random_txid(rng),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(ORPHAN_OUTPUT_SAT),
            script_pubkey: KeylessCoin::script_pubkey(),
        }],
    }
}

/// `n` standard, valid transactions spending `coins` (mature keyless outputs): for each coin
/// one split transaction into 24 keyless outputs, then up to 24 children each spending one
/// of them, so no transaction ever has more than 24 descendants (Core's limit is 25 with
/// itself). Uses as many coins as needed; returns fewer than `n` only when the coins run out
/// (a coin too small to split is skipped). In the returned order every transaction's parent
/// comes first.
pub fn valid_transactions(coins: &[KeylessCoin], n: usize) -> Vec<Transaction> {
    let mut txs = Vec::with_capacity(n);
    for coin in coins {
        if txs.len() >= n {
            break;
        }
        let Some(split) = keyless_spend(coin, SPLIT_OUTPUTS) else {
            continue;
        };
        let outputs = KeylessCoin::outputs_of(&split);
        txs.push(split);
        for output in &outputs {
            if txs.len() >= n {
                break;
            }
            if let Some(child) = keyless_spend(output, 1) {
                txs.push(child);
            }
        }
    }
    txs
}

/// `coin` spent to `outputs` equal keyless outputs, paying a fee for the transaction's size.
fn keyless_spend(coin: &KeylessCoin, outputs: usize) -> Option<Transaction> {
    // The size does not depend on the fee, so a zero-fee draft measures it.
    let draft = coin.spend(Amount::ZERO, outputs, Sequence::MAX)?;
    let vsize = u64::try_from(draft.vsize()).unwrap_or(u64::MAX);
    let fee = vsize.saturating_mul(FEE_RATE_SAT_PER_VB).max(MIN_FEE_SAT);
    coin.spend(Amount::from_sat(fee), outputs, Sequence::MAX)
}

/// `n` standard transactions whose only input spends output 0 of a transaction that was never
/// broadcast (a random txid), revealing the keyless witness script. The node keeps them as
/// orphans (rejected from the mempool for missing inputs). Distinct, deterministic from `seed`.
pub fn orphan_transactions(n: usize, seed: u64) -> Vec<Transaction> {
    let mut rng = Rng::new(seed ^ 0x6f72_7068_616e_0000);
    (0..n)
        .map(|_| {
            let parent = KeylessCoin {
                outpoint: OutPoint {
                    txid: random_txid(&mut rng),
                    vout: 0,
                },
                // Never checked by the node (the parent is missing); it sets the output value.
                value: Amount::from_sat(ORPHAN_OUTPUT_SAT + MIN_FEE_SAT),
            };
            keyless_spend(&parent, 1)
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// Changes `header.nonce` until its hash meets the regtest target (`valid`) or does not.
/// Either takes about two tries: the regtest target is about half of the hash space.
fn grind(header: &mut Header, valid: bool) {
    let target = Target::from_compact(header.bits);
    for _ in 0..=u32::MAX {
        if target.is_met_by(header.block_hash()) == valid {
            return;
        }
        header.nonce = header.nonce.wrapping_add(1);
    }
}

fn random_block_hash(rng: &mut Rng) -> BlockHash {
    BlockHash::from_byte_array(rng.bytes32())
}

fn random_merkle_root(rng: &mut Rng) -> TxMerkleNode {
    TxMerkleNode::from_byte_array(rng.bytes32())
}

fn random_txid(rng: &mut Rng) -> Txid {
    Txid::from_byte_array(rng.bytes32())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use bitcoin::block::ValidationError;

    use super::*;

    fn regtest_target() -> Target {
        Target::from_compact(CompactTarget::from_consensus(REGTEST_BITS))
    }

    fn pow_ok(header: &Header) -> bool {
        header.validate_pow(regtest_target()).is_ok()
    }

    /// A tip at `height` on a made-up chain, with a current-looking time.
    fn tip_at(height: u32) -> ChainTip {
        let mut rng = Rng::new(u64::from(height));
        let header = Header {
            version: block::Version::from_consensus(BLOCK_VERSION),
            prev_blockhash: random_block_hash(&mut rng),
            merkle_root: random_merkle_root(&mut rng),
            time: 1_700_000_000,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce: 0,
        };
        ChainTip {
            hash: header.block_hash(),
            height,
            header,
        }
    }

    fn is_continuous_from(base: BlockHash, headers: &[Header]) -> bool {
        let mut prev = base;
        headers.iter().all(|h| {
            let ok = h.prev_blockhash == prev;
            prev = h.block_hash();
            ok
        })
    }

    #[test]
    fn regtest_target_is_the_pow_limit() {
        assert_eq!(regtest_target(), Target::MAX_ATTAINABLE_REGTEST);
        assert!(pow_ok(&ChainTip::regtest_genesis().header));
    }

    #[test]
    fn invalid_pow_headers_connect_but_fail_pow() {
        let tip = tip_at(150);
        let headers = bad_headers(HeadersKind::InvalidPow, &tip, 2000, 7);
        assert_eq!(headers.len(), 2000);
        assert!(is_continuous_from(tip.hash, &headers));
        for header in &headers {
            assert_eq!(header.bits, CompactTarget::from_consensus(REGTEST_BITS));
            assert!(matches!(
                header.validate_pow(regtest_target()),
                Err(ValidationError::BadProofOfWork)
            ));
        }
        assert_eq!(bad_headers(HeadersKind::InvalidPow, &tip, 0, 7).len(), 1);
    }

    #[test]
    fn non_continuous_headers_have_valid_pow_and_break_after_the_first() {
        let tip = tip_at(150);
        let headers = bad_headers(HeadersKind::NonContinuous, &tip, 50, 3);
        assert_eq!(headers.len(), 50);
        assert!(headers.iter().all(pow_ok));
        assert_eq!(headers[0].prev_blockhash, tip.hash);
        assert!(!is_continuous_from(tip.hash, &headers));
        assert!(headers
            .windows(2)
            .all(|pair| pair[1].prev_blockhash != pair[0].block_hash()));
        // One header could not be non-continuous: two are built.
        let two = bad_headers(HeadersKind::NonContinuous, &tip, 1, 3);
        assert_eq!(two.len(), 2);
        assert!(!is_continuous_from(tip.hash, &two));
    }

    #[test]
    fn low_work_headers_fork_from_genesis_below_the_tip() {
        let genesis = ChainTip::regtest_genesis();
        for (height, asked, expected) in [(200, 2000, 199), (200, 10, 10), (1, 5, 0), (0, 5, 0)] {
            let headers = bad_headers(HeadersKind::LowWork, &tip_at(height), asked, 11);
            assert_eq!(headers.len(), expected, "tip {height}, asked {asked}");
            assert!(is_continuous_from(genesis.hash, &headers));
            assert!(headers.iter().all(pow_ok));
            let mut time = genesis.header.time;
            for header in &headers {
                assert!(header.time > time);
                time = header.time;
            }
        }
    }

    #[test]
    fn headers_are_deterministic_and_differ_by_seed() {
        let tip = tip_at(120);
        for kind in [
            HeadersKind::InvalidPow,
            HeadersKind::NonContinuous,
            HeadersKind::LowWork,
        ] {
            assert_eq!(
                bad_headers(kind, &tip, 20, 1),
                bad_headers(kind, &tip, 20, 1)
            );
            assert_ne!(
                bad_headers(kind, &tip, 20, 1),
                bad_headers(kind, &tip, 20, 2)
            );
        }
    }

    fn check_coinbase(block: &Block, height: u32) {
        let coinbase = &block.txdata[0];
        assert!(coinbase.is_coinbase());
        let script_sig = coinbase.input[0].script_sig.as_bytes();
        assert!((2..=100).contains(&script_sig.len()));
        let push = Builder::new().push_int(i64::from(height)).into_script();
        assert!(script_sig.starts_with(push.as_bytes()));
        if height > 16 {
            // rust-bitcoin only reads data pushes, not Core's OP_1..OP_16 for small heights.
            assert_eq!(block.bip34_block_height().ok(), Some(u64::from(height)));
        }
        assert!(coinbase
            .output
            .iter()
            .all(|o| o.script_pubkey == KeylessCoin::script_pubkey()));
    }

    fn check_common(block: &Block, tip: &ChainTip) {
        assert!(block.header.version.to_consensus() >= 4);
        assert!(block.header.time > tip.header.time);
        assert!(block.header.time < tip.header.time + 600);
        check_coinbase(block, tip.height + 1);
        // No witness anywhere, so no commitment is needed.
        assert!(block.check_witness_commitment());
    }

    #[test]
    fn mutated_block_keeps_its_root_but_duplicates_a_txid() {
        let tip = tip_at(5);
        let block = invalid_block(InvalidBlockKind::Mutated, &tip, 1);
        check_common(&block, &tip);
        assert_eq!(block.header.prev_blockhash, tip.hash);
        assert!(pow_ok(&block.header));
        assert_eq!(block.txdata.len(), 4);
        assert_eq!(block.compute_merkle_root(), Some(block.header.merkle_root));
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        let distinct: HashSet<Txid> = txids.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "exactly one duplicate");
        // The CVE-2012-2459 property: the list without the duplicate has the same root.
        let honest = Block {
            header: block.header,
            txdata: block.txdata[..3].to_vec(),
        };
        assert_eq!(honest.compute_merkle_root(), Some(block.header.merkle_root));
    }

    #[test]
    fn bad_merkle_block_has_a_wrong_root() {
        let tip = tip_at(5);
        let block = invalid_block(InvalidBlockKind::BadMerkle, &tip, 2);
        check_common(&block, &tip);
        assert_eq!(block.txdata.len(), 2);
        assert!(pow_ok(&block.header));
        assert!(!block.check_merkle_root());
    }

    #[test]
    fn bad_pow_block_is_otherwise_correct() {
        let tip = tip_at(5);
        let block = invalid_block(InvalidBlockKind::BadPow, &tip, 3);
        check_common(&block, &tip);
        assert!(block.check_merkle_root());
        assert_eq!(block.txdata[0].output[0].value, subsidy(6));
        assert!(matches!(
            block.header.validate_pow(regtest_target()),
            Err(ValidationError::BadProofOfWork)
        ));
    }

    #[test]
    fn bad_coinbase_value_pays_one_sat_too_much() {
        for height in [5, 149, 150, 300, 20_000] {
            let tip = tip_at(height);
            let block = invalid_block(InvalidBlockKind::BadCoinbaseValue, &tip, 4);
            check_common(&block, &tip);
            assert_eq!(block.txdata.len(), 1);
            assert!(block.check_merkle_root());
            assert!(pow_ok(&block.header));
            let paid: Amount = block.txdata[0].output.iter().map(|o| o.value).sum();
            assert_eq!(paid, subsidy(height + 1) + Amount::from_sat(1));
        }
    }

    #[test]
    fn missing_prev_block_is_correct_but_orphaned() {
        let tip = tip_at(5);
        let block = invalid_block(InvalidBlockKind::MissingPrev, &tip, 5);
        check_common(&block, &tip);
        assert_ne!(block.header.prev_blockhash, tip.hash);
        assert!(block.check_merkle_root());
        assert!(pow_ok(&block.header));
        assert_eq!(block.txdata[0].output[0].value, subsidy(6));
    }

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(1), Amount::from_btc(50.0).unwrap());
        assert_eq!(subsidy(149), Amount::from_btc(50.0).unwrap());
        assert_eq!(subsidy(150), Amount::from_btc(25.0).unwrap());
        assert_eq!(subsidy(150 * 64), Amount::ZERO);
    }

    #[test]
    fn coinbase_script_sig_is_bip34_at_small_and_large_heights() {
        let mut rng = Rng::new(9);
        for height in [1u32, 16, 17, 127, 128, 32_768, u32::MAX] {
            let script_sig = coinbase_tx(height, Amount::ZERO, &mut rng).input[0]
                .script_sig
                .clone();
            assert!((2..=100).contains(&script_sig.len()));
            let push = Builder::new().push_int(i64::from(height)).into_script();
            assert!(script_sig.as_bytes().starts_with(push.as_bytes()));
        }
    }

    #[test]
    fn blocks_are_deterministic_and_differ_by_seed() {
        let tip = tip_at(42);
        for kind in [
            InvalidBlockKind::Mutated,
            InvalidBlockKind::BadMerkle,
            InvalidBlockKind::BadPow,
            InvalidBlockKind::BadCoinbaseValue,
            InvalidBlockKind::MissingPrev,
        ] {
            assert_eq!(invalid_block(kind, &tip, 1), invalid_block(kind, &tip, 1));
            assert_ne!(
                invalid_block(kind, &tip, 1).block_hash(),
                invalid_block(kind, &tip, 2).block_hash()
            );
        }
    }

    fn coins(count: u8) -> Vec<KeylessCoin> {
        (0..count)
            .map(|i| KeylessCoin {
                outpoint: OutPoint {
                    txid: Txid::from_byte_array([i + 1; 32]),
                    vout: u32::from(i),
                },
                value: Amount::from_btc(50.0).unwrap(),
            })
            .collect()
    }

    #[test]
    fn valid_transactions_chain_pay_fees_and_respect_descendant_limits() {
        let coins = coins(3);
        let txs = valid_transactions(&coins, 60);
        assert_eq!(txs.len(), 60);

        // Every input is a given coin or an earlier output, spent once; fees are positive.
        let mut unspent: HashMap<OutPoint, Amount> =
            coins.iter().map(|c| (c.outpoint, c.value)).collect();
        for tx in &txs {
            let mut input = Amount::ZERO;
            for txin in &tx.input {
                let value = unspent
                    .remove(&txin.previous_output)
                    .expect("spends a coin or an earlier output");
                input += value;
                assert_eq!(txin.witness.to_vec(), vec![vec![0x51]]);
            }
            let output: Amount = tx.output.iter().map(|o| o.value).sum();
            let fee = input.checked_sub(output).expect("no inflation");
            assert!(fee.to_sat() >= tx.vsize() as u64, "at least 1 sat/vB");
            assert!(tx.output.iter().all(|o| o.value.to_sat() > 330));
            // Core's tx-size-small: at least 65 bytes without witness.
            assert!(tx.base_size() >= 65);
            for coin in KeylessCoin::outputs_of(tx) {
                unspent.insert(coin.outpoint, coin.value);
            }
        }

        // Descendants within the returned set, including grandchildren.
        let txids: Vec<Txid> = txs.iter().map(|t| t.compute_txid()).collect();
        for (i, txid) in txids.iter().enumerate() {
            let mut family: HashSet<Txid> = HashSet::from([*txid]);
            for (tx, child) in txs.iter().zip(&txids).skip(i + 1) {
                if tx
                    .input
                    .iter()
                    .any(|inp| family.contains(&inp.previous_output.txid))
                {
                    family.insert(*child);
                }
            }
            assert!(
                family.len() - 1 <= SPLIT_OUTPUTS,
                "tx {i} has too many descendants"
            );
        }
        assert_eq!(valid_transactions(&coins, 60), txs);
    }

    #[test]
    fn valid_transactions_stop_when_coins_run_out() {
        assert_eq!(valid_transactions(&coins(3), 100).len(), 75);
        assert_eq!(valid_transactions(&coins(1), 1).len(), 1);
        assert!(valid_transactions(&[], 10).is_empty());
        let dust = KeylessCoin {
            outpoint: OutPoint::null(),
            value: Amount::from_sat(5_000),
        };
        assert!(valid_transactions(&[dust], 10).is_empty());
    }

    #[test]
    fn orphans_are_distinct_standard_and_deterministic() {
        let orphans = orphan_transactions(50, 8);
        assert_eq!(orphans.len(), 50);
        let txids: HashSet<Txid> = orphans.iter().map(|t| t.compute_txid()).collect();
        assert_eq!(txids.len(), 50);
        let parents: HashSet<OutPoint> =
            orphans.iter().map(|t| t.input[0].previous_output).collect();
        assert_eq!(parents.len(), 50);
        for tx in &orphans {
            assert_eq!(tx.input.len(), 1);
            assert_eq!(tx.input[0].previous_output.vout, 0);
            assert_eq!(tx.input[0].witness.to_vec(), vec![vec![0x51]]);
            assert!(tx.output.iter().all(|o| o.value.to_sat() > 330));
            assert!(tx
                .output
                .iter()
                .all(|o| o.script_pubkey == KeylessCoin::script_pubkey()));
        }
        assert_eq!(orphan_transactions(50, 8), orphans);
        assert_ne!(orphan_transactions(1, 9), orphan_transactions(1, 8));
    }

    fn headers_received(headers: Vec<Header>) -> Received {
        Received {
            command: "headers".to_string(),
            payload: Vec::new(),
            message: Some(NetworkMessage::Headers(headers)),
        }
    }

    #[test]
    fn discovery_accepts_only_answers_to_its_locator() {
        let genesis = ChainTip::regtest_genesis();
        let chain = chain_on(&genesis, 3, true, &mut Rng::new(1), |_| None);
        let asked = [genesis.hash];
        assert!(answers(&headers_received(Vec::new()), &asked));
        assert!(answers(&headers_received(chain.clone()), &asked));
        assert!(!answers(&headers_received(chain[1..].to_vec()), &asked));
        let ping = Received {
            command: "ping".to_string(),
            payload: Vec::new(),
            message: Some(NetworkMessage::Ping(1)),
        };
        assert!(!answers(&ping, &asked));
    }

    #[test]
    fn discovery_extends_the_tip_and_restarts_from_genesis_on_reorg() {
        let genesis = ChainTip::regtest_genesis();
        let mut rng = Rng::new(2);
        let chain = chain_on(&genesis, 5, true, &mut rng, |_| None);
        let tip = extend_tip(&genesis, &genesis, &chain[..3]).unwrap();
        assert_eq!(tip.height, 3);
        assert_eq!(tip.hash, chain[2].block_hash());
        let tip = extend_tip(&tip, &genesis, &chain[3..]).unwrap();
        assert_eq!(tip.height, 5);
        assert_eq!(tip.header, chain[4]);
        assert_eq!(extend_tip(&tip, &genesis, &[]).unwrap(), tip);

        let fork = chain_on(&genesis, 2, true, &mut rng, |_| None);
        let reorged = extend_tip(&tip, &genesis, &fork).unwrap();
        assert_eq!(reorged.height, 2);

        let broken = [chain[0], chain[2]];
        assert!(matches!(
            extend_tip(&genesis, &genesis, &broken),
            Err(PeerError::Protocol(_))
        ));
        assert!(extend_tip(&genesis, &genesis, &chain[1..]).is_err());
    }
}
