//! Attack rehearsal: play a scenario against a regtest node while the full observer stack
//! watches, then judge its expectations.
//!
//! This module owns the run of one scenario on the embedded default stack (private
//! nats-server, regtest bitcoind with the scenario's arguments, eBPF extractor, recorder),
//! the scripted peer groups and timeline steps, and the verdict: every expectation with what
//! was observed. The report directory receives `recording.mcap`, `verdict.json` and
//! `report.html`.
//!
//! Time zero is when the node is up, the start-up blocks are mined and the extractor traces
//! the node; events before it do not count. Event expectations are judged after the run over
//! everything the bus carried (so peers are mapped to groups by the address they connected
//! from, even for events that came before the mapping was known); RPC expectations are
//! evaluated at their time.

mod compare;
mod observe;
mod report;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::Amount;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

pub use observe::Observed;

use crate::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme, Subscriber};
use crate::extractor::ebpf::{EbpfConfig, EbpfExtractor, Target};
use crate::harness::NatsServer;
use crate::node::{Installation, RegtestConfig, RegtestNode};
use crate::peer::{run_peer_with, PeerOutcome};
use crate::record::recorder::{record, RecordOptions};
use crate::scenario::{Action, Aggregate, Check, RpcCheck, Scenario};

/// Why a rehearsal could not run (a failed expectation is a verdict, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    /// The scenario file is unusable.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// The scenario parses but does not validate.
    #[error("{0}")]
    Invalid(String),
    /// The stack did not come up.
    #[error("{0}")]
    Stack(String),
}

fn stack<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> RehearseError + '_ {
    move |e| RehearseError::Stack(format!("{what}: {e}"))
}

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
    /// Expectations, in file order.
    pub expectations: Vec<ExpectationResult>,
    /// Peer groups, in file order.
    pub groups: Vec<GroupResult>,
    /// Steps that failed, with why.
    pub step_errors: Vec<String>,
    /// Events the observer saw after time zero.
    pub events_seen: usize,
    /// Events the extractor dropped in the kernel.
    pub dropped_in_kernel: u64,
    /// Events the publisher dropped.
    pub dropped_by_publisher: u64,
    /// Peer connections still open when the run ended (should be 0: no leaked sockets).
    pub peers_left_connected: u64,
}

