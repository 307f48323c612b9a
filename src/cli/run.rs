//! `peerlab run`.

use std::path::PathBuf;
use std::time::Duration;

use super::nats::SubjectSchemeArgs;
use super::values::whole_seconds;

/// Run the live pipeline on the embedded default: a private nats-server and a regtest
/// bitcoind, exercised with blocks and transactions, watched over the bus.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS", value_parser = whole_seconds())]
    pub duration: Option<u64>,
    /// Seconds between regtest activity rounds (a block and a transaction each).
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = whole_seconds())]
    pub interval: u64,
    /// Honest P2P peers to connect to the node (0-100; the node takes at most ~114
    /// inbound peers by default).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub peers: u16,
    /// Also record everything the bus carries into this MCAP file.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub subjects: SubjectSchemeArgs,
}

impl RunArgs {
    /// Runs the embedded live pipeline.
    pub fn run(self) -> anyhow::Result<()> {
        peerlab::commands::run::run(&peerlab::commands::run::RunOptions {
            duration: self.duration.map(Duration::from_secs),
            interval: Duration::from_secs(self.interval.max(1)),
            scheme: self.subjects.scheme(),
            peers: usize::from(self.peers),
            record: self.record,
        })
    }
}
