//! `peerlab extract ...`: the extractors.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use peerlab::bus::Publisher;
use peerlab::event::counters::ExtractorCounters;
use peerlab::extractors::ebpf::{
    EbpfConfig, EbpfExtractor, ProbeGroups, ProbeId, RingSizes, Target,
};
use peerlab::extractors::ipc::{IpcConfig, IpcExtractor};
use peerlab::extractors::log::follow::Start;
use peerlab::extractors::log::{LogConfig, LogExtractor};
use peerlab::extractors::p2p::{P2pConfig, P2pExtractor, P2pNetwork};
use peerlab::extractors::rpc::{RpcConfig, RpcExtractor, RpcMethod};
use peerlab::extractors::Extractor;
use peerlab::node::RpcAuth;

use super::nats::{NatsArgs, SubjectSchemeArgs};
use super::signals::shutdown_on_signals;
use super::spool::SpoolArgs;
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
        /// Pending ring bytes that wake the extractor, in KiB (it also drains every 50 ms).
        /// Larger: fewer wake-ups and less CPU per event under a flood, a little more latency.
        /// At most half the smallest ring.
        #[arg(long, default_value_t = peerlab::extractors::ebpf::DEFAULT_WAKEUP_BYTES >> 10, value_parser = clap::value_parser!(u64).range(4..=524_288))]
        wakeup_kib: u64,
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
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Be a peer the node dials and publish what it learns (subject `p2p-extractor`).
    ///
    /// Listens for the node's connection (start bitcoind with -addnode=<this address>, or
    /// `bitcoin-cli addnode <address> onetry`), completes the v1 handshake, pings every
    /// --ping-interval with the time as nonce and publishes the ping durations (the node's
    /// message-processing delay), and the addr/addrv2, inv and feefilter announcements the
    /// node sends. peer-observer's p2p-extractor.
    P2p {
        /// Where to listen for the node (loopback by default).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9333")]
        p2p_address: std::net::SocketAddr,
        /// The node's network: mainnet, testnet3, testnet4, signet or regtest (the message
        /// magic).
        #[arg(long, value_name = "NETWORK", default_value = "mainnet")]
        p2p_network: P2pNetwork,
        /// Seconds between pings.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = whole_seconds())]
        ping_interval: u64,
        /// Do not ping (no ping_duration events).
        #[arg(long)]
        disable_ping: bool,
        /// Do not publish addr/addrv2 announcements.
        #[arg(long)]
        disable_addrv2: bool,
        /// Do not publish inv announcements.
        #[arg(long)]
        disable_invs: bool,
        /// Do not publish feefilter announcements.
        #[arg(long)]
        disable_feefilter: bool,
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
        #[command(flatten)]
        spool: SpoolArgs,
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
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Poll a node's Cap'n Proto IPC interface for the chain tip and publish it as an `ipc`
    /// event (peer-observer's ipc-extractor).
    ///
    /// The node must be `bitcoin-node` (Bitcoin Core built with IPC; `peerlab setup` builds
    /// one) started with -ipcbind=unix, which creates node.sock in the network datadir (e.g.
    /// ~/.bitcoin/node.sock, <datadir>/regtest/node.sock); this user needs read and write
    /// access to it. A socket that cannot be reached at start is an error; a connection lost
    /// later is retried every second (counted), so a restarted node is followed.
    Ipc {
        /// The node's IPC socket.
        #[arg(long, short = 'i', value_name = "PATH")]
        ipc_socket_path: PathBuf,
        /// Seconds between getTip calls.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = whole_seconds())]
        query_interval: u64,
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
        #[command(flatten)]
        spool: SpoolArgs,
    },
    /// Poll a node's JSON-RPC and publish each reply as an `rpc` event (peer-observer's
    /// rpc-extractor).
    ///
    /// Every --query-interval it calls getpeerinfo, getmempoolinfo, uptime, getnettotals,
    /// getmemoryinfo, getaddrmaninfo, getnetworkinfo, getorphantxs and estimatesmartfee
    /// (targets 1, 6, 144 x economical, conservative); every --query-interval-less-frequent
    /// getchaintxstats, getblockchaininfo and getrawaddrman. Both run at once when connected.
    /// A node that is not up yet (or refuses the credentials) is retried, never fatal; a
    /// failed call is logged and counted, and the other calls still run. Needs credentials:
    /// --rpc-cookie-file, or --rpc-user with --rpc-password-file.
    Rpc {
        /// The node's RPC address, HOST:PORT (`http://` is prepended when no scheme is
        /// given).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8332")]
        rpc_host: String,
        /// bitcoind's RPC cookie file (`<datadir>/.cookie`, re-read after a node restart).
        /// Wins over --rpc-user when both are given.
        #[arg(long, value_name = "FILE")]
        rpc_cookie_file: Option<PathBuf>,
        /// RPC user (`-rpcuser` or an `-rpcauth` entry); needs --rpc-password-file or
        /// --rpc-password.
        #[arg(long, value_name = "USER")]
        rpc_user: Option<String>,
        /// RPC password (with --rpc-user). Visible to every user in `ps`: prefer
        /// --rpc-password-file.
        #[arg(
            long,
            value_name = "PASSWORD",
            requires = "rpc_user",
            conflicts_with = "rpc_password_file"
        )]
        rpc_password: Option<String>,
        /// File whose first line is the RPC password (with --rpc-user).
        #[arg(long, value_name = "FILE", requires = "rpc_user")]
        rpc_password_file: Option<PathBuf>,
        /// Seconds between the frequent calls (getpeerinfo ... estimatesmartfee).
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = whole_seconds())]
        query_interval: u64,
        /// Seconds between the less frequent calls (getchaintxstats, getblockchaininfo,
        /// getrawaddrman).
        #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = whole_seconds())]
        query_interval_less_frequent: u64,
        #[command(flatten)]
        disable: RpcDisableArgs,
        /// Seconds between counter snapshots (calls, errors per method) on the stats subject.
        #[arg(long, default_value_t = 10, value_parser = whole_seconds())]
        stats_interval: u64,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_parser = whole_seconds())]
        duration: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
        #[command(flatten)]
        spool: SpoolArgs,
    },
}

