//! [`NodeContainer`]: one regtest node in a container, started through testcontainers.
//!
//! The node's datadir is a host directory bind-mounted at `/data`, so its `debug.log`, RPC
//! cookie, IPC socket and pid file are host files: every extractor reaches a container node
//! the way it reaches a local one. The eBPF extractor attaches from the host to the binary as
//! the process sees it, `/proc/<host pid>/root/usr/bin/<binary>`, and follows the host pid
//! written to [`NodeContainer::host_pid_file`]. RPC and P2P are reached at the container's
//! address on the private network; nothing is published on the host.
//!
//! Invariants: the container is removed when the handle drops (testcontainers), and is ready
//! when [`NodeContainer::start`] returns (Core printed `init message: Done loading`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt as _;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use super::{ContainerError, Engine, LABEL};
use crate::node::HARNESS_ARGS;

/// Regtest RPC port inside the container.
pub const RPC_PORT: u16 = 18443;
/// Regtest P2P port inside the container.
pub const P2P_PORT: u16 = 18444;
/// How long a node may take to be ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Log lines quoted when a container dies.
const LAST_LINES: usize = 20;

/// How to start one node container.
#[derive(Debug, Clone)]
pub struct NodeContainerSpec {
    /// The node's name in the scenario (the container is `peerlab-<run>-<name>`).
    pub name: String,
    /// The image reference (`localhost/peerlab-bitcoind:<tag>`).
    pub image: String,
    /// The Core binary in the image's `/usr/bin` (`bitcoind` or `bitcoin-node`).
    pub binary: String,
    /// Arguments after the harness's own.
    pub extra_args: Vec<String>,
    /// Host directory mounted as the datadir (created if missing).
    pub datadir: PathBuf,
    /// The network to join.
    pub network: String,
}

/// A running node container.
pub struct NodeContainer {
    container: ContainerAsync<GenericImage>,
    engine: Engine,
    spec: NodeContainerSpec,
    container_name: String,
    address: Ipv4Addr,
    host_pid: u32,
    host_pid_file: PathBuf,
}

