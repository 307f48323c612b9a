//! Scripted peers: one [`Behaviour`] of a scenario's peer group, played by one [`Peer`].
//!
//! [`run_peer`] connects, optionally completes the handshake, plays the behaviour and then
//! idles until `stop` fires or the node hangs up. It never panics on network input, every
//! socket operation is bounded ([`PeerConfig::io_timeout`]) and every random choice (VERSION
//! nonce, addresses, txids, garbage bytes, transactions) derives from `seed`.
//!
//! Every behaviour of the scenario format is played here; those that need something from
//! outside the connection get it in a [`PeerContext`]: mature coins for valid transaction
//! spam (the rehearsal allots them through RPC) and the loaded [`ReplayScript`] for
//! `replay_recorded`. Chain objects (headers, blocks, transactions) come from
//! [`chain`](super::chain), which also learns the node's tip over P2P.
//!
//! Facts about Bitcoin Core's reactions are in `shared/spec/bitcoin-core.md` §5.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::chain::{
    bad_headers, discover_tip, invalid_block, orphan_transactions, valid_transactions, ChainTip,
};
use super::params::{
    AddrFlood, AddrVersion, Behaviour, GetdataFlood, InvFlood, Malformed, MalformedKind, PingFlood,
    TxKind, TxSpam, VersionAbuse,
};
use super::replay::{self, ReplayScript};
use crate::node::KeylessCoin;
use crate::p2p::{checksum, frame, HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::peer::{
    addr_message, inv_message, Peer, PeerConfig, PeerError, Rng, DEFAULT_USER_AGENT,
};

/// Mainnet magic: the "wrong" magic of `malformed` `bad_magic` frames.
const WRONG_MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
/// How long one `recv` waits while idling before looking at `stop` again (cancel-safe, so
/// this only bounds latency, not correctness).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What one scripted peer did (for reports and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerOutcome {
    /// The version handshake completed (VERSION and VERACK both ways).
    pub handshake_completed: bool,
    /// Frames the behaviour itself sent: flood messages, pings, malformed frames,
    /// transactions. The handshake's own messages and pongs are not counted.
    pub messages_sent: u64,
    /// The node closed the connection (EOF or reset) before `stop` fired.
    pub disconnected_by_node: bool,
    /// What went wrong, if anything other than the node hanging up did (connect failure,
    /// timeout, not implemented behaviour, ...).
    pub error: Option<String>,
    /// What the node announced to this peer (`inv` entries) while it idled, with when, in
    /// arrival order; at most [`MAX_ANNOUNCEMENTS`] (a spy peer's record).
    pub announcements: Vec<Announcement>,
}

/// Most announcements one peer keeps.
pub const MAX_ANNOUNCEMENTS: usize = 10_000;

/// One `inv` entry the node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `tx`, `wtx`, `block` or `other`.
    pub kind: &'static str,
    /// The hash, hex as Bitcoin Core displays it.
    pub hash: String,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

/// What a behaviour needs besides the node's address.
#[derive(Debug, Clone, Default)]
pub struct PeerContext {
    /// Mature keyless coins this peer may spend (`tx_spam` with `kind = "valid"`).
    pub coins: Vec<KeylessCoin>,
    /// What to send (`replay_recorded`); loaded once per group.
    pub script: Option<Arc<ReplayScript>>,
    /// The local address to connect from (`None`: the system's choice).
    pub source: Option<std::net::IpAddr>,
}

/// Why a phase ended.
pub(super) enum Flow {
    /// Go on with the next phase.
    Continue,
    /// `stop` fired.
    Stopped,
    /// The node closed the connection.
    Closed,
}

/// Runs one peer of a group with its behaviour until the behaviour is done or `stop` fires;
/// then stays connected (answering pings, unless the behaviour withholds them) until `stop`
/// unless the node disconnected it.
///
/// The peer stops when `stop` fires. Peers of one group should get distinct seeds (the
/// VERSION nonce is derived from it).
pub async fn run_peer(
    node: SocketAddr,
    behaviour: &Behaviour,
    seed: u64,
    stop: Shutdown,
) -> PeerOutcome {
    run_peer_with(node, behaviour, seed, &PeerContext::default(), stop, |_| {}).await
}

