//! Parsing `.note.stapsdt` ELF notes (the SystemTap SDT format that `sys/sdt.h` emits).
//!
//! Each note's descriptor holds three addresses (probe pc, the link-time address of the
//! `.stapsdt.base` section, and the semaphore or 0) followed by three NUL-terminated strings:
//! provider, probe name, argument specification. If the binary was prelinked or relocated,
//! the difference between the recorded base and the actual `.stapsdt.base` address must be
//! added to pc and semaphore; we apply it, and convert both to file offsets because uprobes
//! are attached by file offset.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment};

/// One probe site found in a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeNote {
    /// Provider, e.g. `net`.
    pub provider: String,
    /// Probe name, e.g. `inbound_message`.
    pub name: String,
    /// Virtual address of the probe instruction (after base adjustment).
    pub pc: u64,
    /// File offset of the probe instruction (what a uprobe attaches to).
    pub pc_file_offset: u64,
    /// Virtual address of the semaphore, if the probe has one.
    pub semaphore: Option<u64>,
    /// File offset of the semaphore (the kernel's `ref_ctr_offset`).
    pub semaphore_file_offset: Option<u64>,
    /// Argument specification, e.g. `-8@%rbx 8@%r12`.
    pub args: String,
}

impl ProbeNote {
    /// `provider:name`.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.provider, self.name)
    }
}

/// Why a binary's probes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsdtError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an ELF object we can parse.
    #[error("{path} is not a readable ELF binary: {reason}")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        reason: String,
    },
    /// An argument specification cannot be read.
    #[error("cannot read USDT argument spec `{spec}`: {reason}")]
    ArgSpec {
        /// The whole argument string.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// Attaching to a probe failed.
    #[error("cannot attach to {probe} in {path}: {reason}")]
    Attach {
        /// `provider:name`.
        probe: String,
        /// The binary.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A note is malformed.
    #[error("{path}: malformed .note.stapsdt entry at note {index}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Index of the note.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

const NOTE_SECTION: &str = ".note.stapsdt";
const BASE_SECTION: &str = ".stapsdt.base";
const OWNER: &[u8] = b"stapsdt";
const NOTE_TYPE: u32 = 3;

/// Reads every SDT probe note of an ELF file. An ELF without the section yields no notes.
pub fn read_probe_notes(path: &Path) -> Result<Vec<ProbeNote>, UsdtError> {
    let data = std::fs::read(path).map_err(|source| UsdtError::Read {
        path: path.into(),
        source,
    })?;
    parse_probe_notes(&data).map_err(|(index, reason)| match index {
        None => UsdtError::NotElf {
            path: path.into(),
            reason,
        },
        Some(index) => UsdtError::Malformed {
            path: path.into(),
            index,
            reason,
        },
    })
}

type ParseError = (Option<usize>, String);

fn parse_probe_notes(data: &[u8]) -> Result<Vec<ProbeNote>, ParseError> {
    let file = object::File::parse(data).map_err(|e| (None, e.to_string()))?;
    let Some(section) = file.section_by_name(NOTE_SECTION) else {
        return Ok(Vec::new());
    };
    let actual_base = file.section_by_name(BASE_SECTION).map(|s| s.address());
    let bytes = section.data().map_err(|e| (None, e.to_string()))?;
    let little = file.is_little_endian();
    let segments: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|s| (s.address(), s.size(), s.file_range().0))
        .collect();

    let mut notes = Vec::new();
    let mut offset = 0usize;
    let mut index = 0usize;
    while offset + 12 <= bytes.len() {
        let read_u32 = |at: usize| -> u32 {
            let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
            if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let name_size = read_u32(offset) as usize;
        let desc_size = read_u32(offset + 4) as usize;
        let note_type = read_u32(offset + 8);
        let name_start = offset + 12;
        let desc_start = name_start + align4(name_size);
        let next = desc_start + align4(desc_size);
        if next > bytes.len() {
            return Err((
                Some(index),
                format!("note extends past the section ({next} > {})", bytes.len()),
            ));
        }
        let owner = bytes[name_start..name_start + name_size]
            .strip_suffix(&[0])
            .unwrap_or(&[]);
        if owner == OWNER && note_type == NOTE_TYPE {
            let desc = &bytes[desc_start..desc_start + desc_size];
            notes.push(
                parse_desc(desc, little, actual_base, &segments).map_err(|r| (Some(index), r))?,
            );
        }
        offset = next;
        index += 1;
    }
    Ok(notes)
}

fn parse_desc(
    desc: &[u8],
    little: bool,
    actual_base: Option<u64>,
    segments: &[(u64, u64, u64)],
) -> Result<ProbeNote, String> {
    if desc.len() < 24 {
        return Err(format!(
            "descriptor is {} bytes, need at least 24",
            desc.len()
        ));
    }
    let read_u64 = |at: usize| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&desc[at..at + 8]);
        if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        }
    };
    let (mut pc, recorded_base, mut semaphore) = (read_u64(0), read_u64(8), read_u64(16));
    if let Some(actual) = actual_base {
        // Prelink/relocation moved the section: shift addresses by the same amount.
        let delta = actual.wrapping_sub(recorded_base);
        pc = pc.wrapping_add(delta);
        if semaphore != 0 {
            semaphore = semaphore.wrapping_add(delta);
        }
    }
    let mut strings = desc[24..].split(|b| *b == 0);
    let mut next_string = |what: &str| -> Result<String, String> {
        let s = strings.next().ok_or_else(|| format!("missing {what}"))?;
        String::from_utf8(s.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    };
    let provider = next_string("provider")?;
    let name = next_string("probe name")?;
    let args = next_string("argument string")?;
    if provider.is_empty() || name.is_empty() {
        return Err("empty provider or probe name".to_string());
    }
    let pc_file_offset = file_offset(pc, segments)
        .ok_or_else(|| format!("probe address {pc:#x} is in no segment"))?;
    let (semaphore, semaphore_file_offset) = if semaphore == 0 {
        (None, None)
    } else {
        let off = file_offset(semaphore, segments)
            .ok_or_else(|| format!("semaphore address {semaphore:#x} is in no segment"))?;
        (Some(semaphore), Some(off))
    };
    Ok(ProbeNote {
        provider,
        name,
        pc,
        pc_file_offset,
        semaphore,
        semaphore_file_offset,
        args,
    })
}

/// Virtual address -> file offset through the program header that maps it.
fn file_offset(vaddr: u64, segments: &[(u64, u64, u64)]) -> Option<u64> {
    segments
        .iter()
        .find(|(addr, size, _)| vaddr >= *addr && vaddr < addr + size)
        .map(|(addr, _, file_off)| vaddr - addr + file_off)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_elf() {
        assert!(matches!(
            parse_probe_notes(b"definitely not an elf"),
            Err((None, _))
        ));
    }

    #[test]
    fn this_test_binary_has_no_probes() {
        let exe = std::env::current_exe().expect("test binary path");
        let notes = read_probe_notes(&exe).expect("own binary is ELF");
        assert!(notes.is_empty());
    }
}
