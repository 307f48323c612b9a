//! A publisher's overflow to disk: the forwarding task's handle on its [`Spool`], which runs
//! every file operation on tokio's blocking pool and keeps the publisher's spool counters.
//!
//! Invariants:
//! - No file IO runs in a producer or on a runtime worker: only the forwarding task calls
//!   this, and each call moves the spool to the blocking pool and back.
//! - Every event handed to [`Overflow::spill`] is counted once, in `spooled` or in
//!   `dropped_spool`; a copy of the batch in flight (`mirror`) is counted in `spooled` only,
//!   since memory still holds it.
//! - If a blocking call fails (it panicked), the spool is given up for this run: what would
//!   have gone there is counted as dropped, and its files stay for the next start.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::publisher::Outgoing;
use super::spool::{Position, Spool, SpoolConfig, SpoolError};
use super::{PublisherStats, Subject};

/// The spool as the forwarding task uses it.
pub(super) struct Overflow {
    /// `None` only while a blocking call holds it, or after one failed.
    spool: Option<Spool>,
    stats: Arc<PublisherStats>,
    dir: PathBuf,
    max_bytes: u64,
    /// Whether events went to the spool since it was last empty (one log line per episode).
    active: bool,
}

/// Where the copy of the batch in flight ended up.
pub(super) struct Mirrored {
    /// Commit through here once the batch is confirmed, so it is not sent twice.
    pub end: Position,
    /// How many of its events the spool took.
    pub stored: usize,
}

impl Overflow {
    /// Opens the spool (off the runtime) and reports what an earlier run left in it.
    pub async fn open(
        config: SpoolConfig,
        stats: Arc<PublisherStats>,
    ) -> Result<Overflow, SpoolError> {
        let dir = config.dir.clone();
        let max_bytes = config.max_bytes;
        let opened = tokio::task::spawn_blocking(move || Spool::open(&config))
            .await
            .map_err(|e| SpoolError::Dir {
                dir: dir.clone(),
                reason: format!("opening it failed: {e}"),
            })?;
        let (spool, recovery) = opened?;
        for damage in &recovery.damaged {
            tracing::warn!(
                file = %damage.path.display(),
                offset = damage.offset,
                bytes = damage.bytes,
                reason = %damage.reason,
                "spool segment damaged (a torn tail from a crash, or a damaged disk); \
                 the events after this point of it cannot be read and are skipped"
            );
        }
        if recovery.records > 0 {
            tracing::info!(
                events = recovery.records,
                bytes = recovery.bytes,
                dir = %dir.display(),
                "events an earlier run left in the spool are sent first"
            );
        }
        stats
            .spool_recovered
            .fetch_add(recovery.records, Ordering::Relaxed);
        let overflow = Overflow {
            active: recovery.records > 0,
            spool: Some(spool),
            stats,
            dir,
            max_bytes,
        };
        overflow.update_gauges();
        Ok(overflow)
    }

    /// Whether the spool holds events not yet consumed.
    pub fn has_unread(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Runs `op` on the spool in the blocking pool. `None` when the spool is gone.
    async fn run<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Spool) -> T + Send + 'static,
    ) -> Option<T> {
        let mut spool = self.spool.take()?;
        let done = tokio::task::spawn_blocking(move || {
            let result = op(&mut spool);
            (spool, result)
        })
        .await;
        match done {
            Ok((spool, result)) => {
                self.spool = Some(spool);
                self.update_gauges();
                Some(result)
            }
            Err(e) => {
                tracing::error!(error = %e, dir = %self.dir.display(),
                    "the spool failed; events that overflow the buffer are dropped (counted) \
                     from now on, and the spool's files are read at the next start");
                None
            }
        }
    }

    fn update_gauges(&self) {
        if let Some(spool) = &self.spool {
            self.stats
                .spool_events
                .store(spool.len(), Ordering::Relaxed);
            self.stats
                .spool_bytes
                .store(spool.bytes(), Ordering::Relaxed);
        }
    }

    /// Appends a copy of `mirror` (the batch in flight, which memory still holds), then
    /// `items`. Returns where the copy ends, `None` when the spool is gone.
    pub async fn spill(&mut self, mirror: Vec<Outgoing>, items: Vec<Outgoing>) -> Option<Mirrored> {
        if items.is_empty() && mirror.is_empty() {
            return None;
        }
        if !self.active {
            self.active = true;
            tracing::warn!(
                dir = %self.dir.display(),
                max_bytes = self.max_bytes,
                "NATS is slow or away: events overflow to the spool, to be sent in order once \
                 NATS takes them"
            );
        }
        let count = items.len() as u64;
        let done = self
            .run(move |spool| {
                let mirrored = spool.push_batch(pairs(&mirror));
                let pushed = spool.push_batch(pairs(&items));
                (mirrored, pushed)
            })
            .await;
        let Some((mirrored, pushed)) = done else {
            self.stats.dropped_spool.fetch_add(count, Ordering::Relaxed);
            return None;
        };
        for error in [&mirrored.error, &pushed.error].into_iter().flatten() {
            tracing::error!(%error, "writing to the spool failed; the events of that write are dropped (counted)");
        }
        self.stats
            .spooled
            .fetch_add((mirrored.stored + pushed.stored) as u64, Ordering::Relaxed);
        self.stats
            .dropped_spool
            .fetch_add(pushed.not_stored as u64, Ordering::Relaxed);
        Some(Mirrored {
            end: mirrored.end,
            stored: mirrored.stored,
        })
    }

    /// The oldest spooled events, up to `max`, not yet consumed, and where they end.
    pub async fn peek(&mut self, max: usize) -> Option<(Vec<Outgoing>, Position)> {
        let peeked = self.run(move |spool| spool.peek(max)).await?;
        if peeked.lost > 0 {
            self.stats
                .dropped_spool
                .fetch_add(peeked.lost, Ordering::Relaxed);
        }
        let batch = peeked
            .records
            .into_iter()
            .map(|r| Outgoing {
                subject: Subject::from(r.subject),
                payload: r.payload,
            })
            .collect();
        Some((batch, peeked.end))
    }

    /// Consumes what was delivered, through `end`.
    pub async fn commit(&mut self, end: Position) {
        if self.run(move |spool| spool.commit(end)).await.is_some()
            && self.active
            && !self.has_unread()
        {
            self.active = false;
            tracing::info!("the spool is drained: events go straight to NATS again");
        }
    }
}

/// A batch as the spool takes it.
fn pairs(batch: &[Outgoing]) -> impl Iterator<Item = (&str, &[u8])> {
    batch
        .iter()
        .map(|o| (o.subject.as_str(), o.payload.as_ref()))
}

/// Takes everything the queue holds now (at most its capacity), releasing its bytes from the
/// in-memory budget.
pub(super) fn take_queued(
    rx: &mut mpsc::Receiver<Outgoing>,
    buffered_bytes: &std::sync::atomic::AtomicUsize,
) -> Vec<Outgoing> {
    let mut items = Vec::new();
    let mut bytes = 0;
    while items.len() < rx.max_capacity() {
        match rx.try_recv() {
            Ok(item) => {
                bytes += item.payload.len();
                items.push(item);
            }
            Err(_) => break,
        }
    }
    buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
    items
}
