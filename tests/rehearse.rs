//! `peerlab rehearse` against the real stack: every scenario in scenarios/ passes, and a
//! deliberately wrong expectation fails the run and is named in the verdict and report.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use peerlab::rehearse::{rehearse, StackSpec};

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
    let stack = StackSpec::Embedded(common::installation());
    let files = scenarios();
    assert!(files.len() >= 10, "at least 10 scenarios: {files:?}");
    let mut failures = Vec::new();
    for file in files {
        let report = tempfile::tempdir().expect("report dir");
        let (verdict, _) = runtime
            .block_on(rehearse(&stack, &file, report.path()))
            .expect("scenario runs");
        eprintln!(
            "{}: {} in {:.1}s",
            verdict.scenario,
            if verdict.passed { "passed" } else { "FAILED" },
            verdict.duration_secs
        );
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
    let output = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .arg("rehearse")
        .arg(&scenario)
        .arg("--report")
        .arg(&report)
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
