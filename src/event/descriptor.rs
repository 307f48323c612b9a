//! The schema's `FileDescriptorSet`, embedded at build time.
//!
//! Recordings carry these bytes so a file can be decoded with nothing but itself; the
//! [`descriptor_pool`] gives reflective access (strict checks, JSON output, tests).

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

/// Encoded `google.protobuf.FileDescriptorSet` of every file in `proto/`.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// Full name of the envelope message on the bus and in recordings.
pub const EVENT_MESSAGE_NAME: &str = "event.Event";

/// The descriptor pool decoded from [`DESCRIPTOR_SET`], built once.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The bytes were produced by protox in build.rs from the same files; failing to decode
        // them is a build defect, not a runtime condition.
        DescriptorPool::decode(DESCRIPTOR_SET).expect("embedded descriptor set is valid")
    })
}
