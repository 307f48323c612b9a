//! Consistency rules a decoded scenario must satisfy, each problem located in the file.
//!
//! Rules:
//! - `[scenario]`: non-empty name; `timeout_secs` in 1..=3600.
//! - `[node]`: extra arguments start with `-` and do not override what the harness controls;
//!   `mocktime` after the regtest genesis block and within 32-bit block time.
//! - `[[peers]]`: names non-empty, of letters, digits, `_` and `-`, unique; `count` in
//!   1..=1000; start before the timeout; stop after start and not after the timeout;
//!   behaviour parameters at least 1 where they count something, rates finite, messages
//!   within Bitcoin Core's 4,000,000-byte frame limit (an oversized frame is its own attack:
//!   `malformed`, kind `oversized`), recordings that exist.
//! - `[[steps]]`: times finite, >= 0 and before the timeout; `disconnect` names a group;
//!   `bump_mocktime` needs `[node] mocktime`.
//! - transactions (`send_tx`, `tx_spam` `valid`) need a mature coinbase by their time:
//!   `mine_at_start` plus blocks mined by earlier steps >= 101.
//! - limits of the node and the machine: at most `MAX_ENTRIES` groups, steps and
//!   expectations; peers over all groups at most twice the node's `-maxconnections` (default
//!   125; twice, so eviction can be rehearsed), half the machine's ephemeral ports, and
//!   `MAX_TOTAL_PEERS`; reported at the group that crosses the limit.
//! - `[[expect]]`: groups exist (and apply: message and connection events, `getpeerinfo`);
//!   `min <= max`; `min = 0` needs a `max`; deadlines and RPC times within the timeout;
//!   filters name scalar fields of the event with values of their type; RPC aggregates have
//!   the field they need and comparisons fit the value; names unique.

use std::collections::HashMap;
use std::ops::Range;

use super::decode::{join, suggestion, Spans};
use super::error::{Diagnostic, Reporter, Stage};
use super::schema;
use super::types::{
    Action, AddrVersion, Aggregate, AlertCheck, Behaviour, Check, EventCheck, MetricCheck,
    RecordedPeer, RpcCheck, Scalar, Speed, TxKind,
};
use super::{Scenario, MAX_ENTRIES, MAX_GROUP_PEERS, MAX_TOTAL_PEERS};
use crate::tools::alerts::AlertKind;
use crate::tools::metrics::iplists::IpLists;
use crate::tools::metrics::MetricsEngine;

/// Bitcoin Core's `MAX_PROTOCOL_MESSAGE_LENGTH`.
const MAX_PAYLOAD: u64 = 4_000_000;
/// Regtest genesis block time.
const REGTEST_GENESIS_TIME: u64 = 1_296_688_602;
/// Blocks needed before the first coinbase can be spent.
const MATURE_AT: u64 = 101;
/// Upper bound of rates, per second.
const MAX_RATE: f64 = 100_000.0;
/// Arguments the harness sets itself (`-name`, `-name=...`, `-noname`).
const MANAGED_ARGS: &[&str] = &[
    "regtest",
    "chain",
    "testnet",
    "testnet4",
    "signet",
    "datadir",
    "conf",
    "port",
    "rpcport",
    "bind",
    "rpcbind",
    "rpcuser",
    "rpcpassword",
    "rpccookiefile",
    "listen",
    "connect",
];

pub(crate) fn validate(s: &Scenario) -> Vec<Diagnostic> {
    let rep = Reporter::new(&s.source.path, &s.source.text);
    let mut v = Validator {
        s,
        rep: &rep,
        spans: &s.source.spans,
        problems: Vec::new(),
    };
    v.meta();
    v.node();
    v.topology();
    v.limits();
    v.peers();
    v.steps();
    v.coins();
    v.expectations();
    let mut problems = v.problems;
    problems.sort_by_key(|d| (d.line, d.column));
    problems
}

