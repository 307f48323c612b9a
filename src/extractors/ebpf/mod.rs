//! The eBPF extractor: Bitcoin Core's USDT tracepoints -> `event.Event`s on the bus.
//!
//! Data path: BPF programs (`bpf/peerlab.bpf.c`) copy each tracepoint's arguments into one of
//! three ring buffers (`tracer`); this module drains them when woken (batched: the kernel
//! side wakes us only once [`DEFAULT_WAKEUP_BYTES`] are pending) and on a 50 ms timer,
//! encodes each record straight from the ring into one arena (`encode`, no allocation per
//! event), puts the events of all rings back in the order they were taken (records carry a
//! monotonic timestamp) and hands them to the [`Publisher`] on their preformatted subjects.
//! One task does all of it; the command line runs it on a single-threaded runtime. The
//! programs read a peer's address and connection type once per process; later messages of
//! that peer name it through the extractor's peer table (`peers`).
//!
//! Invariants:
//! - nothing is lost silently: the BPF side counts per probe what it emitted and what it
//!   dropped (ring full); we log drops each period and expose every counter in
//!   [`ExtractorStats`]; malformed records are counted too (a message of a peer the table
//!   cannot name is one: never published with a made-up address);
//! - the attachment is to the binary, filtered to one process id in a BPF map, so a bitcoind
//!   restart only needs the new pid: we watch the process and switch within 200 ms.

mod convert;
mod encode;
mod peers;
mod records;
mod tracer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

pub use convert::{conn_type, to_event};
pub use encode::{Encoded, RecordEncoder};
pub use records::{ProbeId, Record, RecordError};
pub use tracer::{ProbeCounter, RingSizes, Tracer};

use super::{publish_counters, Extractor};
use crate::bus::Publisher;
use crate::event::counters::{ExtractorCounters, ProbeCounts};
use crate::node::{pid_from_file, process_alive, processes_of};
use crate::shutdown::Shutdown;

