//! Regression (issue 9.2): no credential reaches a log line, a recording (raw or decompressed)
//! or `inspect`/`cat` output, whichever way it was given: in the NATS URL, as
//! `--nats-password`, in an nkey seed file or a `.creds` file.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use peerlab::bus::{NatsOptions, Publisher, PublisherConfig, SubjectScheme};
use peerlab::event::proto::ebpf_extractor;
use peerlab::event::proto::ebpf_extractor::{ebpf, validation};
use peerlab::event::proto::event::event::PeerObserverEvent;
use peerlab::event::Event;
use peerlab::stack::NatsServer;

const URL_PASSWORD: &str = "Url-Pa55-7c1e0b";
const OPTION_PASSWORD: &str = "0pt-Pa55-93ad41";

fn peerlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerlab"))
}

fn block(height: i32) -> Event {
    Event {
        timestamp: height as u64,
        peer_observer_event: Some(PeerObserverEvent::EbpfExtractor(ebpf_extractor::Ebpf {
            ebpf_event: Some(ebpf::EbpfEvent::Validation(validation::ValidationEvent {
                event: Some(validation::validation_event::Event::BlockConnected(
                    validation::BlockConnected {
                        hash: vec![7; 32],
                        height,
                        transactions: 1,
                        inputs: 0,
                        sigops: 1,
                        connection_time: 1,
                    },
                )),
            })),
        })),
    }
}

/// Runs `peerlab record --duration 3` with `auth` arguments while a publisher with full rights
/// feeds it, so the file holds chunks; returns (stderr, recording path).
fn record_with(
    server: &NatsServer,
    dir: &Path,
    name: &str,
    auth: &[String],
) -> (String, std::path::PathBuf) {
    let output = dir.join(format!("{name}.mcap"));
    // Logs go to files: a pipe nobody reads while the recorder runs would block it.
    let (out_log, err_log) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let mut child = peerlab()
        .args(["--log", "debug", "record", "--duration", "3", "-o"])
        .arg(&output)
        .args(auth)
        .stdout(std::fs::File::create(&out_log).expect("stdout file"))
        .stderr(std::fs::File::create(&err_log).expect("stderr file"))
        .spawn()
        .expect("peerlab record starts");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let feeder = NatsOptions {
            user: Some("feeder".into()),
            password: Some("feeder".into()),
            ..NatsOptions::local(server.url())
        };
        let publisher =
            Publisher::connect(&feeder, SubjectScheme::Flat, PublisherConfig::default())
                .await
                .expect("feeder connects");
        // Feed until the recorder ends (its --duration), bounded by the test timeout.
        let deadline = tokio::time::Instant::now() + common::TIMEOUT;
        let mut height = 0;
        while child.try_wait().expect("try_wait").is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "recorder did not end"
            );
            height += 1;
            publisher.publish_event(&block(height));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        publisher.close(common::TIMEOUT).await;
    });
    let status = child.wait().expect("recorder ends");
    let stderr = std::fs::read_to_string(&err_log).expect("stderr");
    let stdout = std::fs::read_to_string(&out_log).expect("stdout");
    assert!(status.success(), "record failed:\n{stderr}");
    let info = peerlab::record::read_recording(&output).expect("recording reads");
    assert!(
        !info.messages.is_empty(),
        "the recorder received nothing:\n{stderr}"
    );
    (stderr + &stdout, output)
}

