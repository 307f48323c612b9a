//! The publisher: a bounded, never-blocking outgoing buffer in front of a NATS connection.
//!
//! Producers (extractors, replay) call [`Publisher::publish_event`] or
//! [`Publisher::publish_raw`], which only enqueue. One forwarding task sends the queue in
//! batches and confirms each batch with a server round trip: after the batch it publishes a
//! numbered marker to a subject of its own that it subscribes to itself. The server handles a
//! connection's messages in order, so the marker coming back proves the server processed
//! everything sent before it. Other clients cannot intercept that round trip: a subscriber to
//! `>` receives a copy of the marker, but the server still delivers ours (unlike a request,
//! which any subscriber may answer or swallow).
//!
//! Invariants:
//! - A batch is sent again only when the connection was lost while it was unconfirmed (what
//!   a reconnect may have lost); a slow confirmation on a live connection is waited for, never
//!   re-sent, so a busy server causes no duplicates.
//! - While NATS is away the buffer fills; what does not fit is counted as dropped and
//!   reported, never lost silently.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::client::PublishErrorKind;
pub use async_nats::Subject;
use async_nats::{Client, Subscriber as NatsSubscription};
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::connect::{connect, Connection, ConnectionMonitor};
use super::{BusError, NatsOptions, SubjectScheme};
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
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            max_buffered_events: 65_536,
            max_buffered_bytes: 64 << 20,
            max_batch: 1024,
            confirm_timeout: Duration::from_secs(2),
            report_period: Duration::from_secs(10),
            stats_subject: None,
        }
    }
}

/// Counters of a publisher, readable while it runs.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Events handed to the publisher.
    pub offered: AtomicU64,
    /// Events the server confirmed.
    pub sent: AtomicU64,
    /// Events dropped because the outgoing buffer was full.
    pub dropped_buffer_full: AtomicU64,
    /// Events dropped because they exceed the server's max_payload.
    pub dropped_too_large: AtomicU64,
    /// Events dropped because they have no kind to route by (empty oneof).
    pub dropped_unroutable: AtomicU64,
    /// Events still buffered when the publisher was closed and NATS did not take them in time.
    pub dropped_at_shutdown: AtomicU64,
    /// Events sent a second time because their first batch was not confirmed.
    pub resent: AtomicU64,
}

/// A point-in-time copy of [`PublisherStats`] (also the JSON published on
/// [`PublisherConfig::stats_subject`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Events handed to the publisher.
    pub offered: u64,
    /// Events the server confirmed.
    pub sent: u64,
    /// Dropped: buffer full.
    pub dropped_buffer_full: u64,
    /// Dropped: larger than max_payload.
    pub dropped_too_large: u64,
    /// Dropped: nothing to route by.
    pub dropped_unroutable: u64,
    /// Dropped: still buffered at shutdown.
    pub dropped_at_shutdown: u64,
    /// Re-sent after an unconfirmed batch.
    pub resent: u64,
}

impl StatsSnapshot {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_buffer_full
            + self.dropped_too_large
            + self.dropped_unroutable
            + self.dropped_at_shutdown
    }
}

impl PublisherStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            offered: self.offered.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped_buffer_full: self.dropped_buffer_full.load(Ordering::Relaxed),
            dropped_too_large: self.dropped_too_large.load(Ordering::Relaxed),
            dropped_unroutable: self.dropped_unroutable.load(Ordering::Relaxed),
            dropped_at_shutdown: self.dropped_at_shutdown.load(Ordering::Relaxed),
            resent: self.resent.load(Ordering::Relaxed),
        }
    }
}

struct Outgoing {
    subject: Subject,
    payload: Bytes,
}

/// Publishes events to NATS without ever blocking the producer. See the module docs.
pub struct Publisher {
    queue: mpsc::Sender<Outgoing>,
    buffered_bytes: Arc<AtomicUsize>,
    max_buffered_bytes: usize,
    stats: Arc<PublisherStats>,
    subjects: Vec<Subject>,
    scheme: SubjectScheme,
    /// Fired by [`Publisher::close`]: the forwarder stops taking new events and sends what
    /// the queue holds.
    closing: CancellationToken,
    /// Taken by the first [`Publisher::close`] (never touched on the publishing path).
    forwarder: Mutex<Option<JoinHandle<()>>>,
    reporter: Mutex<Option<AbortOnDrop>>,
}

impl Publisher {
    /// Connects (waiting for NATS as `options` says) and starts forwarding.
    pub async fn connect(
        options: &NatsOptions,
        scheme: SubjectScheme,
        config: PublisherConfig,
    ) -> Result<Publisher, BusError> {
        let connection = connect(options).await?;
        Ok(Publisher::start(connection, scheme, config))
    }

