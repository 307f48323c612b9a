//! `peerlab record` and `peerlab replay`.

use std::time::Duration;

use anyhow::Context as _;

use crate::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme};
use crate::commands::extract::wait_for_shutdown;
use crate::record::recorder::{record, RecordOptions};
use crate::record::replayer::{replay as replay_files, ReplayOptions};

/// Records until Ctrl-C / SIGTERM / `--duration`, then prints where it wrote.
pub fn run(
    options: &RecordOptions,
    nats: &NatsOptions,
    scheme: SubjectScheme,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime
        .block_on(record(
            nats,
            scheme,
            options,
            Default::default(),
            wait_for_shutdown(None),
        ))
        .context("recording failed")?;
    let files: Vec<String> = summary
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    tracing::info!(
        events = summary.messages,
        payload_mib = format!("{:.2}", summary.payload_bytes as f64 / (1 << 20) as f64),
        filtered = summary.filtered,
        slow_consumer_events = summary.slow_consumer_events,
        files = %files.join(", "),
        "recording finished"
    );
    if summary.slow_consumer_events > 0 {
        tracing::warn!(
            "NATS reported this recorder as a slow consumer {} time(s): some events were dropped by the server",
            summary.slow_consumer_events
        );
    }
    Ok(())
}

/// Replays the files, then reports counts and (for paced replays) the timing error.
pub fn replay(options: &ReplayOptions, nats: &NatsOptions) -> anyhow::Result<()> {
    if !(options.speed >= 0.0 && options.speed.is_finite()) {
        anyhow::bail!(
            "--speed must be a number >= 0 (0 = as fast as possible), got {}",
            options.speed
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let publisher = Publisher::connect(nats, SubjectScheme::Flat, PublisherConfig::default())
            .await
            .context("connecting to NATS")?;
        let summary = replay_files(&publisher, options, wait_for_shutdown(None))
            .await
            .context("replay failed")?;
        let bus = publisher.close(Duration::from_secs(30)).await;
        let rate = summary.published as f64 / summary.elapsed.as_secs_f64().max(1e-9);
        tracing::info!(
            published = summary.published,
            delivered_to_nats = bus.sent,
            dropped = bus.dropped(),
            skipped = summary.skipped,
            passes = summary.passes,
            rate = format!("{rate:.0}/s"),
            "replay finished"
        );
        if let Some(t) = summary.timing {
            tracing::info!(
                p50_us = t.p50.as_micros() as u64,
                p99_us = t.p99.as_micros() as u64,
                max_us = t.max.as_micros() as u64,
                "timing error (actual minus scheduled send time)"
            );
        }
        if bus.dropped() > 0 {
            anyhow::bail!(
                "{} of {} replayed events did not reach NATS (buffer full: {}, larger than the server's max_payload: {}, not taken before shutdown: {}); {} delivered",
                bus.dropped(),
                bus.offered,
                bus.dropped_buffer_full,
                bus.dropped_too_large,
                bus.dropped_at_shutdown,
                bus.sent
            );
        }
        anyhow::Ok(())
    })
}
