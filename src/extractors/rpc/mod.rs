//! The RPC extractor: polls a node's JSON-RPC on two timers and publishes each reply as an
//! `rpc` event (peer-observer's rpc-extractor, extractors.md §2).
//!
//! Data path: a background task connects to the node ([`RemoteNode`], blocking, so on tokio's
//! blocking pool), then on each tick of the frequent and the less-frequent timer calls that
//! timer's enabled RPCs ([`calls`]) one after the other, converts each reply ([`convert`],
//! [`peers`]) and hands the event, encoded by [`crate::event::wire`] (prost's encoding with
//! the map values proto2 requires written out), to the [`Publisher`] on subject `rpc`.
//!
//! Invariants:
//! - **a node that is not there is waited for, never fatal**: connecting (node down, cookie not
//!   written yet, wrong credentials) is retried with a backoff doubling up to
//!   [`RpcConfig::connect_backoff_max`], one WARN line and one `rpc_connect_errors` per
//!   attempt; a tick in which every call failed (node gone, cookie changed by a restart)
//!   drops the connection and goes back to waiting;
//! - **a failed call costs only itself**: an RPC error or a reply that does not convert
//!   publishes nothing, logs ERROR `Could not fetch and publish '<rpc>'` and counts in
//!   `rpc_errors[<rpc>]`; the tick's other calls still run (`estimatesmartfee`'s remaining
//!   target/mode pairs do not, as upstream);
//! - calls of one tick run sequentially in the spec's order, so their events reach the bus in
//!   that order; both timers tick immediately once connected (the frequent one first);
//! - credentials never reach a log line: the URL is logged redacted and [`RpcConfig`]'s
//!   `Debug` omits the password;
//! - on shutdown an in-flight call is abandoned (its blocking thread ends with the client's
//!   60 s timeout at worst) and a final counter snapshot is published.
//!
//! Upstream's Prometheus metrics (§2.5) are not served: the same numbers (calls, fetch errors
//! and publish errors per method) travel in the counter snapshot on the stats subject; there
//! is no fetch-duration histogram.

pub mod calls;
pub mod convert;
pub mod peers;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub use calls::{schedule, RpcMethod, Timer, FEE_MODES, FEE_TARGETS};
pub use convert::ConvertError;

use super::{publish_counters, Extractor};
use crate::bus::Publisher;
use crate::event::counters::ExtractorCounters;
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::proto::rpc_extractor::{rpc::RpcEvent, Rpc};
use crate::event::{now_millis, Event, EventKind};
use crate::node::{NodeRpc, RemoteNode, RpcAuth};
use crate::secret::redact_url;
use crate::shutdown::Shutdown;

/// What can go wrong with the RPC extractor (a node that does not answer is not an error: it
/// is waited for).
#[derive(Debug, thiserror::Error)]
pub enum RpcExtractorError {
    /// The configuration cannot run (says which setting to fix).
    #[error("rpc extractor configuration: {0}")]
    Config(String),
    /// The background task panicked or was aborted.
    #[error("rpc extractor task failed: {0}")]
    Task(String),
}

/// How to run the RPC extractor.
#[derive(Clone)]
pub struct RpcConfig {
    /// The node's RPC URL (`http://127.0.0.1:8332`); see [`RpcConfig::url_from_host`].
    pub url: String,
    /// Cookie file or user and password.
    pub auth: RpcAuth,
    /// The frequent timer (`--query-interval`).
    pub query_interval: Duration,
    /// The less-frequent timer (`--query-interval-less-frequent`).
    pub query_interval_less_frequent: Duration,
    /// Methods not to call (`--disable-<rpc>`).
    pub disabled: BTreeSet<RpcMethod>,
    /// How often the counter snapshot is published.
    pub report_period: Duration,
    /// First wait after a failed connection attempt (doubles each attempt).
    pub connect_backoff_min: Duration,
    /// Longest wait between connection attempts.
    pub connect_backoff_max: Duration,
}

impl RpcConfig {
    /// peer-observer's defaults (10 s and 120 s timers, everything enabled) for the node at
    /// `url`.
    pub fn new(url: impl Into<String>, auth: RpcAuth) -> RpcConfig {
        RpcConfig {
            url: url.into(),
            auth,
            query_interval: Duration::from_secs(10),
            query_interval_less_frequent: Duration::from_secs(120),
            disabled: BTreeSet::new(),
            report_period: Duration::from_secs(10),
            connect_backoff_min: Duration::from_millis(500),
            connect_backoff_max: Duration::from_secs(10),
        }
    }

