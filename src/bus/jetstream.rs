//! JetStream for fleets: each honeynode keeps its events in a stream of its own, and the
//! collector's stream sources every node's, so a cut link delays events instead of losing
//! them.
//!
//! The layout (nats-server 2.9 and later; no subject transforms needed):
//! - on a honeynode, extractors publish flat peer-observer subjects in the server's `LOCAL`
//!   account; a `FLEET` account imports them under `<prefix>.<node>.` and is the account the
//!   leafnode link to the collector carries. The node stream [`node_stream_name`] lives in
//!   `FLEET` (JetStream domain `<node>`) and captures `<prefix>.<node>.>`; `LOCAL` reaches its
//!   JetStream API through the service import [`NODE_API_PREFIX`];
//! - on the collector, [`FLEET_STREAM`] has one source per node, read through the node's
//!   domain (`$JS.<node>.API`) across the link; subjects are kept, so every event is stored
//!   under `<prefix>.<node>.<subject>`.
//!
//! Invariants:
//! - `ensure_*` are idempotent: they create what is missing and update a stream whose
//!   configuration differs (a node added to the fleet), never delete stored messages;
//! - node names are single NATS tokens that are also valid stream names
//!   ([`validate_node_name`]), checked before anything is sent.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::Client;

use super::BusError;

/// The collector's stream, sourcing every node's.
pub const FLEET_STREAM: &str = "PEERLAB_FLEET";

/// The JetStream API prefix through which a honeynode's `LOCAL` account reaches the `FLEET`
/// account's JetStream (a service import in the node's nats-server configuration).
pub const NODE_API_PREFIX: &str = "$JS.fleet.API";

/// The stream a node keeps its own events in.
pub fn node_stream_name(node: &str) -> String {
    format!("PEERLAB_{node}")
}

/// The JetStream API prefix of a node's domain, as seen from across its leafnode link.
pub fn node_domain_api(node: &str) -> String {
    format!("$JS.{node}.API")
}

/// How much a stream keeps before discarding its oldest messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most bytes stored (the oldest messages go first beyond it).
    pub max_bytes: u64,
    /// Oldest message kept (`None`: no age limit).
    pub max_age: Option<Duration>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_bytes: 8 << 30,
            max_age: None,
        }
    }
}

/// Checks that `node` can name a node: one NATS subject token that is also usable in a
/// stream name (letters, digits, `-` and `_`).
pub fn validate_node_name(node: &str) -> Result<(), BusError> {
    let valid = !node.is_empty()
        && node.len() <= 64
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(BusError::InvalidOption(format!(
            "node name `{node}`: use 1 to 64 letters, digits, `-` or `_` (it becomes a subject \
             token and part of a stream name)"
        )))
    }
}

/// Creates or updates the node's stream `PEERLAB_<node>` capturing `<prefix>.<node>.>`,
/// through the JetStream API at `api_prefix` (on a honeynode: [`NODE_API_PREFIX`]).
pub async fn ensure_node_stream(
    client: Client,
    api_prefix: &str,
    prefix: &str,
    node: &str,
    limits: StreamLimits,
) -> Result<stream::Info, BusError> {
    validate_node_name(node)?;
    let context = jetstream::with_prefix(client, api_prefix);
    let config = stream::Config {
        name: node_stream_name(node),
        subjects: vec![format!("{prefix}.{node}.>")],
        ..limited(limits)
    };
    ensure(&context, config).await
}

/// Creates or updates the collector's [`FLEET_STREAM`] with one source per node (its
/// `PEERLAB_<node>` stream, read through `$JS.<node>.API`).
pub async fn ensure_collector_stream(
    client: Client,
    nodes: &[String],
    limits: StreamLimits,
) -> Result<stream::Info, BusError> {
    if nodes.is_empty() {
        return Err(BusError::InvalidOption(
            "a collector needs at least one node (--node)".to_string(),
        ));
    }
    for node in nodes {
        validate_node_name(node)?;
    }
    let context = jetstream::new(client);
    let sources = nodes
        .iter()
        .map(|node| stream::Source {
            name: node_stream_name(node),
            external: Some(stream::External {
                api_prefix: node_domain_api(node),
                delivery_prefix: None,
            }),
            ..Default::default()
        })
        .collect();
    let config = stream::Config {
        name: FLEET_STREAM.to_string(),
        sources: Some(sources),
        ..limited(limits)
    };
    ensure(&context, config).await
}

