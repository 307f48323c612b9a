//! `peerlab rehearse` against the real stack: every scenario in scenarios/ passes, a
//! deliberately wrong expectation fails the run and is named in the verdict and report, a
//! replayed recorded peer reproduces its message counts at the node, and a rehearsal runs
//! against a stack it did not start (`-a`, `--rpc-*`). Topologies of nodes in containers are
//! in `rehearse/topology.rs`.

#[path = "integration/common/mod.rs"]
mod common;
#[path = "rehearse/topology.rs"]
mod topology;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::Event;
use peerlab::extractors::ebpf::{EbpfConfig, EbpfExtractor, Target};
use peerlab::extractors::Extractor as _;
use peerlab::node::{RegtestConfig, RegtestNode};
use peerlab::rehearse::{rehearse, Extractors, StackSpec};
use peerlab::scenario::{Behaviour, RecordedPeer, Scenario};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;

/// Scenarios run one at a time: each starts a node and up to 200 peers on 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_passes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stack = StackSpec::Embedded(common::installation(), Extractors::default());
    let files = scenarios();
    assert!(files.len() >= 10, "at least 10 scenarios: {files:?}");
    let mut failures = Vec::new();
    let mut durations = Vec::new();
    for file in files {
        let report = tempfile::tempdir().expect("report dir");
        let (verdict, _) = runtime
            .block_on(rehearse(&stack, &file, report.path(), &Shutdown::new()))
            .expect("scenario runs");
        let line = format!(
            "{}: {} in {:.1}s ({} events, {} connections left open)",
            verdict.scenario,
            if verdict.passed { "passed" } else { "FAILED" },
            verdict.duration_secs,
            verdict.events_seen,
            verdict.peers_left_connected
        );
        eprintln!("{line}");
        durations.push(line);
        for name in ["recording.mcap", "verdict.json", "report.html"] {
            assert!(
                report.path().join(name).is_file(),
                "{name} missing for {}",
                file.display()
            );
        }
        assert!(
            verdict.duration_secs <= 60.0,
            "{} ran {:.1}s",
            file.display(),
            verdict.duration_secs
        );
        if !verdict.passed {
            failures.push(format!(
                "{}: {:?} {:?}",
                file.display(),
                verdict
                    .expectations
                    .iter()
                    .filter(|e| !e.passed)
                    .collect::<Vec<_>>(),
                verdict.step_errors
            ));
        }
        if verdict.peers_left_connected != 0 {
            failures.push(format!(
                "{}: {} connections left open",
                file.display(),
                verdict.peers_left_connected
            ));
        }
    }
    // For people and CI logs (not a timing assertion beyond the 60 s limit above).
    let summary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scenario-durations.txt");
    let _ = std::fs::write(&summary, durations.join("\n") + "\n");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_wrong_expectation_fails_the_run_and_is_named() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("wrong.toml");
    // A bad checksum does NOT get a peer disconnected; this scenario claims it does.
    std::fs::write(
        &scenario,
        r#"
[scenario]
name = "deliberately-wrong"
timeout_secs = 20

[node]
extra_args = ["-v2transport=0"]

[[peers]]
name = "sloppy"
count = 1
behaviour = "malformed"
kind = "bad_checksum"
messages = 1
start_at_secs = 1

[[expect]]
name = "bad checksum gets the peer disconnected"
kind = "event"
event = "connection.closed"
group = "sloppy"
min = 1
deadline_secs = 4
"#,
    )
    .expect("write scenario");
    let report = dir.path().join("report");
    let output = rehearse_command(&scenario, &report)
        .output()
        .expect("rehearse runs");
    assert!(
        !output.status.success(),
        "a failed expectation must fail the command"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL  bad checksum gets the peer disconnected: observed 0 events"),
        "{stdout}"
    );
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("verdict.json")).expect("verdict"))
            .expect("JSON");
    assert_eq!(verdict["passed"], false);
    assert_eq!(
        verdict["expectations"][0]["name"],
        "bad checksum gets the peer disconnected"
    );
    assert_eq!(verdict["expectations"][0]["passed"], false);
    let html = std::fs::read_to_string(report.join("report.html")).expect("report");
    assert!(html.contains("FAILED") && html.contains("bad checksum gets the peer disconnected"));
    render_in_chromium(&report.join("report.html"));
}

