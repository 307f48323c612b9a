//! Creating and registering families in one call, so each family is one line where it is
//! declared.
//!
//! Names are given whole (`peerobserver_...`, `peerlab_...`). Counters keep the name as
//! given: the `prometheus` crate's text format (version 0.0.4, what peer-observer serves)
//! does not append `_total`, which the dashboards rely on. A registration error means two
//! families share a name, a bug that the unit tests catch.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// Registers families into one registry, remembering their names (the registry's own
/// exposition leaves out labelled families that have no series yet).
pub struct Register<'a> {
    registry: &'a Registry,
    names: std::cell::RefCell<Vec<String>>,
}

impl<'a> Register<'a> {
    /// Registers into `registry`.
    pub fn new(registry: &'a Registry) -> Register<'a> {
        Register {
            registry,
            names: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Every family registered so far, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.names.borrow().clone()
    }

    fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> prometheus::Result<M> {
        self.registry.register(Box::new(metric.clone()))?;
        self.names
            .borrow_mut()
            .extend(metric.desc().iter().map(|d| d.fq_name.clone()));
        Ok(metric)
    }

    /// An integer counter.
    pub fn counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.add(IntCounter::with_opts(Opts::new(name, help))?)
    }

    /// An integer counter with labels (registration order as given).
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    /// An integer gauge.
    pub fn gauge_int(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.add(IntGauge::with_opts(Opts::new(name, help))?)
    }

    /// An integer gauge with labels.
    pub fn gauge_int_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A float gauge.
    pub fn gauge(&self, name: &str, help: &str) -> prometheus::Result<Gauge> {
        self.add(Gauge::with_opts(Opts::new(name, help))?)
    }

    /// A float gauge with labels.
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A histogram with labels and the given upper bounds (`+Inf` is added).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> prometheus::Result<HistogramVec> {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets),
            labels,
        )?)
    }
}

/// Clamps a `u64` into an integer gauge's `i64`.
pub fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Bounds the series of families whose label values grow with peers, addresses or user
/// agents: past `max` distinct label sets, updates with a new set are dropped and counted in
/// the shared `capped` family (label `family`).
pub struct SeriesCap {
    seen: std::collections::HashMap<&'static str, std::collections::HashSet<Vec<String>>>,
    capped: IntCounterVec,
    max: usize,
}

impl SeriesCap {
    /// A cap of `max` series per family, counting refusals in `capped`.
    pub fn new(capped: IntCounterVec, max: usize) -> SeriesCap {
        SeriesCap {
            seen: std::collections::HashMap::new(),
            capped,
            max,
        }
    }

    /// Whether `family` may update the series `labels`.
    pub fn admit(&mut self, family: &'static str, labels: &[&str]) -> bool {
        let seen = self.seen.entry(family).or_default();
        if seen.len() < self.max {
            seen.insert(labels.iter().map(|l| l.to_string()).collect());
            return true;
        }
        if seen.contains(&labels.iter().map(|l| l.to_string()).collect::<Vec<_>>()) {
            return true;
        }
        self.capped.with_label_values(&[family]).inc();
        false
    }
}
