//! The publisher: a bounded, never-blocking outgoing buffer in front of a NATS connection,
//! with an optional bounded spool on disk behind it.
//!
//! Producers (extractors, replay) call [`Publisher::publish_event`] or
//! [`Publisher::publish_raw`], which only enqueue. One forwarding task sends the queue in
//! batches, each confirmed by a round trip through the server that no other client can
//! intercept (`confirm.rs`).
//!
//! With a spool ([`PublisherConfig::spool`]), a queue filling past half its size while a batch
//! waits for NATS makes the forwarding task move the queue to disk ([`super::spool`]); it
//! sends the spool's oldest records before anything in memory once NATS takes them again.
//! Producers never touch the disk.
//!
//! Invariants:
//! - Events of one publisher reach NATS in the order they were published. Events leave the
//!   queue in order and go either into the batch being sent or to the spool's tail, and a
//!   batch is taken from the spool whenever it holds anything, before the queue. So once an
//!   event is spooled, nothing newer overtakes it: the batch in flight is older than the
//!   spool, the spool older than the queue. (Its first spill also copies the batch in flight
//!   to the spool, skipped once that batch is confirmed, so a shutdown can keep it in order.)
//! - A batch is sent again only when the connection was lost while it was unconfirmed, never
//!   because a live server is slow. Spooled records are consumed only once their batch is
//!   confirmed (at least once, across crashes too). The one exception to the order above is
//!   that batch: the NATS client sends what it had buffered when the connection died once it
//!   reconnects, before the re-send, so part of that one batch may arrive behind its own
//!   tail. With a spool, events carry `Nats-Msg-Id`s that stay the same on a re-send, so a
//!   JetStream stream (a honeynode's fleet stream) stores each event once.
//! - While NATS is away the buffer fills, then the spool (when there is one); what fits in
//!   neither is counted as dropped and reported, never lost silently. At close, what NATS
//!   did not take in time stays in the spool for the next start.
//! - Without a spool, the behaviour is exactly the buffer's: full means dropped, counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Client;
pub use async_nats::Subject;
use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::confirm::{deliver, Confirmer};
use super::connect::{connect, Connection, ConnectionMonitor};
use super::overflow::{take_queued, Mirrored, Overflow};
use super::spool::{Position, SpoolConfig};
use super::stats::{log_drops, log_spool};
use super::{BusError, NatsOptions, PublisherStats, StatsSnapshot, SubjectScheme};
use crate::event::{Event, EventKind};

/// Sizes and timings of a publisher.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Most events held while NATS is slow or away.
    pub max_buffered_events: usize,
    /// Most payload bytes held while NATS is slow or away.
    pub max_buffered_bytes: usize,
    /// Most events sent before waiting for the server's confirmation.
    pub max_batch: usize,
    /// How often an unconfirmed batch checks whether the connection was lost meanwhile.
    pub confirm_timeout: Duration,
    /// How often drops are logged (when there are any) and stats are published.
    pub report_period: Duration,
    /// Subject the stats snapshot is published on each period (`None`: not published).
    pub stats_subject: Option<String>,
    /// Where events go when the buffer fills (`None`: they are dropped, counted).
    pub spool: Option<SpoolConfig>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            max_buffered_events: 65_536,
            max_buffered_bytes: 64 << 20,
            // The forwarder sends nothing while a batch waits for its confirmation (a round
            // trip behind everything the server still has to process): at 1,024 that wait
            // held the synthetic emitter's delivered rate to 0.8x of what NATS takes.
            max_batch: 8192,
            confirm_timeout: Duration::from_secs(2),
            report_period: Duration::from_secs(10),
            stats_subject: None,
            spool: None,
        }
    }
}

/// One event on its way out.
pub(super) struct Outgoing {
    pub(super) subject: Subject,
    pub(super) payload: Bytes,
}

/// How the producers tell the forwarding task that the queue should go to the spool: when it
/// is half full, in events or in bytes.
struct SpillSignal {
    notify: Notify,
    events: usize,
    bytes: usize,
}

impl SpillSignal {
    fn due(&self, queued_events: usize, buffered_bytes: usize) -> bool {
        queued_events >= self.events || buffered_bytes >= self.bytes
    }
}

/// How long a close waits for the forwarding task to put what NATS did not take into the
/// spool.
const PERSIST_WAIT: Duration = Duration::from_secs(30);

