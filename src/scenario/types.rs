//! The scenario data types: what a parsed, validated scenario file says.
//!
//! Times (`*_secs`) are seconds since the scenario started (the node is up, `mine_at_start`
//! blocks are mined and the pipeline is watching); they may be fractional. Counts are at
//! least 1 wherever they appear.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::decode::Tagged;
use crate::event::EventKind;

/// `[scenario]`: what the scenario is and how long it may run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioMeta {
    /// Short identifier, used in reports.
    pub name: String,
    /// What the scenario rehearses.
    #[serde(default)]
    pub description: String,
    /// Seeds every random choice of the run (nonces, addresses, transactions, schedules):
    /// the same seed gives the same messages. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Hard limit of the run, in seconds; every time in the file must fall within it.
    /// Default 60.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    60
}

/// `[node]`: how the regtest node under attack is started.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Extra bitcoind arguments, added to the harness's own (e.g. `-maxconnections=32`).
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Start the node's mock clock at this UNIX time (seconds) before anything else; needed
    /// by `bump_mocktime` steps. Default: the real clock.
    #[serde(default)]
    pub mocktime: Option<u64>,
    /// Blocks mined (to the keyless address) before the scenario starts. Default 101, which
    /// leaves one mature coinbase to spend.
    #[serde(default = "default_mine_at_start")]
    pub mine_at_start: u32,
}

fn default_mine_at_start() -> u32 {
    101
}

impl Default for NodeSettings {
    fn default() -> NodeSettings {
        NodeSettings {
            extra_args: Vec::new(),
            mocktime: None,
            mine_at_start: default_mine_at_start(),
        }
    }
}

/// One `[[peers]]` table: `count` identical peers scripted by one behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerGroup {
    /// Unique group name; steps and expectations refer to it.
    pub name: String,
    /// Number of peers, 1 to 1000.
    pub count: u32,
    /// What each peer does.
    pub behaviour: Behaviour,
    /// When the peers connect. Default 0.
    pub start_at_secs: f64,
    /// When the peers hang up, if they are still connected. Default: at the end.
    pub stop_at_secs: Option<f64>,
}

/// The keys of a `[[peers]]` table other than the behaviour and its parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerGroupHeader {
    pub(crate) name: String,
    pub(crate) count: u32,
    #[serde(default)]
    pub(crate) start_at_secs: f64,
    #[serde(default)]
    pub(crate) stop_at_secs: Option<f64>,
}

/// An enum chosen by a tag key (`behaviour = "..."`, `action = "..."`, `kind = "..."`) whose
/// variants take their parameters from the same TOML table.
macro_rules! tagged_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (tag = $tag:literal, what = $what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident $(($params:ty))? = $key:literal, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* $variant $(($params))?, )*
        }

        impl $name {
            /// Every tag value, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($key),*];

            /// This variant's tag value.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $key, )*
                }
            }
        }

        impl Tagged for $name {
            const TAG: &'static str = $tag;
            const WHAT: &'static str = $what;

            fn names() -> &'static [&'static str] {
                Self::NAMES
            }

            fn fields(tag: &str) -> Option<&'static [&'static str]> {
                match tag {
                    $( $key => Some(tagged_enum!(@fields $($params)?)), )*
                    _ => None,
                }
            }

            fn decode(
                tag: &str,
                de: toml::de::ValueDeserializer<'_>,
            ) -> Result<Self, toml::de::Error> {
                match tag {
                    $( $key => tagged_enum!(@decode de, $name::$variant $(, $params)?), )*
                    other => Err(de::Error::custom(format!("unknown {} {other:?}", $what))),
                }
            }
        }
    };
    (@fields) => { &[] };
    (@fields $params:ty) => { super::decode::struct_fields::<$params>() };
    (@decode $de:ident, $path:path) => {
        super::decode::NoParams::deserialize($de).map(|_| $path)
    };
    (@decode $de:ident, $path:path, $params:ty) => {
        <$params>::deserialize($de).map($path)
    };
}

