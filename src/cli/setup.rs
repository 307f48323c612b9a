//! `peerlab setup`.

use std::path::PathBuf;

/// Provision this machine: Debian packages and a traceable bitcoind (built once, cached);
/// with --containers, also a container engine and images of those binaries.
///
/// Idempotent: a second run checks and reuses the cache in seconds. As root it installs
/// missing packages with apt-get; otherwise it names them.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Use this bitcoind instead of building one (checked for the 16 tracepoints).
    #[arg(long, env = "BITCOIND_EXE", value_name = "PATH")]
    pub bitcoind: Option<PathBuf>,
    /// bitcoin-cli to go with --bitcoind (default: next to it, or on PATH).
    #[arg(long, value_name = "PATH")]
    pub bitcoin_cli: Option<PathBuf>,
    /// Never run apt-get; fail naming the missing packages instead.
    #[arg(long)]
    pub no_install: bool,
    /// Discard the cached bitcoind and build it again.
    #[arg(long)]
    pub rebuild: bool,
    /// Parallel compile jobs (0 = number of CPUs; at most 256).
    #[arg(long, short = 'j', default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub jobs: u16,
    /// Also provision containers: install podman and runc (when missing), configure podman
    /// for machines without systemd (/etc/containers/containers.conf, the old file saved
    /// beside it), serve its Docker API on /run/podman/podman.sock (linked from
    /// /var/run/docker.sock) and build the bitcoind and nats-server images from this
    /// machine's binaries, with no registry involved. Images are tagged by their content, so
    /// a second run builds nothing. With DOCKER_HOST set, that engine is used and nothing
    /// is installed or started.
    #[arg(long)]
    pub containers: bool,
    /// Print `{"bitcoind": ..., "bitcoin_cli": ..., "bitcoin_node": ..., "nats_server": ...}`
    /// on stdout (with --containers, also `"images": {"bitcoind": ..., "nats": ...}` and
    /// `"docker_host"`).
    #[arg(long)]
    pub json: bool,
}

impl SetupArgs {
    /// Provisions the machine; with `--json`, prints the installation paths on stdout.
    pub async fn run(self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use peerlab::node::{setup, BitcoindOrigin, SetupOptions};
        let options = SetupOptions {
            bitcoind: self.bitcoind,
            bitcoin_cli: self.bitcoin_cli,
            no_install: self.no_install,
            rebuild: self.rebuild,
            jobs: usize::from(self.jobs),
        };
        let started = std::time::Instant::now();
        let installation = tokio::task::spawn_blocking(move || setup(&options))
            .await
            .context("setup task")?
            .context("setup failed")?;
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
        let mut json = serde_json::to_value(&installation)?;
        if self.containers {
            let (images, docker_host) = provision_containers(&installation, self.no_install)
                .await
                .context("setting up containers failed")?;
            if let Some(object) = json.as_object_mut() {
                object.insert(
                    "images".into(),
                    serde_json::json!({"bitcoind": images.bitcoind, "nats": images.nats}),
                );
                object.insert("docker_host".into(), docker_host.into());
            }
        }
        if self.json {
            println!("{}", serde_json::to_string(&json)?);
        }
        Ok(())
    }
}

/// `--containers`: an engine that answers, then the images. Returns the images and the
/// engine's address.
async fn provision_containers(
    installation: &peerlab::node::Installation,
    no_install: bool,
) -> anyhow::Result<(peerlab::container::Images, String)> {
    use anyhow::Context as _;
    use peerlab::container::{ensure_images, provision_engine, Engine};
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || provision_engine(!no_install))
        .await
        .context("container engine setup task")??;
    tracing::info!("container engine: {report}");
    let engine = match Engine::connect().await {
        Ok(engine) => engine,
        // With DOCKER_HOST set, setup provisioned nothing: say so, or the error's advice to
        // run setup would send the user round in a circle.
        Err(e) if report.docker_host.is_some() => {
            return Err(e).context(
                "DOCKER_HOST is set, so `peerlab setup --containers` uses that engine and \
                 provisions nothing; start it, or unset DOCKER_HOST to let setup provide podman",
            )
        }
        Err(e) => return Err(e.into()),
    };
    let images = ensure_images(&engine, installation).await?;
    tracing::info!(
        "containers ready in {:.1}s on {}: {} and {}",
        started.elapsed().as_secs_f64(),
        engine.host(),
        images.bitcoind,
        images.nats
    );
    Ok((images, engine.host().to_string()))
}
