//! The binary's set-up path and its errors: each bad input gives one actionable line; and
//! every subcommand's `--help` documents its key flags and defaults.

use std::process::{Command, Output};
use std::time::Instant;

use peerlab::node::{build_key, ensure_packages, NodeError};

fn peerlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerlab"))
}

/// The final `error: ...` line, asserting there is exactly one and the command failed.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "command should fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected, stderr was:\n{stderr}"
    );
    errors[0].to_string()
}

#[test]
fn second_setup_reuses_the_cache_and_prints_absolute_paths() {
    let started = Instant::now();
    let output = peerlab()
        .args(["setup", "--json"])
        .env_remove("BITCOIND_EXE")
        .output()
        .expect("run setup");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "setup failed:\n{stderr}");
    // Not a timing assertion (timings belong in benchmarks); printed for the CI log.
    eprintln!(
        "peerlab setup with a warm cache took {:.2}s",
        elapsed.as_secs_f64()
    );
    assert!(
        stderr.contains("reused the cached bitcoind"),
        "stderr:\n{stderr}"
    );

    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    for key in ["bitcoind", "bitcoin_cli", "nats_server"] {
        let path = json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing in {json}"));
        assert!(path.starts_with('/'), "{key} is not absolute: {path}");
        assert!(
            std::path::Path::new(path).is_file(),
            "{key} does not exist: {path}"
        );
    }
}

#[test]
fn bitcoind_without_tracepoints_is_refused() {
    let output = peerlab()
        .args(["setup", "--bitcoind", "/bin/true"])
        .output()
        .expect("run setup");
    let line = error_line(&output);
    assert!(
        line.contains("/usr/bin/true") || line.contains("/bin/true"),
        "{line}"
    );
    assert!(line.contains("no USDT tracepoints"), "{line}");
    assert!(
        line.contains("-DWITH_USDT=ON"),
        "says how to get one: {line}"
    );
}

#[test]
fn corrupt_cache_entry_is_reported_with_the_fix() {
    let cache = tempfile::tempdir().expect("tempdir");
    let entry = cache.path().join("bitcoind").join(build_key());
    std::fs::create_dir_all(entry.join("bin")).expect("mkdir");
    std::fs::write(entry.join("bin/bitcoind"), b"truncated").expect("write");
    std::fs::write(entry.join("bin/bitcoin-cli"), b"truncated").expect("write");
    let manifest = serde_json::json!({
        "crate_name": "libbitcoinkernel-sys", "crate_version": "0.4.1", "cmake_options": [],
        "bitcoind_sha256": "00", "bitcoin_cli_sha256": "00", "tracepoints": []
    });
    std::fs::write(entry.join("manifest.json"), manifest.to_string()).expect("write");

    let output = peerlab()
        .arg("setup")
        .env("PEERLAB_CACHE_DIR", cache.path())
        .env_remove("BITCOIND_EXE")
        .output()
        .expect("run setup");
    let line = error_line(&output);
    assert!(line.contains("corrupt"), "{line}");
    assert!(
        line.contains(&entry.display().to_string()),
        "names the entry: {line}"
    );
    assert!(
        line.contains("peerlab setup --rebuild"),
        "says what to do: {line}"
    );
}

#[test]
fn missing_package_without_permission_names_the_install_command() {
    // A real dpkg query for a package that cannot be installed; installing is not allowed.
    let error =
        ensure_packages(&["peerlab-no-such-package", "coreutils"], false).expect_err("missing");
    assert!(matches!(error, NodeError::MissingPackages { .. }));
    let text = error.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains("apt-get install -y peerlab-no-such-package"),
        "{text}"
    );
    assert!(
        !text.contains("coreutils"),
        "installed packages are not listed: {text}"
    );
}

#[test]
fn unreachable_nats_retries_visibly_then_fails_with_one_line() {
    let port = peerlab::stack::free_port().expect("port");
    let output = peerlab()
        .args([
            "tools",
            "logger",
            "-a",
            &format!("nats://127.0.0.1:{port}"),
            "--nats-wait",
            "2",
        ])
        .output()
        .expect("run logger");
    let line = error_line(&output);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("start nats-server"), "{line}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not reachable yet"),
        "a retry line is logged while waiting:\n{stderr}"
    );
}

