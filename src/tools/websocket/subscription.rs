//! What a websocket client asked for (tools.md §1.2): the subscription frame, its limits, and
//! which events it lets through.

use serde::Deserialize;

use crate::event::EventKind;

/// The longest subscription frame accepted, in bytes; a longer one disconnects the client.
pub const MAX_FRAME_BYTES: usize = 511;

/// Where an event goes: the subscription key that lets it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `ebpf.messages`.
    Messages,
    /// `ebpf.connections`.
    Connections,
    /// `ebpf.mempool`.
    Mempool,
    /// `ebpf.validation`.
    Validation,
    /// `rpc`.
    Rpc,
    /// `p2p`.
    P2p,
    /// `log`.
    Log,
    /// `ipc` (peerlab's extension; upstream has no such key and ignores it).
    Ipc,
}

impl Route {
    /// The route of an event kind; `None` for kinds no key forwards (utxocache).
    pub fn of(kind: EventKind) -> Option<Route> {
        match kind {
            EventKind::NetMsg => Some(Route::Messages),
            EventKind::NetConn => Some(Route::Connections),
            EventKind::Mempool => Some(Route::Mempool),
            EventKind::Validation => Some(Route::Validation),
            EventKind::Rpc => Some(Route::Rpc),
            EventKind::P2pExtractor => Some(Route::P2p),
            EventKind::LogExtractor => Some(Route::Log),
            EventKind::Ipc => Some(Route::Ipc),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct EbpfKeys {
    #[serde(default)]
    messages: bool,
    #[serde(default)]
    connections: bool,
    #[serde(default)]
    mempool: bool,
    #[serde(default)]
    validation: bool,
}

/// A client's subscription; every key defaults to off, unknown keys are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Subscription {
    #[serde(default)]
    ebpf: EbpfKeys,
    #[serde(default)]
    rpc: bool,
    #[serde(default)]
    p2p: bool,
    #[serde(default)]
    log: bool,
    #[serde(default)]
    ipc: bool,
}

/// Why a frame ends the client's connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An empty frame (upstream reads it as the client going away).
    #[error("empty subscription frame")]
    Empty,
    /// Longer than [`MAX_FRAME_BYTES`].
    #[error("subscription frame of {0} bytes (the limit is 511)")]
    TooLong(usize),
    /// Not a JSON subscription.
    #[error("invalid subscription: {0}")]
    Invalid(String),
}

impl Subscription {
    /// Parses a text frame; an error means the client is disconnected.
    pub fn parse(frame: &str) -> Result<Subscription, FrameError> {
        match frame.len() {
            0 => Err(FrameError::Empty),
            n if n > MAX_FRAME_BYTES => Err(FrameError::TooLong(n)),
            _ => serde_json::from_str(frame).map_err(|e| FrameError::Invalid(e.to_string())),
        }
    }

    /// Whether events of `route` are sent.
    pub fn wants(&self, route: Route) -> bool {
        match route {
            Route::Messages => self.ebpf.messages,
            Route::Connections => self.ebpf.connections,
            Route::Mempool => self.ebpf.mempool,
            Route::Validation => self.ebpf.validation,
            Route::Rpc => self.rpc,
            Route::P2p => self.p2p,
            Route::Log => self.log,
            Route::Ipc => self.ipc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_upstream_limits() {
        let s = Subscription::parse(r#"{"ebpf":{"messages":true},"rpc":true,"extra":1}"#)
            .expect("valid");
        assert!(s.wants(Route::Messages) && s.wants(Route::Rpc));
        assert!(!s.wants(Route::Connections) && !s.wants(Route::Log));
        assert_eq!(Subscription::parse("{}"), Ok(Subscription::default()));
        assert_eq!(Subscription::parse(""), Err(FrameError::Empty));
        let long = format!(r#"{{"rpc":true,"pad":"{}"}}"#, "x".repeat(600));
        assert!(matches!(
            Subscription::parse(&long),
            Err(FrameError::TooLong(_))
        ));
        assert!(matches!(
            Subscription::parse("not json"),
            Err(FrameError::Invalid(_))
        ));
    }
}
