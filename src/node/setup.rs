//! `peerlab setup`: provision a machine to run the stack, idempotently.
//!
//! Steps: Debian packages (installed when we are root, otherwise named), then a traceable
//! bitcoind: the user's own (`--bitcoind` / `BITCOIND_EXE`) after a tracepoint check, or the
//! cached build, or a fresh build into the cache. The build also yields `bitcoin-node`, the
//! same node with Cap'n Proto IPC (`-ipcbind`), which the IPC extractor needs; for a user's
//! bitcoind, a `bitcoin-node` beside it (or in `../libexec/`) is used when there is one. A
//! second run only checks and reuses.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cache::{
    cache_root, CacheEntry, EntryState, Manifest, CMAKE_OPTIONS, CORE_CRATE, CORE_CRATE_VERSION,
};
use super::core_build::{build_core, fetch_core_source};
use super::packages::{can_install, ensure_packages};
use super::tracepoints::verify_tracepoints;
use super::NodeError;

/// Debian packages needed to run the stack and to build peerlab's eBPF programs.
pub const RUNTIME_PACKAGES: [&str; 3] = ["nats-server", "clang", "libbpf-dev"];
/// Debian packages needed only to build bitcoind (Cap'n Proto for `bitcoin-node`'s IPC).
pub const BUILD_PACKAGES: [&str; 9] = [
    "systemtap-sdt-dev",
    "capnproto",
    "libcapnp-dev",
    "cmake",
    "pkg-config",
    "libboost-dev",
    "libevent-dev",
    "g++",
    "make",
];

/// What `setup` should do.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    /// Use this bitcoind instead of building one.
    pub bitcoind: Option<PathBuf>,
    /// `bitcoin-cli` to go with a user's bitcoind (default: next to it, or on PATH).
    pub bitcoin_cli: Option<PathBuf>,
    /// Never run apt-get; report missing packages instead.
    pub no_install: bool,
    /// Discard a cached build and build again.
    pub rebuild: bool,
    /// Parallel compile jobs (0 = number of CPUs).
    pub jobs: usize,
}

/// Where the provisioned programs are.
#[derive(Debug, Clone, Serialize)]
pub struct Installation {
    /// Absolute path of the traceable bitcoind.
    pub bitcoind: PathBuf,
    /// Absolute path of bitcoin-cli, if one was found.
    pub bitcoin_cli: Option<PathBuf>,
    /// Absolute path of `bitcoin-node` (the same node with Cap'n Proto IPC, `-ipcbind`), if
    /// one was built or found next to the given bitcoind.
    pub bitcoin_node: Option<PathBuf>,
    /// Absolute path of nats-server.
    pub nats_server: PathBuf,
    /// How the bitcoind was obtained.
    #[serde(skip)]
    pub origin: BitcoindOrigin,
}

/// How `setup` obtained the bitcoind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BitcoindOrigin {
    /// Given by the user.
    #[default]
    UserProvided,
    /// Reused from the cache.
    Cached,
    /// Built in this run.
    Built,
}

/// Runs every setup step; see the module docs.
pub fn setup(options: &SetupOptions) -> Result<Installation, NodeError> {
    let allow_install = !options.no_install && can_install();
    let user_bitcoind = options
        .bitcoind
        .clone()
        .or_else(|| std::env::var_os("BITCOIND_EXE").map(PathBuf::from));

    let mut packages: Vec<&str> = RUNTIME_PACKAGES.to_vec();
    if user_bitcoind.is_none() {
        packages.extend(BUILD_PACKAGES);
    }
    let installed = ensure_packages(&packages, allow_install)?;
    if !installed.is_empty() {
        tracing::info!(packages = %installed.join(" "), "installed Debian packages");
    }
    let nats_server = find_on_path("nats-server").ok_or_else(|| NodeError::NotFound {
        what: "nats-server".into(),
        hint: "install the Debian package nats-server".into(),
    })?;

    let (bitcoind, bitcoin_cli, bitcoin_node, origin) = match user_bitcoind {
        Some(path) => {
            let bitcoind = absolute(&path)?;
            verify_tracepoints(&bitcoind)?;
            tracing::info!(bitcoind = %bitcoind.display(), "using the given bitcoind (all 16 tracepoints present)");
            let cli = options
                .bitcoin_cli
                .clone()
                .or_else(|| Some(bitcoind.with_file_name("bitcoin-cli")).filter(|p| p.is_file()))
                .or_else(|| find_on_path("bitcoin-cli"));
            let node = sibling_bitcoin_node(&bitcoind);
            (bitcoind, cli, node, BitcoindOrigin::UserProvided)
        }
        None => {
            let (entry, origin) = cached_or_built(options)?;
            let node = Some(entry.bitcoin_node()).filter(|p| p.is_file());
            (entry.bitcoind(), Some(entry.bitcoin_cli()), node, origin)
        }
    };
    Ok(Installation {
        bitcoind,
        bitcoin_cli,
        bitcoin_node,
        nats_server,
        origin,
    })
}

