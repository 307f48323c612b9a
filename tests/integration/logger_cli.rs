//! `peerlab tools logger` as a user runs it: real nats-server, real process, filtered output.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use peerlab::event::proto::ebpf_extractor::{ebpf::EbpfEvent, mempool, validation, Ebpf};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::Event;
use peerlab::stack::NatsServer;

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn block(height: i32) -> Event {
    let body = EbpfEvent::Validation(validation::ValidationEvent {
        event: Some(validation::validation_event::Event::BlockConnected(
            validation::BlockConnected {
                hash: vec![1; 32],
                height,
                transactions: 1,
                inputs: 0,
                sigops: 0,
                connection_time: 10,
            },
        )),
    });
    wrap(body)
}

fn added() -> Event {
    wrap(EbpfEvent::Mempool(mempool::MempoolEvent {
        event: Some(mempool::mempool_event::Event::Added(mempool::Added {
            txid: vec![2; 32],
            vsize: 100,
            fee: 500,
        })),
    }))
}

fn wrap(body: EbpfEvent) -> Event {
    Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(body),
        })),
    }
}

/// Starts the logger and waits (bounded) until it reports its subscription.
fn start_logger(url: &str, extra: &[&str]) -> KillOnDrop {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args([
            "tools",
            "logger",
            "-a",
            url,
            "--kind",
            "validation",
            "--count",
            "2",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("logger starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("logger subscribed") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(common::TIMEOUT).expect("logger subscribes");
    KillOnDrop(child)
}

async fn publish(url: &str) {
    let publisher = common::local_publisher(url).await;
    for event in [added(), block(7), added(), block(8)] {
        assert!(publisher.publish_event(&event));
    }
    publisher.close(common::TIMEOUT).await;
}

fn output(mut logger: KillOnDrop) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = logger.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    rx.recv_timeout(common::TIMEOUT)
        .expect("logger exits after --count events")
}

#[tokio::test]
async fn json_lines_filtered_by_kind() {
    let server = NatsServer::start(&common::nats_server()).expect("nats");
    let logger = start_logger(&server.url(), &["--json"]);
    publish(&server.url()).await;
    let lines = output(logger);
    assert_eq!(lines.len(), 2, "only the two validation events: {lines:?}");
    for (line, height) in lines.iter().zip([7, 8]) {
        let json: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(json["subject"], "validation");
        assert_eq!(
            json["event"]["ebpf_extractor"]["validation"]["block_connected"]["height"],
            height
        );
    }
}

#[tokio::test]
async fn readable_text_lines() {
    let server = NatsServer::start(&common::nats_server()).expect("nats");
    let logger = start_logger(&server.url(), &[]);
    publish(&server.url()).await;
    let lines = output(logger);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("validation  validation.block_connected "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("height=7"), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("hash={}", "01".repeat(32))),
        "{}",
        lines[0]
    );
}
