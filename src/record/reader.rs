//! Reading a recording back, with errors that name the file and the byte offset.
//!
//! We walk the MCAP record framing ourselves (opcode, u64 length, body) so every problem has
//! an offset, and let the mcap crate parse each record and unpack each chunk. A file that ends
//! early (a recorder killed mid-write) yields every message of its complete records plus a
//! [`Truncation`] saying where it stops; a complete record that does not parse is corruption
//! and an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::read::{parse_record, ChunkReader};
use mcap::records::Record;

use super::format::{METADATA_NAME, SCHEMA_ENCODING, SCHEMA_NAME};

const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
/// Largest chunk we agree to decompress; larger claims are treated as corruption.
const MAX_CHUNK_BYTES: u64 = 512 << 20;

/// What can be wrong with a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{}: empty file (0 bytes), not a recording", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is not MCAP.
    #[error("{}: not an MCAP file (no MCAP magic at offset 0)", path.display())]
    NotMcap {
        /// The file.
        path: PathBuf,
    },
    /// A complete record does not parse.
    #[error("{}: corrupt at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file holds something other than peer-observer events.
    #[error(
        "{}: schema at offset {offset} is `{name}` ({encoding}), expected `{expected}` (protobuf): \
         not a peerlab/peer-observer event recording",
        path.display(),
        expected = SCHEMA_NAME
    )]
    WrongSchema {
        /// The file.
        path: PathBuf,
        /// Byte offset of the schema record.
        offset: u64,
        /// Its name.
        name: String,
        /// Its encoding.
        encoding: String,
    },
    /// Writing failed.
    #[error("{}: cannot write: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// One recorded bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMessage {
    /// The subject it was received on.
    pub subject: Arc<str>,
    /// Receive time, ns since the UNIX epoch.
    pub log_time: u64,
    /// The event's own timestamp, ns.
    pub publish_time: u64,
    /// The `event.Event` bytes exactly as they were on the bus.
    pub data: Vec<u8>,
}

/// Where and why a file stops early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Offset of the first incomplete record.
    pub offset: u64,
    /// What is missing.
    pub reason: String,
}

/// A recording, read whole.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The file.
    pub path: PathBuf,
    /// Messages in file order.
    pub messages: Vec<RecordedMessage>,
    /// The `peerlab.recording` metadata (empty for recordings of other tools).
    pub metadata: BTreeMap<String, String>,
    /// Set when the file ends early.
    pub truncated: Option<Truncation>,
    /// The schema's `FileDescriptorSet`.
    pub descriptor_set: Vec<u8>,
    /// File size in bytes.
    pub file_bytes: u64,
}

/// Reads a whole recording; see the module docs for how damage is reported.
pub fn read_recording(path: &Path) -> Result<Recording, RecordingError> {
    let bytes = std::fs::read(path).map_err(|source| RecordingError::Io {
        path: path.into(),
        source,
    })?;
    parse(path, &bytes)
}

struct Parser<'p> {
    path: &'p Path,
    schemas: HashMap<u16, ()>,
    channels: HashMap<u16, Arc<str>>,
    recording: Recording,
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Recording, RecordingError> {
    if bytes.is_empty() {
        return Err(RecordingError::Empty { path: path.into() });
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(RecordingError::NotMcap { path: path.into() });
    }
    let mut parser = Parser {
        path,
        schemas: HashMap::new(),
        channels: HashMap::new(),
        recording: Recording {
            path: path.into(),
            messages: Vec::new(),
            metadata: BTreeMap::new(),
            truncated: None,
            descriptor_set: Vec::new(),
            file_bytes: bytes.len() as u64,
        },
    };
    let mut offset = MAGIC.len();
    loop {
        let rest = &bytes[offset..];
        if rest.is_empty() {
            parser.truncate(
                offset,
                "the file ends without a footer (was the recorder killed?)",
            );
            break;
        }
        if rest.len() < 9 {
            parser.truncate(offset, "the file ends inside a record header");
            break;
        }
        let opcode = rest[0];
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&rest[1..9]);
        let len = u64::from_le_bytes(len_bytes);
        if len > (rest.len() - 9) as u64 {
            parser.truncate(
                offset,
                &format!(
                    "record 0x{opcode:02x} declares {len} bytes but only {} remain",
                    rest.len() - 9
                ),
            );
            break;
        }
        let body = &rest[9..9 + len as usize];
        let record = parse_record(opcode, body)
            .map_err(|e| parser.corrupt(offset, format!("record 0x{opcode:02x}: {e}")))?;
        if parser.handle(offset as u64, record)? {
            let after = offset + 9 + len as usize;
            if bytes.len() < after + MAGIC.len() || &bytes[after..after + MAGIC.len()] != MAGIC {
                parser.truncate(after, "footer is not followed by the closing MCAP magic");
            }
            break;
        }
        offset += 9 + len as usize;
    }
    Ok(parser.recording)
}

