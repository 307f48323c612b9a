//! Regression test from real traffic: the sample recording (made by peerlab's own regtest
//! pipeline, see recordings/README.md) is replayed into a real nats-server and the logger's
//! JSON output must equal the committed golden file line for line.
//!
//! After an intended change of the output, regenerate with `UPDATE_GOLDEN=1 cargo test --test
//! integration golden_replay` and review the diff.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use peerlab::record::read_recording;
use peerlab::record::replayer::{replay, ReplayOptions};
use peerlab::stack::NatsServer;

const RECORDING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/recordings/regtest-sample.mcap"
);
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/recordings/regtest-sample.logger.jsonl"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_sample_recording_gives_the_golden_logger_output() {
    let recording = read_recording(Path::new(RECORDING)).expect("sample recording reads");
    assert!(recording.truncated.is_none());
    let events = recording
        .messages
        .iter()
        .filter(|m| !peerlab::record::format::is_stats_subject(&m.subject))
        .count();
    assert!(events > 100, "the sample holds a real pipeline's events");

    let nats = NatsServer::start(&common::nats_server()).expect("nats");
    let mut logger = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args([
            "tools",
            "logger",
            "--json",
            "-a",
            &nats.url(),
            "--count",
            &events.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("logger");
    let stderr = logger.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("logger subscribed") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(common::TIMEOUT)
        .expect("logger subscribed");
    let stdout = logger.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let _ = lines_tx.send(lines);
    });

    let publisher = common::local_publisher(&nats.url()).await;
    let options = ReplayOptions {
        speed: 0.0,
        ..ReplayOptions::new(vec![RECORDING.into()])
    };
    let summary = replay(&publisher, &options, &peerlab::shutdown::Shutdown::new())
        .await
        .expect("replay");
    assert_eq!(summary.published as usize, events);
    publisher.close(common::TIMEOUT).await;
    let lines = lines_rx
        .recv_timeout(common::TIMEOUT)
        .expect("logger printed every event and exited");
    let _ = logger.wait();
    let output = lines.join("\n") + "\n";

    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &output).expect("write golden");
        eprintln!("wrote {GOLDEN}");
        return;
    }
    let golden =
        std::fs::read_to_string(GOLDEN).expect("golden file (regenerate with UPDATE_GOLDEN=1)");
    let (got, want): (Vec<&str>, Vec<&str>) = (output.lines().collect(), golden.lines().collect());
    assert_eq!(
        got.len(),
        want.len(),
        "line count differs from the golden file"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {} differs from {GOLDEN}", i + 1);
    }
}
