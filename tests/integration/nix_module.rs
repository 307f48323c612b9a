//! The NixOS module (`services.peerlab`), evaluated without a store: `tests/nix/eval.nix` and
//! `tests/nix/fleet-plan.nix` run it through nixpkgs' `lib.evalModules` with stub packages
//! (`nix-instantiate --eval --strict --json`), and these tests check what it generates:
//! defaults, sandboxing, that secrets stay paths, that bad values are refused with the
//! module's own messages, and that every peerlab command line it writes parses with this
//! build's `peerlab --check-args`.
//!
//! nixpkgs' lib comes from `../shared/nixpkgs-lib/lib` next to the repository, or
//! `$PEERLAB_NIXPKGS_LIB`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `nix-instantiate --eval --strict --json FILE --argstr K V ...`; the parsed JSON, or
/// nix's error output.
fn nix_eval(file: &str, args: &[(&str, &str)]) -> Result<Value, String> {
    let mut command = Command::new("nix-instantiate");
    command
        .current_dir(root())
        .args(["--eval", "--strict", "--json"])
        .arg(file);
    for (name, value) in args {
        command.args(["--argstr", name, value]);
    }
    let output = command
        .output()
        .expect("nix-instantiate runs (the quickstart installs Debian's nix-bin)");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("nix-instantiate prints JSON"))
}

fn scenario(name: &str) -> Value {
    nix_eval("tests/nix/eval.nix", &[("scenario", name)])
        .unwrap_or_else(|e| panic!("scenario {name} evaluates: {e}"))
}

fn all_scenarios() -> BTreeMap<String, Value> {
    let value = nix_eval("tests/nix/eval.nix", &[("scenario", "all")])
        .unwrap_or_else(|e| panic!("the scenarios evaluate: {e}"));
    serde_json::from_value(value).expect("an object of scenarios")
}

/// Evaluates one configuration (a NixOS module as JSON).
fn configuration(config: &Value) -> Result<Value, String> {
    nix_eval("tests/nix/eval.nix", &[("configJSON", &config.to_string())])
}

/// A honeynode configuration that passes every assertion, with `extra` merged in.
fn honeynode(extra: Value) -> Value {
    let mut config = json!({
        "networking": { "hostName": "node1" },
        "services": { "peerlab": {
            "enable": true,
            "role": "honeynode",
            "extractors": { "rpc": { "passwordFile": "/run/agenix/rpc" } },
            "bitcoind": { "rpcUsers": { "rpc-extractor": {
                "passwordHMAC": format!("00ff${}", "b".repeat(64))
            } } }
        } }
    });
    merge(&mut config, extra);
    config
}

fn collector(extra: Value) -> Value {
    let mut config = json!({
        "networking": { "hostName": "hub1" },
        "services": { "peerlab": {
            "enable": true,
            "role": "collector",
            "collector": { "nodes": ["node1"], "leafPasswordFile": "/run/agenix/leaf" }
        } }
    });
    merge(&mut config, extra);
    config
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

fn failed_assertions(result: &Value) -> Vec<String> {
    serde_json::from_value(result["failedAssertions"].clone()).expect("a list of messages")
}

fn units(result: &Value) -> &serde_json::Map<String, Value> {
    result["units"].as_object().expect("units")
}

fn command(result: &Value, unit: &str) -> Vec<String> {
    serde_json::from_value(result["commands"][unit].clone())
        .unwrap_or_else(|_| panic!("{unit} has a command"))
}

/// The value after `flag` in an argv.
fn flag<'a>(argv: &'a [String], flag: &str) -> &'a str {
    let at = argv
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in {argv:?}"));
    &argv[at + 1]
}

