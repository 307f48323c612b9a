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
        }
    }
}
