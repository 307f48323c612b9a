//! [`Engine`]: the Docker-compatible API peerlab's containers are driven through.
//!
//! The socket is the one testcontainers uses too, so both talk to the same engine:
//! `DOCKER_HOST` when set, else `/var/run/docker.sock` (which `peerlab setup --containers`
//! links to podman's service socket). Connecting pings the engine, so a missing or dead
//! socket is an error that says how to get one, before anything is started.

use std::path::Path;
use std::time::Duration;

use bollard::Docker;

use super::ContainerError;

/// Where podman serves the Docker API when `peerlab setup --containers` started it.
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// The Docker API socket clients look for when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long the engine may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected, answering Docker-compatible engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl Engine {
    /// Connects to `DOCKER_HOST` or the default socket and pings it.
    pub async fn connect() -> Result<Engine, ContainerError> {
        let host = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => host,
            _ => {
                if !Path::new(DEFAULT_SOCKET).exists() {
                    let hint = if Path::new(PODMAN_SOCKET).exists() {
                        format!(
                            "{DEFAULT_SOCKET} does not exist, but {PODMAN_SOCKET} does: \
                             DOCKER_HOST=unix://{PODMAN_SOCKET} would use it"
                        )
                    } else {
                        format!("DOCKER_HOST is not set and {DEFAULT_SOCKET} does not exist")
                    };
                    return Err(ContainerError::NoSocket { tried: hint });
                }
                format!("unix://{DEFAULT_SOCKET}")
            }
        };
        let no_socket = |reason: String| ContainerError::NoSocket {
            tried: format!("{host}: {reason}"),
        };
        let docker = Docker::connect_with_local_defaults().map_err(|e| no_socket(e.to_string()))?;
        match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => Ok(Engine { docker, host }),
            Ok(Err(e)) => Err(no_socket(e.to_string())),
            Err(_) => Err(no_socket(format!(
                "no answer within {}s",
                PING_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The API client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Where the engine was reached (`unix:///var/run/docker.sock`, ...).
    pub fn host(&self) -> &str {
        &self.host
    }
}
