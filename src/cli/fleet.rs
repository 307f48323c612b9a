//! `peerlab fleet node-stream` and `peerlab fleet collect`: the JetStream side of a fleet
//! (honeynodes shipping their events to one collector over NATS leafnode links).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use peerlab::bus::jetstream::{
    ensure_node_stream, node_stream_name, StreamLimits, FLEET_STREAM, NODE_API_PREFIX,
};

use super::nats::NatsArgs;
use super::signals::shutdown_on_signals;
use super::values::whole_seconds;

/// Fleet plumbing on NATS JetStream: a honeynode keeps its events in a stream of its own
/// (`PEERLAB_<node>`, capturing `<prefix>.<node>.>`), and the collector's stream
/// (`PEERLAB_FLEET`) sources every node's over the leafnode link, so a cut link delays events
/// instead of losing them. The NixOS module (`services.peerlab`) runs both; the README's
/// "Deploy" section shows the nats-server configuration they expect.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// The fleet commands.
#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    NodeStream(NodeStreamArgs),
    Collect(CollectArgs),
}

impl FleetArgs {
    /// Runs the chosen fleet command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            FleetCommand::NodeStream(args) => args.run().await,
            FleetCommand::Collect(args) => args.run().await,
        }
    }
}

/// On a honeynode: create (or update) the node's JetStream stream `PEERLAB_<node>`, which
/// stores every local event as `<prefix>.<node>.<subject>` until the collector has it. Runs
/// once and exits (a oneshot unit at boot); idempotent.
///
/// The node's nats-server must have a `FLEET` account that imports the local subjects with
/// the prefix `<prefix>.<node>` and exports its JetStream API to the local account as
/// `$JS.fleet.API` (what the NixOS module generates; see the README).
#[derive(Debug, clap::Args)]
pub struct NodeStreamArgs {
    /// Subject prefix of the fleet.
    #[arg(
        long = "subject-prefix",
        value_name = "PREFIX",
        default_value = "peerlab"
    )]
    pub prefix: String,
    /// This node's name (one token: letters, digits, `-`, `_`).
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// Most bytes the stream keeps while the collector is unreachable (oldest go first).
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 30,
          value_parser = clap::value_parser!(u64).range(1 << 20..))]
    pub max_bytes: u64,
    /// Oldest event kept, in seconds (default: no age limit).
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub max_age_secs: Option<u64>,
    /// JetStream API prefix of the fleet account as the local account sees it.
    #[arg(long, value_name = "PREFIX", default_value = NODE_API_PREFIX)]
    pub api_prefix: String,
    #[command(flatten)]
    pub nats: NatsArgs,
}

impl NodeStreamArgs {
    async fn run(self) -> anyhow::Result<()> {
        let mut options = self.nats.to_options();
        // A oneshot at boot: wait for the local server a while, not forever.
        options.wait.get_or_insert(Duration::from_secs(60));
        let connection = peerlab::bus::connect(&options)
            .await
            .context("connecting to the node's nats-server")?;
        let limits = StreamLimits {
            max_bytes: self.max_bytes,
            max_age: self.max_age_secs.map(Duration::from_secs),
        };
        let info = ensure_node_stream(
            connection.client,
            &self.api_prefix,
            &self.prefix,
            &self.node,
            limits,
        )
        .await
        .with_context(|| format!("setting up {}", node_stream_name(&self.node)))?;
        println!(
            "{}: capturing {}.{}.> ({} messages, {} bytes stored)",
            info.config.name, self.prefix, self.node, info.state.messages, info.state.bytes
        );
        Ok(())
    }
}

/// On the collector: source every node's stream into `PEERLAB_FLEET` and record it into MCAP
/// files, acknowledging only what was flushed to disk. Killed and restarted, it resumes
/// where it stopped and records nothing twice. Files are `fleet-<ms>.mcap` in --output-dir;
/// subjects are `<prefix>.<node>.<subject>`.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Subject prefix of the fleet.
    #[arg(
        long = "subject-prefix",
        value_name = "PREFIX",
        default_value = "peerlab"
    )]
    pub prefix: String,
    /// A honeynode to collect (repeat or comma-separate; its nats-server uses it as its
    /// JetStream domain).
    #[arg(
        long = "node",
        value_name = "NAME",
        required = true,
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,
    /// Directory for the recordings (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,
    /// Start a new file after this many MiB of events.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub rotate_mib: Option<u64>,
    /// Start a new file after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub rotate_secs: Option<u64>,
    /// Size budget: delete the oldest files while all together exceed this many MiB (the
    /// newest is kept).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub keep_mib: Option<u64>,
    /// Most bytes the fleet stream keeps on the collector's server.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 30,
          value_parser = clap::value_parser!(u64).range(1 << 20..))]
    pub stream_max_bytes: u64,
    /// Name of the durable consumer (one per recording collector).
    #[arg(long, value_name = "NAME", default_value = "peerlab-collector")]
    pub durable: String,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub duration: Option<u64>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

impl CollectArgs {
    async fn run(self) -> anyhow::Result<()> {
        use peerlab::record::collect::{collect, CollectOptions};
        let options = CollectOptions {
            output_dir: self.output_dir,
            nodes: self.nodes,
            prefix: self.prefix,
            durable: self.durable,
            stream_limits: StreamLimits {
                max_bytes: self.stream_max_bytes,
                max_age: None,
            },
            rotate_bytes: self.rotate_mib.map(|m| m << 20),
            rotate_after: self.rotate_secs.map(Duration::from_secs),
            keep_bytes: self.keep_mib.map(|m| m << 20),
            duration: self.duration.map(Duration::from_secs),
            arguments: peerlab::secret::command_line(),
        };
        let shutdown = shutdown_on_signals(None);
        let summary = collect(
            &self.nats.to_options(),
            &options,
            Default::default(),
            shutdown,
        )
        .await
        .with_context(|| format!("collecting {FLEET_STREAM}"))?;
        let per_node: Vec<String> = summary
            .per_node
            .iter()
            .map(|(node, n)| format!("{node}={n}"))
            .collect();
        tracing::info!(
            recorded = summary.recorded,
            skipped_duplicates = summary.skipped_duplicates,
            resumed_after = summary.resumed_after,
            per_node = per_node.join(","),
            files = summary.files.len(),
            "collector stopped"
        );
        Ok(())
    }
}
