//! peer-observer archive files (the `archiver` tool's format), read and written.
//!
//! Layout (`shared/spec/event-wire-format.md`, "Archive files"): optionally one streaming
//! zstd frame around everything (`.bin.zst`; `.bin` is raw; chosen by the `.zst` extension,
//! never by magic); one length-delimited `header.ArchiveHeader` (base-128 varint byte count,
//! then the message); then zero or more length-delimited `event.Event`s, each exactly the
//! bytes that travelled as the NATS payload. No magic, index or footer.
//!
//! Invariants of [`ArchiveReader`]:
//! - it streams: one frame in memory at a time. A frame may claim at most
//!   [`MAX_FRAME_BYTES`]; a larger claim is corruption (an error naming the offset), never an
//!   allocation of that size, and a body's buffer grows only as its bytes actually arrive;
//! - data that ends exactly at a frame boundary is a clean end; a cut inside a varint or a
//!   body is a [`Truncation`](crate::record::Truncation) at the offset of the incomplete frame, after every complete
//!   event before it; a file whose first frame is not a header (empty, cut inside it, or not
//!   an `ArchiveHeader` with its required `created`) is [`RecordingError::MissingHeader`](crate::record::RecordingError::MissingHeader);
//! - offsets are in the uncompressed stream (for `.bin` they are file offsets);
//! - non-shortest varints and unknown fields (header and events) are accepted;
//! - subjects are not stored: each is rebuilt from the event's oneof arm with the flat scheme
//!   (`EventKind::of`); `log_time` = `publish_time` = `Event.timestamp` in ns (an archive
//!   keeps no receive time);
//! - an event frame that does not decode as `event.Event`, or decodes with no known arm
//!   (nothing to route by), is a **counted skip** ([`ArchiveReader::skipped`], logged), not an
//!   error: the framing around it is intact, so every later event is still trustworthy.
//!
//! Invariants of [`ArchiveWriter`]: the header says `created` = now in seconds and
//! `low_data = false`; each event is written length-delimited, its bytes untouched; with
//! rotation, files are `<base>.<YYYYMMDD-HHMMSS-mmm UTC>.bin[.zst]` (names strictly
//! increasing) and a new file starts when the bytes written to the current one (compressed
//! bytes when compressing) reach the maximum, checked after each event.

mod read;
mod write;

use std::path::Path;

pub use read::{ArchiveReader, ArchiveSkips};
pub use write::{file_stamp, ArchiveOptions, ArchiveWriter};

/// Largest frame (header or event) we agree to read; a larger length prefix is corruption.
/// Whole blocks travel in events (NATS allows 15 MiB for the largest), so this is generous.
pub const MAX_FRAME_BYTES: u64 = 64 << 20;
/// peer-observer archiver's default `--max-file-size`.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 30;
/// peerlab's default zstd level (the archiver's is 22: a little smaller, far slower).
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
/// Metadata key [`ArchiveReader::metadata`] sets to [`ARCHIVE_FORMAT`].
pub const FORMAT_KEY: &str = "format";
/// What the `format` metadata key says for archives.
pub const ARCHIVE_FORMAT: &str = "peer-observer archive";
/// Longest base-128 varint of a u64.
const MAX_VARINT_BYTES: usize = 10;

/// Whether `path` names an archive (`.bin` or `.bin.zst`) rather than an MCAP recording.
pub fn is_archive_path(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".bin") || name.ends_with(".bin.zst")
}

