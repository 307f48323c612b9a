//! `peerlab setup --containers`: a Docker-compatible API on a bare Debian machine.
//!
//! The containers of a run are driven through the Docker API (bollard and testcontainers both
//! speak it), so setup makes sure one answers where they look: `DOCKER_HOST`, else
//! `/var/run/docker.sock`. Debian's podman serves that API without a daemon of its own, so on
//! a machine without one setup installs podman and runc, configures podman for machines
//! without systemd, starts `podman system service` on [`PODMAN_SOCKET`] and links
//! [`DEFAULT_SOCKET`] to it.
//!
//! Every step checks before it acts, so a second run changes nothing and the
//! [`EngineReport`] says what a run did. When `DOCKER_HOST` is set, the user chose the engine
//! and setup touches nothing; when another engine (Docker's) already answers on
//! [`DEFAULT_SOCKET`], it is used as it is.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::{DEFAULT_SOCKET, PODMAN_SOCKET};
use super::ContainerError;
use crate::node::{can_install, ensure_packages};

/// The Debian packages of the engine. runc, not Debian's default crun: crun refuses to start
/// containers on hosts whose cgroups are in hybrid mode (v1 and v2 mounted together), which is
/// what many VMs and CI machines without systemd have; runc runs on both.
pub const ENGINE_PACKAGES: [&str; 2] = ["podman", "runc"];

/// podman's system-wide configuration file.
pub const CONTAINERS_CONF: &str = "/etc/containers/containers.conf";

/// Where the output of the podman service setup starts goes (it runs detached, so its
/// errors would otherwise be lost).
pub const SERVICE_LOG: &str = "/var/log/peerlab-podman-service.log";

/// The configuration setup writes. Why each setting:
/// - `default_ulimits = []`: podman otherwise asks the runtime for its default ulimits, which
///   fails where the host's limits are lower (containers inside containers, CI runners);
/// - `runtime = "runc"`: see [`ENGINE_PACKAGES`];
/// - `cgroup_manager = "cgroupfs"`: the default (`systemd`) needs a running systemd;
/// - `events_logger = "file"`: the default (`journald`) needs a running journald.
const CONFIG: &str = "\
# Written by `peerlab setup --containers` (the previous file, if any, is saved beside this one
# as containers.conf.peerlab-backup). Settings that work without systemd or journald.
[containers]
default_ulimits = []

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
";

/// How long a socket may take to answer one ping.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a freshly spawned podman service may take to answer.
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(15);
/// How many lines of the service's log an error quotes.
const LOG_TAIL_LINES: usize = 20;

/// What [`provision_engine`] found and did, for the CLI to report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineReport {
    /// `DOCKER_HOST` when it is set: the user chose the engine, and nothing was provisioned.
    pub docker_host: Option<String>,
    /// Another engine (not podman's service behind setup's link) already answered on
    /// [`DEFAULT_SOCKET`], so nothing was provisioned.
    pub existing_engine: bool,
    /// Debian packages installed by this run.
    pub installed_packages: Vec<String>,
    /// The configuration file this run wrote.
    pub config_written: Option<PathBuf>,
    /// Where the configuration file that was there before was saved.
    pub config_backup: Option<PathBuf>,
    /// The pid of the podman service this run started.
    pub service_started: Option<u32>,
    /// The configuration was written while a service was already running: that service still
    /// runs with the old settings until it is restarted.
    pub service_restart_needed: bool,
    /// Whether this run linked [`DEFAULT_SOCKET`] to [`PODMAN_SOCKET`].
    pub link_made: bool,
}

impl EngineReport {
    /// Whether this run changed anything on the machine.
    pub fn changed(&self) -> bool {
        !self.installed_packages.is_empty()
            || self.config_written.is_some()
            || self.service_started.is_some()
            || self.link_made
    }
}

impl fmt::Display for EngineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.docker_host {
            return write!(
                f,
                "DOCKER_HOST={host} is set: using that engine, nothing provisioned"
            );
        }
        if self.existing_engine {
            return write!(
                f,
                "an engine already answers on {DEFAULT_SOCKET}: using it, nothing provisioned"
            );
        }
        let mut done = Vec::new();
        if !self.installed_packages.is_empty() {
            done.push(format!("installed {}", self.installed_packages.join(" ")));
        }
        if let Some(config) = &self.config_written {
            let saved = match &self.config_backup {
                Some(backup) => format!(" (the old one saved as {})", backup.display()),
                None => String::new(),
            };
            done.push(format!("wrote {}{saved}", config.display()));
        }
        if let Some(pid) = self.service_started {
            done.push(format!(
                "started podman's Docker API service on {PODMAN_SOCKET} (pid {pid}, log {SERVICE_LOG})"
            ));
        }
        if self.link_made {
            done.push(format!("linked {DEFAULT_SOCKET} -> {PODMAN_SOCKET}"));
        }
        if done.is_empty() {
            write!(
                f,
                "podman already installed, configured and serving {PODMAN_SOCKET} (via {DEFAULT_SOCKET}): nothing to do"
            )
        } else {
            write!(f, "{}", done.join("; "))
        }
    }
}

