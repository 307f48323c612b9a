//! Attack rehearsal: play a scenario against a regtest node while the full observer stack
//! watches, then judge its expectations.
//!
//! This module owns the run of one scenario: the stack ([`StackSpec`]: the embedded default
//! of a private nats-server, regtest bitcoind, eBPF extractor and recorder, or the user's
//! running stack), the scripted peer groups, the timeline steps, and the verdict: every
//! expectation with what was observed. The report directory receives `recording.mcap`,
//! `verdict.json` and `report.html`.
//!
//! Time zero is when the node is up, the start-up blocks are mined and the extractor traces
//! the node; events before it do not count. Event expectations are judged after the run over
//! everything the bus carried (so peers are mapped to groups by the address they connected
//! from, even for events that came before the mapping was known); RPC expectations are
//! evaluated at their time.

mod compare;
mod node;
mod observe;
mod report;
mod rpc_check;
mod stack;
mod timeline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

pub use observe::Observed;
pub use stack::{ExistingStack, StackSpec};

use crate::bus::Subscriber;
use crate::extractor::ebpf::STATS_SUBJECT;
use crate::node::NodeRpc;
use crate::peer::{run_peer_with, PeerContext, PeerOutcome, ReplayScript};
use crate::record::recorder::{record, RecordOptions};
use crate::scenario::{Action, Behaviour, Check, DropSource, Scenario, TxKind};
use stack::{Stack, StackCounters};
use timeline::{CoinPool, Timeline};

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
    /// `embedded` or `existing`.
    pub stack: String,
    /// What the reader should know (settings not applied, counters not available, ...).
    pub notes: Vec<String>,
}

/// Runs `scenario_path` on `stack` and writes the report into `report_dir`.
pub async fn rehearse(
    stack_spec: &StackSpec,
    scenario_path: &Path,
    report_dir: &Path,
) -> Result<(Verdict, Vec<Observed>), RehearseError> {
    let scenario = Scenario::from_file(scenario_path)?;
    let problems = scenario.validate();
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(RehearseError::Invalid(lines.join("\n")));
    }
    let existing = matches!(stack_spec, StackSpec::Existing(_));
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

    let mut stack = Stack::start(stack_spec, &scenario).await?;
    let (stop_recorder, recorder) = start_recorder(&stack, scenario_path, report_dir);

    // Time zero, the observer and the peers.
    let t0 = Instant::now();
    let observer = Observer::start(&stack, t0).await?;
    let registry: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let coins = Arc::new(CoinPool::new(stack.first_own_block + 1));
    let (stop_all, stop_rx) = watch::channel(false);
    let peer_tasks = spawn_peers(&scenario, &stack, &scripts, &coins, &registry, t0, &stop_rx);

    // Steps and RPC checks on the timeline.
    let timeline = Timeline {
        node: stack.node.clone(),
        scenario: scenario.clone(),
        coins: coins.clone(),
        registry: registry.clone(),
        extractor: stack.extractor_stats(),
        runtime: tokio::runtime::Handle::current(),
    };
    let steps = tokio::task::spawn_blocking(move || timeline.run(t0));
    let rpc_tasks = spawn_rpc_checks(&scenario, &stack, &registry, t0);

    tokio::time::sleep_until((t0 + run_length(&scenario)).into()).await;
    let duration_secs = t0.elapsed().as_secs_f64();
    let _ = stop_all.send(true);
    let step_errors = match tokio::time::timeout(WIND_DOWN, steps).await {
        Ok(Ok(errors)) => errors,
        _ => vec!["the timeline did not finish within 15 s of the end".into()],
    };
    let mut outcomes: Vec<(String, PeerOutcome)> = Vec::new();
    for task in peer_tasks {
        if let Ok(Ok(result)) = tokio::time::timeout(WIND_DOWN, task).await {
            outcomes.push(result);
        }
    }
    let mut rpc_results = HashMap::new();
    for task in rpc_tasks {
        if let Ok(Ok((index, result))) = tokio::time::timeout(WIND_DOWN, task).await {
            rpc_results.insert(index, result);
        }
    }
    let counters = stack.finish().await?;
    let (mut observed, remote_drops) = observer.finish(counters.published).await;
    let _ = stop_recorder.send(());
    let _ = recorder.await;
    let peers_left_connected = open_peer_connections(&stack, &registry).await;

    let registry = registry.lock().map(|m| m.clone()).unwrap_or_default();
    observe::assign_groups(&mut observed, &registry);
    let mut notes = stack.notes.clone();
    let drops = Drops::from(&counters, remote_drops, &mut notes);
    let expectations = scenario
        .expect
        .iter()
        .enumerate()
        .map(|(index, expectation)| {
            let name = expectation.label(index);
            match &expectation.check {
                Check::Event(check) => {
                    let deadline = scenario.deadline_secs(check);
                    let count = observe::count_matching(check, deadline, &observed);
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
            }
        })
        .collect::<Vec<_>>();
    let verdict = Verdict {
        scenario: scenario.scenario.name.clone(),
        file: scenario_path.display().to_string(),
        passed: expectations.iter().all(|e| e.passed) && step_errors.is_empty(),
        duration_secs,
        expectations,
        groups: group_results(&scenario, &outcomes),
        step_errors,
        events_seen: observed.len(),
        dropped_in_kernel: drops.kernel.unwrap_or(0),
        dropped_by_publisher: drops.bus.unwrap_or(0),
        peers_left_connected,
        stack: if existing { "existing" } else { "embedded" }.into(),
        notes,
    };
    report::write(report_dir, &verdict, &observed)
        .map_err(|e| RehearseError::Stack(format!("writing the report: {e}")))?;
    drop(stack);
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
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = RecordOptions {
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
    let (nats, scheme) = (stack.nats.clone(), stack.scheme.clone());
    let task = tokio::spawn(async move {
        record(&nats, scheme, &options, Default::default(), async {
            let _ = stopped.await;
        })
        .await
        .map(|_| ())
        .map_err(anyhow::Error::from)
    });
    (stop, task)
}

/// Starts every peer of every group at its time; each task returns (group, outcome).
fn spawn_peers(
    scenario: &Scenario,
    stack: &Stack,
    scripts: &HashMap<String, Arc<ReplayScript>>,
    coins: &Arc<CoinPool>,
    registry: &Arc<Mutex<HashMap<String, String>>>,
    t0: Instant,
    stop_all: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<(String, PeerOutcome)>> {
    let mut tasks = Vec::new();
    for (g, group) in scenario.peers.iter().enumerate() {
        let group_stop = group_stop(group.stop_at_secs, t0, stop_all.clone());
        let coins_each = match &group.behaviour {
            Behaviour::TxSpam(spam) if spam.kind == TxKind::Valid => {
                (spam.transactions as usize).div_ceil(TXS_PER_COIN)
            }
            _ => 0,
        };
        for i in 0..group.count {
            let behaviour = group.behaviour.clone();
            let name = group.name.clone();
            let (registry, stop, node, coins) = (
                registry.clone(),
                group_stop.clone(),
                stack.node.clone(),
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
                };
                if coins_each > 0 {
                    let node = node.clone();
                    match tokio::task::spawn_blocking(move || coins.take(&*node, coins_each)).await
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
                        return (name, outcome);
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
                        PeerOutcome {
                            error: outcome.error,
                            ..played
                        },
                    );
                }
                (name, played)
            }));
        }
    }
    tasks
}

