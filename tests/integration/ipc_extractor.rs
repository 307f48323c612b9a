//! The IPC extractor against a real `bitcoin-node -ipcbind=unix` (built by `peerlab setup`)
//! and a real nats-server: after mining, the `BlockTip` it publishes has the height of
//! `getblockcount` and the hash of `getbestblockhash` (internal byte order on the wire); it
//! follows a node killed and restarted on the same datadir; a missing socket is a clear
//! error and a socket that speaks garbage is counted, never a panic. And the schema peerlab
//! compiles (`capnp/core_ipc.capnp`) is checked against Core's own schemas from the tree
//! `peerlab setup` builds: every interface id, method ordinal and field slot we use.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use peerlab::bus::{NatsOptions, SubjectScheme, Subscriber};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::proto::ipc_extractor::{ipc::IpcEvent, BlockTip};
use peerlab::event::{strict, Event};
use peerlab::extractors::ipc::{default_socket, IpcConfig, IpcError, IpcExtractor};
use peerlab::extractors::Extractor as _;
use peerlab::node::{NodeRpc as _, RegtestConfig, RegtestNode};
use peerlab::shutdown::Shutdown;
use peerlab::stack::NatsServer;
use prost::Message as _;

fn bitcoin_node() -> PathBuf {
    common::installation().bitcoin_node.unwrap_or_else(|| {
        panic!("the installation has no bitcoin-node; run `peerlab setup` (it builds one)")
    })
}

/// A `bitcoin-node` serving IPC on a datadir that survives restarts.
fn start_ipc_node(datadir: &Path) -> RegtestNode {
    let config = RegtestConfig {
        extra_args: vec!["-ipcbind=unix".into()],
        datadir: Some(datadir.to_path_buf()),
        ..RegtestConfig::new(bitcoin_node())
    };
    tokio::task::block_in_place(|| RegtestNode::start(&config)).expect("bitcoin-node starts")
}

/// The next `BlockTip` satisfying `accept` (each one is strictly valid), bounded.
async fn next_tip(subscriber: &mut Subscriber, accept: impl Fn(&BlockTip) -> bool) -> BlockTip {
    tokio::time::timeout(common::TIMEOUT, async {
        loop {
            let message = subscriber.next().await.expect("subscription open");
            assert_eq!(message.subject, "ipc", "the extractor's subject");
            strict::check_event(&message.payload).expect("strictly valid");
            let event = Event::decode(message.payload.as_ref()).expect("an event");
            let Some(PeerObserverEvent::IpcExtractor(ipc)) = event.peer_observer_event else {
                panic!("a non-ipc event on `ipc`: {event:?}");
            };
            let Some(IpcEvent::BlockTip(tip)) = ipc.ipc_event else {
                panic!("an ipc event without a tip");
            };
            if accept(&tip) {
                return tip;
            }
        }
    })
    .await
    .expect("the tip arrives in time")
}