/// [`run_peer`], telling `on_connect` the peer's local address as soon as it is connected
/// (the node knows the peer by that address: how a scenario maps node-side peer ids to
/// its groups).
pub async fn run_peer_with(
    node: SocketAddr,
    behaviour: &Behaviour,
    seed: u64,
    context: &PeerContext,
    stop: Shutdown,
    on_connect: impl FnOnce(SocketAddr),
) -> PeerOutcome {
    let mut outcome = PeerOutcome::default();
    if let Some(missing) = missing_context(behaviour, context) {
        warn!(behaviour = behaviour.name(), "{missing}");
        outcome.error = Some(missing);
        return outcome;
    }
    let mut config = config_for(behaviour, seed);
    config.bind = context.source;
    let mut peer = match Peer::connect(node, config).await {
        Ok(peer) => peer,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let local = peer.local_addr();
    on_connect(local);
    info!(%local, behaviour = behaviour.name(), seed, "peer started");

    let flow = play(&mut peer, behaviour, seed, context, &stop, &mut outcome).await;
    let flow = match flow {
        Flow::Continue => idle(&mut peer, silent_idle(behaviour), &stop, &mut outcome).await,
        other => other,
    };
    match flow {
        Flow::Closed => outcome.disconnected_by_node = true,
        Flow::Stopped | Flow::Continue => peer.close().await,
    }
    info!(%local, behaviour = behaviour.name(), handshake = outcome.handshake_completed,
        sent = outcome.messages_sent, disconnected = outcome.disconnected_by_node,
        error = ?outcome.error, "peer finished");
    outcome
}

/// `Some(reason)` when the behaviour needs something the context lacks.
fn missing_context(behaviour: &Behaviour, context: &PeerContext) -> Option<String> {
    match behaviour {
        Behaviour::ReplayRecorded(_) if context.script.is_none() => {
            Some("replay_recorded: no replay script was loaded for this peer".into())
        }
        Behaviour::TxSpam(TxSpam {
            kind: TxKind::Valid,
            transactions,
            ..
        }) if *transactions > 0 && context.coins.is_empty() => Some(
            "tx_spam kind=valid: no mature coins were given to this peer (mine_at_start >= 101?)"
                .into(),
        ),
        _ => None,
    }
}

/// Whether the peer must not send anything while idling (no pongs): after a truncated
/// header a pong would complete the header with nonsense, and `no_handshake` sends nothing.
fn silent_idle(behaviour: &Behaviour) -> bool {
    matches!(
        behaviour,
        Behaviour::NoHandshake
            | Behaviour::Malformed(Malformed {
                kind: MalformedKind::TruncatedHeader,
                ..
            })
    )
}

/// The peer's configuration: defaults, a nonce from `seed`, and what the behaviour changes.
fn config_for(behaviour: &Behaviour, seed: u64) -> PeerConfig {
    let mut rng = Rng::new(seed ^ 0x6e6f_6e63_6500_0000);
    let mut config = PeerConfig {
        nonce: Some(rng.next().max(1)),
        ..PeerConfig::default()
    };
    match behaviour {
        Behaviour::PingFlood(PingFlood { answer_pings, .. }) => {
            config.answer_pings = *answer_pings;
        }
        Behaviour::VersionAbuse(abuse) => apply_version_abuse(&mut config, abuse),
        // The recorded pongs are the answers; answering too would add messages.
        Behaviour::ReplayRecorded(_) => config.answer_pings = false,
        _ => {}
    }
    config
}

fn apply_version_abuse(config: &mut PeerConfig, abuse: &VersionAbuse) {
    // The wire field is an int32; PeerConfig keeps it as u32: same bits.
    config.version = abuse.version as u32;
    config.services = abuse.services;
    config.start_height = abuse.start_height;
    config.relay = abuse.relay;
    if let Some(len) = abuse.user_agent_len {
        config.user_agent = user_agent_of_len(len as usize);
    }
}

/// A BIP 14 style user agent of exactly `len` bytes (`/peerlab:xxxx/`, cut if shorter).
fn user_agent_of_len(len: usize) -> String {
    let base = DEFAULT_USER_AGENT.trim_end_matches('/');
    let mut ua = String::with_capacity(len);
    ua.push_str(base);
    while ua.len() + 1 < len {
        ua.push('x');
    }
    ua.push('/');
    ua.truncate(len);
    ua
}

/// Plays the behaviour's active part (connect already done).
async fn play(
    peer: &mut Peer,
    behaviour: &Behaviour,
    seed: u64,
    context: &PeerContext,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    // Before the handshake.
    match behaviour {
        Behaviour::NoHandshake => return Flow::Continue,
        Behaviour::ReplayRecorded(params) => {
            // The recorded VERSION and VERACK are part of the script.
            return match &context.script {
                Some(script) => replay::play(peer, script, params.speed, stop, outcome).await,
                None => Flow::Continue,
            };
        }
        Behaviour::SlowHandshake(slow) => {
            let delay = Duration::from_millis(slow.delay_ms);
            debug!(local = %peer.local_addr(), ?delay, "delaying VERSION");
            tokio::select! {
                _ = stop.cancelled() => return Flow::Stopped,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        Behaviour::Malformed(malformed) if !malformed.after_handshake => {
            return send_malformed(peer, malformed, seed, stop, outcome).await;
        }
        _ => {}
    }

    let handshake = tokio::select! {
        _ = stop.cancelled() => return Flow::Stopped,
        result = peer.handshake() => result,
    };
    match handshake {
        Ok(theirs) => {
            outcome.handshake_completed = true;
            debug!(local = %peer.local_addr(), node = %theirs.user_agent, "handshake done");
        }
        Err(PeerError::Closed) => return Flow::Closed,
        Err(e) => {
            warn!(local = %peer.local_addr(), error = %e, "handshake failed");
            outcome.error = Some(format!("handshake: {e}"));
            return Flow::Continue;
        }
    }

    match behaviour {
        Behaviour::AddrFlood(flood) => addr_flood(peer, flood, seed, stop, outcome).await,
        Behaviour::InvFlood(InvFlood {
            entries_per_message,
            messages,
            interval_ms,
        }) => {
            let build = |i: u32| inv_message(*entries_per_message as usize, sub_seed(seed, i));
            flood(peer, *messages, *interval_ms, build, stop, outcome).await
        }
        Behaviour::GetdataFlood(GetdataFlood {
            entries_per_message,
            messages,
            interval_ms,
        }) => {
            let build = |i: u32| match inv_message(*entries_per_message as usize, sub_seed(seed, i))
            {
                NetworkMessage::Inv(items) => NetworkMessage::GetData(items),
                other => other,
            };
            flood(peer, *messages, *interval_ms, build, stop, outcome).await
        }
        Behaviour::PingFlood(ping) => ping_flood(peer, ping, seed, stop, outcome).await,
        Behaviour::Malformed(malformed) => {
            send_malformed(peer, malformed, seed, stop, outcome).await
        }
        Behaviour::TxSpam(spam) => tx_spam(peer, spam, seed, context, stop, outcome).await,
        Behaviour::HeadersSpam(spam) => {
            let build = |tip: &ChainTip, i: u32| {
                let seed = sub_seed(seed, i);
                NetworkMessage::Headers(bad_headers(spam.kind, tip, spam.headers_per_message, seed))
            };
            flood_on_tip(peer, spam.messages, build, stop, outcome).await
        }
        Behaviour::InvalidBlock(params) => {
            let build = |tip: &ChainTip, i: u32| {
                NetworkMessage::Block(invalid_block(params.kind, tip, sub_seed(seed, i)))
            };
            flood_on_tip(peer, params.blocks, build, stop, outcome).await
        }
        // Nothing to send after the handshake: these act before it (or, honest, not at all);
        // the caller keeps the connection open as the group's timeline says.
        Behaviour::Honest
        | Behaviour::SlowHandshake(_)
        | Behaviour::NoHandshake
        | Behaviour::VersionAbuse(_)
        | Behaviour::ReplayRecorded(_) => Flow::Continue,
    }
}

/// `addr_flood`: `messages` addr or addrv2 messages of `entries_per_message` entries.
async fn addr_flood(
    peer: &mut Peer,
    flood_params: &AddrFlood,
    seed: u64,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    let n = flood_params.entries_per_message as usize;
    let version = flood_params.version;
    let build = |i: u32| {
        let message = addr_message(n, sub_seed(seed, i));
        match (version, message) {
            (AddrVersion::Addrv2, NetworkMessage::Addr(entries)) => NetworkMessage::AddrV2(
                entries
                    .into_iter()
                    .map(|(time, address)| {
                        let ip = match address.socket_addr() {
                            Ok(SocketAddr::V4(v4)) => *v4.ip(),
                            _ => Ipv4Addr::new(1, 2, 3, 4),
                        };
                        AddrV2Message {
                            time,
                            services: address.services,
                            addr: AddrV2::Ipv4(ip),
                            port: address.port,
                        }
                    })
                    .collect(),
            ),
            (_, message) => message,
        }
    };
    flood(
        peer,
        flood_params.messages,
        flood_params.interval_ms,
        build,
        stop,
        outcome,
    )
    .await
}

/// Sends `count` messages built by `build(i)`, `interval_ms` apart, reading (and answering
/// pings) in between.
async fn flood(
    peer: &mut Peer,
    count: u32,
    interval_ms: u64,
    build: impl Fn(u32) -> NetworkMessage,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    for i in 0..count {
        if i > 0 {
            let until = Instant::now() + Duration::from_millis(interval_ms);
            match pump(peer, Some(until), stop, outcome).await {
                Flow::Continue => {}
                other => return other,
            }
        }
        let message = build(i);
        let flow = send(peer, message, stop, outcome).await;
        if !matches!(flow, Flow::Continue) {
            return flow;
        }
    }
    Flow::Continue
}

/// `ping_flood`: pings at `rate_per_sec` until `stop` (or none with rate 0).
async fn ping_flood(
    peer: &mut Peer,
    ping: &PingFlood,
    seed: u64,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    if !(ping.rate_per_sec.is_finite() && ping.rate_per_sec > 0.0) {
        return Flow::Continue;
    }
    let period = Duration::from_secs_f64((1.0 / ping.rate_per_sec).max(1e-6));
    let mut rng = Rng::new(seed ^ 0x7069_6e67);
    let mut next = Instant::now();
    loop {
        let flow = send(peer, NetworkMessage::Ping(rng.next()), stop, outcome).await;
        if !matches!(flow, Flow::Continue) {
            return flow;
        }
        next += period;
        match pump(peer, Some(next), stop, outcome).await {
            Flow::Continue => {}
            other => return other,
        }
    }
}

/// `tx_spam`: `transactions` transactions of `kind` at `rate_per_sec`.
async fn tx_spam(
    peer: &mut Peer,
    spam: &TxSpam,
    seed: u64,
    context: &PeerContext,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    let rate = if spam.rate_per_sec.is_finite() && spam.rate_per_sec > 0.0 {
        spam.rate_per_sec
    } else {
        10.0
    };
    let interval_ms = (1000.0 / rate) as u64;
    let n = spam.transactions as usize;
    let txs: Vec<Transaction> = match spam.kind {
        TxKind::Invalid => (0..spam.transactions)
            .map(|i| invalid_tx(sub_seed(seed, i)))
            .collect(),
        TxKind::Valid => valid_transactions(&context.coins, n),
        TxKind::Orphan => orphan_transactions(n, seed),
    };
    if txs.len() < n {
        outcome.error = Some(format!(
            "tx_spam: only {} of {n} transactions could be built from the coins given",
            txs.len()
        ));
    }
    let build = |i: u32| NetworkMessage::Tx(txs[i as usize].clone());
    flood(peer, txs.len() as u32, interval_ms, build, stop, outcome).await
}

/// Learns the node's tip over P2P (needed to build on it); records a failure in `outcome`.
async fn tip_of(peer: &mut Peer, outcome: &mut PeerOutcome) -> Option<ChainTip> {
    let limit = peer.config().io_timeout;
    match discover_tip(peer, limit).await {
        Ok(tip) => {
            debug!(local = %peer.local_addr(), height = tip.height, hash = %tip.hash, "node tip");
            Some(tip)
        }
        Err(e) => {
            outcome.error = Some(format!("learning the node's tip: {e}"));
            None
        }
    }
}

/// `headers_spam` and `invalid_block`: learns the node's tip, then sends `count` messages
/// built on it.
async fn flood_on_tip(
    peer: &mut Peer,
    count: u32,
    build: impl Fn(&ChainTip, u32) -> NetworkMessage,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    let Some(tip) = tip_of(peer, outcome).await else {
        return Flow::Continue;
    };
    flood(peer, count, 0, |i| build(&tip, i), stop, outcome).await
}

/// A random transaction with a non-standard version (4..=i32::MAX), so the mempool
/// rejects it as non-standard rather than keeping it as an orphan.
fn invalid_tx(seed: u64) -> Transaction {
    let mut rng = Rng::new(seed);
    let version = 4 + (rng.next() % (i32::MAX as u64 - 4)) as i32;
    let mut txid = [0u8; 32];
    rng.fill(&mut txid);
    let script_len = 1 + (rng.next() % 40) as usize;
    let mut script = vec![0u8; script_len];
    rng.fill(&mut script);
    Transaction {
        version: Version(version),
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array(txid),
                vout: (rng.next() % 4) as u32,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000 + rng.next() % 1_000_000),
            script_pubkey: ScriptBuf::from_bytes(script),
        }],
    }
}

