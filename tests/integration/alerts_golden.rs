//! Regression test from real traffic for the alerts tool: every sample recording
//! (`recordings/*.mcap`) is replayed, in file order, through the alerts heuristics with
//! peer-observer's defaults, and the alerts (one JSON object per line, as published on
//! `peerlab.alerts`) must equal the committed golden `tests/golden/alerts-<recording>.jsonl`,
//! so a change to a heuristic that alters what it reports on real traffic shows up as a diff.
//! Run with `PEERLAB_BLESS=1` to rewrite the goldens after an intended change.

use std::path::{Path, PathBuf};

use peerlab::event::Event;
use peerlab::record::format::is_stats_subject;
use peerlab::tools::alerts::{AlertConfig, Alerter};
use prost::Message as _;

fn recordings() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("recordings/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    files.sort();
    files
}

/// The alerts of one recording, one JSON line each.
fn alerts_of(path: &Path) -> String {
    let recording = peerlab::record::read_recording(path).expect("a sample recording");
    assert!(
        recording.truncated.is_none(),
        "{} is complete",
        path.display()
    );
    let mut alerter = Alerter::new(AlertConfig::default());
    let mut out = String::new();
    for message in &recording.messages {
        if is_stats_subject(&message.subject) {
            continue;
        }
        let event = Event::decode(message.data.as_slice()).expect("a recorded event decodes");
        for alert in alerter.event(&event) {
            out += &serde_json::to_string(&alert).expect("an alert as JSON");
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_recording_gives_its_golden_alerts() {
    let files = recordings();
    assert!(files.len() >= 3, "the sample recordings: {files:?}");
    let mut total = 0;
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a file name");
        let golden_path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/alerts-{name}.jsonl"));
        let actual = alerts_of(&path);
        total += actual.lines().count();
        if std::env::var_os("PEERLAB_BLESS").is_some() {
            std::fs::write(&golden_path, &actual).expect("write the golden");
        }
        let golden = std::fs::read_to_string(&golden_path).unwrap_or_else(|e| {
            panic!("{}: {e} (PEERLAB_BLESS=1 writes it)", golden_path.display())
        });
        assert_eq!(
            actual,
            golden,
            "the alerts after replaying {} differ from {}; if the change is intended, rerun \
             with PEERLAB_BLESS=1",
            path.display(),
            golden_path.display()
        );
    }
    // The samples hold real spam (the rehearsal's), so the goldens are not all empty.
    assert!(total > 0, "no recording raised an alert");
}
