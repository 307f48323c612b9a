//! The eBPF extractor against a real regtest bitcoind, real eBPF on its tracepoints, and a
//! real nats-server: what the node does arrives on the bus, exactly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash as _;
use bitcoin::Amount;
use peerlab::bus::{
    BusMessage, NatsOptions, Publisher, PublisherConfig, SubjectScheme, Subscriber,
};
use peerlab::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use peerlab::event::proto::ebpf_extractor::validation::validation_event;
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::{strict, Event};
use peerlab::extractor::ebpf::{EbpfConfig, EbpfExtractor, Target};
use peerlab::harness::NatsServer;
use peerlab::node::{RegtestConfig, RegtestNode};
use prost::Message as _;

/// nats-server, a regtest node, an extractor tracing it, and a subscriber on every subject.
struct Stack {
    _nats: NatsServer,
    node: RegtestNode,
    extractor: Option<EbpfExtractor>,
    subscriber: Subscriber,
}

impl Stack {
    async fn start() -> Stack {
        let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
        let options = NatsOptions::local(nats.url());
        let subscriber = Subscriber::connect(&options, SubjectScheme::Flat, &[])
            .await
            .expect("subscribe");
        let publisher =
            Publisher::connect(&options, SubjectScheme::Flat, PublisherConfig::default())
                .await
                .expect("publisher");
        let node = RegtestNode::start(&RegtestConfig::new(common::bitcoind())).expect("node");
        let pid = node.pid().expect("pid");
        let extractor = EbpfExtractor::start(
            EbpfConfig::new(common::bitcoind(), Target::Pid(pid)),
            Arc::new(publisher),
        )
        .expect("extractor attaches");
        let stats = extractor.stats();
        tokio::time::timeout(common::TIMEOUT, async {
            while stats.traced_pid.load(std::sync::atomic::Ordering::Relaxed) != pid {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("extractor traces the node");
        Stack {
            _nats: nats,
            node,
            extractor: Some(extractor),
            subscriber,
        }
    }

    /// Next event (strictly checked) satisfying `pred`.
    async fn next_where(&mut self, mut pred: impl FnMut(&Event) -> bool) -> Event {
        tokio::time::timeout(common::TIMEOUT, async {
            loop {
                let message: BusMessage = self.subscriber.next().await.expect("subscription open");
                strict::check_event(&message.payload)
                    .expect("every published event passes the strict check");
                let event = Event::decode(message.payload.as_ref()).expect("decodes");
                if pred(&event) {
                    return event;
                }
            }
        })
        .await
        .expect("expected event within the timeout")
    }
}

fn ebpf(event: &Event) -> Option<&EbpfEvent> {
    match event.peer_observer_event.as_ref()? {
        PeerObserverEvent::EbpfExtractor(e) => e.ebpf_event.as_ref(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_blocks_arrive_as_block_connected_with_rpc_heights_and_hashes() {
    let mut stack = Stack::start().await;
    let hashes = tokio::task::block_in_place(|| stack.node.mine(5)).expect("mine");
    for (i, hash) in hashes.iter().enumerate() {
        let event = stack
            .next_where(|e| matches!(ebpf(e), Some(EbpfEvent::Validation(_))))
            .await;
        let Some(EbpfEvent::Validation(v)) = ebpf(&event) else {
            unreachable!()
        };
        let Some(validation_event::Event::BlockConnected(block)) = &v.event else {
            panic!("not block_connected")
        };
        assert_eq!(block.height, i as i32 + 1);
        // Internal byte order: the hash's raw bytes, i.e. the reverse of RPC's display hex.
        assert_eq!(
            block.hash,
            hash.to_byte_array().to_vec(),
            "block {} hash",
            i + 1
        );
        assert_eq!(block.transactions, 1);
    }
    let stats = stack
        .extractor
        .take()
        .expect("running")
        .stop()
        .await
        .expect("stops");
    assert_eq!(stats.dropped_in_kernel(), 0);
    assert_eq!(
        stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let _ = Amount::ZERO;
}