/// Commands that wait for NATS (forever by default) still stop on SIGTERM while waiting, as
/// a service manager expects: `record` and `extract` (like `observe`) watch the signal during
/// the wait, and exit cleanly.
#[test]
fn a_command_waiting_for_nats_stops_on_sigterm() {
    let port = peerlab::stack::free_port().expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = format!("nats://127.0.0.1:{port}");
    let output = dir.path().join("out.mcap");
    let output = output.to_string_lossy();
    let commands: [Vec<&str>; 2] = [
        vec!["record", "-o", &output, "-a", &nats],
        vec!["extract", "log", "--debug-log", &output, "-a", &nats],
    ];
    for args in commands {
        let mut child = peerlab()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starts");
        // It is waiting once it logs a retry.
        let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let started = std::time::Instant::now();
        while !line.contains("not reachable yet") && started.elapsed() < crate::common::TIMEOUT {
            line.clear();
            if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap_or(0) == 0 {
                break;
            }
        }
        assert!(line.contains("not reachable yet"), "{args:?}: {line}");
        // SAFETY: kill(2) on our own child; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        let deadline = std::time::Instant::now() + crate::common::TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{args:?} ignored SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "{args:?}: {status:?}");
    }
}

#[test]
fn help_lists_the_commands() {
    let output = peerlab().arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["setup", "run", "tools"] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
}

/// `peerlab rehearse` of a scenario in scenarios/ against a stack nobody runs (nothing
/// listens on port 9), with `extra` arguments.
fn rehearse_against_nothing(scenario: &str, extra: &[&str]) -> Output {
    let report = tempfile::tempdir().expect("tempdir");
    let scenario = format!("{}/scenarios/{scenario}", env!("CARGO_MANIFEST_DIR"));
    peerlab()
        .args(["rehearse", &scenario, "--report"])
        .arg(report.path())
        .args([
            "-a",
            "nats://127.0.0.1:9",
            "--rpc-url",
            "http://127.0.0.1:9",
        ])
        .args(extra)
        .output()
        .expect("run rehearse")
}

#[test]
fn rehearsing_a_restart_on_someone_elses_node_is_refused_before_touching_it() {
    // The refusal must come before any connection.
    let output = rehearse_against_nothing(
        "annotated-example.toml",
        &["--rpc-cookie", "/nonexistent/.cookie"],
    );
    let line = error_line(&output);
    assert!(
        line.contains("restart_node step needs the embedded node"),
        "{line}"
    );
}

#[test]
fn rehearsing_against_a_node_needs_rpc_credentials() {
    let output = rehearse_against_nothing("inv-flood.toml", &[]);
    let line = error_line(&output);
    assert!(line.contains("--rpc-cookie"), "{line}");
}

#[test]
fn rehearsing_an_expectation_of_an_extractor_turned_off_is_refused_with_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("needs-rpc.toml");
    std::fs::write(
        &scenario,
        "[scenario]\nname = \"needs-rpc\"\ntimeout_secs = 5\n\n\
         [[expect]]\nkind = \"event\"\nevent = \"validation.block_connected\"\n\n\
         [[expect]]\nkind = \"event\"\nevent = \"rpc.blockchain_info\"\n",
    )
    .expect("write scenario");
    let report = dir.path().join("report");
    let output = peerlab()
        .arg("rehearse")
        .arg(&scenario)
        .arg("--report")
        .arg(&report)
        .arg("--no-rpc-extractor")
        .output()
        .expect("run rehearse");
    let line = error_line(&output);
    assert!(line.contains("--no-rpc-extractor"), "{line}");
    assert!(
        line.contains("expect[1] event rpc.blockchain_info"),
        "{line}"
    );
    assert!(line.contains("needs-rpc.toml"), "{line}");
    // Refused before anything ran: no report directory.
    assert!(!report.exists(), "the rehearsal ran");

    // Metrics fed only by an extractor count as needing it too.
    std::fs::write(
        &scenario,
        "[scenario]\nname = \"needs-log\"\ntimeout_secs = 5\n\n\
         [[expect]]\nkind = \"metric\"\nmetric = \"peerobserver_log_events\"\nop = \">\"\nvalue = 0\n",
    )
    .expect("write scenario");
    let output = peerlab()
        .arg("rehearse")
        .arg(&scenario)
        .arg("--report")
        .arg(&report)
        .arg("--no-log-extractor")
        .output()
        .expect("run rehearse");
    let line = error_line(&output);
    assert!(
        line.contains("--no-log-extractor") && line.contains("peerobserver_log_events"),
        "{line}"
    );
}

