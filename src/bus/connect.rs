//! Opening a NATS connection: wait for a server that is not up yet, then stay connected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, Event};
use tokio::sync::watch;

use super::{BusError, NatsOptions};

/// A live connection plus what its event callback observed.
#[derive(Clone)]
pub struct Connection {
    /// The async-nats client; it reconnects by itself.
    pub client: Client,
    /// Connection events seen so far.
    pub monitor: Arc<ConnectionMonitor>,
}

/// What the connection's event callback saw: state changes and slow-consumer notices.
#[derive(Debug)]
pub struct ConnectionMonitor {
    connected: watch::Sender<bool>,
    /// Times the server told us a subscription could not keep up (messages were dropped).
    pub slow_consumer_events: AtomicU64,
    /// Times the connection was lost.
    pub disconnects: AtomicU64,
}

impl ConnectionMonitor {
    fn new() -> Arc<Self> {
        Arc::new(ConnectionMonitor {
            connected: watch::channel(true).0,
            slow_consumer_events: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
        })
    }

    /// A receiver that tracks whether the connection is up.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    fn on_event(&self, event: Event) {
        match event {
            Event::Connected => {
                if self.disconnects.load(Ordering::Relaxed) > 0 {
                    tracing::info!("NATS connection re-established");
                }
                self.connected.send_replace(true);
            }
            Event::Disconnected => {
                self.disconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "NATS connection lost; reconnecting (events are buffered meanwhile)"
                );
                self.connected.send_replace(false);
            }
            Event::SlowConsumer(sid) => {
                self.slow_consumer_events.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    sid,
                    "NATS slow consumer: messages for this subscription were dropped"
                );
            }
            Event::Closed => {
                self.connected.send_replace(false);
            }
            other => tracing::debug!(event = %other, "NATS connection event"),
        }
    }
}

/// Connects, retrying until a server answers or `options.wait` runs out.
///
/// While waiting it logs one line per `options.log_period`, so a missing server is visible
/// rather than a silent hang. Once connected, the client reconnects forever.
pub async fn connect(options: &NatsOptions) -> Result<Connection, BusError> {
    let addrs = options.server_addrs()?;
    let shown = crate::secret::redact_url_list(&options.addresses.join(","));
    let started = Instant::now();
    let mut last_log: Option<Instant> = None;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let monitor = ConnectionMonitor::new();
        let callback_monitor = monitor.clone();
        let connect_options = options
            .connect_options()
            .await?
            .event_callback(move |event| {
                let monitor = callback_monitor.clone();
                async move { monitor.on_event(event) }
            });
        match connect_options.connect(addrs.clone()).await {
            Ok(client) => {
                if attempts > 1 {
                    tracing::info!(address = %shown, attempts, "connected to NATS");
                } else {
                    tracing::debug!(address = %shown, "connected to NATS");
                }
                return Ok(Connection { client, monitor });
            }
            Err(error) => {
                let waited = started.elapsed();
                if let Some(limit) = options.wait {
                    if waited >= limit {
                        return Err(BusError::Unreachable {
                            addresses: shown,
                            waited_secs: limit.as_secs().max(1),
                            last_error: error.to_string(),
                        });
                    }
                }
                if last_log.is_none_or(|t| t.elapsed() >= options.log_period) {
                    last_log = Some(Instant::now());
                    tracing::warn!(
                        "NATS at {shown} not reachable yet ({error}); retrying every {} ms \
                         (waited {}s so far{})",
                        options.retry_interval.as_millis(),
                        waited.as_secs(),
                        match options.wait {
                            Some(limit) => format!(", giving up after {}s", limit.as_secs()),
                            None => ", will keep trying".to_string(),
                        }
                    );
                }
                tokio::time::sleep(retry_pause(options, started)).await;
            }
        }
    }
}

/// The pause before the next start-up attempt, never past the configured wait.
fn retry_pause(options: &NatsOptions, started: Instant) -> Duration {
    match options.wait {
        Some(limit) => options
            .retry_interval
            .min(limit.saturating_sub(started.elapsed()))
            .max(Duration::from_millis(1)),
        None => options.retry_interval,
    }
}

/// Waits until the server has processed everything this client sent so far (subscriptions
/// included), by sending a message to a fresh inbox of its own and receiving it back: the
/// server handles one connection's operations in order. async-nats's `flush` only writes
/// the socket; this proves the server read it. Bounded by `timeout`.
pub async fn server_round_trip(client: &Client, timeout: Duration) -> Result<(), String> {
    use futures::StreamExt as _;
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| e.to_string())?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let result = match tokio::time::timeout(timeout, echo.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the connection closed".to_string()),
        Err(_) => Err(format!(
            "no round trip through the server within {timeout:?}"
        )),
    };
    let _ = echo.unsubscribe().await;
    result
}
