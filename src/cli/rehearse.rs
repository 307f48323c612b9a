//! `peerlab rehearse`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use peerlab::node::{setup, RpcAuth, SetupOptions};
use peerlab::rehearse::{
    check_extractors, rehearse, ExistingStack, RehearseError, StackSpec, Verdict,
};
use peerlab::scenario::Scenario;
use peerlab::stack::Extractors;

use super::extractors::{flag, ExtractorSwitches};
use super::nats::{NatsConnectArgs, SubjectSchemeArgs};
use super::signals::shutdown_on_signals;

/// Regtest's default P2P port, used when only the RPC URL is given.
const REGTEST_P2P_PORT: u16 = 18444;

/// Rehearse an attack: play a scenario's adversarial peers against a regtest node while
/// the full observer stack watches, then judge its expectations.
///
/// Writes DIR/recording.mcap, DIR/verdict.json and DIR/report.html; exits non-zero when
/// an expectation fails. Scenario format: scenarios/README.md.
///
/// By default everything runs privately (nats-server, a regtest node, the eBPF, log, RPC,
/// P2P and IPC extractors; --no-<x>-extractor turns one off). With -a and --rpc-url it runs
/// against your own running stack instead: your extractors' events on your NATS, your
/// regtest node attacked on --p2p.
#[derive(Debug, clap::Args)]
pub struct RehearseArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Directory for the recording, verdict and report.
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
    #[command(flatten)]
    pub extractors: ExtractorSwitches,
    #[command(flatten)]
    pub existing: ExistingStackArgs,
}

impl RehearseArgs {
    /// Plays the scenario (on the embedded stack unless `-a`), prints each expectation's
    /// result, and fails (non-zero exit) when one failed. Ctrl-C ends the run early and
    /// still judges and reports what was seen.
    pub async fn run(self) -> anyhow::Result<()> {
        // A bad scenario is reported before anything is provisioned or connected.
        let scenario = peerlab::scenario::Scenario::from_file(&self.scenario)?;
        let extractors = self.extractors.extractors();
        let spec = match self.existing.to_stack()? {
            Some(_) if self.extractors.any() => bail!(
                "the --no-<x>-extractor flags turn off extractors of the embedded stack; with \
                 -a/--rpc-url the extractors are yours: stop them on your side instead"
            ),
            Some(existing) => StackSpec::Existing(Box::new(existing)),
            None => {
                refuse_expectations_of_extractors_off(&scenario, extractors, &self.scenario)?;
                StackSpec::Embedded(
                    tokio::task::spawn_blocking(|| setup(&SetupOptions::default()))
                        .await
                        .context("setup task")?
                        .context("provisioning the embedded stack")?,
                    extractors,
                )
            }
        };
        let shutdown = shutdown_on_signals(None);
        let (verdict, _) = rehearse(&spec, &self.scenario, &self.report, &shutdown).await?;
        print_verdict(&verdict, &self.report)
    }
}

