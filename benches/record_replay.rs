//! Benchmark: recording and replay throughput, and recording size against plain encodings.
//!
//! Run with `cargo bench --bench record_replay` (env: `BENCH_EVENTS`, default 200000;
//! `BENCH_REPS`, default 5). The events are real in shape: the sample recording's events (a
//! regtest pipeline seen by the eBPF extractor), cycled to the requested count, with every
//! 32-byte hash replaced by fresh random bytes and a unique timestamp, so that no copy is
//! identical (otherwise any compressor would shrink the cycle to nothing). Each repetition
//! measures, side by side:
//! - recording: the MCAP writer in its default layout (zstd chunks, statistics) and with
//!   `--indexed` (plus message and chunk indexes), with the CPU time it took on every thread;
//! - baseline A: the same events as length-delimited protobuf in memory (no compression);
//! - baseline B: A compressed with zstd (level 3, the MCAP writer's default);
//! - replay: a recording published at speed 0 into a real nats-server, until the server has
//!   confirmed every event.
//!
//! Medians are printed as a markdown table and written to `target/bench/record_replay.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use peerlab::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme};
use peerlab::record::replayer::{replay, ReplayOptions};
use peerlab::record::{read_recording, Layout, RecordingWriter};
use peerlab::stack::NatsServer;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/recordings/regtest-sample.mcap"
);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let count = env_or("BENCH_EVENTS", 200_000);
    let reps = env_or("BENCH_REPS", 5);
    let sample = read_recording(Path::new(SAMPLE)).expect("sample recording");
    let base: Vec<(String, Vec<u8>)> = sample
        .messages
        .iter()
        .filter(|m| !peerlab::record::format::is_stats_subject(&m.subject))
        .map(|m| (m.subject.to_string(), m.data.clone()))
        .collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let events: Vec<(String, Vec<u8>)> = base
        .iter()
        .cycle()
        .take(count)
        .enumerate()
        .map(|(i, (subject, data))| (subject.clone(), perturb(data, i as u64, &mut rng)))
        .collect();
    let payload_bytes: usize = events.iter().map(|(_, d)| d.len()).sum();
    eprintln!(
        "{count} events ({:.1} MiB of payload, {} distinct), {reps} repetitions",
        payload_bytes as f64 / 1048576.0,
        base.len()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats_exe = peerlab::node::cached_installation()
        .expect("run `peerlab setup` first")
        .nats_server;
    let nats = NatsServer::start(&nats_exe).expect("nats-server");

    let (mut record_rate, mut record_size, mut record_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut indexed_rate, mut indexed_size, mut indexed_cpu) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_rate, mut raw_size) = (Vec::new(), Vec::new());
    let (mut zstd_rate, mut zstd_size) = (Vec::new(), Vec::new());
    let mut replay_rate = Vec::new();
    for rep in 0..reps {
        let file = dir.path().join(format!("bench-{rep}.mcap"));
        let (rate, size, cpu) = bench_record(&events, &file, Layout::Compact);
        record_rate.push(rate);
        record_cpu.push(cpu);
        record_size.push(size);
        let indexed = dir.path().join(format!("bench-{rep}-indexed.mcap"));
        let (rate, size, cpu) = bench_record(&events, &indexed, Layout::Indexed);
        indexed_rate.push(rate);
        indexed_cpu.push(cpu);
        indexed_size.push(size);
        let (rate, size, delimited) = bench_length_delimited(&events);
        raw_rate.push(rate);
        raw_size.push(size);
        let (rate, size) = bench_zstd(&delimited, events.len());
        zstd_rate.push(rate);
        zstd_size.push(size);
        replay_rate.push(runtime.block_on(bench_replay(&file, &nats.url(), events.len())));
        eprintln!(
            "rep {}: record {:.0}/s, replay {:.0}/s",
            rep + 1,
            record_rate[rep],
            replay_rate[rep]
        );
    }
    let indexed = median(&mut indexed_size);
    let (rec_size, raw, zst) = (
        median(&mut record_size),
        median(&mut raw_size),
        median(&mut zstd_size),
    );
    let n = count as f64;
    let table = format!(
        "| measure | events/s (median) | CPU µs/event (all threads) | bytes/event | size vs zstd length-delimited |\n\
         |---|---:|---:|---:|---:|\n\
         | record to MCAP, default layout (zstd chunks, statistics) | {:.0} | {:.3} | {:.1} | {:.3}x |\n\
         | record to MCAP, `--indexed` (plus message and chunk indexes) | {:.0} | {:.3} | {:.1} | {:.3}x |\n\
         | baseline: length-delimited protobuf | {:.0} | - | {:.1} | {:.3}x |\n\
         | baseline: zstd(3) length-delimited protobuf | {:.0} | - | {:.1} | 1.000x |\n\
         | replay at speed 0 into nats-server (confirmed) | {:.0} | - | - | - |\n",
        median(&mut record_rate),
        median(&mut record_cpu),
        rec_size / n,
        rec_size / zst,
        median(&mut indexed_rate),
        median(&mut indexed_cpu),
        indexed / n,
        indexed / zst,
        median(&mut raw_rate),
        raw / n,
        raw / zst,
        median(&mut zstd_rate),
        zst / n,
        median(&mut replay_rate),
    );
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("record_replay.md"), &table);
}

