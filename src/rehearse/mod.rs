//! Attack rehearsal: play a scenario against a regtest node while the full observer stack
//! watches, then judge its expectations.
//!
//! This module owns the run of one scenario: the stack ([`StackSpec`]: the embedded default
//! of a private nats-server, regtest node, the eBPF extractor and the optional extractors
//! left on ([`Extractors`]; an expectation needing one turned off is refused before the run,
//! [`check_extractors`]), or the user's running stack), the recorder, the scripted peer
//! groups, the timeline steps, and the verdict: every expectation with what was observed. The report directory receives `recording.mcap`,
//! `verdict.json` and `report.html`.
//!
//! Time zero is when the node is up, the start-up blocks are mined and the extractor traces
//! the node; events before it do not count. Event expectations are judged after the run over
//! everything the bus carried (so peers are mapped to groups by the address they connected
//! from, even for events that came before the mapping was known); RPC expectations are
//! evaluated at their time.

mod collector;
mod compare;
mod node;
mod observe;
mod report;
mod rpc_check;
mod stack;
mod timeline;
mod topology;
mod verdict;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::stack::{Extractors, OptionalExtractor};
pub use observe::Observed;
pub use stack::{ExistingStack, StackSpec};
pub use topology::{propagation, Propagation, RelayOrder};
pub use verdict::{ExpectationResult, GroupResult, Verdict};

use crate::attack::{run_peer_with, PeerContext, PeerOutcome, ReplayScript};
use crate::node::NodeRpc;
use crate::record::recorder::{record, RecordOptions};
use crate::scenario::{Action, Behaviour, Check, EventCategory, Scenario, TxKind};
use crate::shutdown::Shutdown;
use collector::{Collector, Drops};
use stack::Stack;
use timeline::{CoinPool, Timeline, TimelineOutcome};
use verdict::{group_results, judge_count};

/// Valid transactions one coinbase coin pays for (a split and its 24 children).
const TXS_PER_COIN: usize = 25;
/// How long joining peers, RPC checks and the observer may take after the run.
const WIND_DOWN: Duration = Duration::from_secs(15);

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
    /// An expectation judges events (or metrics fed by them) of an extractor the run turns
    /// off, so it could never pass.
    #[error("{expectation} needs the {} extractor, which this run turns off", extractor.name())]
    ExtractorOff {
        /// The expectation's label.
        expectation: String,
        /// The extractor it needs.
        extractor: OptionalExtractor,
    },
}

/// The optional extractor whose events `check` judges, if any: an event expectation on its
/// category (`log.*`, `rpc.*`, `p2p.*`, `ipc.*`), or a metric the metrics tool derives only
/// from its events.
pub fn extractor_needed(check: &Check) -> Option<OptionalExtractor> {
    match check {
        Check::Event(event) => match event.event.category {
            EventCategory::Log => Some(OptionalExtractor::Log),
            EventCategory::Rpc => Some(OptionalExtractor::Rpc),
            EventCategory::P2p => Some(OptionalExtractor::P2p),
            EventCategory::Ipc => Some(OptionalExtractor::Ipc),
            EventCategory::Message
            | EventCategory::Connection
            | EventCategory::Mempool
            | EventCategory::Validation
            | EventCategory::Utxocache => None,
        },
        // `peerobserver_p2p_*` are the eBPF extractor's P2P messages; the P2P extractor's
        // families are `peerobserver_p2pextractor_*`.
        Check::Metric(metric) => [
            ("peerobserver_log_", OptionalExtractor::Log),
            ("peerobserver_rpc_", OptionalExtractor::Rpc),
            ("peerobserver_p2pextractor_", OptionalExtractor::P2p),
            ("peerobserver_ipc_", OptionalExtractor::Ipc),
        ]
        .into_iter()
        .find(|(prefix, _)| metric.metric.starts_with(prefix))
        .map(|(_, extractor)| extractor),
        Check::Rpc(_) | Check::Drops(_) | Check::Alert(_) => None,
    }
}

