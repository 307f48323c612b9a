//! Who fires the [`Shutdown`]: Ctrl-C, SIGTERM and `--duration`, decided here at the edge.

use std::time::Duration;

use peerlab::shutdown::Shutdown;

/// A shutdown fired by the first Ctrl-C or SIGTERM (a second Ctrl-C exits at once, for a
/// stop that hangs), or after `duration`.
///
/// Only long-running commands install it: once installed, Ctrl-C no longer kills the
/// process by itself, so a command that never looks at the shutdown (a build) must not.
pub fn shutdown_on_signals(duration: Option<Duration>) -> Shutdown {
    let shutdown = Shutdown::new();
    let fire = shutdown.clone();
    tokio::spawn(async move {
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match sigterm.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping (again to exit at once)"),
            _ = term => tracing::info!("SIGTERM: stopping"),
            _ = timer => {}
            _ = fire.cancelled() => return,
        }
        fire.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("second Ctrl-C: exiting without a clean stop");
            std::process::exit(130);
        }
    });
    shutdown
}
