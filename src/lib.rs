//! peerlab: the observer stack of a Bitcoin honeynode, plus a record-and-replay testbed.
//!
//! # A guided tour
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//!   node ──► extractors ──► bus ──► tools / recorder
//!   (bitcoind)  (eBPF on USDT)  (NATS)   (logger, ...)
//!               ▲                 ▲
//!     attack peers (P2P port)   replay (recordings)
//! ```
//!
//! 1. **[`event`]: the schema.** peer-observer's protobuf wire format, compiled at build time
//!    from `proto/` into prost types, with the encoded descriptor set embedded (recordings
//!    carry it) and a strict required-field check that mirrors what proto2 decoders in other
//!    languages enforce. Everything on the bus is one `event.Event`, except peerlab's own
//!    counter snapshots, typed once in [`event::counters`].
//!
//! 2. **[`p2p`]: the Bitcoin P2P wire format, both directions, no I/O.** Framing, the decoder
//!    from a payload to its `MessageEvent` arm, its exact inverse, and Tor/I2P address names.
//!
//! 3. **[`node`]: node control.** `peerlab setup` provisions a machine: Debian packages and a
//!    bitcoind built with USDT tracepoints from the Bitcoin Core tree shipped in the
//!    `libbitcoinkernel-sys` crate, cached outside the repository and checked by parsing its
//!    `.note.stapsdt` notes. [`node::RegtestNode`] runs a private regtest node; it mines to a
//!    keyless address so a wallet-less node can still make and spend coins.
//!    [`node::NodeRpc`] is the RPC surface shared by that node and a user's node reached by
//!    URL ([`node::RemoteNode`]).
//!
//! 4. **[`usdt`]: tracepoints on top of aya.** aya loads BPF programs but knows nothing of
//!    USDT. This module reads probe notes, parses argument specifications into the layout the
//!    BPF side reads (`bpf/usdt.h`), and attaches through a perf event whose `ref_ctr_offset`
//!    lets the kernel manage the probe's semaphore, without which Bitcoin Core's tracepoints
//!    never fire.
//!
//! 4b. **[`container`]: nodes in containers.** The Docker-compatible API (podman's service
//!    here) reached the way testcontainers reaches it, images built `FROM scratch` from the
//!    binaries setup provisioned, private networks with a chosen subnet, and bitcoind
//!    containers started through testcontainers (wait on a log line, removed on drop) whose
//!    datadir is a host directory, so every extractor reaches them as it reaches a local node.
//!
//! 5. **[`bus`]: NATS.** [`bus::Publisher`] never blocks its producer: a bounded buffer, batches
//!    confirmed by a server round trip no other client can intercept, re-sent only after a
//!    lost connection, every overflow counted. Behind the buffer an optional bounded spool on
//!    disk ([`bus::spool`]) takes what overflows while NATS is away and gives it back in
//!    order, so a restart of the local NATS loses nothing. [`bus::Subscriber`] reads a subject scheme
//!    (peer-observer's flat subjects, or `<prefix>.<node>.<subject>` for fleets), which also
//!    derives each component's counter subject. For fleets, [`bus::jetstream`] sets up the
//!    JetStream side: each honeynode's own stream and the collector's stream that sources
//!    them all across the leafnode links, so a cut link delays events instead of losing them.
//!
//! 6. **[`extractors`]: node -> events, siblings on one contract** ([`extractors::Extractor`]:
//!    start with a config, the shared publisher and a shutdown; typed counters; stop and
//!    return the final counters). The eBPF extractor ([`extractors::ebpf`]) loads
//!    `bpf/peerlab.bpf.c`, drains its ring buffers in batches, restores the order the records
//!    were taken in and decodes P2P payloads with [`p2p`]; kernel-side drops are counted per
//!    tracepoint. The RPC extractor ([`extractors::rpc`]) polls a node's JSON-RPC on two
//!    timers (peer-observer's twelve calls, `getpeerinfo` to `estimatesmartfee`), waits for a
//!    node that is not up, and counts failed calls per method. The log extractor
//!    ([`extractors::log`]) follows `debug.log` across rotation and parses every line like
//!    peer-observer; the P2P extractor ([`extractors::p2p`]) is a peer the node dials, timing
//!    its pings and publishing what the node announces; the IPC extractor
//!    ([`extractors::ipc`]) polls the tip over Bitcoin Core's Cap'n Proto socket, on a thread
//!    of its own (Cap'n Proto's RPC objects are not `Send`).
//!
//! 7. **[`tools`]: bus -> people, siblings on one contract** ([`tools::Tool`]: consume a
//!    subscriber until shutdown). The logger prints events readably or as JSON lines; the
//!    metrics tool ([`tools::metrics`]) serves peer-observer's Prometheus families, its
//!    event -> series engine free of I/O so recordings can be fed to it directly; the alerts
//!    tool ([`tools::alerts`]) runs peer-observer's spammer heuristics by event time and
//!    publishes what it finds on peerlab's own alerts subject; the websocket tool
//!    ([`tools::websocket`]) serves upstream's live feed and peerlab's pages; the status tool
//!    ([`tools::status`]) listens for a window to the events and counter snapshots of one
//!    node or a whole fleet and judges each node healthy or not (counters and events
//!    arrived, no drop counter grew), with leafnode links read from nats-server's monitoring
//!    port.
//!
//! 8. **[`record`]: record and replay.** The recorder is a bus consumer writing MCAP files
//!    (one channel per subject, the descriptor set as schema, chunks flushed every second);
//!    replay streams them back ([`record::RecordingStream`], one chunk in memory at a time)
//!    and publishes through the same [`bus::Publisher`] real extractors use, so tools cannot
//!    tell a replay from live traffic. peer-observer's archive files (`.bin`, `.bin.zst`)
//!    are a second format, read and written ([`record::archive`]); replay, inspect, cat and
//!    `convert` take either ([`record::RecordingSource`]). A fleet's collector records the
//!    JetStream fleet stream ([`record::collect`]), acknowledging only what is flushed and
//!    resuming without duplicates; rotating recorders keep a size budget
//!    ([`record::retention`]).
//!
//! 9. **[`stack`]: composition.** [`stack::NodeObserver`] attaches every extractor to one
//!    node from where it keeps its files and ports (`peerlab observe` uses it on the user's
//!    node); [`stack::EmbeddedStack`] starts a private nats-server, a regtest node, the
//!    publisher and that observer in order and stops them in reverse; `peerlab run`,
//!    `peerlab rehearse` and the tests all use it. [`stack::ContainerStack`] is the same for
//!    a topology: nodes in containers on a private network, NATS in one too, and an observer
//!    per watched node publishing on that node's subjects.
//!
//! 10. **[`peer`], [`attack`], [`scenario`], [`rehearse`]: the testbed.** [`peer::Peer`] is a
//!     scriptable P2P client (it enters where real traffic does, the node's P2P port);
//!     [`attack`] is the engine of adversarial behaviours it plays (floods, malformed frames,
//!     header spam, invalid blocks, transaction spam, replay of a recorded peer), with
//!     parameter types of its own; [`scenario`] is the TOML file format, which deserializes
//!     into those types (errors with file:line:col); [`rehearse`] runs a scenario against the
//!     embedded stack, a user's running one, or a topology of container nodes (`[[node]]`s),
//!     and judges its expectations from what the observer saw.
//!
//! [`shutdown`] is the one way a long-running piece is told to stop; [`secret`] is the one
//! place that knows what a credential looks like in a URL or on a command line. Neither
//! imports anything of peerlab, so any layer may use them.
//!
//! # The layer rule
//!
//! A module uses only modules listed before it here, never one after it:
//!
//! ```text
//! secret, shutdown, logging  <  event  <  p2p  <  usdt  <  node  <  container  <  bus
//!   <  extractors  <  tools  <  record  <  stack  <  peer  <  attack  <  scenario  <  rehearse
//!   (<  the binary's cli/ and main.rs)
//! ```
//!
//! So the schema knows nothing of NATS, the bus nothing of extractors, extractors and tools
//! nothing of each other or of the recorder, the attack engine nothing of the scenario file
//! format (the format depends on the engine), and only the binary knows every part. The
//! binary's `cli/` layer (one file per command family) owns every clap type, the one tokio
//! runtime, the signals that fire a command's shutdown, and everything printed on stdout; it
//! turns arguments into the library's option structs and composes the pieces. `main.rs` only
//! parses, runs and prints an error. Nothing in the library knows clap or writes to stdout.

#![warn(missing_docs)]

pub mod attack;
pub mod bus;
pub mod container;
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
