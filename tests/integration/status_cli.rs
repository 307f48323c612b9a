//! `peerlab status` as an operator runs it: a real nats-server with its monitoring port,
//! nodes publishing like an extractor does (the library's publisher, with its counter
//! snapshots, and extractor counters on the extractor's stats subject), and the binary's
//! report and exit status, on a honeynode (flat) and at a fleet collector fed by a leafnode.

use crate::common;

use std::process::Output;
use std::time::Duration;

use peerlab::bus::{NatsOptions, Publisher, SubjectScheme};
use peerlab::event::counters::ExtractorCounters;
use peerlab::event::proto::ebpf_extractor::{ebpf::EbpfEvent, mempool, Ebpf};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::Event;
use peerlab::extractors::ebpf::EbpfExtractor;
use peerlab::extractors::{publish_counters, publisher_component, Extractor as _};
use peerlab::shutdown::Shutdown;
use peerlab::stack::{free_port, NatsServer};
use peerlab::tools::status::fetch_leafz;

/// Short enough for a test, long enough for several snapshots of the feeders below.
const WINDOW: &str = "3";

fn added(n: u8) -> Event {
    Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(EbpfEvent::Mempool(mempool::MempoolEvent {
                event: Some(mempool::mempool_event::Event::Added(mempool::Added {
                    txid: vec![n; 32],
                    vsize: 100,
                    fee: 500,
                })),
            })),
        })),
    }
}

/// A node publishing like the eBPF extractor: events, its counters, and its publisher's
/// snapshot (reported faster than the real 10 s so a short window sees several).
struct Feeder {
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Feeder {
    async fn start(url: &str, scheme: SubjectScheme) -> Feeder {
        let mut config = peerlab::extractors::publisher_config();
        config.report_period = Duration::from_millis(200);
        config.stats_subject =
            Some(scheme.stats_subject(&publisher_component(EbpfExtractor::COMPONENT)));
        let publisher = Publisher::connect(&NatsOptions::local(url), scheme, config)
            .await
            .expect("the feeder's publisher connects");
        let stop = Shutdown::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut counters = ExtractorCounters::default();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for n in 0u64.. {
                tokio::select! {
                    _ = stopped.cancelled() => break,
                    _ = tick.tick() => {}
                }
                assert!(publisher.publish_event(&added(n as u8)));
                counters.published += 1;
                if n % 3 == 0 {
                    publish_counters(&publisher, EbpfExtractor::COMPONENT, &counters);
                }
            }
            publisher.close(common::TIMEOUT).await;
        });
        Feeder { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("the feeder ran without panicking");
    }
}

/// A nats-server with its monitoring port (and `extra` configuration); returns it and the
/// monitoring URL.
fn nats_with_monitor(extra: &str) -> (NatsServer, String) {
    let port = free_port().expect("a free port");
    let server = NatsServer::start_with_config(
        &common::nats_server(),
        &format!("http: \"127.0.0.1:{port}\"\n{extra}"),
    )
    .expect("nats-server with monitoring starts");
    (server, format!("http://127.0.0.1:{port}"))
}