/// Runs `scenario_path` and writes the report into `report_dir`.
pub async fn rehearse(
    installation: &Installation,
    scenario_path: &Path,
    report_dir: &Path,
) -> Result<(Verdict, Vec<Observed>), RehearseError> {
    let scenario = Scenario::from_file(scenario_path)?;
    let problems = scenario.validate();
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(RehearseError::Invalid(lines.join("\n")));
    }
    std::fs::create_dir_all(report_dir).map_err(stack("creating the report directory"))?;

    // The stack.
    let nats = NatsServer::start(&installation.nats_server).map_err(stack("nats-server"))?;
    let nats_options = NatsOptions::local(nats.url());
    let mut node_config = RegtestConfig::new(&installation.bitcoind);
    node_config.extra_args = scenario.node.extra_args.clone();
    let node = Arc::new(RegtestNode::start(&node_config).map_err(stack("regtest bitcoind"))?);
    let blocks = u64::from(scenario.node.mine_at_start);
    let mocktime = scenario.node.mocktime;
    blocking(&node, move |node| {
        if let Some(t) = mocktime {
            node.rpc::<Value>("setmocktime", &[json!(t)])?;
        }
        node.mine(blocks).map(|_| ())
    })
    .await
    .map_err(stack("preparing the node"))?;
    let publisher = Arc::new(
        Publisher::connect(
            &nats_options,
            SubjectScheme::Flat,
            PublisherConfig::default(),
        )
        .await
        .map_err(stack("publisher"))?,
    );
    let pid = node.pid().map_err(stack("bitcoind pid"))?;
    let extractor = EbpfExtractor::start(
        EbpfConfig::new(&installation.bitcoind, Target::Pid(pid)),
        publisher.clone(),
    )
    .map_err(stack("eBPF extractor"))?;
    let stats = extractor.stats();
    let traced = tokio::time::timeout(Duration::from_secs(10), async {
        while stats.traced_pid.load(Ordering::Relaxed) != pid {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    traced.map_err(stack("extractor never traced the node"))?;

    let (stop_recorder, recorder_stopped) = tokio::sync::oneshot::channel::<()>();
    let record_options = RecordOptions {
        output: report_dir.join("recording.mcap"),
        subjects: Vec::new(),
        kinds: Vec::new(),
        rotate_bytes: None,
        rotate_after: None,
        duration: None,
        arguments: vec![
            "peerlab".into(),
            "rehearse".into(),
            scenario_path.display().to_string(),
        ],
        anonymize: None,
    };
    let recorder = {
        let nats_options = nats_options.clone();
        tokio::spawn(async move {
            record(
                &nats_options,
                SubjectScheme::Flat,
                &record_options,
                Default::default(),
                async {
                    let _ = recorder_stopped.await;
                },
            )
            .await
        })
    };

    // Time zero, the observer and the peers.
    let t0 = Instant::now();
    let observed: Arc<Mutex<Vec<Observed>>> = Arc::default();
    let seen = Arc::new(AtomicU64::new(0));
    let mut subscriber = Subscriber::connect(&nats_options, SubjectScheme::Flat, &[])
        .await
        .map_err(stack("observer"))?;
    let collector = {
        let (observed, seen) = (observed.clone(), seen.clone());
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                seen.fetch_add(1, Ordering::Relaxed);
                if let Some(event) =
                    Observed::from_payload(t0.elapsed().as_secs_f64(), &message.payload)
                {
                    if let Ok(mut all) = observed.lock() {
                        all.push(event);
                    }
                }
            }
        })
    };
    let addr_groups: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let connected_now = Arc::new(AtomicU64::new(0));
    let (stop_all, stop_rx) = watch::channel(false);
    let mut peer_tasks = Vec::new();
    for (g, group) in scenario.peers.iter().enumerate() {
        let (group_stop, group_stop_rx) = watch::channel(false);
        let mut any_stop = stop_rx.clone();
        // A group stops at its own stop time or with everybody.
        let stop_at = group.stop_at_secs;
        tokio::spawn(async move {
            let own = async {
                match stop_at {
                    Some(secs) => {
                        tokio::time::sleep_until((t0 + crate::scenario::secs(secs)).into()).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = own => {}
                _ = any_stop.wait_for(|s| *s) => {}
            }
            let _ = group_stop.send(true);
        });
        for i in 0..group.count {
            let behaviour = group.behaviour.clone();
            let (name, registry, stop) = (
                group.name.clone(),
                addr_groups.clone(),
                group_stop_rx.clone(),
            );
            let connected_now = connected_now.clone();
            let seed = scenario
                .scenario
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add((g as u64) << 20)
                .wrapping_add(u64::from(i));
            let start = t0 + crate::scenario::secs(group.start_at_secs);
            let node_addr: SocketAddr = node.p2p_addr().into();
            peer_tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                let group_name = name.clone();
                let outcome = run_peer_with(node_addr, &behaviour, seed, stop, move |addr| {
                    connected_now.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut map) = registry.lock() {
                        map.insert(addr.to_string(), group_name);
                    }
                })
                .await;
                (name, outcome)
            }));
        }
    }

    // Steps and RPC checks on the timeline.
    let step_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let steps = {
        let (node, scenario, errors, registry) = (
            node.clone(),
            scenario.clone(),
            step_errors.clone(),
            addr_groups.clone(),
        );
        tokio::task::spawn_blocking(move || run_steps(&node, &scenario, t0, &errors, &registry))
    };
    let mut rpc_tasks = Vec::new();
    for (index, expectation) in scenario.expect.iter().enumerate() {
        if let Check::Rpc(check) = &expectation.check {
            let (node, check, registry) = (node.clone(), check.clone(), addr_groups.clone());
            let name = expectation.label(index);
            rpc_tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until((t0 + crate::scenario::secs(check.at_secs)).into()).await;
                let result =
                    tokio::task::spawn_blocking(move || evaluate_rpc(&node, &check, &registry))
                        .await;
                (
                    index,
                    name,
                    result.unwrap_or_else(|e| {
                        (false, format!("evaluation failed: {e}"), String::new())
                    }),
                )
            }));
        }
    }

    let end = run_length(&scenario);
    tokio::time::sleep_until((t0 + end).into()).await;
    let duration_secs = t0.elapsed().as_secs_f64();
    let _ = stop_all.send(true);
    let _ = steps.await;
    let mut outcomes: Vec<(String, PeerOutcome)> = Vec::new();
    for task in peer_tasks {
        if let Ok(Ok(result)) = tokio::time::timeout(Duration::from_secs(15), task).await {
            outcomes.push(result);
        }
    }
    let mut rpc_results = HashMap::new();
    for task in rpc_tasks {
        if let Ok(Ok((index, name, result))) =
            tokio::time::timeout(Duration::from_secs(15), task).await
        {
            rpc_results.insert(index, (name, result));
        }
    }
    let extractor_stats = extractor
        .stop()
        .await
        .map_err(stack("stopping the extractor"))?;
    let publisher = Arc::try_unwrap(publisher)
        .map_err(|_| RehearseError::Stack("publisher still shared".into()))?;
    let bus = publisher.close(Duration::from_secs(10)).await;
    // Let the observer take what is still in flight (bounded).
    let wait_until = Instant::now() + Duration::from_secs(3);
    while seen.load(Ordering::Relaxed) < bus.sent && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    collector.abort();
    let _ = stop_recorder.send(());
    let _ = recorder.await;
    let peers_left_connected = open_peer_connections(&node).await;

    let observed = observed.lock().map(|o| o.clone()).unwrap_or_default();
    let addr_groups = addr_groups.lock().map(|m| m.clone()).unwrap_or_default();
    let groups = observe::peer_groups(&observed, &addr_groups);
    let mut expectations = Vec::new();
    for (index, expectation) in scenario.expect.iter().enumerate() {
        let name = expectation.label(index);
        let result = match &expectation.check {
            Check::Event(check) => {
                let deadline = scenario.deadline_secs(check);
                let count = observe::count_matching(check, deadline, &observed, &groups);
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
            Check::Rpc(check) => {
                let (passed, observed, _) = rpc_results.remove(&index).map(|(_, r)| r).unwrap_or((
                    false,
                    "not evaluated (the run ended first)".into(),
                    String::new(),
                ));
                let expected = format!(
                    "{} {} {}",
                    check_subject(check),
                    check.op,
                    check.value.describe()
                );
                ExpectationResult {
                    name,
                    kind: "rpc".into(),
                    passed,
                    observed,
                    expected,
                }
            }
            Check::Drops(check) => {
                let kernel = extractor_stats.dropped_in_kernel();
                let dropped = match check.source {
                    crate::scenario::DropSource::All => kernel + bus.dropped(),
                    crate::scenario::DropSource::Kernel => kernel,
                    crate::scenario::DropSource::Bus => bus.dropped(),
                };
                ExpectationResult {
                    name,
                    kind: "drops".into(),
                    passed: dropped <= check.max,
                    observed: format!("{dropped} dropped"),
                    expected: format!("at most {} dropped", check.max),
                }
            }
        };
        expectations.push(result);
    }
    let step_errors = step_errors.lock().map(|e| e.clone()).unwrap_or_default();
    let verdict = Verdict {
        scenario: scenario.scenario.name.clone(),
        file: scenario_path.display().to_string(),
        passed: expectations.iter().all(|e| e.passed) && step_errors.is_empty(),
        duration_secs,
        expectations,
        groups: group_results(&scenario, &outcomes),
        step_errors,
        events_seen: observed.len(),
        dropped_in_kernel: extractor_stats.dropped_in_kernel(),
        dropped_by_publisher: bus.dropped(),
        peers_left_connected,
    };
    report::write(report_dir, &verdict, &observed, &groups).map_err(stack("writing the report"))?;
    drop(nats);
    Ok((verdict, observed))
}

