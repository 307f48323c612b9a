//! `peerlab tools alerts` and `peerlab tools metrics` against a real nats-server: inbound
//! pings published as eBPF events make the alerts tool publish a `PingSpammer` alert (JSON
//! on `peerlab.alerts`, with upstream's exact log line, also logged), the peer's closed
//! connection a `PeerDisconnected`, and the metrics tool counts both in `peerlab_alerts`;
//! pings from the address given to `--ignore-peer` (the observer's own P2P extractor) raise
//! nothing.

use crate::common;
use crate::metrics_tool::{get, MetricsProcess};

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerlab::bus::{SubjectScheme, Subscriber};
use peerlab::event::proto::ebpf_extractor::connection::{
    connection_event, ClosedConnection, Connection, ConnectionEvent,
};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::message::{
    message_event::Msg, MessageEvent, Metadata, Ping,
};
use peerlab::event::proto::ebpf_extractor::Ebpf;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::Event;
use peerlab::stack::NatsServer;
use peerlab::tools::alerts::{Alert, AlertKind};

const T0: u64 = 1_700_000_000_000;
const PEER: &str = "203.0.113.7:8333";
/// Where the observer's P2P extractor would listen (the node dials it and reports this).
const OWN: &str = "127.0.0.1:40001";

fn ebpf(timestamp: u64, event: EbpfEvent) -> Event {
    Event {
        timestamp,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(Ebpf {
            ebpf_event: Some(event),
        })),
    }
}

fn ping(timestamp: u64) -> Event {
    ping_from(9, PEER, timestamp)
}

fn ping_from(peer_id: u64, addr: &str, timestamp: u64) -> Event {
    ebpf(
        timestamp,
        EbpfEvent::Message(MessageEvent {
            meta: Metadata {
                peer_id,
                addr: addr.into(),
                conn_type: 1,
                command: "ping".into(),
                inbound: true,
                size: 8,
            },
            msg: Some(Msg::Ping(Ping { value: 1 })),
        }),
    )
}

async fn next_alert(subscriber: &mut Subscriber) -> Alert {
    let message = tokio::time::timeout(common::TIMEOUT, subscriber.next())
        .await
        .expect("an alert in time")
        .expect("subscription open");
    assert_eq!(message.subject, "peerlab.alerts");
    serde_json::from_slice(&message.payload).expect("an alert as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_raise_an_alert_that_is_published_logged_and_counted() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let metrics = MetricsProcess::start(&nats.url());
    let mut alerts = Subscriber::connect(
        &peerlab::bus::NatsOptions::local(nats.url()),
        SubjectScheme::Flat,
        &["peerlab.alerts".into()],
    )
    .await
    .expect("subscriber");
    let mut tool = common::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_peerlab"))
            .args(["tools", "alerts", "-a", &nats.url(), "--ignore-peer", OWN])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the alerts tool starts"),
    );
    // Its log lines, on a thread; the first tells that it has subscribed.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = tool.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + common::TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    };
    wait_for("alerts tool subscribed");

    let publisher = common::local_publisher(&nats.url()).await;
    // The ignored peer pings first, as often: were it judged, its alert would come first.
    for i in 0..5 {
        assert!(publisher.publish_event(&ping_from(8, OWN, T0 + i * 1000)));
    }
    // Five pings a second apart: the fourth (3 s in) is over the threshold of 3 per 120 s.
    for i in 0..5 {
        assert!(publisher.publish_event(&ping(T0 + i * 1000)));
    }
    let closed = ConnectionEvent {
        event: Some(connection_event::Event::Closed(ClosedConnection {
            conn: Connection {
                peer_id: 9,
                addr: PEER.into(),
                conn_type: 1,
                network: 1,
            },
            time_established: T0 / 1000,
        })),
    };
    assert!(publisher.publish_event(&ebpf(T0 + 10_000, EbpfEvent::Connection(closed))));

    let first = next_alert(&mut alerts).await;
    assert_eq!(first.kind, AlertKind::PingSpammer);
    assert_eq!(first.timestamp_ms, T0 + 3000);
    assert_eq!(
        first.line,
        "PingSpammer | peer_id=9 addr=203.0.113.7:8333 | 4 pings in last 120s (threshold: 3)"
    );
    let second = next_alert(&mut alerts).await;
    assert_eq!(
        second.line,
        "PeerDisconnected | peer_id=9 addr=203.0.113.7:8333 | active=7s | flags=[PingSpammer]"
    );
    // Logged as well, in the same format.
    wait_for(&first.line);

    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let (_, body) = get(&metrics.address, "/metrics", "").await;
        let text = String::from_utf8(body).expect("utf-8");
        if text.contains("peerlab_alerts{kind=\"PingSpammer\"} 1")
            && text.contains("peerlab_alerts{kind=\"PeerDisconnected\"} 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "alerts not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SAFETY: kill(2) on our own child; no memory is involved.
    let sent = unsafe { libc::kill(tool.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    assert!(tool.wait().expect("exits").success());
    metrics.stop();
}