/// Refuses a scenario with an expectation that needs an extractor `extractors` turns off:
/// it would fail after a whole run for a reason known before it.
pub fn check_extractors(scenario: &Scenario, extractors: Extractors) -> Result<(), RehearseError> {
    for (index, expectation) in scenario.expect.iter().enumerate() {
        if let Some(extractor) = extractor_needed(&expectation.check) {
            if !extractors.runs(extractor) {
                return Err(RehearseError::ExtractorOff {
                    expectation: expectation.label(index),
                    extractor,
                });
            }
        }
    }
    Ok(())
}

/// Plays the scenario at `scenario_path` on the stack `stack_spec` describes, judges its
/// expectations and writes the recording, `verdict.json` and `report.html` into
/// `report_dir`. Returns the verdict and every event the observer saw.
///
/// When `shutdown` fires (Ctrl-C), the run ends early: peers stop, and the expectations are
/// judged on what was seen so far, so the report is still written.
pub async fn rehearse(
    stack_spec: &StackSpec,
    scenario_path: &Path,
    report_dir: &Path,
    shutdown: &Shutdown,
) -> Result<(Verdict, Vec<Observed>), RehearseError> {
    let began = Instant::now();
    let scenario = Scenario::from_file(scenario_path)?;
    let problems = scenario.validate();
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(RehearseError::Invalid(lines.join("\n")));
    }
    let existing = matches!(stack_spec, StackSpec::Existing(_));
    if let StackSpec::Embedded(_, extractors) = stack_spec {
        check_extractors(&scenario, *extractors)?;
    }
    if existing
        && scenario
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::RestartNode))
    {
        return Err(RehearseError::Invalid(format!(
            "{}: a restart_node step needs the embedded node (peerlab does not kill yours); run without -a/--rpc-url",
            scenario_path.display()
        )));
    }
    let scripts = load_scripts(&scenario)?;
    std::fs::create_dir_all(report_dir)
        .map_err(|e| RehearseError::Stack(format!("creating {}: {e}", report_dir.display())))?;

    // The stack's extractor runs until the stack finishes; the recorder and the peers stop
    // on their own tokens (children: Ctrl-C stops them too).
    let mut stack = Stack::start(stack_spec, &scenario, shutdown).await?;
    let stop_recorder = shutdown.child_token();
    let recorder = start_recorder(&stack, scenario_path, report_dir, stop_recorder.clone());

    // Time zero, the observer and the peers.
    let t0 = Instant::now();
    let collector = Collector::start(&stack, t0).await?;
    let registry: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let coins = Arc::new(CoinPool::new(stack.first_own_block + 1));
    let stop_peers = shutdown.child_token();
    let peer_tasks = match spawn_peers(
        &scenario,
        &stack,
        &scripts,
        &coins,
        &registry,
        t0,
        &stop_peers,
    ) {
        Ok(tasks) => tasks,
        Err(e) => {
            stop_peers.cancel();
            if let Some(containers) = stack.topology.take() {
                containers.remove().await;
            }
            return Err(e);
        }
    };

    // Steps and RPC checks on the timeline.
    let timeline = Timeline {
        node: stack.node.clone(),
        nodes: stack.nodes.clone(),
        scenario: scenario.clone(),
        coins: coins.clone(),
        registry: registry.clone(),
        extractor: stack.extractor_stats(),
        runtime: tokio::runtime::Handle::current(),
    };
    let steps = tokio::task::spawn_blocking(move || timeline.run(t0));
    let rpc_tasks = spawn_rpc_checks(&scenario, &stack, &registry, t0);

    let mut died = None;
    tokio::select! {
        _ = tokio::time::sleep_until((t0 + run_length(&scenario)).into()) => {}
        _ = shutdown.cancelled() => tracing::warn!("rehearsal stopped early; judging what was seen so far"),
        error = watch_containers(&stack) => {
            tracing::error!("{error}");
            died = Some(error);
        }
    }
    let duration_secs = t0.elapsed().as_secs_f64();
    stop_peers.cancel();
    let timeline = match tokio::time::timeout(WIND_DOWN, steps).await {
        Ok(Ok(outcome)) => outcome,
        _ => TimelineOutcome {
            errors: vec!["the timeline did not finish within 15 s of the end".into()],
            restarts_secs: Vec::new(),
        },
    };
    let mut step_errors = timeline.errors;
    if let Some(died) = died {
        step_errors.insert(0, format!("the run stopped: {died}"));
    }
    let mut outcomes: Vec<(String, PeerOutcome)> = Vec::new();
    let mut announced: Vec<(String, String, Vec<crate::attack::Announcement>)> = Vec::new();
    for task in peer_tasks {
        if let Ok(Ok((group, node, outcome))) = tokio::time::timeout(WIND_DOWN, task).await {
            if !outcome.announcements.is_empty() {
                announced.push((group.clone(), node, outcome.announcements.clone()));
            }
            outcomes.push((group, outcome));
        }
    }
    let mut rpc_results = HashMap::new();
    for task in rpc_tasks {
        if let Ok(Ok((index, result))) = tokio::time::timeout(WIND_DOWN, task).await {
            rpc_results.insert(index, result);
        }
    }
    let counters = stack.finish().await?;
    let (mut observed, remote_drops, metrics) = collector
        .finish(counters.as_ref().map(|c| c.bus.sent))
        .await;
    stop_recorder.cancel();
    let _ = recorder.await;
    let peers_left_connected = open_peer_connections(&stack, &registry).await;

    let registry = registry.lock().map(|m| m.clone()).unwrap_or_default();
    observe::assign_groups(&mut observed, &registry);
    let mut notes = stack.notes.clone();
    let drops = Drops::from(counters.as_ref(), remote_drops, &mut notes);
    let expectations = scenario
        .expect
        .iter()
        .enumerate()
        .map(|(index, expectation)| {
            let name = expectation.label(index);
            match &expectation.check {
                Check::Event(check) => {
                    let deadline = scenario.deadline_secs(check);
                    let node = expectation.node.as_deref();
                    let count = observe::count_matching(check, node, deadline, &observed);
                    judge_count(name, check, deadline, count)
                }
                Check::Rpc(check) => {
                    let (passed, observed) = rpc_results
                        .remove(&index)
                        .unwrap_or((false, "not evaluated (the run ended first)".into()));
                    ExpectationResult {
                        name,
                        kind: "rpc".into(),
                        passed,
                        observed,
                        expected: format!(
                            "{} {} {}",
                            rpc_check::subject(check),
                            check.op,
                            check.value.describe()
                        ),
                    }
                }
                Check::Drops(check) => drops.judge(name, check.source, check.max),
                Check::Alert(check) => {
                    let deadline = check
                        .deadline_secs
                        .unwrap_or(scenario.scenario.timeout_secs as f64);
                    let count = observe::count_alerts(check, deadline, &observed);
                    verdict::judge_alerts(name, check, deadline, count)
                }
                Check::Metric(check) => {
                    let value = metrics
                        .lock()
                        .ok()
                        .and_then(|m| m.value(&check.metric, &check.labels));
                    verdict::judge_metric(name, check, value)
                }
            }
        })
        .collect::<Vec<_>>();
    let verdict = Verdict {
        scenario: scenario.scenario.name.clone(),
        file: scenario_path.display().to_string(),
        passed: expectations.iter().all(|e| e.passed) && step_errors.is_empty(),
        duration_secs,
        startup_secs: t0.duration_since(began).as_secs_f64(),
        expectations,
        groups: group_results(&scenario, &outcomes),
        step_errors,
        restarts_secs: timeline.restarts_secs,
        events_seen: observed.len(),
        dropped_in_kernel: drops.kernel.unwrap_or(0),
        dropped_by_publisher: drops.bus.unwrap_or(0),
        peers_left_connected,
        stack: if stack.topology.is_some() {
            "topology"
        } else if existing {
            "existing"
        } else {
            "embedded"
        }
        .into(),
        nodes: stack
            .topology
            .as_ref()
            .map(|t| {
                t.nodes()
                    .iter()
                    .map(|n| format!("{} {}", n.name(), n.address()))
                    .collect()
            })
            .unwrap_or_default(),
        propagation: if stack.topology.is_some() {
            topology::propagation(&observed)
        } else {
            Vec::new()
        },
        relay: topology::relay_order(&scenario, &announced, t0),
        notes,
    };
    let written = report::write(report_dir, &verdict, &observed)
        .map_err(|e| RehearseError::Stack(format!("writing the report: {e}")));
    if let Some(containers) = stack.topology.take() {
        containers.remove().await;
    }
    drop(stack);
    written?;
    Ok((verdict, observed))
}

