//! Containers: regtest nodes (and their NATS) as containers on a private network, driven
//! through a Docker-compatible API (podman's service here, Docker's engine elsewhere).
//!
//! This module owns the provisioning of that API on a bare Debian machine ([`setup`]:
//! podman, configured and serving the Docker API), the connection to it ([`engine`]), the
//! images built from the binaries `peerlab setup` provisioned ([`image`], no registry
//! involved), the private networks ([`network`]) and the node containers ([`node`], started
//! through testcontainers).
//!
//! Invariants:
//! - everything created here carries the label [`LABEL`] (value: the run's id), so what a
//!   run leaves behind can be listed and removed;
//! - containers are removed when their handle is dropped (testcontainers' cleanup on drop),
//!   networks when theirs is, also when a test fails or a rehearsal errors;
//! - nothing listens beyond the private network: containers publish no port on the host;
//!   the host reaches them at their addresses on the network's bridge;
//! - a container that dies is reported with its name and its last log lines, never as a
//!   silent absence of events.
//!
//! Layer: above [`crate::node`] (it starts what `node` provisioned), below everything that
//! moves events; the stack layer composes it into a topology (`stack::ContainerStack`).

pub mod engine;
pub mod image;
pub mod nats;
pub mod network;
pub mod node;
pub mod setup;

pub use engine::Engine;
pub use image::{ensure_images, image_refs, Images};
pub use nats::NatsContainer;
pub use network::ContainerNetwork;
pub use node::{NodeContainer, NodeContainerSpec};
pub use setup::{provision_engine, EngineReport};

/// The label on every container and network peerlab creates; its value is the run's id.
pub const LABEL: &str = "io.peerlab.run";

/// Why a container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No Docker-compatible API answers.
    #[error(
        "no Docker-compatible API socket answers ({tried}). Run `peerlab setup --containers` \
         (installs podman and serves its Docker API on /run/podman/podman.sock, linked from \
         /var/run/docker.sock), or point DOCKER_HOST at a running one \
         (DOCKER_HOST=unix:///path/to/docker.sock)"
    )]
    NoSocket {
        /// What was tried and why it failed.
        tried: String,
    },
    /// An API call failed.
    #[error("{what}: {reason}")]
    Api {
        /// What was being done.
        what: String,
        /// The engine's answer.
        reason: String,
    },
    /// An image the run needs is not built.
    #[error("image {image} is not built: run `peerlab setup --containers`")]
    MissingImage {
        /// The image reference.
        image: String,
    },
    /// A container exited while the run needed it.
    #[error("container {name} died ({reason}); its last log lines:\n{log}")]
    Died {
        /// The container's name.
        name: String,
        /// Exit code or state.
        reason: String,
        /// Its last log lines.
        log: String,
    },
    /// Provisioning the engine (`peerlab setup --containers`) needs root and we are not.
    #[error(
        "setting up the container engine needs root: it installs podman and runc, writes \
         {config} and serves podman's Docker API on {socket}. Run `sudo peerlab setup \
         --containers`, or serve a Docker-compatible API yourself and point DOCKER_HOST at it \
         (rootless podman: `podman system service --time=0 &`, then \
         DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock)"
    )]
    NeedsRoot {
        /// The configuration file setup would write.
        config: String,
        /// The socket setup would serve.
        socket: String,
    },
    /// A provisioning step of `peerlab setup --containers` failed.
    #[error("setting up the container engine: {step}: {reason}")]
    Provision {
        /// The step (`installing podman`, `starting podman's service`, ...).
        step: String,
        /// What went wrong, with what to do about it when we know.
        reason: String,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl ContainerError {
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let what = what.into();
        move |e| ContainerError::Api {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| ContainerError::Io { what, source }
    }
}