    /// `--rpc-host` as a URL: `http://` is prepended when no scheme is given.
    pub fn url_from_host(host: &str) -> String {
        if host.contains("://") {
            host.to_string()
        } else {
            format!("http://{host}")
        }
    }

    fn check(&self) -> Result<(), RpcExtractorError> {
        for (name, value) in [
            ("query_interval", self.query_interval),
            (
                "query_interval_less_frequent",
                self.query_interval_less_frequent,
            ),
            ("report_period", self.report_period),
            ("connect_backoff_min", self.connect_backoff_min),
            ("connect_backoff_max", self.connect_backoff_max),
        ] {
            if value.is_zero() {
                return Err(RpcExtractorError::Config(format!(
                    "{name} is zero; give it a positive duration"
                )));
            }
        }
        Ok(())
    }
}

/// Shows everything but the password.
impl fmt::Debug for RpcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            RpcAuth::Cookie(path) => format!("cookie file {}", path.display()),
            RpcAuth::UserPass(user, _) => format!("user {user} with a password"),
        };
        f.debug_struct("RpcConfig")
            .field("url", &redact_url(&self.url))
            .field("auth", &auth)
            .field("query_interval", &self.query_interval)
            .field(
                "query_interval_less_frequent",
                &self.query_interval_less_frequent,
            )
            .field("disabled", &self.disabled)
            .field("report_period", &self.report_period)
            .field("connect_backoff_min", &self.connect_backoff_min)
            .field("connect_backoff_max", &self.connect_backoff_max)
            .finish()
    }
}

/// The counters of a running extractor, shared with its task (one lock, taken briefly once
/// per call).
#[derive(Default)]
struct Stats(Mutex<ExtractorCounters>);

impl Stats {
    fn update(&self, f: impl FnOnce(&mut ExtractorCounters)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn snapshot(&self) -> ExtractorCounters {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running RPC extractor; stop it with [`Extractor::stop`].
pub struct RpcExtractor {
    stats: Arc<Stats>,
    /// A child of the shutdown it was started with: `stop` fires only this one.
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

impl Extractor for RpcExtractor {
    type Config = RpcConfig;
    type Error = RpcExtractorError;
    const COMPONENT: &'static str = "rpc-extractor";

    /// Checks the configuration and starts polling in the background (the node need not be
    /// up yet).
    fn start(
        config: RpcConfig,
        publisher: Arc<Publisher>,
        shutdown: Shutdown,
    ) -> Result<RpcExtractor, RpcExtractorError> {
        config.check()?;
        let stats = Arc::new(Stats::default());
        let shutdown = shutdown.child_token();
        let task = tokio::spawn(run(config, publisher, stats.clone(), shutdown.clone()));
        Ok(RpcExtractor {
            stats,
            shutdown,
            task,
        })
    }

    fn counters(&self) -> ExtractorCounters {
        self.stats.snapshot()
    }

    /// Stops polling (abandoning an in-flight call) and returns the final counters.
    async fn stop(self) -> Result<ExtractorCounters, RpcExtractorError> {
        self.shutdown.cancel();
        self.task
            .await
            .map_err(|e| RpcExtractorError::Task(e.to_string()))?;
        Ok(self.stats.snapshot())
    }
}

/// The extractor's life: wait for the node, poll until it goes away, repeat; until shutdown.
async fn run(config: RpcConfig, publisher: Arc<Publisher>, stats: Arc<Stats>, shutdown: Shutdown) {
    let frequent = schedule(Timer::Frequent, &config.disabled);
    let less_frequent = schedule(Timer::LessFrequent, &config.disabled);
    let mut report = tokio::time::interval(config.report_period);
    report.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ctx = Context {
        publisher: &publisher,
        stats: &stats,
        shutdown: &shutdown,
    };
    if frequent.is_empty() && less_frequent.is_empty() {
        tracing::warn!(
            "every RPC is disabled (--disable-*): nothing to poll; idling until shutdown"
        );
        while ctx.wait_or_report(&mut report, None).await {}
    } else if let Some(node) = connect(&config, &ctx, &mut report).await {
        poll(node, &config, &frequent, &less_frequent, &ctx, &mut report).await;
    }
    publish_counters(&publisher, RpcExtractor::COMPONENT, &stats.snapshot());
}

/// What the loops share.
struct Context<'a> {
    publisher: &'a Publisher,
    stats: &'a Stats,
    shutdown: &'a Shutdown,
}

impl Context<'_> {
    /// Waits for `until` (forever if `None`) while publishing counters each report period;
    /// `false` once shutdown fired.
    async fn wait_or_report(
        &self,
        report: &mut tokio::time::Interval,
        until: Option<tokio::time::Instant>,
    ) -> bool {
        let sleep = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return false,
                _ = &mut sleep => return true,
                _ = report.tick() => self.report(),
            }
        }
    }

