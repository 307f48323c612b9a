//! Node control: provisioning a traceable bitcoind and running regtest nodes.
//!
//! This module owns `peerlab setup` ([`setup()`]: Debian packages, the bitcoind build cache,
//! the tracepoint check) and the regtest harness ([`RegtestNode`]: start on free ports with a
//! private datadir, mine to a keyless address, spend those coins, stop, kill on drop).

mod cache;
mod coins;
mod core_build;
mod locate;
mod packages;
mod process;
mod regtest;
mod rpc;
mod setup;
mod tracepoints;

use std::path::PathBuf;

pub use cache::{build_key, cache_root, CacheEntry, EntryState, Manifest, CMAKE_OPTIONS};
pub use coins::{KeylessCoin, KEYLESS_ADDRESS};
pub use core_build::fetch_core_source;
pub use locate::{locate, Chain, LocatedNode};
pub use packages::{can_install, ensure_packages, missing_packages};
pub use process::{pid_from_file, pid_mismatch, process_alive, process_executable, processes_of};
pub use regtest::{RegtestConfig, RegtestNode, HARNESS_ARGS};
pub use rpc::{NodeRpc, RemoteNode, RpcAuth};
pub use setup::{
    cached_installation, find_on_path, setup, BitcoindOrigin, Installation, SetupOptions,
    BUILD_PACKAGES, RUNTIME_PACKAGES,
};
pub use tracepoints::{verify_tracepoints, BITCOIN_CORE_TRACEPOINTS};

/// What can go wrong provisioning or running a node. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The binary lacks the tracepoints peerlab needs.
    #[error("{path} cannot be traced: {reason}")]
    NotTraceable {
        /// The binary.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Packages are missing and we may not install them.
    #[error(
        "missing Debian packages: {packages}; install them with `apt-get install -y {packages}` as root \
         (or run `peerlab setup` as root and it installs them)"
    )]
    MissingPackages {
        /// Space-separated package names.
        packages: String,
    },
    /// A cache entry does not match its manifest.
    #[error("the bitcoind cache entry {dir} is corrupt ({reason}); run `peerlab setup --rebuild` or delete that directory")]
    CorruptCache {
        /// The entry directory.
        dir: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A cache entry exists but cannot be read by this user.
    #[error("cannot use the bitcoind cache entry {dir}: {reason}; run peerlab as the user who ran `peerlab setup` (or as root), or set PEERLAB_CACHE_DIR to a cache this user can read")]
    UnreadableCache {
        /// The entry directory.
        dir: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A build step failed.
    #[error("{step} failed; last lines of its output:\n{output_tail}")]
    Build {
        /// The step (`cmake configure`, ...).
        step: String,
        /// The end of the step's output.
        output_tail: String,
    },
    /// An external tool could not run or failed.
    #[error("{tool}: {reason}")]
    Tool {
        /// The tool.
        tool: String,
        /// What happened.
        reason: String,
    },
    /// Something needed was not found.
    #[error("{what} not found: {hint}")]
    NotFound {
        /// What.
        what: String,
        /// How to get it.
        hint: String,
    },
    /// bitcoind failed to start or answer.
    #[error("regtest bitcoind: {0}")]
    Regtest(String),
    /// An RPC call failed.
    #[error("RPC `{method}` failed: {reason}")]
    Rpc {
        /// The method.
        method: String,
        /// The error.
        reason: String,
    },
}