/// How long the run lasts: until the last step, RPC check or event deadline (plus a second
/// for the observer), never past the scenario's timeout.
fn run_length(scenario: &Scenario) -> Duration {
    let mut end: f64 = 1.0;
    for step in &scenario.steps {
        end = end.max(step.at_secs + 1.0);
    }
    for expectation in &scenario.expect {
        let t = match &expectation.check {
            Check::Event(check) => check.deadline_secs.unwrap_or(0.0),
            Check::Rpc(check) => check.at_secs + 0.5,
            Check::Drops(_) => 0.0,
        };
        end = end.max(t);
    }
    for group in &scenario.peers {
        end = end.max(group.start_at_secs + 1.0);
    }
    crate::scenario::secs(end.min(scenario.scenario.timeout_secs as f64))
}

fn check_subject(check: &RpcCheck) -> String {
    let field = check.field.as_deref().unwrap_or("result");
    match check.aggregate {
        Aggregate::Value => format!("{}.{field}", check.method),
        other => format!("{}({}.{field})", other.as_str(), check.method),
    }
}

/// Calls the RPC and compares; returns (passed, observed, error).
fn evaluate_rpc(
    node: &RegtestNode,
    check: &RpcCheck,
    registry: &Mutex<HashMap<String, String>>,
) -> (bool, String, String) {
    let result: Value = match node.rpc(&check.method, &check.params) {
        Ok(v) => v,
        Err(e) => return (false, format!("RPC failed: {e}"), e.to_string()),
    };
    let result = match (&check.group, result) {
        (Some(group), Value::Array(items)) => {
            let addrs = registry.lock().map(|m| m.clone()).unwrap_or_default();
            Value::Array(
                items
                    .into_iter()
                    .filter(|p| {
                        p["addr"]
                            .as_str()
                            .and_then(|a| addrs.get(a))
                            .is_some_and(|g| g == group)
                    })
                    .collect(),
            )
        }
        (_, other) => other,
    };
    let field = |v: &Value| match &check.field {
        Some(path) => compare::at_path(v, path).cloned().unwrap_or(Value::Null),
        None => v.clone(),
    };
    let value = match check.aggregate {
        Aggregate::Value => field(&result),
        Aggregate::Count => json!(result.as_array().map_or(0, Vec::len)),
        Aggregate::Sum | Aggregate::Min | Aggregate::Max => {
            let numbers: Vec<f64> = result
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| compare::number(&field(v)))
                .collect();
            let folded = match check.aggregate {
                Aggregate::Sum => Some(numbers.iter().sum()),
                Aggregate::Min => numbers.iter().copied().reduce(f64::min),
                _ => numbers.iter().copied().reduce(f64::max),
            };
            folded.map_or(Value::Null, |n| json!(n))
        }
    };
    (
        compare::holds(&value, check.op, &check.value),
        value.to_string(),
        String::new(),
    )
}

