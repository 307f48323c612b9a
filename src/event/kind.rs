//! Event categories and their peer-observer subject names.

use std::fmt;
use std::str::FromStr;

use super::proto::ebpf_extractor::ebpf::EbpfEvent;
use super::proto::event::event::PeerObserverEvent;
use super::Event;

/// The category of an event; each category travels on its own NATS subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// P2P messages in and out (`ebpf.message`).
    NetMsg,
    /// Connections opened, closed, evicted, misbehaving (`ebpf.connection`).
    NetConn,
    /// Mempool additions, removals, replacements, rejections (`ebpf.mempool`).
    Mempool,
    /// Blocks connected (`ebpf.validation`).
    Validation,
    /// UTXO cache activity (`ebpf.utxocache`, a peerlab extension; off by default).
    Utxocache,
    /// RPC polling results.
    Rpc,
    /// Events of a P2P-connected extractor.
    P2pExtractor,
    /// Events parsed from the debug log.
    LogExtractor,
    /// Events of the IPC extractor (Bitcoin Core's Cap'n Proto interface).
    Ipc,
}

impl EventKind {
    /// Every kind, in subject order.
    pub const ALL: [EventKind; 9] = [
        EventKind::NetMsg,
        EventKind::NetConn,
        EventKind::Mempool,
        EventKind::Validation,
        EventKind::Utxocache,
        EventKind::Rpc,
        EventKind::P2pExtractor,
        EventKind::LogExtractor,
        EventKind::Ipc,
    ];

    /// peer-observer's flat subject for this kind.
    pub fn subject(self) -> &'static str {
        match self {
            EventKind::NetMsg => "netmsg",
            EventKind::NetConn => "netconn",
            EventKind::Mempool => "mempool",
            EventKind::Validation => "validation",
            EventKind::Utxocache => "utxocache",
            EventKind::Rpc => "rpc",
            EventKind::P2pExtractor => "p2p-extractor",
            EventKind::LogExtractor => "log-extractor",
            EventKind::Ipc => "ipc",
        }
    }

    /// The kind of an event, `None` when its oneof is empty (nothing to route).
    pub fn of(event: &Event) -> Option<EventKind> {
        Some(match event.peer_observer_event.as_ref()? {
            PeerObserverEvent::EbpfExtractor(ebpf) => match ebpf.ebpf_event.as_ref()? {
                EbpfEvent::Message(_) => EventKind::NetMsg,
                EbpfEvent::Connection(_) => EventKind::NetConn,
                EbpfEvent::Mempool(_) => EventKind::Mempool,
                EbpfEvent::Validation(_) => EventKind::Validation,
                EbpfEvent::Utxocache(_) => EventKind::Utxocache,
            },
            PeerObserverEvent::RpcExtractor(_) => EventKind::Rpc,
            PeerObserverEvent::P2pExtractor(_) => EventKind::P2pExtractor,
            PeerObserverEvent::LogExtractor(_) => EventKind::LogExtractor,
            PeerObserverEvent::IpcExtractor(_) => EventKind::Ipc,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subject())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.subject() == s)
            .ok_or_else(|| {
                let known: Vec<_> = EventKind::ALL.iter().map(|k| k.subject()).collect();
                format!(
                    "unknown event kind `{s}`; expected one of {}",
                    known.join(", ")
                )
            })
    }
}