#[test]
fn extractor_switches_do_not_apply_to_someone_elses_stack() {
    let output = rehearse_against_nothing(
        "inv-flood.toml",
        &["--rpc-cookie", "/nonexistent/.cookie", "--no-ipc-extractor"],
    );
    let line = error_line(&output);
    assert!(line.contains("--no-<x>-extractor"), "{line}");
    assert!(line.contains("-a/--rpc-url"), "{line}");
}

/// One option of a `--help` text: its flag line (`-m, --metrics-address <HOST:PORT>`) and the
/// lines of description under it.
struct HelpOption {
    flag_line: String,
    description: String,
}

/// The options of a clap `--help` text by long name: clap puts a flag line at indentation 2
/// (`  -m, --long`) or 6 (`      --long`) and its description below, indented further.
fn help_options(text: &str) -> std::collections::BTreeMap<String, HelpOption> {
    let mut options = std::collections::BTreeMap::new();
    let mut current: Option<(String, HelpOption)> = None;
    for line in text.lines() {
        let is_flag_line = line.starts_with("  -") || line.starts_with("      --");
        if is_flag_line {
            if let Some((name, option)) = current.take() {
                options.insert(name, option);
            }
            let long = line
                .split([' ', ','])
                .find(|token| token.starts_with("--"))
                .unwrap_or_else(|| panic!("a flag line without a long flag: {line:?}"));
            current = Some((
                long.to_string(),
                HelpOption {
                    flag_line: line.trim().to_string(),
                    description: String::new(),
                },
            ));
        } else if let Some((_, option)) = current.as_mut() {
            if line.starts_with("        ") {
                option.description.push_str(line.trim());
                option.description.push('\n');
            } else if !line.trim().is_empty() {
                // The next section (or the end of the options).
                let (name, option) = current.take().expect("checked above");
                options.insert(name, option);
            }
        }
    }
    if let Some((name, option)) = current {
        options.insert(name, option);
    }
    options
}

/// A flag as its help line starts (`-m, --metrics-address`) and its default, if it has one.
type Documented<'a> = (&'a str, Option<&'a str>);

