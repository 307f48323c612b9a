//! The metrics tool: every event on the bus turned into Prometheus series with peer-observer's
//! names, types, labels and buckets (shared/spec/metrics.md), so its Grafana dashboards work
//! unchanged against peerlab.

pub mod iplists;
pub mod labels;
pub mod register;
pub mod rpc;
