//! Images built from local binaries (stub; see the helper's work).

use super::{ContainerError, Engine};
use crate::node::Installation;

/// The image references a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// The traceable bitcoind (with `bitcoin-node` when the installation has it).
    pub bitcoind: String,
    /// nats-server.
    pub nats: String,
}

/// Builds the images of `installation` unless they exist; returns their references.
pub async fn ensure_images(
    engine: &Engine,
    installation: &Installation,
) -> Result<Images, ContainerError> {
    let _ = (engine, installation);
    Err(ContainerError::MissingImage {
        image: "peerlab-bitcoind".into(),
    })
}
