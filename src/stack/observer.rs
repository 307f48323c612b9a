//! [`NodeObserver`]: every extractor attached to one node, composed once for the embedded
//! stack and for `peerlab observe` on a node the user runs.
//!
//! Given where the node keeps things ([`NodeFiles`]), it starts the eBPF extractor on the
//! binary and pid file, the log extractor on `debug.log`, the RPC extractor on the RPC port
//! with the cookie, the P2P extractor on a free loopback port the node is told to dial
//! (`addnode add`, v1 transport), and the IPC extractor on the node's IPC socket, all
//! publishing through one publisher.
//!
//! Invariants:
//! - each extractor's outcome is recorded in [`NodeObserver::attachments`] (what it attached
//!   to, or why it could not); with `required` set, the first failure is an error instead (the
//!   embedded stack needs them all), otherwise the others still run;
//! - [`NodeObserver::finish`] stops every extractor (each hands its last events to the
//!   publisher) before the publisher sends what it holds and closes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{StackCounters, StackError};
use crate::bus::Publisher;
use crate::extractors::ebpf::{EbpfConfig, EbpfExtractor, ExtractorStats, Target};
use crate::extractors::ipc::{IpcConfig, IpcExtractor};
use crate::extractors::log::{LogConfig, LogExtractor};
use crate::extractors::p2p::{P2pConfig, P2pExtractor, P2pNetwork};
use crate::extractors::rpc::{RpcConfig, RpcExtractor};
use crate::extractors::Extractor;
use crate::node::{NodeRpc as _, RemoteNode, RpcAuth};
use crate::shutdown::Shutdown;

/// How long the publisher may take to send what it buffered when the observer finishes.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Where a node keeps what the extractors need.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    /// The bitcoind binary (for the eBPF extractor; `None`: not known, not attached).
    pub bitcoind: Option<PathBuf>,
    /// Its pid file.
    pub pid_file: PathBuf,
    /// Its `debug.log`.
    pub debug_log: PathBuf,
    /// Its RPC URL.
    pub rpc_url: String,
    /// RPC credentials.
    pub rpc_auth: RpcAuth,
    /// Its network (the P2P extractor's message magic).
    pub network: P2pNetwork,
    /// Its IPC socket (`None`: the node serves no IPC; only `bitcoin-node -ipcbind=unix`
    /// does).
    pub ipc_socket: Option<PathBuf>,
}

/// Which extractors to run, and their timers.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    /// The eBPF extractor.
    pub ebpf: bool,
    /// The log extractor.
    pub log: bool,
    /// The RPC extractor.
    pub rpc: bool,
    /// The P2P extractor.
    pub p2p: bool,
    /// The IPC extractor.
    pub ipc: bool,
    /// The RPC extractor's two timers.
    pub rpc_intervals: (Duration, Duration),
    /// The P2P extractor's ping interval.
    pub p2p_ping_interval: Duration,
    /// Where the P2P extractor listens for the node to dial it (port chosen by the system):
    /// loopback for a local node, the host's address on a container network for a node in
    /// a container.
    pub p2p_listen: std::net::IpAddr,
    /// Its port: 0 lets the system choose when it starts; [`ObserverConfig::reserve_p2p_port`]
    /// chooses one beforehand, for tools started earlier that must know it.
    pub p2p_port: u16,
    /// The IPC extractor's `getTip` interval.
    pub ipc_interval: Duration,
}

impl Default for ObserverConfig {
    /// Every extractor, with peer-observer's timers.
    fn default() -> ObserverConfig {
        ObserverConfig {
            ebpf: true,
            log: true,
            rpc: true,
            p2p: true,
            ipc: true,
            rpc_intervals: (Duration::from_secs(10), Duration::from_secs(120)),
            p2p_ping_interval: Duration::from_secs(10),
            p2p_listen: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            p2p_port: 0,
            ipc_interval: Duration::from_secs(10),
        }
    }
}

