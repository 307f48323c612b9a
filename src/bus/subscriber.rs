//! The subscriber: every event of a subject scheme (or chosen subjects), in arrival order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;

use super::connect::{connect, ConnectionMonitor};
use super::{BusError, NatsOptions, SubjectScheme};
use crate::event::EventKind;

/// One message taken off the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// The subject it arrived on.
    pub subject: String,
    /// The node token of a prefixed subject.
    pub node: Option<String>,
    /// The event kind named by the subject (`None` for subjects outside the scheme).
    pub kind: Option<EventKind>,
    /// The encoded `event.Event`.
    pub payload: Bytes,
}

/// Counters of a subscriber.
#[derive(Debug, Default)]
pub struct SubscriberStats {
    /// Messages received.
    pub received: AtomicU64,
}

/// Receives events from NATS; reconnects (and resubscribes) by itself.
pub struct Subscriber {
    inner: async_nats::Subscriber,
    scheme: SubjectScheme,
    monitor: Arc<ConnectionMonitor>,
    stats: Arc<SubscriberStats>,
    // Keeps the connection alive as long as the subscriber.
    _client: async_nats::Client,
}

impl Subscriber {
    /// Subscribes to every event subject of `scheme`, or to `subjects` when given.
    pub async fn connect(
        options: &NatsOptions,
        scheme: SubjectScheme,
        subjects: &[String],
    ) -> Result<Subscriber, BusError> {
        let connection = connect(options).await?;
        let pattern = match subjects {
            [] => scheme.wildcard(),
            [one] => one.clone(),
            // Several subjects: one wildcard subscription filtered locally keeps a single,
            // ordered stream.
            _ => scheme.wildcard(),
        };
        let inner = connection
            .client
            .subscribe(pattern.clone())
            .await
            .map_err(|e| BusError::Subscribe {
                subject: pattern.clone(),
                reason: e.to_string(),
            })?;
        // Make sure the server has the subscription before the caller starts publishing.
        connection
            .client
            .flush()
            .await
            .map_err(|e| BusError::Subscribe {
                subject: pattern,
                reason: e.to_string(),
            })?;
        Ok(Subscriber {
            inner,
            scheme,
            monitor: connection.monitor,
            stats: Arc::new(SubscriberStats::default()),
            _client: connection.client,
        })
    }

    /// The next message, `None` when the connection is closed for good.
    pub async fn next(&mut self) -> Option<BusMessage> {
        let message = self.inner.next().await?;
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let subject = message.subject.to_string();
        let (node, kind) = match self.scheme.parse(&subject) {
            Some((node, kind)) => (node, Some(kind)),
            None => (None, None),
        };
        Some(BusMessage {
            subject,
            node,
            kind,
            payload: message.payload,
        })
    }

    /// Counters of this subscriber.
    pub fn stats(&self) -> Arc<SubscriberStats> {
        self.stats.clone()
    }

    /// Times the server reported this connection as a slow consumer (it dropped messages).
    pub fn slow_consumer_events(&self) -> u64 {
        self.monitor.slow_consumer_events.load(Ordering::Relaxed)
    }
}
