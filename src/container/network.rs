//! Private container networks (stub).

/// A private network.
pub struct ContainerNetwork;