/// An extractor a run may turn off; the eBPF extractor is not one (it is what every
/// stack is built around).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionalExtractor {
    /// The log extractor on `debug.log`.
    Log,
    /// The RPC extractor.
    Rpc,
    /// The P2P extractor.
    P2p,
    /// The IPC extractor.
    Ipc,
}

impl OptionalExtractor {
    /// Every optional extractor.
    pub const ALL: [OptionalExtractor; 4] = [
        OptionalExtractor::Log,
        OptionalExtractor::Rpc,
        OptionalExtractor::P2p,
        OptionalExtractor::Ipc,
    ];

    /// Its short name (`log`, `rpc`, `p2p`, `ipc`): also its subject and event category.
    pub fn name(self) -> &'static str {
        match self {
            OptionalExtractor::Log => "log",
            OptionalExtractor::Rpc => "rpc",
            OptionalExtractor::P2p => "p2p",
            OptionalExtractor::Ipc => "ipc",
        }
    }
}

/// Which of the optional extractors run (default: all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extractors {
    /// The log extractor.
    pub log: bool,
    /// The RPC extractor.
    pub rpc: bool,
    /// The P2P extractor.
    pub p2p: bool,
    /// The IPC extractor.
    pub ipc: bool,
}

impl Default for Extractors {
    fn default() -> Extractors {
        Extractors {
            log: true,
            rpc: true,
            p2p: true,
            ipc: true,
        }
    }
}

impl Extractors {
    /// Whether `extractor` runs.
    pub fn runs(self, extractor: OptionalExtractor) -> bool {
        match extractor {
            OptionalExtractor::Log => self.log,
            OptionalExtractor::Rpc => self.rpc,
            OptionalExtractor::P2p => self.p2p,
            OptionalExtractor::Ipc => self.ipc,
        }
    }

    /// `config` with these extractors on and the others off (timers and eBPF unchanged).
    pub fn apply(self, config: ObserverConfig) -> ObserverConfig {
        ObserverConfig {
            log: self.log,
            rpc: self.rpc,
            p2p: self.p2p,
            ipc: self.ipc,
            ..config
        }
    }
}

impl ObserverConfig {
    /// Chooses the P2P extractor's port now (a free one, unless one is set) and returns the
    /// address the node will dial and report that connection under (`meta.addr`): what the
    /// alerts tool, started before the observer so it misses nothing, must not judge.
    /// `None` when the P2P extractor is off.
    pub fn reserve_p2p_port(&mut self) -> std::io::Result<Option<std::net::SocketAddr>> {
        if !self.p2p {
            return Ok(None);
        }
        if self.p2p_port == 0 {
            let listener = std::net::TcpListener::bind((self.p2p_listen, 0))?;
            self.p2p_port = listener.local_addr()?.port();
        }
        Ok(Some(std::net::SocketAddr::new(
            self.p2p_listen,
            self.p2p_port,
        )))
    }
}

/// One extractor's outcome.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The extractor (`ebpf-extractor`, ...).
    pub extractor: &'static str,
    /// What it attached to, or why it could not.
    pub outcome: Result<String, String>,
}

/// The running extractors of one node.
pub struct NodeObserver {
    ebpf: Option<EbpfExtractor>,
    log: Option<LogExtractor>,
    rpc: Option<RpcExtractor>,
    p2p: Option<P2pExtractor>,
    ipc: Option<IpcExtractor>,
    publisher: Arc<Publisher>,
    attachments: Vec<Attachment>,
    /// The node's RPC, to remove our `addnode` entry when finishing.
    rpc_access: (String, RpcAuth),
}