    fn report(&self) {
        publish_counters(
            self.publisher,
            RpcExtractor::COMPONENT,
            &self.stats.snapshot(),
        );
    }
}

/// Connects, retrying with a bounded backoff; `None` once shutdown fired.
async fn connect(
    config: &RpcConfig,
    ctx: &Context<'_>,
    report: &mut tokio::time::Interval,
) -> Option<Arc<RemoteNode>> {
    let shown = redact_url(&config.url);
    let mut backoff = config.connect_backoff_min;
    loop {
        let (url, auth) = (config.url.clone(), config.auth.clone());
        let attempt = tokio::task::spawn_blocking(move || RemoteNode::connect(&url, &auth));
        let result = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return None,
            result = attempt => result,
        };
        let error = match result {
            Ok(Ok(node)) => {
                tracing::info!(url = %shown, "connected to the node's RPC server");
                return Some(Arc::new(node));
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the connection task failed: {e}"),
        };
        ctx.stats.update(|c| c.rpc_connect_errors += 1);
        tracing::warn!(
            url = %shown,
            "waiting for the node's RPC server (next attempt in {:.1}s): {error}",
            backoff.as_secs_f64()
        );
        let until = tokio::time::Instant::now() + backoff;
        if !ctx.wait_or_report(report, Some(until)).await {
            return None;
        }
        backoff = (backoff * 2).min(config.connect_backoff_max);
    }
}

/// Polls `node` on both timers until shutdown; after a tick in which every call failed, drops
/// the connection and reconnects (a restarted node has a new cookie).
async fn poll(
    mut node: Arc<RemoteNode>,
    config: &RpcConfig,
    frequent: &[RpcMethod],
    less_frequent: &[RpcMethod],
    ctx: &Context<'_>,
    report: &mut tokio::time::Interval,
) {
    // Created once connected, so both tick immediately then. They are kept across
    // reconnects, so a call that always fails (getorphantxs before Core 29, alone) costs one
    // reconnect per period, never a tight loop. `Delay`: a slow tick or a long outage is
    // followed by one tick, not a burst of catch-up ticks.
    let mut fast = tokio::time::interval(config.query_interval);
    let mut slow = tokio::time::interval(config.query_interval_less_frequent);
    fast.set_missed_tick_behavior(MissedTickBehavior::Delay);
    slow.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let outcome = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            // A timer restarts when its tick ends: a tick longer than its interval would
            // otherwise leave `fast` ready on every turn, starving the others.
            _ = fast.tick(), if !frequent.is_empty() => {
                let outcome = tick(&node, frequent, ctx).await;
                fast.reset();
                outcome
            }
            _ = slow.tick(), if !less_frequent.is_empty() => {
                let outcome = tick(&node, less_frequent, ctx).await;
                slow.reset();
                outcome
            }
            _ = report.tick() => {
                ctx.report();
                continue;
            }
        };
        match outcome {
            TickOutcome::Answered => {}
            TickOutcome::Cancelled => return,
            TickOutcome::Unanswered => {
                tracing::warn!(
                    url = %redact_url(&config.url),
                    "every call of a tick failed: reconnecting to the node's RPC server"
                );
                match connect(config, ctx, report).await {
                    Some(fresh) => node = fresh,
                    None => return,
                }
            }
        }
    }
}

enum TickOutcome {
    /// At least one call succeeded.
    Answered,
    /// Every call failed.
    Unanswered,
    /// Shutdown fired during a call.
    Cancelled,
}

/// Calls `methods` in order and publishes what they return.
async fn tick(node: &Arc<RemoteNode>, methods: &[RpcMethod], ctx: &Context<'_>) -> TickOutcome {
    let mut answered = false;
    for &method in methods {
        let client = node.clone();
        let job = tokio::task::spawn_blocking(move || fetch(&*client, method));
        let fetched = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return TickOutcome::Cancelled,
            joined = job => joined.unwrap_or_else(|e| Fetched {
                events: Vec::new(),
                error: Some(format!("the RPC task failed: {e}")),
            }),
        };
        answered |= fetched.error.is_none() || !fetched.events.is_empty();
        publish(method, fetched, ctx);
    }
    if answered {
        TickOutcome::Answered
    } else {
        TickOutcome::Unanswered
    }
}

