//! `peerlab status`: is a honeynode, or every node behind a fleet collector, healthy?

use std::time::Duration;

use anyhow::{bail, Context as _};
use peerlab::bus::{SubjectScheme, Subscriber};
use peerlab::tools::status::{
    fetch_leafz, judge, render_text, subscriptions, LinkState, StatusTool, STATS_PERIOD,
};
use peerlab::tools::Tool as _;

use super::nats::{NatsArgs, SubjectSchemeArgs};

/// How long NATS may take to answer when --nats-wait is not given: a health check must end.
const DEFAULT_NATS_WAIT: Duration = Duration::from_secs(5);

/// How long the monitoring endpoint may take to answer.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);

/// Check that a honeynode or a fleet collector is healthy.
///
/// Listens to NATS for a window (event subjects and peerlab's counter subjects) and reports
/// per node: which extractors publish (from their counter snapshots and from the events
/// seen), their published and dropped counters and their publishers' offered, sent and
/// dropped events, each subject's last message and rate, every drop counter above zero, and
/// the leafnode links when --monitor is given. A node is healthy when counters and events
/// arrived in the window and no drop counter grew during it.
///
/// On a honeynode (flat subjects) everything is one node, `local`. At a collector give
/// `--subject-prefix P`: subjects are `P.<node>.<subject>` and every node is reported
/// (`--node` defaults to `*` here; name one to check only it).
///
/// Exit status: 0 when every node is healthy; 1 when any node is unhealthy, an expected node
/// is missing, the monitoring endpoint cannot be read, or NATS cannot be reached (within
/// --nats-wait seconds; 5 when it is 0 or not given).
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// How long to listen, in seconds; longer than the 10 s period of the counter snapshots,
    /// so every running component sends at least one.
    #[arg(long, value_name = "SECONDS", default_value_t = 12, value_parser = super::values::whole_seconds())]
    pub window: u64,
    /// nats-server's monitoring address (e.g. http://127.0.0.1:8222): its /leafz tells the
    /// leafnode links. Without it the links are shown as unknown.
    #[arg(long, value_name = "URL")]
    pub monitor: Option<String>,
    /// Nodes that must be heard from (comma-separated); a missing one is unhealthy.
    #[arg(
        long,
        value_name = "NODE,...",
        value_delimiter = ',',
        requires = "prefix"
    )]
    pub expect_nodes: Vec<String>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub subjects: SubjectSchemeArgs,
}

impl StatusArgs {
    /// Listens for the window, prints the report, and fails when anything is unhealthy.
    pub async fn run(self) -> anyhow::Result<()> {
        let scheme = match (&self.subjects.prefix, &self.subjects.node) {
            // A status check at a collector is about every node, not this host's.
            (Some(prefix), None) => SubjectScheme::Prefixed {
                prefix: prefix.clone(),
                node: "*".to_string(),
            },
            _ => self.subjects.scheme(),
        };
        let window = Duration::from_secs(self.window);
        if window <= STATS_PERIOD {
            tracing::warn!(
                "a {} s window may end before a healthy component publishes its counters \
                 (every {} s)",
                window.as_secs(),
                STATS_PERIOD.as_secs()
            );
        }
        let mut options = self.nats.to_options();
        options.wait.get_or_insert(DEFAULT_NATS_WAIT);
        options.name = "peerlab-status".to_string();
        let shutdown = super::signals::shutdown_on_signals(None);
        let patterns = subscriptions(&scheme);
        let subscriber = tokio::select! {
            connected = Subscriber::connect(&options, scheme.clone(), &patterns) => connected?,
            _ = shutdown.cancelled() => bail!("interrupted before NATS answered"),
        };
        tracing::info!(
            subjects = %patterns.join(", "),
            window_secs = window.as_secs(),
            "status listening"
        );
        let seen = StatusTool::new(scheme.clone(), window)
            .run(subscriber, shutdown)
            .await?;
        let links = match &self.monitor {
            None => LinkState::Unknown,
            Some(url) => {
                let shown = peerlab::secret::redact_url(url);
                match fetch_leafz(url, MONITOR_TIMEOUT).await {
                    Ok(leafz) => LinkState::Fetched { url: shown, leafz },
                    Err(e) => LinkState::Unavailable {
                        url: shown,
                        reason: e.to_string(),
                    },
                }
            }
        };
        let report = judge(&seen, &scheme, &self.expect_nodes, links);
        if self.json {
            let json =
                serde_json::to_string_pretty(&report).context("cannot serialize the report")?;
            println!("{json}");
        } else {
            print!("{}", render_text(&report));
        }
        if !report.healthy {
            let unhealthy = report.nodes.iter().filter(|n| !n.healthy).count();
            bail!(
                "unhealthy: {unhealthy} of {} node(s){}",
                report.nodes.len(),
                if report.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {}", report.problems.join("; "))
                }
            );
        }
        Ok(())
    }
}