/// Names the flag when an expectation needs an extractor turned off.
fn refuse_expectations_of_extractors_off(
    scenario: &Scenario,
    extractors: Extractors,
    path: &Path,
) -> anyhow::Result<()> {
    match check_extractors(scenario, extractors) {
        Err(RehearseError::ExtractorOff {
            expectation,
            extractor,
        }) => bail!(
            "{}: {expectation} needs the {} extractor, which {} turns off; drop the flag or \
             that expectation",
            path.display(),
            extractor.name(),
            flag(extractor)
        ),
        Err(other) => Err(other.into()),
        Ok(()) => Ok(()),
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
    /// The user's stack, or `None` for the embedded default.
    fn to_stack(&self) -> anyhow::Result<Option<ExistingStack>> {
        let (Some(addresses), Some(rpc_url)) = (&self.nats_address, &self.rpc_url) else {
            return Ok(None);
        };
        let password = match (&self.rpc_password, &self.rpc_password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(file)) => Some(
                peerlab::secret::read_secret_file(file, "RPC password")
                    .map_err(anyhow::Error::msg)?,
            ),
            (None, None) => None,
        };
        let rpc_auth = match (&self.rpc_cookie, &self.rpc_user, password) {
            (Some(cookie), _, _) => RpcAuth::Cookie(cookie.clone()),
            (None, Some(user), Some(password)) => RpcAuth::UserPass(user.clone(), password),
            _ => bail!(
                "--rpc-url needs credentials: --rpc-cookie FILE, or --rpc-user with --rpc-password-file"
            ),
        };
        let p2p_text = match &self.p2p {
            Some(p2p) => p2p.clone(),
            None => format!("{}:{REGTEST_P2P_PORT}", rpc_host(rpc_url)?),
        };
        let p2p: SocketAddr = p2p_text
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| format!("--p2p {p2p_text} is not a HOST:PORT address"))?;
        Ok(Some(ExistingStack {
            nats: self.nats.to_options(addresses.clone()),
            scheme: self.subjects_scheme.scheme(),
            rpc_url: rpc_url.clone(),
            rpc_auth,
            p2p,
        }))
    }
}

/// One line per expectation, step error and note, then the outcome; an error when an
/// expectation failed.
fn print_verdict(verdict: &Verdict, report_dir: &Path) -> anyhow::Result<()> {
    for e in &verdict.expectations {
        let mark = if e.passed { "pass" } else { "FAIL" };
        println!(
            "{mark}  {}: observed {}; expected {}",
            e.name, e.observed, e.expected
        );
    }
    for error in &verdict.step_errors {
        println!("FAIL  {error}");
    }
    for note in &verdict.notes {
        println!("note  {note}");
    }
    let failed =
        verdict.expectations.iter().filter(|e| !e.passed).count() + verdict.step_errors.len();
    for row in &verdict.propagation {
        let times: Vec<String> = row
            .after_first_secs
            .iter()
            .map(|(node, after)| format!("{node} +{after:.2}s"))
            .collect();
        println!(
            "propagation  {} {:.16}: first at {:.2}s; {}",
            row.kind,
            row.id,
            row.first_secs,
            times.join(", ")
        );
    }
    for row in &verdict.relay {
        let times: Vec<String> = row
            .nodes
            .iter()
            .map(|(node, at)| format!("{node} {at:.2}s"))
            .collect();
        println!(
            "relay  {} {} {:.16}: first by {} ({})",
            row.group,
            row.kind,
            row.hash,
            row.first_node,
            times.join(", ")
        );
    }
    println!(
        "{}: {} in {:.1}s (stack up in {:.1}s), {} events seen, report in {}",
        verdict.scenario,
        if verdict.passed { "PASSED" } else { "FAILED" },
        verdict.duration_secs,
        verdict.startup_secs,
        verdict.events_seen,
        report_dir.join("report.html").display()
    );
    if failed > 0 {
        bail!(
            "{failed} expectation(s) of scenario `{}` failed; see {}",
            verdict.scenario,
            report_dir.join("verdict.json").display()
        );
    }
    Ok(())
}

/// The host of `http://host:port/...`.
fn rpc_host(url: &str) -> anyhow::Result<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match authority.rsplit_once(':') {
        Some((host, _port)) => host,
        None => authority,
    };
    if host.is_empty() {
        bail!(
            "--rpc-url {} has no host; give it as http://HOST:PORT",
            peerlab::secret::redact_url(url)
        );
    }
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_host_is_taken_from_the_url() {
        assert_eq!(rpc_host("http://127.0.0.1:18443").unwrap(), "127.0.0.1");
        assert_eq!(
            rpc_host("http://node.local:18443/wallet/x").unwrap(),
            "node.local"
        );
        assert_eq!(rpc_host("http://[::1]:18443").unwrap(), "::1");
        assert!(rpc_host("http://:18443").is_err());
    }
}
