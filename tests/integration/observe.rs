//! `peerlab observe --datadir DIR` against a regtest node started outside peerlab's stack
//! (its own datadir and ports; `bitcoin-node -ipcbind=unix`, the node with IPC): with no other
//! flag, every extractor attaches (one line each on stdout) and events of all five arrive on
//! NATS.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerlab::bus::{NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::EventKind;
use peerlab::node::{NodeRpc as _, RegtestConfig, RegtestNode};
use peerlab::stack::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_attaches_every_extractor_from_the_datadir_alone() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let mut subscriber =
        Subscriber::connect(&NatsOptions::local(nats.url()), SubjectScheme::Flat, &[])
            .await
            .expect("subscriber");
    let datadir = tempfile::tempdir().expect("datadir");
    let bitcoin_node = common::installation()
        .bitcoin_node
        .expect("`peerlab setup` builds bitcoin-node");
    let config = RegtestConfig {
        datadir: Some(datadir.path().to_path_buf()),
        extra_args: vec!["-ipcbind=unix".into()],
        ..RegtestConfig::new(bitcoin_node)
    };
    let node = tokio::task::block_in_place(|| RegtestNode::start(&config)).expect("node");

    let mut child = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["observe", "--datadir"])
        .arg(datadir.path())
        .args(["-a", &nats.url(), "--duration", "60"])
        .args(["--metrics-address", "127.0.0.1:0", "--alerts"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("observe starts");
    // Its stdout, line by line: the tools' addresses come first.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = String::new();
    let metrics_address = loop {
        let line = lines
            .recv_timeout(common::TIMEOUT)
            .expect("observe names its metrics address");
        stdout.push_str(&line);
        stdout.push('\n');
        if let Some(rest) = line.strip_prefix("metrics: http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };

    // Blocks make eBPF (validation), log (BlockConnected) and P2P (inv/headers) events; the
    // RPC and IPC extractors poll at once.
    let wanted = [
        EventKind::Validation,
        EventKind::LogExtractor,
        EventKind::Rpc,
        EventKind::P2pExtractor,
        EventKind::Ipc,
    ];
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + common::TIMEOUT;
    let mut next_block = Instant::now();
    while !wanted.iter().all(|k| seen.contains(k)) && Instant::now() < deadline {
        if Instant::now() >= next_block {
            tokio::task::block_in_place(|| node.mine(1)).expect("mine");
            next_block = Instant::now() + Duration::from_millis(500);
        }
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(200), subscriber.next()).await
        {
            seen.extend(message.kind);
        }
    }
    // The metrics tool observe started counts what the extractors publish: the IPC tip
    // (polled every 10 s) reaches a mined height.
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let (_, body) = crate::metrics_tool::get(&metrics_address, "/metrics", "").await;
        let text = String::from_utf8_lossy(&body).to_string();
        let tip = text
            .lines()
            .find_map(|l| l.strip_prefix("peerobserver_ipc_block_tip_height "))
            .and_then(|v| v.parse::<i64>().ok());
        if tip.is_some_and(|h| h > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "IPC tip in the metrics: {tip:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: kill(2) on our own child; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().expect("observe exits");
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    for extractor in [
        "ebpf-extractor",
        "log-extractor",
        "rpc-extractor",
        "p2p-extractor",
        "ipc-extractor",
    ] {
        assert!(
            stdout.contains(&format!("{extractor}: attached to")),
            "{extractor} not attached:\n{stdout}"
        );
    }
    assert!(
        wanted.iter().all(|k| seen.contains(k)),
        "kinds seen {seen:?}; stdout:\n{stdout}"
    );
    assert!(status.success(), "{status:?}");
}