tagged_enum! {
    /// What the peers of a group do, chosen by `behaviour = "..."`; the parameters sit in
    /// the same `[[peers]]` table.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Behaviour (tag = "behaviour", what = "behaviour") {
        /// Complete the handshake, answer pings, stay idle. Many of them exhaust inbound
        /// slots and cause evictions (`-maxconnections`).
        Honest = "honest",
        /// `addr` / `addrv2` messages after the handshake.
        AddrFlood(AddrFlood) = "addr_flood",
        /// `inv` messages (transaction announcements).
        InvFlood(InvFlood) = "inv_flood",
        /// `getdata` messages for transactions the node does not have.
        GetdataFlood(GetdataFlood) = "getdata_flood",
        /// `ping` messages at a fixed rate, optionally never answering the node's pings.
        PingFlood(PingFlood) = "ping_flood",
        /// Frames Bitcoin Core rejects at the framing layer.
        Malformed(Malformed) = "malformed",
        /// Send VERSION only after a delay.
        SlowHandshake(SlowHandshake) = "slow_handshake",
        /// Connect and never send anything.
        NoHandshake = "no_handshake",
        /// `headers` messages that the node must reject or ignore.
        HeadersSpam(HeadersSpam) = "headers_spam",
        /// `block` messages carrying invalid blocks.
        InvalidBlock(InvalidBlock) = "invalid_block",
        /// `tx` messages: valid, invalid or orphan transactions.
        TxSpam(TxSpam) = "tx_spam",
        /// A handshake with unusual VERSION fields, then idle.
        VersionAbuse(VersionAbuse) = "version_abuse",
        /// Re-send what one peer of a recording sent, re-framed for regtest.
        ReplayRecorded(ReplayRecorded) = "replay_recorded",
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
    /// directory (see [`Scenario::resolve`](super::Scenario::resolve)).
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

/// One `[[steps]]` table: an action at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When, in seconds since the start. Steps run in time order (file order for ties).
    pub at_secs: f64,
    /// What.
    pub action: Action,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepHeader {
    pub(crate) at_secs: f64,
}

tagged_enum! {
    /// What a step does, chosen by `action = "..."`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Action (tag = "action", what = "action") {
        /// Mine blocks to the keyless address.
        Mine(Mine) = "mine",
        /// Send transactions spending keyless coins (through RPC, not P2P).
        SendTx(SendTx) = "send_tx",
        /// Advance the node's mock clock (`setmocktime`); needs `[node] mocktime`.
        BumpMocktime(BumpMocktime) = "bump_mocktime",
        /// Disconnect every peer of a group from our side.
        Disconnect(Disconnect) = "disconnect",
        /// Kill the node (SIGKILL) and start it again on the same datadir. A killed node
        /// may lose its unflushed tip: blocks mined shortly before may be gone.
        RestartNode = "restart_node",
    }
}

/// `mine` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mine {
    /// Blocks to mine. Default 1.
    #[serde(default = "one")]
    pub blocks: u32,
}

/// `send_tx` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendTx {
    /// Transactions to send. Default 1.
    #[serde(default = "one")]
    pub count: u32,
}

/// `bump_mocktime` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpMocktime {
    /// Seconds to add to the mock clock.
    pub secs: u64,
}

/// `disconnect` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    /// The peer group whose connections to close.
    pub group: String,
}

/// One `[[expect]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// A label for the report. Default: see [`Expectation::label`].
    pub name: Option<String>,
    /// The check.
    pub check: Check,
}

impl Expectation {
    /// The name, or `expect[INDEX] KIND WHAT` when there is none.
    pub fn label(&self, index: usize) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let what = match &self.check {
            Check::Event(e) => e.event.to_string(),
            Check::Rpc(r) => format!("{} {}", r.method, r.field.as_deref().unwrap_or("")),
            Check::Drops(_) => "extractor drops".to_string(),
        };
        format!("expect[{index}] {} {}", self.check.name(), what.trim_end())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectationHeader {
    #[serde(default)]
    pub(crate) name: Option<String>,
}

tagged_enum! {
    /// What an expectation checks, chosen by `kind = "..."`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Check (tag = "kind", what = "expectation kind") {
        /// Count events of one type seen by the observer.
        Event(EventCheck) = "event",
        /// Compare a value read from the node's RPC at one time.
        Rpc(RpcCheck) = "rpc",
        /// Bound the extractor's drop counters at the end.
        Drops(DropsCheck) = "drops",
    }
}

/// `kind = "event"`: between the start and the deadline, the number of matching events is
/// within `min..=max`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCheck {
    /// Which events: `<category>.<arm>` or `<category>.*`.
    pub event: EventPath,
    /// Field path -> condition; every condition must hold for an event to count. Paths are
    /// looked up in the arm's payload (`message` of `connection.misbehaving`), then in the
    /// category's own fields (`meta.inbound` of any `message.*`).
    #[serde(default, deserialize_with = "deserialize_filters")]
    pub filters: BTreeMap<String, Filter>,
    /// Count only events concerning peers of this group (message and connection events).
    #[serde(default)]
    pub group: Option<String>,
    /// At least this many. Default 1.
    #[serde(default = "one_u64")]
    pub min: u64,
    /// At most this many. Default: no bound. `max = 0` expects no such event.
    #[serde(default)]
    pub max: Option<u64>,
    /// Stop counting at this time. Default: `timeout_secs`.
    #[serde(default)]
    pub deadline_secs: Option<f64>,
}

