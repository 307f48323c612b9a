//! peer-observer's alert heuristics (tools.md §2), driven by event time so a replay raises
//! the same alerts at the same moments as the live run did.
//!
//! State is per node peer id. Each heuristic fires at most once per peer; a peer's state is
//! dropped when its connection closes, or when it has not been seen for `peer_stale_secs`
//! (checked every `peer_stale_secs` of event time), and a peer that raised an alert then
//! gets one `PeerDisconnected`.
//!
//! Connections to [`AlertConfig::ignore_peers`] (the observer's own P2P extractor, which the
//! node dials and which pings it every few seconds) are never judged.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::event::proto::ebpf_extractor::connection::connection_event::Event as ConnEvent;
use crate::event::proto::ebpf_extractor::message::message_event::Msg;
use crate::event::proto::ebpf_extractor::message::MessageEvent;

/// Thresholds and windows (upstream's flags and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Inbound pings in the window above which a peer is a ping spammer (3).
    pub ping_threshold: usize,
    /// The ping window (120 s).
    pub ping_window_secs: u64,
    /// Inbound addr/addrv2 messages in the window above which a peer is an addr spammer (6).
    pub addr_threshold: usize,
    /// The addr window (60 s).
    pub addr_window_secs: u64,
    /// Tokens a new peer's address bucket starts with (1).
    pub addr_entries_initial_tokens: f64,
    /// The bucket's capacity (1000).
    pub addr_entries_bucket_capacity: f64,
    /// Tokens added per second (0.1).
    pub addr_entries_rate_per_sec: f64,
    /// Rate-limited entries above which a peer is an addr-entries spammer (20).
    pub addr_entries_threshold: u64,
    /// A flagged peer not seen for this long is dropped (300 s).
    pub peer_stale_secs: u64,
    /// Peers never judged, by the address the node reports for them (`meta.addr`): the
    /// observer's own P2P extractor, whose listen address the node dials (`addnode`), so the
    /// node reports that address; its pings would otherwise make it a ping spammer. Empty by
    /// default (peerlab's stack fills it in when it runs the extractor beside the alerts).
    pub ignore_peers: Vec<SocketAddr>,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        AlertConfig {
            ping_threshold: 3,
            ping_window_secs: 120,
            addr_threshold: 6,
            addr_window_secs: 60,
            addr_entries_initial_tokens: 1.0,
            addr_entries_bucket_capacity: 1000.0,
            addr_entries_rate_per_sec: 0.1,
            addr_entries_threshold: 20,
            peer_stale_secs: 300,
            ignore_peers: Vec::new(),
        }
    }
}

/// The kinds of alert, in the order `PeerDisconnected` lists a peer's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// Too many inbound pings in the window.
    PingSpammer,
    /// Too many inbound addr/addrv2 messages in the window.
    AddrSpammer,
    /// Too many address entries beyond the token bucket.
    AddrEntriesSpammer,
    /// A flagged peer went away.
    PeerDisconnected,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 4] = [
        AlertKind::PingSpammer,
        AlertKind::AddrSpammer,
        AlertKind::AddrEntriesSpammer,
        AlertKind::PeerDisconnected,
    ];

    /// The name in log lines and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::PingSpammer => "PingSpammer",
            AlertKind::AddrSpammer => "AddrSpammer",
            AlertKind::AddrEntriesSpammer => "AddrEntriesSpammer",
            AlertKind::PeerDisconnected => "PeerDisconnected",
        }
    }
}

/// One alert, as published on the alerts subject (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What was detected.
    pub kind: AlertKind,
    /// The node's id of the peer.
    pub peer_id: u64,
    /// The peer's address (`ip:port`) as first seen.
    pub addr: String,
    /// When (the triggering event's time, ms since the epoch).
    pub timestamp_ms: u64,
    /// The log line, in upstream's exact layout.
    pub line: String,
}

#[derive(Debug)]
struct PeerState {
    addr: String,
    last_seen_ms: u64,
    pings: VecDeque<u64>,
    addrs: VecDeque<u64>,
    tokens: f64,
    refilled_ms: u64,
    rate_limited: u64,
    getaddr_sent: u64,
    /// The alerts raised, and when the first one was.
    flags: Vec<AlertKind>,
    first_alert_ms: Option<u64>,
}

