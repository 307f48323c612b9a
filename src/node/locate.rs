//! Finding a running node from its datadir: which chain, its pid, binary, ports, cookie and
//! `debug.log`, so `peerlab observe --datadir DIR` needs no other flag.
//!
//! Where things are (Bitcoin Core's defaults): the chain's files live in `DIR` for mainnet and
//! in `DIR/<testnet3|testnet4|signet|regtest>` otherwise; there the node writes `bitcoind.pid`,
//! `.cookie` and `debug.log`. Ports come from the running process's own command line
//! (`-rpcport=`, `-port=`; `/proc/<pid>/cmdline`), else from `DIR/bitcoin.conf` (top level or
//! the chain's section), else the chain's defaults.
//!
//! Invariants: nothing here starts, stops or signals the node; every guess is reported in
//! [`LocatedNode::notes`] so the user sees what was assumed.

use std::path::{Path, PathBuf};

use super::process::{pid_from_file, process_alive, process_executable};

/// A Bitcoin chain, as Core names its datadir subdirectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// Mainnet (files in the datadir itself).
    Main,
    /// testnet3.
    Testnet3,
    /// testnet4.
    Testnet4,
    /// The default signet.
    Signet,
    /// regtest.
    Regtest,
}

impl Chain {
    /// Every chain, mainnet first.
    pub const ALL: [Chain; 5] = [
        Chain::Main,
        Chain::Testnet3,
        Chain::Testnet4,
        Chain::Signet,
        Chain::Regtest,
    ];

    /// Core's name (`-chain=`), also the `bitcoin.conf` section name.
    pub fn name(self) -> &'static str {
        match self {
            Chain::Main => "main",
            Chain::Testnet3 => "test",
            Chain::Testnet4 => "testnet4",
            Chain::Signet => "signet",
            Chain::Regtest => "regtest",
        }
    }

    /// The subdirectory of the datadir holding this chain's files (none for mainnet).
    pub fn subdir(self) -> Option<&'static str> {
        match self {
            Chain::Main => None,
            Chain::Testnet3 => Some("testnet3"),
            Chain::Testnet4 => Some("testnet4"),
            Chain::Signet => Some("signet"),
            Chain::Regtest => Some("regtest"),
        }
    }

    /// Default RPC port.
    pub fn rpc_port(self) -> u16 {
        match self {
            Chain::Main => 8332,
            Chain::Testnet3 => 18332,
            Chain::Testnet4 => 48332,
            Chain::Signet => 38332,
            Chain::Regtest => 18443,
        }
    }

    /// Parses a `-chain=` value (also `testnet3`, `mainnet`).
    pub fn from_name(name: &str) -> Option<Chain> {
        match name {
            "main" | "mainnet" => Some(Chain::Main),
            "test" | "testnet3" => Some(Chain::Testnet3),
            "testnet4" => Some(Chain::Testnet4),
            "signet" => Some(Chain::Signet),
            "regtest" => Some(Chain::Regtest),
            _ => None,
        }
    }
}

/// A running node's files and ports.
#[derive(Debug, Clone)]
pub struct LocatedNode {
    /// The chain.
    pub chain: Chain,
    /// The chain's directory (`DIR` or `DIR/<subdir>`).
    pub chain_dir: PathBuf,
    /// `bitcoind.pid`.
    pub pid_file: PathBuf,
    /// The pid in it, when the process is alive.
    pub pid: Option<u32>,
    /// The running binary (`/proc/<pid>/exe`).
    pub bitcoind: Option<PathBuf>,
    /// `debug.log`.
    pub debug_log: PathBuf,
    /// `.cookie`.
    pub cookie: PathBuf,
    /// The RPC port.
    pub rpc_port: u16,
    /// What was assumed, for the user.
    pub notes: Vec<String>,
}