/// Publishes events to NATS without ever blocking the producer. See the module docs.
pub struct Publisher {
    queue: mpsc::Sender<Outgoing>,
    buffered_bytes: Arc<AtomicUsize>,
    max_buffered_bytes: usize,
    stats: Arc<PublisherStats>,
    subjects: Vec<Subject>,
    scheme: SubjectScheme,
    /// Present with a spool: producers nudge the forwarder to spill a half-full queue.
    spill: Option<Arc<SpillSignal>>,
    /// Fired by [`Publisher::close`]: the forwarder stops taking new events and sends what
    /// the queue (and the spool) holds.
    closing: CancellationToken,
    /// Fired by [`Publisher::close`] when sending took too long: the forwarder puts what is
    /// left into the spool and stops.
    persist: CancellationToken,
    /// Taken by the first [`Publisher::close`] (never touched on the publishing path).
    forwarder: Mutex<Option<JoinHandle<()>>>,
    reporter: Mutex<Option<AbortOnDrop>>,
}

impl Publisher {
    /// Opens the spool, if configured (an unusable spool directory is an error here, before
    /// any wait for NATS), connects (waiting for NATS as `options` says) and starts
    /// forwarding, the spool's leftovers first.
    pub async fn connect(
        options: &NatsOptions,
        scheme: SubjectScheme,
        config: PublisherConfig,
    ) -> Result<Publisher, BusError> {
        let stats = Arc::new(PublisherStats::default());
        let overflow = match &config.spool {
            Some(spool) => Some(Overflow::open(spool.clone(), stats.clone()).await?),
            None => None,
        };
        let connection = connect(options).await?;
        Ok(Publisher::start(
            connection, scheme, config, stats, overflow,
        ))
    }

    fn start(
        connection: Connection,
        scheme: SubjectScheme,
        config: PublisherConfig,
        stats: Arc<PublisherStats>,
        overflow: Option<Overflow>,
    ) -> Publisher {
        let capacity = config.max_buffered_events.max(1);
        let (queue, rx) = mpsc::channel(capacity);
        let buffered_bytes = Arc::new(AtomicUsize::new(0));
        let closing = CancellationToken::new();
        let persist = CancellationToken::new();
        let spill = overflow.as_ref().map(|_| {
            Arc::new(SpillSignal {
                notify: Notify::new(),
                events: capacity.div_ceil(2),
                bytes: config.max_buffered_bytes / 2,
            })
        });
        let forwarder = tokio::spawn(forward(Forwarder {
            closing: closing.clone(),
            persist: persist.clone(),
            client: connection.client.clone(),
            monitor: connection.monitor.clone(),
            rx,
            stats: stats.clone(),
            buffered_bytes: buffered_bytes.clone(),
            config: config.clone(),
            overflow,
            spill: spill.clone(),
        }));
        let reporter = tokio::spawn(report(connection.client, stats.clone(), config.clone()));
        Publisher {
            queue,
            buffered_bytes,
            max_buffered_bytes: config.max_buffered_bytes,
            stats,
            subjects: EventKind::ALL
                .iter()
                .map(|k| Subject::from(scheme.subject(*k)))
                .collect(),
            scheme,
            spill,
            closing,
            persist,
            forwarder: Mutex::new(Some(forwarder)),
            reporter: Mutex::new(Some(AbortOnDrop(reporter))),
        }
    }

