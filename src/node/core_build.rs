//! Building a traceable bitcoind from the Bitcoin Core tree vendored in `libbitcoinkernel-sys`.
//!
//! The source arrives through cargo alone (a throw-away manifest depending on the pinned crate,
//! `cargo fetch`, then `cargo metadata` to find where cargo unpacked it), so no network access
//! beyond the Rust registry is needed. CMake output is parsed for its `[ NN%]` markers to show
//! progress; the tail of the output is kept for the error message when a step fails.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::{ProgressBar, ProgressStyle};

use super::cache::{cache_root, CacheEntry, CMAKE_OPTIONS, CORE_CRATE, CORE_CRATE_VERSION};
use super::NodeError;

/// Finds (fetching if needed) the Bitcoin Core source tree shipped in the pinned crate.
pub fn fetch_core_source() -> Result<PathBuf, NodeError> {
    let dir = cache_root()
        .join("core-source")
        .join(format!("{CORE_CRATE}-{CORE_CRATE_VERSION}"));
    let io = |e: std::io::Error| NodeError::Tool {
        tool: "filesystem".into(),
        reason: format!("{}: {e}", dir.display()),
    };
    std::fs::create_dir_all(dir.join("src")).map_err(io)?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"peerlab-core-source\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{CORE_CRATE} = \"={CORE_CRATE_VERSION}\"\n\n[workspace]\n"
        ),
    )
    .map_err(io)?;
    std::fs::write(dir.join("src").join("lib.rs"), "").map_err(io)?;
    let manifest = dir.join("Cargo.toml");

    tracing::info!(
        "fetching the Bitcoin Core source ({CORE_CRATE} {CORE_CRATE_VERSION}) with cargo"
    );
    let status = Command::new(cargo())
        .args(["fetch", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .status()
        .map_err(|e| NodeError::Tool {
            tool: "cargo".into(),
            reason: e.to_string(),
        })?;
    if !status.success() {
        return Err(NodeError::Tool {
            tool: "cargo fetch".into(),
            reason: format!("could not download {CORE_CRATE} {CORE_CRATE_VERSION} from crates.io"),
        });
    }
    let output = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| NodeError::Tool {
            tool: "cargo".into(),
            reason: e.to_string(),
        })?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| NodeError::Tool {
            tool: "cargo metadata".into(),
            reason: format!(
                "unreadable output ({e}): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })?;
    let crate_manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == CORE_CRATE && p["version"] == CORE_CRATE_VERSION)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| NodeError::Tool {
            tool: "cargo metadata".into(),
            reason: format!("{CORE_CRATE} {CORE_CRATE_VERSION} not among the fetched packages"),
        })?;
    let source = Path::new(crate_manifest)
        .parent()
        .map(|p| p.join("bitcoin"))
        .filter(|p| p.join("CMakeLists.txt").is_file())
        .ok_or_else(|| NodeError::Tool {
            tool: "cargo metadata".into(),
            reason: format!("no bitcoin/CMakeLists.txt next to {crate_manifest}"),
        })?;
    Ok(source)
}

/// Configures and builds `bitcoind`, `bitcoin-cli` and `bitcoin-node` into the entry's CMake
/// tree, then copies them to the entry's `bin/`.
pub fn build_core(source: &Path, entry: &CacheEntry, jobs: usize) -> Result<(), NodeError> {
    let build_dir = entry.build_dir();
    let progress = Progress::new();
    progress.message("configuring (cmake)");
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(source)
        .arg("-B")
        .arg(&build_dir)
        .args(CMAKE_OPTIONS);
    run_streaming(configure, "cmake configure", &progress)?;

    progress.message(&format!(
        "compiling with {jobs} jobs (10-15 minutes on 2 cores the first time)"
    ));
    let mut build = Command::new("cmake");
    build
        .arg("--build")
        .arg(&build_dir)
        .args(["--target", "bitcoind", "bitcoin-cli", "bitcoin-node", "-j"])
        .arg(jobs.to_string());
    run_streaming(build, "cmake --build", &progress)?;
    progress.finish();

    let bin = entry.dir().join("bin");
    let io = |e: std::io::Error| NodeError::Tool {
        tool: "filesystem".into(),
        reason: format!("{}: {e}", bin.display()),
    };
    std::fs::create_dir_all(&bin).map_err(io)?;
    for name in ["bitcoind", "bitcoin-cli", "bitcoin-node"] {
        let built = build_dir.join("bin").join(name);
        // Copy to a temporary name and rename, so a crash never leaves a half-written binary.
        let tmp = bin.join(format!("{name}.tmp"));
        std::fs::copy(&built, &tmp).map_err(io)?;
        std::fs::rename(&tmp, bin.join(name)).map_err(io)?;
    }
    Ok(())
}

/// Runs a command, feeding `[ NN%]` markers to the progress display and keeping the output tail.
fn run_streaming(mut command: Command, step: &str, progress: &Progress) -> Result<(), NodeError> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NodeError::Tool {
            tool: step.into(),
            reason: format!("cannot start: {e} (is cmake installed?)"),
        })?;
    // Merge stderr into the tail on a helper thread so neither pipe can fill and block the child.
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut lines = VecDeque::new();
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                push_bounded(&mut lines, line);
            }
        }
        lines
    });
    let mut tail = VecDeque::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(percent) = parse_percent(&line) {
                progress.set(percent);
            }
            push_bounded(&mut tail, line);
        }
    }
    let status = child.wait().map_err(|e| NodeError::Tool {
        tool: step.into(),
        reason: e.to_string(),
    })?;
    let err_tail = err_thread.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    tail.extend(err_tail);
    Err(NodeError::Build {
        step: step.into(),
        output_tail: Vec::from(tail).join("\n"),
    })
}

fn push_bounded(lines: &mut VecDeque<String>, line: String) {
    if lines.len() == 30 {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// `[ 48%] Building CXX object ...` -> 48.
fn parse_percent(line: &str) -> Option<u64> {
    let rest = line.strip_prefix('[')?;
    let (number, _) = rest.split_once("%]")?;
    number.trim().parse().ok()
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// A progress bar on a terminal; a log line every 10% otherwise (CI logs).
struct Progress {
    bar: ProgressBar,
    last_logged: std::cell::Cell<u64>,
}

impl Progress {
    fn new() -> Progress {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template(
                "building bitcoind [{bar:40}] {pos:>3}% {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar,
            last_logged: std::cell::Cell::new(0),
        }
    }

    fn message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
        if self.bar.is_hidden() {
            tracing::info!("building bitcoind: {msg}");
        }
    }

    fn set(&self, percent: u64) {
        self.bar.set_position(percent);
        if self.bar.is_hidden() && percent >= self.last_logged.get() + 10 {
            self.last_logged.set(percent - percent % 10);
            tracing::info!("building bitcoind: {percent}%");
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn percent_markers() {
        assert_eq!(
            parse_percent("[ 48%] Building CXX object src/x.o"),
            Some(48)
        );
        assert_eq!(parse_percent("[100%] Built target bitcoind"), Some(100));
        assert_eq!(parse_percent("-- Configuring done"), None);
    }
}