impl NodeObserver {
    /// Starts the extractors `config` enables on the node at `files` (see the module docs for
    /// `required`).
    pub async fn start(
        files: &NodeFiles,
        config: &ObserverConfig,
        publisher: Arc<Publisher>,
        shutdown: &Shutdown,
        required: bool,
    ) -> Result<NodeObserver, StackError> {
        let mut observer = NodeObserver {
            ebpf: None,
            log: None,
            rpc: None,
            p2p: None,
            ipc: None,
            publisher,
            attachments: Vec::new(),
            rpc_access: (files.rpc_url.clone(), files.rpc_auth.clone()),
        };
        if config.ebpf {
            let started = match &files.bitcoind {
                None => Err("the node's binary is not known (is it running?)".to_string()),
                Some(binary) => EbpfExtractor::start(
                    EbpfConfig::new(binary, Target::PidFile(files.pid_file.clone())),
                    observer.publisher.clone(),
                    shutdown.clone(),
                )
                .map(|e| {
                    let what = format!("{} via {}", binary.display(), files.pid_file.display());
                    (e, what)
                })
                .map_err(|e| e.to_string()),
            };
            observer.ebpf = observer.record(EbpfExtractor::COMPONENT, started, required)?;
        }
        if config.log {
            let started = LogExtractor::start(
                LogConfig::new(&files.debug_log),
                observer.publisher.clone(),
                shutdown.clone(),
            )
            .map(|e| (e, files.debug_log.display().to_string()))
            .map_err(|e| e.to_string());
            observer.log = observer.record(LogExtractor::COMPONENT, started, required)?;
        }
        if config.rpc {
            let rpc_config = RpcConfig {
                query_interval: config.rpc_intervals.0,
                query_interval_less_frequent: config.rpc_intervals.1,
                ..RpcConfig::new(&files.rpc_url, files.rpc_auth.clone())
            };
            let started =
                RpcExtractor::start(rpc_config, observer.publisher.clone(), shutdown.clone())
                    .map(|e| (e, crate::secret::redact_url(&files.rpc_url)))
                    .map_err(|e| e.to_string());
            observer.rpc = observer.record(RpcExtractor::COMPONENT, started, required)?;
        }
        if config.p2p {
            let started = start_p2p(files, config, &observer.publisher, shutdown).await;
            observer.p2p = observer.record(P2pExtractor::COMPONENT, started, required)?;
        }
        if config.ipc {
            let started = match &files.ipc_socket {
                None => Err(
                    "the node serves no IPC socket (only `bitcoin-node` started with \
                     -ipcbind=unix does)"
                        .to_string(),
                ),
                Some(socket) => IpcExtractor::start(
                    IpcConfig {
                        query_interval: config.ipc_interval,
                        ..IpcConfig::new(socket.clone())
                    },
                    observer.publisher.clone(),
                    shutdown.clone(),
                )
                .map(|e| (e, socket.display().to_string()))
                .map_err(|e| e.to_string()),
            };
            observer.ipc = observer.record(IpcExtractor::COMPONENT, started, required)?;
        }
        Ok(observer)
    }

    fn record<E>(
        &mut self,
        extractor: &'static str,
        started: Result<(E, String), String>,
        required: bool,
    ) -> Result<Option<E>, StackError> {
        match started {
            Ok((running, what)) => {
                self.attachments.push(Attachment {
                    extractor,
                    outcome: Ok(what),
                });
                Ok(Some(running))
            }
            Err(reason) if required => Err(StackError::Start {
                what: extractor.into(),
                reason,
            }),
            Err(reason) => {
                self.attachments.push(Attachment {
                    extractor,
                    outcome: Err(reason),
                });
                Ok(None)
            }
        }
    }

    /// Each extractor's outcome, in start order.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// The publisher the extractors share.
    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    /// Where the P2P extractor listens, when it runs: the address the node dials and reports
    /// that connection under (the observer's own peer, which the alerts tool ignores).
    pub fn p2p_addr(&self) -> Option<std::net::SocketAddr> {
        self.p2p.as_ref().map(P2pExtractor::local_addr)
    }

    /// The eBPF extractor's live counters, when it runs.
    pub fn ebpf_stats(&self) -> Option<Arc<ExtractorStats>> {
        self.ebpf.as_ref().map(EbpfExtractor::stats)
    }

