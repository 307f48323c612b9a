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

use mcap::read::parse_record;
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
    /// The path is not a regular file (a device, FIFO, directory, ...).
    #[error("{}: {what}, not a recording file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// Reading the whole recording would not fit in this machine's memory.
    #[error(
        "{}: needs more than {} MiB of memory to read ({} MiB available to peerlab); recordings \
         are read whole for now: split long captures with `peerlab record --rotate-mib`",
        path.display(),
        needed >> 20,
        budget >> 20
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes it needs (at least).
        needed: u64,
        /// Bytes it may use.
        budget: u64,
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
///
/// Only regular files are read (a device such as `/dev/zero` never ends), and only when the
/// file and its decompressed chunks fit in half the memory available now; both are refused
/// with an error before any large allocation.
pub fn read_recording(path: &Path) -> Result<Recording, RecordingError> {
    let io = |source| RecordingError::Io {
        path: path.into(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        use std::os::unix::fs::FileTypeExt as _;
        let what = if file_type.is_dir() {
            "a directory"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(RecordingError::NotAFile {
            path: path.into(),
            what,
        });
    }
    let budget = memory_budget();
    if meta.len() > budget {
        return Err(RecordingError::TooLarge {
            path: path.into(),
            needed: meta.len(),
            budget,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse(path, &bytes, budget.saturating_sub(bytes.len() as u64))
}

/// Half of the memory the kernel says is available now (`MemAvailable`), or 4 GiB when that
/// cannot be read.
fn memory_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemAvailable:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map(|kib| kib.saturating_mul(1024));
    available.map_or(4 << 30, |bytes| bytes / 2)
}

struct Parser<'p> {
    path: &'p Path,
    schemas: HashMap<u16, ()>,
    channels: HashMap<u16, Arc<str>>,
    recording: Recording,
    /// Past the DataEnd record: only summary records may follow (no messages).
    data_ended: bool,
    /// Message count claimed by the Statistics record, checked at the end.
    statistics_count: Option<(u64, u64)>,
    /// Written by peerlab, whose writer puts every message in a chunk.
    peerlab_profile: bool,
    /// Bytes the decompressed chunks may take in all.
    chunk_budget: u64,
    /// Bytes decompressed so far.
    decompressed: u64,
}

fn parse(path: &Path, bytes: &[u8], chunk_budget: u64) -> Result<Recording, RecordingError> {
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
        data_ended: false,
        statistics_count: None,
        peerlab_profile: false,
        chunk_budget,
        decompressed: 0,
        recording: Recording {
            path: path.into(),
            messages: Vec::new(),
            metadata: BTreeMap::new(),
            truncated: None,
            descriptor_set: Vec::new(),
            file_bytes: bytes.len() as u64,
        },
    };
    // A file that ends with the closing magic was written completely: running out of bytes
    // inside it is corruption, not a crash-truncated tail.
    let complete = bytes.len() >= 2 * MAGIC.len() && &bytes[bytes.len() - MAGIC.len()..] == MAGIC;
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
            if complete {
                return Err(parser.corrupt(
                    offset,
                    format!(
                        "record 0x{opcode:02x} declares {len} bytes but only {} remain",
                        rest.len() - 9
                    ),
                ));
            }
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
    if let Some((claimed, at)) = parser.statistics_count {
        let read = parser.recording.messages.len() as u64;
        if parser.recording.truncated.is_none() && claimed != read {
            return Err(parser.corrupt(
                at as usize,
                format!("the statistics record counts {claimed} messages but {read} were readable"),
            ));
        }
    }
    Ok(parser.recording)
}

/// Walks the records of an uncompressed, CRC-checked chunk.
fn chunk_records(records: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        if rest.len() < 9 {
            return Err("chunk ends inside a record header".into());
        }
        let opcode = rest[0];
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&rest[1..9]);
        let len = u64::from_le_bytes(len_bytes);
        if len > (rest.len() - 9) as u64 {
            return Err(format!(
                "record 0x{opcode:02x} in chunk declares {len} bytes, only {} remain",
                rest.len() - 9
            ));
        }
        out.push((opcode, &rest[9..9 + len as usize]));
        rest = &rest[9 + len as usize..];
    }
    Ok(out)
}

