//! `peerlab setup`.

use std::path::PathBuf;

/// Provision this machine: Debian packages and a traceable bitcoind (built once, cached).
///
/// Idempotent: a second run checks and reuses the cache in seconds. As root it installs
/// missing packages with apt-get; otherwise it names them.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Use this bitcoind instead of building one (checked for the 16 tracepoints).
    #[arg(long, env = "BITCOIND_EXE", value_name = "PATH")]
    pub bitcoind: Option<PathBuf>,
    /// bitcoin-cli to go with --bitcoind (default: next to it, or on PATH).
    #[arg(long, value_name = "PATH")]
    pub bitcoin_cli: Option<PathBuf>,
    /// Never run apt-get; fail naming the missing packages instead.
    #[arg(long)]
    pub no_install: bool,
    /// Discard the cached bitcoind and build it again.
    #[arg(long)]
    pub rebuild: bool,
    /// Parallel compile jobs (0 = number of CPUs; at most 256).
    #[arg(long, short = 'j', default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub jobs: u16,
    /// Print `{"bitcoind": ..., "bitcoin_cli": ..., "bitcoin_node": ..., "nats_server": ...}`
    /// on stdout.
    #[arg(long)]
    pub json: bool,
}

impl SetupArgs {
    /// Provisions the machine; with `--json`, prints the installation paths on stdout.
    pub async fn run(self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use peerlab::node::{setup, BitcoindOrigin, SetupOptions};
        let options = SetupOptions {
            bitcoind: self.bitcoind,
            bitcoin_cli: self.bitcoin_cli,
            no_install: self.no_install,
            rebuild: self.rebuild,
            jobs: usize::from(self.jobs),
        };
        let started = std::time::Instant::now();
        let installation = tokio::task::spawn_blocking(move || setup(&options))
            .await
            .context("setup task")?
            .context("setup failed")?;
        let how = match installation.origin {
            BitcoindOrigin::Cached => "reused the cached bitcoind",
            BitcoindOrigin::Built => "built bitcoind into the cache",
            BitcoindOrigin::UserProvided => "using the given bitcoind",
        };
        tracing::info!(
            "setup done in {:.1}s: {how} ({}); nats-server at {}",
            started.elapsed().as_secs_f64(),
            installation.bitcoind.display(),
            installation.nats_server.display()
        );
        if self.json {
            println!("{}", serde_json::to_string(&installation)?);
        }
        Ok(())
    }
}
