//! The IP lists some families count peers against (metrics.md §5).
//!
//! The LinkingLion prefixes are facts and built in. The Tor exit list and the gmax, Monero and
//! bitprojects banlists are data an operator fetches (their sources are in the spec); peerlab
//! ships none of them: each is loaded from a file when one is configured, and its families
//! stay registered at 0 otherwise.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// LinkingLion's prefixes since 2026 (string starts-with on the port-stripped IP).
const LINKINGLION: [&str; 4] = ["143.20.137.", "31.58.215.", "87.229.79.", "2602:f5c0:"];
/// LinkingLion's prefixes before 2026.
const LINKINGLION_PRE2026: [&str; 4] = ["162.218.65", "209.222.252", "91.198.115", "2604:d500:4:"];

/// Where to read the optional lists from (one IP per line; `#` starts a comment).
#[derive(Debug, Clone, Default)]
pub struct IpListFiles {
    /// Tor exit IPs (`https://check.torproject.org/torbulkexitlist`).
    pub tor_exits: Option<PathBuf>,
    /// Greg Maxwell's 2018 banlist, expanded to single IPs.
    pub gmax: Option<PathBuf>,
    /// The Monero banlist.
    pub monero: Option<PathBuf>,
    /// bitprojects.io's addresses.
    pub bitprojects: Option<PathBuf>,
}

/// A list file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the IP list {path}: {source}")]
pub struct IpListError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// The loaded lists.
#[derive(Debug, Default)]
pub struct IpLists {
    tor_exits: HashSet<String>,
    gmax: HashSet<String>,
    monero: HashSet<String>,
    bitprojects: HashSet<String>,
}

impl IpLists {
    /// Loads the configured files.
    pub fn load(files: &IpListFiles) -> Result<IpLists, IpListError> {
        Ok(IpLists {
            tor_exits: read_list(files.tor_exits.as_deref())?,
            gmax: read_list(files.gmax.as_deref())?,
            monero: read_list(files.monero.as_deref())?,
            bitprojects: read_list(files.bitprojects.as_deref())?,
        })
    }

    /// On LinkingLion's 2026 prefixes.
    pub fn linkinglion(&self, ip: &str) -> bool {
        LINKINGLION.iter().any(|p| ip.starts_with(p))
    }
    /// On LinkingLion's pre-2026 prefixes.
    pub fn linkinglion_pre2026(&self, ip: &str) -> bool {
        LINKINGLION_PRE2026.iter().any(|p| ip.starts_with(p))
    }
    /// A Tor exit.
    pub fn tor_exit(&self, ip: &str) -> bool {
        self.tor_exits.contains(ip)
    }
    /// On the gmax banlist.
    pub fn gmax(&self, ip: &str) -> bool {
        self.gmax.contains(ip)
    }
    /// On the Monero banlist.
    pub fn monero(&self, ip: &str) -> bool {
        self.monero.contains(ip)
    }
    /// On the bitprojects list.
    pub fn bitprojects(&self, ip: &str) -> bool {
        self.bitprojects.contains(ip)
    }
}

fn read_list(path: Option<&Path>) -> Result<HashSet<String>, IpListError> {
    let Some(path) = path else {
        return Ok(HashSet::new());
    };
    let text = std::fs::read_to_string(path).map_err(|source| IpListError {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_built_in_and_files_are_optional() {
        let lists = IpLists::default();
        assert!(lists.linkinglion("143.20.137.9"));
        assert!(lists.linkinglion("2602:f5c0::1"));
        assert!(!lists.linkinglion("143.20.138.9"));
        assert!(lists.linkinglion_pre2026("209.222.252.4"));
        assert!(!lists.tor_exit("1.2.3.4"));

        let dir = tempfile::tempdir().expect("tempdir");
        let tor = dir.path().join("tor.txt");
        std::fs::write(&tor, "# exits\n1.2.3.4\n\n5.6.7.8 # another\n").expect("write");
        let lists = IpLists::load(&IpListFiles {
            tor_exits: Some(tor),
            ..IpListFiles::default()
        })
        .expect("loads");
        assert!(lists.tor_exit("1.2.3.4") && lists.tor_exit("5.6.7.8"));
        assert!(!lists.gmax("1.2.3.4"));

        let missing = IpLists::load(&IpListFiles {
            gmax: Some(dir.path().join("missing")),
            ..IpListFiles::default()
        });
        assert!(missing.is_err_and(|e| e.to_string().contains("cannot read the IP list")));
    }
}