struct Validator<'a> {
    s: &'a Scenario,
    rep: &'a Reporter<'a>,
    spans: &'a Spans,
    problems: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn timeout(&self) -> f64 {
        self.s.scenario.timeout_secs as f64
    }

    fn at(&mut self, span: Range<usize>, message: String) {
        self.problems
            .push(self.rep.at(span, Stage::Validation, message));
    }

    /// A problem with the value at `path`.
    fn bad(&mut self, path: &str, message: impl Into<String>) {
        let span = self.spans.value(path);
        self.at(span, format!("{path}: {}", message.into()));
    }

    fn at_least_one(&mut self, path: &str, value: u64) {
        if value == 0 {
            self.bad(path, "must be at least 1");
        }
    }

    /// A time: finite, >= 0, and before (or, with `inclusive`, at) the timeout.
    fn time(&mut self, path: &str, secs: f64, inclusive: bool) -> bool {
        let timeout = self.timeout();
        if !secs.is_finite() || secs < 0.0 {
            self.bad(
                path,
                format!("must be a finite number of seconds >= 0, found {secs}"),
            );
            return false;
        }
        let beyond = if inclusive {
            secs > timeout
        } else {
            secs >= timeout
        };
        if beyond {
            let bound = if inclusive { "after" } else { "at or after" };
            self.bad(
                path,
                format!(
                    "{secs} s is {bound} the scenario's timeout_secs ({timeout} s), so it never \
                     happens"
                ),
            );
            return false;
        }
        true
    }

    fn rate(&mut self, path: &str, rate: f64, allow_zero: bool) {
        let ok =
            rate.is_finite() && rate <= MAX_RATE && (rate > 0.0 || (allow_zero && rate == 0.0));
        if !ok {
            let low = if allow_zero { ">= 0" } else { "> 0" };
            self.bad(
                path,
                format!("must be a number {low} and <= {MAX_RATE}, found {rate}"),
            );
        }
    }

    /// A message of `entries` entries of `entry_bytes` each must fit one frame.
    fn fits(&mut self, path: &str, entries: u32, entry_bytes: u64) {
        let entries = u64::from(entries);
        let size = compact_size_len(entries) + entries * entry_bytes;
        if size > MAX_PAYLOAD {
            let most = (MAX_PAYLOAD - 5) / entry_bytes;
            self.bad(
                path,
                format!(
                    "{entries} entries make a {size}-byte payload, beyond Bitcoin Core's \
                     {MAX_PAYLOAD}-byte frame limit (at most about {most}); an oversized frame \
                     is its own attack: behaviour = \"malformed\", kind = \"oversized\""
                ),
            );
        }
    }

    /// Reports an unknown group name at `path`; true when the group exists.
    fn group_ref(&mut self, path: &str, name: &str) -> bool {
        if self.s.group(name).is_some() {
            return true;
        }
        let names: Vec<&str> = self.s.peers.iter().map(|g| g.name.as_str()).collect();
        let known = if names.is_empty() {
            "there are no [[peers]] groups".to_string()
        } else {
            format!("groups: {}", names.join(", "))
        };
        self.bad(
            path,
            format!(
                "unknown peer group {name:?} ({known}){}",
                suggestion(name, &names)
            ),
        );
        false
    }

    fn meta(&mut self) {
        let meta = &self.s.scenario;
        if meta.name.trim().is_empty() {
            self.bad("scenario.name", "must not be empty");
        }
        if !(1..=3600).contains(&meta.timeout_secs) {
            self.bad(
                "scenario.timeout_secs",
                format!("must be 1 to 3600 seconds, found {}", meta.timeout_secs),
            );
        }
    }

    /// Sizes that follow from what the node and this machine can take; see the module docs.
    fn limits(&mut self) {
        for (section, len) in [
            ("peers", self.s.peers.len()),
            ("steps", self.s.steps.len()),
            ("expect", self.s.expect.len()),
        ] {
            if len > MAX_ENTRIES {
                self.bad(
                    &format!("{section}[{MAX_ENTRIES}]"),
                    format!("more than {MAX_ENTRIES} [[{section}]] entries ({len} in all)"),
                );
            }
        }
        let max_connections = node_max_connections(&self.s.node.extra_args);
        let ports = ephemeral_ports();
        let (limit, why) = [
            (
                max_connections.saturating_mul(2),
                format!(
                    "twice the node's -maxconnections={max_connections}; raise it in [node] extra_args"
                ),
            ),
            (
                ports / 2,
                format!("half of this machine's {ports} ephemeral ports (net.ipv4.ip_local_port_range)"),
            ),
            (MAX_TOTAL_PEERS, "peerlab's limit per rehearsal".to_string()),
        ]
        .into_iter()
        .min_by_key(|(limit, _)| *limit)
        .unwrap_or((MAX_TOTAL_PEERS, String::new()));
        // Groups whose own count is out of range are reported by `peers` and left out here.
        let counted = |count: u32| (1..=MAX_GROUP_PEERS).contains(&count);
        let mut total = 0u64;
        for (i, group) in self.s.peers.iter().enumerate() {
            if !counted(group.count) {
                continue;
            }
            total += u64::from(group.count);
            if total > u64::from(limit) {
                let all: u64 = self
                    .s
                    .peers
                    .iter()
                    .filter(|g| counted(g.count))
                    .map(|g| u64::from(g.count))
                    .sum();
                self.bad(
                    &format!("peers[{i}].count"),
                    format!(
                        "this group brings the scenario to {total} peers ({all} in all); at most {limit} can run: {why}"
                    ),
                );
                break;
            }
        }
    }

    fn node(&mut self) {
        let node = &self.s.node;
        for (i, arg) in node.extra_args.iter().enumerate() {
            if let Some(problem) = managed_arg_problem(arg) {
                self.bad(&format!("node.extra_args[{i}]"), problem);
            }
        }
        if let Some(t) = node.mocktime {
            if t <= REGTEST_GENESIS_TIME || t > u64::from(u32::MAX) {
                self.bad(
                    "node.mocktime",
                    format!(
                        "{t} must be a UNIX time after the regtest genesis block \
                         ({REGTEST_GENESIS_TIME}) and below 2^32 (block times are 32-bit)"
                    ),
                );
            }
        }
    }

    /// `[[node]]`s and every reference to a node; see `topology.rs`.
    fn topology(&mut self) {
        let problems = super::topology::problems(self.s);
        for (path, message) in problems {
            self.bad(&path, message);
        }
    }

    fn peers(&mut self) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, group) in self.s.peers.iter().enumerate() {
            let p = |key: &str| format!("peers[{i}].{key}");
            let name = group.name.as_str();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.bad(
                    &p("name"),
                    format!("{name:?} must be letters, digits, _ and - (it names report files)"),
                );
            }
            if let Some(first) = seen.insert(name, i) {
                let first_span = self.spans.value(&format!("peers[{first}].name"));
                let (line, _) = self.rep.lines.locate(self.rep.text, first_span.start);
                self.bad(
                    &p("name"),
                    format!("duplicate group name {name:?} (first used on line {line})"),
                );
            }
            if !(1..=MAX_GROUP_PEERS).contains(&group.count) {
                self.bad(
                    &p("count"),
                    format!(
                        "must be 1 to {MAX_GROUP_PEERS} peers, found {}",
                        group.count
                    ),
                );
            }
            let start_ok = self.time(&p("start_at_secs"), group.start_at_secs, false);
            if let Some(stop) = group.stop_at_secs {
                if self.time(&p("stop_at_secs"), stop, true)
                    && start_ok
                    && stop <= group.start_at_secs
                {
                    self.bad(
                        &p("stop_at_secs"),
                        format!(
                            "{stop} s is not after start_at_secs ({} s)",
                            group.start_at_secs
                        ),
                    );
                }
            }
            self.behaviour(i, &group.behaviour);
        }
    }

    fn behaviour(&mut self, i: usize, behaviour: &Behaviour) {
        let p = |key: &str| format!("peers[{i}].{key}");
        match behaviour {
            Behaviour::Honest | Behaviour::NoHandshake => {}
            Behaviour::AddrFlood(a) => {
                self.at_least_one(&p("entries_per_message"), a.entries_per_message.into());
                self.at_least_one(&p("messages"), a.messages.into());
                if a.version == AddrVersion::Addr {
                    self.fits(&p("entries_per_message"), a.entries_per_message, 30);
                }
            }
            Behaviour::InvFlood(f) => {
                self.at_least_one(&p("entries_per_message"), f.entries_per_message.into());
                self.at_least_one(&p("messages"), f.messages.into());
                self.fits(&p("entries_per_message"), f.entries_per_message, 36);
            }
            Behaviour::GetdataFlood(f) => {
                self.at_least_one(&p("entries_per_message"), f.entries_per_message.into());
                self.at_least_one(&p("messages"), f.messages.into());
                self.fits(&p("entries_per_message"), f.entries_per_message, 36);
            }
            Behaviour::PingFlood(f) => {
                self.rate(&p("rate_per_sec"), f.rate_per_sec, true);
                if f.rate_per_sec == 0.0 && f.answer_pings {
                    self.bad(
                        &p("rate_per_sec"),
                        "0 pings and answer_pings = true does nothing (use behaviour = \
                         \"honest\", or answer_pings = false to withhold pongs)",
                    );
                }
            }
            Behaviour::Malformed(m) => self.at_least_one(&p("messages"), m.messages.into()),
            Behaviour::SlowHandshake(h) => self.at_least_one(&p("delay_ms"), h.delay_ms),
            Behaviour::HeadersSpam(h) => {
                self.at_least_one(&p("messages"), h.messages.into());
                self.at_least_one(&p("headers_per_message"), h.headers_per_message.into());
                self.fits(&p("headers_per_message"), h.headers_per_message, 81);
            }
            Behaviour::InvalidBlock(b) => self.at_least_one(&p("blocks"), b.blocks.into()),
            Behaviour::TxSpam(t) => {
                self.at_least_one(&p("transactions"), t.transactions.into());
                self.rate(&p("rate_per_sec"), t.rate_per_sec, false);
            }
            Behaviour::VersionAbuse(v) => {
                if let Some(len) = v.user_agent_len {
                    if u64::from(len) > MAX_PAYLOAD - 200 {
                        self.bad(
                            &p("user_agent_len"),
                            format!(
                                "{len} bytes do not fit a {MAX_PAYLOAD}-byte frame (Bitcoin \
                                 Core accepts at most 256)"
                            ),
                        );
                    }
                }
            }
            Behaviour::ReplayRecorded(r) => {
                let resolved = self.s.resolve(&r.recording);
                if !resolved.is_file() {
                    self.bad(
                        &p("recording"),
                        format!(
                            "recording {:?} not found (looked for {}; relative paths are \
                             relative to the scenario file's directory)",
                            r.recording.display().to_string(),
                            resolved.display()
                        ),
                    );
                }
                if let RecordedPeer::Addr(addr) = &r.peer {
                    if addr.trim().is_empty() {
                        self.bad(&p("peer"), "must name a peer: its id or recorded address");
                    }
                }
                if let Speed::Factor(x) = r.speed {
                    if !(x.is_finite() && x > 0.0) {
                        self.bad(
                            &p("speed"),
                            format!("must be a number > 0 or \"max\", found {x}"),
                        );
                    }
                }
            }
        }
    }

    fn steps(&mut self) {
        for (j, step) in self.s.steps.iter().enumerate() {
            let p = |key: &str| format!("steps[{j}].{key}");
            self.time(&p("at_secs"), step.at_secs, false);
            match &step.action {
                Action::Mine(m) => self.at_least_one(&p("blocks"), m.blocks.into()),
                Action::SendTx(t) => self.at_least_one(&p("count"), t.count.into()),
                Action::BumpMocktime(b) => {
                    self.at_least_one(&p("secs"), b.secs);
                    if self.s.node.mocktime.is_none() {
                        self.bad(
                            &p("action"),
                            "bump_mocktime needs [node] mocktime (a start time), so the \
                             node's clock is mocked from the start",
                        );
                    }
                }
                Action::Disconnect(d) => {
                    if self.group_ref(&p("group"), &d.group) {
                        let start = self.s.group(&d.group).map_or(0.0, |g| g.start_at_secs);
                        if step.at_secs < start {
                            self.bad(
                                &p("at_secs"),
                                format!(
                                    "disconnects group {:?} at {} s, before it starts ({start} s)",
                                    d.group, step.at_secs
                                ),
                            );
                        }
                    }
                }
                Action::RestartNode => {}
            }
        }
    }

    /// Transactions need a mature coinbase by the time they are sent.
    fn coins(&mut self) {
        let mined_by = |t: f64| -> u64 {
            let by_steps: u64 = self
                .s
                .steps
                .iter()
                .filter(|s| s.at_secs <= t)
                .map(|s| match &s.action {
                    Action::Mine(m) => u64::from(m.blocks),
                    _ => 0,
                })
                .sum();
            let at_start = match self.s.home_node() {
                Some(home) => self.s.mine_at_start_of(home),
                None => self.s.node.mine_at_start,
            };
            u64::from(at_start) + by_steps
        };
        let mut needs = Vec::new();
        for (j, step) in self.s.steps.iter().enumerate() {
            if matches!(step.action, Action::SendTx(_)) {
                needs.push((format!("steps[{j}].action"), step.at_secs, "send_tx"));
            }
        }
        for (i, group) in self.s.peers.iter().enumerate() {
            if let Behaviour::TxSpam(t) = &group.behaviour {
                if t.kind == TxKind::Valid {
                    needs.push((format!("peers[{i}].kind"), group.start_at_secs, "tx_spam"));
                }
            }
        }
        for (path, at, what) in needs {
            let blocks = mined_by(at);
            if blocks < MATURE_AT {
                self.bad(
                    &path,
                    format!(
                        "{what} at {at} s needs a mature coinbase, but only {blocks} blocks are \
                         mined by then (mine_at_start plus mine steps; {MATURE_AT} needed)"
                    ),
                );
            }
        }
    }

    fn expectations(&mut self) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (k, e) in self.s.expect.iter().enumerate() {
            if let Some(name) = &e.name {
                if let Some(first) = names.insert(name.as_str(), k) {
                    self.bad(
                        &format!("expect[{k}].name"),
                        format!("duplicate expectation name {name:?} (also expect[{first}])"),
                    );
                }
            }
            match &e.check {
                Check::Event(c) => self.event_check(k, c),
                Check::Rpc(c) => self.rpc_check(k, c),
                Check::Drops(_) => {}
                Check::Alert(c) => self.alert_check(k, c),
                Check::Metric(c) => self.metric_check(k, c),
            }
        }
    }

    fn metric_check(&mut self, k: usize, c: &MetricCheck) {
        let p = |key: &str| format!("expect[{k}].{key}");
        let engine = MetricsEngine::new(IpLists::default());
        let families: Vec<&str> = match &engine {
            Ok(engine) => engine.families().iter().map(String::as_str).collect(),
            Err(_) => Vec::new(),
        };
        let base = c
            .metric
            .strip_suffix("_count")
            .or_else(|| c.metric.strip_suffix("_sum"))
            .filter(|base| families.contains(base));
        if !families.contains(&c.metric.as_str()) && base.is_none() {
            self.bad(
                &p("metric"),
                format!(
                    "unknown metric {:?} (a family of `peerlab tools metrics`, e.g. \
                     peerobserver_p2p_message_count, or NAME_count / NAME_sum of a histogram){}",
                    c.metric,
                    suggestion(&c.metric, &families)
                ),
            );
        }
        if !c.value.is_number() {
            self.bad(&p("value"), "a metric compares with a number");
        }
        if c.op.is_textual() {
            self.bad(&p("op"), "a metric takes ==, !=, >, >=, < or <=");
        }
    }

    fn alert_check(&mut self, k: usize, c: &AlertCheck) {
        let p = |key: &str| format!("expect[{k}].{key}");
        let kinds: Vec<&str> = AlertKind::ALL.iter().map(|a| a.name()).collect();
        if c.alert != "*" && !kinds.contains(&c.alert.as_str()) {
            self.bad(
                &p("alert"),
                format!(
                    "unknown alert {:?} (expected one of: {}, or *){}",
                    c.alert,
                    kinds.join(", "),
                    suggestion(&c.alert, &kinds)
                ),
            );
        }
        let Some(deadline) = self.count_bounds(k, c.min, c.max, c.deadline_secs) else {
            return;
        };
        if let Some(group) = &c.group {
            self.group_before(k, group, deadline);
        }
    }

    /// `min`, `max` and `deadline_secs` of a counting check (events, alerts); the deadline,
    /// or `None` when it is not a valid time.
    fn count_bounds(
        &mut self,
        k: usize,
        min: u64,
        max: Option<u64>,
        deadline_secs: Option<f64>,
    ) -> Option<f64> {
        let p = |key: &str| format!("expect[{k}].{key}");
        if let Some(max) = max {
            if min > max {
                let path = if self.spans.has(&p("min")) {
                    p("min")
                } else {
                    p("max")
                };
                self.bad(&path, format!("min ({min}) is greater than max ({max})"));
            }
        } else if min == 0 {
            self.bad(&p("min"), "min = 0 without a max checks nothing");
        }
        match deadline_secs {
            Some(d) => {
                if !self.time(&p("deadline_secs"), d, true) {
                    return None;
                }
                if d == 0.0 {
                    self.bad(&p("deadline_secs"), "must be after the start (> 0)");
                }
                Some(d)
            }
            None => Some(self.timeout()),
        }
    }

    /// `group` names a group that starts before `deadline`.
    fn group_before(&mut self, k: usize, group: &str, deadline: f64) {
        let p = |key: &str| format!("expect[{k}].{key}");
        if self.group_ref(&p("group"), group) {
            let start = self.s.group(group).map_or(0.0, |g| g.start_at_secs);
            if start >= deadline {
                self.bad(
                    &p("deadline_secs"),
                    format!(
                        "deadline {deadline} s is not after group {group:?} starts ({start} s)"
                    ),
                );
            }
        }
    }

    fn event_check(&mut self, k: usize, c: &EventCheck) {
        let p = |key: &str| format!("expect[{k}].{key}");
        for (field, filter) in &c.filters {
            if let Err(message) = schema::check_filter(&c.event, field, filter) {
                let span = self.filter_span(k, field);
                self.at(span, format!("{}: {message}", p("filters")));
            }
        }
        let Some(deadline) = self.count_bounds(k, c.min, c.max, c.deadline_secs) else {
            return;
        };
        if let Some(group) = &c.group {
            if !c.event.has_peer() {
                self.bad(
                    &p("group"),
                    format!(
                        "{} events do not concern a peer; group applies to message and \
                         connection events, and to rpc.peer_infos (judged per peer)",
                        c.event
                    ),
                );
            } else {
                self.group_before(k, group, deadline);
            }
        }
    }

    /// A filter written as `"a.b" = v` or as nested `a.b = v` / `a = { b = v }`.
    fn filter_span(&self, k: usize, field: &str) -> Range<usize> {
        let base = format!("expect[{k}].filters");
        let quoted = join(&base, field);
        if self.spans.has(&quoted) {
            return self.spans.value(&quoted);
        }
        let nested = field.split('.').fold(base, |acc, seg| join(&acc, seg));
        self.spans.value(&nested)
    }

    fn rpc_check(&mut self, k: usize, c: &RpcCheck) {
        let p = |key: &str| format!("expect[{k}].{key}");
        let method_ok = !c.method.is_empty()
            && c.method
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit());
        if !method_ok {
            self.bad(
                &p("method"),
                format!(
                    "{:?} is not an RPC method name (lowercase letters and digits)",
                    c.method
                ),
            );
        }
        self.time(&p("at_secs"), c.at_secs, true);
        if let Some(group) = &c.group {
            if c.method != "getpeerinfo" {
                self.bad(
                    &p("group"),
                    format!("group applies to getpeerinfo only, not {}", c.method),
                );
            } else {
                self.group_ref(&p("group"), group);
            }
        }
        if let Some(field) = &c.field {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                self.bad(&p("field"), format!("{field:?} is not a dotted field path"));
            }
        }
        let shape = if c.params.is_empty() {
            result_shape(&c.method)
        } else {
            Shape::Unknown
        };
        match c.aggregate {
            Aggregate::Value => {
                if shape == Shape::Array {
                    self.bad(
                        &p("aggregate"),
                        format!(
                            "{} returns an array: use aggregate = \"count\", \"sum\", \"min\" \
                             or \"max\"",
                            c.method
                        ),
                    );
                }
            }
            Aggregate::Count => {
                if c.field.is_some() {
                    self.bad(
                        &p("field"),
                        "aggregate = \"count\" counts array elements and takes no field",
                    );
                }
            }
            Aggregate::Sum | Aggregate::Min | Aggregate::Max => {
                if c.field.is_none() {
                    self.bad(
                        &p("aggregate"),
                        "sum, min and max need the field to aggregate (field = \"...\")",
                    );
                }
            }
        }
        if matches!(
            c.aggregate,
            Aggregate::Count | Aggregate::Sum | Aggregate::Min | Aggregate::Max
        ) && !c.value.is_number()
        {
            self.bad(
                &p("value"),
                format!(
                    "aggregate = {:?} gives a number; compare with a number, found {}",
                    c.aggregate.as_str(),
                    c.value.describe()
                ),
            );
        }
        if c.aggregate != Aggregate::Value && matches!(shape, Shape::Object | Shape::Scalar) {
            self.bad(
                &p("aggregate"),
                format!(
                    "{} returns a single {}; aggregates need an array result (use \
                     aggregate = \"value\")",
                    c.method,
                    if shape == Shape::Object {
                        "object"
                    } else {
                        "value"
                    }
                ),
            );
        }
        if shape == Shape::Scalar && c.field.is_some() {
            self.bad(
                &p("field"),
                format!("{} returns a single value, which has no fields", c.method),
            );
        }
        if c.op.is_ordering() && !c.value.is_number() {
            self.bad(
                &p("op"),
                format!("{} compares numbers; value is {}", c.op, c.value.describe()),
            );
        }
        if c.op.is_textual() && !matches!(c.value, Scalar::String(_)) {
            self.bad(
                &p("op"),
                format!("{} compares strings; value is {}", c.op, c.value.describe()),
            );
        }
    }
}

