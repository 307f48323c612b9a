//! `peerlab extract ebpf`: the eBPF extractor as a long-running process.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme};
use crate::extractors::ebpf::{EbpfConfig, EbpfExtractor, ProbeGroups, ProbeId, RingSizes, Target};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// The traced binary (default: the bitcoind `peerlab setup` provisioned).
    pub bitcoind: Option<PathBuf>,
    /// Explicit pid.
    pub pid: Option<u32>,
    /// Pid file.
    pub pid_file: Option<PathBuf>,
    /// Tracepoint groups.
    pub groups: ProbeGroups,
    /// Explicit `provider:name` probes (override the groups).
    pub probes: Vec<String>,
    /// Ring sizes.
    pub rings: RingSizes,
    /// Counter report period.
    pub report_period: Duration,
    /// Stop after this long (default: until Ctrl-C / SIGTERM).
    pub duration: Option<Duration>,
}

/// Runs the extractor until Ctrl-C, SIGTERM or `duration`, then prints a summary.
pub fn run(
    options: &ExtractOptions,
    nats: &NatsOptions,
    scheme: SubjectScheme,
) -> anyhow::Result<()> {
    let bitcoind = match &options.bitcoind {
        Some(path) => path.clone(),
        None => {
            crate::node::cached_installation()
                .context("no --bitcoind-path given and no provisioned bitcoind")?
                .bitcoind
        }
    };
    let target = match (options.pid, &options.pid_file) {
        (Some(pid), _) => {
            // A pid is a promise about one process: check it now rather than wait forever.
            if let Some(reason) = crate::node::pid_mismatch(pid, &bitcoind) {
                bail!("--pid {pid}: {reason}");
            }
            Target::Pid(pid)
        }
        (None, Some(file)) => Target::PidFile(file.clone()),
        (None, None) => Target::Auto,
    };
    let only = if options.probes.is_empty() {
        None
    } else {
        let mut probes = Vec::new();
        for name in &options.probes {
            match ProbeId::from_tracepoint(name) {
                Some(p) => probes.push(p),
                None => bail!(
                    "unknown tracepoint `{name}`; expected provider:name, e.g. net:inbound_message"
                ),
            }
        }
        Some(probes)
    };
    let config = EbpfConfig {
        groups: options.groups,
        only,
        rings: options.rings,
        report_period: options.report_period,
        ..EbpfConfig::new(&bitcoind, target)
    };

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let publisher = Arc::new(
            Publisher::connect(nats, scheme, extractor_publisher_config())
                .await
                .context("connecting to NATS")?,
        );
        let extractor = EbpfExtractor::start(config, publisher.clone())
            .context("starting the eBPF extractor")?;
        wait_for_shutdown(options.duration).await;
        let stats = extractor.stop().await.context("stopping the extractor")?;
        let publisher =
            Arc::try_unwrap(publisher).map_err(|_| anyhow::anyhow!("publisher still in use"))?;
        let bus = publisher.close(Duration::from_secs(5)).await;
        tracing::info!(
            records = stats.records.load(Ordering::Relaxed),
            published = stats.published.load(Ordering::Relaxed),
            dropped_in_kernel = stats.dropped_in_kernel(),
            malformed = stats.malformed.load(Ordering::Relaxed),
            unpublished_utxocache = stats.unpublished.load(Ordering::Relaxed),
            sent_to_nats = bus.sent,
            dropped_by_publisher = bus.dropped(),
            "extractor stopped"
        );
        anyhow::Ok(())
    })
}

/// The extractor's outgoing buffer: large enough for a burst or a NATS reconnect, small enough
/// that a saturated pipeline stays well inside the extractor's memory budget (64 MiB peak
/// RSS); what does not fit is counted as dropped, like a full ring buffer.
fn extractor_publisher_config() -> PublisherConfig {
    PublisherConfig {
        max_buffered_events: 16_384,
        max_buffered_bytes: 16 << 20,
        ..PublisherConfig::default()
    }
}

/// Returns on Ctrl-C, SIGTERM, or after `duration`.
pub async fn wait_for_shutdown(duration: Option<Duration>) {
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match sigterm.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
        _ = term => tracing::info!("SIGTERM: stopping"),
        _ = timer => {}
    }
}