/// Whether an archive path is zstd-compressed: its name ends in `.zst` (never by magic).
pub fn is_compressed_path(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".zst"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use prost::Message as _;

    use super::*;
    use crate::event::proto::ebpf_extractor::{ebpf::EbpfEvent, Ebpf};
    use crate::event::proto::event::event::PeerObserverEvent;
    use crate::event::proto::header::ArchiveHeader;
    use crate::event::proto::rpc_extractor;
    use crate::event::Event;
    use crate::record::{RecordedMessage, RecordingError};

    fn event(ms: u64, rpc: bool) -> Vec<u8> {
        let arm = if rpc {
            PeerObserverEvent::RpcExtractor(rpc_extractor::Rpc::default())
        } else {
            PeerObserverEvent::EbpfExtractor(Ebpf {
                ebpf_event: Some(EbpfEvent::Mempool(Default::default())),
            })
        };
        Event {
            timestamp: ms,
            peer_observer_event: Some(arm),
        }
        .encode_to_vec()
    }

    fn write(dir: &Path, name: &str, level: i32, events: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(name);
        let mut writer = ArchiveWriter::create(&path, level).expect("create");
        for e in events {
            writer.write(e).expect("write");
        }
        let (stats, files) = writer.finish().expect("finish");
        assert_eq!(stats.messages, events.len() as u64);
        assert_eq!(files, vec![path.clone()]);
        path
    }

    #[test]
    fn stamps_follow_the_archiver_naming() {
        assert_eq!(file_stamp(951_827_696_789), "20000229-123456-789");
        assert_eq!(file_stamp(0), "19700101-000000-000");
    }

    #[test]
    fn paths_choose_the_format() {
        assert!(is_archive_path(Path::new(
            "/a/archive.20260101-000000-000.bin"
        )));
        assert!(is_archive_path(Path::new("x.bin.zst")));
        assert!(!is_archive_path(Path::new("x.mcap")));
        assert!(is_compressed_path(Path::new("x.bin.zst")));
        assert!(!is_compressed_path(Path::new("x.bin")));
    }

    #[test]
    fn written_archives_read_back_raw_and_compressed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events: Vec<Vec<u8>> = (0..50).map(|i| event(1_000 + i, i % 3 == 0)).collect();
        for (name, level) in [("a.bin", 0), ("a.bin.zst", 0), ("b.bin.zst", 19)] {
            let path = write(dir.path(), name, level, &events);
            let mut reader = ArchiveReader::open(&path).expect("open");
            assert!(reader.created() > 1_700_000_000, "created is in seconds");
            assert!(!reader.low_data());
            let read: Vec<RecordedMessage> = (&mut reader).map(|m| m.expect("event")).collect();
            assert_eq!(read.len(), events.len());
            for (i, (message, bytes)) in read.iter().zip(&events).enumerate() {
                assert_eq!(&message.data, bytes);
                assert_eq!(
                    &*message.subject,
                    if i % 3 == 0 { "rpc" } else { "mempool" }
                );
                assert_eq!(message.log_time, (1_000 + i as u64) * 1_000_000);
                assert_eq!(message.publish_time, message.log_time);
            }
            assert!(reader.truncated().is_none());
            assert_eq!(reader.skipped(), ArchiveSkips::default());
        }
    }

    #[test]
    fn rotation_starts_new_files_with_increasing_names_and_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = ArchiveOptions {
            compression_level: 0,
            max_file_size: 100,
        };
        let mut writer = ArchiveWriter::rotating(&dir.path().join("archive"), options).expect("w");
        let events: Vec<Vec<u8>> = (0..30).map(|i| event(i, false)).collect();
        for e in &events {
            writer.write(e).expect("write");
        }
        let (_, files) = writer.finish().expect("finish");
        assert!(files.len() > 2, "{files:?}");
        let mut names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names
            .iter()
            .all(|n| n.starts_with("archive.") && n.ends_with(".bin")));
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s.dedup();
            s
        };
        assert_eq!(sorted, names);
        let mut back = Vec::new();
        for file in &files {
            // Each file but the last reached the limit after its last event.
            let reader = ArchiveReader::open(file).expect("each file has a header");
            back.extend(reader.map(|m| m.expect("event").data));
        }
        assert_eq!(back, events);
        names.clear();
    }

    #[test]
    fn an_undecodable_frame_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.bin");
        let mut bytes = ArchiveHeader {
            created: 5,
            low_data: None,
        }
        .encode_length_delimited_to_vec();
        for body in [
            event(1, false),
            vec![0xff, 0xff],
            Event::default().encode_to_vec(),
            event(2, true),
        ] {
            prost::encoding::encode_varint(body.len() as u64, &mut bytes);
            bytes.extend(body);
        }
        std::fs::write(&path, bytes).expect("write");
        let mut reader = ArchiveReader::open(&path).expect("open");
        let subjects: Vec<String> = (&mut reader)
            .map(|m| m.expect("ok").subject.to_string())
            .collect();
        assert_eq!(subjects, ["mempool", "rpc"]);
        assert_eq!(
            reader.skipped(),
            ArchiveSkips {
                undecodable: 1,
                unroutable: 1
            }
        );
        assert_eq!(reader.metadata()["skipped_undecodable"], "1");
        assert_eq!(reader.created(), 5);
        assert!(!reader.low_data(), "unset low_data reads as false");
    }

    #[test]
    fn a_huge_length_prefix_is_corruption_at_its_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.bin");
        let mut bytes = ArchiveHeader {
            created: 5,
            low_data: Some(true),
        }
        .encode_length_delimited_to_vec();
        let at = bytes.len() as u64;
        prost::encoding::encode_varint(1 << 40, &mut bytes);
        bytes.extend([0u8; 16]);
        std::fs::write(&path, bytes).expect("write");
        let mut reader = ArchiveReader::open(&path).expect("open");
        assert!(reader.low_data());
        match reader.next() {
            Some(Err(RecordingError::Corrupt { offset, .. })) => assert_eq!(offset, at),
            other => panic!("expected corruption, got {other:?}"),
        }
        assert!(reader.next().is_none());
    }
}
