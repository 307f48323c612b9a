//! Loading peerlab's BPF object and attaching its programs to a bitcoind binary.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};

use super::records::ProbeId;
use super::ExtractorError;
use crate::usdt::{attach_usdt, read_probe_notes, UprobePmu, UsdtLink, UsdtSpec};

static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/peerlab.bpf.o"));

/// `struct probe_counter`: per-CPU emitted / dropped counts of one probe.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeCounter {
    /// Records written.
    pub emitted: u64,
    /// Records lost because the ring was full (or an argument could not be read).
    pub dropped: u64,
}
// SAFETY: two u64s, no padding.
unsafe impl aya::Pod for ProbeCounter {}

/// Ring-buffer sizes in bytes (powers of two, multiples of the page size).
#[derive(Debug, Clone, Copy)]
pub struct RingSizes {
    /// Connection, mempool, validation and utxocache records.
    pub events: u32,
    /// Messages up to 64 KiB of payload.
    pub messages: u32,
    /// Messages up to 4 MB (blocks).
    pub big_messages: u32,
}

impl Default for RingSizes {
    fn default() -> Self {
        RingSizes {
            events: 2 << 20,
            messages: 4 << 20,
            big_messages: 8 << 20,
        }
    }
}

/// Everything loaded and attached; dropping it detaches every probe.
pub struct Tracer {
    _ebpf: Ebpf,
    _links: Vec<UsdtLink>,
    target: Array<MapData, u32>,
    peers_generation: Array<MapData, u64>,
    counters: PerCpuArray<MapData, ProbeCounter>,
    /// The three rings: events, messages, big messages.
    pub rings: Vec<RingBuf<MapData>>,
    /// Probe sites attached, per probe.
    pub sites: Vec<(ProbeId, usize)>,
    binary: PathBuf,
}

impl Tracer {
    /// Loads the programs for `probes` and attaches them to every site of `binary`.
    pub fn attach(
        binary: &Path,
        probes: &[ProbeId],
        rings: RingSizes,
        wakeup_bytes: u64,
    ) -> Result<Tracer, ExtractorError> {
        let notes = read_probe_notes(binary)?;
        let pmu = UprobePmu::discover()?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("events_ring", rings.events)
            .map_max_entries("msg_ring", rings.messages)
            .map_max_entries("big_msg_ring", rings.big_messages)
            .override_global("wakeup_bytes", &wakeup_bytes, true)
            .load(BPF_OBJECT)
            .map_err(|e| ExtractorError::Load(load_failure(&e, rings)))?;

        let mut specs_to_write = Vec::new();
        let mut plan = Vec::new();
        for &probe in probes {
            let (provider, name) = probe.tracepoint().split_once(':').unwrap_or(("", ""));
            let sites: Vec<_> = notes
                .iter()
                .filter(|n| n.provider == provider && n.name == name)
                .collect();
            if sites.is_empty() {
                return Err(ExtractorError::Load(format!(
                    "{} has no {} tracepoint; is it a traceable bitcoind (`peerlab setup`)?",
                    binary.display(),
                    probe.tracepoint()
                )));
            }
            for note in sites {
                let index = specs_to_write.len() as u32;
                specs_to_write.push(UsdtSpec::parse(&note.args, probe as u32)?);
                plan.push((probe, note.clone(), index));
            }
        }
        {
            let map = ebpf
                .map_mut("usdt_specs")
                .ok_or_else(|| missing("usdt_specs"))?;
            let mut specs: Array<&mut MapData, UsdtSpec> =
                Array::try_from(map).map_err(map_error)?;
            for (index, spec) in specs_to_write.iter().enumerate() {
                specs.set(index as u32, spec, 0).map_err(map_error)?;
            }
        }

        let mut links = Vec::new();
        let mut sites = Vec::new();
        for &probe in probes {
            let program: &mut UProbe = ebpf
                .program_mut(probe.program())
                .ok_or_else(|| missing(probe.program()))?
                .try_into()
                .map_err(|e| ExtractorError::Load(format!("{}: {e}", probe.program())))?;
            program.load().map_err(|e| {
                ExtractorError::Load(format!("verifier rejected {}: {e}", probe.program()))
            })?;
            let fd = program
                .fd()
                .map_err(|e| ExtractorError::Load(e.to_string()))?;
            let mut count = 0;
            for (_, note, index) in plan.iter().filter(|(p, _, _)| *p == probe) {
                links.push(attach_usdt(
                    pmu,
                    fd.as_fd(),
                    binary,
                    note,
                    u64::from(*index),
                    None,
                )?);
                count += 1;
            }
            sites.push((probe, count));
        }

        let target = Array::try_from(
            ebpf.take_map("target_tgid")
                .ok_or_else(|| missing("target_tgid"))?,
        )
        .map_err(map_error)?;
        let peers_generation = Array::try_from(
            ebpf.take_map("peers_generation")
                .ok_or_else(|| missing("peers_generation"))?,
        )
        .map_err(map_error)?;
        let counters = PerCpuArray::try_from(
            ebpf.take_map("counters")
                .ok_or_else(|| missing("counters"))?,
        )
        .map_err(map_error)?;
        let mut ring_bufs = Vec::new();
        for name in ["events_ring", "msg_ring", "big_msg_ring"] {
            ring_bufs.push(
                RingBuf::try_from(ebpf.take_map(name).ok_or_else(|| missing(name))?)
                    .map_err(map_error)?,
            );
        }
        Ok(Tracer {
            _ebpf: ebpf,
            _links: links,
            target,
            peers_generation,
            counters,
            rings: ring_bufs,
            sites,
            binary: binary.to_path_buf(),
        })
    }

