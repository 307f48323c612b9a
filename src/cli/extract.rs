//! `peerlab extract ...`: the extractors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use peerlab::bus::{NatsOptions, Publisher, SubjectScheme};
use peerlab::extractors::ebpf::{
    EbpfConfig, EbpfExtractor, ProbeGroups, ProbeId, RingSizes, Target,
};
use peerlab::extractors::log::follow::Start;
use peerlab::extractors::log::{LogConfig, LogExtractor};
use peerlab::extractors::Extractor;
use peerlab::shutdown::Shutdown;

use super::nats::{NatsArgs, SubjectSchemeArgs};
use super::signals::shutdown_on_signals;
use super::values::{ring_mib, whole_seconds};

/// Extractors that publish a node's events to NATS.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    #[command(subcommand)]
    pub extractor: ExtractorCommand,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum ExtractorCommand {
    /// Attach eBPF programs to a bitcoind's USDT tracepoints and publish every event.
    ///
    /// Needs root (CAP_BPF + CAP_PERFMON) and a bitcoind built with tracepoints
    /// (`peerlab setup`). Follows bitcoind across restarts. Drops are counted per tracepoint
    /// and logged every --stats-interval.
    Ebpf {
        /// The bitcoind binary to trace (default: the one `peerlab setup` provisioned).
        #[arg(long, value_name = "PATH")]
        bitcoind_path: Option<PathBuf>,
        /// Trace this process (default: the single running process of --bitcoind-path).
        #[arg(long, value_name = "PID", conflicts_with = "pid_file")]
        pid: Option<u32>,
        /// Read the pid from this file (re-read after a restart), e.g. <datadir>/bitcoind.pid.
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
        /// Disable the net:* tracepoints (P2P messages and connections).
        #[arg(long)]
        no_net: bool,
        /// Disable the mempool:* tracepoints.
        #[arg(long)]
        no_mempool: bool,
        /// Disable validation:block_connected.
        #[arg(long)]
        no_validation: bool,
        /// Enable the high-volume utxocache:* tracepoints.
        #[arg(long)]
        utxocache: bool,
        /// Trace only these tracepoints (provider:name, repeatable); overrides the groups.
        #[arg(long = "probe", value_name = "PROVIDER:NAME")]
        probes: Vec<String>,
        /// Ring buffer for messages up to 64 KiB, in MiB (power of two, 1 to 1024).
        #[arg(long, default_value_t = 4, value_parser = ring_mib(1))]
        message_ring_mib: u32,
        /// Ring buffer for large messages (blocks), in MiB (power of two, 8 to 1024).
        #[arg(long, default_value_t = 8, value_parser = ring_mib(8))]
        big_message_ring_mib: u32,
        /// Ring buffer for connection, mempool and validation events, in MiB (power of two,
        /// 1 to 1024).
        #[arg(long, default_value_t = 2, value_parser = ring_mib(1))]
        event_ring_mib: u32,
        /// Seconds between counter reports (drops are logged when non-zero).
        #[arg(long, default_value_t = 10, value_parser = whole_seconds())]
        stats_interval: u64,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = whole_seconds())]
        duration: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
    },
    /// Follow bitcoind's debug.log and publish every line (subject `log-extractor`).
    ///
    /// Parses timestamp, category, level and thread like peer-observer; BlockConnected and
    /// BlockChecked lines get their own events, every other line is an unknown message.
    /// Follows the file across rotation (rename, then SIGHUP to bitcoind; or copy-truncate)
    /// and waits for it to appear. A FIFO (peer-observer's `tail -F debug.log > pipe`) works
    /// too. For block events, run bitcoind with -debug=validation.
    Log {
        /// The debug.log to follow (e.g. ~/.bitcoin/debug.log, <datadir>/regtest/debug.log),
        /// or a FIFO fed with its lines.
        #[arg(
            long,
            short = 'b',
            visible_alias = "bitcoind-pipe",
            value_name = "PATH"
        )]
        debug_log: PathBuf,
        /// Read the lines already in the file first (default: only new lines, like tail -F).
        #[arg(long)]
        from_start: bool,
        /// Seconds between counter reports.
        #[arg(long, default_value_t = 10, value_parser = whole_seconds())]
        stats_interval: u64,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = whole_seconds())]
        duration: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
    },
}

