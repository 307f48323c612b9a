//! Node containers (stub).

/// A running node container.
pub struct NodeContainer;
/// How to start one.
pub struct NodeContainerSpec;
