//! The `peerobserver_rpc_*` families, from the RPC extractor's events (metrics.md §4.6).

use super::iplists::IpLists;
use super::register::Register;
use crate::event::proto::rpc_extractor::rpc::RpcEvent;

/// Every `rpc` family, and the state some of them keep between events.
pub struct RpcMetrics {}

impl RpcMetrics {
    /// Registers every family.
    pub fn new(_register: &Register<'_>) -> prometheus::Result<RpcMetrics> {
        Ok(RpcMetrics {})
    }

    /// Updates the families of `event`'s arm.
    pub fn observe(&mut self, _event: &RpcEvent, _lists: &IpLists) {}
}