impl ExtractArgs {
    /// Runs the chosen extractor until Ctrl-C, SIGTERM or `--duration`.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.extractor {
            ExtractorCommand::Ebpf {
                bitcoind_path,
                pid,
                pid_file,
                no_net,
                no_mempool,
                no_validation,
                utxocache,
                probes,
                message_ring_mib,
                big_message_ring_mib,
                event_ring_mib,
                stats_interval,
                duration,
                nats,
                subjects,
            } => {
                let bitcoind = match bitcoind_path {
                    Some(path) => path,
                    None => {
                        peerlab::node::cached_installation()
                            .context("no --bitcoind-path given and no provisioned bitcoind")?
                            .bitcoind
                    }
                };
                let target = match (pid, pid_file) {
                    (Some(pid), _) => {
                        // A pid is a promise about one process: check it now rather than
                        // wait forever.
                        if let Some(reason) = peerlab::node::pid_mismatch(pid, &bitcoind) {
                            bail!("--pid {pid}: {reason}");
                        }
                        Target::Pid(pid)
                    }
                    (None, Some(file)) => Target::PidFile(file),
                    (None, None) => Target::Auto,
                };
                let only = if probes.is_empty() {
                    None
                } else {
                    let mut only = Vec::new();
                    for name in &probes {
                        match ProbeId::from_tracepoint(name) {
                            Some(p) => only.push(p),
                            None => bail!(
                                "unknown tracepoint `{name}`; expected provider:name, e.g. net:inbound_message"
                            ),
                        }
                    }
                    Some(only)
                };
                let config = EbpfConfig {
                    groups: ProbeGroups {
                        net: !no_net,
                        mempool: !no_mempool,
                        validation: !no_validation,
                        utxocache,
                    },
                    only,
                    rings: RingSizes {
                        events: event_ring_mib << 20,
                        messages: message_ring_mib << 20,
                        big_messages: big_message_ring_mib << 20,
                    },
                    report_period: Duration::from_secs(stats_interval.max(1)),
                    ..EbpfConfig::new(&bitcoind, target)
                };
                let shutdown = shutdown_on_signals(duration.map(Duration::from_secs));
                run_extractor::<EbpfExtractor>(
                    config,
                    &nats.to_options(),
                    subjects.scheme(),
                    shutdown,
                )
                .await
            }
            ExtractorCommand::Log {
                debug_log,
                from_start,
                stats_interval,
                duration,
                nats,
                subjects,
            } => {
                let config = LogConfig {
                    start: if from_start {
                        Start::Beginning
                    } else {
                        Start::End
                    },
                    report_period: Duration::from_secs(stats_interval.max(1)),
                    ..LogConfig::new(debug_log)
                };
                let shutdown = shutdown_on_signals(duration.map(Duration::from_secs));
                run_extractor::<LogExtractor>(
                    config,
                    &nats.to_options(),
                    subjects.scheme(),
                    shutdown,
                )
                .await
            }
        }
    }
}

/// Runs one extractor (any member of the contract) until `shutdown`, then logs its final
/// counters and the publisher's.
async fn run_extractor<E: Extractor>(
    config: E::Config,
    nats: &NatsOptions,
    scheme: SubjectScheme,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let publisher = Arc::new(
        Publisher::connect(nats, scheme, peerlab::extractors::publisher_config())
            .await
            .context("connecting to NATS")?,
    );
    let extractor = E::start(config, publisher.clone(), shutdown.clone())
        .with_context(|| format!("starting the {}", E::COMPONENT))?;
    shutdown.cancelled().await;
    let counters = extractor
        .stop()
        .await
        .with_context(|| format!("stopping the {}", E::COMPONENT))?;
    let bus = publisher.close(Duration::from_secs(5)).await;
    tracing::info!(
        records = counters.records,
        published = counters.published,
        dropped_in_kernel = counters.dropped_in_kernel,
        malformed = counters.malformed,
        unpublished = counters.unpublished,
        sent_to_nats = bus.sent,
        dropped_by_publisher = bus.dropped(),
        "{} stopped",
        E::COMPONENT
    );
    Ok(())
}