/// The cached build if it is valid, otherwise a fresh build.
fn cached_or_built(options: &SetupOptions) -> Result<(CacheEntry, BitcoindOrigin), NodeError> {
    let entry = CacheEntry::current(&cache_root());
    if options.rebuild {
        entry.invalidate().map_err(|e| io_error(entry.dir(), e))?;
    }
    match entry.inspect() {
        EntryState::Valid(_) => {
            // The checksum proves the file is what we built; the note check proves it is still
            // a traceable bitcoind (cheap: it parses one ELF section).
            verify_tracepoints(&entry.bitcoind())?;
            tracing::info!(dir = %entry.dir().display(), "reusing the cached bitcoind build");
            return Ok((entry, BitcoindOrigin::Cached));
        }
        EntryState::Corrupt(reason) => {
            return Err(NodeError::CorruptCache {
                dir: entry.dir().to_path_buf(),
                reason,
            });
        }
        EntryState::Unreadable(reason) => {
            return Err(NodeError::UnreadableCache {
                dir: entry.dir().to_path_buf(),
                reason,
            });
        }
        EntryState::Missing => {}
    }
    let source = fetch_core_source()?;
    let jobs = if options.jobs > 0 {
        options.jobs
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    };
    tracing::info!(dir = %entry.dir().display(), "building a traceable bitcoind into the cache");
    build_core(&source, &entry, jobs)?;
    let notes = verify_tracepoints(&entry.bitcoind())?;
    let mut tracepoints: Vec<String> = notes.iter().map(|n| n.full_name()).collect();
    tracepoints.sort();
    tracepoints.dedup();
    let manifest = Manifest {
        crate_name: CORE_CRATE.into(),
        crate_version: CORE_CRATE_VERSION.into(),
        cmake_options: CMAKE_OPTIONS.iter().map(|s| s.to_string()).collect(),
        bitcoind_sha256: super::cache::sha256_file(&entry.bitcoind())
            .map_err(|e| io_error(&entry.bitcoind(), e))?,
        bitcoin_cli_sha256: super::cache::sha256_file(&entry.bitcoin_cli())
            .map_err(|e| io_error(&entry.bitcoin_cli(), e))?,
        bitcoin_node_sha256: Some(
            super::cache::sha256_file(&entry.bitcoin_node())
                .map_err(|e| io_error(&entry.bitcoin_node(), e))?,
        ),
        tracepoints,
    };
    entry
        .write_manifest(&manifest)
        .map_err(|e| io_error(entry.dir(), e))?;
    verify_tracepoints(&entry.bitcoin_node())?;
    tracing::info!(bitcoind = %entry.bitcoind().display(), "built a traceable bitcoind and bitcoin-node (16 tracepoints verified in each)");
    Ok((entry, BitcoindOrigin::Built))
}

/// The cached installation, without installing or building anything (for tests and tools).
pub fn cached_installation() -> Result<Installation, NodeError> {
    let entry = CacheEntry::current(&cache_root());
    let nats_server = std::env::var_os("NATS_SERVER_EXE")
        .map(PathBuf::from)
        .or_else(|| find_on_path("nats-server"))
        .ok_or_else(|| NodeError::NotFound {
            what: "nats-server".into(),
            hint: "run `peerlab setup`".into(),
        })?;
    if let Some(exe) = std::env::var_os("BITCOIND_EXE") {
        let bitcoind = absolute(Path::new(&exe))?;
        let cli = bitcoind.with_file_name("bitcoin-cli");
        return Ok(Installation {
            bitcoin_cli: cli.is_file().then_some(cli),
            bitcoin_node: sibling_bitcoin_node(&bitcoind),
            bitcoind,
            nats_server,
            origin: BitcoindOrigin::UserProvided,
        });
    }
    match entry.inspect() {
        EntryState::Valid(_) => Ok(Installation {
            bitcoind: entry.bitcoind(),
            bitcoin_cli: Some(entry.bitcoin_cli()),
            bitcoin_node: Some(entry.bitcoin_node()).filter(|p| p.is_file()),
            nats_server,
            origin: BitcoindOrigin::Cached,
        }),
        EntryState::Missing => Err(NodeError::NotFound {
            what: "a traceable bitcoind".into(),
            hint: "run `peerlab setup` (builds one into the cache) or set BITCOIND_EXE".into(),
        }),
        EntryState::Corrupt(reason) => Err(NodeError::CorruptCache {
            dir: entry.dir().to_path_buf(),
            reason,
        }),
        EntryState::Unreadable(reason) => Err(NodeError::UnreadableCache {
            dir: entry.dir().to_path_buf(),
            reason,
        }),
    }
}

/// `bitcoin-node` beside a user's bitcoind: in the same directory (a build tree's `bin/`) or
/// in `../libexec/` (where Core installs it).
fn sibling_bitcoin_node(bitcoind: &Path) -> Option<PathBuf> {
    let same_dir = bitcoind.with_file_name("bitcoin-node");
    let libexec = bitcoind
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("libexec").join("bitcoin-node"));
    std::iter::once(same_dir)
        .chain(libexec)
        .find(|candidate| candidate.is_file())
}

/// Searches `PATH` for an executable.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn absolute(path: &Path) -> Result<PathBuf, NodeError> {
    std::fs::canonicalize(path).map_err(|e| NodeError::NotFound {
        what: path.display().to_string(),
        hint: format!("{e}; check the path given to --bitcoind or BITCOIND_EXE"),
    })
}

fn io_error(path: &Path, e: std::io::Error) -> NodeError {
    NodeError::Tool {
        tool: "filesystem".into(),
        reason: format!("{}: {e}", path.display()),
    }
}