/// What can go wrong running the eBPF extractor.
#[derive(Debug, thiserror::Error)]
pub enum ExtractorError {
    /// Probe notes or attachment.
    #[error(transparent)]
    Usdt(#[from] crate::usdt::UsdtError),
    /// Loading the BPF object or using its maps.
    #[error("eBPF: {0}")]
    Load(String),
    /// Which bitcoind to trace is unclear.
    #[error("{0}")]
    Target(String),
    /// Registering a ring buffer with the runtime.
    #[error("ring buffer: {0}")]
    Io(#[from] std::io::Error),
}

/// Which bitcoind process to trace.
#[derive(Debug, Clone)]
pub enum Target {
    /// This pid (after it exits: the single process of the binary, as with `Auto`).
    Pid(u32),
    /// The pid in this file (re-read after a restart).
    PidFile(PathBuf),
    /// The single running process of the binary.
    Auto,
}

/// Tracepoint groups to enable.
#[derive(Debug, Clone, Copy)]
pub struct ProbeGroups {
    /// `net:*` (messages and connections).
    pub net: bool,
    /// `mempool:*`.
    pub mempool: bool,
    /// `validation:block_connected`.
    pub validation: bool,
    /// `utxocache:*` (high volume; published with peerlab's wire-format extension, arm 100 of
    /// `ebpf_extractor.ebpf`, on subject `utxocache`).
    pub utxocache: bool,
}

impl Default for ProbeGroups {
    fn default() -> Self {
        ProbeGroups {
            net: true,
            mempool: true,
            validation: true,
            utxocache: false,
        }
    }
}

impl ProbeGroups {
    /// The probes of the enabled groups.
    pub fn probes(&self) -> Vec<ProbeId> {
        ProbeId::ALL
            .into_iter()
            .filter(
                |p| match p.tracepoint().split_once(':').map(|(provider, _)| provider) {
                    Some("net") => self.net,
                    Some("mempool") => self.mempool,
                    Some("validation") => self.validation,
                    Some("utxocache") => self.utxocache,
                    _ => false,
                },
            )
            .collect()
    }
}

/// How to run the extractor.
#[derive(Debug, Clone)]
pub struct EbpfConfig {
    /// The bitcoind binary to attach to.
    pub bitcoind: PathBuf,
    /// Which of its processes to trace.
    pub target: Target,
    /// Enabled tracepoint groups.
    pub groups: ProbeGroups,
    /// Exactly these probes instead of the groups (e.g. a benchmark's single probe).
    pub only: Option<Vec<ProbeId>>,
    /// Ring-buffer sizes.
    pub rings: RingSizes,
    /// Pending bytes that wake the reader.
    pub wakeup_bytes: u64,
    /// Drain the rings at least this often.
    pub drain_interval: Duration,
    /// How often the traced process is checked (restart detection).
    pub process_check_interval: Duration,
    /// How often counters are read and drops logged.
    pub report_period: Duration,
}

impl EbpfConfig {
    /// Defaults for tracing `bitcoind`.
    pub fn new(bitcoind: impl Into<PathBuf>, target: Target) -> EbpfConfig {
        EbpfConfig {
            bitcoind: bitcoind.into(),
            target,
            groups: ProbeGroups::default(),
            only: None,
            rings: RingSizes::default(),
            wakeup_bytes: DEFAULT_WAKEUP_BYTES,
            drain_interval: Duration::from_millis(50),
            process_check_interval: Duration::from_millis(200),
            report_period: Duration::from_secs(10),
        }
    }
}

/// Pending ring bytes that wake the reader by default. Each wake-up costs a drain, a batch
/// and its confirmation round trip whatever the batch's size; at a flood's pace (100k events
/// a second) waking every 64 KiB cost the extractor 0.25 µs more per event than every
/// 512 KiB. The worst-case delay stays the drain timer's (50 ms): a rate that takes longer
/// than that to fill this many bytes is drained by the timer anyway.
pub const DEFAULT_WAKEUP_BYTES: u64 = 512 << 10;

/// Live counters of a running extractor.
#[derive(Debug, Default)]
pub struct ExtractorStats {
    /// Records read from the rings.
    pub records: AtomicU64,
    /// Records that could not be parsed.
    pub malformed: AtomicU64,
    /// Records with no wire-format message (utxocache).
    pub unpublished: AtomicU64,
    /// Events handed to the publisher.
    pub published: AtomicU64,
    /// Events the publisher refused (its buffer was full).
    pub publish_dropped: AtomicU64,
    /// Per probe: records the BPF side emitted (as of the last counter read).
    pub probe_emitted: [AtomicU64; 16],
    /// Per probe: records the BPF side dropped (as of the last counter read).
    pub probe_dropped: [AtomicU64; 16],
    /// The pid being traced (0 while waiting for bitcoind).
    pub traced_pid: AtomicU32,
    /// Times the traced process changed after start (restarts followed).
    pub retargets: AtomicU64,
}

impl ExtractorStats {
    /// All records dropped in BPF so far.
    pub fn dropped_in_kernel(&self) -> u64 {
        self.probe_dropped
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// A running extractor; stop it with [`Extractor::stop`].
pub struct EbpfExtractor {
    stats: Arc<ExtractorStats>,
    /// A child of the shutdown it was started with: `stop` fires only this one.
    shutdown: Shutdown,
    task: JoinHandle<Result<(), ExtractorError>>,
}

impl Extractor for EbpfExtractor {
    type Config = EbpfConfig;
    type Error = ExtractorError;
    const COMPONENT: &'static str = "ebpf-extractor";

    /// Loads and attaches (errors surface here), then runs in the background.
    fn start(
        config: EbpfConfig,
        publisher: Arc<Publisher>,
        shutdown: Shutdown,
    ) -> Result<EbpfExtractor, ExtractorError> {
        let probes = config
            .only
            .clone()
            .unwrap_or_else(|| config.groups.probes());
        let tracer = Tracer::attach(&config.bitcoind, &probes, config.rings, config.wakeup_bytes)?;
        let attached: Vec<String> = tracer
            .sites
            .iter()
            .map(|(p, n)| format!("{}x{n}", p.tracepoint()))
            .collect();
        tracing::info!(binary = %config.bitcoind.display(), probes = %attached.join(" "), "attached to tracepoints");
        let stats = Arc::new(ExtractorStats::default());
        let shutdown = shutdown.child_token();
        let task = tokio::spawn(run(
            tracer,
            config,
            publisher,
            stats.clone(),
            shutdown.clone(),
        ));
        Ok(EbpfExtractor {
            stats,
            shutdown,
            task,
        })
    }

    fn counters(&self) -> ExtractorCounters {
        counters(&self.stats)
    }

    /// Drains what is left, detaches, and returns the final counters.
    async fn stop(self) -> Result<ExtractorCounters, ExtractorError> {
        self.shutdown.cancel();
        match self.task.await {
            Ok(result) => result?,
            Err(e) => return Err(ExtractorError::Load(format!("extractor task failed: {e}"))),
        }
        Ok(counters(&self.stats))
    }
}

impl EbpfExtractor {
    /// Live counters, including the pid being traced (for waiting until a restarted node
    /// is traced again).
    pub fn stats(&self) -> Arc<ExtractorStats> {
        self.stats.clone()
    }
}

async fn run(
    mut tracer: Tracer,
    config: EbpfConfig,
    publisher: Arc<Publisher>,
    stats: Arc<ExtractorStats>,
    shutdown: Shutdown,
) -> Result<(), ExtractorError> {
    tracer.set_target(None)?;
    let mut rings = Vec::new();
    for ring in std::mem::take(&mut tracer.rings) {
        // SAFETY: the RingBuf owns its fd and is moved into the AsyncFd, which deregisters it
        // before dropping it; nothing else closes that fd.
        rings.push(unsafe { AsyncFd::register(ring) }.map_err(|e| ExtractorError::Io(e.into()))?);
    }
    let [mut events, mut messages, mut big] =
        match <[AsyncFd<RingBuf<MapData>>; 3]>::try_from(rings) {
            Ok(rings) => rings,
            Err(_) => return Err(ExtractorError::Load("expected three ring buffers".into())),
        };
    let mut watcher = ProcessWatcher::new(config.target.clone(), config.bitcoind.clone());
    watcher.check(&mut tracer, &stats)?;

    let mut drain = tokio::time::interval(config.drain_interval);
    let mut check = tokio::time::interval(config.process_check_interval);
    let mut report = tokio::time::interval(config.report_period);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = vec![ProbeCounter::default(); 16];
    let mut encoder = RecordEncoder::new();
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            guard = events.readable_mut() => guard?.clear_ready(),
            guard = messages.readable_mut() => guard?.clear_ready(),
            guard = big.readable_mut() => guard?.clear_ready(),
            _ = drain.tick() => {}
            _ = check.tick() => watcher.check(&mut tracer, &stats)?,
            _ = report.tick() => {
                report_counters(&tracer, &stats, &mut reported)?;
                publish_counters(&publisher, EbpfExtractor::COMPONENT, &counters(&stats));
            }
        }
        drain_rings(
            [events.get_mut(), messages.get_mut(), big.get_mut()],
            &mut encoder,
            &mut batch,
            &stats,
        );
        publish(&mut batch, &publisher, &stats);
        if encoder.take_peer_reset() {
            tracer.forget_peers()?;
        }
    }
    drain_rings(
        [events.get_mut(), messages.get_mut(), big.get_mut()],
        &mut encoder,
        &mut batch,
        &stats,
    );
    publish(&mut batch, &publisher, &stats);
    report_counters(&tracer, &stats, &mut reported)?;
    Ok(())
}

/// Events encoded between two reads of the wall clock (`Event.timestamp` has millisecond
/// resolution; a drain of this many records takes well under one).
const CLOCK_READ_EVERY: u64 = 1024;

/// Encodes every pending record of every ring into `batch`, ordered by when it was taken.
/// Counters are updated once per drain, not per record.
fn drain_rings(
    rings: [&mut RingBuf<MapData>; 3],
    encoder: &mut RecordEncoder,
    batch: &mut Vec<Encoded>,
    stats: &ExtractorStats,
) {
    let (mut records, mut malformed, mut unpublished) = (0u64, 0u64, 0u64);
    let mut timestamp = crate::event::now_millis();
    // A peer's first record (with its address) may sit in another ring than a later record
    // of the same peer read before it: those wait until every ring was read.
    let mut deferred = Vec::new();
    for ring in rings {
        while let Some(item) = ring.next() {
            records += 1;
            if records % CLOCK_READ_EVERY == 0 {
                timestamp = crate::event::now_millis();
            }
            match encoder.encode(&item, timestamp) {
                Ok(Some(event)) => batch.push(event),
                Ok(None) => unpublished += 1,
                Err(RecordError::UnknownPeer(_)) => deferred.push(item.to_vec()),
                Err(e) => {
                    malformed += 1;
                    tracing::warn!(error = %e, "malformed ring-buffer record (counted)");
                }
            }
        }
    }
    for item in deferred {
        match encoder.encode(&item, timestamp) {
            Ok(Some(event)) => batch.push(event),
            Ok(None) => unpublished += 1,
            Err(e) => {
                malformed += 1;
                tracing::warn!(error = %e, "malformed ring-buffer record (counted)");
            }
        }
    }
    // Stable: records of one ring with equal times keep their ring order.
    batch.sort_by_key(|event| event.ktime_ns);
    stats.records.fetch_add(records, Ordering::Relaxed);
    stats.malformed.fetch_add(malformed, Ordering::Relaxed);
    stats.unpublished.fetch_add(unpublished, Ordering::Relaxed);
}

fn publish(batch: &mut Vec<Encoded>, publisher: &Publisher, stats: &ExtractorStats) {
    let published = batch.len() as u64;
    let mut dropped = 0;
    for event in batch.drain(..) {
        if !publisher.publish_encoded(event.kind, event.payload) {
            dropped += 1;
        }
    }
    stats.published.fetch_add(published, Ordering::Relaxed);
    stats.publish_dropped.fetch_add(dropped, Ordering::Relaxed);
}

/// The counters as the typed snapshot other components read.
pub fn counters(stats: &ExtractorStats) -> ExtractorCounters {
    ExtractorCounters {
        traced_pid: stats.traced_pid.load(Ordering::Relaxed),
        records: stats.records.load(Ordering::Relaxed),
        malformed: stats.malformed.load(Ordering::Relaxed),
        published: stats.published.load(Ordering::Relaxed),
        unpublished: stats.unpublished.load(Ordering::Relaxed),
        publish_dropped: stats.publish_dropped.load(Ordering::Relaxed),
        dropped_in_kernel: stats.dropped_in_kernel(),
        probes: ProbeId::ALL
            .iter()
            .map(|p| {
                let i = *p as usize;
                let counts = ProbeCounts {
                    emitted: stats.probe_emitted[i].load(Ordering::Relaxed),
                    dropped: stats.probe_dropped[i].load(Ordering::Relaxed),
                };
                (p.tracepoint().to_string(), counts)
            })
            .collect(),
        // The log and RPC extractors' counters stay empty here.
        ..ExtractorCounters::default()
    }
}

/// Copies the BPF counters into `stats` and logs probes that dropped since the last report.
fn report_counters(
    tracer: &Tracer,
    stats: &ExtractorStats,
    last: &mut [ProbeCounter],
) -> Result<(), ExtractorError> {
    for (probe, counter) in tracer.counters()? {
        let i = probe as usize;
        stats.probe_emitted[i].store(counter.emitted, Ordering::Relaxed);
        stats.probe_dropped[i].store(counter.dropped, Ordering::Relaxed);
        let new_drops = counter.dropped.saturating_sub(last[i].dropped);
        if new_drops > 0 {
            tracing::warn!(
                tracepoint = probe.tracepoint(),
                dropped = new_drops,
                total_dropped = counter.dropped,
                emitted = counter.emitted,
                "tracepoint records dropped in the kernel (ring buffer full); consider larger rings"
            );
        }
        last[i] = counter;
    }
    Ok(())
}

/// Follows the traced bitcoind across restarts.
struct ProcessWatcher {
    target: Target,
    binary: PathBuf,
    current: Option<u32>,
    started: bool,
    last_wait_log: Option<Instant>,
}

impl ProcessWatcher {
    fn new(target: Target, binary: PathBuf) -> ProcessWatcher {
        ProcessWatcher {
            target,
            binary,
            current: None,
            started: false,
            last_wait_log: None,
        }
    }

    fn check(&mut self, tracer: &mut Tracer, stats: &ExtractorStats) -> Result<(), ExtractorError> {
        if let Some(pid) = self.current {
            if process_alive(pid) {
                return Ok(());
            }
            tracing::warn!(pid, "traced bitcoind exited; waiting for it to come back");
            tracer.set_target(None)?;
            stats.traced_pid.store(0, Ordering::Relaxed);
            self.current = None;
        }
        match self.resolve() {
            Ok(Some(pid)) => {
                tracer.set_target(Some(pid))?;
                stats.traced_pid.store(pid, Ordering::Relaxed);
                if self.started {
                    stats.retargets.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(pid, "bitcoind is back: tracing the new process");
                } else {
                    tracing::info!(pid, "tracing bitcoind");
                }
                self.started = true;
                self.current = Some(pid);
            }
            Ok(None) => self.log_waiting("no running bitcoind of this binary yet"),
            Err(reason) => self.log_waiting(&reason),
        }
        Ok(())
    }

    fn resolve(&self) -> Result<Option<u32>, String> {
        match &self.target {
            Target::Pid(pid) if !self.started => {
                match crate::node::pid_mismatch(*pid, &self.binary) {
                    None => Ok(Some(*pid)),
                    Some(reason) => Err(reason),
                }
            }
            Target::PidFile(file) => {
                let Some(pid) = pid_from_file(file) else {
                    return Err(if file.exists() {
                        format!("pid file {} holds no pid", file.display())
                    } else {
                        format!("pid file {} does not exist (yet)", file.display())
                    });
                };
                if !process_alive(pid) {
                    return Err(format!(
                        "pid file {} names pid {pid}, which is not running",
                        file.display()
                    ));
                }
                match crate::node::pid_mismatch(pid, &self.binary) {
                    None => Ok(Some(pid)),
                    Some(reason) => Err(format!("pid file {}: {reason}", file.display())),
                }
            }
            _ => {
                let pids = processes_of(&self.binary);
                match pids.as_slice() {
                    [] => Ok(None),
                    [pid] => Ok(Some(*pid)),
                    many => Err(format!(
                        "several processes run {} (pids {many:?}); choose one with --pid or --pid-file",
                        self.binary.display()
                    )),
                }
            }
        }
    }

    fn log_waiting(&mut self, reason: &str) {
        if self
            .last_wait_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            self.last_wait_log = Some(Instant::now());
            tracing::warn!(binary = %self.binary.display(), "waiting for bitcoind: {reason}");
        }
    }
}
