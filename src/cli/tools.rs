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
    /// Runs the chosen tool until it is stopped.
    pub fn run(self) -> anyhow::Result<()> {
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
                peerlab::commands::logger::run(
                    &nats.to_options(),
                    subjects.scheme(),
                    format,
                    &kind,
                    count,
                )
            }
        }
    }
}