/// `kind = "rpc"`: at `at_secs`, call `method` and compare a value from its result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcCheck {
    /// The RPC method, e.g. `getpeerinfo`, `getmempoolinfo`, `listbanned`.
    pub method: String,
    /// Its positional parameters. Default none.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// A dotted path into the result (or into each element of an array result).
    #[serde(default)]
    pub field: Option<String>,
    /// How the result becomes one value. Default `value`.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// `getpeerinfo` only: keep the entries of this group's peers.
    #[serde(default)]
    pub group: Option<String>,
    /// Comparison. Default `==`.
    #[serde(default)]
    pub op: Op,
    /// The right-hand side.
    pub value: Scalar,
    /// When to call, in seconds since the start.
    pub at_secs: f64,
}

/// How an RPC result becomes the value compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The result itself, or its `field`.
    #[default]
    Value,
    /// The number of elements of an array result (after the group filter); takes no field.
    Count,
    /// The sum of `field` over the elements.
    Sum,
    /// The smallest `field` over the elements.
    Min,
    /// The largest `field` over the elements.
    Max,
}

impl Aggregate {
    /// As written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Value => "value",
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// `kind = "drops"`: the extractor lost at most `max` events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropsCheck {
    /// Upper bound. Default 0.
    #[serde(default)]
    pub max: u64,
    /// Which counters. Default `all`.
    #[serde(default)]
    pub source: DropSource,
}

/// Which drop counters a `drops` expectation sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropSource {
    /// Kernel and bus.
    #[default]
    All,
    /// Records the BPF side dropped because a ring buffer was full.
    Kernel,
    /// Events the publisher dropped (buffer full, too large, ...).
    Bus,
}

/// An event category of the schema that expectations may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventCategory {
    /// `message`: P2P messages in and out.
    Message,
    /// `connection`: opened, closed, evicted, misbehaving.
    Connection,
    /// `mempool`: added, removed, replaced, rejected.
    Mempool,
    /// `validation`: block connected.
    Validation,
    /// `utxocache`: flush, add, spent, uncache.
    Utxocache,
}

impl EventCategory {
    /// Every category, in documentation order.
    pub const ALL: [EventCategory; 5] = [
        EventCategory::Message,
        EventCategory::Connection,
        EventCategory::Mempool,
        EventCategory::Validation,
        EventCategory::Utxocache,
    ];

    /// The name in event paths (the arm of `ebpf_extractor.ebpf`).
    pub fn name(self) -> &'static str {
        match self {
            EventCategory::Message => "message",
            EventCategory::Connection => "connection",
            EventCategory::Mempool => "mempool",
            EventCategory::Validation => "validation",
            EventCategory::Utxocache => "utxocache",
        }
    }

    /// The bus subject the category travels on.
    pub fn kind(self) -> EventKind {
        match self {
            EventCategory::Message => EventKind::NetMsg,
            EventCategory::Connection => EventKind::NetConn,
            EventCategory::Mempool => EventKind::Mempool,
            EventCategory::Validation => EventKind::Validation,
            EventCategory::Utxocache => EventKind::Utxocache,
        }
    }

    /// Whether events of this category concern one peer (so `group` applies).
    pub fn has_peer(self) -> bool {
        matches!(self, EventCategory::Message | EventCategory::Connection)
    }
}

/// `<category>.<arm>` (e.g. `connection.misbehaving`, `message.addr`) or `<category>.*`.
/// Parsing checks both names against the embedded event schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventPath {
    /// The category.
    pub category: EventCategory,
    /// The arm (`None` for `*`: any arm).
    pub arm: Option<String>,
}

impl fmt::Display for EventPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.category.name(),
            self.arm.as_deref().unwrap_or("*")
        )
    }
}

impl std::str::FromStr for EventPath {
    type Err = String;

    fn from_str(s: &str) -> Result<EventPath, String> {
        super::schema::parse_event_path(s)
    }
}

