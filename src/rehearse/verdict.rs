//! The verdict of a rehearsal: what each expectation and peer group came to.

use serde::Serialize;

use crate::attack::PeerOutcome;
use crate::scenario::{EventCheck, Scenario};

/// The outcome of one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    /// Its label.
    pub name: String,
    /// `event`, `rpc` or `drops`.
    pub kind: String,
    /// Whether it held.
    pub passed: bool,
    /// What was observed.
    pub observed: String,
    /// What was expected.
    pub expected: String,
}

/// What one peer group did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct GroupResult {
    /// Group name.
    pub name: String,
    /// Behaviour name.
    pub behaviour: String,
    /// Peers started.
    pub peers: u32,
    /// Peers whose handshake completed.
    pub handshakes: u32,
    /// Peers the node disconnected.
    pub disconnected_by_node: u32,
    /// Messages the behaviour sent, all peers together.
    pub messages_sent: u64,
    /// Distinct errors the peers reported.
    pub errors: Vec<String>,
}

/// The verdict of a rehearsal (written as `verdict.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// Every expectation held and every step ran.
    pub passed: bool,
    /// Wall time from time zero to the end of the run.
    pub duration_secs: f64,
    /// Wall time from the call to time zero: the stack up (containers started, edges
    /// connected, blocks mined and spread, every observer tracing).
    pub startup_secs: f64,
    /// Expectations, in file order.
    pub expectations: Vec<ExpectationResult>,
    /// Peer groups, in file order.
    pub groups: Vec<GroupResult>,
    /// Steps that failed, with why.
    pub step_errors: Vec<String>,
    /// When the node was restarted (seconds since time zero): connections it had then were
    /// dropped without `closed` events, since the process was killed.
    pub restarts_secs: Vec<f64>,
    /// Events the observer saw after time zero.
    pub events_seen: usize,
    /// Events the extractor dropped in the kernel.
    pub dropped_in_kernel: u64,
    /// Events the publisher dropped.
    pub dropped_by_publisher: u64,
    /// Peer connections still open when the run ended (should be 0: no leaked sockets).
    pub peers_left_connected: u64,
    /// `embedded`, `existing` or `topology`.
    pub stack: String,
    /// A topology's nodes (`name address`), home node first; empty otherwise.
    pub nodes: Vec<String>,
    /// A topology's blocks and transactions with when each observed node saw them.
    pub propagation: Vec<super::Propagation>,
    /// For peer groups connected to several nodes: which node announced each item first.
    pub relay: Vec<super::RelayOrder>,
    /// What the reader should know (settings not applied, counters not available, ...).
    pub notes: Vec<String>,
}

/// Judges an event expectation by its count.
pub(super) fn judge_count(
    name: String,
    check: &EventCheck,
    deadline: f64,
    count: u64,
) -> ExpectationResult {
    let passed = count >= check.min && check.max.is_none_or(|m| count <= m);
    let expected = match check.max {
        Some(max) => format!(
            "between {} and {max} `{}` events by {deadline}s",
            check.min, check.event
        ),
        None => format!(
            "at least {} `{}` events by {deadline}s",
            check.min, check.event
        ),
    };
    ExpectationResult {
        name,
        kind: "event".into(),
        passed,
        observed: format!("{count} events"),
        expected,
    }
}

/// What every peer group did, from its peers' outcomes.
pub(super) fn group_results(
    scenario: &Scenario,
    outcomes: &[(String, PeerOutcome)],
) -> Vec<GroupResult> {
    scenario
        .peers
        .iter()
        .map(|group| {
            let mut result = GroupResult {
                name: group.name.clone(),
                behaviour: group.behaviour.name().to_string(),
                ..GroupResult::default()
            };
            for (_, outcome) in outcomes.iter().filter(|(name, _)| name == &group.name) {
                result.peers += 1;
                result.handshakes += u32::from(outcome.handshake_completed);
                result.disconnected_by_node += u32::from(outcome.disconnected_by_node);
                result.messages_sent += outcome.messages_sent;
                if let Some(e) = &outcome.error {
                    if !result.errors.contains(e) {
                        result.errors.push(e.clone());
                    }
                }
            }
            result
        })
        .collect()
}

/// Judges an alert count.
pub(super) fn judge_alerts(
    name: String,
    check: &crate::scenario::AlertCheck,
    deadline: f64,
    count: u64,
) -> ExpectationResult {
    let passed = count >= check.min && check.max.is_none_or(|m| count <= m);
    let whose = check
        .group
        .as_ref()
        .map(|g| format!(" about group `{g}`"))
        .unwrap_or_default();
    let expected = match check.max {
        Some(max) => format!(
            "between {} and {max} `{}` alerts{whose} by {deadline}s",
            check.min, check.alert
        ),
        None => format!(
            "at least {} `{}` alerts{whose} by {deadline}s",
            check.min, check.alert
        ),
    };
    ExpectationResult {
        name,
        kind: "alert".into(),
        passed,
        observed: format!("{count} alerts"),
        expected,
    }
}

/// Judges a metric read at the end of the run (`None`: no series matched).
pub(super) fn judge_metric(
    name: String,
    check: &crate::scenario::MetricCheck,
    value: Option<f64>,
) -> ExpectationResult {
    let labels: Vec<String> = check
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    let series = if labels.is_empty() {
        check.metric.clone()
    } else {
        format!("{}{{{}}}", check.metric, labels.join(","))
    };
    let passed =
        value.is_some_and(|v| super::compare::holds(&serde_json::json!(v), check.op, &check.value));
    ExpectationResult {
        name,
        kind: "metric".into(),
        passed,
        observed: match value {
            Some(v) => format!("{v}"),
            None => "no matching series".into(),
        },
        expected: format!(
            "{series} {} {} at the end",
            check.op,
            check.value.describe()
        ),
    }
}