/// A stop signal for one group: its own stop time, or the end of the run.
fn group_stop(
    stop_at_secs: Option<f64>,
    t0: Instant,
    mut stop_all: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let own = async {
            match stop_at_secs {
                Some(secs) => {
                    tokio::time::sleep_until((t0 + crate::scenario::secs(secs)).into()).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = own => {}
            _ = stop_all.wait_for(|s| *s) => {}
        }
        let _ = stop.send(true);
    });
    stop_rx
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
            let (node, check, registry) = (stack.node.clone(), check.clone(), registry.clone());
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

fn judge_count(
    name: String,
    check: &crate::scenario::EventCheck,
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

/// The bus subscriber of a run: every event with its time, plus the extractor's drop
/// counters when a peerlab extractor publishes them.
struct Observer {
    observed: Arc<Mutex<Vec<Observed>>>,
    remote_drops: Arc<Mutex<RemoteDrops>>,
    seen: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Drop counters from `peerlab.stats.ebpf-extractor` snapshots: (kernel, publisher).
#[derive(Debug, Default, Clone, Copy)]
struct RemoteDrops {
    first: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
}

impl Observer {
    async fn start(stack: &Stack, t0: Instant) -> Result<Observer, RehearseError> {
        let patterns = [stack.scheme.wildcard(), STATS_SUBJECT.to_string()];
        let mut subscriber = Subscriber::connect(&stack.nats, stack.scheme.clone(), &patterns)
            .await
            .map_err(|e| RehearseError::Stack(format!("observer: {e}")))?;
        let observed: Arc<Mutex<Vec<Observed>>> = Arc::default();
        let remote_drops: Arc<Mutex<RemoteDrops>> = Arc::default();
        let seen = Arc::new(AtomicU64::new(0));
        let task = {
            let (observed, remote_drops, seen) =
                (observed.clone(), remote_drops.clone(), seen.clone());
            tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    if message.subject == STATS_SUBJECT {
                        if let (Some(counts), Ok(mut drops)) =
                            (drop_counts(&message.payload), remote_drops.lock())
                        {
                            drops.first.get_or_insert(counts);
                            drops.last = Some(counts);
                        }
                        continue;
                    }
                    seen.fetch_add(1, Ordering::Relaxed);
                    let t = t0.elapsed().as_secs_f64();
                    if let Some(event) = Observed::from_payload(t, &message.payload) {
                        if let Ok(mut all) = observed.lock() {
                            all.push(event);
                        }
                    }
                }
            })
        };
        Ok(Observer {
            observed,
            remote_drops,
            seen,
            task,
        })
    }

    /// Takes what is still in flight (bounded) and returns everything seen: until `expected`
    /// events arrived when the count is known (our own publisher), otherwise until the bus
    /// has been quiet for half a second.
    async fn finish(self, expected: Option<u64>) -> (Vec<Observed>, RemoteDrops) {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = (self.seen.load(Ordering::Relaxed), Instant::now());
        while Instant::now() < deadline {
            let seen = self.seen.load(Ordering::Relaxed);
            match expected {
                Some(n) if seen >= n => break,
                None if seen == last.0 && last.1.elapsed() >= Duration::from_millis(500) => break,
                _ => {}
            }
            if seen != last.0 {
                last = (seen, Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.task.abort();
        let observed = self.observed.lock().map(|o| o.clone()).unwrap_or_default();
        let drops = self.remote_drops.lock().map(|d| *d).unwrap_or_default();
        (observed, drops)
    }
}

/// (dropped in the kernel, dropped by the publisher) from a stats snapshot.
fn drop_counts(payload: &[u8]) -> Option<(u64, u64)> {
    let json: Value = serde_json::from_slice(payload).ok()?;
    Some((
        json["dropped_in_kernel"].as_u64()?,
        json["publish_dropped"].as_u64()?,
    ))
}

/// The run's drop counts, wherever they came from (`None`: not known).
struct Drops {
    kernel: Option<u64>,
    bus: Option<u64>,
}

impl Drops {
    fn from(counters: &StackCounters, remote: RemoteDrops, notes: &mut Vec<String>) -> Drops {
        if counters.dropped_in_kernel.is_some() {
            return Drops {
                kernel: counters.dropped_in_kernel,
                bus: counters.dropped_by_publisher,
            };
        }
        match (remote.first, remote.last) {
            (Some(first), Some(last)) => {
                // Counters are cumulative since the extractor started; with one snapshot only
                // its total is known, which may include drops from before the run.
                let single = first == last;
                if single {
                    notes.push(format!("drop counters: one snapshot on {STATS_SUBJECT}; totals since the extractor started"));
                }
                let (k, b) = if single {
                    last
                } else {
                    (last.0 - first.0.min(last.0), last.1 - first.1.min(last.1))
                };
                Drops {
                    kernel: Some(k),
                    bus: Some(b),
                }
            }
            _ => {
                notes.push(format!(
                    "no drop counters were published on {STATS_SUBJECT} during the run (peerlab's extractor publishes them every --stats-interval)"
                ));
                Drops {
                    kernel: None,
                    bus: None,
                }
            }
        }
    }

    fn judge(&self, name: String, source: DropSource, max: u64) -> ExpectationResult {
        let dropped = match source {
            DropSource::All => self.kernel.zip(self.bus).map(|(k, b)| k + b),
            DropSource::Kernel => self.kernel,
            DropSource::Bus => self.bus,
        };
        ExpectationResult {
            name,
            kind: "drops".into(),
            passed: dropped.is_some_and(|d| d <= max),
            observed: dropped.map_or("no drop counters available".into(), |d| {
                format!("{d} dropped")
            }),
            expected: format!("at most {max} dropped"),
        }
    }
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

/// Our peers' connections the node still has (bounded wait: closing takes a moment).
async fn open_peer_connections(
    stack: &Stack,
    registry: &Arc<Mutex<HashMap<String, String>>>,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (node, registry) = (stack.node.clone(), registry.clone());
        let count = tokio::task::spawn_blocking(move || {
            let ours = registry.lock().map(|m| m.clone()).unwrap_or_default();
            node.rpc::<Value>("getpeerinfo", &[]).ok().map(|peers| {
                peers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["addr"].as_str().is_some_and(|a| ours.contains_key(a)))
                    .count() as u64
            })
        })
        .await
        .ok()
        .flatten()
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

/// The report directory's files.
pub fn report_files(dir: &Path) -> [PathBuf; 3] {
    [
        dir.join("recording.mcap"),
        dir.join("verdict.json"),
        dir.join("report.html"),
    ]
}
