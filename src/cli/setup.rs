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
    /// Print `{"bitcoind": ..., "bitcoin_cli": ..., "nats_server": ...}` on stdout.
    #[arg(long)]
    pub json: bool,
}

impl SetupArgs {
    /// Provisions the machine.
    pub fn run(self) -> anyhow::Result<()> {
        let options = peerlab::node::SetupOptions {
            bitcoind: self.bitcoind,
            bitcoin_cli: self.bitcoin_cli,
            no_install: self.no_install,
            rebuild: self.rebuild,
            jobs: usize::from(self.jobs),
        };
        peerlab::commands::setup::run(&options, self.json)
    }
}
