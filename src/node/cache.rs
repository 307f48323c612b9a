//! The bitcoind build cache: one directory per (crate version, build options), outside the repo.
//!
//! Layout of an entry `<root>/bitcoind/<key>/`: `build/` (the CMake tree, kept so a rebuild is
//! incremental), `bin/bitcoind`, `bin/bitcoin-cli`, `bin/bitcoin-node` (the same node with
//! Cap'n Proto IPC), and `manifest.json`, written last. An entry
//! without a manifest is an unfinished build (resumed); an entry whose manifest does not match
//! its binaries is corrupt and reported, never trusted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The crate whose vendored Bitcoin Core tree we build.
pub const CORE_CRATE: &str = "libbitcoinkernel-sys";
/// Its pinned version.
pub const CORE_CRATE_VERSION: &str = "0.4.1";

/// CMake options for a traceable, wallet-less bitcoind (shared/spec/bitcoin-core.md §0), with
/// IPC on so that `bitcoin-node` is built as well (extractors.md §5).
pub const CMAKE_OPTIONS: [&str; 16] = [
    "-DBUILD_DAEMON=ON",
    "-DBUILD_CLI=ON",
    "-DWITH_USDT=ON",
    "-DENABLE_WALLET=OFF",
    "-DWITH_EMBEDDED_ASMAP=OFF",
    "-DBUILD_TESTS=OFF",
    "-DBUILD_BENCH=OFF",
    "-DBUILD_GUI=OFF",
    "-DENABLE_IPC=ON",
    "-DWITH_ZMQ=OFF",
    "-DBUILD_KERNEL_LIB=OFF",
    "-DBUILD_TX=OFF",
    "-DBUILD_UTIL=OFF",
    "-DBUILD_WALLET_TOOL=OFF",
    "-DBUILD_FUZZ_BINARY=OFF",
    "-DCMAKE_BUILD_TYPE=Release",
];

/// The cache root: `$PEERLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/peerlab`, else `~/.cache/peerlab`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEERLAB_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("peerlab");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("peerlab"),
        None => PathBuf::from("/var/cache/peerlab"),
    }
}

/// The entry key: crate, version and a hash of the options, so a change of either rebuilds.
pub fn build_key() -> String {
    let digest = Sha256::digest(CMAKE_OPTIONS.join("\n").as_bytes());
    format!(
        "{CORE_CRATE}-{CORE_CRATE_VERSION}-{}",
        &hex::encode(digest)[..12]
    )
}

/// What a finished build recorded about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Source crate.
    pub crate_name: String,
    /// Source crate version.
    pub crate_version: String,
    /// CMake options used.
    pub cmake_options: Vec<String>,
    /// SHA-256 of `bin/bitcoind`.
    pub bitcoind_sha256: String,
    /// SHA-256 of `bin/bitcoin-cli`.
    pub bitcoin_cli_sha256: String,
    /// SHA-256 of `bin/bitcoin-node` (absent in entries built without IPC).
    #[serde(default)]
    pub bitcoin_node_sha256: Option<String>,
    /// Tracepoints found by parsing `.note.stapsdt`.
    pub tracepoints: Vec<String>,
}

/// The state of a cache entry.
#[derive(Debug)]
pub enum EntryState {
    /// No finished build yet (possibly a partial CMake tree to resume).
    Missing,
    /// A finished build whose binaries match its manifest.
    Valid(Manifest),
    /// Something is wrong; the reason says what.
    Corrupt(String),
    /// The entry exists but this user may not read it (or another I/O error): not corrupt,
    /// and not to be deleted. The reason says what failed.
    Unreadable(String),
}

/// The state for an I/O error on `path`: missing, or unreadable (never "corrupt": a
/// permission problem says nothing about the content).
fn io_state(path: &Path, e: &std::io::Error) -> EntryState {
    match e.kind() {
        std::io::ErrorKind::NotFound => EntryState::Missing,
        _ => EntryState::Unreadable(format!("cannot read {}: {e}", path.display())),
    }
}

/// One cache entry directory.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    dir: PathBuf,
}

impl CacheEntry {
    /// The entry for this version of peerlab's build options under `root`.
    pub fn current(root: &Path) -> CacheEntry {
        CacheEntry {
            dir: root.join("bitcoind").join(build_key()),
        }
    }

    /// The entry directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The CMake build tree.
    pub fn build_dir(&self) -> PathBuf {
        self.dir.join("build")
    }
    /// Installed `bitcoind`.
    pub fn bitcoind(&self) -> PathBuf {
        self.dir.join("bin").join("bitcoind")
    }
    /// Installed `bitcoin-cli`.
    pub fn bitcoin_cli(&self) -> PathBuf {
        self.dir.join("bin").join("bitcoin-cli")
    }
    /// Installed `bitcoin-node`.
    pub fn bitcoin_node(&self) -> PathBuf {
        self.dir.join("bin").join("bitcoin-node")
    }
    fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    /// Checks the manifest against the binaries on disk.
    pub fn inspect(&self) -> EntryState {
        let path = self.manifest_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => return io_state(&path, &e),
        };
        let manifest: Manifest = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                return EntryState::Corrupt(format!(
                    "{} is not a valid manifest: {e}",
                    path.display()
                ))
            }
        };
        let mut binaries = vec![
            (self.bitcoind(), &manifest.bitcoind_sha256),
            (self.bitcoin_cli(), &manifest.bitcoin_cli_sha256),
        ];
        if let Some(expected) = &manifest.bitcoin_node_sha256 {
            binaries.push((self.bitcoin_node(), expected));
        }
        for (binary, expected) in binaries {
            match sha256_file(&binary) {
                Ok(actual) if &actual == expected => {}
                Ok(_) => {
                    return EntryState::Corrupt(format!(
                        "{} does not match its recorded checksum",
                        binary.display()
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return EntryState::Corrupt(format!(
                        "{} is missing although the manifest lists it",
                        binary.display()
                    ))
                }
                Err(e) => return io_state(&binary, &e),
            }
        }
        EntryState::Valid(manifest)
    }

    /// Records a finished build (written last, atomically, so a crash leaves no manifest).
    pub fn write_manifest(&self, manifest: &Manifest) -> std::io::Result<()> {
        let tmp = self.dir.join("manifest.json.tmp");
        let json = serde_json::to_string_pretty(manifest).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, self.manifest_path())
    }

    /// Removes the manifest and installed binaries (keeps the CMake tree for an incremental rebuild).
    pub fn invalidate(&self) -> std::io::Result<()> {
        for path in [
            self.manifest_path(),
            self.bitcoind(),
            self.bitcoin_cli(),
            self.bitcoin_node(),
        ] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_crate_version_and_options_hash() {
        let key = build_key();
        assert!(key.starts_with("libbitcoinkernel-sys-0.4.1-"), "{key}");
        assert_eq!(key.len(), "libbitcoinkernel-sys-0.4.1-".len() + 12);
    }

    #[test]
    fn empty_entry_is_missing_and_bad_manifest_is_corrupt() {
        let root = tempfile::tempdir().expect("tempdir");
        let entry = CacheEntry::current(root.path());
        assert!(matches!(entry.inspect(), EntryState::Missing));
        std::fs::create_dir_all(entry.dir()).expect("mkdir");
        std::fs::write(entry.dir().join("manifest.json"), "{not json").expect("write");
        assert!(
            matches!(entry.inspect(), EntryState::Corrupt(r) if r.contains("not a valid manifest"))
        );
    }
}
