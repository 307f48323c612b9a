//! The switches that turn the embedded stack's optional extractors off, shared by `run` and
//! `rehearse` so both spell and document them the same way.

use peerlab::stack::{Extractors, OptionalExtractor};

/// `--no-{log,rpc,p2p,ipc}-extractor`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExtractorSwitches {
    /// Do not run the log extractor on the node's debug.log (the eBPF extractor always
    /// runs; a rehearsal refuses expectations on log.* events and peerobserver_log_*
    /// metrics).
    #[arg(long)]
    pub no_log_extractor: bool,
    /// Do not run the RPC extractor on the node's RPC port (a rehearsal refuses
    /// expectations on rpc.* events and peerobserver_rpc_* metrics).
    #[arg(long)]
    pub no_rpc_extractor: bool,
    /// Do not run the P2P extractor, a peer the node dials (a rehearsal refuses
    /// expectations on p2p.* events and peerobserver_p2pextractor_* metrics).
    #[arg(long)]
    pub no_p2p_extractor: bool,
    /// Do not run the IPC extractor; the node is then bitcoind instead of bitcoin-node (a
    /// rehearsal refuses expectations on ipc.* events and peerobserver_ipc_* metrics).
    #[arg(long)]
    pub no_ipc_extractor: bool,
}

impl ExtractorSwitches {
    /// The extractors left on.
    pub fn extractors(&self) -> Extractors {
        Extractors {
            log: !self.no_log_extractor,
            rpc: !self.no_rpc_extractor,
            p2p: !self.no_p2p_extractor,
            ipc: !self.no_ipc_extractor,
        }
    }

    /// Whether any switch is given.
    pub fn any(&self) -> bool {
        self.extractors() != Extractors::default()
    }
}

/// The flag that turns `extractor` off.
pub fn flag(extractor: OptionalExtractor) -> String {
    format!("--no-{}-extractor", extractor.name())
}
