//! The scenario data types: what a parsed, validated scenario file says.
//!
//! Times (`*_secs`) are seconds since the scenario started (the node is up, `mine_at_start`
//! blocks are mined and the pipeline is watching); they may be fractional. Counts are at
//! least 1 wherever they appear.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::decode::Tagged;
pub use crate::attack::params::{
    AddrFlood, AddrVersion, Behaviour, GetdataFlood, HeadersKind, HeadersSpam, InvFlood,
    InvalidBlock, InvalidBlockKind, Malformed, MalformedKind, PingFlood, RecordedPeer,
    ReplayRecorded, SlowHandshake, Speed, TxKind, TxSpam, VersionAbuse,
};
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

/// One `[[node]]` of a topology: a regtest node in a container of its own, on the run's
/// private container network. The first `[[node]]` is the *home* node: peer groups, steps and
/// expectations that name no node act on it, and it mines the start-up blocks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyNode {
    /// Unique node name (letters, digits, `_`, `-`); also its subject token on the bus.
    pub name: String,
    /// Extra bitcoind arguments (e.g. `-maxconnections=16`).
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// The container image. Default: the traceable bitcoind image `peerlab setup
    /// --containers` built.
    #[serde(default)]
    pub image: Option<String>,
    /// Which Core binary of the image runs. Default `bitcoind`.
    #[serde(default)]
    pub binary: NodeBinary,
    /// Nodes this one dials and keeps dialling (`addnode ... add`): the topology's edges.
    #[serde(default)]
    pub addnode: Vec<String>,
    /// Whether the observer stack watches this node (every extractor, events on subjects
    /// `peerlab.<name>.*`). At least one node is observed.
    #[serde(default)]
    pub observe: bool,
    /// Blocks this node mines before time zero. Default: 101 on the home node, 0 elsewhere.
    #[serde(default)]
    pub mine_at_start: Option<u32>,
}

/// The Core binary a topology node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeBinary {
    /// `bitcoind`.
    #[default]
    Bitcoind,
    /// `bitcoin-node` (the same node with Cap'n Proto IPC; the IPC extractor needs it).
    BitcoinNode,
}

impl NodeBinary {
    /// The file name.
    pub fn file_name(self) -> &'static str {
        match self {
            NodeBinary::Bitcoind => "bitcoind",
            NodeBinary::BitcoinNode => "bitcoin-node",
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
    /// Topologies: the nodes each peer connects to (one connection per node; empty: the
    /// home node). `node = "a"` and `nodes = ["a", "b"]` both fill it.
    pub nodes: Vec<String>,
    /// Topologies: each peer connects from an address of its own on the container network
    /// (many distinct attackers rather than one host).
    pub distinct_addresses: bool,
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
    #[serde(default)]
    pub(crate) node: Option<String>,
    #[serde(default)]
    pub(crate) nodes: Vec<String>,
    #[serde(default)]
    pub(crate) distinct_addresses: bool,
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

        tagged_enum! {
            impl $name (tag = $tag, what = $what) {
                $( $variant $(($params))? = $key, )*
            }
        }
    };
    // The tag dispatch of an enum defined elsewhere (the attack engine's `Behaviour`), which
    // already has `NAMES`.
    (
        impl $name:ident (tag = $tag:literal, what = $what:literal) {
            $( $variant:ident $(($params:ty))? = $key:literal, )*
        }
    ) => {
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
    impl Behaviour (tag = "behaviour", what = "behaviour") {
        Honest = "honest",
        AddrFlood(AddrFlood) = "addr_flood",
        InvFlood(InvFlood) = "inv_flood",
        GetdataFlood(GetdataFlood) = "getdata_flood",
        PingFlood(PingFlood) = "ping_flood",
        Malformed(Malformed) = "malformed",
        SlowHandshake(SlowHandshake) = "slow_handshake",
        NoHandshake = "no_handshake",
        HeadersSpam(HeadersSpam) = "headers_spam",
        InvalidBlock(InvalidBlock) = "invalid_block",
        TxSpam(TxSpam) = "tx_spam",
        VersionAbuse(VersionAbuse) = "version_abuse",
        ReplayRecorded(ReplayRecorded) = "replay_recorded",
    }
}

/// One `[[steps]]` table: an action at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When, in seconds since the start. Steps run in time order (file order for ties).
    pub at_secs: f64,
    /// Topologies: the node it acts on (default: the home node).
    pub node: Option<String>,
    /// What.
    pub action: Action,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepHeader {
    pub(crate) at_secs: f64,
    #[serde(default)]
    pub(crate) node: Option<String>,
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
    /// Topologies, `event` and `rpc` checks: the node whose events count / whose RPC is
    /// called (default: events of every observed node; RPC of the home node).
    pub node: Option<String>,
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
            Check::Alert(a) => a.alert.clone(),
            Check::Metric(m) => m.metric.clone(),
        };
        format!("expect[{index}] {} {}", self.check.name(), what.trim_end())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectationHeader {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) node: Option<String>,
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
        /// Count alerts the alerts tool's heuristics raise.
        Alert(AlertCheck) = "alert",
        /// Compare a metric of the metrics tool at the end of the run.
        Metric(MetricCheck) = "metric",
    }
}

