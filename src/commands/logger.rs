//! `peerlab tools logger`.

use std::io::Write as _;

use crate::bus::{NatsOptions, SubjectScheme, Subscriber};
use crate::event::EventKind;
use crate::tools::logger::{format_message, LogFormat};

/// Prints events from NATS until `count` were printed (or forever).
pub fn run(
    nats: &NatsOptions,
    scheme: SubjectScheme,
    format: LogFormat,
    kinds: &[EventKind],
    count: Option<u64>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let pattern = scheme.wildcard();
        let mut subscriber = Subscriber::connect(nats, scheme, &[]).await?;
        tracing::info!(subject = %pattern, "logger subscribed");
        let mut printed = 0u64;
        let stdout = std::io::stdout();
        while count.is_none_or(|c| printed < c) {
            let Some(message) = subscriber.next().await else {
                break;
            };
            if let Some(line) = format_message(&message, format, kinds) {
                let mut out = stdout.lock();
                if writeln!(out, "{line}").is_err() {
                    break; // stdout closed (e.g. piped into `head`)
                }
                printed += 1;
            }
        }
        Ok(())
    })
}