/// The heuristics over a stream of P2P message and connection events.
#[derive(Debug)]
pub struct Alerter {
    config: AlertConfig,
    peers: HashMap<u64, PeerState>,
    last_sweep_ms: Option<u64>,
}

impl Alerter {
    /// No peers yet.
    pub fn new(config: AlertConfig) -> Alerter {
        Alerter {
            config,
            peers: HashMap::new(),
            last_sweep_ms: None,
        }
    }

    /// One event at its own time: P2P messages and connection events are judged, others
    /// raise nothing.
    pub fn event(&mut self, event: &crate::event::Event) -> Vec<Alert> {
        use crate::event::proto::ebpf_extractor::ebpf::EbpfEvent;
        use crate::event::proto::event::event::PeerObserverEvent;
        let Some(PeerObserverEvent::EbpfExtractor(ebpf)) = &event.peer_observer_event else {
            return Vec::new();
        };
        match &ebpf.ebpf_event {
            Some(EbpfEvent::Message(m)) => self.message(m, event.timestamp),
            Some(EbpfEvent::Connection(c)) => c
                .event
                .as_ref()
                .map(|c| self.connection(c, event.timestamp))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// One P2P message at `now_ms`; the alerts it raises.
    pub fn message(&mut self, event: &MessageEvent, now_ms: u64) -> Vec<Alert> {
        let mut alerts = self.sweep(now_ms);
        let meta = &event.meta;
        if self.ignored(&meta.addr) {
            return alerts;
        }
        let config = self.config.clone();
        let peer = self.peers.entry(meta.peer_id).or_insert_with(|| PeerState {
            addr: meta.addr.clone(),
            last_seen_ms: now_ms,
            pings: VecDeque::new(),
            addrs: VecDeque::new(),
            tokens: config.addr_entries_initial_tokens,
            refilled_ms: now_ms,
            rate_limited: 0,
            getaddr_sent: 0,
            flags: Vec::new(),
            first_alert_ms: None,
        });
        peer.last_seen_ms = now_ms;
        let mut raise = |peer: &mut PeerState, kind: AlertKind, detail: String| {
            if peer.flags.contains(&kind) {
                return;
            }
            peer.flags.push(kind);
            peer.first_alert_ms.get_or_insert(now_ms);
            alerts.push(Alert {
                kind,
                peer_id: meta.peer_id,
                addr: peer.addr.clone(),
                timestamp_ms: now_ms,
                line: format!(
                    "{} | peer_id={} addr={} | {detail}",
                    kind.name(),
                    meta.peer_id,
                    peer.addr
                ),
            });
        };
        match (&event.msg, meta.inbound) {
            (Some(Msg::Ping(_)), true) => {
                let n = slide(&mut peer.pings, now_ms, config.ping_window_secs);
                if n > config.ping_threshold {
                    let detail = format!(
                        "{n} pings in last {}s (threshold: {})",
                        config.ping_window_secs, config.ping_threshold
                    );
                    raise(peer, AlertKind::PingSpammer, detail);
                }
            }
            (Some(msg @ (Msg::Addr(_) | Msg::Addrv2(_))), true) => {
                let entries = match msg {
                    Msg::Addr(a) => a.addresses.len(),
                    Msg::Addrv2(a) => a.addresses.len(),
                    _ => 0,
                } as u64;
                let n = slide(&mut peer.addrs, now_ms, config.addr_window_secs);
                if n > config.addr_threshold {
                    let detail = format!(
                        "{n} addr/addrv2 messages in last {}s (threshold: {})",
                        config.addr_window_secs, config.addr_threshold
                    );
                    raise(peer, AlertKind::AddrSpammer, detail);
                }
                if peer.tokens < config.addr_entries_bucket_capacity {
                    let elapsed = now_ms.saturating_sub(peer.refilled_ms) as f64 / 1000.0;
                    peer.tokens = (peer.tokens + elapsed * config.addr_entries_rate_per_sec)
                        .min(config.addr_entries_bucket_capacity);
                }
                peer.refilled_ms = now_ms;
                let processed = entries.min(peer.tokens.floor().max(0.0) as u64);
                peer.tokens -= processed as f64;
                peer.rate_limited += entries - processed;
                if peer.rate_limited > config.addr_entries_threshold {
                    let detail = format!(
                        "{} addr/addrv2 entries rate-limited (threshold: {}, bucket: {}, rate: \
                         {}/s, getaddr_sent: {})",
                        peer.rate_limited,
                        config.addr_entries_threshold,
                        config.addr_entries_bucket_capacity,
                        config.addr_entries_rate_per_sec,
                        peer.getaddr_sent
                    );
                    raise(peer, AlertKind::AddrEntriesSpammer, detail);
                }
            }
            (Some(Msg::Getaddr(_)), false) => {
                // Asking a peer for addresses entitles it to answer with a full bucket.
                peer.tokens += config.addr_entries_bucket_capacity;
                peer.getaddr_sent += 1;
            }
            _ => {}
        }
        alerts
    }

    /// One connection event at `now_ms`: a closed connection drops the peer's state (with a
    /// `PeerDisconnected` if it was flagged).
    pub fn connection(&mut self, event: &ConnEvent, now_ms: u64) -> Vec<Alert> {
        let mut alerts = self.sweep(now_ms);
        if let ConnEvent::Closed(closed) = event {
            if let Some(peer) = self.peers.remove(&closed.conn.peer_id) {
                alerts.extend(disconnected(closed.conn.peer_id, &peer, now_ms));
            }
        }
        alerts
    }

    /// Whether the node's address for a peer is one of `ignore_peers` (compared as socket
    /// addresses, so `[::1]:8333` and its other spellings match; an address that does not
    /// parse, such as an onion name, is never ignored).
    fn ignored(&self, addr: &str) -> bool {
        !self.config.ignore_peers.is_empty()
            && addr
                .parse::<SocketAddr>()
                .is_ok_and(|a| self.config.ignore_peers.contains(&a))
    }

    /// Drops peers not seen for `peer_stale_secs`, at most once per that period.
    fn sweep(&mut self, now_ms: u64) -> Vec<Alert> {
        let period_ms = self.config.peer_stale_secs * 1000;
        let due = self
            .last_sweep_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= period_ms);
        if !due {
            return Vec::new();
        }
        self.last_sweep_ms = Some(now_ms);
        let stale: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.last_seen_ms) >= period_ms)
            .map(|(id, _)| *id)
            .collect();
        let mut alerts = Vec::new();
        for id in stale {
            if let Some(peer) = self.peers.remove(&id) {
                alerts.extend(disconnected(id, &peer, now_ms));
            }
        }
        alerts
    }
}