/// `getbestblockhash` is in display order; IPC sends the hash as stored (reversed).
fn internal_order(display_hex: &str) -> Vec<u8> {
    let mut bytes = hex::decode(display_hex).expect("hex hash");
    bytes.reverse();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_tip_matches_rpc_after_mining_and_follows_a_restarted_node() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let options = NatsOptions::local(nats.url());
    let mut subscriber = Subscriber::connect(&options, SubjectScheme::Flat, &["ipc".into()])
        .await
        .expect("subscriber");
    let datadir = tempfile::tempdir().expect("datadir");
    let mut node = start_ipc_node(datadir.path());
    let socket = default_socket(&datadir.path().join("regtest"));
    assert!(
        socket.exists(),
        "-ipcbind=unix creates {}",
        socket.display()
    );

    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let extractor = IpcExtractor::start(
        IpcConfig {
            query_interval: Duration::from_millis(200),
            ..IpcConfig::new(socket.clone())
        },
        publisher.clone(),
        Shutdown::new(),
    )
    .expect("connects to the socket");

    // Before any block: the genesis block is the tip.
    let genesis = next_tip(&mut subscriber, |t| t.height == 0).await;
    let genesis_hash: String =
        tokio::task::block_in_place(|| node.rpc("getblockhash", &[0.into()])).expect("hash");
    assert_eq!(genesis.hash, internal_order(&genesis_hash));

    tokio::task::block_in_place(|| node.mine(7)).expect("mine");
    let (count, best): (u64, String) = tokio::task::block_in_place(|| {
        (
            node.rpc("getblockcount", &[]).expect("getblockcount"),
            node.rpc("getbestblockhash", &[]).expect("getbestblockhash"),
        )
    });
    assert_eq!(count, 7);
    let tip = next_tip(&mut subscriber, |t| t.height == 7).await;
    assert_eq!(
        tip.hash,
        internal_order(&best),
        "getbestblockhash, reversed"
    );
    assert_eq!(tip.hash.len(), 32);

    // Killed and restarted on the same datadir: the extractor reconnects and reports the
    // tip the restarted node mines on top. (SIGKILL may cost the node its unflushed blocks,
    // so the height is read back rather than assumed.)
    tokio::task::block_in_place(|| node.restart()).expect("restart");
    let (count, best): (u64, String) = tokio::task::block_in_place(|| {
        node.mine(1).expect("mine after restart");
        (
            node.rpc("getblockcount", &[]).expect("getblockcount"),
            node.rpc("getbestblockhash", &[]).expect("getbestblockhash"),
        )
    });
    let expected = internal_order(&best);
    let tip = next_tip(&mut subscriber, |t| t.hash == expected).await;
    assert_eq!(i64::from(tip.height), count as i64);

    let counters = extractor.stop().await.expect("stops");
    assert!(
        counters.ipc_connect_errors >= 1,
        "the lost connection is counted: {counters:?}"
    );
    assert!(counters.published >= 3, "{counters:?}");
    assert_eq!(counters.publish_dropped, 0);
    assert!(counters.records >= counters.published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_is_a_clear_error_at_start() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("node.sock");
    let error = match IpcExtractor::start(IpcConfig::new(missing), publisher, Shutdown::new()) {
        Ok(_) => panic!("started without a socket"),
        Err(e) => e,
    };
    assert!(matches!(error, IpcError::Connect { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("-ipcbind=unix"), "says what to do: {text}");
}

/// A socket that answers with bytes that are not Cap'n Proto: the handshake fails, which is
/// counted, and the extractor keeps retrying until it is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_speaking_garbage_is_counted_not_fatal() {
    let nats = NatsServer::start(&common::nats_server()).expect("nats-server");
    let publisher = Arc::new(common::local_publisher(&nats.url()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let mut served = 0u32;
        while served < 3 {
            let (mut stream, _) = listener.accept().await.expect("accept");
            // A segment table that claims 2^32-1 segments, then noise.
            let _ = stream.write_all(&[0xff; 64]).await;
            let _ = stream.shutdown().await;
            served += 1;
        }
    });
    let extractor = IpcExtractor::start(
        IpcConfig {
            query_interval: Duration::from_millis(100),
            ..IpcConfig::new(path)
        },
        publisher,
        Shutdown::new(),
    )
    .expect("the socket accepts");
    // Three connections served means at least two failed handshakes were retried.
    tokio::time::timeout(common::TIMEOUT, server)
        .await
        .expect("the extractor retried")
        .expect("server task");
    let counters = extractor.stop().await.expect("stops cleanly");
    assert!(counters.ipc_connect_errors >= 2, "{counters:?}");
    assert_eq!(counters.published, 0);
}

/// What the wire needs from one schema node: for an interface, its methods by ordinal (name,
/// param fields, result fields); for a struct, its fields.
#[derive(Debug, Default)]
struct NodeLayout {
    name: String,
    methods: Vec<(String, u64, u64)>,
    fields: BTreeMap<String, String>,
}

/// Compiles `files` with `capnp compile -o-` and reads the CodeGeneratorRequest.
fn compiled_layouts(files: &[PathBuf], imports: &[PathBuf]) -> BTreeMap<u64, NodeLayout> {
    use capnp::schema_capnp::{code_generator_request, field, node, type_};
    let mut command = Command::new("capnp");
    command.args(["compile", "-o-", "--no-standard-import"]);
    for dir in imports {
        command.arg("-I").arg(dir);
    }
    let output = command.args(files).output().expect("run capnp");
    assert!(
        output.status.success(),
        "capnp compile: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let message = capnp::serialize::read_message(
        &mut output.stdout.as_slice(),
        capnp::message::ReaderOptions::new(),
    )
    .expect("a CodeGeneratorRequest");
    let request = message
        .get_root::<code_generator_request::Reader>()
        .expect("root");
    let mut layouts = BTreeMap::new();
    for schema_node in request.get_nodes().expect("nodes") {
        let mut layout = NodeLayout {
            name: schema_node
                .get_display_name()
                .expect("name")
                .to_string()
                .expect("utf-8"),
            ..NodeLayout::default()
        };
        match schema_node.which().expect("node kind") {
            node::Interface(interface) => {
                for method in interface.get_methods().expect("methods") {
                    layout.methods.push((
                        method.get_name().expect("name").to_string().expect("utf-8"),
                        method.get_param_struct_type(),
                        method.get_result_struct_type(),
                    ));
                }
            }
            node::Struct(structure) => {
                for f in structure.get_fields().expect("fields") {
                    let name = f.get_name().expect("name").to_string().expect("utf-8");
                    let slot = match f.which().expect("field kind") {
                        field::Slot(slot) => {
                            let kind = match slot.get_type().expect("type").which().expect("t") {
                                type_::Bool(()) => "bool".to_string(),
                                type_::Int32(()) => "int32".to_string(),
                                type_::Text(()) => "text".to_string(),
                                type_::Data(()) => "data".to_string(),
                                type_::Struct(s) => format!("struct {:x}", s.get_type_id()),
                                type_::Interface(i) => format!("interface {:x}", i.get_type_id()),
                                _ => "other".to_string(),
                            };
                            format!("{kind} at {}", slot.get_offset())
                        }
                        field::Group(_) => "group".to_string(),
                    };
                    layout.fields.insert(name, slot);
                }
            }
            _ => {}
        }
        layouts.insert(schema_node.get_id(), layout);
    }
    layouts
}

/// `init.capnp:Init` -> `Init`.
fn short_name(display_name: &str) -> &str {
    display_name.rsplit(':').next().unwrap_or(display_name)
}

#[test]
fn schema_matches_core() {
    let core = peerlab::node::fetch_core_source().expect("the Core source `peerlab setup` uses");
    let capnp_dir = core.join("src/ipc/capnp");
    let mp_include = core.join("src/ipc/libmultiprocess/include");
    let system_include = PathBuf::from("/usr/include");
    let theirs = compiled_layouts(
        &[
            capnp_dir.join("init.capnp"),
            capnp_dir.join("mining.capnp"),
            capnp_dir.join("common.capnp"),
            mp_include.join("mp/proxy.capnp"),
        ],
        &[mp_include.clone(), system_include.clone()],
    );
    let ours_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("capnp/core_ipc.capnp");
    let ours = compiled_layouts(&[ours_path], &[system_include]);

    let fields_match = |our_struct: u64, their_struct: u64, what: &str| {
        let (mine, core) = (&ours[&our_struct], &theirs[&their_struct]);
        for (name, slot) in &mine.fields {
            assert_eq!(
                core.fields.get(name),
                Some(slot),
                "{what}: field `{name}` ({slot}) in Core's {}",
                core.name
            );
        }
    };
    let mut compared = std::collections::BTreeSet::new();
    for (id, layout) in &ours {
        if layout.methods.is_empty() && layout.fields.is_empty() {
            continue; // the file node, or an empty parameter list
        }
        // Parameter structs get ids derived from their interface's id, so ours and Core's
        // coincide; they are compared once more below, per method.
        let Some(core) = theirs.get(id) else {
            panic!("{} ({id:x}) is not in Core's schemas", layout.name);
        };
        for (ordinal, (name, params, results)) in layout.methods.iter().enumerate() {
            if name.starts_with("unused") {
                continue;
            }
            let (core_name, core_params, core_results) = &core.methods[ordinal];
            assert_eq!(core_name, name, "{}: method @{ordinal}", core.name);
            fields_match(*params, *core_params, &format!("{name} params"));
            fields_match(*results, *core_results, &format!("{name} results"));
            compared.insert(format!("{}.{name}", short_name(&core.name)));
        }
        if !layout.fields.is_empty() {
            fields_match(*id, *id, &layout.name);
            compared.insert(short_name(&core.name).to_string());
        }
    }
    for needed in [
        "Init.construct",
        "Init.makeMining",
        "ThreadMap.makeThread",
        "Mining.getTip",
        "BlockRef",
        "Context",
    ] {
        assert!(
            compared.contains(needed),
            "{needed} was compared: {compared:?}"
        );
    }
}