/// The replay scripts of the `replay_recorded` groups, by group name, loaded before anything
/// starts so a bad recording is an error, not a silent peer.
fn load_scripts(scenario: &Scenario) -> Result<HashMap<String, Arc<ReplayScript>>, RehearseError> {
    let mut scripts = HashMap::new();
    for group in &scenario.peers {
        if let Behaviour::ReplayRecorded(replay) = &group.behaviour {
            let path = scenario.resolve(&replay.recording);
            let script = ReplayScript::load(&path, &replay.peer)
                .map_err(|e| RehearseError::Invalid(format!("peer group `{}`: {e}", group.name)))?;
            scripts.insert(group.name.clone(), Arc::new(script));
        }
    }
    Ok(scripts)
}

fn start_recorder(
    stack: &Stack,
    scenario_path: &Path,
    report_dir: &Path,
    stop: Shutdown,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let options = RecordOptions::new(
        report_dir.join("recording.mcap"),
        vec![
            "peerlab".into(),
            "rehearse".into(),
            scenario_path.display().to_string(),
        ],
    );
    let (nats, scheme) = (stack.nats.clone(), stack.scheme.clone());
    tokio::spawn(async move {
        record(&nats, scheme, &options, Default::default(), stop)
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
    })
}

/// One peer connection's task: it returns (group, node, outcome).
type PeerTask = tokio::task::JoinHandle<(String, String, PeerOutcome)>;

