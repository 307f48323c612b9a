//! `replay_recorded`: one recorded peer's inbound messages, sent again to a (new) node.
//!
//! A recording holds what the extractor decoded, not the bytes on the wire. [`ReplayScript`]
//! takes the `inbound_message` events of one peer from an MCAP recording, in recorded order,
//! and turns each back into its command and payload with [`encode_msg`] (the exact inverse of
//! the extractor's decoder); `play` frames them with the regtest magic and sends them at the
//! recorded pacing, scaled, or as fast as the socket takes them.
//!
//! Invariants:
//! - The node receives the same messages by type, in the same order, as the recorded node
//!   did from that peer. Messages whose recorded form cannot be re-encoded (a transaction
//!   recorded without its raw bytes) are counted in [`ReplayScript::skipped`], never
//!   invented.
//! - Our side adds nothing: pings are not answered automatically (the recorded pongs are the
//!   answers); a recorded `pong` carries the nonce of the node's latest ping, when there is
//!   one, so the node can match it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::shutdown::Shutdown;
use prost::Message as _;
use tokio::time::Instant;
use tracing::debug;

use super::behaviour::{Flow, PeerOutcome};
use super::params::{RecordedPeer, Speed};
use crate::event::proto::ebpf_extractor::ebpf::EbpfEvent;
use crate::event::proto::event::event::PeerObserverEvent;
use crate::event::Event;
use crate::p2p::encode_msg;
use crate::peer::{Peer, PeerError};
use crate::record::RecordingStream;

/// How long one receive waits while the next message is not due yet.
const RECV_SLICE: Duration = Duration::from_millis(200);

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedMessage {
    /// Time since the peer's first recorded inbound message.
    pub offset: Duration,
    /// The message type.
    pub command: String,
    /// The payload, without the 24-byte header.
    pub payload: Vec<u8>,
}

/// What a recorded peer sent, ready to be replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayScript {
    /// The messages, in recorded order.
    pub messages: Vec<ScriptedMessage>,
    /// Recorded messages that could not be re-encoded, by type.
    pub skipped: BTreeMap<String, u64>,
}

/// Why a script cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The recording is unreadable.
    #[error(transparent)]
    Recording(#[from] crate::record::RecordingError),
    /// The peer sent nothing in the recording.
    #[error(
        "{file}: no inbound messages of peer {peer} (list the peers with `peerlab cat {file}`)"
    )]
    NoSuchPeer {
        /// The recording.
        file: String,
        /// The peer asked for.
        peer: String,
    },
}

impl ReplayScript {
    /// The inbound messages `peer` sent in the recording at `path`.
    pub fn load(path: &Path, peer: &RecordedPeer) -> Result<ReplayScript, ScriptError> {
        let stream = RecordingStream::open(path)?;
        let mut script = ReplayScript::default();
        let mut first_ns: Option<u64> = None;
        for recorded in stream {
            let recorded = recorded?;
            let Ok(event) = Event::decode(recorded.data.as_slice()) else {
                continue; // stats snapshots and other non-event subjects
            };
            let Some(PeerObserverEvent::EbpfExtractor(ebpf)) = event.peer_observer_event else {
                continue;
            };
            let Some(EbpfEvent::Message(message)) = ebpf.ebpf_event else {
                continue;
            };
            let meta = &message.meta;
            let ours = match peer {
                RecordedPeer::Id(id) => meta.peer_id == *id,
                RecordedPeer::Addr(addr) => &meta.addr == addr,
            };
            if !meta.inbound || !ours {
                continue;
            }
            let Some(msg) = &message.msg else {
                *script.skipped.entry(meta.command.clone()).or_default() += 1;
                continue;
            };
            match encode_msg(msg) {
                Ok((command, payload)) => {
                    let first = *first_ns.get_or_insert(recorded.log_time);
                    script.messages.push(ScriptedMessage {
                        offset: Duration::from_nanos(recorded.log_time.saturating_sub(first)),
                        command,
                        payload,
                    });
                }
                Err(e) => {
                    debug!(command = %meta.command, error = %e, "not re-encodable");
                    *script.skipped.entry(meta.command.clone()).or_default() += 1;
                }
            }
        }
        if script.messages.is_empty() && script.skipped.is_empty() {
            return Err(ScriptError::NoSuchPeer {
                file: path.display().to_string(),
                peer: match peer {
                    RecordedPeer::Id(id) => id.to_string(),
                    RecordedPeer::Addr(addr) => addr.clone(),
                },
            });
        }
        Ok(script)
    }

    /// Messages by type, as the node should count them.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for message in &self.messages {
            *counts.entry(message.command.clone()).or_default() += 1;
        }
        counts
    }
}

/// Sends the script over `peer` (connected, nothing sent yet), paced by `speed`.
pub(super) async fn play(
    peer: &mut Peer,
    script: &ReplayScript,
    speed: Speed,
    stop: &Shutdown,
    outcome: &mut PeerOutcome,
) -> Flow {
    let start = Instant::now();
    let mut last_ping: Option<Vec<u8>> = None;
    for message in &script.messages {
        if let Speed::Factor(factor) = speed {
            let due = start + message.offset.div_f64(factor.max(1e-9));
            match receive_until(peer, due, stop, &mut last_ping).await {
                Flow::Continue => {}
                other => return other,
            }
        }
        let payload = match (message.command.as_str(), &last_ping) {
            ("pong", Some(nonce)) => nonce.as_slice(),
            _ => message.payload.as_slice(),
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return Flow::Stopped,
            result = peer.send_raw(message.command.as_bytes(), payload) => result,
        };
        match result {
            Ok(()) => {
                outcome.messages_sent += 1;
                if message.command == "verack" {
                    // Our VERSION and VERACK are out; the node's come back in order.
                    outcome.handshake_completed = true;
                }
            }
            Err(PeerError::Closed) => return Flow::Closed,
            Err(e) => {
                outcome.error = Some(format!("sending {}: {e}", message.command));
                return Flow::Continue;
            }
        }
    }
    Flow::Continue
}

/// Reads (without answering) until `due`, remembering the node's latest ping nonce.
async fn receive_until(
    peer: &mut Peer,
    due: Instant,
    stop: &Shutdown,
    last_ping: &mut Option<Vec<u8>>,
) -> Flow {
    loop {
        let now = Instant::now();
        if now >= due {
            return Flow::Continue;
        }
        let wait = (due - now).min(RECV_SLICE);
        let received = tokio::select! {
            _ = stop.cancelled() => return Flow::Stopped,
            result = tokio::time::timeout(wait, peer.recv()) => result,
        };
        match received {
            Ok(Ok(message)) if message.is("ping") => *last_ping = Some(message.payload),
            Ok(Ok(_)) | Err(_) | Ok(Err(PeerError::Timeout(_))) => {}
            Ok(Err(PeerError::Closed)) => return Flow::Closed,
            // Out of sync: stop reading, keep sending what is due.
            Ok(Err(_)) => return Flow::Continue,
        }
    }
}
