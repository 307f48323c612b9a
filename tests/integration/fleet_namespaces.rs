//! The fleet of the NixOS module, run here as processes in network namespaces: two
//! honeynodes and a collector, each in its own namespace, linked by veth pairs to a bridge in
//! the collector's. The command lines are the ones the module generates
//! (`tests/nix/fleet-plan.nix`, evaluated with nixpkgs' lib), with store paths replaced by
//! the local binaries and state directories moved under a temporary root per host; the NixOS
//! VM test (`vm-tests/fleet.nix`) runs the same units under systemd where KVM exists.
//!
//! nats-server: Debian's 2.9.10 on every host (the layout needs no 2.10 feature).
//!
//! What it shows: both nodes' events reach the collector's recording under
//! `peerlab.<node>.<subject>`; `peerlab status` at the collector sees both nodes healthy,
//! then node1 unhealthy while its link is down; with node1's link cut for 30 s while blocks
//! are mined on it, and the collector SIGKILLed and restarted mid-catch-up, the collector
//! ends with exactly the events each node's local recorder saw (count by node and kind),
//! none twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::netns::Netns;
use crate::common::{self, ChildGuard};

const NODES: [&str; 2] = ["node1", "node2"];
const COLLECTOR_ADDRESS: &str = "10.21.1.1";
const LEAF_PASSWORD_FILE: &str = "/run/peerlab-test/leaf-password";
const RPC_PASSWORD_FILE: &str = "/run/peerlab-test/rpc-password";
const RPC_PASSWORD: &str = "fleet-test-rpc-password";
const LEAF_PASSWORD: &str = "fleet-test-leaf-password";
/// How long node1's link stays down.
const OUTAGE: Duration = Duration::from_secs(30);
/// Bound for the collector to catch up once the link is back (JetStream sourcing restarts
/// some seconds after the leafnode reconnects, and TCP retransmits back off during the cut).
const CATCH_UP: Duration = Duration::from_secs(180);
/// A regtest address (BIP 173's test vector) to mine to.
const MINE_TO: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// The state and runtime directories the module's units declare (systemd creates them).
const STATE_DIRECTORIES: [&str; 7] = [
    "var/lib/peerlab-bitcoind",
    "run/peerlab-bitcoind",
    "var/lib/peerlab/recordings",
    "var/lib/peerlab/spool",
    "var/lib/peerlab-nats",
    "run/peerlab-nats",
    "var/lib/peerlab-collector/recordings",
];

/// The event subjects (peer-observer's kinds) compared between a node and the collector.
const EVENT_KINDS: [&str; 8] = [
    "netmsg",
    "netconn",
    "mempool",
    "validation",
    "rpc",
    "p2p-extractor",
    "log-extractor",
    "ipc",
];

/// `rpcauth`'s `salt$hmac` for `password` (HMAC-SHA256 keyed by the salt), as
/// `share/rpcauth` computes it.
fn rpcauth_hmac(salt: &str, password: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("any key length");
    mac.update(password.as_bytes());
    format!("{salt}${}", hex::encode(mac.finalize().into_bytes()))
}

/// The fleet plan: what the module generates for the two nodes and the collector.
fn fleet_plan() -> Value {
    fleet_plan_with(&[])
}

/// The fleet plan with some of its parameters (`--argstr NAME VALUE`) changed.
fn fleet_plan_with(overrides: &[(&str, &str)]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hmac = rpcauth_hmac("5a17f00d5a17f00d", RPC_PASSWORD);
    let nodes = NODES.join(",");
    let mut arguments: BTreeMap<&str, &str> = BTreeMap::from([
        ("nodes", nodes.as_str()),
        ("collectorHost", COLLECTOR_ADDRESS),
        ("leafPasswordFile", LEAF_PASSWORD_FILE),
        ("rpcPasswordFile", RPC_PASSWORD_FILE),
        ("rpcPasswordHMAC", hmac.as_str()),
    ]);
    arguments.extend(overrides.iter().copied());
    let output = Command::new("nix-instantiate")
        .current_dir(root)
        .args(["--eval", "--strict", "--json", "tests/nix/fleet-plan.nix"])
        .args(
            arguments
                .iter()
                .flat_map(|(name, value)| ["--argstr", name, value]),
        )
        .output()
        .expect("nix-instantiate runs (the quickstart installs Debian's nix-bin)");
    assert!(
        output.status.success(),
        "the fleet plan does not evaluate: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the plan is JSON")
}

