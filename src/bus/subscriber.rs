//! The subscriber: every event of a subject scheme (or chosen subjects), in arrival order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    inner: futures::stream::SelectAll<async_nats::Subscriber>,
    scheme: SubjectScheme,
    monitor: Arc<ConnectionMonitor>,
    stats: Arc<SubscriberStats>,
    // Keeps the connection alive as long as the subscriber.
    _client: async_nats::Client,
}

impl Subscriber {
    /// Subscribes to every event subject of `scheme` (one wildcard), or to the patterns in
    /// `subjects`. Messages of one subscription keep their order; messages of different
    /// patterns are interleaved as they arrive.
    pub async fn connect(
        options: &NatsOptions,
        scheme: SubjectScheme,
        subjects: &[String],
    ) -> Result<Subscriber, BusError> {
        let connection = connect(options).await?;
        let patterns = if subjects.is_empty() {
            vec![scheme.wildcard()]
        } else {
            subjects.to_vec()
        };
        let mut inner = futures::stream::SelectAll::new();
        for pattern in &patterns {
            let subscription = connection
                .client
                .subscribe(pattern.clone())
                .await
                .map_err(|e| BusError::Subscribe {
                    subject: pattern.clone(),
                    reason: e.to_string(),
                })?;
            inner.push(subscription);
        }
        // Make sure the server has the subscriptions before the caller starts publishing:
        // whatever is published after this returns reaches this subscriber.
        super::connect::server_round_trip(&connection.client, Duration::from_secs(10))
            .await
            .map_err(|reason| BusError::Subscribe {
                subject: patterns.join(", "),
                reason,
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

    /// Publishes `payload` on `subject` over this subscriber's connection: for a consumer's
    /// own counter snapshots, not for events (those go through a [`super::Publisher`]).
    pub async fn publish_status(
        &self,
        subject: String,
        payload: bytes::Bytes,
    ) -> Result<(), BusError> {
        self._client
            .publish(subject.clone(), payload)
            .await
            .map_err(|e| BusError::Publish {
                subject,
                reason: e.to_string(),
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