    fn start(connection: Connection, scheme: SubjectScheme, config: PublisherConfig) -> Publisher {
        let (queue, rx) = mpsc::channel(config.max_buffered_events.max(1));
        let stats = Arc::new(PublisherStats::default());
        let buffered_bytes = Arc::new(AtomicUsize::new(0));
        let closing = CancellationToken::new();
        let forwarder = tokio::spawn(forward(
            closing.clone(),
            connection.client.clone(),
            connection.monitor.clone(),
            rx,
            stats.clone(),
            buffered_bytes.clone(),
            config.clone(),
        ));
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
            closing,
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

    /// Enqueues an already encoded `event.Event` of `kind`. `false` if it was dropped.
    pub fn publish_encoded(&self, kind: EventKind, payload: Bytes) -> bool {
        let index = EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let subject = self.subjects[index].clone();
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
        let len = item.payload.len();
        let before = self.buffered_bytes.fetch_add(len, Ordering::AcqRel);
        let refused = if before + len > self.max_buffered_bytes {
            Some(&self.stats.dropped_buffer_full)
        } else {
            match self.queue.try_send(item) {
                Ok(()) => None,
                Err(TrySendError::Full(_)) => Some(&self.stats.dropped_buffer_full),
                Err(TrySendError::Closed(_)) => Some(&self.stats.dropped_at_shutdown),
            }
        };
        if let Some(counter) = refused {
            self.buffered_bytes.fetch_sub(len, Ordering::AcqRel);
            counter.fetch_add(1, Ordering::Relaxed);
        }
        refused.is_none()
    }

    /// The subject scheme events are published under (counters derive their subject from it).
    pub fn scheme(&self) -> &SubjectScheme {
        &self.scheme
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
    }

    /// Sends what is buffered (waiting at most `timeout`), then stops. Whatever NATS did not
    /// take in time is counted in `dropped_at_shutdown`, and so is anything offered after
    /// the close. Returns the final counters.
    ///
    /// Takes `&self`, so the owner of a publisher shared with extractors (`Arc<Publisher>`)
    /// closes it without taking it back first; a second close only reads the counters.
    pub async fn close(&self, timeout: Duration) -> StatsSnapshot {
        self.closing.cancel();
        let forwarder = self.forwarder.lock().ok().and_then(|mut f| f.take());
        let Some(forwarder) = forwarder else {
            return self.stats.snapshot();
        };
        let stats = &self.stats;
        let abort = forwarder.abort_handle();
        if tokio::time::timeout(timeout, forwarder).await.is_err() {
            abort.abort();
            let s = stats.snapshot();
            let unsent = s.offered.saturating_sub(s.sent + s.dropped());
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

/// The forwarding task: batches out of the queue, each confirmed or re-sent.
async fn forward(
    closing: CancellationToken,
    client: Client,
    monitor: Arc<ConnectionMonitor>,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<PublisherStats>,
    buffered_bytes: Arc<AtomicUsize>,
    config: PublisherConfig,
) {
    let mut confirmer = Confirmer::new(&client, monitor).await;
    let mut batch = Vec::with_capacity(config.max_batch);
    loop {
        let received = tokio::select! {
            // Closing: refuse new events, then send what the queue already holds.
            _ = closing.cancelled(), if !rx.is_closed() => {
                rx.close();
                continue;
            }
            received = rx.recv_many(&mut batch, config.max_batch) => received,
        };
        if received == 0 {
            break;
        }
        let bytes: usize = batch.iter().map(|o| o.payload.len()).sum();
        let delivered = deliver(&client, &mut confirmer, &batch, &stats, &config).await;
        stats.sent.fetch_add(delivered, Ordering::Relaxed);
        buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
        batch.clear();
    }
}

/// The publisher's own round trip through the server: numbered markers on a subject only
/// this connection subscribes to on purpose (see the module docs).
struct Confirmer {
    client: Client,
    subject: Subject,
    /// `None` until the subscription could be made (NATS away at start): then the next
    /// confirmation makes it first.
    replies: Option<NatsSubscription>,
    connected: watch::Receiver<bool>,
    next_marker: u64,
}

/// How long a confirmation may take on a live connection before a warning says why it may
/// never come.
const CONFIRM_WARN_AFTER: Duration = Duration::from_secs(10);

/// How a confirmation ended.
enum Confirmation {
    /// The server processed everything sent before the marker.
    Confirmed,
    /// The connection was lost while waiting: what was sent may be lost, send it again.
    ConnectionLost,
}

impl Confirmer {
    async fn new(client: &Client, monitor: Arc<ConnectionMonitor>) -> Confirmer {
        let subject = Subject::from(format!(
            "_peerlab.confirm.{}",
            client.new_inbox().trim_start_matches("_INBOX.")
        ));
        let replies = client.subscribe(subject.clone()).await.ok();
        Confirmer {
            client: client.clone(),
            subject,
            replies,
            connected: monitor.connected(),
            next_marker: 0,
        }
    }

    /// Connections made so far (the client's own count, updated before anything is sent on
    /// a new connection): a change means unconfirmed sends may have been lost with the old
    /// connection.
    fn epoch(&self) -> u64 {
        self.client.statistics().connects.load(Ordering::Acquire)
    }

    /// Waits (in bounded steps, re-checking) until the connection is up.
    async fn wait_connected(&mut self, step: Duration) {
        while !*self.connected.borrow() {
            let _ = tokio::time::timeout(step, self.connected.wait_for(|up| *up)).await;
        }
    }

    /// Sends a marker and waits for it to come back, or for the connection to drop.
    async fn confirm(&mut self, client: &Client, epoch: u64, step: Duration) -> Confirmation {
        if self.replies.is_none() {
            match client.subscribe(self.subject.clone()).await {
                Ok(subscription) => self.replies = Some(subscription),
                Err(_) => return Confirmation::ConnectionLost,
            }
        }
        self.next_marker += 1;
        let marker = self.next_marker;
        let payload = Bytes::from(marker.to_be_bytes().to_vec());
        if client.publish(self.subject.clone(), payload).await.is_err() {
            return Confirmation::ConnectionLost;
        }
        let mut waited = Duration::ZERO;
        let mut warned = false;
        loop {
            let Some(replies) = self.replies.as_mut() else {
                return Confirmation::ConnectionLost;
            };
            match tokio::time::timeout(step, replies.next()).await {
                Ok(Some(message)) => {
                    // Markers of earlier attempts may still arrive: only ours counts. Ours
                    // proves the server has everything sent before it on this connection;
                    // if the client reconnected meanwhile, part of the batch may have gone
                    // down with the old connection (the rest and the marker went out on the
                    // new one), so it is sent again.
                    if message.payload.as_ref() == marker.to_be_bytes() {
                        return if self.epoch() == epoch {
                            Confirmation::Confirmed
                        } else {
                            Confirmation::ConnectionLost
                        };
                    }
                }
                Ok(None) => {
                    // The client closed the subscription (connection closed for good).
                    self.replies = None;
                    return Confirmation::ConnectionLost;
                }
                Err(_) if self.epoch() != epoch => return Confirmation::ConnectionLost,
                Err(_) => {
                    waited += step;
                    // A live connection that never returns the marker: most likely this user
                    // may not publish or subscribe to the confirmation subject.
                    if waited >= CONFIRM_WARN_AFTER && !warned {
                        warned = true;
                        tracing::warn!(
                            subject = %self.subject,
                            "no confirmation from NATS for {}s on a live connection; events wait \
                             (and later ones are dropped, counted) until it comes: the NATS user \
                             needs permission to publish and subscribe to _peerlab.confirm.>",
                            waited.as_secs()
                        );
                    }
                    tracing::debug!(
                        "batch confirmation slow on a live connection; still waiting (not re-sent)"
                    );
                }
            }
        }
    }
}

/// Sends one batch until the server confirms it; returns how many events it took.
async fn deliver(
    client: &Client,
    confirmer: &mut Confirmer,
    batch: &[Outgoing],
    stats: &PublisherStats,
    config: &PublisherConfig,
) -> u64 {
    let mut first_try = true;
    loop {
        if !first_try {
            stats
                .resent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        first_try = false;
        // Hold the batch while disconnected, so the outage shows up as a full buffer (counted
        // drops) instead of events piling up unseen inside the client.
        confirmer.wait_connected(config.confirm_timeout).await;
        let epoch = confirmer.epoch();
        let mut too_large = 0u64;
        let mut failed = false;
        for item in batch {
            match client
                .publish(item.subject.clone(), item.payload.clone())
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    too_large += 1;
                    tracing::warn!(subject = %item.subject, bytes = item.payload.len(),
                        "event larger than the NATS server's max_payload: dropped (raise max_payload)");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "publish failed; batch will be re-sent");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            continue;
        }
        match confirmer
            .confirm(client, epoch, config.confirm_timeout)
            .await
        {
            Confirmation::Confirmed => {}
            Confirmation::ConnectionLost => {
                tracing::debug!("connection lost before the batch was confirmed; re-sending");
                continue;
            }
        }
        stats
            .dropped_too_large
            .fetch_add(too_large, Ordering::Relaxed);
        return batch.len() as u64 - too_large;
    }
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
        if let Some(subject) = &config.stats_subject {
            if let Ok(json) = serde_json::to_vec(&now) {
                let _ = client.publish(subject.clone(), Bytes::from(json)).await;
            }
        }
        previous = now;
    }
}

fn log_drops(now: &StatsSnapshot, before: &StatsSnapshot, when: &str) {
    let new = now.dropped() - before.dropped();
    if new > 0 {
        tracing::warn!(
            dropped = new,
            total_dropped = now.dropped(),
            buffer_full = now.dropped_buffer_full,
            too_large = now.dropped_too_large,
            unroutable = now.dropped_unroutable,
            at_shutdown = now.dropped_at_shutdown,
            sent = now.sent,
            "events dropped {when} (the outgoing buffer fills while NATS is unreachable or slow)"
        );
    }
}