/// Starts every peer of every group at its time, one connection per target node (the home
/// node when the group names none); each task returns (group, node, outcome).
fn spawn_peers(
    scenario: &Scenario,
    stack: &Stack,
    scripts: &HashMap<String, Arc<ReplayScript>>,
    coins: &Arc<CoinPool>,
    registry: &Arc<Mutex<HashMap<String, String>>>,
    t0: Instant,
    stop_all: &Shutdown,
) -> Result<Vec<PeerTask>, RehearseError> {
    let mut tasks = Vec::new();
    for (g, group) in scenario.peers.iter().enumerate() {
        let group_stop = group_stop(group.stop_at_secs, t0, stop_all);
        let coins_each = match &group.behaviour {
            Behaviour::TxSpam(spam) if spam.kind == TxKind::Valid => {
                (spam.transactions as usize).div_ceil(TXS_PER_COIN)
            }
            _ => 0,
        };
        let targets: Vec<Option<&str>> = if group.nodes.is_empty() {
            vec![None]
        } else {
            group.nodes.iter().map(|n| Some(n.as_str())).collect()
        };
        // One address per peer, shared by its connections to every target node.
        let sources: Vec<Option<std::net::IpAddr>> =
            match (&stack.topology, group.distinct_addresses) {
                (Some(topology), true) => topology
                    .network()
                    .ok_or_else(|| RehearseError::Stack("the container network is gone".into()))?
                    .source_addresses(group.count as usize)
                    .map_err(|e| RehearseError::Stack(format!("peer group `{}`: {e}", group.name)))?
                    .into_iter()
                    .map(|a| Some(std::net::IpAddr::V4(a)))
                    .collect(),
                _ => vec![None; group.count as usize],
            };
        for (i, source) in sources.into_iter().enumerate() {
            let i = i as u32;
            for target in &targets {
                let behaviour = group.behaviour.clone();
                let name = group.name.clone();
                let node_name = target
                    .unwrap_or(stack.nodes.first().map_or("node", |(n, _)| n.as_str()))
                    .to_string();
                let (registry, stop, node, coins) = (
                    registry.clone(),
                    group_stop.clone(),
                    stack.node_named(*target),
                    coins.clone(),
                );
                let script = scripts.get(&group.name).cloned();
                let seed = scenario
                    .scenario
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((g as u64) << 20)
                    .wrapping_add(u64::from(i));
                let start = t0 + crate::scenario::secs(group.start_at_secs);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(start.into()).await;
                    let mut outcome = PeerOutcome::default();
                    let mut context = PeerContext {
                        coins: Vec::new(),
                        script,
                        source,
                    };
                    if coins_each > 0 {
                        let node = node.clone();
                        match tokio::task::spawn_blocking(move || coins.take(&*node, coins_each))
                            .await
                        {
                            Ok(Ok(taken)) => context.coins = taken,
                            Ok(Err(e)) => outcome.error = Some(format!("allotting coins: {e}")),
                            Err(e) => outcome.error = Some(format!("allotting coins: {e}")),
                        }
                    }
                    // Asked at start time: a restart_node step moves the node to new ports.
                    let node_addr = match node.p2p_addr() {
                        Ok(addr) => addr,
                        Err(e) => {
                            outcome.error = Some(e.to_string());
                            return (name, node_name, outcome);
                        }
                    };
                    let group_name = name.clone();
                    let played =
                        run_peer_with(node_addr, &behaviour, seed, &context, stop, move |addr| {
                            if let Ok(mut map) = registry.lock() {
                                map.insert(addr.to_string(), group_name);
                            }
                        })
                        .await;
                    if outcome.error.is_some() && played.error.is_none() {
                        return (
                            name,
                            node_name,
                            PeerOutcome {
                                error: outcome.error,
                                ..played
                            },
                        );
                    }
                    (name, node_name, played)
                }));
            }
        }
    }
    Ok(tasks)
}

