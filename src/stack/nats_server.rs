//! A private nats-server on a free loopback port, stopped on drop.

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, StackError};

/// `max_payload` of harness servers: whole blocks (up to 4 MB on the wire, more as protobuf)
/// travel in one event, so this must comfortably exceed peer-observer's 5 MiB minimum.
pub const NATS_MAX_PAYLOAD: usize = 8 << 20;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nats-server; killed when dropped.
pub struct NatsServer {
    exe: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Configuration appended to the harness's own (e.g. an `authorization` block).
    extra_config: String,
}

impl NatsServer {
    /// Starts `exe` on a free port and waits until it greets clients.
    pub fn start(exe: &Path) -> Result<NatsServer, StackError> {
        NatsServer::start_with_config(exe, "")
    }

    /// Like [`start`](Self::start), with `extra_config` (nats-server configuration syntax)
    /// appended to the harness's settings, e.g. `authorization { ... }`.
    pub fn start_with_config(exe: &Path, extra_config: &str) -> Result<NatsServer, StackError> {
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port().map_err(|e| start_error(format!("no free port: {e}")))?;
            let dir = tempfile::tempdir()
                .map_err(|e| start_error(format!("no temporary directory: {e}")))?;
            let mut server = NatsServer {
                exe: exe.to_path_buf(),
                port,
                dir,
                child: None,
                extra_config: extra_config.to_string(),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                // Most likely another process took the port between probe and bind: retry.
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(start_error(last_error))
    }

    /// The server process's id while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (clients see a dropped connection).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the server to shut down (SIGTERM, as `systemctl stop` would) and waits for it.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid; no memory is touched.
            let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) } == 0;
            if !sent {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`stop`](Self::stop)).
    pub fn restart(&mut self) -> Result<(), StackError> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), StackError> {
        let config = self.dir.path().join("nats.conf");
        let log = self.dir.path().join("nats.log");
        std::fs::write(
            &config,
            format!(
                "host: 127.0.0.1\nport: {}\nmax_payload: {NATS_MAX_PAYLOAD}\nmax_pending: {}\nlog_file: \"{}\"\n{}\n",
                self.port,
                // Room for a subscriber to lag behind a fast publisher of large events.
                256 << 20,
                log.display(),
                self.extra_config
            ),
        )
        .map_err(|e| start_error(format!("cannot write {}: {e}", config.display())))?;
        let child = Command::new(&self.exe)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                start_error(format!(
                    "cannot run {}: {e} (run `peerlab setup`)",
                    self.exe.display()
                ))
            })?;
        self.child = Some(child);
        self.wait_ready(&log)
    }

    /// Ready = a TCP client receives the server's `INFO` greeting.
    fn wait_ready(&mut self, log: &Path) -> Result<(), StackError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let tail = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(start_error(format!(
                        "nats-server exited ({status}) on port {}: {}",
                        self.port,
                        tail.lines().last().unwrap_or("no log output")
                    )));
                }
            }
            if greets(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(start_error(format!(
                    "no INFO greeting on port {} within {READY_TIMEOUT:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn greets(port: u16) -> bool {
    let Ok(stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO ")
}

fn start_error(reason: String) -> StackError {
    StackError::Start {
        what: "nats-server".into(),
        reason,
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