impl NodeContainer {
    /// Starts the node and waits until it is ready, then reads its address and host pid.
    pub async fn start(
        engine: &Engine,
        spec: NodeContainerSpec,
        run_id: &str,
    ) -> Result<NodeContainer, ContainerError> {
        std::fs::create_dir_all(&spec.datadir).map_err(|source| ContainerError::Io {
            what: format!("creating {}", spec.datadir.display()),
            source,
        })?;
        let (repository, tag) = split_reference(&spec.image);
        let container_name = format!("peerlab-{run_id}-{}", spec.name);
        let entrypoint = format!("/usr/bin/{}", spec.binary);
        let mut args: Vec<String> = HARNESS_ARGS.iter().map(|a| a.to_string()).collect();
        args.extend(
            [
                "-datadir=/data",
                // Readiness is read from the console; debug.log is still written.
                "-printtoconsole=1",
                "-server=1",
                "-rpcbind=0.0.0.0",
                "-rpcallowip=0.0.0.0/0",
                "-bind=0.0.0.0",
            ]
            .map(String::from),
        );
        if spec.binary == "bitcoin-node" {
            args.push("-ipcbind=unix".into());
        }
        args.extend(spec.extra_args.iter().cloned());
        let request = GenericImage::new(repository, tag)
            .with_entrypoint(&entrypoint)
            .with_wait_for(WaitFor::message_on_stdout("init message: Done loading"))
            .with_cmd(args)
            .with_container_name(&container_name)
            .with_network(&spec.network)
            .with_label(LABEL, run_id)
            .with_mount(Mount::bind_mount(
                spec.datadir.display().to_string(),
                "/data",
            ))
            .with_startup_timeout(STARTUP_TIMEOUT);
        let container = request.start().await.map_err(|e| ContainerError::Api {
            what: format!("starting container {container_name} ({})", spec.image),
            reason: e.to_string(),
        })?;
        let inspect = engine
            .docker()
            .inspect_container(container.id(), None)
            .await
            .map_err(ContainerError::api(format!("inspecting {container_name}")))?;
        let host_pid = inspect
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|pid| *pid > 0)
            .ok_or_else(|| ContainerError::Api {
                what: format!("inspecting {container_name}"),
                reason: "the engine reports no host pid".into(),
            })?;
        let address = address_on(&inspect, &spec.network, &container_name)?;
        // Beside the datadir, not in it: bitcoind writes its own (container-namespace) pid
        // file there.
        let host_pid_file = spec
            .datadir
            .with_file_name(format!("{}.host-pid", spec.name));
        std::fs::write(&host_pid_file, format!("{host_pid}\n")).map_err(|source| {
            ContainerError::Io {
                what: format!("writing {}", host_pid_file.display()),
                source,
            }
        })?;
        tracing::info!(node = %spec.name, %address, host_pid, "node container ready");
        Ok(NodeContainer {
            container,
            engine: engine.clone(),
            spec,
            container_name,
            address,
            host_pid,
            host_pid_file,
        })
    }

    /// The node's name in the scenario.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Its address on the private network.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// Where its P2P port listens.
    pub fn p2p_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.address), P2P_PORT)
    }

    /// Its RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://{}:{RPC_PORT}", self.address)
    }

    /// The host directory that is its datadir.
    pub fn datadir(&self) -> &Path {
        &self.spec.datadir
    }

    /// The regtest directory of the datadir (`debug.log`, `.cookie`, `node.sock`).
    pub fn chain_dir(&self) -> PathBuf {
        self.spec.datadir.join("regtest")
    }

    /// The RPC cookie file.
    pub fn cookie_file(&self) -> PathBuf {
        self.chain_dir().join(".cookie")
    }

    /// Its IPC socket, when it runs `bitcoin-node`.
    pub fn ipc_socket(&self) -> Option<PathBuf> {
        (self.spec.binary == "bitcoin-node").then(|| self.chain_dir().join("node.sock"))
    }

    /// The node process's pid on the host.
    pub fn host_pid(&self) -> u32 {
        self.host_pid
    }

    /// A host file holding [`host_pid`](Self::host_pid), for the eBPF extractor.
    pub fn host_pid_file(&self) -> &Path {
        &self.host_pid_file
    }

    /// The binary as the host sees it through the process's root, for the eBPF extractor.
    pub fn binary_on_host(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/usr/bin/{}",
            self.host_pid, self.spec.binary
        ))
    }

    /// `Ok` while the container runs; [`ContainerError::Died`] with its last log lines once
    /// it has exited.
    pub async fn check_alive(&self) -> Result<(), ContainerError> {
        let inspect = self
            .engine
            .docker()
            .inspect_container(self.container.id(), None)
            .await;
        let state = match inspect {
            Ok(inspect) => inspect.state,
            // Removed under us counts as dead.
            Err(e) => {
                return Err(ContainerError::Died {
                    name: self.container_name.clone(),
                    reason: format!("gone: {e}"),
                    log: String::new(),
                })
            }
        };
        let running = state.as_ref().and_then(|s| s.running).unwrap_or(false);
        if running {
            return Ok(());
        }
        let reason = match state.and_then(|s| s.exit_code) {
            Some(code) => format!("exited with code {code}"),
            None => "not running".into(),
        };
        Err(ContainerError::Died {
            name: self.container_name.clone(),
            reason,
            log: self.last_log_lines(LAST_LINES).await,
        })
    }

    /// The last `n` lines the container printed (stdout and stderr).
    pub async fn last_log_lines(&self, n: usize) -> String {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut logs = self
            .engine
            .docker()
            .logs(self.container.id(), Some(options));
        let mut text = String::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), logs.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text
    }

    /// Stops and removes the container now (dropping the handle does the same, later).
    pub async fn remove(self) -> Result<(), ContainerError> {
        let name = self.container_name.clone();
        self.container.rm().await.map_err(|e| ContainerError::Api {
            what: format!("removing {name}"),
            reason: e.to_string(),
        })
    }
}

/// The container's address on `network`, from its inspection.
pub(super) fn address_on(
    inspect: &bollard::models::ContainerInspectResponse,
    network: &str,
    container_name: &str,
) -> Result<Ipv4Addr, ContainerError> {
    inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|n| n.ip_address.as_deref())
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| ContainerError::Api {
            what: format!("inspecting {container_name}"),
            reason: format!("no address on network {network}"),
        })
}

/// `repo:tag` -> (`repo`, `tag`); `latest` when there is no tag.
pub(super) fn split_reference(image: &str) -> (String, String) {
    // A colon after the last slash separates the tag (one before it is a registry port).
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_at_the_tag_not_at_a_registry_port() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            split_reference("localhost/peerlab-bitcoind:0123abcd"),
            pair("localhost/peerlab-bitcoind", "0123abcd")
        );
        assert_eq!(
            split_reference("registry:5000/x/y"),
            pair("registry:5000/x/y", "latest")
        );
        assert_eq!(split_reference("nats"), pair("nats", "latest"));
    }
}