    /// Encodes and enqueues an event on its kind's subject. `false` if it was dropped.
    pub fn publish_event(&self, event: &Event) -> bool {
        match EventKind::of(event) {
            Some(kind) => {
                self.publish_encoded(kind, Bytes::from(crate::event::wire::encode(event)))
            }
            None => {
                self.stats.offered.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .dropped_unroutable
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "dropped an event with no content (empty oneof): nothing to route by"
                );
                false
            }
        }
    }

    /// Enqueues an event like [`Publisher::publish_event`], but while the buffer is full it
    /// waits for room (polling every millisecond) instead of dropping, until `give_up` says
    /// so. For blocking threads reading a source that loses nothing by waiting (a file:
    /// the log extractor), never for live sources. `false` if it was dropped (counted).
    pub fn publish_event_patiently(&self, event: &Event, give_up: impl Fn() -> bool) -> bool {
        let Some(kind) = EventKind::of(event) else {
            return self.publish_event(event);
        };
        let mut item = Outgoing {
            subject: self.subject_of(kind),
            payload: Bytes::from(crate::event::wire::encode(event)),
        };
        self.stats.offered.fetch_add(1, Ordering::Relaxed);
        loop {
            match self.try_enqueue(item, true) {
                Ok(()) => return true,
                Err((TrySendError::Full(()), back)) if !give_up() => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((reason, _)) => {
                    self.refused_counter(reason).fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
    }

    fn subject_of(&self, kind: EventKind) -> Subject {
        let index = EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.subjects[index].clone()
    }

    /// Enqueues an already encoded `event.Event` of `kind`. `false` if it was dropped.
    pub fn publish_encoded(&self, kind: EventKind, payload: Bytes) -> bool {
        let subject = self.subject_of(kind);
        self.enqueue(Outgoing { subject, payload })
    }

    /// Enqueues a payload on an explicit subject (replay keeps recorded subjects).
    pub fn publish_raw(&self, subject: &str, payload: Bytes) -> bool {
        self.enqueue(Outgoing {
            subject: Subject::from(subject),
            payload,
        })
    }

    /// Enqueues a payload on an explicit subject, waiting for room instead of dropping: for
    /// sources that can wait (replay), unlike live extractors.
    /// `subject` is an async-nats [`Subject`] (cheap to clone) so a caller publishing many
    /// events on few subjects converts each subject once.
    pub async fn publish_raw_wait(&self, subject: Subject, payload: Bytes) {
        self.stats.offered.fetch_add(1, Ordering::Relaxed);
        let len = payload.len();
        // Wait until the byte budget has room (an event larger than the budget goes alone).
        while self.buffered_bytes.load(Ordering::Acquire) > 0
            && self.buffered_bytes.load(Ordering::Acquire) + len > self.max_buffered_bytes
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.buffered_bytes.fetch_add(len, Ordering::AcqRel);
        let item = Outgoing { subject, payload };
        self.nudge_spill();
        if self.queue.send(item).await.is_err() {
            // The forwarder is gone (publisher closing): count it, never lose it silently.
            self.buffered_bytes.fetch_sub(len, Ordering::AcqRel);
            self.stats
                .dropped_at_shutdown
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn enqueue(&self, item: Outgoing) -> bool {
        self.stats.offered.fetch_add(1, Ordering::Relaxed);
        match self.try_enqueue(item, false) {
            Ok(()) => true,
            Err((reason, _)) => {
                self.refused_counter(reason).fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// One try at queueing `item` within the byte budget; a refused item comes back with
    /// the reason. With `oversized_alone`, an event larger than the whole budget may go when
    /// nothing else is buffered (a caller that waits for room would otherwise wait forever).
    fn try_enqueue(
        &self,
        item: Outgoing,
        oversized_alone: bool,
    ) -> Result<(), (TrySendError<()>, Outgoing)> {
        let len = item.payload.len();
        let before = self.buffered_bytes.fetch_add(len, Ordering::AcqRel);
        let over_budget =
            before + len > self.max_buffered_bytes && !(oversized_alone && before == 0);
        let queued = if over_budget {
            Err((TrySendError::Full(()), item))
        } else {
            self.queue.try_send(item).map_err(|e| match e {
                TrySendError::Full(back) => (TrySendError::Full(()), back),
                TrySendError::Closed(back) => (TrySendError::Closed(()), back),
            })
        };
        if queued.is_err() {
            self.buffered_bytes.fetch_sub(len, Ordering::AcqRel);
        }
        self.nudge_spill();
        queued
    }

    /// The drop counter for a refusal.
    fn refused_counter(&self, reason: TrySendError<()>) -> &AtomicU64 {
        match reason {
            TrySendError::Full(()) => &self.stats.dropped_buffer_full,
            TrySendError::Closed(()) => &self.stats.dropped_at_shutdown,
        }
    }

    /// With a spool, wakes the forwarder when the queue is half full: it moves the queue to
    /// disk if a batch is stuck. Never blocks (a notification, no IO).
    fn nudge_spill(&self) {
        if let Some(spill) = &self.spill {
            let queued = self.queue.max_capacity() - self.queue.capacity();
            if spill.due(queued, self.buffered_bytes.load(Ordering::Acquire)) {
                spill.notify.notify_one();
            }
        }
    }

    /// The subject scheme events are published under (counters derive their subject from it).
    pub fn scheme(&self) -> &SubjectScheme {
        &self.scheme
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
    }

    /// Sends what is buffered (waiting at most `timeout`), then stops. With a spool, what
    /// NATS did not take in time is kept there for the next start; otherwise (or if even
    /// that fails) it is counted in `dropped_at_shutdown`, and so is anything offered after
    /// the close. Returns the final counters.
    ///
    /// Takes `&self`, so the owner of a publisher shared with extractors (`Arc<Publisher>`)
    /// closes it without taking it back first; a second close only reads the counters.
    pub async fn close(&self, timeout: Duration) -> StatsSnapshot {
        self.closing.cancel();
        let forwarder = self.forwarder.lock().ok().and_then(|mut f| f.take());
        let Some(mut forwarder) = forwarder else {
            return self.stats.snapshot();
        };
        let stats = &self.stats;
        let abort = forwarder.abort_handle();
        let mut finished = tokio::time::timeout(timeout, &mut forwarder).await.is_ok();
        if !finished && self.spill.is_some() {
            self.persist.cancel();
            finished = tokio::time::timeout(PERSIST_WAIT, &mut forwarder)
                .await
                .is_ok();
        }
        if !finished {
            abort.abort();
            let unsent = stats.snapshot().in_memory();
            stats
                .dropped_at_shutdown
                .fetch_add(unsent, Ordering::Relaxed);
            tracing::warn!(
                unsent,
                "NATS did not take all buffered events before shutdown; counted as dropped"
            );
        }
        let reporter = self.reporter.lock().ok().and_then(|mut r| r.take());
        drop(reporter);
        let s = stats.snapshot();
        log_drops(&s, &StatsSnapshot::default(), "publisher closed");
        if s.spool_events > 0 {
            tracing::info!(
                events = s.spool_events,
                bytes = s.spool_bytes,
                "NATS did not take everything before shutdown: the rest stays in the spool \
                 and is sent first at the next start"
            );
        }
        s
    }
}

/// Stops a background task when its owner goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the forwarding task owns.
struct Forwarder {
    closing: CancellationToken,
    persist: CancellationToken,
    client: Client,
    monitor: Arc<ConnectionMonitor>,
    rx: mpsc::Receiver<Outgoing>,
    stats: Arc<PublisherStats>,
    buffered_bytes: Arc<AtomicUsize>,
    config: PublisherConfig,
    overflow: Option<Overflow>,
    spill: Option<Arc<SpillSignal>>,
}

/// Where the batch being sent came from.
enum Source {
    /// The queue. `mirror` is set once a spill copied the batch to the spool (the copy is
    /// consumed when the batch is confirmed).
    Memory { mirror: Option<Mirrored> },
    /// The spool, consumed through `end` when the batch is confirmed.
    Spool { end: Position },
}

/// The forwarding task: batches out of the spool, else the queue, each confirmed or re-sent;
/// meanwhile a filling queue goes to the spool.
async fn forward(mut f: Forwarder) {
    // A publisher with a spool feeds a honeynode's fleet stream: ids let it drop re-sends.
    let mut confirmer =
        Confirmer::new(&f.client, f.monitor.clone(), f.config.spool.is_some()).await;
    let mut batch = Vec::with_capacity(f.config.max_batch);
    loop {
        if f.closing.is_cancelled() && !f.rx.is_closed() {
            f.rx.close();
        }
        // The spool's records are older than anything in the queue: they go first.
        let mut from_spool = None;
        if let Some(overflow) = f.overflow.as_mut().filter(|o| o.has_unread()) {
            if let Some((records, end)) = overflow.peek(f.config.max_batch).await {
                if records.is_empty() {
                    // Only damaged records (counted): consume them and look again.
                    overflow.commit(end).await;
                    continue;
                }
                batch = records;
                from_spool = Some(Source::Spool { end });
            }
        }
        let mut source = match from_spool {
            Some(source) => source,
            None => {
                let received = tokio::select! {
                    _ = f.persist.cancelled() => {
                        persist_rest(&mut f, &[], Source::Memory { mirror: None }).await;
                        return;
                    }
                    // Closing: refuse new events, then send what the queue already holds.
                    _ = f.closing.cancelled(), if !f.rx.is_closed() => {
                        f.rx.close();
                        continue;
                    }
                    received = f.rx.recv_many(&mut batch, f.config.max_batch) => received,
                };
                if received == 0 {
                    break;
                }
                Source::Memory { mirror: None }
            }
        };
        let delivered = {
            let delivery = deliver(&f.client, &mut confirmer, &batch, &f.stats, &f.config);
            tokio::pin!(delivery);
            loop {
                tokio::select! {
                    delivered = &mut delivery => break Some(delivered),
                    _ = spill_wanted(&f.spill) => {
                        let due = f.spill.as_ref().is_some_and(|s| {
                            s.due(f.rx.len(), f.buffered_bytes.load(Ordering::Acquire))
                        });
                        // A nudge from a moment the queue was full may be stale: spill only
                        // a queue that still is.
                        if due {
                            if let Some(overflow) = f.overflow.as_mut() {
                                let items = take_queued(&mut f.rx, &f.buffered_bytes);
                                spill(overflow, &batch, &mut source, items).await;
                            }
                        }
                    }
                    _ = f.persist.cancelled() => break None,
                }
            }
        };
        let Some(delivered) = delivered else {
            persist_rest(&mut f, &batch, source).await;
            return;
        };
        f.stats.sent.fetch_add(delivered, Ordering::Relaxed);
        let consumed = match source {
            Source::Memory { mirror } => {
                f.buffered_bytes
                    .fetch_sub(payload_bytes(&batch), Ordering::AcqRel);
                mirror.map(|m| m.end)
            }
            Source::Spool { end } => Some(end),
        };
        if let (Some(end), Some(overflow)) = (consumed, f.overflow.as_mut()) {
            overflow.commit(end).await;
        }
        batch.clear();
    }
}

fn payload_bytes(batch: &[Outgoing]) -> usize {
    batch.iter().map(|o| o.payload.len()).sum()
}

/// Waits for a producer's nudge (never, without a spool).
async fn spill_wanted(signal: &Option<Arc<SpillSignal>>) {
    match signal {
        Some(signal) => signal.notify.notified().await,
        None => std::future::pending().await,
    }
}

/// Appends `items` (taken from the queue) to the spool. If the batch in flight came from the
/// queue and was not copied yet, a copy goes first: the spool was empty when it was taken, so
/// the copy keeps its place ahead of the newer items.
async fn spill(
    overflow: &mut Overflow,
    batch: &[Outgoing],
    source: &mut Source,
    items: Vec<Outgoing>,
) -> usize {
    let mirror = match source {
        Source::Memory { mirror: None } => batch
            .iter()
            .map(|o| Outgoing {
                subject: o.subject.clone(),
                payload: o.payload.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let copying = !mirror.is_empty();
    let mirrored = overflow.spill(mirror, items).await;
    let mut kept = 0;
    if let (true, Source::Memory { mirror }) = (copying, source) {
        kept = mirrored.as_ref().map_or(0, |m| m.stored);
        *mirror = mirrored;
    }
    kept
}

/// At a close that took too long: the queue goes to the spool behind what is there (the
/// batch in flight first, when it came from the queue and is not there yet), then the
/// forwarder stops. What the spool cannot take is counted as dropped.
async fn persist_rest(f: &mut Forwarder, batch: &[Outgoing], mut source: Source) {
    // Nothing may arrive after this: a later event would be dropped uncounted.
    f.rx.close();
    let items = take_queued(&mut f.rx, &f.buffered_bytes);
    let in_flight_kept = match (&source, f.overflow.as_mut()) {
        (Source::Spool { .. }, _) => batch.len(),
        (Source::Memory { mirror: Some(m) }, _) => m.stored,
        (Source::Memory { mirror: None }, None) => 0,
        (Source::Memory { mirror: None }, Some(_)) if batch.is_empty() => 0,
        (Source::Memory { mirror: None }, Some(overflow)) => {
            spill(overflow, batch, &mut source, Vec::new()).await
        }
    };
    if let Source::Memory { .. } = source {
        f.buffered_bytes
            .fetch_sub(payload_bytes(batch), Ordering::AcqRel);
    }
    let mut lost = (batch.len() - in_flight_kept) as u64;
    match f.overflow.as_mut() {
        Some(overflow) if !items.is_empty() => {
            let _ = overflow.spill(Vec::new(), items).await;
        }
        _ => lost += items.len() as u64,
    }
    f.stats
        .dropped_at_shutdown
        .fetch_add(lost, Ordering::Relaxed);
}

/// Logs drops each period (only when there are new ones) and publishes the stats snapshot.
async fn report(client: Client, stats: Arc<PublisherStats>, config: PublisherConfig) {
    let mut previous = StatsSnapshot::default();
    let mut ticker = tokio::time::interval(config.report_period);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = stats.snapshot();
        log_drops(&now, &previous, "in the last period");
        log_spool(&now);
        if let Some(subject) = &config.stats_subject {
            if let Ok(json) = serde_json::to_vec(&now) {
                let _ = client.publish(subject.clone(), Bytes::from(json)).await;
            }
        }
        previous = now;
    }
}
