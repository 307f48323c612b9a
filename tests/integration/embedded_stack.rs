//! The embedded stack (`peerlab::stack::EmbeddedStack`), the composition `run` and
//! `rehearse` share: the eBPF, log, RPC, P2P and IPC extractors all publish (the node is
//! `bitcoin-node`, so the IPC extractor has a socket; the node dials the P2P extractor and
//! announces the mined blocks to it), every event reaches a subscriber that came before the
//! observer, the stack stops in order (the extractor's last events are sent before the
//! publisher closes), and its final counters agree with what was received.

use crate::common;

use std::time::Duration;

use peerlab::bus::{SubjectScheme, Subscriber};
use peerlab::event::EventKind;
use peerlab::node::NodeRpc as _;
use peerlab::shutdown::Shutdown;
use peerlab::stack::{EmbeddedConfig, EmbeddedStack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_stack_delivers_every_event_and_stops_in_order() {
    const BLOCKS: u64 = 20;
    let mut stack = EmbeddedStack::start(EmbeddedConfig::new(common::installation()))
        .await
        .expect("stack starts");
    let mut subscriber = Subscriber::connect(stack.nats(), SubjectScheme::Flat, &[])
        .await
        .expect("subscriber");
    let shutdown = Shutdown::new();
    stack
        .observe(&shutdown)
        .await
        .expect("observer traces the node");
    let node = stack.node().expect("the stack holds its node");
    tokio::task::block_in_place(|| node.mine(BLOCKS)).expect("mine");

    let mut blocks = 0;
    let mut events = 0u64;
    let mut kinds = std::collections::BTreeSet::new();
    let wanted = [
        EventKind::Rpc,
        EventKind::LogExtractor,
        EventKind::Validation,
        EventKind::Ipc,
        EventKind::P2pExtractor,
    ];
    tokio::time::timeout(common::TIMEOUT, async {
        while blocks < BLOCKS || !wanted.iter().all(|k| kinds.contains(k)) {
            let message = subscriber.next().await.expect("subscription open");
            events += 1;
            if message.kind == Some(EventKind::Validation) {
                blocks += 1;
            }
            kinds.extend(message.kind);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("{blocks} of {BLOCKS} block_connected events; kinds seen {kinds:?}")
    });

    let counters = stack.finish().await.expect("stack stops");
    common::assert_nothing_lost(&counters.ebpf);
    let (log, rpc, p2p, ipc) = (
        counters.log.clone(),
        counters.rpc.clone(),
        counters.p2p.clone(),
        counters.ipc.clone(),
    );
    assert!(log.is_some_and(|c| c.published > 0), "{counters:?}");
    assert!(p2p.is_some_and(|c| c.published > 0), "{counters:?}");
    assert!(
        ipc.is_some_and(|c| c.ipc_fetch_errors == 0 && c.published > 0),
        "{counters:?}"
    );
    assert!(
        rpc.is_some_and(|c| c.rpc_errors.is_empty() && c.published > 0),
        "{counters:?}"
    );
    assert_eq!(counters.bus.dropped(), 0, "{:?}", counters.bus);
    assert!(counters.ebpf.published >= BLOCKS, "{:?}", counters.ebpf);
    // Whatever the extractor published after the blocks (e.g. connection events) arrives
    // too: the publisher sent everything before it closed.
    let published = counters.events_published();
    tokio::time::timeout(common::TIMEOUT, async {
        while events < published {
            subscriber.next().await.expect("subscription open");
            events += 1;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{events} of {published} published events arrived"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), subscriber.next())
            .await
            .is_err(),
        "nothing beyond what the extractor counted arrives"
    );
    assert!(stack.node().is_none(), "finish stopped the node");
}
