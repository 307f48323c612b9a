//! Shared helpers for integration tests: where the real programs are.
//!
//! Tests run against the real bitcoind and nats-server that `peerlab setup` provisions (the
//! quickstart runs it first). Missing programs fail the test with the fix, never skip it.

#![allow(dead_code)]

pub mod netns;
pub mod node_packages;

use std::path::PathBuf;
use std::time::Duration;

use peerlab::node::{cached_installation, Installation, NodeRpc};

/// The provisioned programs, or a panic that says to run `peerlab setup`.
pub fn installation() -> Installation {
    cached_installation()
        .unwrap_or_else(|e| panic!("{e}\n(integration tests need `peerlab setup` first)"))
}

/// Path of the bitcoind under test.
pub fn bitcoind() -> PathBuf {
    installation().bitcoind
}

/// Path of nats-server.
pub fn nats_server() -> PathBuf {
    installation().nats_server
}

/// Upper bound for anything a test waits on.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Waits (bounded) until the extractor traces `pid`.
pub async fn wait_traced(stats: &peerlab::extractors::ebpf::ExtractorStats, pid: u32) {
    let traced = tokio::time::timeout(TIMEOUT, async {
        while stats.traced_pid.load(std::sync::atomic::Ordering::Relaxed) != pid {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        traced.is_ok(),
        "the extractor did not start tracing pid {pid}"
    );
}

/// Polls `getpeerinfo` until `accept` holds for its entries; panics after `within`.
pub async fn wait_for_peers(
    within: Duration,
    node: &peerlab::node::RegtestNode,
    what: &str,
    accept: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let peers: Vec<serde_json::Value> = node.rpc("getpeerinfo", &[]).expect("getpeerinfo");
        if accept(&peers) {
            return peers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: getpeerinfo is still {peers:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that the extractor lost nothing: no kernel drops, malformed records or publisher
/// drops.
pub fn assert_nothing_lost(counters: &peerlab::event::counters::ExtractorCounters) {
    assert_eq!(counters.dropped_in_kernel, 0, "kernel-side drops");
    assert_eq!(counters.malformed, 0, "malformed records");
    assert_eq!(counters.publish_dropped, 0, "publisher drops");
}

/// A publisher with the default configuration and flat subjects, connected to the NATS
/// server at `url`.
pub async fn local_publisher(url: &str) -> peerlab::bus::Publisher {
    peerlab::bus::Publisher::connect(
        &peerlab::bus::NatsOptions::local(url),
        peerlab::bus::SubjectScheme::Flat,
        peerlab::bus::PublisherConfig::default(),
    )
    .await
    .expect("publisher connects to the local nats-server")
}

/// Every zstd frame found in `bytes`, decompressed (MCAP chunks are zstd frames). Read with
/// nothing of peerlab's, so a leak inside a compressed chunk cannot hide behind our reader.
pub fn zstd_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let mut frames = Vec::new();
    for start in 0..bytes.len().saturating_sub(3) {
        if bytes[start..start + 4] == MAGIC {
            let mut out = Vec::new();
            let decoded = zstd::stream::read::Decoder::new(&bytes[start..])
                .map(|d| d.single_frame())
                .and_then(|mut d| std::io::Read::read_to_end(&mut d, &mut out));
            if decoded.is_ok() {
                frames.push(out);
            }
        }
    }
    frames
}

/// Panics when `secret` occurs in `haystack`, naming where (`what`).
pub fn assert_no_secret(haystack: &[u8], secret: &str, what: &str) {
    assert!(
        !contains(haystack, secret.as_bytes()),
        "the secret {secret:?} leaked into {what}"
    );
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `secret` appears nowhere in the file at `path`: raw bytes, every decompressed
/// zstd frame, and the output of `peerlab inspect` and `peerlab cat`. Returns the bytes
/// searched.
pub fn assert_recording_has_no_secret(path: &std::path::Path, secret: &str) -> usize {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_no_secret(&raw, secret, &format!("{} (raw)", path.display()));
    let mut searched = raw.len();
    for (i, frame) in zstd_frames(&raw).iter().enumerate() {
        assert_no_secret(
            frame,
            secret,
            &format!("{} (zstd frame {i})", path.display()),
        );
        searched += frame.len();
    }
    for command in [&["inspect"][..], &["inspect", "--json"][..], &["cat"][..]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
            .args(command)
            .arg(path)
            .output()
            .expect("peerlab runs");
        assert!(output.status.success(), "peerlab {command:?} failed");
        assert_no_secret(
            &output.stdout,
            secret,
            &format!("peerlab {command:?} stdout"),
        );
        assert_no_secret(
            &output.stderr,
            secret,
            &format!("peerlab {command:?} stderr"),
        );
        searched += output.stdout.len() + output.stderr.len();
    }
    searched
}

/// Runs the peerlab binary with `args` (no `PEERLAB_LOG` from the environment) and returns
/// its output.
pub fn run_peerlab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(args)
        .env_remove("PEERLAB_LOG")
        .output()
        .expect("run peerlab")
}

/// The stdout of a run that must have succeeded (its stderr is shown otherwise).
pub fn stdout_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "peerlab failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// A child process killed (and reaped) when dropped, so a failing test leaves no tool
/// running behind it.
pub struct ChildGuard(pub std::process::Child);

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already exited (the test stopped it) or still running: either way, gone after this.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints a test's measured figures and keeps them in `target/test-figures/<name>.txt`, which
/// the quickstart's test command prints after the suite (cargo hides a passing test's output).
pub fn figures(name: &str, text: &str) {
    println!("{text}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-figures");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{name}.txt")), text);
    }
}
