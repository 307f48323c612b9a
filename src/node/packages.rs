//! Debian packages peerlab needs, found with dpkg and installed with apt-get when allowed.

use std::process::{Command, Stdio};

use super::NodeError;

/// The subset of `packages` that dpkg does not report as installed.
pub fn missing_packages(packages: &[&str]) -> Result<Vec<String>, NodeError> {
    let mut missing = Vec::new();
    for package in packages {
        let output = Command::new("dpkg-query")
            .args(["-W", "-f=${db:Status-Abbrev}", package])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| NodeError::Tool {
                tool: "dpkg-query".into(),
                reason: e.to_string(),
            })?;
        // "ii " = installed; anything else (or unknown package) counts as missing.
        if !String::from_utf8_lossy(&output.stdout).starts_with("ii") {
            missing.push(package.to_string());
        }
    }
    Ok(missing)
}

/// Whether this process may install packages (root).
pub fn can_install() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Installs what is missing, or says exactly what to install when we may not.
///
/// Returns the packages that were installed.
pub fn ensure_packages(packages: &[&str], allow_install: bool) -> Result<Vec<String>, NodeError> {
    let missing = missing_packages(packages)?;
    if missing.is_empty() {
        return Ok(missing);
    }
    if !allow_install {
        return Err(NodeError::MissingPackages {
            packages: missing.join(" "),
        });
    }
    tracing::info!(packages = %missing.join(" "), "installing missing Debian packages");
    if !apt_install(&missing)? {
        // Package lists may be stale or absent on a fresh machine: refresh once, then retry.
        run_apt(&["update", "-q"])?;
        if !apt_install(&missing)? {
            return Err(NodeError::Tool {
                tool: "apt-get".into(),
                reason: format!(
                    "could not install {}; see apt-get's output above",
                    missing.join(" ")
                ),
            });
        }
    }
    Ok(missing)
}

fn apt_install(packages: &[String]) -> Result<bool, NodeError> {
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(packages.iter().map(String::as_str));
    run_apt(&args)
}

fn run_apt(args: &[&str]) -> Result<bool, NodeError> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| NodeError::Tool {
            tool: "apt-get".into(),
            reason: e.to_string(),
        })?;
    Ok(status.success())
}