    /// Stops every extractor (each one even when another fails), removes the node's
    /// `addnode` entry for the P2P extractor, then closes the publisher so what the
    /// extractors handed over is sent; the final counters, or the first error after all that.
    pub async fn finish(self) -> Result<StackCounters, StackError> {
        let task = |what: &'static str, e: &dyn std::fmt::Display| StackError::Task {
            what,
            reason: e.to_string(),
        };
        let mut counters = StackCounters::default();
        let mut first_error = None;
        if let Some(ebpf) = self.ebpf {
            match ebpf.stop().await {
                Ok(c) => counters.ebpf = c,
                Err(e) => first_error = first_error.or(Some(StackError::from(e))),
            }
        }
        if let Some(log) = self.log {
            match log.stop().await {
                Ok(c) => counters.log = Some(c),
                Err(e) => first_error = first_error.or(Some(task("log extractor", &e))),
            }
        }
        if let Some(rpc) = self.rpc {
            match rpc.stop().await {
                Ok(c) => counters.rpc = Some(c),
                Err(e) => first_error = first_error.or(Some(task("RPC extractor", &e))),
            }
        }
        if let Some(p2p) = self.p2p {
            let address = p2p.local_addr().to_string();
            match p2p.stop().await {
                Ok(c) => counters.p2p = Some(c),
                Err(e) => first_error = first_error.or(Some(task("P2P extractor", &e))),
            }
            let (url, auth) = self.rpc_access.clone();
            let removed =
                tokio::task::spawn_blocking(move || addnode(&url, &auth, &address, "remove")).await;
            if !matches!(removed, Ok(Ok(()))) {
                tracing::warn!(
                    "the node's addnode entry for the P2P extractor could not be removed"
                );
            }
        }
        if let Some(ipc) = self.ipc {
            match ipc.stop().await {
                Ok(c) => counters.ipc = Some(c),
                Err(e) => first_error = first_error.or(Some(task("IPC extractor", &e))),
            }
        }
        counters.bus = self.publisher.close(CLOSE_WAIT).await;
        match first_error {
            None => Ok(counters),
            Some(e) => Err(e),
        }
    }
}

/// The P2P extractor on its port (a free one unless reserved), and the node told to dial it.
async fn start_p2p(
    files: &NodeFiles,
    config: &ObserverConfig,
    publisher: &Arc<Publisher>,
    shutdown: &Shutdown,
) -> Result<(P2pExtractor, String), String> {
    let p2p_config = P2pConfig {
        listen: std::net::SocketAddr::new(config.p2p_listen, config.p2p_port),
        ping_interval: config.p2p_ping_interval,
        ..P2pConfig::new(files.network)
    };
    let p2p = P2pExtractor::start(p2p_config, publisher.clone(), shutdown.clone())
        .map_err(|e| e.to_string())?;
    let (url, auth) = (files.rpc_url.clone(), files.rpc_auth.clone());
    let address = p2p.local_addr().to_string();
    let dial = address.clone();
    // `add`: redialled if the connection drops (removed again by `finish`).
    let added = tokio::task::spawn_blocking(move || addnode(&url, &auth, &dial, "add"))
        .await
        .map_err(|e| format!("addnode: {e}"))
        .and_then(|r| r);
    match added {
        Ok(()) => Ok((p2p, format!("listening on {address}, dialed by the node"))),
        Err(e) => {
            // Nobody will dial it: stop it rather than leave a listener running.
            let _ = p2p.stop().await;
            Err(format!(
                "the node could not be told to dial {address} (addnode): {e}"
            ))
        }
    }
}

/// `addnode ADDRESS COMMAND false` on the node (`false`: v1 transport, all the P2P extractor
/// speaks). Blocking.
fn addnode(url: &str, auth: &RpcAuth, address: &str, command: &str) -> Result<(), String> {
    let node = RemoteNode::connect(url, auth).map_err(|e| e.to_string())?;
    node.rpc::<serde_json::Value>(
        "addnode",
        &[
            serde_json::json!(address),
            serde_json::json!(command),
            serde_json::json!(false),
        ],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