#[test]
fn extractors_turned_off_in_a_rehearsal_publish_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("no-rpc.toml");
    std::fs::write(
        &scenario,
        r#"
[scenario]
name = "without-rpc-and-p2p-extractors"
timeout_secs = 6

[[steps]]
at_secs = 1
action = "mine"
blocks = 2

[[expect]]
kind = "event"
event = "validation.block_connected"
min = 2
max = 2

[[expect]]
name = "the log extractor still runs"
kind = "event"
event = "log.block_connected_log"
min = 2
"#,
    )
    .expect("write scenario");
    let report = dir.path().join("report");
    let output = rehearse_command(&scenario, &report)
        .args(["--no-rpc-extractor", "--no-p2p-extractor"])
        .output()
        .expect("rehearse runs");
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let recording = peerlab::record::read_recording(&report.join("recording.mcap"))
        .expect("the rehearsal's recording reads");
    let subjects: std::collections::BTreeSet<&str> =
        recording.messages.iter().map(|m| &*m.subject).collect();
    for off in ["rpc", "p2p-extractor"] {
        assert!(!subjects.contains(off), "{off} recorded: {subjects:?}");
    }
    for on in ["validation", "log-extractor"] {
        assert!(subjects.contains(on), "no {on} recorded: {subjects:?}");
    }
}

/// `peerlab rehearse SCENARIO --report REPORT`, ready for more arguments.
fn rehearse_command(scenario: &Path, report: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peerlab"));
    command
        .arg("rehearse")
        .arg(scenario)
        .arg("--report")
        .arg(report);
    command
}