/// `malformed`: sends the broken frames (one only for `truncated_header`).
async fn send_malformed(
    peer: &mut Peer,
    malformed: &Malformed,
    seed: u64,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    let mut rng = Rng::new(seed ^ 0x6261_6400);
    let magic = peer.config().magic;
    let count = match malformed.kind {
        MalformedKind::TruncatedHeader => 1,
        _ => malformed.messages,
    };
    for _ in 0..count {
        let bytes = malformed_frame(malformed.kind, magic, &mut rng);
        debug!(local = %peer.local_addr(), kind = ?malformed.kind, len = bytes.len(),
            "sending malformed frame");
        let result = tokio::select! {
            _ = stop.cancelled() => return Flow::Stopped,
            result = peer.send_bytes(&bytes) => result,
        };
        match result {
            Ok(()) => outcome.messages_sent += 1,
            Err(PeerError::Closed) => return Flow::Closed,
            Err(e) => {
                outcome.error = Some(format!("sending: {e}"));
                return Flow::Continue;
            }
        }
    }
    Flow::Continue
}

/// One broken frame of `kind`.
fn malformed_frame(kind: MalformedKind, magic: [u8; 4], rng: &mut Rng) -> Vec<u8> {
    let mut nonce = [0u8; 8];
    rng.fill(&mut nonce);
    match kind {
        MalformedKind::Oversized => {
            // Header only: the node disconnects as soon as it reads the length.
            let mut bytes = frame(magic, "ping", &nonce);
            bytes.truncate(HEADER_LEN);
            let len = MAX_PAYLOAD_LEN as u32 + 1 + (rng.next() % 1000) as u32;
            bytes[16..20].copy_from_slice(&len.to_le_bytes());
            bytes
        }
        MalformedKind::BadChecksum => {
            let mut bytes = frame(magic, "ping", &nonce);
            let good = checksum(&nonce);
            for (i, b) in good.iter().enumerate() {
                bytes[20 + i] = !b;
            }
            bytes
        }
        MalformedKind::BadMagic => frame(WRONG_MAGIC, "ping", &nonce),
        MalformedKind::GarbagePayload => {
            // Fewer than 8 bytes never deserialize as a ping nonce or a feefilter rate:
            // Core catches the exception and logs it.
            let command = if rng.next().is_multiple_of(2) {
                "ping"
            } else {
                "feefilter"
            };
            let len = 1 + (rng.next() % 7) as usize;
            frame(magic, command, &nonce[..len])
        }
        MalformedKind::TruncatedHeader => {
            let mut bytes = frame(magic, "ping", &nonce);
            let keep = 4 + (rng.next() % (HEADER_LEN as u64 - 4)) as usize;
            bytes.truncate(keep);
            bytes
        }
    }
}

