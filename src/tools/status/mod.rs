//! The status tool: is a honeynode, or every node behind a fleet collector, healthy?
//!
//! It listens for a window to the event subjects and the counter subjects of a scheme
//! ([`subscriptions`]), folds what arrives per node ([`collect`]), reads the leafnode links
//! from nats-server's monitoring endpoint when asked ([`leafz`]), and judges each node
//! ([`verdict`]): healthy when counter snapshots and events arrived in the window and no
//! drop counter grew during it. The [`report`] serializes as JSON; [`render`] writes its
//! readable form.
//!
//! Invariants:
//! - it only reads the bus; it never publishes, and never decodes an event (subjects are
//!   enough to count and time them), so it keeps up with a busy collector;
//! - the window is bounded: it ends after its length, when its shutdown fires (what was seen
//!   so far is judged over the time actually listened), or when the connection closes;
//! - nodes are keyed by their subject token; with flat subjects there is one, `local`;
//! - extractors are known by their `COMPONENT` names only; none is started or used.

pub mod collect;
pub mod leafz;
pub mod render;
pub mod report;
pub mod verdict;

use std::time::Duration;

use crate::bus::{SubjectScheme, Subscriber};
use crate::shutdown::Shutdown;
use crate::tools::Tool;

pub use collect::{Collector, Observation, LOCAL_NODE};
pub use leafz::{fetch_leafz, Leaf, Leafz, LeafzError};
pub use render::render_text;
pub use report::{LinkState, NodeStatus, StatusReport};
pub use verdict::judge;

/// How often peerlab's components publish their counter snapshots: a window shorter than
/// this may see none from a healthy node.
pub const STATS_PERIOD: Duration = Duration::from_secs(10);

/// What can end a status window early.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The subscription ended before the window did.
    #[error("the NATS connection closed {listened_secs:.1}s into the status window")]
    Closed {
        /// How long it had listened.
        listened_secs: f64,
    },
}

/// The patterns a status window subscribes to: every event subject of `scheme` and every
/// counter subject (every node's with a `*` node).
pub fn subscriptions(scheme: &SubjectScheme) -> Vec<String> {
    vec![scheme.wildcard(), scheme.stats_wildcard()]
}

/// Listens for one window and returns what it heard.
pub struct StatusTool {
    collector: Collector,
    window: Duration,
}

impl StatusTool {
    /// A window of `window` over `scheme`'s subjects (subscribe with [`subscriptions`]).
    pub fn new(scheme: SubjectScheme, window: Duration) -> StatusTool {
        StatusTool {
            collector: Collector::new(scheme),
            window,
        }
    }
}

impl Tool for StatusTool {
    type Summary = Observation;
    type Error = StatusError;

    /// Collects until the window ends or `shutdown` fires.
    async fn run(
        mut self,
        mut subscriber: Subscriber,
        shutdown: Shutdown,
    ) -> Result<Observation, StatusError> {
        let started = tokio::time::Instant::now();
        let end = tokio::time::sleep_until(started + self.window);
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => break,
                _ = shutdown.cancelled() => break,
                message = subscriber.next() => match message {
                    Some(m) => self.collector.observe(&m.subject, &m.payload, started.elapsed()),
                    None => {
                        return Err(StatusError::Closed {
                            listened_secs: started.elapsed().as_secs_f64(),
                        })
                    }
                },
            }
        }
        Ok(self.collector.finish(started.elapsed()))
    }
}
