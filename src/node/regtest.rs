//! A regtest bitcoind for tests, scenarios and the quickstart.
//!
//! Started through the `bitcoind` crate (free loopback ports, a private temporary datadir,
//! wait until RPC answers, kill on drop) with the flags of shared/spec/bitcoin-core.md §4: no
//! outbound connections, no seeds, listening on 127.0.0.1 only.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::process::process_alive;
use super::rpc::NodeRpc;
use super::NodeError;

/// Flags every harness node gets (see the module docs).
pub const HARNESS_ARGS: [&str; 12] = [
    "-regtest",
    "-listen=1",
    "-connect=0",
    "-dnsseed=0",
    "-fixedseeds=0",
    "-discover=0",
    "-listenonion=0",
    "-natpmp=0",
    "-debug=net",
    // BlockConnected and BlockChecked lines, for the log extractor.
    "-debug=validation",
    "-printtoconsole=0",
    "-checkmempool=0",
];

/// How to start a regtest node.
#[derive(Debug, Clone)]
pub struct RegtestConfig {
    /// The bitcoind to run.
    pub bitcoind: PathBuf,
    /// Extra command-line arguments (e.g. `-maxconnections=32`).
    pub extra_args: Vec<String>,
    /// Show bitcoind's stdout.
    pub view_stdout: bool,
    /// A datadir that outlives the node (needed for [`RegtestNode::restart`]); default: a
    /// temporary one removed on drop.
    pub datadir: Option<PathBuf>,
}

impl RegtestConfig {
    /// Defaults for `bitcoind`.
    pub fn new(bitcoind: impl Into<PathBuf>) -> RegtestConfig {
        RegtestConfig {
            bitcoind: bitcoind.into(),
            extra_args: Vec::new(),
            view_stdout: false,
            datadir: None,
        }
    }
}

/// A running regtest node; killed when dropped.
pub struct RegtestNode {
    inner: bitcoind::BitcoinD,
    p2p: SocketAddrV4,
    config: RegtestConfig,
}

impl RegtestNode {
    /// Starts a node and waits until its RPC answers.
    pub fn start(config: &RegtestConfig) -> Result<RegtestNode, NodeError> {
        let mut args: Vec<&str> = HARNESS_ARGS.to_vec();
        args.extend(config.extra_args.iter().map(String::as_str));
        let mut conf = bitcoind::Conf::default();
        conf.args = args;
        conf.p2p = bitcoind::P2P::Yes;
        conf.wallet = None; // The traceable build has no wallet.
        conf.view_stdout = config.view_stdout;
        conf.attempts = 3;
        conf.staticdir = config.datadir.clone();
        let inner = bitcoind::BitcoinD::with_conf(&config.bitcoind, &conf).map_err(|e| {
            NodeError::Regtest(format!(
                "could not start {}: {e:#}",
                config.bitcoind.display()
            ))
        })?;
        let p2p = inner
            .params
            .p2p_socket
            .ok_or_else(|| NodeError::Regtest("started without a P2P port".into()))?;
        Ok(RegtestNode {
            inner,
            p2p,
            config: config.clone(),
        })
    }

    /// Kills the process (SIGKILL, as a crash would) and starts it again on the same datadir
    /// (new ports). Needs [`RegtestConfig::datadir`].
    pub fn restart(&mut self) -> Result<(), NodeError> {
        self.restart_with(&[])
    }

    /// [`restart`](Self::restart) with `args` added to the command line of the new process
    /// (and of later restarts), e.g. `-mocktime=N`; an argument replaces an earlier one of
    /// the same name.
    pub fn restart_with(&mut self, args: &[String]) -> Result<(), NodeError> {
        let name = |arg: &str| arg.split('=').next().unwrap_or(arg).to_string();
        for arg in args {
            self.config.extra_args.retain(|old| name(old) != name(arg));
            self.config.extra_args.push(arg.clone());
        }
        if self.config.datadir.is_none() {
            return Err(NodeError::Regtest(
                "restart needs a persistent datadir (RegtestConfig::datadir)".into(),
            ));
        }
        let pid = self.pid()?;
        // SAFETY: kill(2) on the pid of our own child; no memory is involved.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // A killed bitcoind leaves its cookie behind; the bitcoind crate would read the stale
        // one and fail to authenticate against the new process.
        let _ = std::fs::remove_file(self.cookie_file());
        let fresh = RegtestNode::start(&self.config)?;
        // Dropping the old handle reaps the killed process.
        *self = fresh;
        Ok(())
    }

    /// The P2P listening address (127.0.0.1).
    pub fn p2p_addr(&self) -> SocketAddrV4 {
        self.p2p
    }

    /// The RPC address (127.0.0.1).
    pub fn rpc_addr(&self) -> SocketAddrV4 {
        self.inner.params.rpc_socket
    }

    /// The RPC cookie file.
    pub fn cookie_file(&self) -> &Path {
        &self.inner.params.cookie_file
    }

    /// The node's datadir (temporary, removed on drop).
    pub fn datadir(&self) -> PathBuf {
        self.inner.workdir()
    }

    /// The node's `debug.log` (regtest writes it into `<datadir>/regtest/`).
    pub fn debug_log(&self) -> PathBuf {
        self.datadir().join("regtest").join("debug.log")
    }

    /// The bitcoind process id, from the pid file bitcoind writes.
    pub fn pid(&self) -> Result<u32, NodeError> {
        let path = self.datadir().join("regtest").join("bitcoind.pid");
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                NodeError::Regtest(format!("no readable pid file at {}", path.display()))
            })
    }

    /// Stops the node through RPC and waits (bounded) for the process to exit; kills it if
    /// it does not exit in time.
    pub fn stop(self, timeout: Duration) -> Result<(), NodeError> {
        let pid = self.pid()?;
        let _: Value = self.rpc("stop", &[])?;
        // The bitcoind crate owns the child handle and waits without a bound, so watch the
        // process table instead: exited means gone or a zombie awaiting the reap in drop.
        let deadline = Instant::now() + timeout;
        while process_alive(pid) {
            if Instant::now() >= deadline {
                return Err(NodeError::Regtest(format!(
                    "bitcoind (pid {pid}) did not exit within {}s of `stop`; killed",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl NodeRpc for RegtestNode {
    fn rpc<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, NodeError> {
        self.inner
            .client
            .call::<T>(method, params)
            .map_err(|e| NodeError::Rpc {
                method: method.into(),
                reason: e.to_string(),
            })
    }
}