/// Inbound messages by type that `peer` sent in a recording, counted straight from the file.
fn recorded_counts(path: &Path, peer: &RecordedPeer) -> BTreeMap<String, u64> {
    let recording = peerlab::record::read_recording(path).expect("recording reads");
    let mut counts = BTreeMap::new();
    for message in &recording.messages {
        let Ok(event) = Event::decode(message.data.as_slice()) else {
            continue;
        };
        let Some(PeerObserverEvent::EbpfExtractor(ebpf)) = event.peer_observer_event else {
            continue;
        };
        let Some(EbpfEvent::Message(m)) = ebpf.ebpf_event else {
            continue;
        };
        let ours = match peer {
            RecordedPeer::Id(id) => m.meta.peer_id == *id,
            RecordedPeer::Addr(addr) => &m.meta.addr == addr,
        };
        if ours && m.meta.inbound {
            *counts.entry(m.meta.command.clone()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn replayed_peers_reproduce_their_message_counts_at_the_node() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/replay-recorded-peer.toml");
    let scenario = Scenario::from_file(&file).expect("scenario parses");
    let report = tempfile::tempdir().expect("report dir");
    let stack = StackSpec::Embedded(common::installation(), Extractors::default());
    let (verdict, observed) = runtime
        .block_on(rehearse(&stack, &file, report.path(), &Shutdown::new()))
        .expect("scenario runs");
    assert!(verdict.passed, "{:?}", verdict.expectations);
    let mut replayers = 0;
    for group in &scenario.peers {
        let Behaviour::ReplayRecorded(replay) = &group.behaviour else {
            continue;
        };
        replayers += 1;
        let expected = recorded_counts(&scenario.resolve(&replay.recording), &replay.peer);
        assert!(!expected.is_empty(), "group {} replays nothing", group.name);
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for event in observed.iter().filter(|o| {
            o.group.as_deref() == Some(group.name.as_str())
                && o.category.as_deref() == Some("message")
                && o.body["meta"]["inbound"] == true
        }) {
            let command = event.body["meta"]["command"].as_str().unwrap_or("?");
            *seen.entry(command.to_string()).or_default() += 1;
        }
        assert_eq!(
            seen, expected,
            "group {}: inbound messages by type at the node (left) vs the recording (right)",
            group.name
        );
    }
    assert!(
        replayers >= 2,
        "the scenario replays several recorded peers"
    );
}

#[test]
fn rehearses_against_a_running_stack() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // "The user's stack": nats-server, a regtest node and peerlab's extractor publishing its
    // drop counters every 200 ms, all started here, not by the rehearsal.
    // The user's NATS requires a user and password: one for their extractor, one for the
    // rehearsal (given in a file, as a deployment keeps it).
    const NATS_PASSWORD: &str = "Nats-Pa55-0b7d31";
    let nats = NatsServer::start_with_config(
        &common::nats_server(),
        &format!(
            "authorization {{ users = [\n  {{user: extractor, password: extractor}}\n  {{user: watcher, password: \"{NATS_PASSWORD}\"}}\n] }}"
        ),
    )
    .expect("nats-server with authorization");
    let mut config = RegtestConfig::new(common::bitcoind());
    // An RPC user for the rehearsal, so its password travels on the command line and can be
    // searched for afterwards (issue 9.2); the cookie stays for the harness.
    const RPC_PASSWORD: &str = "Rpc-Pa55-5e2f9a";
    config.extra_args = vec!["-v2transport=0".into(), rpcauth("rehearser", RPC_PASSWORD)];
    let node = RegtestNode::start(&config).expect("node");
    let pid = node.pid().expect("pid");
    let extractor = runtime.block_on(async {
        let extractor_login = peerlab::bus::NatsOptions {
            user: Some("extractor".into()),
            password: Some("extractor".into()),
            ..peerlab::bus::NatsOptions::local(nats.url())
        };
        let publisher = peerlab::bus::Publisher::connect(
            &extractor_login,
            peerlab::bus::SubjectScheme::Flat,
            peerlab::bus::PublisherConfig::default(),
        )
        .await
        .expect("the extractor's publisher logs in");
        let mut ebpf = EbpfConfig::new(common::bitcoind(), Target::Pid(pid));
        ebpf.report_period = Duration::from_millis(200);
        let extractor =
            EbpfExtractor::start(ebpf, Arc::new(publisher), Shutdown::new()).expect("extractor");
        common::wait_traced(&extractor.stats(), pid).await;
        extractor
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("existing.toml");
    std::fs::write(
        &scenario,
        r#"
[scenario]
name = "against-my-node"
timeout_secs = 20

[node]
mine_at_start = 101

[[peers]]
name = "flooder"
count = 1
behaviour = "addr_flood"
entries_per_message = 1001
start_at_secs = 1

[[steps]]
at_secs = 2
action = "mine"
blocks = 2

[[expect]]
kind = "event"
event = "connection.misbehaving"
filters = { message = "addr message size = 1001" }
group = "flooder"
min = 1
max = 1
deadline_secs = 5

[[expect]]
kind = "event"
event = "validation.block_connected"
min = 2
max = 2
deadline_secs = 5

[[expect]]
kind = "rpc"
method = "getblockcount"
value = 103
at_secs = 4

[[expect]]
kind = "drops"
max = 0
"#,
    )
    .expect("write scenario");
    let report = dir.path().join("report");
    let password_file = dir.path().join("nats-password");
    std::fs::write(&password_file, format!("{NATS_PASSWORD}\n")).expect("password file");
    let output = rehearse_command(&scenario, &report)
        .args(["--log", "debug", "-a", &nats.url()])
        .args(["--nats-user", "watcher", "--nats-password-file"])
        .arg(&password_file)
        .args(["--rpc-url", &format!("http://{}", node.rpc_addr())])
        .args(["--rpc-user", "rehearser", "--rpc-password", RPC_PASSWORD])
        .args(["--p2p", &node.p2p_addr().to_string()])
        .output()
        .expect("rehearse runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("verdict.json")).expect("verdict"))
            .expect("JSON");
    assert_eq!(verdict["stack"], "existing");
    assert_eq!(verdict["passed"], true, "{verdict}");
    // The user's node got our blocks and still runs; its mock clock was left alone.
    let height: u64 = peerlab::node::NodeRpc::height(&node).expect("height");
    assert_eq!(height, 103);
    let info = peerlab::record::read_recording(&report.join("recording.mcap")).expect("recording");
    assert!(info.messages.len() > 10, "the run was recorded");
    runtime.block_on(extractor.stop()).expect("extractor stops");
    // No secret in the logs, the report files, the recording (raw, decompressed, inspect/cat).
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--rpc-password given on the command line"),
        "warned about the visible password"
    );
    for secret in [RPC_PASSWORD, NATS_PASSWORD] {
        common::assert_no_secret(&output.stdout, secret, "rehearse stdout");
        common::assert_no_secret(&output.stderr, secret, "rehearse log");
        for file in ["verdict.json", "report.html"] {
            let bytes = std::fs::read(report.join(file)).expect("report file");
            common::assert_no_secret(&bytes, secret, file);
        }
        common::assert_recording_has_no_secret(&report.join("recording.mcap"), secret);
    }
}

/// An `-rpcauth=USER:SALT$HMAC` argument for `password`, as Bitcoin Core's `rpcauth.py`
/// makes it: HMAC-SHA256 keyed with the salt's text over the password.
fn rpcauth(user: &str, password: &str) -> String {
    use hmac::Mac as _;
    let salt = "5f0c2b9d7e4a16c38b2d9e0f1a7c4b63";
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(salt.as_bytes()).expect("any key length");
    mac.update(password.as_bytes());
    format!(
        "-rpcauth={user}:{salt}${}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Renders a report in headless Chromium (Debian's, installed by the quickstart): it must
/// load without console messages (the page has no scripts, so any would be an error), and
/// the screenshot is kept in target/ for people to look at.
fn render_in_chromium(page: &Path) {
    let profile = tempfile::tempdir().expect("profile dir");
    let shot = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("rehearsal-report.png");
    let _ = std::fs::remove_file(&shot);
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (the quickstart installs Debian's chromium)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = String::from_utf8_lossy(&output.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages while rendering the report: {console:?}"
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
}
