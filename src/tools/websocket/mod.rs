//! The websocket tool: peer-observer's live event feed (tools.md §1) and peerlab's own live
//! pages, on one address.
//!
//! A websocket upgrade on any path is a feed client: it receives nothing until it sends a
//! subscription frame ([`subscription`]), then every event of the subscribed kinds as the
//! JSON upstream's pages read ([`json`]). A plain GET is served from the pages embedded in
//! the binary ([`pages`]).
//!
//! Invariants:
//! - a client that sends an empty, oversized (over 511 bytes) or invalid frame is
//!   disconnected, and only that client;
//! - one NATS subscription feeds every client through a bounded broadcast queue: a client
//!   too slow to keep up skips what it missed, counted (`lagged`), and never slows the others
//!   or the bus;
//! - events reach each client in the order the tool received them;
//! - the listener binds where it is told (loopback by default) before the tool subscribes.

pub mod json;
pub mod pages;
pub mod subscription;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::broadcast;

use crate::bus::Subscriber;
use crate::shutdown::Shutdown;
use crate::tools::Tool;
use subscription::{Route, Subscription};

/// Events queued for clients; a client further behind than this skips ahead (counted).
const QUEUE: usize = 4096;

/// What can go wrong serving the feed.
#[derive(Debug, thiserror::Error)]
pub enum WebsocketError {
    /// The address cannot be bound.
    #[error("cannot listen on {address}: {source}; is another process using the port?")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the websocket server failed: {0}")]
    Serve(String),
}

/// Live counters.
#[derive(Debug, Default)]
pub struct WebsocketStats {
    /// Clients that connected.
    pub clients: AtomicU64,
    /// Clients disconnected for a bad subscription frame.
    pub rejected: AtomicU64,
    /// Event frames sent.
    pub sent: AtomicU64,
    /// Events a slow client skipped.
    pub lagged: AtomicU64,
    /// Bus payloads that did not decode (skipped).
    pub undecodable: AtomicU64,
}

/// What the tool did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebsocketSummary {
    /// Bus messages read.
    pub messages: u64,
    /// Clients that connected.
    pub clients: u64,
    /// Event frames sent.
    pub sent: u64,
    /// Events slow clients skipped.
    pub lagged: u64,
}

#[derive(Clone)]
struct Shared {
    events: broadcast::Sender<(Route, Arc<str>)>,
    stats: Arc<WebsocketStats>,
}

/// The websocket tool, bound at construction.
pub struct WebsocketTool {
    listener: tokio::net::TcpListener,
    shared: Shared,
}

impl WebsocketTool {
    /// Binds `address` (errors here, before any subscription).
    pub async fn bind(address: SocketAddr) -> Result<WebsocketTool, WebsocketError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| WebsocketError::Bind { address, source })?;
        let (events, _) = broadcast::channel(QUEUE);
        Ok(WebsocketTool {
            listener,
            shared: Shared {
                events,
                stats: Arc::default(),
            },
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> Result<SocketAddr, WebsocketError> {
        self.listener
            .local_addr()
            .map_err(|source| WebsocketError::Bind {
                address: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<WebsocketStats> {
        self.shared.stats.clone()
    }
}

impl Tool for WebsocketTool {
    type Summary = WebsocketSummary;
    type Error = WebsocketError;

    /// Serves clients and pages, forwarding every event of `subscriber` (subscribe it to the
    /// scheme's wildcard), until `shutdown` fires or the subscription ends.
    async fn run(
        self,
        mut subscriber: Subscriber,
        shutdown: Shutdown,
    ) -> Result<WebsocketSummary, WebsocketError> {
        let stop = shutdown.child_token();
        let app = axum::Router::new()
            .fallback(any_path)
            .with_state(self.shared.clone());
        let server = {
            let stop = stop.clone();
            tokio::spawn(async move {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            })
        };
        let mut messages = 0;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = subscriber.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            messages += 1;
            let Some(route) = message.kind.and_then(Route::of) else {
                continue;
            };
            match json::event_json(&message.payload) {
                // No receiver (no client yet) is not an error.
                Some(json) => {
                    let _ = self
                        .shared
                        .events
                        .send((route, Arc::from(json.to_string())));
                }
                None => {
                    self.shared
                        .stats
                        .undecodable
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        stop.cancel();
        server
            .await
            .map_err(|e| WebsocketError::Serve(e.to_string()))?
            .map_err(|e| WebsocketError::Serve(e.to_string()))?;
        let stats = &self.shared.stats;
        Ok(WebsocketSummary {
            messages,
            clients: stats.clients.load(Ordering::Relaxed),
            sent: stats.sent.load(Ordering::Relaxed),
            lagged: stats.lagged.load(Ordering::Relaxed),
        })
    }
}

/// A websocket upgrade on any path is a feed client; anything else is a page.
async fn any_path(
    State(shared): State<Shared>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => upgrade
            .on_upgrade(move |socket| client(socket, shared))
            .into_response(),
        Err(_) => pages::page(uri.path()),
    }
}

/// One client: subscription frames in, subscribed events out.
async fn client(socket: WebSocket, shared: Shared) {
    shared.stats.clients.fetch_add(1, Ordering::Relaxed);
    let mut events = shared.events.subscribe();
    let (mut sender, mut receiver) = socket.split();
    let mut subscription = Subscription::default();
    loop {
        tokio::select! {
            frame = receiver.next() => match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(text))) => match Subscription::parse(text.as_str()) {
                    Ok(new) => subscription = new,
                    Err(why) => {
                        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("websocket client disconnected: {why}");
                        let _ = sender.close().await;
                        break;
                    }
                },
                // Binary frames and pings are not subscriptions.
                Some(Ok(_)) => {}
            },
            event = events.recv() => match event {
                Ok((route, json)) if subscription.wants(route) => {
                    match sender.send(Message::Text(json.as_ref().into())).await {
                        Ok(()) => {
                            shared.stats.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // Logged, not fatal (upstream keeps the client); a gone client ends
                        // on its receiving side.
                        Err(e) => tracing::debug!("sending to a websocket client failed: {e}"),
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    shared.stats.lagged.fetch_add(skipped, Ordering::Relaxed);
                    tracing::warn!(skipped, "a websocket client could not keep up");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}
