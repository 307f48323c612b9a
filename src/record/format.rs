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

/// Message encoding of stats channels: peerlab's own counter subjects (JSON, not events) are
/// recorded on channels without a schema.
pub const STATS_ENCODING: &str = "json";

/// Whether a subject carries peerlab's counters rather than events (any subject scheme).
pub use crate::bus::is_stats_subject;