/// Appends `now_ms` to the window, drops entries older than it, and returns its size.
fn slide(window: &mut VecDeque<u64>, now_ms: u64, secs: u64) -> usize {
    window.push_back(now_ms);
    while window
        .front()
        .is_some_and(|&t| now_ms.saturating_sub(t) > secs * 1000)
    {
        window.pop_front();
    }
    window.len()
}

fn disconnected(peer_id: u64, peer: &PeerState, now_ms: u64) -> Option<Alert> {
    let first = peer.first_alert_ms?;
    let mut flags = peer.flags.clone();
    flags.sort();
    let names: Vec<&str> = flags.iter().map(|k| k.name()).collect();
    Some(Alert {
        kind: AlertKind::PeerDisconnected,
        peer_id,
        addr: peer.addr.clone(),
        timestamp_ms: now_ms,
        line: format!(
            "PeerDisconnected | peer_id={peer_id} addr={} | active={}s | flags=[{}]",
            peer.addr,
            now_ms.saturating_sub(first) / 1000,
            names.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::proto::ebpf_extractor::connection::{ClosedConnection, Connection};
    use crate::event::proto::ebpf_extractor::message::{Addr, Metadata, Ping};

    fn message(peer_id: u64, inbound: bool, msg: Msg) -> MessageEvent {
        MessageEvent {
            meta: Metadata {
                peer_id,
                addr: "203.0.113.7:8333".into(),
                conn_type: 1,
                command: String::new(),
                inbound,
                size: 0,
            },
            msg: Some(msg),
        }
    }

    fn addr(entries: usize) -> Msg {
        Msg::Addr(Addr {
            addresses: vec![Default::default(); entries],
        })
    }

    #[test]
    fn ping_spammer_fires_once_above_the_threshold_within_the_window() {
        let mut a = Alerter::new(AlertConfig::default());
        let ping = message(1, true, Msg::Ping(Ping { value: 1 }));
        // Three pings a minute apart stay at the threshold (3 in 120 s).
        for t in [0, 60_000, 120_000, 180_000] {
            assert!(a.message(&ping, t).is_empty(), "at {t} ms");
        }
        // A burst: the fourth inside the window fires, once.
        let mut alerts = Vec::new();
        for t in 200_000..200_010 {
            alerts.extend(a.message(&ping, t));
        }
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].line,
            "PingSpammer | peer_id=1 addr=203.0.113.7:8333 | 4 pings in last 120s (threshold: 3)"
        );
        // Outbound pings never count.
        let mut b = Alerter::new(AlertConfig::default());
        for t in 0..10 {
            assert!(b
                .message(&message(2, false, Msg::Ping(Ping { value: 1 })), t)
                .is_empty());
        }
    }

    #[test]
    fn addr_spammer_and_token_bucket_then_disconnect_lists_the_flags() {
        let mut a = Alerter::new(AlertConfig::default());
        // Two 1000-entry messages: one token at first, so 999 + 1000 are rate-limited.
        let first = a.message(&message(3, true, addr(1000)), 1_000);
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].line,
            "AddrEntriesSpammer | peer_id=3 addr=203.0.113.7:8333 | 999 addr/addrv2 entries \
             rate-limited (threshold: 20, bucket: 1000, rate: 0.1/s, getaddr_sent: 0)"
        );
        let mut later = Vec::new();
        for t in 2..=8 {
            later.extend(a.message(&message(3, true, addr(1)), t * 1_000));
        }
        let kinds: Vec<AlertKind> = later.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, [AlertKind::AddrSpammer], "7 messages in 60 s > 6");
        assert!(later[0]
            .line
            .ends_with("7 addr/addrv2 messages in last 60s (threshold: 6)"));

        let closed = ConnEvent::Closed(ClosedConnection {
            conn: Connection {
                peer_id: 3,
                addr: "203.0.113.7:8333".into(),
                conn_type: 1,
                network: 1,
            },
            time_established: 0,
        });
        let gone = a.connection(&closed, 31_000);
        assert_eq!(
            gone[0].line,
            "PeerDisconnected | peer_id=3 addr=203.0.113.7:8333 | active=30s | \
             flags=[AddrSpammer, AddrEntriesSpammer]"
        );
    }

    #[test]
    fn ignored_peers_are_never_judged_while_others_still_are() {
        let own: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let mut a = Alerter::new(AlertConfig {
            ignore_peers: vec![own],
            ..AlertConfig::default()
        });
        let mut own_ping = message(1, true, Msg::Ping(Ping { value: 1 }));
        own_ping.meta.addr = own.to_string();
        let flood = message(2, true, Msg::Ping(Ping { value: 1 }));
        let mut alerts = Vec::new();
        for t in 0..10 {
            alerts.extend(a.message(&own_ping, t * 1000));
            alerts.extend(a.message(&flood, t * 1000));
        }
        let flagged: Vec<u64> = alerts.iter().map(|x| x.peer_id).collect();
        assert_eq!(flagged, [2], "only the flooder is flagged");
        assert!(
            !a.peers.contains_key(&1),
            "no state kept for the ignored peer"
        );
    }

    #[test]
    fn getaddr_grants_a_full_bucket_and_unflagged_peers_leave_quietly() {
        let mut a = Alerter::new(AlertConfig::default());
        assert!(a
            .message(&message(4, false, Msg::Getaddr(true)), 0)
            .is_empty());
        // The answer to our getaddr fits the bucket: nothing is rate-limited.
        assert!(a.message(&message(4, true, addr(1000)), 500).is_empty());
        // Stale after 300 s without events: dropped without an alert (never flagged).
        assert!(a.message(&message(5, true, addr(1)), 400_000).is_empty());
        assert!(!a.peers.contains_key(&4));
    }
}
