//! The attack engine: adversarial peer behaviours, played by [`crate::peer::Peer`]s.
//!
//! This module owns what a scripted peer does ([`Behaviour`] and its parameters in
//! [`params`]), how it plays it against a node ([`run_peer`]), the chain objects it forges
//! ([`chain`]: bad headers, invalid blocks, valid and orphan transactions, tip discovery) and
//! the replay of a recorded peer's messages ([`replay`]). It knows nothing of scenario files:
//! the scenario format deserializes into [`params`]' types, and the rehearsal runner hands
//! them here. Facts about Bitcoin Core's reactions are in `shared/spec/bitcoin-core.md` §5.
//!
//! Invariants:
//! - network input never panics and every socket operation is bounded (the peer's own
//!   invariants); a behaviour that cannot be played says why in its [`PeerOutcome`];
//! - every random choice derives from the seed a peer is given, so the same seed sends the
//!   same messages;
//! - a peer stops at its [`Shutdown`](crate::shutdown::Shutdown), whatever it is doing.

mod behaviour;
pub mod chain;
pub mod params;
pub mod replay;

pub use behaviour::{
    run_peer, run_peer_with, Announcement, PeerContext, PeerOutcome, MAX_ANNOUNCEMENTS,
};
pub use params::Behaviour;
pub use replay::{ReplayScript, ScriptedMessage};
