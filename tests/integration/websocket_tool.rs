//! `peerlab tools websocket` against a real nats-server and real websocket clients, fed by
//! `peerlab replay` of `recordings/regtest-sample.mcap`: each client receives exactly the
//! kinds it subscribed to, the P2P message frames equal the committed golden
//! `tests/golden/websocket-regtest-sample-messages.jsonl` (JSON shaped as peer-observer's
//! websocket tool sends it), and a client that sends an oversized or invalid subscription is
//! disconnected while the others keep receiving; and the RPC, P2P-extractor and IPC frames of
//! `recordings/observer-sample.mcap` equal `tests/golden/websocket-observer-sample-rpc-p2p-ipc.jsonl`.
//! Run with `PEERLAB_BLESS=1` to rewrite the goldens after an intended change.

use crate::common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use peerlab::event::proto::ebpf_extractor::connection::{
    connection_event, ConnectionEvent, InboundConnection,
};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::message::{
    message_event::Msg, MessageEvent, Metadata, Ping,
};
use peerlab::event::proto::ebpf_extractor::Ebpf;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::Event;
use peerlab::stack::NatsServer;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const RECORDING: &str = "recordings/regtest-sample.mcap";
const GOLDEN: &str = "tests/golden/websocket-regtest-sample-messages.jsonl";
/// The address of the probe events that prove a client's subscription is in place.
const PROBE_ADDR: &str = "192.0.2.1:1";

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn probe(event: EbpfEvent) -> Event {
    Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(event),
        })),
    }
}

fn probe_message() -> Event {
    probe(EbpfEvent::Message(MessageEvent {
        meta: Metadata {
            peer_id: 1,
            addr: PROBE_ADDR.into(),
            conn_type: 1,
            command: "ping".into(),
            inbound: true,
            size: 8,
        },
        msg: Some(Msg::Ping(Ping { value: 1 })),
    }))
}

fn probe_connection() -> Event {
    probe(EbpfEvent::Connection(ConnectionEvent {
        event: Some(connection_event::Event::Inbound(InboundConnection {
            conn: peerlab::event::proto::ebpf_extractor::connection::Connection {
                peer_id: 1,
                addr: PROBE_ADDR.into(),
                conn_type: 1,
                network: 1,
            },
            existing_connections: 1,
        })),
    }))
}

fn is_probe(frame: &str) -> bool {
    frame.contains(PROBE_ADDR)
}

