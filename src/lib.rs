//! peerlab: the observer stack of a Bitcoin honeynode, plus a record-and-replay testbed.
//!
//! # A guided tour
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//!   node ──► extractor ──► bus ──► tools / recorder
//!   (bitcoind)  (eBPF on USDT)  (NATS)   (logger, ...)
//! ```
//!
//! 1. **[`event`]: the schema.** peer-observer's protobuf wire format, compiled at build time
//!    from `proto/` into prost types, with the encoded descriptor set embedded (recordings
//!    carry it) and a strict required-field check that mirrors what proto2 decoders in other
//!    languages enforce. Everything on the bus is one `event.Event`, except peerlab's own
//!    counter snapshots, typed once in [`event::counters`].
//!
//! 2. **[`node`]: node control.** `peerlab setup` provisions a machine: Debian packages and a
//!    bitcoind built with USDT tracepoints from the Bitcoin Core tree shipped in the
//!    `libbitcoinkernel-sys` crate, cached outside the repository and checked by parsing its
//!    `.note.stapsdt` notes. [`node::RegtestNode`] runs a private regtest node for tests, the
//!    embedded stack and attack scenarios; it mines to a keyless address so a wallet-less
//!    node can still make and spend coins. [`node::NodeRpc`] is the RPC surface shared by
//!    that node and a user's node reached by URL ([`node::RemoteNode`]).
//!
//! 3. **[`usdt`]: tracepoints on top of aya.** aya loads BPF programs but knows nothing of
//!    USDT. This module reads probe notes, parses argument specifications into the layout the
//!    BPF side reads (`bpf/usdt.h`), and attaches through a perf event whose `ref_ctr_offset`
//!    lets the kernel manage the probe's semaphore, without which Bitcoin Core's tracepoints
//!    never fire.
//!
//! 4. **[`extractors`]: node -> events.** The eBPF extractor loads `bpf/peerlab.bpf.c` (one
//!    program per tracepoint), drains its ring buffers in batches, restores the order the
//!    records were taken in, decodes P2P payloads with rust-bitcoin ([`extractor::p2p_decode`];
//!    Tor and I2P names both ways in [`extractor::names`]) and hands events to the bus.
//!    Kernel-side drops are counted per tracepoint.
//!
//! 5. **[`bus`]: NATS.** [`bus::Publisher`] never blocks its producer: a bounded buffer, batches
//!    confirmed by a server round trip no other client can intercept (a marker to a subject
//!    it subscribes to itself), re-sent only after a lost connection, every overflow counted.
//!    [`bus::Subscriber`] reads a subject scheme (peer-observer's flat subjects, or
//!    `<prefix>.<node>.<subject>` for fleets).
//!
//! 6. **[`tools`]: consumers.** The logger prints events readably or as JSON lines.
//!
//! 7. **[`record`]: record and replay.** The recorder is a bus consumer writing MCAP files
//!    (one channel per subject, the descriptor set as schema, chunks flushed every second);
//!    replay streams them back ([`record::RecordingStream`], one chunk in memory at a time)
//!    and publishes through the same [`bus::Publisher`] real extractors use, so tools cannot
//!    tell a replay from live traffic.
//!
//! 8. **[`peer`]: a scriptable P2P peer** for tests and attack scenarios: it enters where real
//!    traffic does, the node's P2P port. [`peer::behaviour`] plays every scenario behaviour
//!    (floods, malformed frames, header spam, invalid blocks, transaction spam, ...) with
//!    chain objects from [`peer::chain`], and [`peer::replay`] re-sends a recorded peer's
//!    inbound messages, turned back into wire bytes by [`peer::reencode`] (the exact inverse
//!    of the extractor's decoder).
//!
//! [`scenario`] reads attack-rehearsal scenario files (TOML, errors with file:line:col) and
//! [`rehearse`] plays them, against the embedded stack or a user's running one, with
//! [`peer::run_peer`]'s scripted peers, then judges the expectations from what the observer
//! saw.
//!
//! 9. **[`stack`]: private servers** (nats-server on a free port) for tests and the embedded
//!    default stack that `peerlab run` starts.
//!
//! [`secret`] is the one place that knows what a credential looks like in a URL or on a
//! command line; every log line, error and recording that shows an address or arguments
//! goes through it. It imports nothing of peerlab, so any layer may use it.
//!
//! # The layer rule
//!
//! A module uses only modules listed before it here, never one after it:
//!
//! ```text
//! secret, logging  <  event  <  usdt  <  node  <  bus  <  harness  <  scenario
//!   <  extractor  <  tools  <  record  <  peer  <  rehearse  <  commands  (<  main.rs)
//! ```
//!
//! So the schema knows nothing of NATS, the bus nothing of extractors, extractors and tools
//! nothing of the recorder, and only `commands` and `main.rs` know every part. The scenario
//! format sits low (it depends on the schema only) because the peer engine and the runner
//! read it; moving the attack engine's parameter types below it is the next step.
//!
//! [`commands`] holds what each subcommand does, turning library errors into messages for a
//! person. The binary's `cli/` layer (one file per command family) owns every clap type and
//! turns arguments into these option structs; `main.rs` only parses, runs and prints an
//! error. Nothing in the library knows clap.

#![warn(missing_docs)]

pub mod attack;
pub mod bus;
pub mod event;
pub mod extractors;
pub mod logging;
pub mod node;
pub mod p2p;
pub mod peer;
pub mod record;
pub mod rehearse;
pub mod scenario;
pub mod secret;
pub mod shutdown;
pub mod stack;
pub mod tools;
pub mod usdt;
