//! Reading a recording back, with errors that name the file and the byte offset.
//!
//! [`RecordingStream`] reads one top-level record at a time, so memory is bounded by the
//! largest chunk (1 MiB as peerlab writes them, [`MAX_CHUNK_BYTES`] at most), whatever the
//! file's size: replay, inspect, cat and peer replay stream. [`read_recording`] collects a
//! stream into memory, for small files and tests, and refuses what would not fit.
//!
//! We walk the MCAP record framing ourselves (opcode, u64 length, body) so every problem has
//! an offset, and let the mcap crate parse each record and unpack each chunk. A file that ends
//! early (a recorder killed mid-write) yields every message of its complete records plus a
//! [`Truncation`] saying where it stops; a complete record that does not parse is corruption
//! and an error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::read::parse_record;
use mcap::records::Record;

use super::format::{METADATA_NAME, SCHEMA_ENCODING, SCHEMA_NAME};

const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
/// Largest chunk we agree to decompress, and largest record we agree to read; larger claims
/// are treated as corruption.
pub const MAX_CHUNK_BYTES: u64 = 512 << 20;

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
        "{}: needs more than {} MiB of memory to read whole ({} MiB available to peerlab); \
         stream it instead (RecordingStream, as inspect, cat and replay do)",
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
    /// A peer-observer archive without its header frame (empty, cut inside the header, or
    /// starting with something that is not an `ArchiveHeader`).
    #[error("{}: invalid archive, missing header: {reason}", path.display())]
    MissingHeader {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
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
    /// The MCAP message sequence: a per-file counter, or in a collector's recording the low
    /// 32 bits of the fleet stream's sequence; 0 in archives (which have none).
    pub sequence: u32,
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

/// Reads a whole recording into memory; see the module docs for how damage is reported.
///
/// Only when the file and its messages fit in half the memory available now: larger files
/// are refused with [`RecordingError::TooLarge`] (use [`RecordingStream`] for them).
pub fn read_recording(path: &Path) -> Result<Recording, RecordingError> {
    let mut stream = RecordingStream::open(path)?;
    let budget = memory_budget();
    if stream.file_bytes() > budget {
        return Err(RecordingError::TooLarge {
            path: path.into(),
            needed: stream.file_bytes(),
            budget,
        });
    }
    let mut messages = Vec::new();
    let mut held = 0u64;
    for message in &mut stream {
        let message = message?;
        held += message.data.len() as u64 + 64;
        if held > budget {
            return Err(RecordingError::TooLarge {
                path: path.into(),
                needed: held,
                budget,
            });
        }
        messages.push(message);
    }
    Ok(Recording {
        path: path.into(),
        messages,
        metadata: stream.parser.metadata,
        truncated: stream.parser.truncated,
        descriptor_set: stream.parser.descriptor_set,
        file_bytes: stream.file_bytes,
    })
}

/// What a path is when it is not a regular file, for the error.
pub(crate) fn not_a_file(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_dir() {
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
    }
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

/// The messages of a recording, read one record (at most one chunk) at a time.
///
/// Iterating yields every message in file order, then ends; an error ends the iteration.
/// [`metadata`](Self::metadata) and [`descriptor_set`](Self::descriptor_set) are known once
/// [`open`](Self::open) returns (peerlab writes them before the first chunk; for other
/// writers' files, once iteration reaches them); [`truncated`](Self::truncated) once the
/// iteration has ended.
pub struct RecordingStream {
    input: BufReader<File>,
    parser: Parser,
    /// Offset of the next top-level record.
    offset: u64,
    file_bytes: u64,
    /// The file ends with the closing magic: it was written completely.
    complete: bool,
    finished: bool,
}

impl RecordingStream {
    /// Opens a recording: a regular, non-empty file that starts with the MCAP magic. Reads
    /// the records before the first message (header, schema, metadata).
    pub fn open(path: &Path) -> Result<RecordingStream, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.into(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(RecordingError::NotAFile {
                path: path.into(),
                what: not_a_file(meta.file_type()),
            });
        }
        let file_bytes = meta.len();
        if file_bytes == 0 {
            return Err(RecordingError::Empty { path: path.into() });
        }
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 8];
        if file_bytes < MAGIC.len() as u64 {
            return Err(RecordingError::NotMcap { path: path.into() });
        }
        file.read_exact(&mut magic).map_err(io)?;
        if &magic != MAGIC {
            return Err(RecordingError::NotMcap { path: path.into() });
        }
        let mut complete = false;
        if file_bytes >= 2 * MAGIC.len() as u64 {
            file.seek(SeekFrom::End(-(MAGIC.len() as i64)))
                .map_err(io)?;
            file.read_exact(&mut magic).map_err(io)?;
            complete = &magic == MAGIC;
            file.seek(SeekFrom::Start(MAGIC.len() as u64)).map_err(io)?;
        }
        let mut stream = RecordingStream {
            input: BufReader::with_capacity(1 << 16, file),
            parser: Parser::new(path),
            offset: MAGIC.len() as u64,
            file_bytes,
            complete,
            finished: false,
        };
        while stream.parser.pending.is_empty() && !stream.finished {
            stream.step()?;
        }
        Ok(stream)
    }

    /// The `peerlab.recording` metadata (empty for recordings of other tools).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.parser.metadata
    }

    /// The schema's `FileDescriptorSet`.
    pub fn descriptor_set(&self) -> &[u8] {
        &self.parser.descriptor_set
    }

    /// Where and why the file stops early; known once the iteration has ended.
    pub fn truncated(&self) -> Option<&Truncation> {
        self.parser.truncated.as_ref()
    }

    /// File size in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Bytes read so far (for progress).
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.parser.path
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<(), RecordingError> {
        self.input
            .read_exact(buffer)
            .map_err(|source| RecordingError::Io {
                path: self.parser.path.clone(),
                source,
            })
    }

    /// Reads and handles the next top-level record; at the end, sets `finished`.
    fn step(&mut self) -> Result<(), RecordingError> {
        let offset = self.offset;
        let remaining = self.file_bytes - offset;
        if remaining == 0 {
            self.parser.truncate(
                offset,
                "the file ends without a footer (was the recorder killed?)",
            );
            return self.finish();
        }
        if remaining < 9 {
            self.parser
                .truncate(offset, "the file ends inside a record header");
            return self.finish();
        }
        let mut head = [0u8; 9];
        self.read_exact(&mut head)?;
        let opcode = head[0];
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&head[1..9]);
        let len = u64::from_le_bytes(len_bytes);
        if len > remaining - 9 {
            let reason = format!(
                "record 0x{opcode:02x} declares {len} bytes but only {} remain",
                remaining - 9
            );
            if self.complete {
                return Err(self.parser.corrupt(offset, reason));
            }
            self.parser.truncate(offset, &reason);
            return self.finish();
        }
        if len > MAX_CHUNK_BYTES {
            return Err(self.parser.corrupt(
                offset,
                format!(
                    "record 0x{opcode:02x} declares {len} bytes, more than any recording holds"
                ),
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.read_exact(&mut body)?;
        self.offset = offset + 9 + len;
        let record = parse_record(opcode, &body).map_err(|e| {
            self.parser
                .corrupt(offset, format!("record 0x{opcode:02x}: {e}"))
        })?;
        if self.parser.handle(offset, record)? {
            let after = self.offset;
            let mut closing = [0u8; 8];
            let closed = self.file_bytes >= after + MAGIC.len() as u64
                && self.read_exact(&mut closing).is_ok()
                && &closing == MAGIC;
            if !closed {
                self.parser
                    .truncate(after, "footer is not followed by the closing MCAP magic");
            }
            return self.finish();
        }
        Ok(())
    }

    /// Ends the stream; the statistics record's count must match what was read.
    fn finish(&mut self) -> Result<(), RecordingError> {
        self.finished = true;
        if let Some((claimed, at)) = self.parser.statistics_count {
            let read = self.parser.messages_read;
            if self.parser.truncated.is_none() && claimed != read {
                return Err(self.parser.corrupt(
                    at,
                    format!(
                        "the statistics record counts {claimed} messages but {read} were readable"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Iterator for RecordingStream {
    type Item = Result<RecordedMessage, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(message) = self.parser.pending.pop_front() {
                return Some(Ok(message));
            }
            if self.finished {
                return None;
            }
            if let Err(e) = self.step() {
                // An error ends the stream: nothing after a damaged record is trusted.
                self.finished = true;
                self.parser.pending.clear();
                return Some(Err(e));
            }
        }
    }
}

struct Parser {
    path: PathBuf,
    schemas: HashMap<u16, ()>,
    channels: HashMap<u16, Arc<str>>,
    /// Messages of the last record read, not yet handed out.
    pending: VecDeque<RecordedMessage>,
    messages_read: u64,
    metadata: BTreeMap<String, String>,
    descriptor_set: Vec<u8>,
    truncated: Option<Truncation>,
    /// Past the DataEnd record: only summary records may follow (no messages).
    data_ended: bool,
    /// Message count claimed by the Statistics record (and its offset), checked at the end.
    statistics_count: Option<(u64, u64)>,
    /// Written by peerlab, whose writer puts every message in a chunk.
    peerlab_profile: bool,
}

impl Parser {
    fn new(path: &Path) -> Parser {
        Parser {
            path: path.into(),
            schemas: HashMap::new(),
            channels: HashMap::new(),
            pending: VecDeque::new(),
            messages_read: 0,
            metadata: BTreeMap::new(),
            descriptor_set: Vec::new(),
            truncated: None,
            data_ended: false,
            statistics_count: None,
            peerlab_profile: false,
        }
    }
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

impl Parser {
    /// Handles one top-level record; `Ok(true)` after the footer.
    fn handle(&mut self, offset: u64, record: Record<'_>) -> Result<bool, RecordingError> {
        match record {
            Record::Footer(_) => return Ok(true),
            Record::Chunk { header, data } => {
                if self.data_ended {
                    return Err(
                        self.corrupt(offset, "chunk after the end of the data section".into())
                    );
                }
                if header.uncompressed_size > MAX_CHUNK_BYTES {
                    return Err(self.corrupt(
                        offset,
                        format!(
                            "chunk claims {} uncompressed bytes",
                            header.uncompressed_size
                        ),
                    ));
                }
                // Decompress with a hard cap and check the CRC before trusting any length inside:
                // a damaged chunk must be an error, not a huge allocation.
                let records = match header.compression.as_str() {
                    "" => data.into_owned(),
                    "zstd" => zstd::bulk::decompress(&data, header.uncompressed_size as usize)
                        .map_err(|e| {
                            self.corrupt(offset, format!("chunk does not decompress: {e}"))
                        })?,
                    other => {
                        return Err(self.corrupt(
                            offset,
                            format!("chunk compression `{other}` is not supported (zstd or none)"),
                        ))
                    }
                };
                if records.len() as u64 != header.uncompressed_size {
                    return Err(self.corrupt(
                        offset,
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
                    return Err(self.corrupt(offset, "chunk CRC mismatch".into()));
                }
                let inner =
                    chunk_records(&records).map_err(|reason| self.corrupt(offset, reason))?;
                for (opcode, body) in inner {
                    let record = parse_record(opcode, body).map_err(|e| {
                        self.corrupt(offset, format!("inside chunk: record 0x{opcode:02x}: {e}"))
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
            Record::Metadata(m) if m.name == METADATA_NAME => self.metadata = m.metadata,
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
                        path: self.path.clone(),
                        offset,
                        name: header.name,
                        encoding: header.encoding,
                    });
                }
                self.schemas.insert(header.id, ());
                self.descriptor_set = data.into_owned();
            }
            Record::Channel(channel) => {
                if channel.schema_id != 0 && !self.schemas.contains_key(&channel.schema_id) {
                    return Err(self.corrupt(
                        offset,
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
                return Err(self.corrupt(offset, "message record in the summary section".into()));
            }
            // peerlab's writer puts every message in a (CRC-checked) chunk: a bare message
            // record in its files is a damaged record of another kind.
            Record::Message { .. } if !in_chunk && self.peerlab_profile => {
                return Err(self.corrupt(offset, "message record outside a chunk".into()));
            }
            Record::Message { header, data } => {
                let subject = self
                    .channels
                    .get(&header.channel_id)
                    .cloned()
                    .ok_or_else(|| {
                        self.corrupt(
                            offset,
                            format!("message on unknown channel {}", header.channel_id),
                        )
                    })?;
                self.messages_read += 1;
                self.pending.push_back(RecordedMessage {
                    subject,
                    log_time: header.log_time,
                    publish_time: header.publish_time,
                    data: data.into_owned(),
                    sequence: header.sequence,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn truncate(&mut self, offset: u64, reason: &str) {
        self.truncated = Some(Truncation {
            offset,
            reason: reason.to_string(),
        });
    }

    fn corrupt(&self, offset: u64, reason: String) -> RecordingError {
        RecordingError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }
}
