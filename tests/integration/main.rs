//! The integration tests, as one binary of modules (so the suite links once, not once per
//! file): each module is one area, against the real bitcoind, nats-server and eBPF that
//! `peerlab setup` provisions. The rehearsal tests (`tests/rehearse.rs`) stay a binary of
//! their own: their scenarios judge deadlines, so they run without other tests beside them.

mod common;

mod alerts_golden;
mod alerts_tool;
mod anonymize;
mod archives;
mod bus;
mod cli_errors;
mod container_images;
mod dashboard_names;
mod ebpf_extractor;
mod embedded_stack;
mod fleet_namespaces;
mod foxglove_reader;
mod golden_replay;
mod hostile_input;
mod ipc_extractor;
mod log_extractor;
mod logger_cli;
mod metrics_tool;
mod nix_files;
mod nix_module;
mod observe;
mod p2p_extractor;
mod peer;
mod peer_behaviours;
mod publisher_spool;
mod record_replay;
mod recording_files;
mod regtest_harness;
mod rpc_extractor;
mod schema_golden;
mod schema_matches_spec;
mod schema_roundtrip;
mod secrets;
mod status_cli;
mod usdt_layer;
mod web_pages;
mod websocket_tool;