/// One host of the fleet: a namespace, a directory standing in for its root file system,
/// and the units started in it.
struct Host {
    name: String,
    netns: std::rc::Rc<Netns>,
    root: PathBuf,
    plan: Value,
    units: BTreeMap<String, ChildGuard>,
}

impl Host {
    fn new(name: &str, netns: std::rc::Rc<Netns>, base: &Path, plan: Value) -> Host {
        let root = base.join(name);
        std::fs::create_dir_all(root.join("logs")).expect("host root");
        // What the units' StateDirectory= and RuntimeDirectory= create under systemd.
        for dir in STATE_DIRECTORIES {
            std::fs::create_dir_all(root.join(dir)).expect("state directory");
        }
        // The generated files (bitcoin.conf, the nats-server template) at their store paths.
        if let Some(files) = plan["files"].as_object() {
            for (store_path, text) in files {
                let text = text.as_str().expect("file text");
                let local = root.join("store").join(store_path.trim_start_matches('/'));
                std::fs::create_dir_all(local.parent().expect("parent")).expect("store dir");
                std::fs::write(&local, localize_text(text, &root)).expect("store file");
            }
        }
        Host {
            name: name.to_string(),
            netns,
            root,
            plan,
            units: BTreeMap::new(),
        }
    }

    fn unit(&self, unit: &str) -> &Value {
        let value = &self.plan["units"][unit];
        assert!(
            value.is_object(),
            "{}: no unit {unit} in the plan",
            self.name
        );
        value
    }

    /// The unit's credentials directory (`%d`), filled from its `LoadCredential` entries with
    /// the test's secrets.
    fn credentials(&self, unit: &str) -> PathBuf {
        let dir = self.root.join("credentials").join(unit);
        std::fs::create_dir_all(&dir).expect("credentials dir");
        for entry in self.unit(unit)["loadCredential"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let entry = entry.as_str().expect("LoadCredential entry");
            let (name, source) = entry.split_once(':').expect("name:path");
            let secret = match source {
                LEAF_PASSWORD_FILE => LEAF_PASSWORD,
                RPC_PASSWORD_FILE => RPC_PASSWORD,
                other => panic!("{unit}: unexpected credential source {other}"),
            };
            std::fs::write(dir.join(name), secret).expect("credential");
        }
        dir
    }

    /// An argv of the plan, made local: store paths to local binaries and files, `%d` to the
    /// unit's credentials, state and runtime directories under the host's root.
    fn localize(&self, unit: &str, argv: &[String]) -> Vec<String> {
        let credentials = self.credentials(unit);
        argv.iter()
            .map(|arg| {
                let arg = arg.replace("%d", &credentials.display().to_string());
                localize_text(&arg, &self.root)
            })
            .collect()
    }

