//! peerlab's own counter snapshots: the JSON an extractor publishes beside its events.
//!
//! Defined once here (serde both ways): every extractor writes [`ExtractorCounters`] (the
//! fields that do not apply to it stay zero), and the
//! recorder, `inspect` and `rehearse` read the same struct, never keys by string. Snapshots
//! travel on the subject the bus's `SubjectScheme::stats_subject` derives per component and
//! node (`peerlab.stats.<component>` with flat subjects), which peer-observer's tools (on
//! `*`) never see.
//!
//! Invariants: every field is a running total since the extractor started (a reader takes
//! differences between snapshots); fields added later get `#[serde(default)]` so older
//! recordings still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The counter snapshot of one extractor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractorCounters {
    /// The process being traced (0 while waiting for one).
    #[serde(default)]
    pub traced_pid: u32,
    /// Records taken from the ring buffers.
    #[serde(default)]
    pub records: u64,
    /// Records that did not parse (counted, never published).
    #[serde(default)]
    pub malformed: u64,
    /// Events handed to the publisher.
    #[serde(default)]
    pub published: u64,
    /// Records with no wire-format message, never published (e.g. utxocache without
    /// peerlab's extension arm).
    #[serde(default)]
    pub unpublished: u64,
    /// Events the publisher could not buffer.
    pub publish_dropped: u64,
    /// Events lost in the kernel (ring buffers full), over all tracepoints.
    pub dropped_in_kernel: u64,
    /// Per tracepoint (`provider:name`): emitted and dropped in the kernel.
    #[serde(default)]
    pub probes: BTreeMap<String, ProbeCounts>,
    /// Log lines without the expected shape (published as unknown messages, as
    /// peer-observer does).
    #[serde(default)]
    pub unparsed_lines: u64,
    /// Log lines cut to the length limit.
    #[serde(default)]
    pub truncated_lines: u64,
    /// Log file rotations followed.
    #[serde(default)]
    pub rotations: u64,
    /// Failed reads of the source (retried).
    #[serde(default)]
    pub read_errors: u64,
    /// P2P extractor: connections the node made to it.
    #[serde(default)]
    pub p2p_connections: u64,
    /// RPC extractor: per RPC method (`getpeerinfo`, ...), calls whose result was fetched,
    /// converted and handed to the publisher (`estimatesmartfee` counts each target/mode).
    #[serde(default)]
    pub rpc_calls: BTreeMap<String, u64>,
    /// RPC extractor: per RPC method, calls that failed (RPC error, or a reply that did not
    /// convert); nothing was published for them (upstream's
    /// `rpcextractor_rpc_fetch_errors_total`).
    #[serde(default)]
    pub rpc_errors: BTreeMap<String, u64>,
    /// RPC extractor: per RPC method, events the publisher could not buffer (upstream's
    /// `rpcextractor_nats_publish_errors_total`; also counted in `publish_dropped`).
    #[serde(default)]
    pub rpc_publish_errors: BTreeMap<String, u64>,
    /// RPC extractor: failed attempts to reach the node's RPC server (node down, wrong
    /// credentials, cookie file missing); the extractor keeps retrying.
    #[serde(default)]
    pub rpc_connect_errors: u64,
    /// IPC extractor: `getTip` calls that failed or timed out; nothing was published for them
    /// (upstream's `ipcextractor_ipc_fetch_errors_total`).
    #[serde(default)]
    pub ipc_fetch_errors: u64,
    /// IPC extractor: connections to the node's socket that failed or were lost (it
    /// reconnects).
    #[serde(default)]
    pub ipc_connect_errors: u64,
}

/// The recorder's counter snapshot, published on the stats subject of component `recorder`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderCounters {
    /// Messages written so far.
    pub recorded: u64,
    /// Receive time minus the event's own time for the last event written, in ms: how far
    /// behind the node the recording runs.
    pub lag_ms: u64,
    /// The largest such lag since the previous snapshot, in ms.
    pub max_lag_ms: u64,
    /// Times NATS reported the recorder as a slow consumer (messages were dropped).
    pub slow_consumer_events: u64,
}

/// One tracepoint's kernel-side counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    /// Records written to a ring buffer.
    pub emitted: u64,
    /// Records lost because the ring buffer was full.
    pub dropped: u64,
}

impl ExtractorCounters {
    /// Parses a snapshot; the error says what is missing or malformed.
    pub fn from_json(bytes: &[u8]) -> Result<ExtractorCounters, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an extractor counter snapshot: {e}"))
    }

    /// The snapshot as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain integers and strings into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The tracepoints that dropped something, with their drop counts.
    pub fn probe_drops(&self) -> BTreeMap<String, u64> {
        self.probes
            .iter()
            .filter(|(_, c)| c.dropped > 0)
            .map(|(name, c)| (name.clone(), c.dropped))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_old_ones_still_read() {
        let mut counters = ExtractorCounters {
            traced_pid: 7,
            records: 10,
            published: 9,
            publish_dropped: 1,
            dropped_in_kernel: 2,
            ..Default::default()
        };
        counters.probes.insert(
            "net:inbound_message".into(),
            ProbeCounts {
                emitted: 10,
                dropped: 2,
            },
        );
        let back = ExtractorCounters::from_json(&counters.to_json()).expect("parses");
        assert_eq!(back, counters);
        assert_eq!(back.probe_drops().get("net:inbound_message"), Some(&2));
        // A snapshot with only the drop counters (what a minimal publisher writes).
        let minimal =
            ExtractorCounters::from_json(br#"{"publish_dropped":0,"dropped_in_kernel":3}"#)
                .expect("parses");
        assert_eq!(minimal.dropped_in_kernel, 3);
        assert!(ExtractorCounters::from_json(b"[1]").is_err());
    }
}
