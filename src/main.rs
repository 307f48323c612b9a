//! The `peerlab` binary: parses arguments and calls the library. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use peerlab::bus::{NatsArgs, NatsConnectArgs, SubjectSchemeArgs};
use peerlab::event::EventKind;
use peerlab::tools::logger::LogFormat;

/// peerlab: a Bitcoin honeynode observer stack (bitcoind -> extractors -> NATS -> tools)
/// with a record-and-replay testbed around it. Speaks peer-observer's wire format.
#[derive(Parser)]
#[command(name = "peerlab", version, propagate_version = true)]
struct Cli {
    /// Log filter (tracing syntax), e.g. `debug` or `peerlab=debug,async_nats=warn`.
    #[arg(
        long,
        global = true,
        env = "PEERLAB_LOG",
        default_value = "info,async_nats=warn"
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Provision this machine: Debian packages and a traceable bitcoind (built once, cached).
    ///
    /// Idempotent: a second run checks and reuses the cache in seconds. As root it installs
    /// missing packages with apt-get; otherwise it names them.
    Setup {
        /// Use this bitcoind instead of building one (checked for the 16 tracepoints).
        #[arg(long, env = "BITCOIND_EXE", value_name = "PATH")]
        bitcoind: Option<PathBuf>,
        /// bitcoin-cli to go with --bitcoind (default: next to it, or on PATH).
        #[arg(long, value_name = "PATH")]
        bitcoin_cli: Option<PathBuf>,
        /// Never run apt-get; fail naming the missing packages instead.
        #[arg(long)]
        no_install: bool,
        /// Discard the cached bitcoind and build it again.
        #[arg(long)]
        rebuild: bool,
        /// Parallel compile jobs (0 = number of CPUs; at most 256).
        #[arg(long, short = 'j', default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
        jobs: u16,
        /// Print `{"bitcoind": ..., "bitcoin_cli": ..., "nats_server": ...}` on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run the live pipeline on the embedded default: a private nats-server and a regtest
    /// bitcoind, exercised with blocks and transactions, watched over the bus.
    Run {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
        duration: Option<u64>,
        /// Seconds between regtest activity rounds (a block and a transaction each).
        #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = whole_seconds())]
        interval: u64,
        /// Honest P2P peers to connect to the node (0-100; the node takes at most ~114
        /// inbound peers by default).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=100))]
        peers: u16,
        /// Also record everything the bus carries into this MCAP file.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        #[command(flatten)]
        subjects: SubjectSchemeArgs,
    },
    /// Extractors that publish a node's events to NATS.
    Extract {
        #[command(subcommand)]
        extractor: Extractor,
    },
    /// Record events from NATS into an MCAP file (schema `event.Event`, protobuf).
    ///
    /// One channel per subject, zstd chunks with indexes and statistics (opens in Foxglove and
    /// the `mcap` CLI). A chunk is flushed every second, so a killed recorder loses at most 1 s.
    Record {
        /// Output file (with rotation: FILE-0001.mcap, FILE-0002.mcap, ...).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        /// Only these subjects (NATS patterns allowed; repeatable). Default: every event subject.
        #[arg(long = "subject", value_name = "SUBJECT")]
        subjects: Vec<String>,
        /// Only these event kinds (netmsg, netconn, mempool, validation, ...), comma-separated.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<EventKind>,
        /// Start a new file after this many MiB of events (1 to 1048576, i.e. 1 TiB).
        #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
        rotate_mib: Option<u64>,
        /// Start a new file after this many seconds.
        #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
        rotate_secs: Option<u64>,
        /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
        #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
        duration: Option<u64>,
        /// Replace peer addresses with keyed pseudonyms (same network type, consistent within
        /// the recording) so the file can be shared.
        #[arg(long)]
        anonymize: bool,
        /// Key for --anonymize (64 hex digits, or any file content); default: a random key.
        #[arg(long, value_name = "FILE", requires = "anonymize")]
        anonymize_key: Option<PathBuf>,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        subjects_scheme: SubjectSchemeArgs,
    },
    /// Publish recorded events to NATS at the recorded pacing (times --speed).
    Replay {
        /// Recordings, replayed one after another.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Pacing factor: 1 = as recorded, 2 = twice as fast, 0 = as fast as possible
        /// (0 to 1000000).
        #[arg(long, default_value_t = 1.0, value_parser = speed_factor)]
        speed: f64,
        /// Skip the first SECONDS of the recording (fractions allowed).
        #[arg(long, value_name = "SECONDS", value_parser = recording_offset)]
        from: Option<f64>,
        /// Stop at SECONDS after the recording's start (fractions allowed).
        #[arg(long, value_name = "SECONDS", value_parser = recording_offset)]
        to: Option<f64>,
        /// Only these subjects (exact names; repeatable).
        #[arg(long = "subject", value_name = "SUBJECT")]
        subjects: Vec<String>,
        /// Only these event kinds, comma-separated.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<EventKind>,
        /// Start over at the end, until Ctrl-C.
        #[arg(long = "loop")]
        repeat: bool,
        /// Shift every Event.timestamp so the replay looks like it happens now.
        #[arg(long)]
        retime: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Summarise a recording: time span, counts and rates per subject and kind, top peers.
    Inspect {
        /// The recording.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print every event of a recording as a JSON line.
    Cat {
        /// The recording.
        file: PathBuf,
    },
    /// Rehearse an attack: play a scenario's adversarial peers against a regtest node while
    /// the full observer stack watches, then judge its expectations.
    ///
    /// Writes DIR/recording.mcap, DIR/verdict.json and DIR/report.html; exits non-zero when
    /// an expectation fails. Scenario format: scenarios/README.md.
    ///
    /// By default everything runs privately (nats-server, regtest bitcoind, eBPF extractor).
    /// With -a and --rpc-url it runs against your own running stack instead: your
    /// extractor's events on your NATS, your regtest node attacked on --p2p.
    Rehearse {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Directory for the recording, verdict and report.
        #[arg(long, value_name = "DIR")]
        report: PathBuf,
        #[command(flatten)]
        existing: ExistingStackArgs,
    },
    /// Tools that consume events from NATS.
    Tools {
        #[command(subcommand)]
        tool: Tool,
    },
}

/// `peerlab rehearse` against a running stack (all optional; -a and --rpc-url go together).
#[derive(Debug, clap::Args)]
struct ExistingStackArgs {
    /// Your NATS server (its extractor's events are observed and recorded); repeat or
    /// comma-separate for a cluster. Needs --rpc-url. Credentials, TLS and --nats-wait as
    /// for every other command.
    #[arg(
        short = 'a',
        long = "nats-address",
        value_name = "URL",
        value_delimiter = ',',
        requires = "rpc_url"
    )]
    nats_address: Option<Vec<String>>,
    /// Your regtest node's RPC URL, e.g. http://127.0.0.1:18443. Needs -a.
    #[arg(long, value_name = "URL", requires = "nats_address")]
    rpc_url: Option<String>,
    /// The node's RPC cookie file (<datadir>/regtest/.cookie).
    #[arg(long, value_name = "FILE", conflicts_with = "rpc_user")]
    rpc_cookie: Option<PathBuf>,
    /// RPC user (with --rpc-password-file or --rpc-password).
    #[arg(long, value_name = "USER", requires = "rpc_password_source")]
    rpc_user: Option<String>,
    /// RPC password (with --rpc-user). Visible to every user in `ps`: prefer
    /// --rpc-password-file.
    #[arg(
        long,
        value_name = "PASSWORD",
        requires = "rpc_user",
        group = "rpc_password_source"
    )]
    rpc_password: Option<String>,
    /// File whose first line is the RPC password (with --rpc-user).
    #[arg(
        long,
        value_name = "FILE",
        requires = "rpc_user",
        group = "rpc_password_source"
    )]
    rpc_password_file: Option<PathBuf>,
    /// Where the scenario's peers connect (default: the RPC host, port 18444).
    #[arg(long, value_name = "HOST:PORT")]
    p2p: Option<String>,
    #[command(flatten)]
    nats: NatsConnectArgs,
    #[command(flatten)]
    subjects_scheme: SubjectSchemeArgs,
}

