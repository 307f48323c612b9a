//! The metrics tool: every event on the bus turned into Prometheus series with peer-observer's
//! names, types, labels and buckets (shared/spec/metrics.md), so its Grafana dashboards work
//! unchanged against peerlab, plus peerlab's own pipeline families under `peerlab_`.
//!
//! [`MetricsEngine`] is the event -> series part, synchronous and free of I/O, so recordings
//! can be fed to it directly (the golden tests do); [`MetricsTool`] is the [`Tool`]: it serves
//! the engine's registry over HTTP and feeds it from a subscriber. One file per event source:
//! [`p2p`] (P2P messages), [`conn`] (connections, mempool, validation), [`rpc`],
//! [`extractors`] (P2P, log and IPC extractors), [`pipeline`] (`peerlab_*`).
//!
//! Invariants:
//! - exposition is Prometheus text format 0.0.4 as peer-observer serves it: counters without
//!   a `_total` suffix, labelled series created by their first update, any HTTP path answered;
//! - a payload that does not decode is counted (`peerlab_metrics_undecodable`) and skipped;
//! - label values come from the event, as upstream's do; the families whose labels grow with
//!   peers or addresses are exactly the spec's (`conn_misbehaving{id}`, `addrv2_empty{addr}`,
//!   `oldping_subnet`, `version_useragent`, `*_services`, `feefilter_feerate`,
//!   `rpc_getrawaddrman_ports`); those fed by P2P messages and connection events (where a
//!   peer chooses the values) are capped at [`MAX_SERIES_PER_FAMILY`] series each: updates
//!   that would add more are dropped and counted in `peerlab_metrics_series_capped{family}`
//!   (the RPC families are reset on every reply, so they hold only the node's current view);
//! - the HTTP listener is bound before the tool subscribes, on loopback unless told
//!   otherwise.

pub mod conn;
pub mod extractors;
pub mod http;
pub mod iplists;
pub mod labels;
pub mod p2p;
pub mod pipeline;
pub mod register;
pub mod rpc;

use std::net::SocketAddr;

use prometheus::{IntGauge, Registry};
use prost::Message as _;

use crate::bus::{is_alerts_subject, is_stats_subject, Subscriber};
use crate::event::counters::ExtractorCounters;
use crate::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::Event;
use crate::shutdown::Shutdown;
use crate::tools::Tool;

use conn::{ChainMetrics, ConnMetrics};
use extractors::ExtractorMetrics;
use iplists::IpLists;
use p2p::P2pMetrics;
use pipeline::PipelineMetrics;
use register::{Register, SeriesCap};
use rpc::RpcMetrics;

/// The most series one family with growing labels may have.
pub const MAX_SERIES_PER_FAMILY: usize = 10_000;

/// What can go wrong building or serving the metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Two families share a name (a bug).
    #[error("cannot register the metric families: {0}")]
    Register(#[from] prometheus::Error),
    /// The HTTP address cannot be bound.
    #[error("cannot listen on {address}: {source}; is another process using the port?")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the metrics HTTP server failed: {0}")]
    Serve(String),
}

/// Events -> series (see the module docs).
pub struct MetricsEngine {
    registry: Registry,
    families: Vec<String>,
    lists: IpLists,
    start: IntGauge,
    p2p: P2pMetrics,
    conn: ConnMetrics,
    chain: ChainMetrics,
    rpc: RpcMetrics,
    extractors: ExtractorMetrics,
    pipeline: PipelineMetrics,
}