/// One `--disable-<rpc>` flag per RPC the extractor polls (peer-observer's names). With all
/// of them set it warns and idles.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcDisableArgs {
    /// Do not call getpeerinfo (no `peer_infos` events).
    #[arg(long)]
    disable_getpeerinfo: bool,
    /// Do not call getmempoolinfo (no `mempool_info` events).
    #[arg(long)]
    disable_getmempoolinfo: bool,
    /// Do not call uptime (no `uptime` events).
    #[arg(long)]
    disable_uptime: bool,
    /// Do not call getnettotals (no `net_totals` events).
    #[arg(long)]
    disable_getnettotals: bool,
    /// Do not call getmemoryinfo (no `memory_info` events).
    #[arg(long)]
    disable_getmemoryinfo: bool,
    /// Do not call getaddrmaninfo (no `addrman_info` events).
    #[arg(long)]
    disable_getaddrmaninfo: bool,
    /// Do not call getchaintxstats (no `chain_tx_stats` events).
    #[arg(long)]
    disable_getchaintxstats: bool,
    /// Do not call getnetworkinfo (no `network_info` events).
    #[arg(long)]
    disable_getnetworkinfo: bool,
    /// Do not call getblockchaininfo (no `blockchain_info` events).
    #[arg(long)]
    disable_getblockchaininfo: bool,
    /// Do not call getorphantxs (no `orphan_txs` events; the RPC needs Core v29 or later).
    #[arg(long)]
    disable_getorphantxs: bool,
    /// Do not call getrawaddrman (no `addrman` events, which can be megabytes).
    #[arg(long)]
    disable_getrawaddrman: bool,
    /// Do not call estimatesmartfee (no `estimate_smart_fee` events).
    #[arg(long)]
    disable_estimatesmartfee: bool,
}

impl RpcDisableArgs {
    /// The disabled methods.
    fn disabled(&self) -> BTreeSet<RpcMethod> {
        let flags = [
            (self.disable_getpeerinfo, RpcMethod::GetPeerInfo),
            (self.disable_getmempoolinfo, RpcMethod::GetMempoolInfo),
            (self.disable_uptime, RpcMethod::Uptime),
            (self.disable_getnettotals, RpcMethod::GetNetTotals),
            (self.disable_getmemoryinfo, RpcMethod::GetMemoryInfo),
            (self.disable_getaddrmaninfo, RpcMethod::GetAddrmanInfo),
            (self.disable_getchaintxstats, RpcMethod::GetChainTxStats),
            (self.disable_getnetworkinfo, RpcMethod::GetNetworkInfo),
            (self.disable_getblockchaininfo, RpcMethod::GetBlockchainInfo),
            (self.disable_getorphantxs, RpcMethod::GetOrphanTxs),
            (self.disable_getrawaddrman, RpcMethod::GetRawAddrman),
            (self.disable_estimatesmartfee, RpcMethod::EstimateSmartFee),
        ];
        flags
            .into_iter()
            .filter_map(|(off, method)| off.then_some(method))
            .collect()
    }
}

