//! The parameters of every attack behaviour: what a peer group does, with its numbers.
//!
//! These are the engine's types. The scenario file format deserializes into them (serde
//! derives here, the tag dispatch in `scenario`), so the format depends on the engine and
//! never the reverse; a program can also build them directly. Defaults are the scenario
//! format's documented defaults.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// What the peers of a group do. A scenario file chooses it with `behaviour = "..."`
/// (the names are [`Behaviour::NAMES`]) and its parameters sit in the same `[[peers]]` table.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Complete the handshake, answer pings, stay idle. Many of them exhaust inbound
    /// slots and cause evictions (`-maxconnections`).
    Honest,
    /// `addr` / `addrv2` messages after the handshake.
    AddrFlood(AddrFlood),
    /// `inv` messages (transaction announcements).
    InvFlood(InvFlood),
    /// `getdata` messages for transactions the node does not have.
    GetdataFlood(GetdataFlood),
    /// `ping` messages at a fixed rate, optionally never answering the node's pings.
    PingFlood(PingFlood),
    /// Frames Bitcoin Core rejects at the framing layer.
    Malformed(Malformed),
    /// Send VERSION only after a delay.
    SlowHandshake(SlowHandshake),
    /// Connect and never send anything.
    NoHandshake,
    /// `headers` messages that the node must reject or ignore.
    HeadersSpam(HeadersSpam),
    /// `block` messages carrying invalid blocks.
    InvalidBlock(InvalidBlock),
    /// `tx` messages: valid, invalid or orphan transactions.
    TxSpam(TxSpam),
    /// A handshake with unusual VERSION fields, then idle.
    VersionAbuse(VersionAbuse),
    /// Re-send what one peer of a recording sent, re-framed for regtest.
    ReplayRecorded(ReplayRecorded),
}

impl Behaviour {
    /// Every behaviour's name, in documentation order: the scenario format's tag values.
    pub const NAMES: &'static [&'static str] = &[
        "honest",
        "addr_flood",
        "inv_flood",
        "getdata_flood",
        "ping_flood",
        "malformed",
        "slow_handshake",
        "no_handshake",
        "headers_spam",
        "invalid_block",
        "tx_spam",
        "version_abuse",
        "replay_recorded",
    ];

    /// This behaviour's name (reports, logs, the scenario tag).
    pub fn name(&self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::AddrFlood(_) => "addr_flood",
            Behaviour::InvFlood(_) => "inv_flood",
            Behaviour::GetdataFlood(_) => "getdata_flood",
            Behaviour::PingFlood(_) => "ping_flood",
            Behaviour::Malformed(_) => "malformed",
            Behaviour::SlowHandshake(_) => "slow_handshake",
            Behaviour::NoHandshake => "no_handshake",
            Behaviour::HeadersSpam(_) => "headers_spam",
            Behaviour::InvalidBlock(_) => "invalid_block",
            Behaviour::TxSpam(_) => "tx_spam",
            Behaviour::VersionAbuse(_) => "version_abuse",
            Behaviour::ReplayRecorded(_) => "replay_recorded",
        }
    }
}

/// `addr_flood` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddrFlood {
    /// Addresses in each message; Bitcoin Core's limit is 1000 (more is misbehaviour).
    pub entries_per_message: u32,
    /// Messages each peer sends. Default 1.
    #[serde(default = "one")]
    pub messages: u32,
    /// Pause between two messages of one peer, in milliseconds. Default 0.
    #[serde(default)]
    pub interval_ms: u64,
    /// `addr` (default) or `addrv2` (the peer sends `sendaddrv2` in its handshake).
    #[serde(default)]
    pub version: AddrVersion,
}

/// Which address message an `addr_flood` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddrVersion {
    /// `addr` (30 bytes per entry).
    #[default]
    Addr,
    /// `addrv2` (BIP 155).
    Addrv2,
}

/// `inv_flood` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvFlood {
    /// Inventory entries in each message; the limit is 50,000 (more is misbehaviour).
    pub entries_per_message: u32,
    /// Messages each peer sends. Default 1.
    #[serde(default = "one")]
    pub messages: u32,
    /// Pause between two messages of one peer, in milliseconds. Default 0.
    #[serde(default)]
    pub interval_ms: u64,
}

/// `getdata_flood` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetdataFlood {
    /// Inventory entries in each message; the limit is 50,000 (more is misbehaviour).
    pub entries_per_message: u32,
    /// Messages each peer sends. Default 1.
    #[serde(default = "one")]
    pub messages: u32,
    /// Pause between two messages of one peer, in milliseconds. Default 0.
    #[serde(default)]
    pub interval_ms: u64,
}

/// `ping_flood` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingFlood {
    /// Pings each peer sends per second (0: none, for pure pong withholding).
    pub rate_per_sec: f64,
    /// Answer the node's pings with pongs. `false` withholds them. Default true.
    #[serde(default = "yes")]
    pub answer_pings: bool,
}

/// `malformed` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Malformed {
    /// What is wrong with the frames.
    pub kind: MalformedKind,
    /// Malformed frames each peer sends. Default 1.
    #[serde(default = "one")]
    pub messages: u32,
    /// Complete a normal handshake first (default true). With `false` the malformed frame is
    /// the first thing sent; note that with `-v2transport` on (Bitcoin Core's default) a
    /// first frame without the regtest magic is taken for a v2 handshake attempt, so
    /// `bad_magic` before the handshake needs `-v2transport=0` to be disconnected at once.
    #[serde(default = "yes")]
    pub after_handshake: bool,
}