impl MetricsEngine {
    /// Registers every family; `lists` feeds the list-dependent ones.
    pub fn new(lists: IpLists) -> Result<MetricsEngine, MetricsError> {
        let registry = Registry::new();
        let r = Register::new(&registry);
        let capped = r.counter_vec(
            "peerlab_metrics_series_capped",
            "Updates dropped because their family reached its series cap",
            &["family"],
        )?;
        let cap = || SeriesCap::new(capped.clone(), MAX_SERIES_PER_FAMILY);
        let (p2p, conn) = (P2pMetrics::new(&r, cap())?, ConnMetrics::new(&r, cap())?);
        let (chain, rpc) = (ChainMetrics::new(&r)?, RpcMetrics::new(&r)?);
        let (extractors, pipeline) = (ExtractorMetrics::new(&r)?, PipelineMetrics::new(&r)?);
        Ok(MetricsEngine {
            start: r.gauge_int(
                "peerobserver_runtime_start_timestamp",
                "When the metrics tool started (UNIX seconds)",
            )?,
            p2p,
            conn,
            chain,
            rpc,
            extractors,
            pipeline,
            lists,
            families: r.names(),
            registry,
        })
    }

    /// Every family's name, exposed or not yet (a labelled family appears with its first
    /// series).
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// The registry the families live in (shared with the HTTP server).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets `peerobserver_runtime_start_timestamp` to now.
    pub fn mark_started(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.start.set(register::as_i64(now));
    }

    /// One bus message: an alert on the alerts subject, a counter snapshot on a stats
    /// subject, otherwise an `event.Event`.
    pub fn observe_message(&mut self, subject: &str, payload: &[u8]) {
        if is_alerts_subject(subject) {
            self.pipeline.message("alerts");
            match serde_json::from_slice::<crate::tools::alerts::Alert>(payload) {
                Ok(alert) => self.pipeline.alert(alert.kind.name()),
                Err(_) => self.pipeline.undecodable(),
            }
            return;
        }
        if is_stats_subject(subject) {
            self.pipeline.message("stats");
            let component = subject.rsplit('.').next().unwrap_or(subject);
            if component == "recorder" {
                match serde_json::from_slice::<crate::event::counters::RecorderCounters>(payload) {
                    Ok(counters) => self.pipeline.observe_recorder(&counters),
                    Err(_) => self.pipeline.undecodable(),
                }
                return;
            }
            if component.ends_with("-publisher") {
                match serde_json::from_slice::<crate::bus::StatsSnapshot>(payload) {
                    Ok(stats) => self.pipeline.observe_publisher(component, &stats),
                    Err(_) => self.pipeline.undecodable(),
                }
                return;
            }
            match ExtractorCounters::from_json(payload) {
                Ok(counters) => self.pipeline.observe(component, &counters),
                Err(_) => self.pipeline.undecodable(),
            }
            return;
        }
        match Event::decode(payload) {
            Ok(event) => self.observe_event(&event),
            Err(e) => {
                tracing::debug!(subject, "skipping a payload that is not an event: {e}");
                self.pipeline.undecodable();
            }
        }
    }

    /// One event.
    pub fn observe_event(&mut self, event: &Event) {
        let Some(kind) = crate::event::EventKind::of(event) else {
            self.pipeline.undecodable();
            return;
        };
        self.pipeline.message(kind.subject());
        match &event.peer_observer_event {
            Some(PeerObserverEvent::EbpfExtractor(ebpf)) => match &ebpf.ebpf_event {
                Some(EbpfEvent::Message(message)) => {
                    self.p2p.observe(message, event.timestamp, &self.lists)
                }
                Some(EbpfEvent::Connection(connection)) => {
                    if let Some(e) = &connection.event {
                        self.conn.observe(e, event.timestamp, &self.lists);
                    }
                }
                Some(EbpfEvent::Mempool(mempool)) => {
                    if let Some(e) = &mempool.event {
                        self.chain.observe_mempool(e);
                    }
                }
                Some(EbpfEvent::Validation(validation)) => {
                    if let Some(e) = &validation.event {
                        self.chain.observe_validation(e);
                    }
                }
                Some(EbpfEvent::Utxocache(_)) | None => {}
            },
            Some(PeerObserverEvent::RpcExtractor(rpc)) => {
                if let Some(e) = &rpc.rpc_event {
                    self.rpc.observe(e, &self.lists);
                }
            }
            Some(PeerObserverEvent::P2pExtractor(p2p)) => {
                if let Some(e) = &p2p.p2p_event {
                    self.extractors.observe_p2p(e);
                }
            }
            Some(PeerObserverEvent::LogExtractor(log)) => self.extractors.observe_log(log),
            Some(PeerObserverEvent::IpcExtractor(ipc)) => {
                if let Some(e) = &ipc.ipc_event {
                    self.extractors.observe_ipc(e);
                }
            }
            None => {}
        }
    }