/// The RPC credentials from the flags: the cookie wins; a user needs a password.
fn rpc_auth(
    cookie_file: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
) -> anyhow::Result<RpcAuth> {
    match (cookie_file, user) {
        (Some(cookie), user) => {
            if user.is_some() {
                tracing::info!(
                    "both --rpc-cookie-file and --rpc-user given: using the cookie file"
                );
            }
            Ok(RpcAuth::Cookie(cookie))
        }
        (None, Some(user)) => {
            let password = match (password, password_file) {
                (Some(password), _) => password,
                (None, Some(file)) => peerlab::secret::read_secret_file(&file, "RPC password")
                    .map_err(anyhow::Error::msg)?,
                (None, None) => bail!(
                    "--rpc-user needs a password: give --rpc-password-file FILE (or --rpc-password)"
                ),
            };
            Ok(RpcAuth::UserPass(user, password))
        }
        (None, None) => bail!(
            "the RPC extractor needs credentials: --rpc-cookie-file FILE (bitcoind's .cookie), \
             or --rpc-user USER with --rpc-password-file FILE"
        ),
    }
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
                wakeup_kib,
                stats_interval,
                duration,
                nats,
                subjects,
                spool,
            } => {
                let smallest_ring_kib = u64::from(event_ring_mib.min(message_ring_mib)) << 10;
                if wakeup_kib > smallest_ring_kib / 2 {
                    bail!(
                        "--wakeup-kib {wakeup_kib}: at most half the smallest ring ({} KiB); \
                         lower it or raise --event-ring-mib / --message-ring-mib",
                        smallest_ring_kib / 2
                    );
                }
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
                    wakeup_bytes: wakeup_kib << 10,
                    report_period: Duration::from_secs(stats_interval.max(1)),
                    ..EbpfConfig::new(&bitcoind, target)
                };
                run_extractor::<EbpfExtractor>(config, &nats, &subjects, &spool, duration)
                    .await
                    .map(|_| ())
            }
            ExtractorCommand::Rpc {
                rpc_host,
                rpc_cookie_file,
                rpc_user,
                rpc_password,
                rpc_password_file,
                query_interval,
                query_interval_less_frequent,
                disable,
                stats_interval,
                duration,
                nats,
                subjects,
                spool,
            } => {
                let auth = rpc_auth(rpc_cookie_file, rpc_user, rpc_password, rpc_password_file)?;
                let config = RpcConfig {
                    query_interval: Duration::from_secs(query_interval),
                    query_interval_less_frequent: Duration::from_secs(query_interval_less_frequent),
                    disabled: disable.disabled(),
                    report_period: Duration::from_secs(stats_interval),
                    ..RpcConfig::new(RpcConfig::url_from_host(&rpc_host), auth)
                };
                let counters =
                    run_extractor::<RpcExtractor>(config, &nats, &subjects, &spool, duration)
                        .await?;
                tracing::info!(
                    calls = ?counters.rpc_calls,
                    errors = ?counters.rpc_errors,
                    connect_errors = counters.rpc_connect_errors,
                    "RPC calls made"
                );
                Ok(())
            }
            ExtractorCommand::P2p {
                p2p_address,
                p2p_network,
                ping_interval,
                disable_ping,
                disable_addrv2,
                disable_invs,
                disable_feefilter,
                stats_interval,
                duration,
                nats,
                subjects,
                spool,
            } => {
                let config = P2pConfig {
                    listen: p2p_address,
                    ping_interval: Duration::from_secs(ping_interval.max(1)),
                    ping: !disable_ping,
                    addrv2: !disable_addrv2,
                    invs: !disable_invs,
                    feefilter: !disable_feefilter,
                    report_period: Duration::from_secs(stats_interval.max(1)),
                    ..P2pConfig::new(p2p_network)
                };
                let counters =
                    run_extractor::<P2pExtractor>(config, &nats, &subjects, &spool, duration)
                        .await?;
                tracing::info!(connections = counters.p2p_connections, "node connections");
                Ok(())
            }
            ExtractorCommand::Log {
                debug_log,
                from_start,
                stats_interval,
                duration,
                nats,
                subjects,
                spool,
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
                let counters =
                    run_extractor::<LogExtractor>(config, &nats, &subjects, &spool, duration)
                        .await?;
                tracing::info!(
                    unparsed_lines = counters.unparsed_lines,
                    truncated_lines = counters.truncated_lines,
                    rotations = counters.rotations,
                    read_errors = counters.read_errors,
                    "log lines"
                );
                Ok(())
            }
            ExtractorCommand::Ipc {
                ipc_socket_path,
                query_interval,
                stats_interval,
                duration,
                nats,
                subjects,
                spool,
            } => {
                let config = IpcConfig {
                    query_interval: Duration::from_secs(query_interval.max(1)),
                    report_period: Duration::from_secs(stats_interval.max(1)),
                    ..IpcConfig::new(ipc_socket_path)
                };
                let counters =
                    run_extractor::<IpcExtractor>(config, &nats, &subjects, &spool, duration)
                        .await?;
                tracing::info!(
                    fetch_errors = counters.ipc_fetch_errors,
                    connect_errors = counters.ipc_connect_errors,
                    "getTip calls"
                );
                Ok(())
            }
        }
    }
}