impl Parser<'_> {
    /// Handles one top-level record; `Ok(true)` after the footer.
    fn handle(&mut self, offset: u64, record: Record<'_>) -> Result<bool, RecordingError> {
        match record {
            Record::Footer(_) => return Ok(true),
            Record::Chunk { header, data } => {
                if self.data_ended {
                    return Err(self.corrupt(
                        offset as usize,
                        "chunk after the end of the data section".into(),
                    ));
                }
                if header.uncompressed_size > MAX_CHUNK_BYTES {
                    return Err(self.corrupt(
                        offset as usize,
                        format!(
                            "chunk claims {} uncompressed bytes",
                            header.uncompressed_size
                        ),
                    ));
                }
                self.decompressed += header.uncompressed_size;
                if self.decompressed > self.chunk_budget {
                    return Err(RecordingError::TooLarge {
                        path: self.path.into(),
                        needed: self.decompressed,
                        budget: self.chunk_budget,
                    });
                }
                // Decompress with a hard cap and check the CRC before trusting any length inside:
                // a damaged chunk must be an error, not a huge allocation.
                let records = match header.compression.as_str() {
                    "" => data.into_owned(),
                    "zstd" => zstd::bulk::decompress(&data, header.uncompressed_size as usize)
                        .map_err(|e| {
                            self.corrupt(offset as usize, format!("chunk does not decompress: {e}"))
                        })?,
                    other => {
                        return Err(self.corrupt(
                            offset as usize,
                            format!("chunk compression `{other}` is not supported (zstd or none)"),
                        ))
                    }
                };
                if records.len() as u64 != header.uncompressed_size {
                    return Err(self.corrupt(
                        offset as usize,
                        format!(
                            "chunk holds {} bytes, its header says {}",
                            records.len(),
                            header.uncompressed_size
                        ),
                    ));
                }
                if header.uncompressed_crc != 0
                    && crc32fast::hash(&records) != header.uncompressed_crc
                {
                    return Err(self.corrupt(offset as usize, "chunk CRC mismatch".into()));
                }
                let inner = chunk_records(&records)
                    .map_err(|reason| self.corrupt(offset as usize, reason))?;
                for (opcode, body) in inner {
                    let record = parse_record(opcode, body).map_err(|e| {
                        self.corrupt(
                            offset as usize,
                            format!("inside chunk: record 0x{opcode:02x}: {e}"),
                        )
                    })?;
                    self.handle_data(offset, record, true)?;
                }
            }
            Record::Header(header) => {
                self.peerlab_profile = header.profile == super::format::PROFILE
            }
            Record::DataEnd(_) => self.data_ended = true,
            Record::Statistics(statistics) => {
                self.statistics_count = Some((statistics.message_count, offset))
            }
            Record::Metadata(m) if m.name == METADATA_NAME => self.recording.metadata = m.metadata,
            other => self.handle_data(offset, other, false)?,
        }
        Ok(false)
    }

    /// Schema, channel and message records (top level or inside a chunk).
    fn handle_data(
        &mut self,
        offset: u64,
        record: Record<'_>,
        in_chunk: bool,
    ) -> Result<(), RecordingError> {
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
            Record::Message { .. } if self.data_ended => {
                return Err(self.corrupt(
                    offset as usize,
                    "message record in the summary section".into(),
                ));
            }
            // peerlab's writer puts every message in a (CRC-checked) chunk: a bare message
            // record in its files is a damaged record of another kind.
            Record::Message { .. } if !in_chunk && self.peerlab_profile => {
                return Err(self.corrupt(offset as usize, "message record outside a chunk".into()));
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