/// The next text frame (bounded); `None` once the server closed the connection.
async fn next_text(client: &mut Client) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(common::TIMEOUT, client.next())
            .await
            .expect("a frame or the close in time");
        match frame {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Connects and subscribes; then publishes `probe` until the client receives one, so the
/// subscription is known to be in place.
async fn subscribed(
    address: &str,
    frame: &str,
    publisher: &peerlab::bus::Publisher,
    probe: fn() -> Event,
) -> Client {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{address}/"))
        .await
        .expect("websocket connects");
    client
        .send(Message::Text(frame.into()))
        .await
        .expect("send the subscription");
    let arrived = tokio::time::timeout(common::TIMEOUT, async {
        loop {
            assert!(publisher.publish_event(&probe()));
            let got = tokio::time::timeout(Duration::from_millis(200), client.next()).await;
            if let Ok(Some(Ok(Message::Text(text)))) = got {
                assert!(
                    is_probe(&text),
                    "before the replay only probes arrive: {text}"
                );
                return;
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "the subscription {frame} took effect");
    client
}

/// Starts `peerlab tools websocket` on a free port; the tool and its address.
fn start_tool(nats: &NatsServer) -> (common::ChildGuard, String) {
    let mut tool = common::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_peerlab"))
            .args(["tools", "websocket", "-w", "127.0.0.1:0", "-a", &nats.url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the websocket tool starts"),
    );
    let stdout = tool.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(common::TIMEOUT).expect("the address line");
    let address = line
        .split("ws://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (tool, address)
}

/// Stops the tool with SIGTERM; it must exit cleanly.
fn stop_tool(mut tool: common::ChildGuard) {
    // SAFETY: kill(2) on our own child; no memory is involved.
    let sent = unsafe { libc::kill(tool.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    assert!(tool.wait().expect("exits").success());
}

/// Compares `frames` with `golden` (or writes it with `PEERLAB_BLESS=1`).
fn assert_golden(golden_path: &str, frames: &[String]) {
    let actual = frames.join("\n") + "\n";
    if std::env::var_os("PEERLAB_BLESS").is_some() {
        std::fs::write(golden_path, &actual).expect("write the golden");
    }
    let golden = std::fs::read_to_string(golden_path)
        .unwrap_or_else(|e| panic!("{golden_path}: {e} (PEERLAB_BLESS=1 writes it)"));
    assert_eq!(
        actual, golden,
        "the websocket frames differ from {golden_path}; rerun with PEERLAB_BLESS=1 if intended"
    );
}

/// Replays `recording` into the NATS server at `url`, as fast as it goes.
fn replay(recording: &str, url: &str) {
    let replay = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["replay", recording, "--speed", "0", "-a", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(replay.success());
}

/// Messages of `subject` in `recording`.
fn count(recording: &str, subject: &str) -> u64 {
    peerlab::record::inspect::summarize_file(Path::new(recording))
        .expect("recording")
        .subjects
        .iter()
        .find(|s| s.subject == subject)
        .map_or(0, |s| s.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_receive_exactly_their_kinds_as_upstream_json() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let (tool, address) = start_tool(&nats);

    let publisher = common::local_publisher(&nats.url()).await;
    let mut messages = subscribed(
        &address,
        r#"{"ebpf":{"messages":true}}"#,
        &publisher,
        probe_message,
    )
    .await;
    let mut connections = subscribed(
        &address,
        r#"{"ebpf":{"connections":true,"validation":true}}"#,
        &publisher,
        probe_connection,
    )
    .await;
    // A second subscription replaces the first: this client ends up with connections only.
    let mut oversized = subscribed(
        &address,
        r#"{"ebpf":{"connections":true}}"#,
        &publisher,
        probe_connection,
    )
    .await;
    let padding = "x".repeat(600);
    oversized
        .send(Message::Text(
            format!(r#"{{"rpc":true,"pad":"{padding}"}}"#).into(),
        ))
        .await
        .expect("send");
    let (mut invalid, _) = tokio_tungstenite::connect_async(format!("ws://{address}/"))
        .await
        .expect("connects");
    invalid
        .send(Message::Text("{not json".into()))
        .await
        .expect("send");

    replay(RECORDING, &nats.url());

    // The expected counts, from the recording itself.
    let count = |subject: &str| count(RECORDING, subject);
    let (netmsg, other) = (count("netmsg"), count("netconn") + count("validation"));

    let mut frames = Vec::new();
    while (frames.len() as u64) < netmsg {
        let text = next_text(&mut messages).await.expect("still connected");
        if !is_probe(&text) {
            frames.push(text);
        }
    }
    let mut seen = 0;
    while seen < other {
        let text = next_text(&mut connections).await.expect("still connected");
        if is_probe(&text) {
            continue;
        }
        let json: Value = serde_json::from_str(&text).expect("JSON");
        let arm = json["EbpfExtractor"]["ebpf_event"]
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .expect("an ebpf event");
        assert!(arm == "Connection" || arm == "Validation", "{arm}: {text}");
        seen += 1;
    }
    // Only subscribed kinds: every frame of the first client is a P2P message.
    for frame in &frames {
        let json: Value = serde_json::from_str(frame).expect("JSON");
        assert!(json["EbpfExtractor"]["ebpf_event"]["Message"]["meta"].is_object());
        assert!(json.get("timestamp").is_none(), "the envelope is not sent");
    }
    // The bad clients were disconnected (their reads end), the good ones were not.
    assert_eq!(next_text(&mut invalid).await, None);
    // Connection frames sent before the server read the oversized frame may come first;
    // then the read ends (a server that kept the client would time this loop out).
    while let Some(text) = next_text(&mut oversized).await {
        assert!(text.contains("\"Connection\""), "connections only: {text}");
    }

    assert_golden(GOLDEN, &frames);

    // The pages are served on the same address.
    let (head, body) = crate::metrics_tool::get(&address, "/", "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("peerlab live pages"));
    stop_tool(tool);
}

/// A peer-infos reply for one peer at the probe address (not in any recording).
fn probe_rpc() -> Event {
    use peerlab::event::proto::rpc_extractor::{rpc::RpcEvent, PeerInfo, PeerInfos, Rpc};
    Event {
        timestamp: 1,
        peer_observer_event: Some(PeerObserverEvent::RpcExtractor(Rpc {
            rpc_event: Some(RpcEvent::PeerInfos(PeerInfos {
                infos: vec![PeerInfo {
                    address: PROBE_ADDR.into(),
                    ..PeerInfo::default()
                }],
            })),
        })),
    }
}

/// The other extractors' JSON: the RPC, P2P-extractor and IPC frames of the every-extractor
/// sample equal their golden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_extractors_frames_equal_their_golden() {
    const RECORDING: &str = "recordings/observer-sample.mcap";
    const GOLDEN: &str = "tests/golden/websocket-observer-sample-rpc-p2p-ipc.jsonl";
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let (tool, address) = start_tool(&nats);
    let publisher = common::local_publisher(&nats.url()).await;
    let mut client = subscribed(
        &address,
        r#"{"rpc":true,"p2p":true,"ipc":true}"#,
        &publisher,
        probe_rpc,
    )
    .await;
    replay(RECORDING, &nats.url());
    let expected = ["rpc", "p2p-extractor", "ipc"]
        .iter()
        .map(|s| count(RECORDING, s))
        .sum::<u64>();
    assert!(expected > 0);
    let mut frames = Vec::new();
    while (frames.len() as u64) < expected {
        let text = next_text(&mut client).await.expect("still connected");
        if !is_probe(&text) {
            frames.push(text);
        }
    }
    for frame in &frames {
        let json: Value = serde_json::from_str(frame).expect("JSON");
        let top = json.as_object().and_then(|o| o.keys().next().cloned());
        assert!(
            matches!(
                top.as_deref(),
                Some("RpcExtractor" | "P2pExtractor" | "IpcExtractor")
            ),
            "only subscribed kinds: {frame}"
        );
    }
    assert_golden(GOLDEN, &frames);
    stop_tool(tool);
}
