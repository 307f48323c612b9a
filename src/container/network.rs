//! [`ContainerNetwork`]: the private network of one run, with a subnet peerlab chooses.
//!
//! The subnet is a free `10.N.0.0/16` (N in 200..=254, none of the engine's networks or the
//! host's routes use it), so the host can also take addresses of its own on the network's
//! bridge: [`ContainerNetwork::source_addresses`] adds `/32` addresses in `10.N.1.0` and
//! above (the engine hands containers addresses from `10.N.0.2` up), from which attacker
//! peers connect, each from a distinct address, without a container apiece.
//!
//! Invariants: the network and every address added to the bridge are removed by
//! [`ContainerNetwork::remove`], or when the handle is dropped (a failed test, an error
//! half-way through a run).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};

use super::{ContainerError, Engine, LABEL};

/// First and last second octet tried for the subnet.
const OCTETS: std::ops::RangeInclusive<u8> = 200..=254;
/// Most host addresses one network hands out (10.N.1.1 to 10.N.250.250).
pub const MAX_SOURCE_ADDRESSES: usize = 250 * 250;

/// A network of the engine, removed with its handle.
pub struct ContainerNetwork {
    engine: Engine,
    name: String,
    octet: u8,
    /// Host addresses added to the bridge, with the bridge they are on.
    added: Mutex<Vec<(String, Ipv4Addr)>>,
    removed: bool,
}

impl ContainerNetwork {
    /// Creates `peerlab-<run_id>` on a free subnet, labelled with the run.
    pub async fn create(engine: &Engine, run_id: &str) -> Result<ContainerNetwork, ContainerError> {
        let name = format!("peerlab-{run_id}");
        let used = used_octets(engine).await?;
        let mut last_error = String::from("no free 10.N.0.0/16 with N in 200..=254");
        for octet in OCTETS.filter(|o| !used.contains(o)) {
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("10.{octet}.0.0/16")),
                        gateway: Some(format!("10.{octet}.0.1")),
                        ..IpamConfig::default()
                    }]),
                    ..Ipam::default()
                }),
                labels: Some(HashMap::from([(LABEL.to_string(), run_id.to_string())])),
                ..NetworkCreateRequest::default()
            };
            match engine.docker().create_network(request).await {
                Ok(_) => {
                    tracing::info!(network = %name, subnet = %format!("10.{octet}.0.0/16"), "container network created");
                    return Ok(ContainerNetwork {
                        engine: engine.clone(),
                        name,
                        octet,
                        added: Mutex::new(Vec::new()),
                        removed: false,
                    });
                }
                // Taken meanwhile (another run): try the next subnet.
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(ContainerError::Api {
            what: format!("creating network {name}"),
            reason: last_error,
        })
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on the network (its gateway): where containers reach the host.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }

    /// `count` host addresses on the network's bridge, distinct from every container's, for
    /// peers to connect from. The bridge exists once a container is attached, so call this
    /// after starting one.
    pub fn source_addresses(&self, count: usize) -> Result<Vec<Ipv4Addr>, ContainerError> {
        if count > MAX_SOURCE_ADDRESSES {
            return Err(ContainerError::Api {
                what: "adding source addresses".into(),
                reason: format!("{count} asked, at most {MAX_SOURCE_ADDRESSES}"),
            });
        }
        let bridge = self.bridge()?;
        let mut added = self.added.lock().map_err(|_| ContainerError::Api {
            what: "adding source addresses".into(),
            reason: "lock poisoned".into(),
        })?;
        let start = added.len();
        let mut out = Vec::with_capacity(count);
        for i in start..start + count {
            let address = Ipv4Addr::new(10, self.octet, (1 + i / 250) as u8, (1 + i % 250) as u8);
            ip(&["addr", "add", &format!("{address}/32"), "dev", &bridge])?;
            added.push((bridge.clone(), address));
            out.push(address);
        }
        Ok(out)
    }

    /// The bridge interface holding the gateway address.
    fn bridge(&self) -> Result<String, ContainerError> {
        let gateway = format!("inet {}/16", self.gateway());
        let listing = ip(&["-o", "-4", "addr", "show"])?;
        listing
            .lines()
            .find(|line| line.contains(&gateway))
            .and_then(|line| line.split_whitespace().nth(1))
            .map(|name| name.trim_end_matches(':').to_string())
            .ok_or_else(|| ContainerError::Api {
                what: format!("finding the bridge of network {}", self.name),
                reason: format!("no interface holds {}", self.gateway()),
            })
    }

    /// Removes the host addresses, then the network.
    pub async fn remove(mut self) -> Result<(), ContainerError> {
        self.remove_addresses();
        self.removed = true;
        self.engine
            .docker()
            .remove_network(&self.name)
            .await
            .map_err(ContainerError::api(format!(
                "removing network {}",
                self.name
            )))
    }

    fn remove_addresses(&self) {
        let added = match self.added.lock() {
            Ok(mut added) => std::mem::take(&mut *added),
            Err(_) => return,
        };
        for (bridge, address) in added {
            // The bridge goes with the network; a failure here only means it is gone.
            let _ = ip(&["addr", "del", &format!("{address}/32"), "dev", &bridge]);
        }
    }
}

impl Drop for ContainerNetwork {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.remove_addresses();
        // Drop cannot await: remove on a thread of its own with a runtime of its own (the
        // caller's runtime may be shutting down, or this may run outside one).
        let (docker, name) = (self.engine.docker().clone(), self.name.clone());
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_secs(20),
                    docker.remove_network(&name),
                )
                .await
                .ok()
                .map(|r| r.is_ok())
            })
        })
        .join();
        if !matches!(removed, Ok(Some(true))) {
            tracing::warn!(network = %self.name, "could not remove the container network; remove it with `podman network rm {}`", self.name);
        }
    }
}

/// Second octets of 10.N.0.0/16 already in use by the engine's networks or the host's
/// routes.
async fn used_octets(engine: &Engine) -> Result<Vec<u8>, ContainerError> {
    let networks = engine
        .docker()
        .list_networks(None)
        .await
        .map_err(ContainerError::api("listing networks"))?;
    let mut text: Vec<String> = networks
        .iter()
        .filter_map(|n| n.ipam.as_ref()?.config.clone())
        .flatten()
        .filter_map(|c| c.subnet)
        .collect();
    text.extend(
        ip(&["-o", "-4", "route", "show"])?
            .lines()
            .map(str::to_string),
    );
    text.extend(
        ip(&["-o", "-4", "addr", "show"])?
            .lines()
            .map(str::to_string),
    );
    Ok(OCTETS
        .filter(|o| {
            let prefix = format!("10.{o}.");
            text.iter().any(|line| line.contains(&prefix))
        })
        .collect())
}

/// Runs `ip` (iproute2) and returns its output.
fn ip(args: &[&str]) -> Result<String, ContainerError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| ContainerError::Io {
            what: "running `ip` (iproute2; install it)".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(ContainerError::Api {
            what: format!("ip {}", args.join(" ")),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