/// Makes sure a Docker-compatible API answers where [`super::Engine::connect`] looks; see the
/// module docs. `allow_install`: whether missing packages may be installed with apt-get
/// (otherwise their absence is an error naming them).
///
/// Blocking (apt-get, waiting for the service): call it from a blocking context.
pub fn provision_engine(allow_install: bool) -> Result<EngineReport, ContainerError> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        tracing::info!(%host, "DOCKER_HOST is set: using that engine, provisioning nothing");
        return Ok(EngineReport {
            docker_host: Some(host),
            ..EngineReport::default()
        });
    }
    let default_socket = Path::new(DEFAULT_SOCKET);
    if !is_our_link(default_socket) && ping(default_socket).is_ok() {
        tracing::info!(
            "an engine already answers on {DEFAULT_SOCKET} (not podman's service behind \
             peerlab's link): using it, provisioning nothing"
        );
        return Ok(EngineReport {
            existing_engine: true,
            ..EngineReport::default()
        });
    }
    if !can_install() {
        return Err(ContainerError::NeedsRoot {
            config: CONTAINERS_CONF.into(),
            socket: PODMAN_SOCKET.into(),
        });
    }

    let mut report = EngineReport {
        installed_packages: ensure_packages(&ENGINE_PACKAGES, allow_install).map_err(|e| {
            ContainerError::Provision {
                step: format!("installing {}", ENGINE_PACKAGES.join(" ")),
                reason: e.to_string(),
            }
        })?,
        ..EngineReport::default()
    };
    if !report.installed_packages.is_empty() {
        tracing::info!(packages = %report.installed_packages.join(" "), "installed the container engine's packages");
    }

    if let Some(backup) = ensure_config(Path::new(CONTAINERS_CONF))? {
        report.config_written = Some(PathBuf::from(CONTAINERS_CONF));
        report.config_backup = backup;
    }

    let podman_socket = Path::new(PODMAN_SOCKET);
    match ping(podman_socket) {
        Ok(()) => {
            if report.config_written.is_some() {
                report.service_restart_needed = true;
                tracing::warn!(
                    "podman's service on {PODMAN_SOCKET} was already running before \
                     {CONTAINERS_CONF} was written: it uses the new settings only once restarted \
                     (stop it and run `peerlab setup --containers` again)"
                );
            }
        }
        Err(why) => {
            tracing::info!("{PODMAN_SOCKET} does not answer ({why}): starting podman's service");
            report.service_started = Some(start_service(podman_socket)?);
        }
    }

    report.link_made = ensure_link(default_socket)?;
    Ok(report)
}

/// Whether `path` is the link setup makes (to [`PODMAN_SOCKET`]).
fn is_our_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|target| target == Path::new(PODMAN_SOCKET))
}

/// Asks the API on a Unix socket for `/_ping`; Ok when it answers 200.
///
/// Plain HTTP/1.0 over a std socket rather than bollard: this runs in blocking code, and
/// needs nothing but the status line. Every read and write is bounded by [`PING_TIMEOUT`].
fn ping(socket: &Path) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(PING_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PING_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("sending the ping: {e}"))?;
    // HTTP/1.0: the server closes after its answer; only its status line matters, so stop at
    // the first line or after a few KiB, whichever comes first.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    while !answer.contains(&b'\n') && answer.len() < 4096 {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("").trim();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("answered {status:?} instead of 200"))
    }
}

/// Whether a containers.conf already has the settings podman needs here (see [`CONFIG`]).
///
/// Only the two settings without which no container starts on these machines are required,
/// so a configuration someone made by hand for this (with systemd's cgroup manager on a
/// machine that runs systemd, say) is left alone.
fn config_suffices(text: &str) -> bool {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    let setting = |section: &str, key: &str| table.get(section).and_then(|s| s.get(key));
    let no_ulimits = setting("containers", "default_ulimits")
        .and_then(toml::Value::as_array)
        .is_some_and(Vec::is_empty);
    let runc = setting("engine", "runtime").and_then(toml::Value::as_str) == Some("runc");
    no_ulimits && runc
}