#[test]
fn no_secret_reaches_a_log_line_a_recording_or_inspect_output() {
    let seed_pair = nkeys::KeyPair::new_user();
    let seed = seed_pair.seed().expect("seed");
    let server = NatsServer::start_with_config(
        &common::nats_server(),
        &format!(
            "authorization {{ users = [\n  {{user: alice, password: \"{URL_PASSWORD}\"}}\n  {{user: bob, password: \"{OPTION_PASSWORD}\"}}\n  {{user: feeder, password: feeder}}\n  {{nkey: {}}}\n] }}",
            seed_pair.public_key()
        ),
    )
    .expect("nats-server with authorization");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = server.port();
    let mut searched = 0usize;

    // 1. Credentials in the URL, and the "not reachable yet" warnings of a server that is
    //    not there yet.
    let unreachable = peerlab()
        .args(["record", "-o"])
        .arg(dir.path().join("never.mcap"))
        .args(["--nats-wait", "1"])
        .args(["-a", &format!("nats://alice:{URL_PASSWORD}@127.0.0.1:1")])
        .output()
        .expect("runs");
    assert!(!unreachable.status.success());
    let text = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        text.contains("not reachable") || text.contains("within 1s"),
        "{text}"
    );
    assert!(
        text.contains("<redacted>@127.0.0.1:1"),
        "the address is still named: {text}"
    );
    common::assert_no_secret(&unreachable.stderr, URL_PASSWORD, "unreachable-server log");
    searched += unreachable.stderr.len();

    let (log, file) = record_with(
        &server,
        dir.path(),
        "url",
        &[
            "-a".into(),
            format!("nats://alice:{URL_PASSWORD}@127.0.0.1:{port}"),
        ],
    );
    assert!(
        log.contains("URL credentials given on the command line"),
        "warned once: {log}"
    );
    common::assert_no_secret(log.as_bytes(), URL_PASSWORD, "record's log (URL userinfo)");
    searched += log.len() + common::assert_recording_has_no_secret(&file, URL_PASSWORD);
    let meta = peerlab::record::read_recording(&file)
        .expect("reads")
        .metadata;
    assert!(
        meta.values().any(|v| v.contains("<redacted>")),
        "the metadata says what was redacted: {meta:?}"
    );

    // 2. --nats-password on the command line (warned about) and in the stored arguments.
    let (log, file) = record_with(
        &server,
        dir.path(),
        "option",
        &[
            "-a".into(),
            server.url(),
            "--nats-user".into(),
            "bob".into(),
            "--nats-password".into(),
            OPTION_PASSWORD.into(),
        ],
    );
    assert!(
        log.matches("use --nats-password-file instead").count() == 1,
        "one warning pointing at the file option: {log}"
    );
    common::assert_no_secret(
        log.as_bytes(),
        OPTION_PASSWORD,
        "record's log (--nats-password)",
    );
    searched += log.len() + common::assert_recording_has_no_secret(&file, OPTION_PASSWORD);

    // 3. An nkey seed file: the seed's content must not show up anywhere.
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, format!("{seed}\n")).expect("write seed");
    let (log, file) = record_with(
        &server,
        dir.path(),
        "nkey",
        &[
            "-a".into(),
            server.url(),
            "--nats-nkey".into(),
            seed_file.display().to_string(),
        ],
    );
    common::assert_no_secret(log.as_bytes(), &seed, "record's log (nkey seed)");
    searched += log.len() + common::assert_recording_has_no_secret(&file, &seed);

    // 4. A .creds file this server does not accept (it has no operator): the JWT and the seed
    //    stay out of the error and the retry warnings.
    let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.c2VjcmV0LWp3dC1ib2R5.c2lnbmF0dXJl";
    let creds = dir.path().join("user.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .expect("write creds");
    let refused = peerlab()
        .args(["--log", "debug", "record", "-o"])
        .arg(dir.path().join("refused.mcap"))
        .args(["--nats-wait", "1", "-a", &server.url(), "--nats-creds"])
        .arg(&creds)
        .output()
        .expect("runs");
    assert!(
        !refused.status.success(),
        "the server has no operator: refused"
    );
    for secret in [jwt, seed.as_str()] {
        common::assert_no_secret(&refused.stderr, secret, "log of a refused .creds login");
        common::assert_no_secret(&refused.stdout, secret, "stdout of a refused .creds login");
    }
    searched += refused.stderr.len();
    eprintln!("searched {searched} bytes of logs, recordings (raw and decompressed) and inspect/cat output");
}
