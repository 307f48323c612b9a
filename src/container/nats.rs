//! [`NatsContainer`]: the run's nats-server as a container on the private network.
//!
//! The extractors on the host publish to it at its network address, like a honeynode's
//! extractors publish to their local server; the image is the one `peerlab setup
//! --containers` built from the provisioned nats-server.

use std::net::Ipv4Addr;
use std::time::Duration;

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, GenericImage, ImageExt as _};

use super::node::{address_on, split_reference};
use super::{ContainerError, Engine, LABEL};

/// The client port inside the container.
pub const NATS_PORT: u16 = 4222;

/// A running nats-server container, removed when dropped.
pub struct NatsContainer {
    container: ContainerAsync<GenericImage>,
    address: Ipv4Addr,
}

impl NatsContainer {
    /// Starts nats-server from `image` on `network` and waits until it accepts clients.
    pub async fn start(
        engine: &Engine,
        image: &str,
        network: &str,
        run_id: &str,
    ) -> Result<NatsContainer, ContainerError> {
        let (repository, tag) = split_reference(image);
        let name = format!("peerlab-{run_id}-nats");
        let container = GenericImage::new(repository, tag)
            .with_entrypoint("/usr/bin/nats-server")
            .with_wait_for(WaitFor::message_on_either_std("Server is ready"))
            .with_cmd(["-a", "0.0.0.0", "-p", "4222"])
            .with_container_name(&name)
            .with_network(network)
            .with_label(LABEL, run_id)
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .map_err(|e| ContainerError::Api {
                what: format!("starting {name} ({image})"),
                reason: e.to_string(),
            })?;
        let inspect = engine
            .docker()
            .inspect_container(container.id(), None)
            .await
            .map_err(ContainerError::api(format!("inspecting {name}")))?;
        let address = address_on(&inspect, network, &name)?;
        Ok(NatsContainer { container, address })
    }

    /// The client URL the host connects to.
    pub fn url(&self) -> String {
        format!("nats://{}:{NATS_PORT}", self.address)
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        self.container.id()
    }
}
