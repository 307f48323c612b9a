//! Scenario files: the TOML format of attack rehearsals (issue 5), parsed and validated.
//!
//! This module owns the **file format** only: the types a scenario file deserializes into
//! ([`Scenario`] and everything under it), the checks that make a file trustworthy before
//! anything is started ([`Scenario::validate`]), and the errors a person gets for a bad file
//! ([`ScenarioError`], [`Diagnostic`]: `FILE:LINE:COLUMN: what is wrong`). Running a scenario
//! (peers, node, steps, evaluating expectations, reports) belongs to the rehearsal engine built
//! on these types. The format is documented by `scenarios/annotated-example.toml` and
//! `scenarios/README.md`.
//!
//! A file has five parts: `[scenario]` (name, seed, timeout), `[node]` (bitcoind arguments,
//! mock time, blocks mined at start), `[[peers]]` groups (count, `behaviour = "..."` and its
//! parameters in the same table, start and stop times), `[[steps]]` (`at_secs` and
//! `action = "..."`) and `[[expect]]` (`kind = "event" | "rpc" | "drops"`).
//!
//! Invariants:
//! - every problem found carries a location: syntax and type errors the span toml reports,
//!   validation problems the span of the value they are about (or of the nearest enclosing
//!   table when the value is a default);
//! - a [`Scenario`] returned by [`Scenario::from_str`] / [`Scenario::from_file`] has passed
//!   [`Scenario::validate`]: every time is finite and within the timeout, every count is at
//!   least 1, every group reference resolves, every event path and filter exists in the
//!   embedded event schema, every recording exists;
//! - parsing never panics, whatever the text (a property test mutates the example).

mod decode;
mod error;
mod schema;
mod topology;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{Diagnostic, ScenarioError, Stage};
pub use schema::arm_names;
pub use topology::MAX_NODES;
pub use types::{
    Action, AddrFlood, AddrVersion, Aggregate, AlertCheck, Behaviour, BumpMocktime, Check,
    Disconnect, DropSource, DropsCheck, EventCategory, EventCheck, EventPath, Expectation, Filter,
    GetdataFlood, HeadersKind, HeadersSpam, InvFlood, InvalidBlock, InvalidBlockKind, Malformed,
    MalformedKind, MetricCheck, Mine, NodeBinary, NodeSettings, Op, PeerGroup, PingFlood,
    RecordedPeer, ReplayRecorded, RpcCheck, Scalar, ScenarioMeta, SendTx, SlowHandshake, Speed,
    Step, TopologyNode, TxKind, TxSpam, VersionAbuse,
};

/// Largest number of peers in one group.
pub const MAX_GROUP_PEERS: u32 = 1000;

/// Largest scenario file accepted (the biggest shipped one is a few KiB).
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;

/// Most peers a scenario may start in all, whatever the node takes (each is a task, a socket
/// and an ephemeral port of this machine).
pub const MAX_TOTAL_PEERS: u32 = 5000;

/// Most `[[peers]]` groups, `[[steps]]` and `[[expect]]` entries a scenario may have.
pub const MAX_ENTRIES: usize = 1000;

/// A parsed and validated scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `[scenario]`.
    pub scenario: ScenarioMeta,
    /// `[node]` (defaults when the table is absent, and in a topology).
    pub node: NodeSettings,
    /// `[[node]]`: the nodes of a topology, in file order; empty for the single embedded
    /// node. The first is the home node.
    pub topology: Vec<TopologyNode>,
    /// `[[peers]]`, in file order.
    pub peers: Vec<PeerGroup>,
    /// `[[steps]]`, in file order (see [`Scenario::ordered_steps`]).
    pub steps: Vec<Step>,
    /// `[[expect]]`, in file order.
    pub expect: Vec<Expectation>,
    source: Source,
}

/// Where a scenario came from, for locating problems and resolving relative paths.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    text: String,
    spans: decode::Spans,
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    ///
    /// Files over [`MAX_SCENARIO_BYTES`] are refused before they are read whole; text that is
    /// not UTF-8 is reported at the line and column of its first bad byte.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        use std::io::Read as _;
        let path = path.as_ref();
        let read_error = |source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_SCENARIO_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_SCENARIO_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            ScenarioError::Invalid(vec![error::not_utf8(path, e.as_bytes(), e.utf8_error())])
        })?;
        Scenario::from_str(&text, path)
    }

    /// Parses and validates scenario text. `path` names the file in messages, and its
    /// directory is where relative recording paths are looked up.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let scenario = Scenario::parse(text, path.as_ref())?;
        let problems = scenario.validate();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Invalid(problems))
        }
    }

    /// Syntax and schema only (no [`Scenario::validate`]).
    fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let reporter = error::Reporter::new(path, text);
        let decoded = decode::decode(&reporter).map_err(ScenarioError::Invalid)?;
        Ok(Scenario {
            scenario: decoded.meta,
            node: decoded.node,
            topology: decoded.topology,
            peers: decoded.peers,
            steps: decoded.steps,
            expect: decoded.expect,
            source: Source {
                path: path.to_path_buf(),
                text: text.to_string(),
                spans: decoded.spans,
            },
        })
    }

    /// Every consistency problem, located and sorted by position (empty: the scenario is
    /// good). See `validate.rs` for the rules.
    pub fn validate(&self) -> Vec<Diagnostic> {
        validate::validate(self)
    }

    /// The scenario file.
    pub fn path(&self) -> &Path {
        &self.source.path
    }

    /// The directory relative paths in the file are relative to.
    pub fn base_dir(&self) -> &Path {
        match self.source.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// A path from the file, resolved against [`Scenario::base_dir`] when relative.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir().join(path)
    }

    /// Whether the scenario declares `[[node]]`s (a topology of containers).
    pub fn is_topology(&self) -> bool {
        !self.topology.is_empty()
    }

    /// The home node of a topology (the first `[[node]]`).
    pub fn home_node(&self) -> Option<&TopologyNode> {
        self.topology.first()
    }

    /// Blocks `node` mines before time zero (101 on the home node unless set).
    pub fn mine_at_start_of(&self, node: &TopologyNode) -> u32 {
        let home = self.home_node().is_some_and(|h| h.name == node.name);
        node.mine_at_start
            .unwrap_or(if home { self.node.mine_at_start } else { 0 })
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&PeerGroup> {
        self.peers.iter().find(|g| g.name == name)
    }

    /// Peers over all groups.
    pub fn total_peers(&self) -> u32 {
        self.peers.iter().map(|g| g.count).sum()
    }

    /// The steps in the order they run: by time, file order among equal times.
    pub fn ordered_steps(&self) -> Vec<&Step> {
        let mut steps: Vec<&Step> = self.steps.iter().collect();
        steps.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
        steps
    }

    /// `[scenario] timeout_secs` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.scenario.timeout_secs)
    }

    /// The deadline of an event expectation: its own, else the timeout.
    pub fn deadline_secs(&self, check: &EventCheck) -> f64 {
        check
            .deadline_secs
            .unwrap_or(self.scenario.timeout_secs as f64)
    }
}

/// A validated `*_secs` value as a duration (validation guarantees finite and >= 0; anything
/// else becomes zero).
pub fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}