/// Sends one message, racing `stop`.
async fn send(
    peer: &mut Peer,
    message: NetworkMessage,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    let result = tokio::select! {
        _ = stop.cancelled() => return Flow::Stopped,
        result = peer.send(message) => result,
    };
    match result {
        Ok(()) => {
            outcome.messages_sent += 1;
            Flow::Continue
        }
        Err(PeerError::Closed) => Flow::Closed,
        Err(e) => {
            warn!(local = %peer.local_addr(), error = %e, "send failed");
            outcome.error = Some(format!("sending: {e}"));
            // The connection may be wedged; stop playing and idle.
            Flow::Continue
        }
    }
}

/// Receives (answering pings per the config) until `until`, `stop` or the node's close.
/// `None` waits for `stop` or the close only.
async fn pump(
    peer: &mut Peer,
    until: Option<Instant>,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    loop {
        let now = Instant::now();
        let wait = match until {
            Some(until) if until <= now => return Flow::Continue,
            Some(until) => (until - now).min(IDLE_POLL),
            None => IDLE_POLL,
        };
        let received = tokio::select! {
            _ = stop.cancelled() => return Flow::Stopped,
            result = tokio::time::timeout(wait, peer.recv()) => result,
        };
        match received {
            Err(_) | Ok(Err(PeerError::Timeout(_))) => {}
            Ok(Ok(message)) => note_announcements(&message, outcome),
            Ok(Err(PeerError::Closed)) => return Flow::Closed,
            Ok(Err(e @ PeerError::Protocol(_))) => {
                // Out of sync (or a bad frame from the node): keep the socket open without
                // parsing until stop or close.
                warn!(local = %peer.local_addr(), error = %e, "unreadable stream");
                outcome.error.get_or_insert_with(|| e.to_string());
                return drain_silently(peer, stop).await;
            }
            Ok(Err(e)) => {
                outcome.error.get_or_insert_with(|| e.to_string());
                return drain_silently(peer, stop).await;
            }
        }
    }
}