/// A file-backed stream config with `limits`, discarding the oldest messages beyond them.
fn limited(limits: StreamLimits) -> stream::Config {
    stream::Config {
        storage: stream::StorageType::File,
        max_bytes: i64::try_from(limits.max_bytes).unwrap_or(i64::MAX),
        max_age: limits.max_age.unwrap_or_default(),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// Creates the stream, or updates it when it exists with another configuration.
async fn ensure(
    context: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Info, BusError> {
    let name = config.name.clone();
    let failed = |action: &str, error: &dyn std::fmt::Display| {
        let text = error.to_string();
        // The server's words do not say which knob: name both.
        let hint = if text.contains("10047") {
            "; give the stream a smaller byte limit, or the server more JetStream storage \
             (max_file_store)"
        } else {
            ""
        };
        BusError::JetStream {
            stream: name.clone(),
            reason: format!("{action}: {text}{hint}"),
        }
    };
    match context.get_stream(&name).await {
        Ok(mut existing) => {
            let current = existing
                .info()
                .await
                .map_err(|e| failed("reading its configuration", &e))?
                .config
                .clone();
            if same_shape(&current, &config) {
                return existing
                    .info()
                    .await
                    .cloned()
                    .map_err(|e| failed("reading its state", &e));
            }
            tracing::info!(stream = %name, "updating the stream's configuration");
            context
                .update_stream(config)
                .await
                .map_err(|e| failed("updating", &e))
        }
        Err(error) if is_stream_not_found(&error) => {
            tracing::info!(stream = %name, "creating the stream");
            let mut created = context
                .create_stream(config)
                .await
                .map_err(|e| failed("creating", &e))?;
            created
                .info()
                .await
                .cloned()
                .map_err(|e| failed("reading its state", &e))
        }
        Err(error) => Err(failed(
            "looking it up (is JetStream enabled on this server, and is the API prefix right?)",
            &error,
        )),
    }
}

/// Whether the server answered that the stream does not exist (rather than not answering).
fn is_stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(inner)
            if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Whether an existing stream already has what `wanted` asks for (the server fills in
/// defaults, so whole configurations never compare equal).
fn same_shape(current: &stream::Config, wanted: &stream::Config) -> bool {
    let source_names = |config: &stream::Config| {
        let mut names: Vec<(String, Option<String>)> = config
            .sources
            .iter()
            .flatten()
            .map(|s| {
                (
                    s.name.clone(),
                    s.external.as_ref().map(|e| e.api_prefix.clone()),
                )
            })
            .collect();
        names.sort();
        names
    };
    current.subjects == wanted.subjects
        && current.max_bytes == wanted.max_bytes
        && current.max_age == wanted.max_age
        && source_names(current) == source_names(wanted)
}

/// A durable pull consumer on [`FLEET_STREAM`] that acknowledges everything up to a message
/// at once (ack policy "all"): the collector acknowledges only what it has made durable.
///
/// Opening it re-creates the consumer at the first unacknowledged message. An existing
/// consumer would hand a new reader the messages after the ones it last delivered and give
/// the delivered-but-unacknowledged ones back only when their ack wait runs out, by which
/// time a later acknowledgement (policy "all") would already have covered them: a crashed
/// collector's unwritten messages would be lost. Starting again at the floor makes them
/// come first, in order.
pub struct FleetFeed {
    messages: jetstream::consumer::pull::Stream,
    floor: u64,
}

/// One stored message of the fleet stream.
pub struct FleetMessage {
    /// `<prefix>.<node>.<subject>`.
    pub subject: String,
    /// The message as the node's extractor published it.
    pub payload: bytes::Bytes,
    /// Its sequence in [`FLEET_STREAM`] (strictly increasing in delivery order).
    pub stream_sequence: u64,
    message: jetstream::Message,
}

impl FleetFeed {
    /// Opens the durable consumer `durable` on the collector's stream, starting after the
    /// last message an earlier run acknowledged (see the type's documentation). At most
    /// `max_unacknowledged` messages are in flight before the server waits for an ack.
    pub async fn open(
        client: Client,
        durable: &str,
        max_unacknowledged: usize,
    ) -> Result<FleetFeed, BusError> {
        let failed = |action: &str, error: &dyn std::fmt::Display| BusError::JetStream {
            stream: FLEET_STREAM.to_string(),
            reason: format!("{action} consumer `{durable}`: {error}"),
        };
        let context = jetstream::new(client);
        let stream = context
            .get_stream(FLEET_STREAM)
            .await
            .map_err(|e| failed("looking up the stream for", &e))?;
        let floor = match stream.consumer_info(durable).await {
            Ok(info) => {
                stream
                    .delete_consumer(durable)
                    .await
                    .map_err(|e| failed("re-creating", &e))?;
                info.ack_floor.stream_sequence
            }
            Err(error) if error.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => 0,
            Err(error) => return Err(failed("reading", &error)),
        };
        let deliver_policy = if floor == 0 {
            jetstream::consumer::DeliverPolicy::All
        } else {
            jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: floor + 1,
            }
        };
        let consumer: jetstream::consumer::PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some(durable.to_string()),
                deliver_policy,
                ack_policy: jetstream::consumer::AckPolicy::All,
                // Long enough that a collector busy writing is not redelivered to; short
                // enough that a stuck one hands its messages back.
                ack_wait: Duration::from_secs(60),
                max_ack_pending: i64::try_from(max_unacknowledged).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .map_err(|e| failed("creating", &e))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(1024)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| failed("pulling from", &e))?;
        Ok(FleetFeed { messages, floor })
    }

    /// The highest stream sequence an earlier run acknowledged (everything at or below it
    /// was); 0 for a new consumer.
    pub fn ack_floor(&self) -> u64 {
        self.floor
    }

    /// The next message; `None` when the consumer ended. Transient pull errors (missed
    /// heartbeats while the server restarts) are logged and the pull continues.
    pub async fn next(&mut self) -> Option<FleetMessage> {
        use futures::StreamExt as _;
        loop {
            match self.messages.next().await? {
                Ok(message) => {
                    let Ok(info) = message.info() else {
                        tracing::warn!(subject = %message.subject, "a fleet message without JetStream metadata; skipped");
                        continue;
                    };
                    let stream_sequence = info.stream_sequence;
                    return Some(FleetMessage {
                        subject: message.subject.to_string(),
                        payload: message.payload.clone(),
                        stream_sequence,
                        message,
                    });
                }
                Err(error) => {
                    tracing::warn!("pulling from {FLEET_STREAM}: {error}; retrying");
                }
            }
        }
    }

    /// Acknowledges `message` and, by the consumer's policy, every message before it; waits
    /// for the server to confirm.
    pub async fn ack_through(message: &FleetMessage) -> Result<(), BusError> {
        message
            .message
            .double_ack()
            .await
            .map_err(|e| BusError::JetStream {
                stream: FLEET_STREAM.to_string(),
                reason: format!(
                    "acknowledging up to sequence {}: {e}",
                    message.stream_sequence
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_one_token_usable_in_a_stream_name() {
        for good in ["node1", "honey-node_2", "A"] {
            assert!(validate_node_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "a*", "a>", "a b", "nöde", &"x".repeat(65)] {
            let error = validate_node_name(bad).expect_err(bad).to_string();
            assert!(error.contains("letters, digits"), "{error}");
        }
    }

    #[test]
    fn names_and_domains_follow_the_fleet_layout() {
        assert_eq!(node_stream_name("node1"), "PEERLAB_node1");
        assert_eq!(node_domain_api("node1"), "$JS.node1.API");
    }

    #[test]
    fn a_stream_with_a_new_source_is_not_the_same_shape() {
        let one = stream::Config {
            sources: Some(vec![stream::Source {
                name: "PEERLAB_a".into(),
                ..Default::default()
            }]),
            ..limited(StreamLimits::default())
        };
        let mut two = one.clone();
        assert!(same_shape(&one, &two));
        if let Some(sources) = two.sources.as_mut() {
            sources.push(stream::Source {
                name: "PEERLAB_b".into(),
                ..Default::default()
            });
        }
        assert!(!same_shape(&one, &two));
    }
}