/// Splits a systemd command line into its arguments the way systemd does for the subset the
/// module writes: words separated by spaces, `"..."` and `'...'` quoting with backslash
/// escapes, `$$` for `$`, `%%` for `%`, and `%d` (the credentials directory) replaced by
/// `credentials`.
fn split_exec(line: &str, credentials: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        let mut word = String::new();
        let quote = (first == '"' || first == '\'').then(|| chars.next().unwrap());
        while let Some(c) = chars.next() {
            match c {
                c if Some(c) == quote => break,
                c if quote.is_none() && c.is_whitespace() => break,
                '\\' => word.push(chars.next().expect("an escaped character")),
                '$' if chars.peek() == Some(&'$') => {
                    chars.next();
                    word.push('$');
                }
                '%' => match chars.next() {
                    Some('%') => word.push('%'),
                    Some('d') => word.push_str(credentials),
                    other => panic!("unexpected specifier %{other:?} in {line}"),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
    words
}

#[test]
fn nix_splitter_honors_systemd_quoting() {
    assert_eq!(
        split_exec(
            r#"/bin/x -a "two words" "q\"uote" 'single' $$HOME %d/pw 100%%"#,
            "/c"
        ),
        [
            "/bin/x",
            "-a",
            "two words",
            "q\"uote",
            "single",
            "$HOME",
            "/c/pw",
            "100%"
        ]
    );
}

#[test]
fn nix_module_every_scenario_passes_its_assertions() {
    for (name, result) in all_scenarios() {
        assert_eq!(failed_assertions(&result), Vec::<String>::new(), "{name}");
        assert!(result["natsConfig"].is_string(), "{name}");
    }
}

#[test]
fn nix_module_honeynode_defaults() {
    let result = scenario("honeynode");
    let names: Vec<&str> = units(&result).keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "peerlab-bitcoind",
            "peerlab-bitcoind-logrotate",
            "peerlab-extractor-ebpf",
            "peerlab-extractor-ipc",
            "peerlab-extractor-log",
            "peerlab-extractor-p2p",
            "peerlab-extractor-rpc",
            "peerlab-nats",
            "peerlab-node-stream",
            "peerlab-recorder",
            "peerlab-tool-alerts",
            "peerlab-tool-metrics",
            "peerlab-tool-websocket",
        ]
    );
    assert!(result["timers"]["peerlab-bitcoind-logrotate"].is_object());

    // nats-server: loopback 4222, monitor 8222, 15 MiB, the two accounts, no link.
    let nats: Value =
        serde_json::from_str(result["natsConfig"].as_str().unwrap()).expect("JSON config");
    assert_eq!(nats["port"], 4222);
    assert_eq!(nats["host"], "127.0.0.1");
    assert_eq!(nats["http"], "127.0.0.1:8222");
    assert_eq!(nats["max_payload"], 15 * 1024 * 1024);
    assert_eq!(nats["server_name"], "node1");
    assert_eq!(nats["jetstream"]["domain"], "node1");
    assert_eq!(
        nats["jetstream"]["store_dir"],
        "/var/lib/peerlab-nats/jetstream"
    );
    assert_eq!(nats["no_auth_user"], "local");
    assert_eq!(
        nats["accounts"]["LOCAL"]["imports"],
        json!([{ "service": { "account": "FLEET", "subject": "$JS.API.>" }, "to": "$JS.fleet.API.>" }])
    );
    assert_eq!(nats["accounts"]["FLEET"]["jetstream"], "enabled");
    for import in nats["accounts"]["FLEET"]["imports"].as_array().unwrap() {
        assert_eq!(import["prefix"], "peerlab.node1");
        assert_eq!(import["stream"]["account"], "LOCAL");
    }
    assert!(nats.get("leafnodes").is_none(), "no collector, no link");
    assert!(units(&result)["peerlab-nats"]["loadCredential"]
        .as_array()
        .unwrap()
        .is_empty());

    // bitcoin.conf: mainnet, pruned, the honeynode's logging and RPC rules.
    let conf = result["bitcoinConf"].as_str().unwrap();
    let lines: Vec<&str> = conf.lines().collect();
    for expected in [
        "chain=main",
        "[main]",
        "port=8333",
        "rpcport=8332",
        "prune=4000",
        "logips=1",
        "logthreadnames=1",
        "logtimemicros=1",
        "logsourcelocations=0",
        "rpcbind=127.0.0.1",
        "rpcallowip=127.0.0.1",
        "rpcwhitelistdefault=0",
        "addnode=127.0.0.1:28213",
        "ipcbind=unix:/run/peerlab-bitcoind/node.sock",
        "pid=/run/peerlab-bitcoind/bitcoind.pid",
        "rpcwhitelist=rpc-extractor:getpeerinfo,getmempoolinfo,uptime,getnettotals,\
         getmemoryinfo,getaddrmaninfo,getchaintxstats,getnetworkinfo,getblockchaininfo,\
         getorphantxs,getrawaddrman,estimatesmartfee",
    ] {
        assert!(lines.contains(&expected), "{expected} in\n{conf}");
    }
    for category in [
        "net",
        "addrman",
        "cmpctblock",
        "mempoolrej",
        "validation",
        "bench",
        "txpackages",
        "mempool",
        "leveldb",
        "coindb",
    ] {
        assert!(
            lines.contains(&format!("debug={category}").as_str()),
            "{category}"
        );
    }
    assert!(lines.contains(
        &format!(
            "rpcauth=rpc-extractor:0f1e2d3c4b5a69788796a5b4c3d2e1f0${}",
            "a".repeat(64)
        )
        .as_str()
    ));

    // Commands: the default addresses and the extractors' wiring.
    let metrics = command(&result, "peerlab-tool-metrics");
    assert_eq!(flag(&metrics, "-m"), "127.0.0.1:8282");
    assert_eq!(flag(&metrics, "-a"), "nats://127.0.0.1:4222");
    assert_eq!(
        flag(&command(&result, "peerlab-tool-websocket"), "-w"),
        "127.0.0.1:8284"
    );
    let rpc = command(&result, "peerlab-extractor-rpc");
    assert_eq!(flag(&rpc, "--rpc-host"), "127.0.0.1:8332");
    assert_eq!(flag(&rpc, "--rpc-user"), "rpc-extractor");
    assert_eq!(flag(&rpc, "--rpc-password-file"), "%d/rpc-password");
    let p2p = command(&result, "peerlab-extractor-p2p");
    assert_eq!(flag(&p2p, "--p2p-address"), "127.0.0.1:28213");
    assert_eq!(flag(&p2p, "--p2p-network"), "mainnet");
    let ebpf = command(&result, "peerlab-extractor-ebpf");
    assert_eq!(
        flag(&ebpf, "--bitcoind-path"),
        "/nix/store/stub-bitcoind-traceable/libexec/bitcoin-node"
    );
    assert_eq!(
        flag(&ebpf, "--pid-file"),
        "/run/peerlab-bitcoind/bitcoind.pid"
    );
    assert_eq!(
        flag(&command(&result, "peerlab-extractor-log"), "--debug-log"),
        "/var/lib/peerlab-bitcoind/debug.log"
    );
    for extractor in ["ebpf", "rpc", "p2p", "log", "ipc"] {
        let unit = format!("peerlab-extractor-{extractor}");
        let argv = command(&result, &unit);
        assert_eq!(
            flag(&argv, "--spool-dir"),
            format!("/var/lib/peerlab/spool/{unit}")
        );
        assert_eq!(flag(&argv, "--spool-max-bytes"), "1073741824");
        assert_eq!(
            units(&result)[&unit]["serviceConfig"]["StateDirectory"],
            format!("peerlab/spool/{unit}")
        );
    }
    let recorder = command(&result, "peerlab-recorder");
    assert_eq!(flag(&recorder, "--rotate-mib"), "256");
    assert_eq!(flag(&recorder, "--keep-mib"), "20480");
    assert_eq!(
        command(&result, "peerlab-node-stream")[1..],
        [
            "fleet",
            "node-stream",
            "-a",
            "nats://127.0.0.1:4222",
            "--subject-prefix",
            "peerlab",
            "--node",
            "node1",
            "--max-bytes",
            "8589934592",
            "--max-age-secs",
            "604800"
        ]
    );
    assert_eq!(
        units(&result)["peerlab-node-stream"]["serviceConfig"]["Type"],
        "oneshot"
    );
    // The p2p extractor is up before bitcoind dials it.
    assert!(units(&result)["peerlab-bitcoind"]["after"]
        .as_array()
        .unwrap()
        .contains(&json!("peerlab-extractor-p2p.service")));
}

#[test]
fn nix_module_chains_prune_and_ipc() {
    let regtest = scenario("honeynode-regtest");
    let conf = regtest["bitcoinConf"].as_str().unwrap();
    assert!(conf.contains("chain=regtest\n\n[regtest]\n"));
    assert!(conf.contains("\nport=18444\n") && conf.contains("\nrpcport=18443\n"));
    assert_eq!(
        flag(&command(&regtest, "peerlab-extractor-rpc"), "--rpc-host"),
        "127.0.0.1:18443"
    );
    assert_eq!(
        flag(&command(&regtest, "peerlab-extractor-p2p"), "--p2p-network"),
        "regtest"
    );
    assert_eq!(
        flag(&command(&regtest, "peerlab-extractor-log"), "--debug-log"),
        "/var/lib/peerlab-bitcoind/regtest/debug.log"
    );

    let signet = scenario("honeynode-signet-unpruned");
    let conf = signet["bitcoinConf"].as_str().unwrap();
    assert!(conf.contains("\nprune=0\n") && conf.contains("\nport=38333\n"));
    assert_eq!(
        flag(&command(&signet, "peerlab-extractor-p2p"), "--p2p-network"),
        "signet"
    );

    let linked = scenario("honeynode-linked");
    assert_eq!(
        flag(&command(&linked, "peerlab-extractor-p2p"), "--p2p-network"),
        "testnet4"
    );

    let no_ipc = scenario("honeynode-no-ipc");
    assert!(!units(&no_ipc).contains_key("peerlab-extractor-ipc"));
    assert!(!no_ipc["bitcoinConf"].as_str().unwrap().contains("ipcbind"));
    assert_eq!(
        command(&no_ipc, "peerlab-bitcoind")[0],
        "/nix/store/stub-bitcoind-traceable/bin/bitcoind"
    );
    assert_eq!(
        flag(
            &command(&no_ipc, "peerlab-extractor-ebpf"),
            "--bitcoind-path"
        ),
        "/nix/store/stub-bitcoind-traceable/bin/bitcoind"
    );
}

#[test]
fn nix_module_sandboxing() {
    for (name, result) in all_scenarios() {
        for (unit, value) in units(&result) {
            let config = &value["serviceConfig"];
            if unit.starts_with("peerlab-bitcoind") {
                // bitcoind's own user owns the data directory the log extractor reads.
                assert_eq!(config["User"], "peerlab-bitcoind", "{name} {unit}");
                assert_eq!(config["CapabilityBoundingSet"], "", "{name} {unit}");
                continue;
            }
            assert_eq!(config["DynamicUser"], true, "{name} {unit}");
            assert_eq!(config["NoNewPrivileges"], true, "{name} {unit}");
            assert_eq!(config["ProtectSystem"], "strict", "{name} {unit}");
            assert_eq!(config["SystemCallArchitectures"], "native", "{name} {unit}");
            if unit.starts_with("peerlab-node-stream") {
                assert_eq!(config["Restart"], "on-failure", "{name} {unit}");
            } else {
                assert_eq!(config["Restart"], "always", "{name} {unit}");
            }
            if unit == "peerlab-extractor-ebpf" {
                let caps = json!(["CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE"]);
                assert_eq!(config["AmbientCapabilities"], caps, "{name}");
                assert_eq!(config["CapabilityBoundingSet"], caps, "{name}");
                assert_eq!(config["PrivateUsers"], false);
                assert_eq!(config["ProtectProc"], "default");
                assert_eq!(config["ProcSubset"], "all");
                let filter: Vec<String> =
                    serde_json::from_value(config["SystemCallFilter"].clone()).unwrap();
                assert_eq!(filter[0], "@system-service");
                assert!(filter[1].starts_with('~') && filter[1].contains("clone3"));
                assert_eq!(filter[2..], ["bpf", "clone3", "@debug"]);
            } else {
                assert_eq!(config["CapabilityBoundingSet"], "", "{name} {unit}");
                assert!(config.get("AmbientCapabilities").is_none(), "{name} {unit}");
                assert_eq!(config["PrivateDevices"], true, "{name} {unit}");
                assert_eq!(config["MemoryDenyWriteExecute"], true, "{name} {unit}");
                let filter = config["SystemCallFilter"].to_string();
                assert!(!filter.contains("@debug") && !filter.contains("\"bpf\""));
            }
            if unit == "peerlab-extractor-log" {
                assert_eq!(config["SupplementaryGroups"], json!(["peerlab-debuglog"]));
                assert_eq!(config["PrivateUsers"], false);
            } else if unit != "peerlab-extractor-ebpf" {
                assert_eq!(config["PrivateUsers"], true, "{name} {unit}");
            }
        }
    }
}

#[test]
fn nix_module_collector() {
    let result = scenario("collector");
    let names: Vec<&str> = units(&result).keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "peerlab-collector",
            "peerlab-nats",
            "peerlab-tool-metrics-node1",
            "peerlab-tool-metrics-node2"
        ]
    );
    assert!(result["bitcoinConf"].is_null());
    let nats: Value = serde_json::from_str(result["natsConfig"].as_str().unwrap()).unwrap();
    assert_eq!(nats["jetstream"]["domain"], "hub");
    assert_eq!(nats["server_name"], "collector");
    assert_eq!(nats["host"], "127.0.0.1");
    assert_eq!(nats["leafnodes"]["listen"], "10.21.1.1:7422");
    assert_eq!(
        nats["leafnodes"]["authorization"],
        json!({ "user": "leaf", "password": "@LEAF_PASSWORD@" })
    );
    assert_eq!(
        command(&result, "peerlab-collector")[1..],
        [
            "fleet",
            "collect",
            "-a",
            "nats://127.0.0.1:4222",
            "--subject-prefix",
            "peerlab",
            "--node",
            "node1",
            "--node",
            "node2",
            "--output-dir",
            "/var/lib/peerlab-collector/recordings",
            "--rotate-mib",
            "256",
            "--keep-mib",
            "102400"
        ]
    );
    for (index, node) in ["node1", "node2"].iter().enumerate() {
        let argv = command(&result, &format!("peerlab-tool-metrics-{node}"));
        assert_eq!(flag(&argv, "--node"), *node);
        assert_eq!(flag(&argv, "--subject-prefix"), "peerlab");
        assert_eq!(flag(&argv, "-m"), format!("127.0.0.1:{}", 9200 + index));
    }
    let scrape = &result["prometheus"]["scrapeConfigs"][0];
    assert_eq!(scrape["static_configs"][1]["labels"]["host"], "node2");
    assert_eq!(scrape["fallback_scrape_protocol"], "PrometheusText0.0.4");
    // The leafnode port is open on the WireGuard interface only.
    assert_eq!(
        result["firewall"]["interfaces"]["wg-peerlab"]["allowedTCPPorts"],
        json!([7422])
    );
    assert_eq!(result["firewall"]["allowedTCPPorts"], json!([]));
    assert_eq!(result["firewall"]["allowedUDPPorts"], json!([51820]));
}