impl ExistingStackArgs {
    /// `None` for the embedded default.
    fn to_stack(&self) -> Option<peerlab::commands::rehearse::ExistingStackArgs> {
        Some(peerlab::commands::rehearse::ExistingStackArgs {
            nats: self.nats.to_options(self.nats_address.clone()?),
            rpc_url: self.rpc_url.clone()?,
            rpc_cookie: self.rpc_cookie.clone(),
            rpc_user: self.rpc_user.clone(),
            rpc_password: self.rpc_password.clone(),
            rpc_password_file: self.rpc_password_file.clone(),
            p2p: self.p2p.clone(),
            scheme: self.subjects_scheme.scheme(),
        })
    }
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Extractor {
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
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Tool {
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

/// Longest duration any option accepts: ten years, far beyond any run, far below overflow.
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Whole seconds, 1 to [`MAX_SECONDS`].
fn whole_seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=MAX_SECONDS)
}

/// A ring size in MiB: a power of two from `min` to 1024.
fn ring_mib(min: u32) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let mib: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a whole number of MiB"))?;
        if !mib.is_power_of_two() || !(min..=1024).contains(&mib) {
            return Err(format!(
                "{mib} MiB: a ring must be a power of two from {min} to 1024 MiB"
            ));
        }
        Ok(mib)
    }
}