    /// Traces only `pid` from now on (`None`: nobody, while waiting for bitcoind to return).
    pub fn set_target(&mut self, pid: Option<u32>) -> Result<(), ExtractorError> {
        // 0 would mean "any process"; u32::MAX is never a pid.
        self.target
            .set(0, pid.unwrap_or(u32::MAX), 0)
            .map_err(map_error)
    }

    /// Makes the programs send every peer's address and connection type again, with its next
    /// message (the extractor's peer table started over).
    pub fn forget_peers(&mut self) -> Result<(), ExtractorError> {
        let generation = self.peers_generation.get(&0, 0).map_err(map_error)?;
        self.peers_generation
            .set(0, generation.wrapping_add(1), 0)
            .map_err(map_error)
    }

    /// Emitted and dropped records per probe, summed over CPUs.
    pub fn counters(&self) -> Result<Vec<(ProbeId, ProbeCounter)>, ExtractorError> {
        ProbeId::ALL
            .iter()
            .map(|&probe| {
                let per_cpu = self.counters.get(&(probe as u32), 0).map_err(map_error)?;
                let sum = per_cpu
                    .iter()
                    .fold(ProbeCounter::default(), |acc, c| ProbeCounter {
                        emitted: acc.emitted + c.emitted,
                        dropped: acc.dropped + c.dropped,
                    });
                Ok((probe, sum))
            })
            .collect()
    }

    /// The traced binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

/// Why loading failed, in terms of what the user can change: privileges only when this
/// process lacks them, otherwise the ring sizes it asked for, otherwise the kernel's reason.
fn load_failure(e: &aya::EbpfError, rings: RingSizes) -> String {
    // SAFETY: geteuid has no preconditions and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return format!("{e}; eBPF needs root (CAP_BPF, CAP_PERFMON): run as root");
    }
    let page = 4096u32;
    let bad: Vec<String> = [
        ("--event-ring-mib", rings.events),
        ("--message-ring-mib", rings.messages),
        ("--big-message-ring-mib", rings.big_messages),
    ]
    .iter()
    .filter(|(_, bytes)| !bytes.is_power_of_two() || *bytes < page)
    .map(|(option, bytes)| format!("{option} gives {bytes} bytes"))
    .collect();
    if bad.is_empty() {
        format!("the kernel refused the eBPF programs: {e}")
    } else {
        format!(
            "the kernel refused the ring buffers ({e}): {}; each ring must be a power of two of at least one page",
            bad.join(", ")
        )
    }
}

fn missing(name: &str) -> ExtractorError {
    ExtractorError::Load(format!("the BPF object has no `{name}` (build defect)"))
}

fn map_error(e: aya::maps::MapError) -> ExtractorError {
    ExtractorError::Load(format!("BPF map: {e}"))
}