/// Resolves with the first container of the topology that dies (never without one).
async fn watch_containers(stack: &Stack) -> crate::container::ContainerError {
    let Some(topology) = &stack.topology else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(died) = topology.check_alive().await {
            return died;
        }
    }
}

/// A stop signal for one group: its own stop time, or the end of the run.
fn group_stop(stop_at_secs: Option<f64>, t0: Instant, stop_all: &Shutdown) -> Shutdown {
    let stop = stop_all.child_token();
    if let Some(secs) = stop_at_secs {
        let stop = stop.clone();
        tokio::spawn(async move {
            let at = t0 + crate::scenario::secs(secs);
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        });
    }
    stop
}

fn spawn_rpc_checks(
    scenario: &Scenario,
    stack: &Stack,
    registry: &Arc<Mutex<HashMap<String, String>>>,
    t0: Instant,
) -> Vec<tokio::task::JoinHandle<(usize, (bool, String))>> {
    let mut tasks = Vec::new();
    for (index, expectation) in scenario.expect.iter().enumerate() {
        if let Check::Rpc(check) = &expectation.check {
            let (node, check, registry) = (
                stack.node_named(expectation.node.as_deref()),
                check.clone(),
                registry.clone(),
            );
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until((t0 + crate::scenario::secs(check.at_secs)).into()).await;
                let result = tokio::task::spawn_blocking(move || {
                    rpc_check::evaluate(&*node, &check, &registry)
                })
                .await
                .unwrap_or_else(|e| (false, format!("evaluation failed: {e}")));
                (index, result)
            }));
        }
    }
    tasks
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
            Check::Alert(check) => check.deadline_secs.unwrap_or(0.0),
            Check::Metric(_) => 0.0,
        };
        end = end.max(t);
    }
    for group in &scenario.peers {
        end = end.max(group.start_at_secs + 1.0);
    }
    crate::scenario::secs(end.min(scenario.scenario.timeout_secs as f64))
}

/// Our peers' connections the nodes still have (bounded wait: closing takes a moment).
async fn open_peer_connections(
    stack: &Stack,
    registry: &Arc<Mutex<HashMap<String, String>>>,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (nodes, registry) = (stack.nodes.clone(), registry.clone());
        let count = tokio::task::spawn_blocking(move || {
            let ours = registry.lock().map(|m| m.clone()).unwrap_or_default();
            nodes
                .iter()
                .filter_map(|(_, node)| node.rpc::<Value>("getpeerinfo", &[]).ok())
                .map(|peers| {
                    peers
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["addr"].as_str().is_some_and(|a| ours.contains_key(a)))
                        .count() as u64
                })
                .sum::<u64>()
        })
        .await
        .unwrap_or(0);
        if count == 0 || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The report directory's files.
pub fn report_files(dir: &Path) -> [PathBuf; 3] {
    [
        dir.join("recording.mcap"),
        dir.join("verdict.json"),
        dir.join("report.html"),
    ]
}
