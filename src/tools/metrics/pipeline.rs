//! peerlab's own pipeline families (`peerlab_*`), from the counter snapshots extractors publish
//! on their stats subjects, and the metrics tool's own counts.
//!
//! A snapshot carries running totals since its extractor started; they become Prometheus
//! counters by adding the difference to the previous snapshot of the same series. A total
//! lower than the previous one means the extractor restarted (its totals began again), so
//! the new total is added whole, as Prometheus itself treats a counter reset.

use std::collections::HashMap;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec};

use super::register::Register;
use crate::event::counters::ExtractorCounters;

/// Pipeline families.
pub struct PipelineMetrics {
    tracepoint_emitted: IntCounterVec,
    tracepoint_dropped: IntCounterVec,
    published: IntCounterVec,
    publish_dropped: IntCounterVec,
    dropped_in_kernel: IntCounterVec,
    malformed: IntCounterVec,
    restarts: IntCounterVec,
    source_errors: IntCounterVec,
    messages: IntCounterVec,
    undecodable: IntCounter,
    alerts: IntCounterVec,
    recorder_lag: prometheus::Gauge,
    recorder_max_lag: prometheus::Gauge,
    recorder_recorded: IntCounterVec,
    recorder_slow_consumer: IntCounterVec,
    publisher_offered: IntCounterVec,
    publisher_sent: IntCounterVec,
    publisher_dropped: IntCounterVec,
    publisher_spooled: IntCounterVec,
    publisher_spool_recovered: IntCounterVec,
    publisher_spool_events: IntGaugeVec,
    publisher_spool_bytes: IntGaugeVec,
    /// The previous total of each (family, labels) series.
    last: HashMap<(&'static str, Vec<String>), u64>,
    /// The pid each component traced last (a new one is a restart of the node it follows).
    traced: HashMap<String, u32>,
}

impl PipelineMetrics {
    /// Registers every family.
    pub fn new(r: &Register<'_>) -> prometheus::Result<PipelineMetrics> {
        let c = ["component"];
        Ok(PipelineMetrics {
            tracepoint_emitted: r.counter_vec(
                "peerlab_tracepoint_emitted",
                "Tracepoint hits the eBPF programs handled",
                &["component", "tracepoint"],
            )?,
            tracepoint_dropped: r.counter_vec(
                "peerlab_tracepoint_dropped",
                "Tracepoint hits lost in the kernel (ring buffer full)",
                &["component", "tracepoint"],
            )?,
            published: r.counter_vec(
                "peerlab_extractor_published",
                "Events an extractor handed to its publisher",
                &c,
            )?,
            publish_dropped: r.counter_vec(
                "peerlab_extractor_publish_dropped",
                "Events an extractor's publisher could not buffer",
                &c,
            )?,
            dropped_in_kernel: r.counter_vec(
                "peerlab_extractor_dropped_in_kernel",
                "Events an extractor lost in the kernel",
                &c,
            )?,
            malformed: r.counter_vec(
                "peerlab_extractor_malformed",
                "Records or frames an extractor could not parse",
                &c,
            )?,
            restarts: r.counter_vec(
                "peerlab_extractor_restarts",
                "Times an extractor re-attached to a restarted node or restarted itself",
                &c,
            )?,
            source_errors: r.counter_vec(
                "peerlab_extractor_source_errors",
                "Failed reads, calls or connections to the node, by kind",
                &["component", "kind"],
            )?,
            messages: r.counter_vec(
                "peerlab_metrics_messages",
                "Bus messages the metrics tool read, by subject kind",
                &["kind"],
            )?,
            undecodable: r.counter(
                "peerlab_metrics_undecodable",
                "Bus messages the metrics tool could not decode (skipped)",
            )?,
            alerts: r.counter_vec(
                "peerlab_alerts",
                "Alerts the alerts tool published, by kind",
                &["kind"],
            )?,
            recorder_lag: r.gauge(
                "peerlab_recorder_lag_seconds",
                "How far behind the events' own times the recorder wrote the latest one",
            )?,
            recorder_max_lag: r.gauge(
                "peerlab_recorder_max_lag_seconds",
                "The recorder's largest lag in its latest reporting period",
            )?,
            recorder_recorded: r.counter_vec(
                "peerlab_recorder_messages",
                "Messages the recorder wrote",
                &["component"],
            )?,
            recorder_slow_consumer: r.counter_vec(
                "peerlab_recorder_slow_consumer_events",
                "Times NATS reported the recorder as a slow consumer (messages dropped)",
                &["component"],
            )?,
            publisher_offered: r.counter_vec(
                "peerlab_publisher_offered",
                "Events handed to a publisher",
                &["publisher"],
            )?,
            publisher_sent: r.counter_vec(
                "peerlab_publisher_sent",
                "Events a publisher had confirmed by the server",
                &["publisher"],
            )?,
            publisher_dropped: r.counter_vec(
                "peerlab_publisher_dropped",
                "Events a publisher dropped, by reason",
                &["publisher", "reason"],
            )?,
            publisher_spooled: r.counter_vec(
                "peerlab_publisher_spooled",
                "Events a publisher wrote to its spool on disk (its buffer filled: NATS slow or away)",
                &["publisher"],
            )?,
            publisher_spool_recovered: r.counter_vec(
                "peerlab_publisher_spool_recovered",
                "Events a publisher found in its spool at start-up, left by an earlier run",
                &["publisher"],
            )?,
            publisher_spool_events: r.gauge_int_vec(
                "peerlab_publisher_spool_events",
                "Events waiting in a publisher's spool for NATS",
                &["publisher"],
            )?,
            publisher_spool_bytes: r.gauge_int_vec(
                "peerlab_publisher_spool_bytes",
                "Bytes of a publisher's spool files",
                &["publisher"],
            )?,
            last: HashMap::new(),
            traced: HashMap::new(),
        })
    }