/// Every subcommand's `--help` documents its key options: each listed flag (with its short
/// form where it has one) is there with a description, and defaults are the documented ones.
#[test]
fn subcommand_help_documents_the_key_flags() {
    let nats = ("-a, --nats-address", Some("nats://127.0.0.1:4222"));
    let rpc_disables = [
        "getpeerinfo",
        "getmempoolinfo",
        "uptime",
        "getnettotals",
        "getmemoryinfo",
        "getaddrmaninfo",
        "getchaintxstats",
        "getnetworkinfo",
        "getblockchaininfo",
        "getorphantxs",
        "getrawaddrman",
        "estimatesmartfee",
    ]
    .map(|rpc| format!("--disable-{rpc}"));
    let mut extract_rpc: Vec<Documented> = vec![
        ("--rpc-host", Some("127.0.0.1:8332")),
        ("--rpc-cookie-file", None),
        ("--rpc-user", None),
        ("--rpc-password", None),
        ("--rpc-password-file", None),
        ("--query-interval", Some("10")),
        ("--query-interval-less-frequent", Some("120")),
        nats,
    ];
    extract_rpc.extend(rpc_disables.iter().map(|flag| (flag.as_str(), None)));
    let cases: Vec<(&[&str], Vec<Documented>)> = vec![
        (&["extract", "rpc"], extract_rpc),
        (
            &["extract", "p2p"],
            vec![
                ("--p2p-address", Some("127.0.0.1:9333")),
                ("--p2p-network", Some("mainnet")),
                ("--ping-interval", Some("10")),
                ("--disable-ping", None),
                ("--disable-addrv2", None),
                ("--disable-invs", None),
                ("--disable-feefilter", None),
                nats,
            ],
        ),
        (
            &["extract", "log"],
            vec![("-b, --debug-log", None), ("--from-start", None), nats],
        ),
        (
            &["extract", "ipc"],
            vec![
                ("-i, --ipc-socket-path", None),
                ("--query-interval", Some("10")),
                nats,
            ],
        ),
        (
            &["extract", "ebpf"],
            vec![
                ("--bitcoind-path", None),
                ("--pid", None),
                ("--pid-file", None),
                ("--no-net", None),
                ("--no-mempool", None),
                ("--no-validation", None),
                ("--utxocache", None),
                nats,
            ],
        ),
        (
            &["observe"],
            vec![
                ("--datadir", None),
                ("--chain", None),
                ("--rpc-url", None),
                ("--no-ebpf", None),
                ("--no-log", None),
                ("--no-rpc", None),
                ("--no-p2p", None),
                ("--no-ipc", None),
                ("--metrics-address", None),
                ("--websocket-address", None),
                ("--alerts", None),
                nats,
            ],
        ),
        (
            &["tools", "metrics"],
            vec![
                ("-m, --metrics-address", Some("127.0.0.1:8282")),
                ("--tor-exit-list", None),
                nats,
            ],
        ),
        (
            &["tools", "websocket"],
            vec![("-w, --websocket-address", Some("127.0.0.1:47482")), nats],
        ),
        (
            &["tools", "alerts"],
            vec![
                ("--ping-threshold", Some("3")),
                ("--ping-window-secs", Some("120")),
                ("--addr-threshold", Some("6")),
                ("--addr-window-secs", Some("60")),
                ("--peer-stale-secs", Some("300")),
                nats,
            ],
        ),
        (&["convert"], vec![("--compression-level", Some("3"))]),
        (
            &["record"],
            vec![
                ("-o, --output", None),
                ("--format", Some("mcap")),
                ("--compression-level", Some("3")),
                ("--subject", None),
                ("--kind", None),
                ("--rotate-mib", None),
                ("--rotate-secs", None),
                ("--duration", None),
                ("--anonymize", None),
                nats,
            ],
        ),
        (
            &["replay"],
            vec![
                ("--speed", Some("1")),
                ("--from", None),
                ("--to", None),
                ("--subject", None),
                ("--kind", None),
                ("--loop", None),
                ("--retime", None),
                nats,
            ],
        ),
        (
            &["rehearse"],
            vec![
                ("--report", None),
                ("--no-log-extractor", None),
                ("--no-rpc-extractor", None),
                ("--no-p2p-extractor", None),
                ("--no-ipc-extractor", None),
                ("-a, --nats-address", None),
                ("--rpc-url", None),
                ("--rpc-cookie", None),
                ("--rpc-user", None),
                ("--rpc-password-file", None),
                ("--p2p", None),
            ],
        ),
    ];
    for (command, expected) in &cases {
        let output = peerlab()
            .args(*command)
            .arg("--help")
            .output()
            .expect("run --help");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?} --help failed");
        let options = help_options(&text);
        for (flag, default) in expected {
            let long = flag.rsplit(' ').next().expect("a flag");
            let option = options
                .get(long)
                .unwrap_or_else(|| panic!("`peerlab {command:?} --help` lacks {long}:\n{text}"));
            assert!(
                option.flag_line.starts_with(flag),
                "{command:?}: {long} is listed as {:?}, expected {flag:?}",
                option.flag_line
            );
            assert!(
                option.description.lines().any(|l| !l.starts_with('[')),
                "{command:?}: {long} has no description"
            );
            if let Some(default) = default {
                assert!(
                    option
                        .description
                        .contains(&format!("[default: {default}]")),
                    "{command:?}: {long} should default to {default}:\n{}",
                    option.description
                );
            }
        }
    }
    // What the options say, where it matters to peer-observer's users.
    let help = |command: &[&str]| {
        let output = peerlab()
            .args(command)
            .arg("--help")
            .output()
            .expect("run --help");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let log = help(&["extract", "log"]);
    assert!(
        help_options(&log)["--debug-log"]
            .description
            .contains("--bitcoind-pipe"),
        "peer-observer's flag name is shown as an alias:\n{log}"
    );
    let p2p = help(&["extract", "p2p"]);
    let network = &help_options(&p2p)["--p2p-network"].description;
    for name in ["mainnet", "testnet3", "testnet4", "signet", "regtest"] {
        assert!(
            network.contains(name),
            "--p2p-network lacks {name}: {network}"
        );
    }
    let convert = help(&["convert"]);
    assert!(
        convert.contains("<IN> <OUT>") && convert.contains(".bin.zst"),
        "{convert}"
    );
}