/// Keeps what an `inv` announces (bounded), so a peer connected to several nodes tells which
/// relayed an item first.
fn note_announcements(message: &crate::peer::Received, outcome: &mut PeerOutcome) {
    use bitcoin::p2p::message::NetworkMessage;
    use bitcoin::p2p::message_blockdata::Inventory;
    let Some(NetworkMessage::Inv(items)) = &message.message else {
        return;
    };
    let at = std::time::SystemTime::now();
    for item in items {
        if outcome.announcements.len() >= MAX_ANNOUNCEMENTS {
            return;
        }
        let (kind, hash) = match item {
            Inventory::Transaction(txid) | Inventory::WitnessTransaction(txid) => {
                ("tx", txid.to_string())
            }
            Inventory::WTx(wtxid) => ("wtx", wtxid.to_string()),
            Inventory::Block(hash) | Inventory::WitnessBlock(hash) => ("block", hash.to_string()),
            _ => ("other", String::new()),
        };
        outcome.announcements.push(Announcement { kind, hash, at });
    }
}

/// The idle phase: answer pings (or stay silent) until `stop` or the node's close.
async fn idle(peer: &mut Peer, silent: bool, stop: &Shutdown, outcome: &mut PeerOutcome) -> Flow {
    if silent {
        drain_silently(peer, stop).await
    } else {
        pump(peer, None, stop, outcome).await
    }
}