/// Runs `peerlab status` (bounded) while the feeders keep publishing.
async fn status(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .arg("status")
        .args(["--window", WINDOW])
        .args(args)
        .env_remove("PEERLAB_LOG")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(common::TIMEOUT, run)
        .await
        .expect("status ends after its window")
        .expect("peerlab runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_publishing_honeynode_is_healthy() {
    let (server, monitor) = nats_with_monitor("");
    let feeder = Feeder::start(&server.url(), SubjectScheme::Flat).await;
    let output = status(&["-a", &server.url(), "--monitor", &monitor]).await;
    feeder.stop().await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "status failed:\n{stdout}\n{}",
        text(&output.stderr)
    );
    for expected in [
        "node local: healthy",
        "extractors: ebpf-extractor (stats, events)",
        "ebpf-extractor-publisher",
        "mempool",
        "netmsg",
        "none in window",
        "drops: none",
        "link: no leafnode link",
        &format!("leafnode links ({monitor}): 0"),
        "result: healthy (1 node(s))",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}

#[tokio::test]
async fn a_collector_reports_each_node_and_a_missing_expected_one() {
    // The collector's server, with a leafnode port that node n1's own server links to.
    let leaf_port = free_port().expect("a free port");
    let (hub, monitor) = nats_with_monitor(&format!(
        "leafnodes {{ listen: \"127.0.0.1:{leaf_port}\" }}"
    ));
    let n1_server = NatsServer::start_with_config(
        &common::nats_server(),
        &format!("leafnodes {{ remotes [ {{ url: \"nats-leaf://127.0.0.1:{leaf_port}\" }} ] }}"),
    )
    .expect("node n1's nats-server starts");
    // No event says the link is up; the monitoring endpoint does (bounded).
    let linked = tokio::time::timeout(common::TIMEOUT, async {
        loop {
            match fetch_leafz(&monitor, Duration::from_secs(2)).await {
                Ok(leafz) if leafz.leafs.len() == 1 => break,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(linked.is_ok(), "node n1's leafnode link did not come up");
    let node = |name: &str| SubjectScheme::Prefixed {
        prefix: "peerlab".into(),
        node: name.into(),
    };
    let n1 = Feeder::start(&n1_server.url(), node("n1")).await;
    let n2 = Feeder::start(&hub.url(), node("n2")).await;
    let fleet = [
        "-a",
        &hub.url(),
        "--subject-prefix",
        "peerlab",
        "--monitor",
        &monitor,
    ];

    let healthy = status(&fleet).await;
    let stdout = text(&healthy.stdout);
    assert!(
        healthy.status.success(),
        "status failed:\n{stdout}\n{}",
        text(&healthy.stderr)
    );
    for expected in [
        "subjects peerlab.*.<subject>",
        "node n1: healthy",
        "node n2: healthy",
        &format!("leafnode links ({monitor}): 1"),
        "result: healthy (2 node(s))",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }

    let missing = status(&[&fleet[..], &["--expect-nodes", "n1,n2,n3", "--json"]].concat()).await;
    n1.stop().await;
    n2.stop().await;
    assert_eq!(
        missing.status.code(),
        Some(1),
        "an expected node sent nothing:\n{}",
        text(&missing.stderr)
    );
    assert!(
        text(&missing.stderr).contains("error: unhealthy: 1 of 3 node(s)"),
        "{}",
        text(&missing.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&missing.stdout).expect("--json prints one JSON document");
    assert_eq!(report["healthy"], false);
    assert_eq!(report["scheme"], "peerlab.*.<subject>");
    assert_eq!(report["links"]["state"], "fetched");
    assert_eq!(
        report["links"]["leafz"]["leafs"].as_array().map(Vec::len),
        Some(1)
    );
    let nodes = report["nodes"].as_array().expect("nodes");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    for node in &nodes[..2] {
        assert_eq!(node["healthy"], true, "{node:#}");
        assert_eq!(node["expected"], true);
        assert_eq!(node["extractors"][0]["component"], "ebpf-extractor");
        assert_eq!(node["extractors"][0]["stats"], true);
        assert_eq!(node["extractors"][0]["events"], true);
        let mempool = node["subjects"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["subject"] == "mempool"))
            .unwrap_or_else(|| panic!("no mempool subject in {node:#}"));
        assert!(mempool["messages"].as_u64() > Some(0), "{node:#}");
        assert!(mempool["last_age_secs"].as_f64() < Some(3.0), "{node:#}");
        let publisher = node["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["role"] == "publisher"))
            .unwrap_or_else(|| panic!("no publisher snapshot in {node:#}"));
        assert_eq!(publisher["component"], "ebpf-extractor-publisher");
        assert!(publisher["sent"].as_u64() > Some(0), "{node:#}");
        assert_eq!(publisher["dropped_in_window"], 0);
    }
    let n3 = &nodes[2];
    assert_eq!(n3["healthy"], false);
    assert_eq!(n3["reasons"][0], "nothing heard from it in 3 s");
}

#[tokio::test]
async fn unreachable_nats_is_a_clear_error() {
    let port = free_port().expect("a free port");
    let output = status(&[
        "-a",
        &format!("nats://127.0.0.1:{port}"),
        "--nats-wait",
        "1",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: could not reach NATS at"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no report without NATS");
}