/// Writes [`CONFIG`] to `path` unless the file there already suffices; a file that was there
/// is first saved beside it. Returns `None` when nothing was written, else the backup (if
/// any).
fn ensure_config(path: &Path) -> Result<Option<Option<PathBuf>>, ContainerError> {
    let existing = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ContainerError::Io {
                what: format!("reading {}", path.display()),
                source: e,
            })
        }
    };
    if existing.as_deref().is_some_and(config_suffices) {
        tracing::debug!(config = %path.display(), "podman's configuration already suffices");
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(ContainerError::io(format!("creating {}", dir.display())))?;
    let backup = match existing {
        Some(_) => {
            let backup = free_backup_path(path);
            fs::copy(path, &backup).map_err(ContainerError::io(format!(
                "saving {} as {}",
                path.display(),
                backup.display()
            )))?;
            Some(backup)
        }
        None => None,
    };
    // Written beside the target and renamed over it: podman never reads a half-written file.
    let staging = path.with_extension("conf.peerlab-new");
    fs::write(&staging, CONFIG)
        .and_then(|()| fs::rename(&staging, path))
        .map_err(ContainerError::io(format!("writing {}", path.display())))?;
    match &backup {
        Some(backup) => tracing::info!(
            config = %path.display(),
            backup = %backup.display(),
            "wrote podman's configuration (runc, cgroupfs, no systemd or journald), saving the old one"
        ),
        None => tracing::info!(
            config = %path.display(),
            "wrote podman's configuration (runc, cgroupfs, no systemd or journald)"
        ),
    }
    Ok(Some(backup))
}

/// `<path>.peerlab-backup`, or `.peerlab-backup.<n>` if earlier backups exist: a backup is
/// never overwritten, so the file that was there first is never lost.
fn free_backup_path(path: &Path) -> PathBuf {
    let base = format!("{}.peerlab-backup", path.display());
    std::iter::once(PathBuf::from(&base))
        .chain((1..).map(|n| PathBuf::from(format!("{base}.{n}"))))
        .find(|candidate| fs::symlink_metadata(candidate).is_err())
        .unwrap_or_else(|| PathBuf::from(base))
}

