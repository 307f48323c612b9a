//! The spool options of every command that runs extractors and publishes (`extract ...`,
//! `observe`): where a publisher keeps events on disk while NATS is away.
//!
//! Invariants: without `--spool-dir` a publisher has no spool (the buffer alone, overflow
//! dropped and counted); each publisher of a process gets a subdirectory of its own, named
//! after its owner, since a spool belongs to exactly one publisher.

use std::path::PathBuf;

use peerlab::bus::SpoolConfig;

/// Default bound: 1 GiB, a minute of 40,000 events/s of up to 400 bytes each.
const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Smallest bound accepted: 1 MiB.
const MIN_MAX_BYTES: u64 = 1 << 20;
/// Largest bound accepted: 1 TiB.
const MAX_MAX_BYTES: u64 = 1 << 40;

/// Command-line options for a publisher's spool.
#[derive(Debug, Clone, clap::Args)]
pub struct SpoolArgs {
    /// Keep events on disk while NATS is slow or away, instead of dropping what overflows the
    /// in-memory buffer.
    ///
    /// The buffer holds about a second of a busy node's events; a restart of the local NATS
    /// takes longer. Spooled events are sent in order once NATS is back, and what a previous
    /// run left in the spool is sent first. Each publisher uses a subdirectory of its own
    /// (DIR/ebpf-extractor, DIR/log-extractor, ..., DIR/observe), created if missing.
    #[arg(long = "spool-dir", id = "spool_dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Most bytes the spool may take on disk (with --spool-dir).
    ///
    /// 1 MiB to 1 TiB; the default, 1 GiB, holds a minute of 40,000 events/s of up to 400
    /// bytes each. What does not fit is dropped and counted, like a full buffer.
    #[arg(
        long = "spool-max-bytes",
        id = "spool_max_bytes",
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_BYTES,
        requires = "spool_dir",
        value_parser = clap::value_parser!(u64).range(MIN_MAX_BYTES..=MAX_MAX_BYTES)
    )]
    pub max_bytes: u64,
}

impl SpoolArgs {
    /// The spool of the publisher `owner` uses (`None` without `--spool-dir`).
    pub fn config(&self, owner: &str) -> Option<SpoolConfig> {
        self.dir.as_ref().map(|dir| SpoolConfig {
            dir: dir.join(owner),
            max_bytes: self.max_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<crate::cli::Cli, clap::Error> {
        crate::cli::Cli::try_parse_from(["peerlab"].iter().chain(args).copied())
    }

    fn extract_spool(args: &[&str]) -> super::SpoolArgs {
        let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let crate::cli::Command::Extract(extract) = cli.command else {
            panic!("not extract");
        };
        match extract.extractor {
            super::super::extract::ExtractorCommand::Log { spool, .. } => spool,
            _ => panic!("not log"),
        }
    }

    #[test]
    fn each_publisher_gets_a_directory_of_its_own_under_spool_dir() {
        let spool = extract_spool(&["extract", "log", "-b", "d.log", "--spool-dir", "/s"]);
        let config = spool.config("log-extractor").expect("a spool");
        assert_eq!(config.dir, std::path::Path::new("/s/log-extractor"));
        assert_eq!(config.max_bytes, 1 << 30);
        let spool = extract_spool(&["extract", "log", "-b", "d.log"]);
        assert_eq!(spool.config("log-extractor"), None, "no spool by default");
        let spool = extract_spool(&[
            "extract",
            "log",
            "-b",
            "d.log",
            "--spool-dir",
            "/s",
            "--spool-max-bytes",
            "2097152",
        ]);
        assert_eq!(spool.config("x").map(|c| c.max_bytes), Some(2 << 20));
    }

    #[test]
    fn the_bound_is_range_checked_and_needs_a_directory() {
        let base = ["extract", "log", "-b", "d.log", "--spool-dir", "/s"];
        for bad in ["1000", "0", "2199023255553", "lots"] {
            let args: Vec<&str> = base
                .iter()
                .copied()
                .chain(["--spool-max-bytes", bad])
                .collect();
            assert!(parse(&args).is_err(), "{bad} accepted");
        }
        let e = parse(&[
            "extract",
            "log",
            "-b",
            "d.log",
            "--spool-max-bytes",
            "2097152",
        ])
        .err()
        .expect("needs --spool-dir");
        assert!(e.to_string().contains("--spool-dir"), "{e}");
    }

    #[test]
    fn every_publishing_command_takes_the_spool_options() {
        for command in [
            &["extract", "ebpf"][..],
            &["extract", "p2p"],
            &["extract", "log", "-b", "d.log"],
            &["extract", "ipc", "-i", "node.sock"],
            &["extract", "rpc"],
            &["observe", "--datadir", "/d"],
        ] {
            let args: Vec<&str> = command
                .iter()
                .copied()
                .chain(["--spool-dir", "/s", "--spool-max-bytes", "1048576"])
                .collect();
            parse(&args).unwrap_or_else(|e| panic!("{command:?}: {e}"));
        }
    }
}
