//! The P2P extractor: a listening peer the node dials (`-addnode`), publishing what it
//! learns on subject `p2p-extractor` (peer-observer's p2p-extractor, extractors.md §3).
//!
//! It accepts any number of connections, one task each ([`session`]): the v1 handshake,
//! answers to pings, a `ping` every interval whose `pong` gives the node's message-processing
//! delay (`ping_duration`), and the `addr`/`addrv2`, `inv` and `feefilter` announcements the
//! node sends, decoded with [`crate::p2p`].
//!
//! Invariants:
//! - the listener is bound when the extractor starts, so a bad address or a taken port is an
//!   error at once; it binds where it is told (loopback by default);
//! - v1 only: a frame with another network's magic, or a BIP324 handshake, ends that
//!   connection (counted as malformed), never the extractor; a connection that fails is
//!   logged, and the node redials it;
//! - events of one connection are published in the order the node sent them; events carry
//!   no connection id (as upstream's).

pub mod session;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{publish_counters, Extractor};
use crate::bus::Publisher;
use crate::event::counters::ExtractorCounters;
use crate::shutdown::Shutdown;

/// The network whose magic the frames carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P2pNetwork {
    /// Bitcoin mainnet.
    Mainnet,
    /// testnet3.
    Testnet3,
    /// testnet4.
    Testnet4,
    /// The default signet.
    Signet,
    /// regtest.
    Regtest,
}

impl P2pNetwork {
    /// Every network, in `--p2p-network` order.
    pub const ALL: [P2pNetwork; 5] = [
        P2pNetwork::Mainnet,
        P2pNetwork::Testnet3,
        P2pNetwork::Testnet4,
        P2pNetwork::Signet,
        P2pNetwork::Regtest,
    ];

    /// The name `--p2p-network` takes.
    pub fn name(self) -> &'static str {
        match self {
            P2pNetwork::Mainnet => "mainnet",
            P2pNetwork::Testnet3 => "testnet3",
            P2pNetwork::Testnet4 => "testnet4",
            P2pNetwork::Signet => "signet",
            P2pNetwork::Regtest => "regtest",
        }
    }

    /// The message start bytes (Bitcoin Core's `pchMessageStart` of the chain).
    pub fn magic(self) -> [u8; 4] {
        match self {
            P2pNetwork::Mainnet => [0xf9, 0xbe, 0xb4, 0xd9],
            P2pNetwork::Testnet3 => [0x0b, 0x11, 0x09, 0x07],
            P2pNetwork::Testnet4 => [0x1c, 0x16, 0x3f, 0x28],
            P2pNetwork::Signet => [0x0a, 0x03, 0xcf, 0x40],
            P2pNetwork::Regtest => [0xfa, 0xbf, 0xb5, 0xda],
        }
    }
}

impl FromStr for P2pNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<P2pNetwork, String> {
        P2pNetwork::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = P2pNetwork::ALL.iter().map(|n| n.name()).collect();
                format!(
                    "unknown network {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How to run the P2P extractor.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Where to listen (`--p2p-address`).
    pub listen: SocketAddr,
    /// The network (message magic).
    pub network: P2pNetwork,
    /// Time between pings.
    pub ping_interval: Duration,
    /// Send pings and publish their durations.
    pub ping: bool,
    /// Publish `addr`/`addrv2` announcements.
    pub addrv2: bool,
    /// Publish `inv` announcements.
    pub invs: bool,
    /// Publish `feefilter` announcements.
    pub feefilter: bool,
    /// How often the counter snapshot is published.
    pub report_period: Duration,
}

impl P2pConfig {
    /// peer-observer's defaults: `127.0.0.1:9333`, mainnet, a ping every 10 s, everything
    /// published.
    pub fn new(network: P2pNetwork) -> P2pConfig {
        P2pConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9333)),
            network,
            ping_interval: Duration::from_secs(10),
            ping: true,
            addrv2: true,
            invs: true,
            feefilter: true,
            report_period: Duration::from_secs(10),
        }
    }
}

/// What can go wrong starting the P2P extractor.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {source}; is another process using the port?")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The accept task died.
    #[error("P2P extractor task failed: {0}")]
    Task(String),
}

/// Live counters.
#[derive(Debug, Default)]
pub struct P2pStats {
    connections: AtomicU64,
    messages: AtomicU64,
    malformed: AtomicU64,
    published: AtomicU64,
    publish_dropped: AtomicU64,
}

impl P2pStats {
    fn counters(&self) -> ExtractorCounters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExtractorCounters {
            records: load(&self.messages),
            malformed: load(&self.malformed),
            published: load(&self.published),
            publish_dropped: load(&self.publish_dropped),
            p2p_connections: load(&self.connections),
            ..ExtractorCounters::default()
        }
    }
}

/// A running P2P extractor.
pub struct P2pExtractor {
    stats: Arc<P2pStats>,
    shutdown: Shutdown,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl P2pExtractor {
    /// Where it listens (the bound port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Extractor for P2pExtractor {
    type Config = P2pConfig;
    type Error = P2pError;
    const COMPONENT: &'static str = "p2p-extractor";

    /// Binds the listener (errors here), then accepts the node's connections in the
    /// background.
    fn start(
        config: P2pConfig,
        publisher: Arc<Publisher>,
        shutdown: Shutdown,
    ) -> Result<P2pExtractor, P2pError> {
        let bind = |source| P2pError::Bind {
            address: config.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let listener = TcpListener::from_std(listener).map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        tracing::info!(%local_addr, network = config.network.name(), "P2P extractor listening; dial it with -addnode");
        let stats = Arc::new(P2pStats::default());
        let shutdown = shutdown.child_token();
        let task = tokio::spawn(accept(
            listener,
            Arc::new(config),
            publisher,
            stats.clone(),
            shutdown.clone(),
        ));
        Ok(P2pExtractor {
            stats,
            shutdown,
            local_addr,
            task,
        })
    }

    fn counters(&self) -> ExtractorCounters {
        self.stats.counters()
    }

    /// Closes the listener and every connection, and returns the final counters.
    async fn stop(self) -> Result<ExtractorCounters, P2pError> {
        self.shutdown.cancel();
        self.task.await.map_err(|e| P2pError::Task(e.to_string()))?;
        Ok(self.stats.counters())
    }
}

/// Accepts connections until shutdown, one session task each; publishes counters.
async fn accept(
    listener: TcpListener,
    config: Arc<P2pConfig>,
    publisher: Arc<Publisher>,
    stats: Arc<P2pStats>,
    shutdown: Shutdown,
) {
    let mut report = tokio::time::interval(config.report_period);
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = report.tick() => publish_counters(&publisher, P2pExtractor::COMPONENT, &stats.counters()),
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, node)) => {
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%node, "the node connected");
                    let (config, publisher, stats, shutdown) =
                        (config.clone(), publisher.clone(), stats.clone(), shutdown.clone());
                    sessions.spawn(async move {
                        let end = session::serve(stream, node, &config, &publisher, &stats, &shutdown).await;
                        match end {
                            session::End::Stopped => {}
                            session::End::Closed => tracing::info!(%node, "the node closed the connection"),
                            session::End::Failed(why) => tracing::warn!(%node, "connection ended: {why}"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    while sessions.join_next().await.is_some() {}
    publish_counters(&publisher, P2pExtractor::COMPONENT, &stats.counters());
}