impl<'de> Deserialize<'de> for EventPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Op {
    /// Equal (numbers compare as numbers).
    #[default]
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater or equal.
    #[serde(rename = ">=")]
    Ge,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less or equal.
    #[serde(rename = "<=")]
    Le,
    /// String prefix.
    #[serde(rename = "starts_with")]
    StartsWith,
    /// String contains.
    #[serde(rename = "contains")]
    Contains,
}

impl Op {
    /// Whether the operator orders numbers.
    pub fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }

    /// Whether the operator works on strings only.
    pub fn is_textual(self) -> bool {
        matches!(self, Op::StartsWith | Op::Contains)
    }

    /// As written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::StartsWith => "starts_with",
            Op::Contains => "contains",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A single TOML value an expectation compares against.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
}

impl Scalar {
    /// Whether it is a number.
    pub fn is_number(&self) -> bool {
        matches!(self, Scalar::Int(_) | Scalar::Float(_))
    }

    /// A TOML-ish rendering for messages.
    pub fn describe(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(x) => x.to_string(),
            Scalar::String(s) => format!("{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean, integer, float or string")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::String(v.to_string()))
    }
}

/// One event filter: the field at a path compared with a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The comparison (a bare value means `==`).
    pub op: Op,
    /// The value.
    pub value: Scalar,
}

/// A filter entry while reading: a condition, or a table of deeper paths (`meta.inbound =
/// true` written as an unquoted dotted key is a nested table in TOML).
enum FilterNode {
    Leaf(Filter),
    Nested(Vec<(String, FilterNode)>),
}

impl<'de> Deserialize<'de> for FilterNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FilterNodeVisitor)
    }
}

struct FilterNodeVisitor;

impl<'de> Visitor<'de> for FilterNodeVisitor {
    type Value = FilterNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, or a table { op = \"...\", value = ... }")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<FilterNode, E> {
        ScalarVisitor.visit_bool(v).map(leaf)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FilterNode, E> {
        ScalarVisitor.visit_i64(v).map(leaf)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FilterNode, E> {
        ScalarVisitor.visit_u64(v).map(leaf)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FilterNode, E> {
        ScalarVisitor.visit_f64(v).map(leaf)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FilterNode, E> {
        ScalarVisitor.visit_str(v).map(leaf)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilterNode, A::Error> {
        // A table holding `op` is a comparison; any other table continues the path. Keys may
        // arrive in any order, so `op` decides only at the end.
        let mut op = None;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "op" {
                op = Some(map.next_value::<Op>()?);
            } else {
                entries.push((key, map.next_value::<FilterNode>()?));
            }
        }
        let Some(op) = op else {
            return Ok(FilterNode::Nested(entries));
        };
        let mut value = None;
        for (key, node) in entries {
            match (key.as_str(), node) {
                (
                    "value",
                    FilterNode::Leaf(Filter {
                        op: Op::Eq,
                        value: v,
                    }),
                ) => value = Some(v),
                ("value", FilterNode::Nested(_)) => {
                    return Err(de::Error::custom(
                        "the `value` of a filter must be a boolean, integer, float or string",
                    ))
                }
                (other, _) => {
                    return Err(de::Error::custom(format!(
                        "unknown key {other:?} in a filter comparison (expected: op, value)"
                    )))
                }
            }
        }
        let value = value.ok_or_else(|| de::Error::custom("filter comparison without `value`"))?;
        Ok(FilterNode::Leaf(Filter { op, value }))
    }
}

fn leaf(value: Scalar) -> FilterNode {
    FilterNode::Leaf(Filter { op: Op::Eq, value })
}

fn deserialize_filters<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Filter>, D::Error> {
    let FilterNode::Nested(entries) = FilterNode::deserialize(deserializer)? else {
        return Err(de::Error::custom(
            "`filters` must be a table of field path -> value",
        ));
    };
    let mut out = BTreeMap::new();
    flatten_filters(String::new(), entries, &mut out)?;
    Ok(out)
}

fn flatten_filters<E: de::Error>(
    prefix: String,
    entries: Vec<(String, FilterNode)>,
    out: &mut BTreeMap<String, Filter>,
) -> Result<(), E> {
    for (key, node) in entries {
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match node {
            FilterNode::Leaf(filter) => {
                if out.insert(path.clone(), filter).is_some() {
                    return Err(E::custom(format!("filter {path:?} is given twice")));
                }
            }
            FilterNode::Nested(inner) if inner.is_empty() => {
                return Err(E::custom(format!("filter {path:?} has no value")));
            }
            FilterNode::Nested(inner) => flatten_filters(path, inner, out)?,
        }
    }
    Ok(())
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

fn one_u64() -> u64 {
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
