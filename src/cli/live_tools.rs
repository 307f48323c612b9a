//! The tools `run` and `observe` can start beside the extractors (`--metrics-address`,
//! `--websocket-address`, `--alerts`), each on its own subscription to the same NATS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use peerlab::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme, Subscriber};
use peerlab::shutdown::Shutdown;
use peerlab::tools::alerts::{AlertConfig, AlertsTool};
use peerlab::tools::metrics::iplists::IpLists;
use peerlab::tools::metrics::{MetricsEngine, MetricsTool};
use peerlab::tools::websocket::WebsocketTool;
use peerlab::tools::Tool as _;
use tokio::task::JoinHandle;

/// Tools to run beside the extractors (none by default).
#[derive(Debug, Clone, clap::Args)]
pub struct LiveToolArgs {
    /// Also serve peer-observer's Prometheus metrics here (e.g. 127.0.0.1:8282).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_address: Option<SocketAddr>,
    /// Also serve the websocket feed and the live pages here (e.g. 127.0.0.1:47482).
    #[arg(long, value_name = "HOST:PORT")]
    pub websocket_address: Option<SocketAddr>,
    /// Also run the alerts heuristics (alerts logged and published on peerlab.alerts).
    #[arg(long)]
    pub alerts: bool,
}

/// The running tools.
pub struct LiveTools {
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    alerts_publisher: Option<Arc<Publisher>>,
}

impl LiveToolArgs {
    /// Binds and subscribes every requested tool (errors here), then runs each in a task
    /// until `stop` fires. `own_peers`: the observer's P2P extractor (see
    /// `ObserverConfig::reserve_p2p_port`), which the alerts do not judge.
    pub async fn start(
        &self,
        nats: &NatsOptions,
        scheme: &SubjectScheme,
        stop: &Shutdown,
        own_peers: Vec<SocketAddr>,
    ) -> anyhow::Result<LiveTools> {
        let mut tools = LiveTools {
            tasks: Vec::new(),
            alerts_publisher: None,
        };
        if let Some(address) = self.metrics_address {
            let tool = MetricsTool::bind(address, MetricsEngine::new(IpLists::default())?).await?;
            let patterns = [
                scheme.wildcard(),
                scheme.stats_wildcard(),
                scheme.alerts_subject(),
            ];
            let subscriber = Subscriber::connect(nats, scheme.clone(), &patterns).await?;
            println!("metrics: http://{}/metrics", tool.local_addr()?);
            let stop = stop.clone();
            tools.tasks.push((
                "metrics",
                tokio::spawn(async move { Ok(tool.run(subscriber, stop).await.map(|_| ())?) }),
            ));
        }
        if let Some(address) = self.websocket_address {
            let tool = WebsocketTool::bind(address).await?;
            let subscriber = Subscriber::connect(nats, scheme.clone(), &[]).await?;
            let bound = tool.local_addr()?;
            println!("websocket feed: ws://{bound}/  live pages: http://{bound}/");
            let stop = stop.clone();
            tools.tasks.push((
                "websocket",
                tokio::spawn(async move { Ok(tool.run(subscriber, stop).await.map(|_| ())?) }),
            ));
        }
        if self.alerts {
            let publisher = Arc::new(
                Publisher::connect(nats, scheme.clone(), PublisherConfig::default()).await?,
            );
            // One subscription keeps message and connection events in order.
            let subscriber = Subscriber::connect(nats, scheme.clone(), &[]).await?;
            let config = AlertConfig {
                ignore_peers: own_peers,
                ..AlertConfig::default()
            };
            let tool = AlertsTool::new(config, Some(publisher.clone()));
            println!(
                "alerts: logged and published on {}",
                scheme.alerts_subject()
            );
            let stop = stop.clone();
            tools.tasks.push((
                "alerts",
                tokio::spawn(async move { Ok(tool.run(subscriber, stop).await.map(|_| ())?) }),
            ));
            tools.alerts_publisher = Some(publisher);
        }
        Ok(tools)
    }
}

impl LiveTools {
    /// Waits for every tool (they stop when the `stop` given to `start` fires).
    pub async fn finish(self) -> anyhow::Result<()> {
        for (name, task) in self.tasks {
            task.await
                .with_context(|| format!("{name} tool task"))?
                .with_context(|| format!("{name} tool"))?;
        }
        if let Some(publisher) = self.alerts_publisher {
            publisher.close(Duration::from_secs(5)).await;
        }
        Ok(())
    }
}
