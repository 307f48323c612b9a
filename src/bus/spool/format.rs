//! The spool's bytes on disk: segment records, the segment scan at start-up, the cursor.
//!
//! A segment is [`MAGIC`] followed by records `[u32 LE body length][u32 LE CRC-32 of the
//! body][body]`, the body being `[u16 LE subject length][subject (UTF-8)][payload]`. The
//! cursor file is `[u64 LE segment id][u64 LE offset][u32 LE CRC-32 of those 16 bytes]`.
//!
//! Invariants:
//! - a record is accepted only whole, within its file, with a matching checksum and a UTF-8
//!   subject; anything else is an error naming what is wrong, never a panic;
//! - a cursor is used only if its checksum matches.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use bytes::Bytes;

use super::{Damage, Record, SpoolError};

/// First bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"PLSPOOL1";
/// Bytes before a record's body: its length and its checksum.
pub(super) const RECORD_HEADER: u64 = 8;
/// The largest body accepted: far above any NATS max_payload, far below a length that could
/// only come from a damaged header.
pub(super) const MAX_BODY: u64 = 64 << 20;
/// Bytes of the cursor file.
const CURSOR_LEN: usize = 20;

pub(super) fn encode(buffer: &mut Vec<u8>, subject: &str, payload: &[u8]) {
    let body_len = 2 + subject.len() + payload.len();
    let start = buffer.len();
    buffer.extend_from_slice(&(body_len as u32).to_le_bytes());
    buffer.extend_from_slice(&[0; 4]);
    buffer.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    buffer.extend_from_slice(subject.as_bytes());
    buffer.extend_from_slice(payload);
    let crc = crc32fast::hash(&buffer[start + 8..]);
    buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads one record of at most `limit` bytes. `Ok(None)` at a clean end (no byte left);
/// `Err` for a torn or damaged record.
pub(super) fn read_one(file: &mut impl Read, limit: u64) -> Result<Option<(Record, u64)>, String> {
    let mut header = [0u8; RECORD_HEADER as usize];
    let got = read_up_to(file, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() {
        return Err(format!("torn record header ({got} of 8 bytes)"));
    }
    let body_len = u64::from(u32::from_le_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(2..=MAX_BODY).contains(&body_len) {
        return Err(format!(
            "impossible record length {body_len} (damaged header)"
        ));
    }
    if RECORD_HEADER + body_len > limit {
        return Err(format!(
            "torn record ({body_len} bytes announced, {} left)",
            limit.saturating_sub(RECORD_HEADER)
        ));
    }
    let mut body = vec![0u8; body_len as usize];
    let got = read_up_to(file, &mut body)?;
    if got < body.len() {
        return Err(format!("torn record ({got} of {body_len} bytes)"));
    }
    if crc32fast::hash(&body) != crc {
        return Err("checksum mismatch".into());
    }
    let subject_len = usize::from(u16::from_le_bytes([body[0], body[1]]));
    if 2 + subject_len > body.len() {
        return Err("subject longer than the record".into());
    }
    let subject = std::str::from_utf8(&body[2..2 + subject_len])
        .map_err(|_| "subject is not UTF-8".to_string())?
        .to_string();
    let payload = Bytes::from(body).slice(2 + subject_len..);
    Ok(Some((
        Record { subject, payload },
        RECORD_HEADER + body_len,
    )))
}

/// Fills `buf` as far as the reader goes; the count read.
fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> Result<usize, String> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(got)
}

/// The saved read position, if the cursor file holds a valid one.
pub(super) fn read_cursor(file: &File) -> Option<(u64, u64)> {
    let mut bytes = [0u8; CURSOR_LEN];
    file.read_exact_at(&mut bytes, 0).ok()?;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    if crc32fast::hash(&bytes[..16]) != crc {
        return None;
    }
    let segment = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let offset = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    Some((segment, offset))
}

/// Saves the read position `(segment, offset)`.
pub(super) fn write_cursor(file: &File, segment: u64, offset: u64) -> std::io::Result<()> {
    let mut bytes = [0u8; CURSOR_LEN];
    bytes[..8].copy_from_slice(&segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&bytes, 0)
}

/// What a segment left by an earlier run holds.
pub(super) struct Scan {
    /// Offsets where whole records start (and the end after the last one).
    pub(super) boundaries: Vec<u64>,
    pub(super) records: u64,
    pub(super) end: u64,
    pub(super) size: u64,
    pub(super) damage: Option<Damage>,
}

impl Scan {
    /// A segment that could not be read at all: nothing in it is readable.
    pub(super) fn unreadable(path: &Path, error: SpoolError) -> Scan {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        Scan {
            boundaries: Vec::new(),
            records: 0,
            end: 0,
            size,
            damage: Some(Damage {
                path: path.to_path_buf(),
                offset: 0,
                bytes: size,
                reason: format!("cannot read it: {error}"),
            }),
        }
    }
}

pub(super) fn scan_segment(path: &Path) -> Result<Scan, SpoolError> {
    let file = File::open(path).map_err(|e| SpoolError::io(path, e))?;
    let size = file.metadata().map_err(|e| SpoolError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let damage = |offset: u64, reason: String| Damage {
        path: path.to_path_buf(),
        offset,
        bytes: size - offset,
        reason,
    };
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut reader, &mut magic).map_err(|e| SpoolError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    if got < magic.len() || &magic != MAGIC {
        return Ok(Scan {
            boundaries: Vec::new(),
            records: 0,
            end: 0,
            size,
            damage: Some(damage(0, "not a spool segment (bad magic)".into())),
        });
    }
    let mut offset = MAGIC.len() as u64;
    let mut boundaries = vec![offset];
    let mut records = 0;
    loop {
        match read_one(&mut reader, size - offset) {
            Ok(Some((_, len))) => {
                offset += len;
                records += 1;
                boundaries.push(offset);
            }
            Ok(None) => {
                return Ok(Scan {
                    boundaries,
                    records,
                    end: offset,
                    size,
                    damage: None,
                })
            }
            Err(reason) => {
                return Ok(Scan {
                    boundaries,
                    records,
                    end: offset,
                    size,
                    damage: Some(damage(offset, reason)),
                })
            }
        }
    }
}
