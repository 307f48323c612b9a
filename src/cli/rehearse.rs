//! `peerlab rehearse`.

use std::path::PathBuf;

use super::nats::{NatsConnectArgs, SubjectSchemeArgs};

/// Rehearse an attack: play a scenario's adversarial peers against a regtest node while
/// the full observer stack watches, then judge its expectations.
///
/// Writes DIR/recording.mcap, DIR/verdict.json and DIR/report.html; exits non-zero when
/// an expectation fails. Scenario format: scenarios/README.md.
///
/// By default everything runs privately (nats-server, regtest bitcoind, eBPF extractor).
/// With -a and --rpc-url it runs against your own running stack instead: your
/// extractor's events on your NATS, your regtest node attacked on --p2p.
#[derive(Debug, clap::Args)]
pub struct RehearseArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Directory for the recording, verdict and report.
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
    #[command(flatten)]
    pub existing: ExistingStackArgs,
}

impl RehearseArgs {
    /// Plays the scenario and judges it.
    pub fn run(self) -> anyhow::Result<()> {
        peerlab::commands::rehearse::run(&self.scenario, &self.report, self.existing.to_stack())
    }
}

/// `peerlab rehearse` against a running stack (all optional; -a and --rpc-url go together).
#[derive(Debug, clap::Args)]
pub struct ExistingStackArgs {
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
