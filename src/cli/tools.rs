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
    /// Flag spamming peers with peer-observer's heuristics: ping spammers, addr spammers,
    /// peers whose address entries overflow the token bucket, and the disconnection of a
    /// flagged peer.
    ///
    /// Reads the P2P message and connection events (`netmsg`, `netconn`, through one
    /// subscription so their order is kept) and judges them by their own timestamps. Each alert is logged in peer-observer's line format and
    /// published as JSON on `peerlab.alerts`, where `peerlab tools metrics` counts them.
    Alerts {
        /// Inbound pings in the window above which a peer is flagged.
        #[arg(long, default_value_t = 3)]
        ping_threshold: usize,
        /// The ping window, in seconds.
        #[arg(long, default_value_t = 120)]
        ping_window_secs: u64,
        /// Inbound addr/addrv2 messages in the window above which a peer is flagged.
        #[arg(long, default_value_t = 6)]
        addr_threshold: usize,
        /// The addr window, in seconds.
        #[arg(long, default_value_t = 60)]
        addr_window_secs: u64,
        /// Tokens a peer's address bucket starts with (at least 1).
        #[arg(long, default_value_t = 1.0, value_parser = at_least_one)]
        addr_entries_initial_tokens: f64,
        /// The address bucket's capacity (at least 1).
        #[arg(long, default_value_t = 1000.0, value_parser = at_least_one)]
        addr_entries_bucket_capacity: f64,
        /// Tokens added per second (finite, at least 0).
        #[arg(long, default_value_t = 0.1, value_parser = non_negative)]
        addr_entries_rate_per_sec: f64,
        /// Rate-limited entries above which a peer is flagged.
        #[arg(long, default_value_t = 20)]
        addr_entries_threshold: u64,
        /// A peer not seen for this many seconds is forgotten.
        #[arg(long, default_value_t = 300)]
        peer_stale_secs: u64,
        /// Never judge the peer at this address (repeatable). Give it the P2P extractor's
        /// listen address (`peerlab extract p2p --p2p-address`): the node dials it, reports
        /// that connection under this address, and its regular pings would otherwise flag
        /// it as a ping spammer. `peerlab run` and `peerlab observe --alerts` set it for
        /// their own P2P extractor.
        #[arg(long, value_name = "HOST:PORT")]
        ignore_peer: Vec<std::net::SocketAddr>,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = super::values::whole_seconds())]
        duration: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
    },
    /// Serve peer-observer's websocket feed and peerlab's live pages on one address.
    ///
    /// A websocket client (any path) receives nothing until it sends a subscription frame,
    /// e.g. {"ebpf":{"messages":true,"connections":true},"rpc":true,"p2p":true,"log":true}
    /// (peerlab also takes "ipc":true); then every event of those kinds as the JSON
    /// peer-observer's pages read. A frame that is empty, over 511 bytes or not JSON
    /// disconnects that client. Open http://ADDRESS/ in a browser for the pages.
    Websocket {
        /// Where to serve (loopback by default).
        #[arg(
            short = 'w',
            long,
            value_name = "HOST:PORT",
            default_value = "127.0.0.1:47482"
        )]
        websocket_address: std::net::SocketAddr,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = super::values::whole_seconds())]
        duration: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
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
            Tool::Alerts {
                ping_threshold,
                ping_window_secs,
                addr_threshold,
                addr_window_secs,
                addr_entries_initial_tokens,
                addr_entries_bucket_capacity,
                addr_entries_rate_per_sec,
                addr_entries_threshold,
                peer_stale_secs,
                ignore_peer,
                duration,
                nats,
                subjects,
            } => {
                use peerlab::bus::Publisher;
                use peerlab::tools::alerts::{AlertConfig, AlertsTool};
                let config = AlertConfig {
                    ping_threshold,
                    ping_window_secs,
                    addr_threshold,
                    addr_window_secs,
                    addr_entries_initial_tokens,
                    addr_entries_bucket_capacity,
                    addr_entries_rate_per_sec,
                    addr_entries_threshold,
                    peer_stale_secs: peer_stale_secs.max(1),
                    ignore_peers: ignore_peer,
                };
                let shutdown = super::signals::shutdown_on_signals(
                    duration.map(std::time::Duration::from_secs),
                );
                let scheme = subjects.scheme();
                let options = nats.to_options();
                // One subscription to every event subject (the others are skipped): two, one
                // per subject, would let a `closed` overtake the messages before it, since
                // NATS keeps order only within a subscription.
                let patterns = [scheme.wildcard()];
                let connect = async {
                    let publisher = Publisher::connect(
                        &options,
                        scheme.clone(),
                        peerlab::bus::PublisherConfig::default(),
                    )
                    .await?;
                    let subscriber =
                        Subscriber::connect(&options, scheme.clone(), &patterns).await?;
                    Ok::<_, peerlab::bus::BusError>((publisher, subscriber))
                };
                let (publisher, subscriber) = tokio::select! {
                    connected = connect => connected?,
                    _ = shutdown.cancelled() => return Ok(()),
                };
                let publisher = std::sync::Arc::new(publisher);
                tracing::info!(subject = %scheme.alerts_subject(), "alerts tool subscribed; reading netmsg and netconn");
                let summary = AlertsTool::new(config, Some(publisher.clone()))
                    .run(subscriber, shutdown)
                    .await?;
                publisher.close(std::time::Duration::from_secs(5)).await;
                tracing::info!(
                    events = summary.events,
                    undecodable = summary.undecodable,
                    alerts = ?summary.alerts,
                    publish_dropped = summary.publish_dropped,
                    "alerts tool stopped"
                );
                Ok(())
            }
            Tool::Websocket {
                websocket_address,
                duration,
                nats,
                subjects,
            } => {
                use peerlab::tools::websocket::WebsocketTool;
                let tool = WebsocketTool::bind(websocket_address).await?;
                let shutdown = super::signals::shutdown_on_signals(
                    duration.map(std::time::Duration::from_secs),
                );
                let scheme = subjects.scheme();
                let options = nats.to_options();
                let subscriber = tokio::select! {
                    connected = Subscriber::connect(&options, scheme, &[]) => connected?,
                    _ = shutdown.cancelled() => return Ok(()),
                };
                let address = tool.local_addr()?;
                println!("serving the websocket feed on ws://{address}/ and the pages on http://{address}/");
                let summary = tool.run(subscriber, shutdown).await?;
                tracing::info!(
                    messages = summary.messages,
                    clients = summary.clients,
                    sent = summary.sent,
                    lagged = summary.lagged,
                    "websocket tool stopped"
                );
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
                let patterns = [
                    scheme.wildcard(),
                    scheme.stats_wildcard(),
                    scheme.alerts_subject(),
                ];
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

fn at_least_one(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 => Ok(v),
        _ => Err(format!("{text:?} must be a number of at least 1")),
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?} must be a finite number of at least 0")),
    }
}
