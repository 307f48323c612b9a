//! Topologies through `peerlab rehearse`: the three shipped topology scenarios pass with the
//! real engine (podman's Docker API), real bitcoind containers and the observer attached
//! from the host; every event names its node (the propagation table has one column per
//! observed node); a container killed mid-run fails the run with its name and last log
//! lines; and nothing is left behind: no container, network, volume or host address.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder,
};
use peerlab::container::{Engine, LABEL};
use peerlab::rehearse::{rehearse, Extractors, StackSpec};
use peerlab::shutdown::Shutdown;
use serde_json::Value;

use super::{common, ONE_AT_A_TIME};

/// Bound on one topology run end to end (the scenarios time out at 60 s at most).
const RUN_LIMIT: Duration = Duration::from_secs(240);

fn topology(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/topology")
        .join(name)
        .display()
        .to_string()
}

/// What peerlab may have left: containers and networks with its label or name prefix,
/// volumes with its label, and host addresses it added to a bridge (10.N.M.K/32, M >= 1).
async fn leftovers(engine: &Engine) -> Vec<String> {
    let docker = engine.docker();
    let mut left = Vec::new();
    let all = ListContainersOptionsBuilder::default().all(true).build();
    for c in docker
        .list_containers(Some(all))
        .await
        .expect("list containers")
    {
        let labelled = c.labels.as_ref().is_some_and(|l| l.contains_key(LABEL));
        let named = c
            .names
            .iter()
            .flatten()
            .any(|n| n.trim_start_matches('/').starts_with("peerlab-"));
        if labelled || named {
            left.push(format!("container {:?}", c.names));
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::default().build()))
        .await
        .expect("list networks");
    for n in networks {
        let name = n.name.clone().unwrap_or_default();
        if name.starts_with("peerlab-") || n.labels.as_ref().is_some_and(|l| l.contains_key(LABEL))
        {
            left.push(format!("network {name}"));
        }
    }
    let filters = HashMap::from([("label", vec![LABEL.to_string()])]);
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list volumes");
    for v in volumes.volumes.into_iter().flatten() {
        left.push(format!("volume {}", v.name));
    }
    let addresses = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip addr");
    for line in String::from_utf8_lossy(&addresses.stdout).lines() {
        let host_address = line.split_whitespace().any(|word| {
            word.strip_prefix("10.")
                .and_then(|rest| rest.strip_suffix("/32"))
                .is_some_and(|rest| rest.split('.').nth(1).is_some_and(|m| m != "0"))
        });
        if host_address {
            left.push(format!("host address: {line}"));
        }
    }
    left
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// Runs one scenario through the binary; returns its verdict and stdout.
fn run_through_the_binary(file: &str, report: &Path) -> (Value, String) {
    let report_arg = report.display().to_string();
    let output = common::run_peerlab(&["rehearse", "--report", &report_arg, file]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let verdict: Value = std::fs::read_to_string(report.join("verdict.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| {
            panic!(
                "{file}: no verdict\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(
        output.status.success(),
        "{file} failed:\n{stdout}\n{}",
        serde_json::to_string_pretty(&verdict["expectations"]).unwrap_or_default()
    );
    (verdict, stdout)
}

#[test]
fn the_topology_scenarios_pass_through_peerlab_rehearse_and_leave_nothing_behind() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::installation();
    let rt = runtime();
    let engine = rt.block_on(Engine::connect()).expect("the engine answers");
    let before = rt.block_on(leftovers(&engine));
    assert!(before.is_empty(), "left over before the test: {before:?}");
    let mut figures = Vec::new();

    // The three run at once: each has its own network and containers, and they spend most of
    // their time waiting on Bitcoin Core's relay delays, not on the CPU.
    let reports: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("report dir"))
        .collect();
    let runs: Vec<std::thread::JoinHandle<(Value, String)>> =
        ["propagation-line.toml", "eclipse.toml", "spy.toml"]
            .iter()
            .zip(&reports)
            .map(|(file, report)| {
                let (file, report) = (topology(file), report.path().to_path_buf());
                std::thread::spawn(move || run_through_the_binary(&file, &report))
            })
            .collect();
    let mut results: Vec<(Value, String)> = runs
        .into_iter()
        .map(|run| run.join().expect("a scenario run panicked"))
        .collect();
    assert_eq!(rt.block_on(leftovers(&engine)), Vec::<String>::new());
    let (spy, spy_stdout) = results.pop().expect("spy");
    let (eclipse, _) = results.pop().expect("eclipse");
    let (line, line_stdout) = results.pop().expect("propagation");

    // Propagation along the line: every node's events, each under its own subject.
    assert_eq!(line["stack"], "topology");
    assert_eq!(line["nodes"].as_array().map(Vec::len), Some(5));
    let rows = line["propagation"].as_array().expect("propagation table");
    let nodes_of = |kind: &str| -> Vec<String> {
        rows.iter()
            .find(|r| r["kind"] == kind)
            .and_then(|r| r["after_first_secs"].as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let all: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    assert_eq!(
        nodes_of("tx"),
        all,
        "the transaction seen by every node: {rows:?}"
    );
    assert_eq!(
        nodes_of("block"),
        all,
        "the block seen by every node: {rows:?}"
    );
    let tx = rows.iter().find(|r| r["kind"] == "tx").expect("tx row");
    assert_eq!(
        tx["after_first_secs"]["n1"], 0.0,
        "n1 sees its own transaction first"
    );
    assert!(line_stdout.contains("propagation  tx"), "{line_stdout}");
    // The recording keeps each node's events under its own subjects.
    let recording = reports[0]
        .path()
        .join("recording.mcap")
        .display()
        .to_string();
    let inspected = common::stdout_of(&common::run_peerlab(&["inspect", &recording]));
    for node in &all {
        for subject in ["netmsg", "mempool", "validation", "rpc"] {
            let wanted = format!("peerlab.{node}.{subject}");
            assert!(
                inspected.contains(&wanted),
                "{wanted} missing:\n{inspected}"
            );
        }
    }
    let page = std::fs::read_to_string(reports[0].path().join("report.html")).expect("report");
    assert!(page.contains("<h2>Propagation</h2>") && page.contains("<th>n5</th>"));
    figures.push(format!(
        "propagation-line: up in {:.1}s; tx after n1: {}; block after n1: {}",
        line["startup_secs"].as_f64().unwrap_or(0.0),
        tx["after_first_secs"],
        rows.iter()
            .find(|r| r["kind"] == "block")
            .map(|r| r["after_first_secs"].to_string())
            .unwrap_or_default()
    ));

    // The eclipse attempt from fifty addresses.
    let attackers = eclipse["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "attackers"))
        .expect("attackers group");
    assert_eq!(attackers["peers"], 50);
    assert_eq!(eclipse["peers_left_connected"], 0);
    figures.push(format!(
        "eclipse: up in {:.1}s; attackers: {} handshakes, {} disconnected by the node",
        eclipse["startup_secs"].as_f64().unwrap_or(0.0),
        attackers["handshakes"],
        attackers["disconnected_by_node"]
    ));

    // The spy on three nodes: which node announced the transaction first.
    let relay = spy["relay"].as_array().expect("relay table");
    let tx = relay
        .iter()
        .find(|r| r["group"] == "spy" && (r["kind"] == "tx" || r["kind"] == "wtx"))
        .unwrap_or_else(|| panic!("the spy recorded no transaction: {relay:?}"));
    let announced_by = tx["nodes"].as_array().map_or(0, Vec::len);
    assert!(
        announced_by >= 2,
        "at least two nodes relayed to the spy: {tx}"
    );
    assert!(["a", "b", "c"].contains(&tx["first_node"].as_str().unwrap_or("")));
    assert!(spy_stdout.contains("relay  spy"), "{spy_stdout}");
    figures.push(format!(
        "spy: first relayed by {}; {}",
        tx["first_node"], tx["nodes"]
    ));
    common::figures("topologies", &figures.join("\n"));
}

#[test]
fn a_container_that_dies_fails_the_run_with_its_name_and_last_log_lines() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = StackSpec::Embedded(common::installation(), Extractors::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("dies.toml");
    std::fs::write(
        &scenario,
        r#"
[scenario]
name = "a-node-dies"
timeout_secs = 60

[[node]]
name = "home"
observe = true
addnode = ["victim"]

[[node]]
name = "victim"

[[expect]]
kind = "rpc"
method = "getblockcount"
op = ">="
value = 101
at_secs = 55
"#,
    )
    .expect("scenario");
    let report = dir.path().join("report");
    let rt = runtime();
    let engine = rt.block_on(Engine::connect()).expect("the engine answers");
    let (verdict, killed) = rt.block_on(async {
        let run = tokio::spawn({
            let (scenario, report) = (scenario.clone(), report.clone());
            async move { rehearse(&stack, &scenario, &report, &Shutdown::new()).await }
        });
        // Time zero has passed once the recorder writes its file; then kill the victim.
        let killed = tokio::time::timeout(RUN_LIMIT, async {
            loop {
                if report.join("recording.mcap").exists() {
                    let all = ListContainersOptionsBuilder::default().build();
                    let victims: Vec<String> = engine
                        .docker()
                        .list_containers(Some(all))
                        .await
                        .expect("list")
                        .into_iter()
                        .flat_map(|c| c.names.unwrap_or_default())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .filter(|n| n.starts_with("peerlab-") && n.ends_with("-victim"))
                        .collect();
                    if let Some(victim) = victims.first() {
                        let kill = KillContainerOptionsBuilder::default()
                            .signal("KILL")
                            .build();
                        engine
                            .docker()
                            .kill_container(victim, Some(kill))
                            .await
                            .expect("kill");
                        return victim.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the victim's container appeared");
        let verdict = tokio::time::timeout(RUN_LIMIT, run)
            .await
            .expect("the run ends")
            .expect("joins")
            .expect("a verdict, not an error: the run was under way");
        (verdict.0, killed)
    });
    assert!(!verdict.passed, "a dead container must fail the run");
    let error = verdict.step_errors.first().cloned().unwrap_or_default();
    assert!(error.contains(&killed), "the error names {killed}: {error}");
    assert!(error.contains("exited with code 137"), "{error}");
    assert!(
        error.contains("Bitcoin Core") || error.contains("UpdateTip") || error.contains("net"),
        "the error quotes the container's last log lines: {error}"
    );
    assert!(
        verdict.duration_secs < 50.0,
        "the run stopped at the death, not at its timeout ({:.1}s)",
        verdict.duration_secs
    );
    assert_eq!(rt.block_on(leftovers(&engine)), Vec::<String>::new());
}