    /// Counts one bus message of `kind` (`netmsg`, ..., `stats`).
    pub fn message(&self, kind: &str) {
        self.messages.with_label_values(&[kind]).inc();
    }

    /// Counts one alert of `kind`.
    pub fn alert(&self, kind: &str) {
        self.alerts.with_label_values(&[kind]).inc();
    }

    /// Counts a message that did not decode.
    pub fn undecodable(&self) {
        self.undecodable.inc();
    }

    /// Folds one counter snapshot of `component` into the families.
    pub fn observe(&mut self, component: &str, counters: &ExtractorCounters) {
        let c = vec![component.to_string()];
        // Totals that went down: the extractor itself restarted, so every one of its totals
        // began again and is added whole.
        let restarted = self
            .last
            .get(&("published", c.clone()))
            .is_some_and(|&previous| counters.published < previous);
        if restarted {
            self.last
                .retain(|(_, labels), _| labels.first().map(String::as_str) != Some(component));
        }
        for (tracepoint, counts) in &counters.probes {
            let labels = vec![component.to_string(), tracepoint.clone()];
            self.add("emitted", &labels, counts.emitted);
            self.add("dropped", &labels, counts.dropped);
        }
        self.add("published", &c, counters.published);
        self.add("publish_dropped", &c, counters.publish_dropped);
        self.add("dropped_in_kernel", &c, counters.dropped_in_kernel);
        self.add("malformed", &c, counters.malformed);
        let rpc_errors: u64 = counters.rpc_errors.values().sum();
        for (kind, total) in [
            ("read", counters.read_errors),
            ("rpc_call", rpc_errors),
            ("rpc_connect", counters.rpc_connect_errors),
            ("ipc_call", counters.ipc_fetch_errors),
            ("ipc_connect", counters.ipc_connect_errors),
        ] {
            self.add(
                "source_errors",
                &[component.to_string(), kind.to_string()],
                total,
            );
        }
        // The counters ensure the family has its series even before the first restart.
        self.restarts.with_label_values(&[component]).inc_by(0);
        let mut reattached = false;
        if counters.traced_pid != 0 {
            let previous = self
                .traced
                .insert(component.to_string(), counters.traced_pid);
            reattached = previous.is_some_and(|pid| pid != counters.traced_pid);
        }
        if restarted || reattached {
            self.restarts.with_label_values(&[component]).inc();
        }
    }

    /// Folds one recorder counter snapshot.
    pub fn observe_recorder(&mut self, counters: &crate::event::counters::RecorderCounters) {
        self.recorder_lag.set(counters.lag_ms as f64 / 1000.0);
        self.recorder_max_lag
            .set(counters.max_lag_ms as f64 / 1000.0);
        let c = vec!["recorder".to_string()];
        if self
            .last
            .get(&("recorded", c.clone()))
            .is_some_and(|&previous| counters.recorded < previous)
        {
            self.last
                .retain(|(_, labels), _| labels.first().map(String::as_str) != Some("recorder"));
        }
        self.add("recorded", &c, counters.recorded);
        self.add("slow_consumer", &c, counters.slow_consumer_events);
    }

    /// Folds one publisher counter snapshot (`component` is `<owner>-publisher`).
    pub fn observe_publisher(&mut self, component: &str, stats: &crate::bus::StatsSnapshot) {
        let c = vec![component.to_string()];
        if self
            .last
            .get(&("offered", c.clone()))
            .is_some_and(|&previous| stats.offered < previous)
        {
            self.last
                .retain(|(_, labels), _| labels.first().map(String::as_str) != Some(component));
        }
        self.add("offered", &c, stats.offered);
        self.add("sent", &c, stats.sent);
        self.add("spooled", &c, stats.spooled);
        self.add("spool_recovered", &c, stats.spool_recovered);
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.publisher_spool_events
            .with_label_values(&[component])
            .set(gauge(stats.spool_events));
        self.publisher_spool_bytes
            .with_label_values(&[component])
            .set(gauge(stats.spool_bytes));
        for (reason, total) in [
            ("buffer_full", stats.dropped_buffer_full),
            ("too_large", stats.dropped_too_large),
            ("unroutable", stats.dropped_unroutable),
            ("at_shutdown", stats.dropped_at_shutdown),
            ("spool", stats.dropped_spool),
        ] {
            self.add(
                "publisher_dropped",
                &[component.to_string(), reason.to_string()],
                total,
            );
        }
    }

    /// Adds the growth of a running total to its counter.
    fn add(&mut self, family: &'static str, labels: &[String], total: u64) {
        let key = (family, labels.to_vec());
        let previous = self.last.insert(key, total).unwrap_or(0);
        let delta = if total >= previous {
            total - previous
        } else {
            total
        };
        let values: Vec<&str> = labels.iter().map(String::as_str).collect();
        let counter = match family {
            "emitted" => &self.tracepoint_emitted,
            "dropped" => &self.tracepoint_dropped,
            "published" => &self.published,
            "publish_dropped" => &self.publish_dropped,
            "dropped_in_kernel" => &self.dropped_in_kernel,
            "malformed" => &self.malformed,
            "recorded" => &self.recorder_recorded,
            "slow_consumer" => &self.recorder_slow_consumer,
            "offered" => &self.publisher_offered,
            "sent" => &self.publisher_sent,
            "publisher_dropped" => &self.publisher_dropped,
            "spooled" => &self.publisher_spooled,
            "spool_recovered" => &self.publisher_spool_recovered,
            _ => &self.source_errors,
        };
        counter.with_label_values(&values).inc_by(delta);
    }
}