    /// Runs the unit's ExecStartPre steps (install, replace-secret), then starts ExecStart in
    /// the namespace with the unit's environment; output goes to `logs/<unit>.log`.
    fn start(&mut self, unit: &str) {
        let spec = self.unit(unit).clone();
        for pre in spec["execStartPre"].as_array().into_iter().flatten() {
            let words: Vec<String> = pre
                .as_str()
                .expect("ExecStartPre line")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            self.run_pre(unit, &words);
        }
        let argv: Vec<String> = serde_json::from_value(spec["argv"].clone())
            .unwrap_or_else(|_| panic!("{unit}: ExecStart as argv"));
        let argv = self.localize(unit, &argv);
        // Appended: a unit started again keeps its earlier runs' lines.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("logs").join(format!("{unit}.log")))
            .expect("log file");
        let mut command = self.netns.command(&argv[0]);
        command
            .args(&argv[1..])
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (key, value) in spec["environment"].as_object().into_iter().flatten() {
            command.env(key, value.as_str().unwrap_or_default());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {unit} starts: {e}", self.name));
        self.units.insert(unit.to_string(), ChildGuard(child));
    }

    /// A step before a unit's start: the module's `install` copy and `replace-secret` (which
    /// nixpkgs provides; done here in place, byte for byte what it does).
    fn run_pre(&self, unit: &str, words: &[String]) {
        let words = self.localize(unit, words);
        let program = Path::new(&words[0])
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        match program.as_str() {
            "install" => {
                let target = Path::new(words.last().expect("target"));
                std::fs::create_dir_all(target.parent().expect("parent")).expect("runtime dir");
                let status = Command::new("install")
                    .args(&words[1..])
                    .status()
                    .expect("install runs");
                assert!(status.success(), "{unit}: {words:?}");
            }
            "replace-secret" => {
                let [_, placeholder, secret_file, target] = &words[..] else {
                    panic!("{unit}: replace-secret takes three arguments: {words:?}")
                };
                let secret = std::fs::read_to_string(secret_file).expect("secret");
                let text = std::fs::read_to_string(target).expect("target");
                assert!(
                    text.contains(placeholder.as_str()),
                    "{unit}: no placeholder"
                );
                std::fs::write(
                    target,
                    text.replace(placeholder.as_str(), secret.trim_end()),
                )
                .expect("write");
            }
            other => panic!("{unit}: no local stand-in for ExecStartPre program {other}"),
        }
    }

    /// Runs a oneshot unit to completion (bounded) and returns its output.
    fn run_oneshot(&self, unit: &str) -> String {
        let argv: Vec<String> =
            serde_json::from_value(self.unit(unit)["argv"].clone()).expect("argv");
        let argv = self.localize(unit, &argv);
        let output = run_bounded(
            self.netns.command(&argv[0]).args(&argv[1..]),
            Duration::from_secs(90),
        );
        assert!(
            output.status.success(),
            "{}: {unit} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Sends SIGTERM to a unit and waits (bounded) for it to exit.
    fn stop(&mut self, unit: &str) {
        if let Some(mut child) = self.units.remove(unit) {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().expect("wait").is_none() {
                assert!(
                    Instant::now() < deadline,
                    "{}: {unit} ignores SIGTERM",
                    self.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills a unit with SIGKILL (a crash).
    fn kill(&mut self, unit: &str) {
        if let Some(mut child) = self.units.remove(unit) {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// Waits (bounded) until a TCP port accepts connections inside the namespace.
    fn wait_for_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = self
                .netns
                .command("bash")
                .arg("-c")
                .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
                .stderr(Stdio::null())
                .status()
                .expect("bash runs");
            if probe.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: nothing listens on port {port}; logs in {}",
                self.name,
                self.root.join("logs").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `bitcoin-cli` against this host's node (cookie auth from its data directory).
    fn cli(&self, args: &[&str]) -> String {
        let cli = installation()
            .bitcoin_cli
            .clone()
            .expect("setup provides bitcoin-cli");
        let output = run_bounded(
            self.netns
                .command(cli)
                .arg("-regtest")
                .arg("-rpcport=18443")
                .arg("-rpcwait")
                .arg("-rpcwaittimeout=60")
                .arg(format!(
                    "-datadir={}",
                    self.root.join("var/lib/peerlab-bitcoind").display()
                ))
                .args(args),
            Duration::from_secs(90),
        );
        assert!(
            output.status.success(),
            "{}: bitcoin-cli {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// The provisioned programs, looked up once (the lookup checks the binaries' checksums).
fn installation() -> &'static peerlab::node::Installation {
    static INSTALLATION: std::sync::OnceLock<peerlab::node::Installation> =
        std::sync::OnceLock::new();
    INSTALLATION.get_or_init(common::installation)
}

/// Store paths to local programs and files, and absolute state paths under `root`.
fn localize_text(text: &str, root: &Path) -> String {
    let installation = installation();
    let bitcoin_node = installation
        .bitcoin_node
        .clone()
        .expect("setup builds bitcoin-node");
    let store = root.join("store").join("nix/store");
    text.replace(
        "/nix/store/stub-peerlab/bin/peerlab",
        env!("CARGO_BIN_EXE_peerlab"),
    )
    .replace(
        "/nix/store/stub-bitcoind-traceable/libexec/bitcoin-node",
        &bitcoin_node.display().to_string(),
    )
    .replace(
        "/nix/store/stub-nats-server/bin/nats-server",
        &installation.nats_server.display().to_string(),
    )
    .replace("/nix/store/stub-coreutils/bin/install", "install")
    .replace("/nix/store/", &format!("{}/", store.display()))
    .replace("/var/lib/", &format!("{}/var/lib/", root.display()))
    .replace("/run/", &format!("{}/run/", root.display()))
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Runs `command` to completion, killing it after `limit`.
fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Recording files in `dir` (complete or still being written).
fn mcap_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Events per kind in a node's local recording (flat subjects).
fn local_counts(dir: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for file in mcap_files(dir) {
        for message in peerlab::record::RecordingStream::open(&file).expect("opens") {
            let message = message.expect("complete message");
            if EVENT_KINDS.contains(&&*message.subject) {
                *counts.entry(message.subject.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

/// Events per (node, kind) at the collector, and repeated stream sequences.
fn collector_counts(dir: &Path) -> (BTreeMap<(String, String), u64>, u64) {
    let files = mcap_files(dir);
    let (counts, repeated) =
        peerlab::record::collect::count_by_node(&files, "peerlab").expect("collector files read");
    let events = counts
        .into_iter()
        .filter(|((_, kind), _)| EVENT_KINDS.contains(&kind.as_str()))
        .collect();
    (events, repeated)
}

/// `peerlab status` at the collector for both nodes; returns (exit code, stdout).
fn fleet_status(collector: &Host) -> (i32, String) {
    let output = run_bounded(
        collector
            .netns
            .command(env!("CARGO_BIN_EXE_peerlab"))
            .args(["status", "-a", "nats://127.0.0.1:4222"])
            .args(["--subject-prefix", "peerlab", "--node", "*"])
            .args(["--expect-nodes", &NODES.join(",")])
            .args(["--window", "12"]),
        Duration::from_secs(60),
    );
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_fleet_in_namespaces_loses_nothing_across_a_cut_link_and_a_killed_collector() {
    let started = Instant::now();
    let phase = |what: &str| println!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
    let plan = fleet_plan();
    let base = tempfile::tempdir().expect("temp root");
    let tag = std::process::id() % 100_000;

    // Hosts: a bridge in the collector's namespace joins one veth per node.
    let collector_ns = Netns::create(&format!("plc-{tag}"));
    common::netns::ip(&[
        "-n",
        collector_ns.name(),
        "link",
        "add",
        "br0",
        "type",
        "bridge",
    ]);
    common::netns::ip(&["-n", collector_ns.name(), "link", "set", "br0", "up"]);
    common::netns::ip(&[
        "-n",
        collector_ns.name(),
        "addr",
        "add",
        &format!("{COLLECTOR_ADDRESS}/16"),
        "dev",
        "br0",
    ]);
    let mut nodes = Vec::new();
    for (index, node) in NODES.iter().enumerate() {
        let ns = Netns::create(&format!("pl{}-{tag}", index + 1));
        let outside = format!("to{}", index + 1);
        common::netns::ip(&[
            "link",
            "add",
            "up0",
            "netns",
            ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            &outside,
            "netns",
            collector_ns.name(),
        ]);
        common::netns::ip(&[
            "-n",
            ns.name(),
            "addr",
            "add",
            &format!("10.21.0.{}/16", index + 1),
            "dev",
            "up0",
        ]);
        common::netns::ip(&["-n", ns.name(), "link", "set", "up0", "up"]);
        common::netns::ip(&[
            "-n",
            collector_ns.name(),
            "link",
            "set",
            &outside,
            "master",
            "br0",
        ]);
        common::netns::ip(&["-n", collector_ns.name(), "link", "set", &outside, "up"]);
        nodes.push(Host::new(
            node,
            std::rc::Rc::new(ns),
            base.path(),
            plan["honeynodes"][node].clone(),
        ));
    }
    let mut collector = Host::new(
        "collector",
        std::rc::Rc::new(collector_ns),
        base.path(),
        plan["collector"].clone(),
    );

    // The collector first: its nats-server (leafnode hub, JetStream) and its recorder.
    collector.start("peerlab-nats");
    collector.wait_for_port(4222);
    collector.start("peerlab-collector");

    // Each honeynode: nats-server with the FLEET account and its leafnode link, its stream,
    // the local recorder, the p2p extractor (which bitcoind dials), bitcoind, the other
    // extractors.
    for node in nodes.iter_mut() {
        phase(&format!("starting {}", node.name));
        node.start("peerlab-nats");
        node.wait_for_port(4222);
        let stream = node.run_oneshot("peerlab-node-stream");
        assert!(
            stream.contains(&format!("PEERLAB_{}", node.name)),
            "{stream}"
        );
        node.start("peerlab-recorder");
        node.start("peerlab-extractor-p2p");
        node.wait_for_port(28213);
        phase("  its nats-server, stream, recorder and p2p extractor run");
        node.start("peerlab-bitcoind");
        node.cli(&["getblockcount"]);
        phase("  its bitcoind answers");
        for extractor in ["ebpf", "rpc", "log", "ipc"] {
            node.start(&format!("peerlab-extractor-{extractor}"));
        }
        node.cli(&["generatetoaddress", "3", MINE_TO]);
    }

    phase("both honeynodes run every unit; asking peerlab status at the collector");
    // Both nodes healthy at the collector.
    let (code, report) = fleet_status(&collector);
    println!("status, both links up (exit {code}):\n{report}");
    assert_eq!(code, 0, "both nodes should be healthy:\n{report}");

    phase("cutting node1's link");
    // Cut node1's link for OUTAGE while blocks are mined on it.
    let outage_started = Instant::now();
    collector.netns.set_link("to1", false);
    let (code, report) = fleet_status(&collector);
    println!("status, node1's link down (exit {code}):\n{report}");
    assert_eq!(
        code, 1,
        "node1 should be unhealthy while its link is down:\n{report}"
    );
    let node1_line = report
        .lines()
        .find(|l| l.contains("node1"))
        .unwrap_or_default()
        .to_string();
    assert!(node1_line.to_lowercase().contains("unhealthy"), "{report}");
    let mut mined_during_outage = 0;
    while outage_started.elapsed() < OUTAGE {
        nodes[0].cli(&["generatetoaddress", "1", MINE_TO]);
        mined_during_outage += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    collector.netns.set_link("to1", true);
    let outage = outage_started.elapsed();
    nodes[1].cli(&["generatetoaddress", "2", MINE_TO]);
    phase("node1's link is back");

    // A crash mid-catch-up: kill the collector once it has recorded something after the
    // link came back, and start it again.
    let recordings = collector.root.join("var/lib/peerlab-collector/recordings");
    let before_kill = collector_counts(&recordings).0.values().sum::<u64>();
    let deadline = Instant::now() + CATCH_UP;
    while collector_counts(&recordings).0.values().sum::<u64>() <= before_kill {
        assert!(
            Instant::now() < deadline,
            "the collector records nothing after the link is back"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    collector.kill("peerlab-collector");
    collector.start("peerlab-collector");
    phase("collector SIGKILLed mid-catch-up and restarted");

    // Stop the producers, then the local recorders: what they hold is what each node published.
    for node in nodes.iter_mut() {
        for extractor in ["ebpf", "rpc", "log", "ipc", "p2p"] {
            node.stop(&format!("peerlab-extractor-{extractor}"));
        }
        node.stop("peerlab-bitcoind");
        node.stop("peerlab-recorder");
    }
    let expected: BTreeMap<(String, String), u64> = nodes
        .iter()
        .flat_map(|node| {
            local_counts(&node.root.join("var/lib/peerlab/recordings"))
                .into_iter()
                .map(|(kind, n)| ((node.name.clone(), kind), n))
                .collect::<Vec<_>>()
        })
        .collect();
    for node in NODES {
        assert!(
            expected.keys().any(|(n, _)| n == node),
            "{node} published nothing: logs in {}",
            base.path().display()
        );
    }

    phase("producers stopped; waiting for the collector to catch up");
    // The collector catches up to exactly that.
    let deadline = Instant::now() + CATCH_UP;
    let (recorded, repeated) = loop {
        let (recorded, repeated) = collector_counts(&recordings);
        let complete = expected
            .iter()
            .all(|(key, n)| recorded.get(key).copied().unwrap_or(0) >= *n);
        if complete || Instant::now() >= deadline {
            break (recorded, repeated);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    phase("caught up (or gave up)");
    // What each side's JetStream holds, for a failure's explanation.
    for host in nodes.iter().chain([&collector]) {
        println!("{}: {}", host.name, host.jetstream_summary());
    }
    collector.stop("peerlab-collector");
    let (recorded_final, repeated_final) = collector_counts(&recordings);
    assert_eq!(
        recorded, recorded_final,
        "nothing arrives after the catch-up"
    );

    let mut text = String::from(
        "fleet in network namespaces (nats-server 2.9.10 on every host)\n\
         node  kind            published  recorded at the collector\n",
    );
    for ((node, kind), n) in &expected {
        let got = recorded_final
            .get(&(node.clone(), kind.clone()))
            .copied()
            .unwrap_or(0);
        text.push_str(&format!("{node:5} {kind:15} {n:10} {got:10}\n"));
    }
    let published: u64 = expected.values().sum();
    let at_collector: u64 = recorded_final.values().sum();
    let lost: u64 = expected
        .iter()
        .map(|(key, n)| n.saturating_sub(recorded_final.get(key).copied().unwrap_or(0)))
        .sum();
    text.push_str(&format!(
        "published {published}, recorded at the collector {at_collector}, lost {lost}, \
         duplicated {repeated_final}, outage {:.1} s with {mined_during_outage} blocks mined on \
         node1, collector SIGKILLed once mid-catch-up; peerlab status: both healthy (exit 0), \
         node1 unhealthy while cut (exit 1)",
        outage.as_secs_f64()
    ));
    common::figures("fleet-namespaces", &text);
    assert_eq!(repeated, 0);
    assert_eq!(repeated_final, 0, "an event recorded twice");
    assert_eq!(
        recorded_final,
        expected,
        "the collector's recording should hold every event each node published, once; logs in {}",
        collector.logs().display()
    );
}

impl Host {
    /// The JetStream streams of this host's nats-server, as its monitoring endpoint (the
    /// plan's `http` address) describes them; empty when it cannot be read.
    fn streams(&self) -> Vec<Value> {
        let address = self.plan["natsConfig"]
            .as_str()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .and_then(|c| c["http"].as_str().map(str::to_string))
            .expect("the plan's nats config has a monitoring address");
        let output = run_bounded(
            self.netns
                .command("curl")
                .args(["-s", &format!("http://{address}/jsz?streams=1&accounts=1")]),
            Duration::from_secs(10),
        );
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        json["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Each stream's name and messages, and for the collector its sources' lag (for a
    /// failure's explanation).
    fn jetstream_summary(&self) -> String {
        let mut parts = Vec::new();
        for stream in self.streams() {
            let mut text = format!(
                "{} holds {} messages",
                stream["name"].as_str().unwrap_or("?"),
                stream["state"]["messages"]
            );
            for source in stream["sources"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "; source {} lag {} active {}",
                    source["name"].as_str().unwrap_or("?"),
                    source["lag"],
                    source["active"]
                ));
            }
            parts.push(text);
        }
        if parts.is_empty() {
            return "no streams (monitoring endpoint unreadable?)".to_string();
        }
        parts.join(" | ")
    }
}

/// The collector SIGKILLed while a fast stream of events is being sourced, then restarted:
/// it resumes from the stream and its recording holds every event of the node's stream
/// exactly once. Both servers (a honeynode's and the collector's, from the plan, on their
/// own ports) share one namespace's loopback; the events are a recording replayed in a loop
/// as fast as it goes.
#[test]
fn a_killed_collector_resumes_from_the_stream_and_records_every_event_once() {
    let node_plan = fleet_plan_with(&[
        ("nodes", "node1"),
        ("collectorHost", "127.0.0.1"),
        ("natsPort", "4222"),
        ("monitorPort", "8222"),
    ]);
    let collector_plan = fleet_plan_with(&[
        ("nodes", "node1"),
        ("collectorHost", "127.0.0.1"),
        ("natsPort", "4223"),
        ("monitorPort", "8223"),
    ]);
    let base = tempfile::tempdir().expect("temp root");
    let netns = std::rc::Rc::new(Netns::create(&format!(
        "plk-{}",
        std::process::id() % 100_000
    )));
    let mut node = Host::new(
        "node1",
        netns.clone(),
        base.path(),
        node_plan["honeynodes"]["node1"].clone(),
    );
    let mut collector = Host::new(
        "collector",
        netns,
        base.path(),
        collector_plan["collector"].clone(),
    );
    collector.start("peerlab-nats");
    collector.wait_for_port(4223);
    node.start("peerlab-nats");
    node.wait_for_port(4222);
    node.run_oneshot("peerlab-node-stream");
    collector.start("peerlab-collector");

    // The events: a recording replayed in a loop, unpaced.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/observer-sample.mcap");
    let log = std::fs::File::create(node.logs().join("replay.log")).expect("log");
    let replay = ChildGuard(
        node.netns
            .command(env!("CARGO_BIN_EXE_peerlab"))
            .args([
                "replay",
                "--speed",
                "0",
                "--loop",
                "-a",
                "nats://127.0.0.1:4222",
            ])
            .arg(&sample)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("replay starts"),
    );
    node.units.insert("replay".to_string(), replay);

    // Kill the collector while it is busy, twice, and start it again each time.
    let recordings = collector.root.join("var/lib/peerlab-collector/recordings");
    let mut kills = 0;
    for threshold in [20_000, 60_000] {
        let deadline = Instant::now() + Duration::from_secs(120);
        while collector_total(&recordings) < threshold {
            assert!(Instant::now() < deadline, "the collector stopped recording");
            std::thread::sleep(Duration::from_millis(100));
        }
        collector.kill("peerlab-collector");
        kills += 1;
        collector.start("peerlab-collector");
    }
    node.stop("replay");

    // The node's stream holds what was published; the collector catches up to it.
    let stored = stream_messages(&node, "PEERLAB_node1");
    let deadline = Instant::now() + CATCH_UP;
    while collector_total(&recordings) < stored {
        assert!(
            Instant::now() < deadline,
            "the collector has {} of {stored} events; logs in {}",
            collector_total(&recordings),
            collector.logs().display()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    collector.stop("peerlab-collector");
    let files = mcap_files(&recordings);
    let (counts, repeated) =
        peerlab::record::collect::count_by_node(&files, "peerlab").expect("recordings read");
    let recorded: u64 = counts.values().sum();
    let collector_log =
        std::fs::read_to_string(collector.logs().join("peerlab-collector.log")).unwrap_or_default();
    let resumed: Vec<&str> = collector_log
        .lines()
        .filter(|l| l.contains("collecting PEERLAB_FLEET"))
        .collect();
    let mut text = format!(
        "collector killed {kills} times mid-stream: node stream {stored} messages, recorded \
         {recorded}, duplicated {repeated}, lost {}, in {} files\n",
        stored.saturating_sub(recorded),
        files.len()
    );
    for line in resumed {
        text.push_str(&format!("  {line}\n"));
    }
    common::figures("fleet-collector-killed", &text);
    assert_eq!(repeated, 0, "an event recorded twice");
    assert_eq!(recorded, stored, "every event of the node's stream, once");
}

/// Messages recorded by the collector so far (complete chunks).
fn collector_total(dir: &Path) -> u64 {
    peerlab::record::collect::count_by_node(&mcap_files(dir), "peerlab")
        .map(|(counts, _)| counts.values().sum())
        .unwrap_or(0)
}

/// Messages stored in `stream` on `host`'s nats-server.
fn stream_messages(host: &Host, stream: &str) -> u64 {
    host.streams()
        .iter()
        .find(|s| s["name"] == stream)
        .and_then(|s| s["state"]["messages"].as_u64())
        .unwrap_or_else(|| panic!("{stream} not found on {}", host.name))
}