/// Reads and discards without answering until `stop` or the node's close.
async fn drain_silently(peer: &mut Peer, stop: &Shutdown) -> Flow {
    loop {
        let closed = tokio::select! {
            _ = stop.cancelled() => return Flow::Stopped,
            result = peer.wait_closed(IDLE_POLL) => result,
        };
        match closed {
            Ok(()) => return Flow::Closed,
            Err(PeerError::Timeout(_)) => {}
            Err(e) => {
                debug!(local = %peer.local_addr(), error = %e, "draining");
                // A read error other than a disconnect: treat as gone.
                return Flow::Closed;
            }
        }
    }
}

/// The seed of the `i`-th message of a peer.
fn sub_seed(seed: u64, i: u32) -> u64 {
    Rng::new(seed ^ (u64::from(i) << 32 | 0x5eed)).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inv_entries_are_kept_as_announcements_up_to_the_bound() {
        use bitcoin::hashes::Hash as _;
        use bitcoin::p2p::message::NetworkMessage;
        use bitcoin::p2p::message_blockdata::Inventory;
        let txid = bitcoin::Txid::from_byte_array([7; 32]);
        let block = bitcoin::BlockHash::from_byte_array([9; 32]);
        let inv = crate::peer::Received {
            command: "inv".into(),
            payload: Vec::new(),
            message: Some(NetworkMessage::Inv(vec![
                Inventory::Transaction(txid),
                Inventory::Block(block),
            ])),
        };
        let mut outcome = PeerOutcome::default();
        note_announcements(&inv, &mut outcome);
        let kinds: Vec<(&str, String)> = outcome
            .announcements
            .iter()
            .map(|a| (a.kind, a.hash.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![("tx", txid.to_string()), ("block", block.to_string())]
        );
        // A ping is not an announcement.
        let ping = crate::peer::Received {
            command: "ping".into(),
            payload: Vec::new(),
            message: Some(NetworkMessage::Ping(1)),
        };
        note_announcements(&ping, &mut outcome);
        assert_eq!(outcome.announcements.len(), 2);
        // Bounded: a flood of invs cannot grow a peer's memory without limit.
        for _ in 0..MAX_ANNOUNCEMENTS {
            note_announcements(&inv, &mut outcome);
        }
        assert_eq!(outcome.announcements.len(), MAX_ANNOUNCEMENTS);
    }

    #[test]
    fn user_agent_has_the_requested_length() {
        for len in [0, 1, 5, 16, 256, 300] {
            assert_eq!(user_agent_of_len(len).len(), len);
        }
    }

    #[test]
    fn malformed_frames_are_broken_as_documented() {
        let magic = crate::peer::REGTEST_MAGIC;
        let mut rng = Rng::new(1);
        let oversized = malformed_frame(MalformedKind::Oversized, magic, &mut rng);
        assert_eq!(oversized.len(), HEADER_LEN);
        let len = u32::from_le_bytes([oversized[16], oversized[17], oversized[18], oversized[19]]);
        assert!(len as usize > MAX_PAYLOAD_LEN);
        let bad = malformed_frame(MalformedKind::BadChecksum, magic, &mut rng);
        assert_ne!(bad[20..24], checksum(&bad[24..]));
        let wrong = malformed_frame(MalformedKind::BadMagic, magic, &mut rng);
        assert_eq!(wrong[..4], WRONG_MAGIC);
        let truncated = malformed_frame(MalformedKind::TruncatedHeader, magic, &mut rng);
        assert!(truncated.len() < HEADER_LEN && truncated.len() >= 4);
        let garbage = malformed_frame(MalformedKind::GarbagePayload, magic, &mut rng);
        assert!(garbage.len() > HEADER_LEN && garbage.len() < HEADER_LEN + 8);
    }

    #[test]
    fn invalid_txs_are_deterministic_and_non_standard() {
        let a = invalid_tx(3);
        assert_eq!(a, invalid_tx(3));
        assert_ne!(a, invalid_tx(4));
        assert!(a.version.0 > 3);
    }

    #[test]
    fn behaviours_without_their_context_are_reported() {
        let spam = Behaviour::TxSpam(TxSpam {
            kind: TxKind::Valid,
            transactions: 1,
            rate_per_sec: 1.0,
        });
        let context = PeerContext::default();
        assert!(missing_context(&spam, &context)
            .unwrap()
            .contains("no mature coins"));
        assert!(missing_context(&Behaviour::Honest, &context).is_none());
    }
}