/// Finds the node of `datadir`: `chain` when given, else the chain whose directory has a
/// `bitcoind.pid` of a live process (mainnet first). Errors say what is missing.
pub fn locate(datadir: &Path, chain: Option<Chain>) -> Result<LocatedNode, String> {
    if !datadir.is_dir() {
        return Err(format!("{} is not a directory", datadir.display()));
    }
    let chain_dir = |c: Chain| match c.subdir() {
        Some(sub) => datadir.join(sub),
        None => datadir.to_path_buf(),
    };
    let running = |c: Chain| {
        pid_from_file(&chain_dir(c).join("bitcoind.pid")).filter(|pid| process_alive(*pid))
    };
    let mut notes = Vec::new();
    let chain = match chain {
        Some(chain) => chain,
        None => match Chain::ALL.into_iter().find(|c| running(*c).is_some()) {
            Some(chain) => {
                notes.push(format!(
                    "chain {} (its bitcoind.pid names a running process)",
                    chain.name()
                ));
                chain
            }
            None => {
                return Err(format!(
                    "no running bitcoind found under {}: no bitcoind.pid of a live process in it \
                     or in its testnet3/testnet4/signet/regtest directories; is the node running \
                     with this -datadir? (give --chain to name the chain)",
                    datadir.display()
                ))
            }
        },
    };
    let dir = chain_dir(chain);
    let pid = running(chain);
    let bitcoind = pid.and_then(process_executable);
    let arguments = pid.map(command_line).unwrap_or_default();
    let rpc_port = match option_value(&arguments, "rpcport") {
        Some(port) => {
            notes.push(format!("RPC port {port} from the node's command line"));
            port.parse().ok()
        }
        None => None,
    }
    .or_else(|| {
        let port = conf_value(&datadir.join("bitcoin.conf"), chain, "rpcport")?;
        notes.push(format!("RPC port {port} from bitcoin.conf"));
        port.parse().ok()
    })
    .unwrap_or_else(|| {
        notes.push(format!(
            "RPC port {} (the {} default)",
            chain.rpc_port(),
            chain.name()
        ));
        chain.rpc_port()
    });
    Ok(LocatedNode {
        chain,
        pid_file: dir.join("bitcoind.pid"),
        debug_log: dir.join("debug.log"),
        cookie: dir.join(".cookie"),
        chain_dir: dir,
        pid,
        bitcoind,
        rpc_port,
        notes,
    })
}

/// A process's arguments (`/proc/<pid>/cmdline`), empty when unreadable.
fn command_line(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The last `-name=value` (or `--name=value`) among `arguments`.
fn option_value(arguments: &[String], name: &str) -> Option<String> {
    arguments.iter().rev().find_map(|arg| {
        let arg = arg.trim_start_matches('-');
        let (key, value) = arg.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

/// `name` from `bitcoin.conf`: the chain's `[section]` wins over the top level.
fn conf_value(conf: &Path, chain: Chain, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(conf).ok()?;
    let (mut section, mut top, mut in_chain) = (None::<String>, None, None);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != name {
            continue;
        }
        match section.as_deref() {
            None => top = Some(value.trim().to_string()),
            Some(s) if s == chain.name() => in_chain = Some(value.trim().to_string()),
            Some(_) => {}
        }
    }
    // Core applies network-only settings (`rpcport`, `port`) at the top level to mainnet
    // only; the other chains need them in their section.
    match chain {
        Chain::Main => in_chain.or(top),
        Chain::Testnet3 | Chain::Testnet4 | Chain::Signet | Chain::Regtest => in_chain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_conf_values_are_found_where_core_reads_them() {
        let args: Vec<String> = ["bitcoind", "-regtest", "-rpcport=1234", "--rpcport=5678"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(option_value(&args, "rpcport").as_deref(), Some("5678"));
        assert_eq!(option_value(&args, "port"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("bitcoin.conf");
        std::fs::write(
            &conf,
            "rpcport=1\n# rpcport=9\n[regtest]\nrpcport = 2\n[test]\nrpcport=3\n",
        )
        .expect("write");
        assert_eq!(
            conf_value(&conf, Chain::Signet, "rpcport"),
            None,
            "top level: mainnet only"
        );
        assert_eq!(
            conf_value(&conf, Chain::Regtest, "rpcport").as_deref(),
            Some("2")
        );
        assert_eq!(
            conf_value(&conf, Chain::Main, "rpcport").as_deref(),
            Some("1")
        );
        assert_eq!(
            conf_value(&conf, Chain::Testnet3, "rpcport").as_deref(),
            Some("3")
        );
    }

    #[test]
    fn a_datadir_without_a_running_node_says_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = locate(dir.path(), None).expect_err("nothing runs there");
        assert!(error.contains("no running bitcoind found"), "{error}");
        let located = locate(dir.path(), Some(Chain::Regtest)).expect("a named chain");
        assert_eq!(located.pid, None);
        assert_eq!(located.rpc_port, 18443);
        assert!(located.debug_log.ends_with("regtest/debug.log"));
        assert!(locate(&dir.path().join("missing"), None).is_err());
    }
}