/// Plays the timeline (blocking: RPC calls).
fn run_steps(
    node: &RegtestNode,
    scenario: &Scenario,
    t0: Instant,
    errors: &Mutex<Vec<String>>,
    registry: &Mutex<HashMap<String, String>>,
) {
    let mut next_coin = 1u64;
    let mut mocktime = scenario.node.mocktime;
    for step in scenario.ordered_steps() {
        let due = t0 + crate::scenario::secs(step.at_secs);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let result: Result<(), String> = match &step.action {
            Action::Mine(m) => node
                .mine(u64::from(m.blocks))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Action::SendTx(s) => (0..s.count).try_for_each(|_| {
                let coin = node.coinbase_coin(next_coin).map_err(|e| e.to_string())?;
                next_coin += 1;
                let tx = node
                    .spend(&coin, Amount::from_sat(2_000), true)
                    .map_err(|e| e.to_string())?;
                node.send(&tx).map(|_| ()).map_err(|e| e.to_string())
            }),
            Action::BumpMocktime(b) => {
                let now = mocktime.unwrap_or(0) + b.secs;
                mocktime = Some(now);
                node.rpc::<Value>("setmocktime", &[json!(now)])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Action::Disconnect(d) => disconnect_group(node, &d.group, registry),
            Action::RestartNode => Err("restart_node is not supported by this runner yet".into()),
        };
        if let Err(e) = result {
            if let Ok(mut all) = errors.lock() {
                all.push(format!(
                    "step at {}s ({}): {e}",
                    step.at_secs,
                    step.action.name()
                ));
            }
        }
    }
}

fn disconnect_group(
    node: &RegtestNode,
    group: &str,
    registry: &Mutex<HashMap<String, String>>,
) -> Result<(), String> {
    let addrs = registry.lock().map(|m| m.clone()).unwrap_or_default();
    let peers: Value = node.rpc("getpeerinfo", &[]).map_err(|e| e.to_string())?;
    for peer in peers.as_array().into_iter().flatten() {
        let in_group = peer["addr"]
            .as_str()
            .and_then(|a| addrs.get(a))
            .is_some_and(|g| g == group);
        if let (true, Some(id)) = (in_group, peer["id"].as_u64()) {
            node.rpc::<Value>("disconnectnode", &[json!(""), json!(id)])
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

async fn open_peer_connections(node: &Arc<RegtestNode>) -> u64 {
    // Give the node a moment to notice our closed sockets, then count what it still has.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count = blocking(node, |n| n.rpc::<Value>("getconnectioncount", &[]))
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if count == 0 || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn group_results(scenario: &Scenario, outcomes: &[(String, PeerOutcome)]) -> Vec<GroupResult> {
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

async fn blocking<T: Send + 'static>(
    node: &Arc<RegtestNode>,
    call: impl FnOnce(&RegtestNode) -> Result<T, crate::node::NodeError> + Send + 'static,
) -> Result<T, String> {
    let node = node.clone();
    tokio::task::spawn_blocking(move || call(&node))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// The report directory's files.
pub fn report_files(dir: &Path) -> [PathBuf; 3] {
    [
        dir.join("recording.mcap"),
        dir.join("verdict.json"),
        dir.join("report.html"),
    ]
}