/// Runs one extractor (any member of the contract) until Ctrl-C, SIGTERM or `duration`
/// seconds, then logs its final counters and the publisher's, and returns its counters.
async fn run_extractor<E: Extractor>(
    config: E::Config,
    nats: &NatsArgs,
    subjects: &SubjectSchemeArgs,
    spool: &SpoolArgs,
    duration: Option<u64>,
) -> anyhow::Result<ExtractorCounters> {
    let shutdown = shutdown_on_signals(duration.map(Duration::from_secs));
    let (nats, scheme) = (&nats.to_options(), subjects.scheme());
    // A signal or --duration also ends the wait for NATS (which retries forever by default).
    let mut publisher_config = peerlab::extractors::publisher_config();
    publisher_config.stats_subject =
        Some(scheme.stats_subject(&peerlab::extractors::publisher_component(E::COMPONENT)));
    publisher_config.spool = spool.config(E::COMPONENT);
    let publisher = tokio::select! {
        connected = Publisher::connect(nats, scheme, publisher_config) => {
            Arc::new(connected.context("connecting to NATS")?)
        }
        _ = shutdown.cancelled() => {
            tracing::warn!("stopped before a NATS server answered; {} not started", E::COMPONENT);
            return Ok(ExtractorCounters::default());
        }
    };
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
        left_in_spool = bus.spool_events,
        "{} stopped",
        E::COMPONENT
    );
    Ok(counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> ExtractorCommand {
        let cli = crate::cli::Cli::try_parse_from(
            ["peerlab", "extract", "rpc"].iter().chain(args).copied(),
        )
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            crate::cli::Command::Extract(extract) => extract.extractor,
            _ => panic!("not extract"),
        }
    }

    #[test]
    fn each_disable_flag_turns_off_its_own_rpc() {
        for method in RpcMethod::ALL {
            let flag = method.disable_flag();
            let ExtractorCommand::Rpc { disable, .. } = parse(&[&flag]) else {
                panic!("not rpc");
            };
            assert_eq!(disable.disabled(), BTreeSet::from([method]), "{flag}");
        }
        let ExtractorCommand::Rpc {
            disable,
            rpc_host,
            query_interval,
            query_interval_less_frequent,
            ..
        } = parse(&[])
        else {
            panic!("not rpc");
        };
        assert!(disable.disabled().is_empty());
        assert_eq!(rpc_host, "127.0.0.1:8332");
        assert_eq!((query_interval, query_interval_less_frequent), (10, 120));
    }

    #[test]
    fn credentials_cookie_wins_and_a_user_needs_a_password() {
        let cookie = rpc_auth(Some("c".into()), Some("u".into()), None, None).unwrap();
        assert_eq!(cookie, RpcAuth::Cookie("c".into()));
        let user = rpc_auth(None, Some("u".into()), Some("p".into()), None).unwrap();
        assert_eq!(user, RpcAuth::UserPass("u".into(), "p".into()));
        let e = rpc_auth(None, Some("u".into()), None, None).unwrap_err();
        assert!(e.to_string().contains("--rpc-password-file"), "{e}");
        let e = rpc_auth(None, None, None, None).unwrap_err();
        assert!(e.to_string().contains("--rpc-cookie-file"), "{e}");
        let missing = rpc_auth(None, Some("u".into()), None, Some("/nonexistent/pw".into()));
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("RPC password file"));
    }
}