/// Hands a call's events to the publisher, counts them, and reports its error.
fn publish(method: RpcMethod, fetched: Fetched, ctx: &Context<'_>) {
    let name = method.name();
    for arm in fetched.events {
        let payload = bytes::Bytes::from(crate::event::wire::encode(&rpc_event(arm)));
        let accepted = ctx.publisher.publish_encoded(EventKind::Rpc, payload);
        ctx.stats.update(|c| {
            c.published += 1;
            *c.rpc_calls.entry(name.to_string()).or_default() += 1;
            if !accepted {
                c.publish_dropped += 1;
                *c.rpc_publish_errors.entry(name.to_string()).or_default() += 1;
            }
        });
        if !accepted {
            tracing::error!(
                rpc = name,
                "Could not fetch and publish '{name}': the publisher's buffer is full (event dropped)"
            );
        }
    }
    if let Some(error) = fetched.error {
        ctx.stats
            .update(|c| *c.rpc_errors.entry(name.to_string()).or_default() += 1);
        tracing::error!(rpc = name, "Could not fetch and publish '{name}': {error}");
    }
}

/// The `event.Event` around one `rpc_event` arm, stamped now.
pub fn rpc_event(arm: RpcEvent) -> Event {
    Event {
        timestamp: now_millis(),
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(arm),
        })),
    }
}

/// What one call produced: its events (several only for `estimatesmartfee`, which may have
/// published some pairs before failing) and its error.
#[derive(Debug)]
pub struct Fetched {
    /// Converted replies, in call order.
    pub events: Vec<RpcEvent>,
    /// Why the call (or, for `estimatesmartfee`, the rest of it) failed.
    pub error: Option<String>,
}

/// Calls `method` on `node` (blocking) and converts the reply.
pub fn fetch<N: NodeRpc>(node: &N, method: RpcMethod) -> Fetched {
    if method == RpcMethod::EstimateSmartFee {
        return fetch_fee_estimates(node);
    }
    let params: Vec<Value> = match method {
        RpcMethod::GetMemoryInfo => vec![json!("stats")],
        RpcMethod::GetOrphanTxs => vec![json!(2)],
        _ => Vec::new(),
    };
    let result = node
        .rpc::<Value>(method.name(), &params)
        .map_err(|e| e.to_string())
        .and_then(|reply| convert::convert(method, reply).map_err(|e| e.to_string()));
    match result {
        Ok(event) => Fetched {
            events: vec![event],
            error: None,
        },
        Err(error) => Fetched {
            events: Vec::new(),
            error: Some(error),
        },
    }
}

/// `estimatesmartfee` for every target x mode, target outer; the first failure (fetch or
/// conversion) ends the sequence.
fn fetch_fee_estimates<N: NodeRpc>(node: &N) -> Fetched {
    let mut events = Vec::new();
    for target in FEE_TARGETS {
        for mode in FEE_MODES {
            let result = node
                .rpc::<Value>("estimatesmartfee", &[json!(target), json!(mode)])
                .map_err(|e| e.to_string())
                .and_then(|reply| {
                    convert::estimate_smart_fee(reply, target, mode).map_err(|e| e.to_string())
                });
            match result {
                Ok(estimate) => events.push(RpcEvent::EstimateSmartFee(estimate)),
                Err(error) => {
                    return Fetched {
                        events,
                        error: Some(format!("target {target}, mode {mode}: {error}")),
                    }
                }
            }
        }
    }
    Fetched {
        events,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_http_urls_unless_they_have_a_scheme() {
        assert_eq!(
            RpcConfig::url_from_host("127.0.0.1:8332"),
            "http://127.0.0.1:8332"
        );
        assert_eq!(
            RpcConfig::url_from_host("https://node:8332"),
            "https://node:8332"
        );
    }

    #[test]
    fn the_config_debug_never_shows_the_password() {
        let config = RpcConfig::new(
            "http://127.0.0.1:8332",
            RpcAuth::UserPass("alice".into(), "hunter2".into()),
        );
        let shown = format!("{config:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn zero_durations_are_refused_by_name() {
        let mut config = RpcConfig::new("http://127.0.0.1:8332", RpcAuth::Cookie("c".into()));
        assert!(config.check().is_ok());
        config.query_interval = Duration::ZERO;
        let e = config.check().unwrap_err().to_string();
        assert!(e.contains("query_interval"), "{e}");
    }

    #[test]
    fn events_carry_the_arm_and_a_timestamp() {
        let event = rpc_event(RpcEvent::Uptime(7));
        assert!(event.timestamp > 0);
        assert_eq!(
            crate::event::EventKind::of(&event),
            Some(crate::event::EventKind::Rpc)
        );
        crate::event::strict::check_event(&prost::Message::encode_to_vec(&event))
            .expect("strictly valid");
    }
}
