//! Shared helpers for integration tests: where the real programs are.
//!
//! Tests run against the real bitcoind and nats-server that `peerlab setup` provisions (the
//! quickstart runs it first). Missing programs fail the test with the fix, never skip it.

#![allow(dead_code)]

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
pub async fn wait_traced(stats: &peerlab::extractor::ebpf::ExtractorStats, pid: u32) {
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
pub fn assert_nothing_lost(stats: &peerlab::extractor::ebpf::ExtractorStats) {
    use std::sync::atomic::Ordering;
    assert_eq!(stats.dropped_in_kernel(), 0, "kernel-side drops");
    assert_eq!(
        stats.malformed.load(Ordering::Relaxed),
        0,
        "malformed records"
    );
    assert_eq!(
        stats.publish_dropped.load(Ordering::Relaxed),
        0,
        "publisher drops"
    );
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
