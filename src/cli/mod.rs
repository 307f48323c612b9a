//! The command line: every clap type of the binary, one file per command family.
//!
//! Each file turns its arguments into the library's option structs, composes the library's
//! pieces and prints the outcome; the library below knows nothing of clap or the terminal.
//! Numeric options are range-checked here ([`values`]), NATS and subject options are shared
//! by every command that talks to NATS ([`nats`]), the extractor switches by `run` and
//! `rehearse` ([`extractors`]), the spool options by every command that
//! publishes extractors' events ([`spool`]). There is one tokio runtime (built here)
//! and one shutdown per command ([`signals`]).

mod extract;
mod extractors;
mod fleet;
mod live_tools;
mod nats;
mod observe;
mod record;
mod rehearse;
mod run;
mod scheduling;
mod setup;
mod signals;
mod spool;
mod status;
mod tools;
mod values;

use clap::{Parser, Subcommand};

/// peerlab: a Bitcoin honeynode observer stack (bitcoind -> extractors -> NATS -> tools)
/// with a record-and-replay testbed around it. Speaks peer-observer's wire format.
#[derive(Parser)]
#[command(name = "peerlab", version, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `debug` or `peerlab=debug,async_nats=warn`.
    #[arg(
        long,
        global = true,
        env = "PEERLAB_LOG",
        default_value = "info,async_nats=warn"
    )]
    pub log: String,
    /// Only check that the command line parses (every flag and value accepted), print `ok`
    /// and exit; nothing runs. Deployments use it to validate generated command lines.
    #[arg(long = "check-args", global = true)]
    pub check_args: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each one's help text is its argument struct's documentation.
#[derive(Subcommand)]
pub enum Command {
    Setup(setup::SetupArgs),
    Run(run::RunArgs),
    Observe(observe::ObserveArgs),
    Extract(extract::ExtractArgs),
    Record(record::RecordArgs),
    Replay(record::ReplayArgs),
    Inspect(record::InspectArgs),
    Cat(record::CatArgs),
    Convert(record::ConvertArgs),
    Rehearse(rehearse::RehearseArgs),
    Tools(tools::ToolsArgs),
    Fleet(fleet::FleetArgs),
    Status(status::StatusArgs),
}

impl Command {
    /// Whether the command runs on a single-threaded runtime: the observer's processes on a
    /// honeynode (extractors, tools, the recorder). Their tasks hand every event from one to
    /// the next (drain, publisher queue, NATS connection); on one thread those hand-offs are
    /// plain function calls instead of cross-thread wake-ups, which costs less CPU per event
    /// and leaves the other cores to the node being watched. Blocking work (RPC calls, file
    /// I/O) still goes to tokio's blocking pool. They also run as batch work
    /// ([`scheduling::yield_to_the_node`]), so their wake-ups never preempt the node.
    fn single_threaded(&self) -> bool {
        matches!(
            self,
            Command::Observe(_) | Command::Extract(_) | Command::Record(_) | Command::Tools(_)
        )
    }

    /// Runs the command on the process's one runtime.
    pub fn run(self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let runtime = if self.single_threaded() {
            scheduling::yield_to_the_node();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Runtime::new()
        }
        .context("starting the async runtime")?;
        let result = runtime.block_on(async {
            match self {
                Command::Setup(args) => args.run().await,
                Command::Run(args) => args.run().await,
                Command::Observe(args) => args.run().await,
                Command::Extract(args) => args.run().await,
                Command::Record(args) => args.run().await,
                Command::Replay(args) => args.run().await,
                Command::Inspect(args) => args.run(),
                Command::Cat(args) => args.run(),
                Command::Convert(args) => args.run(),
                Command::Rehearse(args) => args.run().await,
                Command::Tools(args) => args.run().await,
                Command::Fleet(args) => args.run().await,
                Command::Status(args) => args.run().await,
            }
        });
        // Blocking work still running (an RPC call a stopped extractor walked away from, which
        // its client gives 60 s) must not hold the exit.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        result
    }
}
