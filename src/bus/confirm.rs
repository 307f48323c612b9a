//! Sending one batch until the server confirms it: the publisher's own round trip.
//!
//! After a batch, a numbered marker goes to a subject only this connection subscribes to on
//! purpose (`_peerlab.confirm.<inbox id>`). The server handles a connection's messages in
//! order, so the marker coming back proves the server processed everything sent before it.
//! Other clients cannot intercept it: a subscriber to `>` receives a copy, but the server
//! still delivers ours (unlike a request, which any subscriber may answer or swallow).
//!
//! Invariants:
//! - a batch is sent again only when the connection was lost while it was unconfirmed (the
//!   client's connection count changed); a slow confirmation on a live connection is waited
//!   for, never re-sent, so a busy server causes no duplicates;
//! - with message ids on (a publisher with a spool), every event carries a `Nats-Msg-Id`
//!   header, `<instance>-<n>`, the same on each re-send of a batch, so a JetStream stream
//!   capturing the subject (a honeynode's fleet stream) stores a re-sent copy once;
//! - nothing is sent while the connection is down: the batch waits, so an outage shows up in
//!   the publisher's buffer (and spool), not as events piling up unseen inside the client.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::PublishErrorKind;
use async_nats::{Client, Subject, Subscriber as NatsSubscription};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::watch;

use super::connect::ConnectionMonitor;
use super::publisher::{Outgoing, PublisherConfig};
use super::PublisherStats;

/// The publisher's own round trip through the server: numbered markers on a subject only
/// this connection subscribes to on purpose (see the module docs).
pub(super) struct Confirmer {
    client: Client,
    subject: Subject,
    /// `None` until the subscription could be made (NATS away at start): then the next
    /// confirmation makes it first.
    replies: Option<NatsSubscription>,
    connected: watch::Receiver<bool>,
    next_marker: u64,
    ids: Option<MessageIds>,
}

/// `Nats-Msg-Id`s for one publisher's events: a random instance token and the count of
/// events sent before, so a batch sent again carries the ids it had the first time.
struct MessageIds {
    instance: String,
    next: u64,
}

impl MessageIds {
    fn new() -> MessageIds {
        use std::io::Read as _;
        let mut bytes = [0u8; 8];
        let random = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .is_ok();
        if !random {
            // Unique enough to tell this publisher from another within a dedup window.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            bytes = (now ^ u64::from(std::process::id()) << 32).to_be_bytes();
        }
        MessageIds {
            instance: hex::encode(bytes),
            next: 0,
        }
    }

    fn header(&self, index: usize) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}-{}", self.instance, self.next + index as u64).as_str(),
        );
        headers
    }
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
    /// A confirmer for `client`; `message_ids` turns on the `Nats-Msg-Id` headers (see the
    /// module docs).
    pub(super) async fn new(
        client: &Client,
        monitor: Arc<ConnectionMonitor>,
        message_ids: bool,
    ) -> Confirmer {
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
            ids: message_ids.then(MessageIds::new),
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
            let monitor_gone = matches!(
                tokio::time::timeout(step, self.connected.wait_for(|up| *up)).await,
                Ok(Err(_))
            );
            // The monitor is gone (its runtime is shutting down), so `wait_for` returns at
            // once: without a real wait this loop would spin and keep its worker thread from
            // ever shutting down (seen as a test whose runtime never finished dropping).
            if monitor_gone {
                tokio::time::sleep(step).await;
            }
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

/// How long a batch whose publish failed waits before it is sent again.
const RESEND_PAUSE: Duration = Duration::from_millis(10);

/// Sends one batch until the server confirms it; returns how many events it took.
pub(super) async fn deliver(
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
        // Hold the batch while disconnected, so the outage shows up as a filling buffer (spilled
        // to the spool, or counted drops) instead of events piling up unseen inside the client.
        confirmer.wait_connected(config.confirm_timeout).await;
        let epoch = confirmer.epoch();
        let mut too_large = 0u64;
        let mut failed = false;
        for (index, item) in batch.iter().enumerate() {
            let sent = match &confirmer.ids {
                Some(ids) => {
                    client
                        .publish_with_headers(
                            item.subject.clone(),
                            ids.header(index),
                            item.payload.clone(),
                        )
                        .await
                }
                None => {
                    client
                        .publish(item.subject.clone(), item.payload.clone())
                        .await
                }
            };
            match sent {
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
            // A real wait before the re-send: a client that is gone fails every publish at
            // once, and a loop that never waits would hold its worker thread for good.
            tokio::time::sleep(RESEND_PAUSE).await;
            continue;
        }
        match confirmer
            .confirm(client, epoch, config.confirm_timeout)
            .await
        {
            Confirmation::Confirmed => {
                if let Some(ids) = confirmer.ids.as_mut() {
                    ids.next += batch.len() as u64;
                }
            }
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
