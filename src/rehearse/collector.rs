//! The collector, the bus side of a run: every event the observer saw, with its time, and
//! the drop counters a peerlab eBPF extractor publishes on its counter subject (what a
//! rehearsal against someone else's stack judges `drops` expectations by).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::stack::Stack;
use super::{ExpectationResult, Observed, RehearseError};
use crate::bus::Subscriber;
use crate::event::counters::ExtractorCounters;
use crate::extractors::ebpf::EbpfExtractor;
use crate::extractors::Extractor as _;
use crate::scenario::DropSource;
use crate::stack::StackCounters;
use crate::tools::alerts::{Alert, AlertConfig, Alerter};
use crate::tools::metrics::iplists::IpLists;
use crate::tools::metrics::MetricsEngine;

/// The bus subscriber of a run: every event with its time, plus the extractor's drop
/// counters when a peerlab extractor publishes them.
pub(super) struct Collector {
    observed: Arc<Mutex<Vec<Observed>>>,
    /// The metrics tool's engine, fed with everything the collector sees.
    metrics: Arc<Mutex<MetricsEngine>>,
    remote_drops: Arc<Mutex<RemoteDrops>>,
    seen: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Drop counters from the extractor's counter snapshots: (kernel, publisher).
#[derive(Debug, Default, Clone)]
pub(super) struct RemoteDrops {
    /// The subject they came on.
    subject: String,
    first: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
}

impl Collector {
    pub(super) async fn start(stack: &Stack, t0: Instant) -> Result<Collector, RehearseError> {
        let stats_subject = stack.scheme.stats_subject(EbpfExtractor::COMPONENT);
        let patterns = [stack.scheme.wildcard(), stats_subject.clone()];
        let mut subscriber = Subscriber::connect(&stack.nats, stack.scheme.clone(), &patterns)
            .await
            .map_err(|e| RehearseError::Stack(format!("observer: {e}")))?;
        let observed: Arc<Mutex<Vec<Observed>>> = Arc::default();
        let remote_drops = Arc::new(Mutex::new(RemoteDrops {
            subject: stats_subject.clone(),
            ..RemoteDrops::default()
        }));
        let seen = Arc::new(AtomicU64::new(0));
        let metrics = Arc::new(Mutex::new(
            MetricsEngine::new(IpLists::default())
                .map_err(|e| RehearseError::Stack(format!("metrics: {e}")))?,
        ));
        // The P2P extractor pings the node every second: its own connection is not a spammer.
        let alert_config = AlertConfig {
            ignore_peers: stack.own_peers(),
            ..AlertConfig::default()
        };
        let task = {
            let scheme = stack.scheme.clone();
            let (observed, remote_drops, seen, metrics) = (
                observed.clone(),
                remote_drops.clone(),
                seen.clone(),
                metrics.clone(),
            );
            tokio::spawn(async move {
                let mut alerter = Alerter::new(alert_config);
                while let Some(message) = subscriber.next().await {
                    // A topology's per-node counters: the stack's own counters judge drops.
                    if message.subject != stats_subject
                        && crate::bus::is_stats_subject(&message.subject)
                    {
                        continue;
                    }
                    if message.subject == stats_subject {
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
                    let mut events = Observed::from_payload(t, &message.payload);
                    let node = scheme.parse(&message.subject).and_then(|(node, _)| node);
                    if node.is_some() {
                        for event in &mut events {
                            event.node = node.clone();
                        }
                    }
                    // The alerts tool's heuristics run on what the observer saw, in order,
                    // and the metrics tool's engine counts both.
                    let alerts = alerts_of(&mut alerter, &message.payload);
                    if let Ok(mut metrics) = metrics.lock() {
                        metrics.observe_message(&message.subject, &message.payload);
                        for alert in &alerts {
                            metrics.observe_alert(alert);
                        }
                    }
                    events.extend(alerts.iter().map(|alert| Observed::alert(t, alert)));
                    if !events.is_empty() {
                        if let Ok(mut all) = observed.lock() {
                            all.extend(events);
                        }
                    }
                }
            })
        };
        Ok(Collector {
            observed,
            metrics,
            remote_drops,
            seen,
            task,
        })
    }

    /// Takes what is still in flight (bounded) and returns everything seen: until `expected`
    /// events arrived when the count is known (our own publisher), otherwise until the bus
    /// has been quiet for half a second.
    pub(super) async fn finish(
        self,
        expected: Option<u64>,
    ) -> (Vec<Observed>, RemoteDrops, Arc<Mutex<MetricsEngine>>) {
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
        let drops = self
            .remote_drops
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        (observed, drops, self.metrics)
    }
}

/// (dropped in the kernel, dropped by the publisher) from a counter snapshot.
fn drop_counts(payload: &[u8]) -> Option<(u64, u64)> {
    let counters = ExtractorCounters::from_json(payload).ok()?;
    Some((counters.dropped_in_kernel, counters.publish_dropped))
}

/// The run's drop counts, wherever they came from (`None`: not known).
pub(super) struct Drops {
    /// Dropped in BPF.
    pub kernel: Option<u64>,
    /// Dropped by the publisher.
    pub bus: Option<u64>,
}

impl Drops {
    pub(super) fn from(
        counters: Option<&StackCounters>,
        remote: RemoteDrops,
        notes: &mut Vec<String>,
    ) -> Drops {
        if let Some(counters) = counters {
            return Drops {
                kernel: Some(counters.ebpf.dropped_in_kernel),
                bus: Some(counters.bus.dropped()),
            };
        }
        match (remote.first, remote.last) {
            (Some(first), Some(last)) => {
                // Counters are cumulative since the extractor started; with one snapshot only
                // its total is known, which may include drops from before the run.
                let single = first == last;
                if single {
                    notes.push(format!(
                        "drop counters: one snapshot on {}; totals since the extractor started",
                        remote.subject
                    ));
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
                    "no drop counters were published on {} during the run (peerlab's extractor publishes them every --stats-interval)",
                    remote.subject
                ));
                Drops {
                    kernel: None,
                    bus: None,
                }
            }
        }
    }

    pub(super) fn judge(&self, name: String, source: DropSource, max: u64) -> ExpectationResult {
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

/// The alerts a payload raises (none for payloads that are not P2P message or connection
/// events).
fn alerts_of(alerter: &mut Alerter, payload: &[u8]) -> Vec<Alert> {
    use prost::Message as _;
    crate::event::Event::decode(payload)
        .map(|event| alerter.event(&event))
        .unwrap_or_default()
}