/// Secrets are files whose paths the configuration names; their contents never reach the
/// evaluation's output (generated configs, command lines, environment).
#[test]
fn nix_module_secrets_stay_paths() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let contents = [
        "LEAF-SECRET-c0ffee-91a7",
        "RPC-SECRET-5eed-77b2",
        "WG-SECRET-beef-0d3c",
    ];
    let leaf = write("leaf", contents[0]);
    let rpc = write("rpc", contents[1]);
    let wg = write("wg", contents[2]);
    let link = json!({
        "services": { "peerlab": {
            "collector": { "host": "10.21.1.1", "leafPasswordFile": leaf },
            "extractors": { "rpc": { "passwordFile": rpc } },
            "wireguard": { "enable": true, "ips": ["10.21.0.1/16"], "privateKeyFile": wg },
            "nginx": { "enable": true }
        } }
    });
    let honeynode = configuration(&honeynode(link)).expect("evaluates");
    let collector = configuration(&collector(json!({
        "services": { "peerlab": { "collector": { "leafPasswordFile": leaf } } }
    })))
    .expect("evaluates");

    for result in [&honeynode, &collector] {
        assert_eq!(failed_assertions(result), Vec::<String>::new());
        let text = result.to_string();
        for content in contents {
            assert!(!text.contains(content), "{content} leaked");
        }
        // The leaf password reaches nats-server as a credential only.
        let nats = &units(result)["peerlab-nats"];
        assert_eq!(
            nats["loadCredential"],
            json!([format!("leaf-password:{leaf}")])
        );
        let pre: Vec<String> = serde_json::from_value(nats["execStartPre"].clone()).unwrap();
        assert_eq!(
            split_exec(&pre[1], "/creds")[1..],
            [
                "@LEAF_PASSWORD@",
                "/creds/leaf-password",
                "/run/peerlab-nats/nats.json"
            ]
        );
        assert!(pre[1].starts_with("/nix/store/stub-replace-secret/bin/replace-secret "));
        assert!(split_exec(&pre[0], "/creds").contains(&"0600".to_owned()));
        assert_eq!(
            nats["execStart"],
            "/nix/store/stub-nats-server/bin/nats-server -c /run/peerlab-nats/nats.json"
        );
        // No command line names a secret file: units read credentials through %d.
        for (unit, value) in units(result) {
            for line in [
                &value["execStart"],
                &value["execStartPre"],
                &value["execStartPost"],
            ] {
                let line = line.to_string();
                for path in [&leaf, &rpc, &wg] {
                    assert!(!line.contains(path.as_str()), "{unit} names {path}");
                }
            }
        }
    }
    let nats_config = honeynode["natsConfig"].as_str().unwrap();
    assert!(nats_config.contains("nats-leaf://leaf:@LEAF_PASSWORD@@10.21.1.1:7422"));
    assert!(collector["natsConfig"]
        .as_str()
        .unwrap()
        .contains("\"password\":\"@LEAF_PASSWORD@\""));
    assert_eq!(
        units(&honeynode)["peerlab-extractor-rpc"]["loadCredential"],
        json!([format!("rpc-password:{rpc}")])
    );
    assert_eq!(honeynode["wireguard"]["wg-peerlab"]["privateKeyFile"], wg);
    assert_eq!(
        honeynode["nginx"]["virtualHosts"]["peerlab-node"]["listen"],
        json!([{ "addr": "10.21.0.1", "port": 9000 }])
    );
}