/// What a known RPC returns when called without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Array,
    Object,
    Scalar,
    Unknown,
}

fn result_shape(method: &str) -> Shape {
    match method {
        "getpeerinfo" | "listbanned" | "getrawmempool" | "getchaintips" | "getnodeaddresses"
        | "getaddednodeinfo" | "getorphantxs" => Shape::Array,
        "getmempoolinfo" | "getblockchaininfo" | "getnetworkinfo" | "getnettotals"
        | "getmininginfo" | "getrawaddrman" | "getaddrmaninfo" | "getdeploymentinfo" => {
            Shape::Object
        }
        "getconnectioncount" | "getblockcount" | "getbestblockhash" | "getdifficulty" => {
            Shape::Scalar
        }
        _ => Shape::Unknown,
    }
}

/// Bytes of a CompactSize encoding of `n`.
/// Why a bitcoind argument cannot be passed through, if it cannot: not an option, or one the
/// harness sets itself.
pub(super) fn managed_arg_problem(arg: &str) -> Option<String> {
    let Some(bare) = arg.strip_prefix('-') else {
        return Some(format!(
            "{arg:?} is not a bitcoind option (they start with -)"
        ));
    };
    let name = bare.trim_start_matches('-');
    let name = name.split('=').next().unwrap_or(name);
    let managed = |n: &str| MANAGED_ARGS.contains(&n);
    if managed(name) || name.strip_prefix("no").is_some_and(managed) {
        return Some(format!(
            "{arg:?} is set by the harness and cannot be overridden (managed: -{})",
            MANAGED_ARGS.join(", -")
        ));
    }
    None
}

fn compact_size_len(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// The node's `-maxconnections` as the scenario sets it (last one wins, as in bitcoind), or
/// Bitcoin Core's default of 125.
fn node_max_connections(extra_args: &[String]) -> u32 {
    extra_args
        .iter()
        .filter_map(|arg| arg.trim_start_matches('-').strip_prefix("maxconnections="))
        .filter_map(|value| value.parse::<u32>().ok())
        .next_back()
        .unwrap_or(125)
}

/// Size of this machine's ephemeral port range (Linux's default range when unreadable).
fn ephemeral_ports() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u32>().ok());
            let (low, high) = (bounds.next()??, bounds.next()??);
            high.checked_sub(low).map(|n| n + 1)
        })
        .unwrap_or(60_999 - 32_768 + 1)
}