    /// Counts an alert raised in-process (a rehearsal runs the heuristics itself).
    pub fn observe_alert(&mut self, alert: &crate::tools::alerts::Alert) {
        self.pipeline.alert(alert.kind.name());
    }

    /// The value of `name` summed over its series whose labels include `labels`; a
    /// histogram's `NAME_count` and `NAME_sum` give its sample count and sum. `None` when no
    /// series matches (a labelled family appears with its first series).
    pub fn value(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<f64> {
        use prometheus::proto::MetricType;
        let (family_name, part) = match name.rsplit_once('_') {
            Some((base, "count")) if self.is_histogram(base) => (base, "count"),
            Some((base, "sum")) if self.is_histogram(base) => (base, "sum"),
            _ => (name, "value"),
        };
        let families = self.registry.gather();
        let family = families.iter().find(|f| f.name() == family_name)?;
        let mut total = None;
        for metric in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                metric
                    .get_label()
                    .iter()
                    .any(|pair| pair.name() == k && pair.value() == v)
            });
            if !matches {
                continue;
            }
            let value = match (family.get_field_type(), part) {
                (MetricType::COUNTER, _) => metric.get_counter().get_value(),
                (MetricType::GAUGE, _) => metric.get_gauge().get_value(),
                (MetricType::HISTOGRAM, "sum") => metric.get_histogram().get_sample_sum(),
                (MetricType::HISTOGRAM, _) => metric.get_histogram().get_sample_count() as f64,
                _ => continue,
            };
            total = Some(total.unwrap_or(0.0) + value);
        }
        total
    }

    /// Whether `name` is a registered histogram family.
    fn is_histogram(&self, name: &str) -> bool {
        self.registry.gather().iter().any(|f| {
            f.name() == name && f.get_field_type() == prometheus::proto::MetricType::HISTOGRAM
        })
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        http::render(&self.registry)
    }
}

/// What the tool did when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsSummary {
    /// Bus messages read.
    pub messages: u64,
}

/// The metrics tool: an HTTP endpoint bound at construction, fed by a subscriber.
pub struct MetricsTool {
    engine: MetricsEngine,
    listener: tokio::net::TcpListener,
}

impl MetricsTool {
    /// Binds the HTTP endpoint (errors here, before any subscription) with `engine` behind it.
    pub async fn bind(
        address: SocketAddr,
        engine: MetricsEngine,
    ) -> Result<MetricsTool, MetricsError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| MetricsError::Bind { address, source })?;
        Ok(MetricsTool { engine, listener })
    }

    /// Where it listens (the bound port when asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, MetricsError> {
        self.listener
            .local_addr()
            .map_err(|source| MetricsError::Bind {
                address: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
    }
}

impl Tool for MetricsTool {
    type Summary = MetricsSummary;
    type Error = MetricsError;

    /// Serves the registry and feeds it until `shutdown` fires or the subscription ends.
    async fn run(
        mut self,
        mut subscriber: Subscriber,
        shutdown: Shutdown,
    ) -> Result<MetricsSummary, MetricsError> {
        let server_stop = shutdown.child_token();
        let server = tokio::spawn(http::serve(
            self.listener,
            self.engine.registry().clone(),
            server_stop.clone(),
        ));
        self.engine.mark_started();
        let mut summary = MetricsSummary::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = subscriber.next() => match message {
                    Some(message) => {
                        summary.messages += 1;
                        self.engine.observe_message(&message.subject, &message.payload);
                    }
                    None => break,
                },
            }
        }
        server_stop.cancel();
        server
            .await
            .map_err(|e| MetricsError::Serve(e.to_string()))??;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests;
