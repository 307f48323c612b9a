//! `peerlab rehearse SCENARIO --report DIR [-a NATS --rpc-url URL ...]`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::bus::{NatsOptions, SubjectScheme};
use crate::node::{setup, RpcAuth, SetupOptions};
use crate::rehearse::{rehearse, ExistingStack, StackSpec};

/// Regtest's default P2P port, used when only the RPC URL is given.
const REGTEST_P2P_PORT: u16 = 18444;

/// The command line of a rehearsal against a running stack.
#[derive(Debug, Clone)]
pub struct ExistingStackArgs {
    /// Its NATS server(s), with credentials and TLS.
    pub nats: NatsOptions,
    /// The node's RPC URL.
    pub rpc_url: String,
    /// Cookie file.
    pub rpc_cookie: Option<PathBuf>,
    /// RPC user.
    pub rpc_user: Option<String>,
    /// RPC password.
    pub rpc_password: Option<String>,
    /// File whose first line is the RPC password.
    pub rpc_password_file: Option<PathBuf>,
    /// The node's P2P address.
    pub p2p: Option<String>,
    /// Subject scheme of the stack.
    pub scheme: SubjectScheme,
}

impl ExistingStackArgs {
    fn to_stack(&self) -> anyhow::Result<ExistingStack> {
        let password = match (&self.rpc_password, &self.rpc_password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(file)) => Some(
                crate::secret::read_secret_file(file, "RPC password")
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
            None => format!("{}:{REGTEST_P2P_PORT}", rpc_host(&self.rpc_url)?),
        };
        let p2p: SocketAddr = p2p_text
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| format!("--p2p {p2p_text} is not a HOST:PORT address"))?;
        Ok(ExistingStack {
            nats: self.nats.clone(),
            scheme: self.scheme.clone(),
            rpc_url: self.rpc_url.clone(),
            rpc_auth,
            p2p,
        })
    }
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
            crate::secret::redact_url(url)
        );
    }
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

/// Runs the scenario (on the embedded stack unless `existing`); fails (non-zero exit) when
/// an expectation fails.
pub fn run(
    scenario: &Path,
    report_dir: &Path,
    existing: Option<ExistingStackArgs>,
) -> anyhow::Result<()> {
    // A bad scenario is reported before anything is provisioned or connected.
    crate::scenario::Scenario::from_file(scenario)?;
    let spec = match existing {
        Some(args) => StackSpec::Existing(Box::new(args.to_stack()?)),
        None => StackSpec::Embedded(
            setup(&SetupOptions::default()).context("provisioning the embedded stack")?,
        ),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (verdict, _) = runtime.block_on(rehearse(&spec, scenario, report_dir))?;
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
    println!(
        "{}: {} in {:.1}s, {} events seen, report in {}",
        verdict.scenario,
        if verdict.passed { "PASSED" } else { "FAILED" },
        verdict.duration_secs,
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