impl Parser<'_> {
    /// Handles one top-level record; `Ok(true)` after the footer.
    fn handle(&mut self, offset: u64, record: Record<'_>) -> Result<bool, RecordingError> {
        match record {
            Record::Footer(_) => return Ok(true),
            Record::Chunk { header, data } => {
                if header.uncompressed_size > MAX_CHUNK_BYTES {
                    return Err(self.corrupt(
                        offset as usize,
                        format!(
                            "chunk claims {} uncompressed bytes",
                            header.uncompressed_size
                        ),
                    ));
                }
                let chunk = ChunkReader::new(header, &data)
                    .map_err(|e| self.corrupt(offset as usize, format!("chunk: {e}")))?;
                for inner in chunk {
                    let inner = inner
                        .map_err(|e| self.corrupt(offset as usize, format!("inside chunk: {e}")))?;
                    self.handle_data(offset, inner)?;
                }
            }
            Record::Metadata(m) if m.name == METADATA_NAME => self.recording.metadata = m.metadata,
            other => self.handle_data(offset, other)?,
        }
        Ok(false)
    }

    /// Schema, channel and message records (top level or inside a chunk).
    fn handle_data(&mut self, offset: u64, record: Record<'_>) -> Result<(), RecordingError> {
        match record {
            Record::Schema { header, data } => {
                if header.name != SCHEMA_NAME || header.encoding != SCHEMA_ENCODING {
                    return Err(RecordingError::WrongSchema {
                        path: self.path.into(),
                        offset,
                        name: header.name,
                        encoding: header.encoding,
                    });
                }
                self.schemas.insert(header.id, ());
                self.recording.descriptor_set = data.into_owned();
            }
            Record::Channel(channel) => {
                if channel.schema_id != 0 && !self.schemas.contains_key(&channel.schema_id) {
                    return Err(self.corrupt(
                        offset as usize,
                        format!(
                            "channel {} uses unknown schema {}",
                            channel.id, channel.schema_id
                        ),
                    ));
                }
                self.channels
                    .insert(channel.id, Arc::from(channel.topic.as_str()));
            }
            Record::Message { header, data } => {
                let subject = self
                    .channels
                    .get(&header.channel_id)
                    .cloned()
                    .ok_or_else(|| {
                        self.corrupt(
                            offset as usize,
                            format!("message on unknown channel {}", header.channel_id),
                        )
                    })?;
                self.recording.messages.push(RecordedMessage {
                    subject,
                    log_time: header.log_time,
                    publish_time: header.publish_time,
                    data: data.into_owned(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn truncate(&mut self, offset: usize, reason: &str) {
        self.recording.truncated = Some(Truncation {
            offset: offset as u64,
            reason: reason.to_string(),
        });
    }

    fn corrupt(&self, offset: usize, reason: String) -> RecordingError {
        RecordingError::Corrupt {
            path: self.path.into(),
            offset: offset as u64,
            reason,
        }
    }
}