/// `kind = "metric"`: at the end of the run, the value of a metric family of the metrics tool
/// (fed with every event the observer saw), summed over the series whose labels include
/// `labels`, compares true with `value`. A histogram's `NAME_count` / `NAME_sum` give its
/// sample count / sum.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricCheck {
    /// The family (`peerobserver_p2p_message_count`, `peerlab_alerts`, ...).
    pub metric: String,
    /// Label name -> value every counted series must have.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The comparison (default `==`).
    #[serde(default)]
    pub op: Op,
    /// The number to compare with.
    pub value: Scalar,
}

/// `kind = "alert"`: between the start and the deadline, the number of alerts of one kind
/// (`PingSpammer`, `AddrSpammer`, `AddrEntriesSpammer`, `PeerDisconnected`, or `*` for any)
/// is within `min..=max`; with `group`, only alerts about that group's peers count.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertCheck {
    /// The alert kind, or `*`.
    pub alert: String,
    /// Count only alerts about peers of this group.
    #[serde(default)]
    pub group: Option<String>,
    /// At least this many. Default 1.
    #[serde(default = "one_u64")]
    pub min: u64,
    /// At most this many. Default: no bound. `max = 0` expects no such alert.
    #[serde(default)]
    pub max: Option<u64>,
    /// Stop counting at this time. Default: `timeout_secs`.
    #[serde(default)]
    pub deadline_secs: Option<f64>,
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
    /// Count only events concerning peers of this group (message and connection events, and
    /// `rpc.peer_infos`, judged per peer).
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
    /// `log`: debug.log lines (the log extractor): block connected, block checked, unknown.
    Log,
    /// `rpc`: RPC replies (the RPC extractor): peer infos, mempool info, ...
    Rpc,
    /// `p2p`: what the P2P extractor learns (ping durations, announcements).
    P2p,
    /// `ipc`: the IPC extractor's chain tips.
    Ipc,
}

impl EventCategory {
    /// Every category, in documentation order.
    pub const ALL: [EventCategory; 9] = [
        EventCategory::Message,
        EventCategory::Connection,
        EventCategory::Mempool,
        EventCategory::Validation,
        EventCategory::Utxocache,
        EventCategory::Log,
        EventCategory::Rpc,
        EventCategory::P2p,
        EventCategory::Ipc,
    ];

    /// The name in event paths (the arm of `ebpf_extractor.ebpf`, or `log`, `rpc`, `p2p` and
    /// `ipc` for the other extractors' messages).
    pub fn name(self) -> &'static str {
        match self {
            EventCategory::Message => "message",
            EventCategory::Connection => "connection",
            EventCategory::Mempool => "mempool",
            EventCategory::Validation => "validation",
            EventCategory::Utxocache => "utxocache",
            EventCategory::Log => "log",
            EventCategory::Rpc => "rpc",
            EventCategory::P2p => "p2p",
            EventCategory::Ipc => "ipc",
        }
    }

    /// The protobuf message of the category's events, when it is not an arm of
    /// `ebpf_extractor.ebpf`.
    pub fn own_message(self) -> Option<&'static str> {
        match self {
            EventCategory::Log => Some("log_extractor.log"),
            EventCategory::Rpc => Some("rpc_extractor.rpc"),
            EventCategory::P2p => Some("p2p_extractor.p2p"),
            EventCategory::Ipc => Some("ipc_extractor.ipc"),
            EventCategory::Message
            | EventCategory::Connection
            | EventCategory::Mempool
            | EventCategory::Validation
            | EventCategory::Utxocache => None,
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
            EventCategory::Log => EventKind::LogExtractor,
            EventCategory::Rpc => EventKind::Rpc,
            EventCategory::P2p => EventKind::P2pExtractor,
            EventCategory::Ipc => EventKind::Ipc,
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

impl EventPath {
    /// For an arm that lists peers (`rpc.peer_infos`: one `PeerInfo` per connected peer), the
    /// repeated field holding them. Such events are judged per peer: each element is one
    /// observation, filters name the element's fields and `group` applies.
    pub fn per_peer_list(&self) -> Option<&'static str> {
        match (self.category, self.arm.as_deref()) {
            (EventCategory::Rpc, Some("peer_infos")) => Some("infos"),
            _ => None,
        }
    }

    /// Whether events on this path concern one peer (so `group` applies).
    pub fn has_peer(&self) -> bool {
        self.category.has_peer() || self.per_peer_list().is_some()
    }
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

fn one() -> u32 {
    1
}

fn one_u64() -> u64 {
    1
}
