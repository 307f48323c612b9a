//! `peerlab tools ...`: the tools that consume events.

use peerlab::event::EventKind;
use peerlab::tools::logger::LogFormat;

use super::nats::{NatsArgs, SubjectSchemeArgs};

/// Tools that consume events from NATS.
#[derive(Debug, clap::Args)]
pub struct ToolsArgs {
    #[command(subcommand)]
    pub tool: Tool,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum Tool {
    /// Print events from NATS: readable lines, or JSON lines with --json.
    Logger {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
        /// One JSON object per line instead of readable text.
        #[arg(long)]
        json: bool,
        /// Only these event kinds (netmsg, netconn, mempool, validation, utxocache, rpc,
        /// p2p-extractor, log-extractor, ipc); comma-separated or repeated.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<EventKind>,
        /// Stop after printing this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Serve Prometheus metrics for every event on NATS: peer-observer's metric families
    /// (same names, types, labels and buckets, so its Grafana dashboards work unchanged)
    /// plus peerlab's pipeline families (`peerlab_*`).
    ///
    /// Any HTTP path answers with the text format (Prometheus scrapes `/metrics`). The
    /// families that count peers on IP lists (Tor exits, gmax, Monero, bitprojects) read
    /// the list files given here, one IP per line; without a file they stay at 0. The
    /// LinkingLion prefixes are built in.
    Metrics {
        /// Where to serve the metrics (loopback by default).
        #[arg(
            short = 'm',
            long,
            value_name = "HOST:PORT",
            default_value = "127.0.0.1:8282"
        )]
        metrics_address: std::net::SocketAddr,
        /// Tor exit IPs (e.g. https://check.torproject.org/torbulkexitlist, saved).
        #[arg(long, value_name = "FILE")]
        tor_exit_list: Option<std::path::PathBuf>,
        /// Greg Maxwell's 2018 banlist, one IP per line.
        #[arg(long, value_name = "FILE")]
        gmax_banlist: Option<std::path::PathBuf>,
        /// The Monero banlist, one IP per line.
        #[arg(long, value_name = "FILE")]
        monero_banlist: Option<std::path::PathBuf>,
        /// bitprojects.io's addresses, one IP per line.
        #[arg(long, value_name = "FILE")]
        bitprojects_list: Option<std::path::PathBuf>,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = super::values::whole_seconds())]
        duration: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
    },
}

impl ToolsArgs {
    /// Runs the chosen tool until Ctrl-C or SIGTERM (or it is done).
    pub async fn run(self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use peerlab::bus::Subscriber;
        use peerlab::tools::{Logger, Tool as _};
        match self.tool {
            Tool::Logger {
                nats,
                subjects,
                json,
                kind,
                count,
            } => {
                let format = if json {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                };
                let scheme = subjects.scheme();
                let pattern = scheme.wildcard();
                let subscriber = Subscriber::connect(&nats.to_options(), scheme, &[]).await?;
                tracing::info!(subject = %pattern, "logger subscribed");
                let mut logger = Logger::new(format, Box::new(std::io::stdout()));
                logger.kinds = kind;
                logger.count = count;
                let shutdown = super::signals::shutdown_on_signals(None);
                logger
                    .run(subscriber, shutdown)
                    .await
                    .context("cannot write to stdout")?;
                Ok(())
            }
            Tool::Metrics {
                metrics_address,
                tor_exit_list,
                gmax_banlist,
                monero_banlist,
                bitprojects_list,
                duration,
                nats,
                subjects,
            } => {
                use peerlab::tools::metrics::iplists::{IpListFiles, IpLists};
                use peerlab::tools::metrics::{MetricsEngine, MetricsTool};
                let lists = IpLists::load(&IpListFiles {
                    tor_exits: tor_exit_list,
                    gmax: gmax_banlist,
                    monero: monero_banlist,
                    bitprojects: bitprojects_list,
                })?;
                // The endpoint is bound first, as upstream's: a taken port fails at once.
                let tool = MetricsTool::bind(metrics_address, MetricsEngine::new(lists)?).await?;
                let shutdown = super::signals::shutdown_on_signals(
                    duration.map(std::time::Duration::from_secs),
                );
                let scheme = subjects.scheme();
                let patterns = [scheme.wildcard(), scheme.stats_wildcard()];
                let options = nats.to_options();
                let subscriber = tokio::select! {
                    connected = Subscriber::connect(&options, scheme, &patterns) => connected?,
                    _ = shutdown.cancelled() => return Ok(()),
                };
                println!("serving metrics on http://{}/metrics", tool.local_addr()?);
                let summary = tool.run(subscriber, shutdown).await?;
                tracing::info!(messages = summary.messages, "metrics tool stopped");
                Ok(())
            }
        }
    }
}
