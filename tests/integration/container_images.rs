//! `peerlab setup --containers` as an operator runs it: the real binary provisions the
//! engine (podman's Docker API here) and builds the images from this machine's binaries; a
//! second run builds nothing; the images run (started through testcontainers, as the
//! container module starts nodes) and leave no container behind. And an engine that does
//! not answer is an error that says what to do.

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use bollard::models::ImageInspect;
use bollard::query_parameters::ListContainersOptionsBuilder;
use peerlab::container::image::IMAGE_LABEL;
use peerlab::container::{Engine, LABEL};
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{GenericImage, ImageExt as _};

/// Upper bound for a container to reach its ready line (bitcoind's regtest start is about
/// a second; this allows for a loaded machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `peerlab setup --containers --json` (blocking) and returns its JSON.
fn setup_containers() -> serde_json::Value {
    let output = common::run_peerlab(&["setup", "--containers", "--json"]);
    let stdout = common::stdout_of(&output);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
}

/// `images.<key>` of a setup's JSON, checked to be in `repository`.
fn image_of(json: &serde_json::Value, key: &str, repository: &str) -> String {
    let reference = json["images"][key]
        .as_str()
        .unwrap_or_else(|| panic!("images.{key} missing in {json}"));
    let tag = reference
        .strip_prefix(repository)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{reference} is not in {repository}"));
    assert_eq!(tag.len(), 16, "the tag of {reference} is not a 16-hex key");
    assert!(
        tag.chars().all(|c| c.is_ascii_hexdigit()),
        "the tag of {reference} is not a hex key"
    );
    reference.to_string()
}

async fn inspect(engine: &Engine, reference: &str) -> ImageInspect {
    engine
        .docker()
        .inspect_image(reference)
        .await
        .unwrap_or_else(|e| panic!("inspect {reference}: {e}"))
}

/// The containers carrying `LABEL=<run>`, stopped ones included.
async fn containers_of_run(engine: &Engine, run: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{LABEL}={run}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    engine
        .docker()
        .list_containers(Some(options))
        .await
        .expect("list containers")
        .into_iter()
        .map(|c| format!("{:?} {:?}", c.names, c.state))
        .collect()
}

/// Starts `reference` through testcontainers, waits for `ready`, drops it and checks that
/// nothing of it remains.
async fn run_and_drop(
    engine: &Engine,
    reference: &str,
    entrypoint: &str,
    args: &[&str],
    ready: WaitFor,
) {
    let (repository, tag) = reference
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{reference} has no tag"));
    let run = format!(
        "container-images-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let container = GenericImage::new(repository, tag)
        .with_entrypoint(entrypoint)
        .with_wait_for(ready)
        .with_cmd(args.iter().copied())
        .with_label(LABEL, &run)
        .with_startup_timeout(STARTUP_TIMEOUT)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{reference} does not start and get ready: {e}"));
    assert_eq!(
        containers_of_run(engine, &run).await.len(),
        1,
        "the running container is listed under its label"
    );
    drop(container);
    let left = containers_of_run(engine, &run).await;
    assert!(
        left.is_empty(),
        "containers of {reference} left after drop: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_containers_builds_once_and_the_images_run() {
    let first = tokio::task::spawn_blocking(setup_containers)
        .await
        .expect("setup task");
    // The plain setup's keys stay.
    for key in ["bitcoind", "nats_server"] {
        assert!(first[key].is_string(), "{key} missing in {first}");
    }
    assert!(
        first["docker_host"].as_str().is_some_and(|h| !h.is_empty()),
        "docker_host missing in {first}"
    );
    let docker_host = first["docker_host"].as_str().unwrap_or_default();
    assert_serves_from_root(docker_host);
    let bitcoind = image_of(&first, "bitcoind", "localhost/peerlab-bitcoind");
    let nats = image_of(&first, "nats", "localhost/peerlab-nats");

    let engine = Engine::connect()
        .await
        .expect("the engine setup provided answers");
    let mut built = Vec::new();
    for reference in [&bitcoind, &nats] {
        let image = inspect(&engine, reference).await;
        let labels = image
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        assert_eq!(
            labels.get(IMAGE_LABEL).map(String::as_str),
            Some("1"),
            "{reference} lacks the label {IMAGE_LABEL}=1: {labels:?}"
        );
        built.push((image.id, image.created));
    }

    let second = tokio::task::spawn_blocking(setup_containers)
        .await
        .expect("setup task");
    assert_eq!(
        second["images"], first["images"],
        "a second setup names other images"
    );
    assert_eq!(second["docker_host"], first["docker_host"]);
    for (reference, before) in [&bitcoind, &nats].into_iter().zip(&built) {
        let image = inspect(&engine, reference).await;
        assert_eq!(
            &(image.id, image.created),
            before,
            "the second setup rebuilt {reference}"
        );
    }

    run_and_drop(
        &engine,
        &bitcoind,
        "/usr/bin/bitcoind",
        &["-regtest", "-printtoconsole", "-datadir=/data", "-listen=0"],
        WaitFor::message_on_stdout("init message: Done loading"),
    )
    .await;
    run_and_drop(
        &engine,
        &nats,
        "/usr/bin/nats-server",
        &["-js", "-sd", "/data"],
        WaitFor::message_on_stderr("Server is ready"),
    )
    .await;
}

/// The podman service answering on `docker_host` (when a podman service does) runs from `/`.
/// Every conmon it starts inherits its working directory; when that was the clone the tests
/// ran from, and the clone was deleted, every container start failed with "write child:
/// broken pipe". (A service that something else started, such as systemd's socket unit, runs
/// from `/` as well.)
fn assert_serves_from_root(docker_host: &str) {
    let Some(socket) = docker_host.strip_prefix("unix://") else {
        return;
    };
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return;
    };
    let services: Vec<(String, std::path::PathBuf)> = processes
        .flatten()
        .filter_map(|p| {
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let serving = args.iter().any(|a| a.ends_with("podman"))
                && args.iter().any(|a| a == "service")
                && args.iter().any(|a| a.ends_with(socket));
            let cwd = std::fs::read_link(p.path().join("cwd")).ok()?;
            serving.then(|| (args.join(" "), cwd))
        })
        .collect();
    if socket.contains("podman") {
        assert!(!services.is_empty(), "no podman service serves {socket}");
    }
    for (service, cwd) in &services {
        assert_eq!(
            cwd,
            std::path::Path::new("/"),
            "`{service}` runs from {}: the containers it starts inherit that directory",
            cwd.display()
        );
    }
}

#[test]
fn an_engine_that_does_not_answer_is_an_error_that_says_what_to_do() {
    let host = "unix:///nonexistent/peerlab-test/docker.sock";
    let output = Command::new(env!("CARGO_BIN_EXE_peerlab"))
        .args(["setup", "--containers", "--no-install"])
        .env("DOCKER_HOST", host)
        .env_remove("PEERLAB_LOG")
        .output()
        .expect("run peerlab");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "setup succeeded:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    let error = errors[0];
    for expected in [host, "peerlab setup --containers", "unset DOCKER_HOST"] {
        assert!(error.contains(expected), "{expected:?} not in: {error}");
    }
    // The user's engine was respected: nothing was provisioned.
    assert!(
        stderr.contains("DOCKER_HOST is set: using that engine"),
        "stderr:\n{stderr}"
    );
}
