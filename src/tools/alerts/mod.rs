//! The alerts tool: peer-observer's spammer heuristics ([`heuristics`]) over the P2P message
//! and connection events, each alert logged in upstream's line format and published as JSON
//! on the alerts subject (`peerlab.alerts`), where peerlab's metrics tool counts them and
//! rehearsals judge them.
//!
//! Invariants:
//! - it judges only `netmsg` and `netconn` events (others are skipped, undecodable ones
//!   counted); give it one subscription to every event subject, because NATS keeps order
//!   only within a subscription and a `closed` must not overtake the messages before it;
//! - peers listed in [`AlertConfig::ignore_peers`] (the observer's own P2P extractor) are
//!   never judged;
//! - time is the events' own, so a replayed recording raises the alerts the live run did;
//! - an alert the bus refuses is still logged and counted (`publish_dropped`).

pub mod heuristics;

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message as _;

use crate::bus::{Publisher, Subscriber};
use crate::event::Event;
use crate::shutdown::Shutdown;
use crate::tools::Tool;

pub use heuristics::{Alert, AlertConfig, AlertKind, Alerter};

/// What the tool did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsSummary {
    /// Events read.
    pub events: u64,
    /// Payloads that did not decode (skipped).
    pub undecodable: u64,
    /// Alerts raised, by kind name.
    pub alerts: BTreeMap<String, u64>,
    /// Alerts the publisher could not buffer (still logged).
    pub publish_dropped: u64,
}

/// Cannot happen today; the tool's loop has no failure of its own.
#[derive(Debug, thiserror::Error)]
#[error("alerts tool: {0}")]
pub struct AlertsError(String);

/// The alerts tool.
pub struct AlertsTool {
    alerter: Alerter,
    publisher: Option<Arc<Publisher>>,
}

impl AlertsTool {
    /// Heuristics with `config`; alerts go to `publisher` when given (on its scheme's alerts
    /// subject) and always to the log.
    pub fn new(config: AlertConfig, publisher: Option<Arc<Publisher>>) -> AlertsTool {
        AlertsTool {
            alerter: Alerter::new(config),
            publisher,
        }
    }

    fn raise(&self, alert: &Alert, summary: &mut AlertsSummary) {
        tracing::info!("{}", alert.line);
        *summary
            .alerts
            .entry(alert.kind.name().to_string())
            .or_default() += 1;
        if let Some(publisher) = &self.publisher {
            let subject = publisher.scheme().alerts_subject();
            let sent = serde_json::to_vec(alert)
                .is_ok_and(|json| publisher.publish_raw(&subject, bytes::Bytes::from(json)));
            if !sent {
                summary.publish_dropped += 1;
            }
        }
    }
}

impl Tool for AlertsTool {
    type Summary = AlertsSummary;
    type Error = AlertsError;

    /// Runs the heuristics over `subscriber` (one subscription to the scheme's wildcard).
    async fn run(
        mut self,
        mut subscriber: Subscriber,
        shutdown: Shutdown,
    ) -> Result<AlertsSummary, AlertsError> {
        let mut summary = AlertsSummary::default();
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = subscriber.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            let Ok(event) = Event::decode(message.payload.as_ref()) else {
                summary.undecodable += 1;
                continue;
            };
            summary.events += 1;
            let alerts = self.alerter.event(&event);
            for alert in &alerts {
                self.raise(alert, &mut summary);
            }
        }
        Ok(summary)
    }
}
