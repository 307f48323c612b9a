//! [`NodeRpc`]: the RPC calls peerlab makes on a regtest node, whoever runs it.
//!
//! Everything here goes through one required method, [`NodeRpc::rpc`], so the harness's own
//! node ([`RegtestNode`](super::RegtestNode)) and a user's node reached by URL
//! ([`RemoteNode`]) share the helpers: mining to the keyless address, finding its coinbase
//! coins, broadcasting, reading the mempool.

use std::path::PathBuf;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, BlockHash, OutPoint, Sequence, Transaction, Txid};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::coins::{KeylessCoin, KEYLESS_ADDRESS};
use super::NodeError;

/// JSON-RPC access to a regtest node, plus the helpers scenarios and tests use.
pub trait NodeRpc {
    /// Calls an RPC method and decodes its result.
    fn rpc<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, NodeError>;

    /// Current block height.
    fn height(&self) -> Result<u64, NodeError> {
        self.rpc("getblockcount", &[])
    }

    /// Mines `blocks` blocks to the keyless address; returns their hashes.
    fn mine(&self, blocks: u64) -> Result<Vec<BlockHash>, NodeError> {
        let hashes: Vec<String> = self.rpc(
            "generatetoaddress",
            &[json!(blocks), json!(KEYLESS_ADDRESS)],
        )?;
        hashes
            .iter()
            .map(|h| {
                h.parse()
                    .map_err(|e| rpc_error("generatetoaddress", format!("bad hash {h}: {e}")))
            })
            .collect()
    }

    /// The coinbase coin of the block at `height` (mined by [`mine`](Self::mine)).
    fn coinbase_coin(&self, height: u64) -> Result<KeylessCoin, NodeError> {
        let hash: String = self.rpc("getblockhash", &[json!(height)])?;
        let block: Value = self.rpc("getblock", &[json!(hash), json!(2)])?;
        let coinbase = &block["tx"][0];
        let txid: Txid = coinbase["txid"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| rpc_error("getblock", "no coinbase txid".into()))?;
        let (vout, value) = coinbase["vout"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["scriptPubKey"]["address"] == KEYLESS_ADDRESS)
            .and_then(|o| Some((o["n"].as_u64()?, o["value"].as_f64()?)))
            .ok_or_else(|| {
                rpc_error(
                    "getblock",
                    format!("block {height} does not pay the keyless address"),
                )
            })?;
        let value = Amount::from_btc(value).map_err(|e| rpc_error("getblock", e.to_string()))?;
        Ok(KeylessCoin {
            outpoint: OutPoint {
                txid,
                vout: vout as u32,
            },
            value,
        })
    }

    /// Builds a transaction spending `coin` to one keyless output (optionally signalling RBF).
    fn spend(&self, coin: &KeylessCoin, fee: Amount, rbf: bool) -> Result<Transaction, NodeError> {
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
    fn send(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        let txid: String = self.rpc("sendrawtransaction", &[json!(serialize_hex(tx))])?;
        txid.parse()
            .map_err(|e| rpc_error("sendrawtransaction", format!("bad txid {txid}: {e}")))
    }

    /// Txids in the mempool.
    fn mempool(&self) -> Result<Vec<Txid>, NodeError> {
        let ids: Vec<String> = self.rpc("getrawmempool", &[])?;
        Ok(ids.iter().filter_map(|t| t.parse().ok()).collect())
    }
}

fn rpc_error(method: &str, reason: String) -> NodeError {
    NodeError::Rpc {
        method: method.into(),
        reason,
    }
}

/// How to authenticate to a node's RPC server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// The `.cookie` file bitcoind writes into its datadir (read once, when connecting).
    Cookie(PathBuf),
    /// `-rpcuser` / `-rpcpassword` (or an `-rpcauth` entry).
    UserPass(String, String),
}

/// A node someone else runs, reached over JSON-RPC (`http://host:port`).
pub struct RemoteNode {
    client: bitcoind::Client,
    url: String,
}

impl RemoteNode {
    /// Connects and checks the node answers (`getblockchaininfo`); the error says what to fix.
    pub fn connect(url: &str, auth: &RpcAuth) -> Result<RemoteNode, NodeError> {
        let auth = match auth {
            RpcAuth::Cookie(path) => corepc_regtest_client::Auth::CookieFile(path.clone()),
            RpcAuth::UserPass(user, password) => {
                corepc_regtest_client::Auth::UserPass(user.clone(), password.clone())
            }
        };
        let shown = crate::secret::redact_url(url);
        let client = bitcoind::Client::new_with_auth(url, auth).map_err(|e| {
            NodeError::Regtest(format!(
                "cannot use the RPC credentials for {shown}: {e} (check --rpc-cookie or --rpc-user/--rpc-password-file)"
            ))
        })?;
        let node = RemoteNode {
            client,
            url: url.to_string(),
        };
        let _: Value = node.rpc("getblockchaininfo", &[]).map_err(|e| {
            NodeError::Regtest(format!(
                "the node at {shown} does not answer RPC ({e}); is bitcoind running with -server and are the credentials right?"
            ))
        })?;
        Ok(node)
    }

    /// The RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl NodeRpc for RemoteNode {
    fn rpc<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, NodeError> {
        self.client
            .call::<T>(method, params)
            .map_err(|e| rpc_error(method, e.to_string()))
    }
}
