//! `peerlab setup`.

use anyhow::Context as _;

use crate::node::{setup, BitcoindOrigin, SetupOptions};

/// Provisions the machine; with `json`, prints the installation paths on stdout.
pub fn run(options: &SetupOptions, json: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let installation = setup(options).context("setup failed")?;
    let how = match installation.origin {
        BitcoindOrigin::Cached => "reused the cached bitcoind",
        BitcoindOrigin::Built => "built bitcoind into the cache",
        BitcoindOrigin::UserProvided => "using the given bitcoind",
    };
    tracing::info!(
        "setup done in {:.1}s: {how} ({}); nats-server at {}",
        started.elapsed().as_secs_f64(),
        installation.bitcoind.display(),
        installation.nats_server.display()
    );
    if json {
        println!("{}", serde_json::to_string(&installation)?);
    }
    Ok(())
}