/// How a `malformed` frame is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// Header length above 4,000,000 bytes: disconnect, no inbound_message, no misbehaving.
    Oversized,
    /// Wrong checksum: the message is dropped silently.
    BadChecksum,
    /// Wrong network magic: disconnect, no inbound_message, no misbehaving.
    BadMagic,
    /// A known command with a payload that does not deserialize: logged, no disconnect.
    GarbagePayload,
    /// Fewer than 24 header bytes, then silence.
    TruncatedHeader,
}

/// `slow_handshake` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowHandshake {
    /// Wait this long after connecting before sending VERSION, in milliseconds. The node
    /// drops peers whose handshake is not done within `-peertimeout` (60 s, mock time).
    pub delay_ms: u64,
}

/// `headers_spam` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersSpam {
    /// What is wrong with the headers.
    pub kind: HeadersKind,
    /// `headers` messages each peer sends. Default 1.
    #[serde(default = "one")]
    pub messages: u32,
    /// Headers in each message; the limit is 2000 (more is misbehaviour). Default 2000.
    #[serde(default = "two_thousand")]
    pub headers_per_message: u32,
}

/// How `headers_spam` headers are bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadersKind {
    /// Connecting headers whose hash is above the target ("header with invalid proof of work").
    InvalidPow,
    /// Headers that do not chain to each other ("non-continuous headers sequence").
    NonContinuous,
    /// A valid chain with less work than the node's: ignored, not punished.
    LowWork,
}

/// `invalid_block` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidBlock {
    /// What is wrong with the block.
    pub kind: InvalidBlockKind,
    /// Blocks each peer sends. Default 1.
    #[serde(default = "one")]
    pub blocks: u32,
}

/// How an `invalid_block` block is bad. Each builds on the node's tip unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidBlockKind {
    /// A transaction duplicated so the merkle root still matches (CVE-2012-2459):
    /// "mutated block".
    Mutated,
    /// A merkle root that does not match the transactions: "mutated block".
    BadMerkle,
    /// A header hash above the target.
    BadPow,
    /// A coinbase paying more than subsidy plus fees: consensus-invalid.
    BadCoinbaseValue,
    /// A parent the node does not know.
    MissingPrev,
}

/// `tx_spam` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxSpam {
    /// What the transactions are.
    pub kind: TxKind,
    /// Transactions each peer sends.
    pub transactions: u32,
    /// Transactions each peer sends per second. Default 10.
    #[serde(default = "ten")]
    pub rate_per_sec: f64,
}

/// What `tx_spam` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    /// Standard transactions spending the keyless coins mined at start (needs mature coins).
    Valid,
    /// Transactions the mempool rejects (mempool rejected event, no misbehaving).
    Invalid,
    /// Transactions spending outputs the node has never seen (orphanage).
    Orphan,
}

/// `version_abuse` parameters; each defaults to what an honest peerlab peer sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionAbuse {
    /// Protocol version (int32 on the wire). Below 31,800 the node disconnects. Default 70016.
    #[serde(default = "default_version")]
    pub version: i32,
    /// Length of a generated user agent, in bytes (the node accepts at most 256). Default:
    /// peerlab's own user agent.
    #[serde(default)]
    pub user_agent_len: Option<u32>,
    /// Service bits. Default 9 (NETWORK | WITNESS).
    #[serde(default = "default_services")]
    pub services: u64,
    /// Claimed best height. Default 0.
    #[serde(default)]
    pub start_height: i32,
    /// The VERSION relay flag. Default true.
    #[serde(default = "yes")]
    pub relay: bool,
}

/// `replay_recorded` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRecorded {
    /// The MCAP recording, as written: relative paths are relative to the scenario file's
    /// directory (see `Scenario::resolve`).
    pub recording: PathBuf,
    /// Which peer of the recording: its peer id, or its address as recorded.
    pub peer: RecordedPeer,
    /// Pacing: `1` is the recorded pacing, `10` ten times faster, `"max"` no pauses.
    /// Default 1.
    #[serde(default)]
    pub speed: Speed,
}

/// A peer in a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedPeer {
    /// The node's peer id (`peer_id` in message and connection events).
    Id(u64),
    /// The peer's address as recorded (`meta.addr`), e.g. `127.0.0.1:50412`.
    Addr(String),
}

/// Replay pacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Multiply the recorded rate by this (> 0).
    Factor(f64),
    /// Send as fast as the connection takes it.
    Max,
}

impl Default for Speed {
    fn default() -> Speed {
        Speed::Factor(1.0)
    }
}

impl<'de> Deserialize<'de> for RecordedPeer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RecordedPeer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a peer id (integer) or a recorded address (string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RecordedPeer, E> {
                u64::try_from(v)
                    .map(RecordedPeer::Id)
                    .map_err(|_| E::custom(format!("peer id {v} is negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RecordedPeer, E> {
                Ok(RecordedPeer::Id(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RecordedPeer, E> {
                Ok(RecordedPeer::Addr(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Speed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive number or \"max\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Speed, E> {
                Ok(Speed::Factor(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Speed, E> {
                Ok(Speed::Factor(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Speed, E> {
                Ok(Speed::Factor(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Speed, E> {
                if v == "max" {
                    Ok(Speed::Max)
                } else {
                    Err(E::custom(format!(
                        "invalid speed {v:?} (expected a positive number or \"max\")"
                    )))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn one() -> u32 {
    1
}

fn ten() -> f64 {
    10.0
}

fn two_thousand() -> u32 {
    2000
}

fn yes() -> bool {
    true
}

fn default_version() -> i32 {
    70016
}

fn default_services() -> u64 {
    9
}