/// A point in a recording, in seconds from its start: finite, 0 to [`MAX_SECONDS`].
fn recording_offset(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !seconds.is_finite() || !(0.0..=MAX_SECONDS as f64).contains(&seconds) {
        return Err(format!(
            "{text}: give a number of seconds from 0 to {MAX_SECONDS}"
        ));
    }
    Ok(seconds)
}

/// A replay pacing factor: 0 (as fast as possible), or 0.001 to 1000000.
fn speed_factor(text: &str) -> Result<f64, String> {
    let speed: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !(speed == 0.0 || (1e-3..=1e6).contains(&speed)) {
        return Err(format!(
            "{text}: the speed is 0 (as fast as possible) or a factor from 0.001 to 1000000"
        ));
    }
    Ok(speed)
}

/// The error and its causes on one line, each cause once: many errors already quote their
/// source in their own message, and printing the chain would repeat it.
fn render_error(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Says once that a secret given as an argument is visible to every user (`ps`, shell
/// history), and which option reads it from a file instead.
fn warn_about_secrets_on_the_command_line() {
    let arguments: Vec<String> = std::env::args().collect();
    for (given, instead) in peerlab::secret::secrets_on_command_line(&arguments) {
        tracing::warn!(
            "{given} given on the command line is visible to every user of this machine (ps, \
             /proc/<pid>/cmdline); use {instead} instead"
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    peerlab::logging::init(&cli.log);
    warn_about_secrets_on_the_command_line();
    let result = match cli.command {
        Command::Setup {
            bitcoind,
            bitcoin_cli,
            no_install,
            rebuild,
            jobs,
            json,
        } => {
            let options = peerlab::node::SetupOptions {
                bitcoind,
                bitcoin_cli,
                no_install,
                rebuild,
                jobs: usize::from(jobs),
            };
            peerlab::commands::setup::run(&options, json)
        }
        Command::Run {
            duration,
            interval,
            peers,
            record,
            subjects,
        } => peerlab::commands::run::run(&peerlab::commands::run::RunOptions {
            duration: duration.map(Duration::from_secs),
            interval: Duration::from_secs(interval.max(1)),
            scheme: subjects.scheme(),
            peers: usize::from(peers),
            record,
        }),
        Command::Extract {
            extractor:
                Extractor::Ebpf {
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
                },
        } => {
            let options = peerlab::commands::extract::ExtractOptions {
                bitcoind: bitcoind_path,
                pid,
                pid_file,
                groups: peerlab::extractor::ebpf::ProbeGroups {
                    net: !no_net,
                    mempool: !no_mempool,
                    validation: !no_validation,
                    utxocache,
                },
                probes,
                rings: peerlab::extractor::ebpf::RingSizes {
                    events: event_ring_mib << 20,
                    messages: message_ring_mib << 20,
                    big_messages: big_message_ring_mib << 20,
                },
                report_period: Duration::from_secs(stats_interval.max(1)),
                duration: duration.map(Duration::from_secs),
            };
            peerlab::commands::extract::run(&options, &nats.to_options(), subjects.scheme())
        }
        Command::Record {
            output,
            subjects,
            kind,
            rotate_mib,
            rotate_secs,
            duration,
            anonymize,
            anonymize_key,
            nats,
            subjects_scheme,
        } => {
            let options = peerlab::record::recorder::RecordOptions {
                output,
                subjects,
                kinds: kind,
                rotate_bytes: rotate_mib.map(|m| m << 20),
                rotate_after: rotate_secs.map(Duration::from_secs),
                duration: duration.map(Duration::from_secs),
                arguments: std::env::args().collect(),
                anonymize: match (anonymize, anonymize_key) {
                    (false, _) => None,
                    (true, Some(file)) => Some(peerlab::record::recorder::AnonymizeKey::File(file)),
                    (true, None) => Some(peerlab::record::recorder::AnonymizeKey::Random),
                },
            };
            peerlab::commands::record::run(&options, &nats.to_options(), subjects_scheme.scheme())
        }
        Command::Replay {
            files,
            speed,
            from,
            to,
            subjects,
            kind,
            repeat,
            retime,
            nats,
        } => {
            let options = peerlab::record::replayer::ReplayOptions {
                files,
                speed,
                from: from.map(Duration::from_secs_f64),
                to: to.map(Duration::from_secs_f64),
                subjects,
                kinds: kind,
                repeat,
                retime,
            };
            peerlab::commands::record::replay(&options, &nats.to_options())
        }
        Command::Rehearse {
            scenario,
            report,
            existing,
        } => peerlab::commands::rehearse::run(&scenario, &report, existing.to_stack()),
        Command::Inspect { file, json } => peerlab::record::inspect::inspect(&file, json),
        Command::Cat { file } => peerlab::record::inspect::cat(&file),
        Command::Tools {
            tool:
                Tool::Logger {
                    nats,
                    subjects,
                    json,
                    kind,
                    count,
                },
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", render_error(&error));
            ExitCode::FAILURE
        }
    }
}
