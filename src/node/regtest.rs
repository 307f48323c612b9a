//! A regtest bitcoind for tests, scenarios and the quickstart.
//!
//! Started through the `bitcoind` crate (free loopback ports, a private temporary datadir,
//! wait until RPC answers, kill on drop) with the flags of shared/spec/bitcoin-core.md §4: no
//! outbound connections, no seeds, listening on 127.0.0.1 only.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, BlockHash, OutPoint, Sequence, Transaction, Txid};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::coins::{KeylessCoin, KEYLESS_ADDRESS};
use super::process::process_alive;
use super::NodeError;

/// Flags every harness node gets (see the module docs).
const BASE_ARGS: [&str; 11] = [
    "-regtest",
    "-listen=1",
    "-connect=0",
    "-dnsseed=0",
    "-fixedseeds=0",
    "-discover=0",
    "-listenonion=0",
    "-natpmp=0",
    "-debug=net",
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
        let mut args: Vec<&str> = BASE_ARGS.to_vec();
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

    /// Calls an RPC method and decodes its result.
    pub fn rpc<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, NodeError> {
        self.inner
            .client
            .call::<T>(method, params)
            .map_err(|e| NodeError::Rpc {
                method: method.into(),
                reason: e.to_string(),
            })
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

    /// Current block height.
    pub fn height(&self) -> Result<u64, NodeError> {
        self.rpc("getblockcount", &[])
    }

    /// Mines `blocks` blocks to the keyless address; returns their hashes.
    pub fn mine(&self, blocks: u64) -> Result<Vec<BlockHash>, NodeError> {
        let hashes: Vec<String> = self.rpc(
            "generatetoaddress",
            &[json!(blocks), json!(KEYLESS_ADDRESS)],
        )?;
        hashes
            .iter()
            .map(|h| {
                h.parse().map_err(|e| NodeError::Rpc {
                    method: "generatetoaddress".into(),
                    reason: format!("bad hash {h}: {e}"),
                })
            })
            .collect()
    }

    /// The coinbase coin of the block at `height` (mined by [`mine`](Self::mine)).
    pub fn coinbase_coin(&self, height: u64) -> Result<KeylessCoin, NodeError> {
        let hash: String = self.rpc("getblockhash", &[json!(height)])?;
        let block: Value = self.rpc("getblock", &[json!(hash), json!(2)])?;
        let coinbase = &block["tx"][0];
        let txid: Txid = coinbase["txid"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| NodeError::Rpc {
                method: "getblock".into(),
                reason: "no coinbase txid".into(),
            })?;
        let (vout, value) = coinbase["vout"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["scriptPubKey"]["address"] == KEYLESS_ADDRESS)
            .and_then(|o| Some((o["n"].as_u64()?, o["value"].as_f64()?)))
            .ok_or_else(|| NodeError::Rpc {
                method: "getblock".into(),
                reason: format!("block {height} does not pay the keyless address"),
            })?;
        let value = Amount::from_btc(value).map_err(|e| NodeError::Rpc {
            method: "getblock".into(),
            reason: e.to_string(),
        })?;
        Ok(KeylessCoin {
            outpoint: OutPoint {
                txid,
                vout: vout as u32,
            },
            value,
        })
    }

    /// Builds a transaction spending `coin` to one keyless output (optionally signalling RBF).
    pub fn spend(
        &self,
        coin: &KeylessCoin,
        fee: Amount,
        rbf: bool,
    ) -> Result<Transaction, NodeError> {
        let sequence = if rbf {
            Sequence::ENABLE_RBF_NO_LOCKTIME
        } else {
            Sequence::MAX
        };
        coin.spend(fee, 1, sequence).ok_or_else(|| {
            NodeError::Regtest(format!("coin of {} cannot pay a fee of {fee}", coin.value))
        })
    }

    /// Broadcasts a transaction with `sendrawtransaction`.
    pub fn send(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        let txid: String = self.rpc("sendrawtransaction", &[json!(serialize_hex(tx))])?;
        txid.parse().map_err(|e| NodeError::Rpc {
            method: "sendrawtransaction".into(),
            reason: format!("bad txid {txid}: {e}"),
        })
    }

    /// Txids in the mempool.
    pub fn mempool(&self) -> Result<Vec<Txid>, NodeError> {
        let ids: Vec<String> = self.rpc("getrawmempool", &[])?;
        Ok(ids.iter().filter_map(|t| t.parse().ok()).collect())
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