/// CPU time of this process so far, every thread counted (a writer that hands work to
/// threads of its own must not look cheaper than it is).
fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Events/s, file bytes and CPU µs per event of the recording writer.
fn bench_record(events: &[(String, Vec<u8>)], file: &Path, layout: Layout) -> (f64, f64, f64) {
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let mut writer =
        RecordingWriter::create_with(file, &Default::default(), layout).expect("create");
    for (i, (subject, data)) in events.iter().enumerate() {
        let t = 1_700_000_000_000_000_000 + i as u64 * 1_000;
        writer.write(subject, t, t, data).expect("write");
    }
    writer.finish().expect("finish");
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu_before;
    let size = std::fs::metadata(file).expect("size").len() as f64;
    let n = events.len() as f64;
    (n / elapsed, size, cpu * 1e6 / n)
}

/// Events/s and bytes of plain length-delimited encoding (the buffer is returned for zstd).
fn bench_length_delimited(events: &[(String, Vec<u8>)]) -> (f64, f64, Vec<u8>) {
    let started = Instant::now();
    let mut out = Vec::with_capacity(events.iter().map(|(_, d)| d.len() + 5).sum());
    for (_, data) in events {
        prost::encoding::encode_varint(data.len() as u64, &mut out);
        out.extend_from_slice(data);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let size = out.len() as f64;
    (events.len() as f64 / elapsed, size, out)
}

/// Events/s and bytes of zstd(3) over the length-delimited stream.
fn bench_zstd(delimited: &[u8], events: usize) -> (f64, f64) {
    let started = Instant::now();
    let compressed = zstd::encode_all(delimited, 3).expect("zstd");
    let elapsed = started.elapsed().as_secs_f64();
    (events as f64 / elapsed, compressed.len() as f64)
}

/// Events/s of a speed-0 replay, until nats-server confirmed every event.
async fn bench_replay(file: &Path, url: &str, expected: usize) -> f64 {
    let publisher = Publisher::connect(
        &NatsOptions::local(url),
        SubjectScheme::Flat,
        PublisherConfig::default(),
    )
    .await
    .expect("publisher");
    let options = ReplayOptions {
        speed: 0.0,
        ..ReplayOptions::new(vec![file.to_path_buf()])
    };
    // Reading the file is part of a replay; time it all.
    let started = Instant::now();
    let summary = replay(&publisher, &options, &peerlab::shutdown::Shutdown::new())
        .await
        .expect("replay");
    let stats = publisher.close(Duration::from_secs(60)).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        (summary.published as usize, stats.sent as usize),
        (expected, expected),
        "replay lost events"
    );
    expected as f64 / elapsed
}

/// The event with a unique timestamp and every 32-byte `bytes` field (hashes, txids)
/// replaced by random bytes, recursively.
fn perturb(data: &[u8], index: u64, rng: &mut u64) -> Vec<u8> {
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, ReflectMessage as _, Value};
    fn walk(message: &mut DynamicMessage, rng: &mut u64) {
        let fields: Vec<_> = message.descriptor().fields().collect();
        for field in fields {
            if !message.has_field(&field) {
                continue;
            }
            match message.get_field_mut(&field) {
                Value::Bytes(b) if b.len() == 32 => *b = random_bytes(rng).into(),
                Value::Message(m) => walk(m, rng),
                Value::List(items) => items.iter_mut().for_each(|v| match v {
                    Value::Message(m) => walk(m, rng),
                    Value::Bytes(b) if b.len() == 32 => *b = random_bytes(rng).into(),
                    _ => {}
                }),
                _ => {}
            }
        }
    }
    let descriptor = peerlab::event::descriptor_pool()
        .get_message_by_name("event.Event")
        .expect("schema");
    let Ok(mut message) = DynamicMessage::decode(descriptor, data) else {
        return data.to_vec();
    };
    walk(&mut message, rng);
    message.set_field_by_name("timestamp", Value::U64(1_795_000_000_000 + index));
    message.encode_to_vec()
}

fn random_bytes(state: &mut u64) -> Vec<u8> {
    (0..4)
        .flat_map(|_| {
            // xorshift64*: cheap, deterministic, incompressible enough for this purpose.
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
