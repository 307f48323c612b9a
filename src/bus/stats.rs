//! A publisher's counters: live atomics ([`PublisherStats`]) and the point-in-time copy
//! ([`StatsSnapshot`]) that is logged, returned by `close` and published as JSON on the
//! publisher's stats subject, where the metrics tool and `inspect` read it.
//!
//! Invariants:
//! - every event handed to a publisher ends up in exactly one of `sent`, one `dropped_*`
//!   counter, the in-memory buffer or the spool (`spool_events`); events a previous run left
//!   in the spool enter through `spool_recovered` instead of `offered`;
//! - the JSON only grows: fields added later default to zero, so snapshots of older peerlab
//!   versions still decode.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

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
    /// Events still buffered when the publisher was closed and NATS did not take them in time
    /// (nor the spool, when there is one).
    pub dropped_at_shutdown: AtomicU64,
    /// Events the spool could not keep: it was full (its bound), a write failed, or a spooled
    /// record was found damaged when read back.
    pub dropped_spool: AtomicU64,
    /// Events sent a second time because their first batch was not confirmed.
    pub resent: AtomicU64,
    /// Events written to the spool (a running total).
    pub spooled: AtomicU64,
    /// Events an earlier run left in the spool, found at start-up (sent before new ones).
    pub spool_recovered: AtomicU64,
    /// Events in the spool now, waiting for NATS (a gauge).
    pub spool_events: AtomicU64,
    /// Bytes of the spool's files now (a gauge).
    pub spool_bytes: AtomicU64,
}

/// A point-in-time copy of [`PublisherStats`] (also the JSON published on
/// [`PublisherConfig::stats_subject`](super::PublisherConfig::stats_subject)).
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
    /// Dropped: the spool was full, unwritable, or a spooled record was damaged.
    #[serde(default)]
    pub dropped_spool: u64,
    /// Re-sent after an unconfirmed batch.
    pub resent: u64,
    /// Written to the spool.
    #[serde(default)]
    pub spooled: u64,
    /// Found in the spool at start-up, left by an earlier run.
    #[serde(default)]
    pub spool_recovered: u64,
    /// In the spool now.
    #[serde(default)]
    pub spool_events: u64,
    /// Bytes of the spool's files now.
    #[serde(default)]
    pub spool_bytes: u64,
}

impl StatsSnapshot {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_buffer_full
            + self.dropped_too_large
            + self.dropped_unroutable
            + self.dropped_at_shutdown
            + self.dropped_spool
    }

    /// Events neither confirmed nor dropped, nor waiting in the spool: what is still in
    /// memory (the buffer and the batch in flight).
    pub fn in_memory(&self) -> u64 {
        (self.offered + self.spool_recovered)
            .saturating_sub(self.sent + self.dropped() + self.spool_events)
    }
}

impl PublisherStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            offered: load(&self.offered),
            sent: load(&self.sent),
            dropped_buffer_full: load(&self.dropped_buffer_full),
            dropped_too_large: load(&self.dropped_too_large),
            dropped_unroutable: load(&self.dropped_unroutable),
            dropped_at_shutdown: load(&self.dropped_at_shutdown),
            dropped_spool: load(&self.dropped_spool),
            resent: load(&self.resent),
            spooled: load(&self.spooled),
            spool_recovered: load(&self.spool_recovered),
            spool_events: load(&self.spool_events),
            spool_bytes: load(&self.spool_bytes),
        }
    }
}

/// Logs the drops between two snapshots, when there are any.
pub(super) fn log_drops(now: &StatsSnapshot, before: &StatsSnapshot, when: &str) {
    let new = now.dropped() - before.dropped();
    if new > 0 {
        tracing::warn!(
            dropped = new,
            total_dropped = now.dropped(),
            buffer_full = now.dropped_buffer_full,
            too_large = now.dropped_too_large,
            unroutable = now.dropped_unroutable,
            at_shutdown = now.dropped_at_shutdown,
            spool = now.dropped_spool,
            sent = now.sent,
            "events dropped {when} (the outgoing buffer fills while NATS is unreachable or slow)"
        );
    }
}

/// Logs what waits in the spool, when anything does.
pub(super) fn log_spool(now: &StatsSnapshot) {
    if now.spool_events > 0 {
        tracing::info!(
            events = now.spool_events,
            bytes = now.spool_bytes,
            spooled = now.spooled,
            "events wait in the spool until NATS takes them (oldest first)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_of_older_versions_without_spool_fields_still_decode() {
        let old = r#"{"offered":5,"sent":3,"dropped_buffer_full":1,"dropped_too_large":0,
            "dropped_unroutable":0,"dropped_at_shutdown":1,"resent":2}"#;
        let s: StatsSnapshot = serde_json::from_str(old).expect("decodes");
        assert_eq!((s.offered, s.sent, s.dropped(), s.spooled), (5, 3, 2, 0));
        // Anything else is still refused.
        assert!(serde_json::from_str::<StatsSnapshot>(r#"{"records":1}"#).is_err());
    }

    #[test]
    fn in_memory_is_what_is_neither_sent_dropped_nor_spooled() {
        let s = StatsSnapshot {
            offered: 100,
            spool_recovered: 10,
            sent: 60,
            dropped_spool: 5,
            spool_events: 30,
            ..StatsSnapshot::default()
        };
        assert_eq!(s.dropped(), 5);
        assert_eq!(s.in_memory(), 15);
    }
}
