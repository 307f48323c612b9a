//! JavaScript packages from the npm registry for tests that run other projects' readers
//! under Node.js (Debian's `nodejs`, a test dependency of the quickstart).
//!
//! Each package is a pinned version whose tarball must match the registry's published
//! sha512 before it is unpacked; the unpacked tree is cached under peerlab's cache
//! directory, keyed by the set of packages, so only the first run downloads anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest as _, Sha512};

/// One pinned package: its name, version and the registry's `dist.integrity` (sha512).
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    pub sha512: &'static str,
}

/// `node_modules` holding every package of `set` (downloaded and checked once, then cached
/// under `key`). Panics with what to do when Node.js or the registry is missing.
pub fn node_modules(key: &str, set: &[Package]) -> PathBuf {
    // Tests of one binary run in parallel: on a fresh machine only one may unpack.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let root = peerlab::node::cache_root().join("npm").join(key);
    let modules = root.join("node_modules");
    let complete = root.join("complete");
    if complete.exists() {
        return modules;
    }
    std::fs::create_dir_all(&root).expect("create the npm cache directory");
    let scratch = tempfile::tempdir_in(&root).expect("scratch directory");
    for package in set {
        let tarball = download(package, scratch.path());
        let target = modules.join(package.name);
        std::fs::create_dir_all(&target).expect("create the package directory");
        // npm tarballs hold one top directory (`package/`): strip it.
        let status = Command::new("tar")
            .args(["xzf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&target)
            .arg("--strip-components=1")
            .status()
            .expect("run tar");
        assert!(status.success(), "unpacking {} failed", package.name);
    }
    std::fs::write(&complete, b"").expect("mark the npm cache complete");
    modules
}

fn download(package: &Package, dir: &Path) -> PathBuf {
    let base = package.name.rsplit('/').next().unwrap_or(package.name);
    let url = format!(
        "https://registry.npmjs.org/{}/-/{base}-{}.tgz",
        package.name, package.version
    );
    let file = dir.join(format!("{base}-{}.tgz", package.version));
    let status = Command::new("curl")
        .args(["-sSfL", "--retry", "3", "--max-time", "120", "-o"])
        .arg(&file)
        .arg(&url)
        .status()
        .expect("run curl (a quickstart test dependency)");
    assert!(
        status.success(),
        "downloading {url} failed: is the npm registry reachable?"
    );
    let bytes = std::fs::read(&file).expect("read the tarball");
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes));
    assert_eq!(
        digest, package.sha512,
        "{url} does not match its pinned sha512: refusing to unpack it"
    );
    file
}

/// The `node` binary, or a panic saying how to get it.
pub fn node() -> PathBuf {
    peerlab::node::find_on_path("node")
        .or_else(|| peerlab::node::find_on_path("nodejs"))
        .expect("Node.js not found: install Debian's `nodejs` (./quickstart.sh test does)")
}
