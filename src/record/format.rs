//! What a peerlab recording is, beyond plain MCAP.

/// MCAP profile name written in the header.
pub const PROFILE: &str = "peerlab";
/// Schema name of every channel (the bus envelope).
pub const SCHEMA_NAME: &str = crate::event::EVENT_MESSAGE_NAME;
/// Schema encoding: the schema data is a `FileDescriptorSet`.
pub const SCHEMA_ENCODING: &str = "protobuf";
/// Message encoding of every channel.
pub const MESSAGE_ENCODING: &str = "protobuf";
/// Name of the metadata record describing the recording.
pub const METADATA_NAME: &str = "peerlab.recording";
/// Longest a written message may sit unflushed: the most a SIGKILL can lose.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Prefix of peerlab's own counter subjects (JSON, not events), recorded on channels without a
/// schema and with message encoding `json`.
pub const STATS_SUBJECT_PREFIX: &str = "peerlab.stats.";
/// Message encoding of stats channels.
pub const STATS_ENCODING: &str = "json";

/// Whether a subject carries peerlab's counters rather than events.
pub fn is_stats_subject(subject: &str) -> bool {
    subject.starts_with(STATS_SUBJECT_PREFIX)
}