/// Values the module refuses, each with its own message (or the option type's).
#[test]
fn nix_module_refuses_bad_values() {
    let assertion_cases = [
        (
            honeynode(json!({ "networking": { "hostName": "node.one" } })),
            "nodeName `node.one` must be a NATS token",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "bitcoind": { "prune": 100 } } } })),
            "prune is 100 MiB: it must be 0 (keep every block) or at least 550",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "subjectPrefix": "a..b" } } })),
            "subjectPrefix `a..b` must be dot-separated NATS tokens",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "extractors": { "rpc": { "passwordFile": null } } } } })),
            "services.peerlab.extractors.rpc.passwordFile must be set",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "bitcoind": { "rpcUsers": { "rpc-extractor": { "passwordHMAC": null } } } } } })),
            "services.peerlab.bitcoind.rpcUsers.rpc-extractor.passwordHMAC must be set",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "collector": { "host": "10.0.0.1" } } } })),
            "collector.host is set, so services.peerlab.collector.leafPasswordFile must be too",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "extractors": { "rpc": { "passwordFile": "/nix/store/abc-rpc" } } } } })),
            "services.peerlab.extractors.rpc.passwordFile must be an absolute path outside the Nix store",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "wireguard": { "enable": true, "ips": ["10.0.0.1/24"] } } } })),
            "services.peerlab.wireguard.enable needs services.peerlab.wireguard.privateKeyFile",
        ),
        (
            collector(json!({ "services": { "peerlab": { "collector": { "nodes": [] } } } })),
            "collector needs at least one honeynode name",
        ),
        (
            collector(json!({ "services": { "peerlab": { "collector": { "nodes": ["ok", "b.d", "x y"] } } } })),
            "`b.d`, `x y` must be NATS tokens",
        ),
        (
            collector(json!({ "services": { "peerlab": { "collector": { "nodes": ["hub"] } } } })),
            "must not contain `hub`",
        ),
        (
            collector(json!({ "services": { "peerlab": { "collector": { "leafPasswordFile": null } } } })),
            "leafPasswordFile must be set on a collector",
        ),
    ];
    for (config, message) in assertion_cases {
        let result = configuration(&config).expect("evaluates (assertions are reported)");
        let failed = failed_assertions(&result);
        assert!(
            failed.iter().any(|m| m.contains(message)),
            "expected `{message}` among {failed:?}"
        );
    }

    // Type errors stop the evaluation, naming the option.
    let type_cases = [
        (
            honeynode(json!({ "services": { "peerlab": { "bitcoind": { "chain": "mainnet" } } } })),
            "services.peerlab.bitcoind.chain",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "role": "hub" } } })),
            "services.peerlab.role",
        ),
        (
            honeynode(
                json!({ "services": { "peerlab": { "bitcoind": { "rpcUsers": { "x": { "passwordHMAC": "nodollar" } } } } } }),
            ),
            "passwordHMAC",
        ),
        (
            honeynode(json!({ "services": { "peerlab": { "nats": { "port": 70000 } } } })),
            "services.peerlab.nats.port",
        ),
    ];
    for (config, option) in type_cases {
        let error = configuration(&config).expect_err("a type error");
        assert!(
            error.contains(option) && error.contains("is not of type"),
            "expected a type error for {option}: {error}"
        );
    }
}

