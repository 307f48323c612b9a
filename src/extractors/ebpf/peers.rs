//! The addresses and connection types of the peers the BPF programs already reported.
//!
//! A message record of a known peer (`peer_known`) carries no address and no connection
//! type: the BPF side reads them once, with the first recorded message of a peer, and marks
//! the peer in its `known_peers` map (reading two strings per message was the largest part of
//! what tracing costs the node per message). This table keeps what those first records
//! carried, so every event still names its peer.
//!
//! Invariants:
//! - bounded: at [`MAX_PEERS`] entries the table starts over and asks for the BPF side's
//!   generation to be bumped ([`PeerTable::take_reset`]), after which the programs send every
//!   peer's strings again. Records taken before the bump still resolve through the previous
//!   table, kept for [`RETIRE_AFTER`].
//! - a record of a known peer that neither table holds is never published with a made-up
//!   address: the caller counts it as malformed.
//! - peer ids are per process. A restarted bitcoind numbers its peers from 0 again, but the
//!   BPF key holds the process id, so its first message of each peer carries the strings and
//!   replaces what the old process's peer of that number had.

use std::time::{Duration, Instant};

// Looked up once per message event: keys are peer ids the node numbers itself (nobody
// outside picks them), so a fast non-keyed hash is safe; SipHash cost a sixth of the lookup.
use rustc_hash::FxHashMap as HashMap;

/// Most peers remembered before the table starts over (a honeynode keeps about 125
/// connections; this is a day of busy churn).
pub const MAX_PEERS: usize = 16_384;

/// How long the previous table still answers after a reset: records taken before the BPF
/// side saw the new generation are drained well within it.
pub const RETIRE_AFTER: Duration = Duration::from_secs(5);

/// What a peer's first record said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStrings {
    /// `addr` as the node reported it.
    pub addr: Box<str>,
    /// `ConnType` the connection type string maps to.
    pub conn_type: i32,
}

/// Peer id -> strings (see the module docs).
#[derive(Debug, Default)]
pub struct PeerTable {
    current: HashMap<i64, PeerStrings>,
    previous: Option<(HashMap<i64, PeerStrings>, Instant)>,
    reset_wanted: bool,
}

impl PeerTable {
    /// Remembers what a record with strings said about `peer_id`.
    pub fn learn(&mut self, peer_id: i64, addr: &str, conn_type: i32) {
        if let Some(known) = self.current.get(&peer_id) {
            if &*known.addr == addr && known.conn_type == conn_type {
                return;
            }
        }
        if self.current.len() >= MAX_PEERS && !self.current.contains_key(&peer_id) {
            let full = std::mem::take(&mut self.current);
            self.previous = Some((full, Instant::now()));
            self.reset_wanted = true;
        }
        self.current.insert(
            peer_id,
            PeerStrings {
                addr: addr.into(),
                conn_type,
            },
        );
    }

    /// What an earlier record said about `peer_id`.
    pub fn get(&mut self, peer_id: i64) -> Option<&PeerStrings> {
        if let Some((_, since)) = &self.previous {
            if since.elapsed() >= RETIRE_AFTER {
                self.previous = None;
            }
        }
        match self.current.get(&peer_id) {
            Some(strings) => Some(strings),
            None => self
                .previous
                .as_ref()
                .and_then(|(previous, _)| previous.get(&peer_id)),
        }
    }

    /// Whether the table started over since the last call: the BPF side's generation must be
    /// bumped so it sends every peer's strings again.
    pub fn take_reset(&mut self) -> bool {
        std::mem::take(&mut self.reset_wanted)
    }

    /// Peers in the current table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learned_peer_is_found_and_a_new_address_replaces_the_old() {
        let mut table = PeerTable::default();
        assert!(table.get(1).is_none());
        table.learn(1, "127.0.0.1:1", 0);
        assert_eq!(table.get(1).map(|s| &*s.addr), Some("127.0.0.1:1"));
        table.learn(1, "127.0.0.1:2", 2);
        assert_eq!(
            table.get(1),
            Some(&PeerStrings {
                addr: "127.0.0.1:2".into(),
                conn_type: 2
            })
        );
        assert!(!table.take_reset());
    }

    #[test]
    fn a_full_table_starts_over_asks_for_a_reset_and_still_answers_for_old_peers() {
        let mut table = PeerTable::default();
        for id in 0..MAX_PEERS as i64 {
            table.learn(id, "a", 0);
        }
        assert_eq!(table.len(), MAX_PEERS);
        assert!(!table.take_reset());
        table.learn(-1, "new", 1);
        assert_eq!(table.len(), 1);
        assert!(table.take_reset(), "the BPF side must forget too");
        assert!(!table.take_reset(), "asked once");
        // Records taken before the reset reached the BPF side still resolve.
        assert_eq!(table.get(7).map(|s| &*s.addr), Some("a"));
        assert_eq!(table.get(-1).map(|s| &*s.addr), Some("new"));
    }
}