/// Starts `podman system service` on `socket`, detached (its own session, so neither the
/// end of this process nor a Ctrl-C in its terminal stops it), its output appended to
/// [`SERVICE_LOG`]; waits until the socket answers. Returns its pid.
fn start_service(socket: &Path) -> Result<u32, ContainerError> {
    let step = "starting podman's Docker API service";
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir)
            .map_err(ContainerError::io(format!("creating {}", dir.display())))?;
    }
    // A socket file nobody listens on is left over from a service that died; podman would
    // refuse to bind over it. One that accepts connections but did not answer the ping is a
    // live process we did not start: not ours to replace.
    if fs::symlink_metadata(socket).is_ok() {
        if UnixStream::connect(socket).is_ok() {
            return Err(ContainerError::Provision {
                step: step.into(),
                reason: format!(
                    "something listens on {} but does not answer the Docker API's ping: stop \
                     it (a hung podman service?) and run `peerlab setup --containers` again",
                    socket.display()
                ),
            });
        }
        fs::remove_file(socket).map_err(ContainerError::io(format!(
            "removing the stale socket {}",
            socket.display()
        )))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(SERVICE_LOG)
        .map_err(ContainerError::io(format!("opening {SERVICE_LOG}")))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log_err = log
        .try_clone()
        .map_err(ContainerError::io(format!("opening {SERVICE_LOG}")))?;
    let mut command = Command::new("podman");
    command
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        // The service outlives this process, and every conmon it spawns inherits its working
        // directory: one that is later deleted (a clone the tests ran from) makes every
        // container start fail with "write child: broken pipe".
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it is the only
    // call made between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| ContainerError::Provision {
        step: step.into(),
        reason: format!("cannot run podman: {e}"),
    })?;
    let pid = child.id();
    let started = Instant::now();
    loop {
        let last_error = match ping(socket) {
            Ok(()) => {
                tracing::info!(
                    pid,
                    log = SERVICE_LOG,
                    "podman's Docker API answers on {} after {:.1}s",
                    socket.display(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(pid);
            }
            Err(e) => e,
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ContainerError::Provision {
                step: step.into(),
                reason: format!(
                    "`podman system service` exited ({status}); the end of {SERVICE_LOG}:\n{}",
                    log_tail(log_start)
                ),
            });
        }
        if started.elapsed() >= SERVICE_START_TIMEOUT {
            // A service that does not answer is of no use and would hold the socket path.
            let _ = child.kill();
            let _ = child.wait();
            return Err(ContainerError::Provision {
                step: step.into(),
                reason: format!(
                    "{} did not answer within {}s (last: {last_error}); stopped it. The end of \
                     {SERVICE_LOG}:\n{}",
                    socket.display(),
                    SERVICE_START_TIMEOUT.as_secs(),
                    log_tail(log_start)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last lines the service wrote to [`SERVICE_LOG`] since offset `from`.
fn log_tail(from: u64) -> String {
    let text = match fs::read(SERVICE_LOG) {
        Ok(bytes) => {
            let from = usize::try_from(from).unwrap_or(0).min(bytes.len());
            String::from_utf8_lossy(&bytes[from..]).into_owned()
        }
        Err(e) => return format!("(cannot read it: {e})"),
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail.join("\n")
    }
}

/// Links [`DEFAULT_SOCKET`] (`link`) to [`PODMAN_SOCKET`] unless something is there already;
/// returns whether it made the link. Something else there that does not answer is not
/// removed (it may belong to an engine that is merely stopped): the error says what to do.
fn ensure_link(link: &Path) -> Result<bool, ContainerError> {
    if is_our_link(link) {
        return Ok(false);
    }
    if fs::symlink_metadata(link).is_ok() {
        return if ping(link).is_ok() {
            Ok(false)
        } else {
            Err(ContainerError::Provision {
                step: format!("linking {} to {PODMAN_SOCKET}", link.display()),
                reason: format!(
                    "{} exists, is not peerlab's link and does not answer (an engine that is \
                     stopped?): start that engine, or remove {} and run `peerlab setup \
                     --containers` again, or use podman's service directly with \
                     DOCKER_HOST=unix://{PODMAN_SOCKET}",
                    link.display(),
                    link.display()
                ),
            })
        };
    }
    if let Some(dir) = link.parent() {
        fs::create_dir_all(dir)
            .map_err(ContainerError::io(format!("creating {}", dir.display())))?;
    }
    std::os::unix::fs::symlink(PODMAN_SOCKET, link).map_err(ContainerError::io(format!(
        "linking {} to {PODMAN_SOCKET}",
        link.display()
    )))?;
    tracing::info!("linked {} -> {PODMAN_SOCKET}", link.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_configuration_suffices() {
        assert!(config_suffices(CONFIG));
    }

    #[test]
    fn a_configuration_lacking_either_setting_does_not_suffice() {
        assert!(!config_suffices(""));
        assert!(!config_suffices("[engine]\nruntime = \"runc\"\n"));
        assert!(!config_suffices("[containers]\ndefault_ulimits = []\n"));
        assert!(!config_suffices(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n[engine]\nruntime = \"runc\"\n"
        ));
        assert!(!config_suffices(
            "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"crun\"\n"
        ));
        assert!(!config_suffices("not toml ["));
    }

    #[test]
    fn a_hand_made_configuration_with_both_settings_is_kept() {
        let text = "# mine\n[containers]\ndefault_ulimits = []\nlog_driver = \"k8s-file\"\n\n\
                    [engine]\nruntime = \"runc\"\ncgroup_manager = \"systemd\"\n";
        assert!(config_suffices(text));
    }

    #[test]
    fn ensure_config_writes_saves_the_old_file_and_then_leaves_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("containers.conf");
        fs::write(&path, "[engine]\nruntime = \"crun\"\n").expect("write");
        let backup = ensure_config(&path).expect("ensure").expect("written");
        let backup = backup.expect("a backup of the old file");
        assert_eq!(
            fs::read_to_string(&backup).expect("backup"),
            "[engine]\nruntime = \"crun\"\n"
        );
        assert_eq!(fs::read_to_string(&path).expect("config"), CONFIG);
        assert_eq!(ensure_config(&path).expect("second ensure"), None);

        // A later replacement by someone else is saved under a fresh name, never over the
        // first backup.
        fs::write(&path, "").expect("write");
        let second = ensure_config(&path).expect("ensure").expect("written");
        let second = second.expect("a second backup");
        assert_ne!(second, backup);
        assert!(backup.is_file() && second.is_file());
    }

    #[test]
    fn report_says_what_was_done() {
        let report = EngineReport {
            installed_packages: vec!["podman".into(), "runc".into()],
            link_made: true,
            ..EngineReport::default()
        };
        let text = report.to_string();
        assert!(text.contains("installed podman runc"), "{text}");
        assert!(text.contains(DEFAULT_SOCKET), "{text}");
        assert!(report.changed());
        assert!(!EngineReport::default().changed());
        assert!(EngineReport::default()
            .to_string()
            .contains("nothing to do"));
    }
}