fn check_args(arguments: &[String]) -> Result<(), String> {
    let output = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(arguments)
        .arg("--check-args")
        .output()
        .unwrap();
    if output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Checks one peerlab ExecStart line: its split argv equals the module's, and it parses with
/// this build (`--check-args`), store paths and `%d` pointed at a local directory.
fn check_exec(label: &str, line: &str, module_argv: &[String], local: &Path) -> Result<(), String> {
    let credentials = local.join("credentials");
    let argv = split_exec(line, credentials.to_str().unwrap());
    let expected: Vec<String> = module_argv
        .iter()
        .map(|a| a.replace("%d", credentials.to_str().unwrap()))
        .collect();
    assert_eq!(
        argv, expected,
        "{label}: ExecStart splits into the module's argv"
    );
    assert!(argv[0].ends_with("/bin/peerlab"), "{label}: {argv:?}");
    let store_stub = format!("{}/stub-", local.display());
    let arguments: Vec<String> = argv[1..]
        .iter()
        .map(|a| a.replace("/nix/store/stub-", &store_stub))
        .collect();
    check_args(&arguments).map_err(|error| format!("{label}: {arguments:?}: {error}"))
}

fn peerlab_commands(
    label: &str,
    result: &Value,
    local: &Path,
    failures: &mut Vec<String>,
) -> usize {
    let mut checked = 0;
    for (unit, value) in units(result) {
        let Some(line) = value["execStart"].as_str() else {
            continue;
        };
        if !line.starts_with("/nix/store/stub-peerlab/bin/peerlab ") {
            continue;
        }
        let argv: Vec<String> = serde_json::from_value(result["commands"][unit].clone())
            .unwrap_or_else(|_| panic!("{label} {unit}: argv recorded"));
        checked += 1;
        if let Err(what) = check_exec(&format!("{label} {unit}"), line, &argv, local) {
            failures.push(what);
        }
    }
    checked
}

#[test]
fn nix_module_command_lines_parse() {
    let local = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, result) in all_scenarios() {
        checked += peerlab_commands(&name, &result, local.path(), &mut failures);
    }
    let plan = nix_eval("tests/nix/fleet-plan.nix", &[("nodes", "node1,node2")]).unwrap();
    let machines = plan["honeynodes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(node, result)| (format!("plan {node}"), result))
        .chain([("plan collector".to_owned(), &plan["collector"])]);
    for (label, result) in machines {
        let mut result = result.clone();
        result["commands"] = argv_of(&result);
        checked += peerlab_commands(&label, &result, local.path(), &mut failures);
    }
    assert!(checked > 80, "{checked} command lines checked");
    assert!(
        failures.is_empty(),
        "command lines that do not parse:\n{}",
        failures.join("\n")
    );
}

/// A plan's units carry their argv; gathered as `commands` like eval.nix's output.
fn argv_of(plan: &Value) -> Value {
    let mut commands = serde_json::Map::new();
    for (unit, value) in plan["units"].as_object().unwrap() {
        if !value["argv"].is_null() {
            commands.insert(unit.clone(), value["argv"].clone());
        }
    }
    Value::Object(commands)
}

#[test]
fn nix_fleet_plan_shape() {
    let plan = nix_eval(
        "tests/nix/fleet-plan.nix",
        &[
            ("nodes", "alpha,beta"),
            ("collectorHost", "10.99.0.1"),
            ("natsPort", "4333"),
            ("metricsBasePort", "9300"),
        ],
    )
    .unwrap();
    let nodes: Vec<&String> = plan["honeynodes"].as_object().unwrap().keys().collect();
    assert_eq!(nodes, ["alpha", "beta"]);
    for node in ["alpha", "beta"] {
        let machine = &plan["honeynodes"][node];
        let nats: Value = serde_json::from_str(machine["natsConfig"].as_str().unwrap()).unwrap();
        assert_eq!(nats["port"], 4333);
        assert_eq!(
            nats["leafnodes"]["remotes"][0]["url"],
            "nats-leaf://leaf:@LEAF_PASSWORD@@10.99.0.1:7422"
        );
        assert_eq!(nats["leafnodes"]["remotes"][0]["account"], "FLEET");
        assert!(machine["bitcoinConf"]
            .as_str()
            .unwrap()
            .contains("chain=regtest"));
        assert_eq!(
            machine["files"]["/nix/store/stub-text-peerlab-nats.json"],
            machine["natsConfig"]
        );
        let unit = &machine["units"]["peerlab-node-stream"];
        for key in [
            "execStart",
            "execStartPre",
            "execStartPost",
            "environment",
            "loadCredential",
            "argv",
        ] {
            assert!(unit.get(key).is_some(), "{key}");
        }
        let argv: Vec<String> = serde_json::from_value(unit["argv"].clone()).unwrap();
        assert_eq!(flag(&argv, "--node"), node);
        assert_eq!(flag(&argv, "-a"), "nats://127.0.0.1:4333");
        // Every peerlab unit runs without a shell: one argv per ExecStart.
        for (name, unit) in machine["units"].as_object().unwrap() {
            if name.starts_with("peerlab-") && name != "peerlab-bitcoind-logrotate" {
                assert!(unit["argv"].is_array(), "{node} {name}");
            }
        }
    }
    let collector = &plan["collector"];
    let argv: Vec<String> =
        serde_json::from_value(collector["units"]["peerlab-collector"]["argv"].clone()).unwrap();
    assert_eq!(
        argv.iter().filter(|a| *a == "--node").count(),
        2,
        "{argv:?}"
    );
    let beta: Vec<String> =
        serde_json::from_value(collector["units"]["peerlab-tool-metrics-beta"]["argv"].clone())
            .unwrap();
    assert_eq!(flag(&beta, "-m"), "127.0.0.1:9301");

    // A refused fleet fails with the module's message.
    let error = nix_eval("tests/nix/fleet-plan.nix", &[("nodes", "node1,bad.name")]).unwrap_err();
    assert!(error.contains("must be"), "{error}");
}

#[test]
fn nix_harness_nixpkgs_lib_is_found() {
    // The default location, next to the repository, or the environment's.
    let configured = std::env::var_os("PEERLAB_NIXPKGS_LIB").map(PathBuf::from);
    let path = configured.unwrap_or_else(|| root().join("../shared/nixpkgs-lib/lib"));
    assert!(
        path.join("default.nix").exists(),
        "nixpkgs lib at {} (set PEERLAB_NIXPKGS_LIB)",
        path.display()
    );
}
