//! [`RehearsalNode`]: the node under attack, whether peerlab started it or the user did.
//!
//! Every part of a run (steps, RPC checks, peers starting later) reaches the node through
//! this handle, never through a copy of its address: `restart_node` replaces the embedded
//! node with a fresh process on new ports, and whoever asks afterwards gets the new ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::node::{NodeError, NodeRpc, RegtestNode, RemoteNode};

enum Inner {
    /// Started by the rehearsal on a datadir that survives restarts.
    Embedded(RegtestNode),
    /// The user's node: RPC plus where its P2P port listens.
    Existing { rpc: RemoteNode, p2p: SocketAddr },
    /// A node of a topology, in a container: RPC and P2P on its network address.
    Container {
        name: String,
        rpc: RemoteNode,
        p2p: SocketAddr,
    },
}

/// The node of one rehearsal.
pub struct RehearsalNode {
    inner: RwLock<Inner>,
    /// The mock time last set (re-applied after a restart).
    mocktime: Mutex<Option<u64>>,
}

impl RehearsalNode {
    /// A node the rehearsal started (and may restart).
    pub fn embedded(node: RegtestNode) -> RehearsalNode {
        RehearsalNode::new(Inner::Embedded(node))
    }

    /// The user's node.
    pub fn existing(rpc: RemoteNode, p2p: SocketAddr) -> RehearsalNode {
        RehearsalNode::new(Inner::Existing { rpc, p2p })
    }

    /// A node of a topology, running in a container.
    pub fn container(name: &str, rpc: RemoteNode, p2p: SocketAddr) -> RehearsalNode {
        RehearsalNode::new(Inner::Container {
            name: name.to_string(),
            rpc,
            p2p,
        })
    }

    fn new(inner: Inner) -> RehearsalNode {
        RehearsalNode {
            inner: RwLock::new(inner),
            mocktime: Mutex::new(None),
        }
    }

    /// Where peers connect (changes after [`restart`](Self::restart)).
    pub fn p2p_addr(&self) -> Result<SocketAddr, NodeError> {
        match &*self.read()? {
            Inner::Embedded(node) => Ok(node.p2p_addr().into()),
            Inner::Existing { p2p, .. } | Inner::Container { p2p, .. } => Ok(*p2p),
        }
    }

    /// The pid file of the embedded node (`None` for the user's node).
    pub fn pid_file(&self) -> Result<Option<PathBuf>, NodeError> {
        match &*self.read()? {
            Inner::Embedded(node) => Ok(Some(node.datadir().join("regtest").join("bitcoind.pid"))),
            Inner::Existing { .. } | Inner::Container { .. } => Ok(None),
        }
    }

    /// `setmocktime`, remembered for restarts.
    pub fn set_mocktime(&self, time: u64) -> Result<(), NodeError> {
        let _: Value = self.rpc("setmocktime", &[json!(time)])?;
        if let Ok(mut mocktime) = self.mocktime.lock() {
            *mocktime = Some(time);
        }
        Ok(())
    }

    /// The mock time last set, if any.
    pub fn mocktime(&self) -> Option<u64> {
        self.mocktime.lock().ok().and_then(|m| *m)
    }

    /// SIGKILL and start again on the same datadir, then re-apply the mock time. Only the
    /// embedded node can be restarted: the user's node is not ours to kill.
    pub fn restart(&self) -> Result<(), NodeError> {
        {
            let mut inner = self
                .inner
                .write()
                .map_err(|_| NodeError::Regtest("node handle poisoned".into()))?;
            // The mock clock must hold from the first moment: a node on the real clock refuses
            // to load blocks mined in a future mock time ("a block from the future").
            let mocktime: Vec<String> = self
                .mocktime()
                .map(|t| format!("-mocktime={t}"))
                .into_iter()
                .collect();
            match &mut *inner {
                Inner::Embedded(node) => node.restart_with(&mocktime)?,
                Inner::Existing { rpc, .. } => {
                    return Err(NodeError::Regtest(format!(
                        "restart_node needs the embedded node; the node at {} is yours to restart",
                        crate::secret::redact_url(rpc.url())
                    )))
                }
                Inner::Container { name, .. } => {
                    return Err(NodeError::Regtest(format!(
                        "restart_node needs the single embedded node; {name} runs in a container"
                    )))
                }
            }
        }
        if let Some(time) = self.mocktime() {
            self.set_mocktime(time)?;
        }
        Ok(())
    }

    /// Resets the mock clock of the user's node (a rehearsal leaves it as it found it).
    pub fn release(&self) {
        let existing = matches!(
            &*self.inner.read().unwrap_or_else(|e| e.into_inner()),
            Inner::Existing { .. }
        );
        if existing && self.mocktime().is_some() {
            let _ = self.rpc::<Value>("setmocktime", &[json!(0)]);
        }
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Inner>, NodeError> {
        self.inner
            .read()
            .map_err(|_| NodeError::Regtest("node handle poisoned".into()))
    }
}

impl NodeRpc for RehearsalNode {
    fn rpc<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, NodeError> {
        match &*self.read()? {
            Inner::Embedded(node) => node.rpc(method, params),
            Inner::Existing { rpc, .. } | Inner::Container { rpc, .. } => rpc.rpc(method, params),
        }
    }
}
