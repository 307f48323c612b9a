//! Tests of the scenario format: the annotated example, each kind of error with its exact
//! location, and a property test that mutated files never panic the parser.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::decode::{struct_fields, Tagged};
use super::*;

/// The name problems are reported under (the tests parse text, not files).
const FILE: &str = "scenarios/x.toml";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/annotated-example.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).expect("the annotated example exists")
}

/// A minimal valid scenario the error tests extend.
const BASE: &str = r#"[scenario]
name = "t"

[[peers]]
name = "honest"
count = 2
behaviour = "honest"
"#;

fn problems(text: &str) -> Vec<Diagnostic> {
    match Scenario::from_str(text, FILE) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

fn only_problem(text: &str) -> Diagnostic {
    let p = problems(text);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    p.into_iter().next().unwrap()
}

/// 1-based line and column of the `nth` occurrence of `needle` in `text`.
fn pos(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in the text"))
        .0;
    let line = text[..offset].matches('\n').count() + 1;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

/// Asserts a diagnostic's location (the first occurrence of `needle`) and message.
#[track_caller]
fn assert_at(d: &Diagnostic, text: &str, needle: &str, message: &str) {
    assert_eq!(
        (d.line, d.column),
        pos(text, needle, 0),
        "wrong location for {d}"
    );
    assert!(
        d.message.contains(message),
        "message {:?} does not contain {message:?}",
        d.message
    );
    assert_eq!(d.file, Path::new(FILE));
    assert!(d
        .to_string()
        .starts_with(&format!("{FILE}:{}:{}: ", d.line, d.column)));
}

#[test]
fn the_annotated_example_parses_and_validates() {
    let s = Scenario::from_file(example_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.scenario.name, "annotated-example");
    assert_eq!(s.scenario.seed, 42);
    assert_eq!(s.scenario.timeout_secs, 40);
    assert_eq!(s.node.mocktime, Some(1_800_000_000));
    assert_eq!(s.node.mine_at_start, 101);
    assert_eq!(s.peers.len(), 13);
    assert_eq!(s.total_peers(), 22);
    assert_eq!(
        s.group("addr-trickle").unwrap().behaviour,
        Behaviour::AddrFlood(AddrFlood {
            entries_per_message: 500,
            messages: 3,
            interval_ms: 1000,
            version: AddrVersion::Addrv2,
        })
    );
    assert_eq!(s.group("honest").unwrap().stop_at_secs, Some(25.0));
    let Behaviour::ReplayRecorded(replay) = &s.group("replayer").unwrap().behaviour else {
        panic!("replayer is a replay");
    };
    assert_eq!(replay.peer, RecordedPeer::Id(0));
    assert_eq!(replay.speed, Speed::Max);
    assert!(s.resolve(&replay.recording).is_file());

    assert_eq!(s.steps.len(), 5);
    assert_eq!(
        s.ordered_steps()[0].action,
        Action::Mine(Mine { blocks: 1 })
    );
    assert_eq!(s.steps[4].action, Action::RestartNode);

    // Filters in every spelling: bare value, comparison table, nested and quoted paths.
    let Check::Event(first) = &s.expect[0].check else {
        panic!("an event check");
    };
    assert_eq!(first.event.to_string(), "connection.misbehaving");
    assert_eq!(
        first.filters["message"],
        Filter {
            op: Op::Eq,
            value: Scalar::String("addr message size = 1001".into())
        }
    );
    assert_eq!((first.min, first.max), (2, Some(2)));
    let filters_of = |i: usize| match &s.expect[i].check {
        Check::Event(e) => e.filters.clone(),
        _ => panic!("expect[{i}] is an event check"),
    };
    assert_eq!(filters_of(3)["message"].op, Op::StartsWith);
    assert_eq!(filters_of(4)["meta.inbound"].value, Scalar::Bool(true));
    assert_eq!(filters_of(6)["meta.inbound"].value, Scalar::Bool(true));
    let Check::Rpc(rpc) = &s.expect[2].check else {
        panic!("an rpc check");
    };
    assert_eq!(
        (rpc.aggregate, rpc.op, &rpc.value, rpc.group.as_deref()),
        (
            Aggregate::Sum,
            Op::Ge,
            &Scalar::Int(1000),
            Some("addr-trickle")
        )
    );
    assert_eq!(
        s.expect[2].label(2),
        "addr rate limiting visible in getpeerinfo"
    );
    assert_eq!(s.expect[1].label(1), "expect[1] event connection.closed");
    assert!(matches!(
        s.expect.last().unwrap().check,
        Check::Drops(DropsCheck { max: 0, .. })
    ));
}

#[test]
fn the_annotated_example_shows_every_behaviour_action_and_check() {
    let s = Scenario::from_file(example_path()).unwrap();
    let mut behaviours: Vec<&str> = s.peers.iter().map(|g| g.behaviour.name()).collect();
    behaviours.sort();
    behaviours.dedup();
    let missing: Vec<&&str> = Behaviour::NAMES
        .iter()
        .filter(|n| !behaviours.contains(n))
        .collect();
    // no_handshake is slow_handshake without the end; everything else is shown.
    assert_eq!(missing, vec![&"no_handshake"]);
    for name in Action::NAMES {
        assert!(s.steps.iter().any(|st| st.action.name() == *name), "{name}");
    }
    for name in Check::NAMES {
        assert!(s.expect.iter().any(|e| e.check.name() == *name), "{name}");
    }
}

#[test]
fn every_example_line_is_commented_or_follows_a_comment() {
    let text = example_text();
    let mut previous_was_comment = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            previous_was_comment = false;
            continue;
        }
        let is_comment = line.starts_with('#');
        let is_header = line.starts_with('[');
        assert!(
            is_comment || is_header || previous_was_comment || line.contains(" # "),
            "line {} has no comment: {line}",
            i + 1
        );
        previous_was_comment = is_comment;
    }
}

#[test]
fn the_readme_documents_every_name_and_parameter() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/README.md"))
            .unwrap();
    fn check<E: Tagged>(readme: &str) {
        for name in E::names() {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README lacks `{name}`"
            );
            for field in E::fields(name).unwrap() {
                assert!(
                    readme.contains(&format!("`{field}`")),
                    "README lacks `{field}` of {name}"
                );
            }
        }
    }
    check::<Behaviour>(&readme);
    check::<Action>(&readme);
    check::<Check>(&readme);
    for field in struct_fields::<ScenarioMeta>()
        .iter()
        .chain(struct_fields::<NodeSettings>())
        .chain(struct_fields::<TopologyNode>())
        .chain(["node", "nodes", "distinct_addresses"].iter())
    {
        assert!(
            readme.contains(&format!("`{field}`")),
            "README lacks `{field}`"
        );
    }
}

#[test]
fn the_readme_snippets_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2);
    // The structure overview is a whole scenario.
    Scenario::from_str(blocks[0], dir.join("readme.toml")).unwrap_or_else(|e| panic!("{e}"));
    // Each filter line fits an expectation on message.addr or connection.misbehaving.
    for line in blocks[1].lines() {
        let filter = line.split(" # ").next().unwrap().trim();
        let event = if filter.contains("meta.") {
            "message.addr"
        } else {
            "connection.misbehaving"
        };
        let text = format!("{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"{event}\"\n{filter}\n");
        Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{filter}: {e}"));
    }
}

#[test]
fn tags_common_keys_and_parameters_never_collide() {
    fn check<H: serde::de::DeserializeOwned, E: Tagged>() {
        let header = struct_fields::<H>();
        assert!(!header.contains(&E::TAG));
        for name in E::names() {
            for field in E::fields(name).unwrap() {
                assert_ne!(*field, E::TAG, "{name}");
                assert!(
                    !header.contains(field),
                    "{name}.{field} shadows a common key"
                );
            }
        }
    }
    check::<types::PeerGroupHeader, Behaviour>();
    check::<types::StepHeader, Action>();
    check::<types::ExpectationHeader, Check>();
}

#[test]
fn rpc_params_become_json() {
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"rpc\"\nmethod = \"getrawmempool\"\n\
         params = [true, 3, \"x\", {{ a = 1.5 }}]\naggregate = \"value\"\nfield = \"size\"\n\
         op = \"<\"\nvalue = 10\nat_secs = 5\n"
    );
    let s = Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    let Check::Rpc(rpc) = &s.expect[0].check else {
        panic!("rpc");
    };
    assert_eq!(
        serde_json::Value::Array(rpc.params.clone()),
        serde_json::json!([true, 3, "x", { "a": 1.5 }])
    );
}

#[test]
fn syntax_error() {
    let text = "[scenario]\nname = \"t\"\n[[peers]\nname = \"x\"\n";
    let d = only_problem(text);
    assert_eq!(d.stage, Stage::Syntax);
    // The header `[[peers]` is not closed: reported where `]]` is missing.
    assert_eq!((d.line, d.column), (3, 9), "{d}");
    assert!(d.message.starts_with("TOML syntax error: "), "{d}");

    let text = "[scenario]\nname = \"t\nseed = 1\n";
    let d = only_problem(text);
    assert_eq!(d.stage, Stage::Syntax);
    assert_eq!(d.line, 2, "{d}");
}

#[test]
fn unknown_key() {
    let text = format!("{BASE}\n[node]\nextra_args = []\nmocktme = 1800000000\n");
    let d = only_problem(&text);
    assert_eq!(d.stage, Stage::Schema);
    assert_at(
        &d,
        &text,
        "mocktme",
        "unknown key \"mocktme\" in [node] (expected one of: extra_args, mocktime, \
         mine_at_start); did you mean \"mocktime\"?",
    );

    // In a tagged table the expected keys are the common ones plus the behaviour's.
    let text = format!(
        "{BASE}\n[[peers]]\nname = \"f\"\ncount = 1\nbehaviour = \"addr_flood\"\nentries = 1001\n"
    );
    let d = only_problem(&text);
    assert_at(
        &d,
        &text,
        "entries",
        "unknown key \"entries\" in [[peers]] with behaviour = \"addr_flood\" (expected one of: \
         behaviour, name, count, start_at_secs, stop_at_secs, node, nodes, distinct_addresses, \
         entries_per_message, messages, \
         interval_ms, version)",
    );

    let text = format!("{BASE}\n[[peer]]\nname = \"x\"\n");
    assert_at(
        &only_problem(&text),
        &text,
        "peer]",
        "unknown key \"peer\" at the top level (expected one of: scenario, node, peers, steps, \
         expect); did you mean \"peers\"?",
    );
}

#[test]
fn unknown_behaviour() {
    let text = BASE.replace("behaviour = \"honest\"", "behaviour = \"adr_flood\"");
    let d = only_problem(&text);
    assert_eq!(d.stage, Stage::Schema);
    assert_at(&d, &text, "\"adr_flood\"", "");
    let (line, column) = pos(&text, "\"adr_flood\"", 0);
    assert_eq!(
        d.to_string(),
        format!(
            "{FILE}:{line}:{column}: unknown behaviour \"adr_flood\" (expected one of: honest, \
             addr_flood, inv_flood, getdata_flood, ping_flood, malformed, slow_handshake, \
             no_handshake, headers_spam, invalid_block, tx_spam, version_abuse, \
             replay_recorded); did you mean \"addr_flood\"?"
        )
    );

    let text = BASE.replace("behaviour = \"honest\"\n", "");
    assert_at(
        &only_problem(&text),
        &text,
        "[[peers]]",
        "[[peers]] without `behaviour = \"...\"` (expected one of: honest,",
    );

    let text = format!("{BASE}\n[[steps]]\nat_secs = 1\naction = \"mines\"\n");
    assert_at(
        &only_problem(&text),
        &text,
        "\"mines\"",
        "unknown action \"mines\" (expected one of: mine, send_tx, bump_mocktime, disconnect, \
         restart_node); did you mean \"mine\"?",
    );
}

#[test]
fn wrong_type() {
    let text = BASE.replace("count = 2", "count = \"two\"");
    let d = only_problem(&text);
    assert_eq!(d.stage, Stage::Schema);
    assert_at(
        &d,
        &text,
        "\"two\"",
        "peers[0].count: invalid type: string \"two\", expected an integer from 0 to 4294967295",
    );

    let text = BASE.replace("count = 2", "count = -2");
    assert_at(
        &only_problem(&text),
        &text,
        "-2",
        "peers[0].count: invalid value: integer `-2`, expected an integer from 0 to 4294967295",
    );

    let text = format!(
        "{BASE}\n[[peers]]\nname = \"f\"\ncount = 1\nbehaviour = \"addr_flood\"\n\
         entries_per_message = 10\nversion = \"addrv3\"\n"
    );
    assert_at(
        &only_problem(&text),
        &text,
        "\"addrv3\"",
        "peers[1].version: unknown value \"addrv3\" (expected one of: addr, addrv2)",
    );

    let text = format!("{BASE}\n[[peers]]\nname = \"f\"\ncount = 1\nbehaviour = \"addr_flood\"\n");
    assert_at(
        &only_problem(&text),
        &text,
        "[[peers]]\nname = \"f\"",
        "peers[1]: missing key \"entries_per_message\"",
    );

    let text =
        format!("{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"message.addr\"\nmin = 1.5\n");
    assert_at(
        &only_problem(&text),
        &text,
        "1.5",
        "expect[0].min: invalid type: float `1.5`, expected a non-negative integer",
    );

    let text = "peers = 3\n[scenario]\nname = \"t\"\n";
    assert_at(
        &only_problem(text),
        text,
        "3",
        "`peers` must be an array of tables (write [[peers]] before each entry), found integer",
    );
}

#[test]
fn count_zero() {
    let text = BASE.replace("count = 2", "count = 0");
    let d = only_problem(&text);
    assert_eq!(d.stage, Stage::Validation);
    assert_at(
        &d,
        &text,
        "0",
        "peers[0].count: must be 1 to 1000 peers, found 0",
    );

    let text = BASE.replace("count = 2", "count = 1001");
    assert_at(
        &only_problem(&text),
        &text,
        "1001",
        "must be 1 to 1000 peers, found 1001",
    );

    let text = format!(
        "{BASE}\n[[peers]]\nname = \"f\"\ncount = 1\nbehaviour = \"inv_flood\"\n\
         entries_per_message = 0\n"
    );
    assert_at(
        &only_problem(&text),
        &text,
        "0\n",
        "peers[1].entries_per_message: must be at least 1",
    );
}

#[test]
fn unknown_group_referenced() {
    let text =
        format!("{BASE}\n[[steps]]\nat_secs = 5\naction = \"disconnect\"\ngroup = \"honset\"\n");
    let d = only_problem(&text);
    assert_eq!(d.stage, Stage::Validation);
    assert_at(
        &d,
        &text,
        "\"honset\"",
        "steps[0].group: unknown peer group \"honset\" (groups: honest); did you mean \"honest\"?",
    );

    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"connection.closed\"\ngroup = \"nobody\"\n"
    );
    assert_at(
        &only_problem(&text),
        &text,
        "\"nobody\"",
        "expect[0].group: unknown peer group \"nobody\"",
    );
}

#[test]
fn min_greater_than_max() {
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"connection.closed\"\nmin = 3\nmax = 2\n"
    );
    let d = only_problem(&text);
    assert_eq!(d.stage, Stage::Validation);
    assert_at(
        &d,
        &text,
        "3\nmax",
        "expect[0].min: min (3) is greater than max (2)",
    );

    // Only a max below the default min of 1: the max is what the file says.
    let text =
        format!("{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"connection.closed\"\nmax = 0\n");
    assert_at(
        &only_problem(&text),
        &text,
        "0\n",
        "expect[0].max: min (1) is greater than max (0)",
    );
}

#[test]
fn bad_event_path() {
    for (path, message) in [
        (
            "connection.misbehave",
            "expect[0].event: bad event path \"connection.misbehave\": connection has no event \
             \"misbehave\" (expected one of: closed, inbound_evicted, inbound, outbound, \
             misbehaving, or *); did you mean \"misbehaving\"?",
        ),
        (
            "misbehaving",
            "expect[0].event: bad event path \"misbehaving\": expected <category>.<arm>",
        ),
        (
            "conection.closed",
            "unknown category \"conection\" (expected one of: message, connection, mempool, \
             validation, utxocache, log, rpc, p2p, ipc); did you mean \"connection\"?",
        ),
    ] {
        let text = format!("{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"{path}\"\n");
        let d = only_problem(&text);
        assert_at(&d, &text, &format!("\"{path}\""), message);
    }

    // Filters are checked against the event's fields.
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"connection.misbehaving\"\n\
         filters = {{ mesage = \"x\" }}\n"
    );
    assert_at(
        &only_problem(&text),
        &text,
        "\"x\"",
        "expect[0].filters: connection.misbehaving events have no field \"mesage\" (fields: id, \
         message); did you mean \"message\"?",
    );
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"message.addr\"\n\
         filters = {{ meta.inbound = \"yes\" }}\n"
    );
    assert_at(
        &only_problem(&text),
        &text,
        "\"yes\"",
        "\"meta.inbound\" is a boolean: expected true or false, found \"yes\"",
    );
}

#[test]
fn missing_recording() {
    let text = format!(
        "{BASE}\n[[peers]]\nname = \"r\"\ncount = 1\nbehaviour = \"replay_recorded\"\n\
         recording = \"../recordings/nope.mcap\"\npeer = 0\n"
    );
    // Relative to the scenario file's directory: the real scenarios/ folder.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    let err = Scenario::from_str(&text, &file).unwrap_err();
    let [d] = err.diagnostics() else {
        panic!("{err}");
    };
    assert_eq!(
        (d.line, d.column),
        pos(&text, "\"../recordings/nope.mcap\"", 0)
    );
    assert!(
        d.message.starts_with(
            "peers[1].recording: recording \"../recordings/nope.mcap\" not found (looked for "
        ),
        "{d}"
    );
    // The same path from the scenarios/ folder finds the sample recording.
    let text = text.replace("nope.mcap", "regtest-sample.mcap");
    Scenario::from_str(&text, &file).unwrap();
}

#[test]
fn other_validation_problems_are_located() {
    let dup =
        format!("{BASE}\n[[peers]]\nname = \"honest\"\ncount = 1\nbehaviour = \"no_handshake\"\n");
    let d = only_problem(&dup);
    assert_eq!((d.line, d.column), pos(&dup, "\"honest\"", 2));
    assert!(
        d.message
            .contains("duplicate group name \"honest\" (first used on line 5)"),
        "{d}"
    );

    let late = format!("{BASE}\n[[steps]]\nat_secs = 60\naction = \"mine\"\n");
    assert_at(
        &only_problem(&late),
        &late,
        "60",
        "steps[0].at_secs: 60 s is at or after the scenario's timeout_secs (60 s)",
    );

    let bump = format!("{BASE}\n[[steps]]\nat_secs = 1\naction = \"bump_mocktime\"\nsecs = 10\n");
    assert_at(
        &only_problem(&bump),
        &bump,
        "\"bump_mocktime\"",
        "bump_mocktime needs [node] mocktime",
    );

    let stop = BASE.replace(
        "count = 2",
        "count = 2\nstart_at_secs = 5\nstop_at_secs = 5",
    );
    assert_at(
        &only_problem(&stop),
        &stop,
        "5\nbehaviour",
        "peers[0].stop_at_secs: 5 s is not after start_at_secs (5 s)",
    );

    let coins = format!(
        "{BASE}\n[node]\nmine_at_start = 10\n\n[[steps]]\nat_secs = 1\naction = \"send_tx\"\n"
    );
    assert_at(
        &only_problem(&coins),
        &coins,
        "\"send_tx\"",
        "send_tx at 1 s needs a mature coinbase, but only 10 blocks are mined by then",
    );

    let args = format!("{BASE}\n[node]\nextra_args = [\"-maxconnections=20\", \"-port=1\"]\n");
    assert_at(
        &only_problem(&args),
        &args,
        "\"-port=1\"",
        "node.extra_args[1]: \"-port=1\" is set by the harness",
    );

    let rpc = format!(
        "{BASE}\n[[expect]]\nkind = \"rpc\"\nmethod = \"getpeerinfo\"\nfield = \"addr_rate_limited\"\n\
         value = 5\nat_secs = 3\n"
    );
    assert_at(
        &only_problem(&rpc),
        &rpc,
        "[[expect]]",
        "expect[0].aggregate: getpeerinfo returns an array: use aggregate",
    );

    let nan = BASE.replace("count = 2", "count = 2\nstart_at_secs = nan");
    assert_at(
        &only_problem(&nan),
        &nan,
        "nan",
        "peers[0].start_at_secs: must be a finite number of seconds >= 0, found NaN",
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let text = format!(
        "{}\n[[steps]]\nat_secs = 1\naction = \"disconnect\"\ngroup = \"x\"\n\n\
         [[expect]]\nkind = \"event\"\nevent = \"connection.closed\"\nmin = 5\nmax = 1\n",
        BASE.replace("count = 2", "count = 0")
    );
    let p = problems(&text);
    let messages: Vec<&str> = p.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(p.len(), 3, "{messages:#?}");
    assert!(messages[0].starts_with("peers[0].count"));
    assert!(messages[1].starts_with("steps[0].group"));
    assert!(messages[2].starts_with("expect[0].min"));
    let err = Scenario::from_str(&text, FILE).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 3, "{err}");

    // Schema problems in several tables are collected too.
    let text = format!(
        "{BASE}\n[[peers]]\nname = \"a\"\ncount = 1\nbehaviour = \"nope\"\n\n\
         [[steps]]\nat_secs = \"soon\"\naction = \"mine\"\n"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(p.iter().all(|d| d.stage == Stage::Schema));
}

#[test]
fn unreadable_file_names_the_file() {
    let err = Scenario::from_file("scenarios/does-not-exist.toml").unwrap_err();
    assert!(matches!(err, ScenarioError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with("scenarios/does-not-exist.toml: cannot read scenario file: "));
}

/// One edit of the example text.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(prop::sample::Index, &'static str),
    Delete(prop::sample::Index, usize),
    Replace(prop::sample::Index, &'static str),
    DropLine(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
}

const FRAGMENTS: &[&str] = &[
    "",
    "=",
    "\"",
    "'",
    "'''",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\n",
    "#",
    ".",
    ",",
    "0",
    "-1",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "true",
    "\"x\"",
    "peers",
    "steps",
    "expect",
    "behaviour",
    "addr_flood",
    "kind",
    "event",
    "message.*",
    "\\",
    "\\u",
    "é",
    "\u{0}",
    "\u{feff}",
    "99999999999999999999999",
    "1979-05-27T07:32:00Z",
    "max = 0\n",
    "min = 5\n",
    "[[peers]]\n",
    "[node]\n",
    "count = 0\n",
    "group = \"honest\"\n",
    "a.b.c = 1\n",
    "filters = { meta = { op = \">\" } }\n",
    "op = \"starts_with\"\n",
    " = { }\n",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragment = prop::sample::select(FRAGMENTS);
    prop_oneof![
        (any::<prop::sample::Index>(), fragment.clone()).prop_map(|(i, f)| Mutation::Insert(i, f)),
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<prop::sample::Index>(), fragment).prop_map(|(i, f)| Mutation::Replace(i, f)),
        any::<prop::sample::Index>().prop_map(Mutation::DropLine),
        any::<prop::sample::Index>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = |i: &prop::sample::Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::Insert(i, f) => {
            let p = at(i, chars.len() + 1);
            chars.splice(p..p, f.chars());
        }
        Mutation::Delete(i, n) => {
            let p = at(i, chars.len());
            let end = (p + n).min(chars.len());
            chars.drain(p..end);
        }
        Mutation::Replace(i, f) => {
            if !chars.is_empty() {
                let p = at(i, chars.len());
                chars.splice(p..p + 1, f.chars());
            }
        }
        Mutation::DropLine(i) | Mutation::DuplicateLine(i) => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let p = at(i, lines.len());
            if matches!(m, Mutation::DropLine(_)) {
                lines.remove(p);
            } else {
                lines.insert(p, lines[p]);
            }
            return lines.join("\n");
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the edits, the parser answers Ok or Err, and every error is located inside
    /// the text.
    #[test]
    fn mutated_examples_never_panic(mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut text = example_text();
        for m in &mutations {
            text = apply(&text, m);
        }
        let path = example_path();
        if let Err(e) = Scenario::from_str(&text, &path) {
            let lines = text.split('\n').count();
            prop_assert!(!e.diagnostics().is_empty());
            for d in e.diagnostics() {
                prop_assert!(d.line >= 1 && d.line <= lines, "{d} (text has {lines} lines)");
                prop_assert!(d.column >= 1);
                prop_assert_eq!(&d.file, &path);
            }
        }
    }
}

/// Regression (issue 9.4): 20,000 groups of 1,000 peers were accepted and `rehearse` grew to
/// 17 GiB. Peers over all groups are now bounded by what the node takes.
#[test]
fn more_peers_than_the_node_takes_are_refused_at_the_group_that_crosses_the_limit() {
    let mut text =
        "[scenario]\nname = \"t\"\n\n[node]\nextra_args = [\"-maxconnections=40\"]\n".to_string();
    for i in 0..3 {
        text.push_str(&format!(
            "\n[[peers]]\nname = \"g{i}\"\ncount = 30\nbehaviour = \"honest\"\n"
        ));
    }
    let d = only_problem(&text);
    // 30 + 30 = 60 is within twice 40; the third group crosses it.
    assert_eq!((d.line, d.column), pos(&text, "30\nbehaviour", 2), "{d}");
    assert!(
        d.message.contains("90 peers") && d.message.contains("-maxconnections=40"),
        "{d}"
    );
}

#[test]
fn too_many_groups_are_refused() {
    let mut text =
        "[scenario]\nname = \"t\"\n\n[node]\nextra_args = [\"-maxconnections=100000\"]\n"
            .to_string();
    for i in 0..=MAX_ENTRIES {
        text.push_str(&format!(
            "[[peers]]\nname = \"g{i}\"\ncount = 1\nbehaviour = \"honest\"\n"
        ));
    }
    let p = problems(&text);
    assert!(
        p.iter().any(|d| d
            .message
            .contains("more than 1000 [[peers]] entries (1001 in all)")),
        "{p:#?}"
    );
}

#[test]
fn invalid_utf8_is_located_at_its_first_bad_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let mut bytes = b"[scenario]\nname = \"t\xc3\xa9\"\n# caf\xff\n".to_vec();
    bytes.extend_from_slice(b"[[peers]]\n");
    std::fs::write(&path, &bytes).expect("write");
    let err = Scenario::from_file(&path).unwrap_err();
    let d = &err.diagnostics()[0];
    // Line 3, after "# caf" (5 characters): column 6.
    assert_eq!((d.line, d.column), (3, 6), "{d}");
    assert!(d.message.contains("invalid UTF-8 (byte 0xff)"), "{d}");
    assert!(err
        .to_string()
        .starts_with(&format!("{}:3:6: ", path.display())));
}

#[test]
fn oversized_files_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.toml");
    std::fs::write(&path, vec![b'#'; MAX_SCENARIO_BYTES as usize + 1]).expect("write");
    let err = Scenario::from_file(&path).unwrap_err();
    assert!(matches!(err, ScenarioError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
}

#[test]
fn log_and_rpc_events_have_paths_and_filters_from_their_own_messages() {
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"log.block_checked_log\"\n\
         filters = {{ state = \"bad-cb-amount\", log_level = \"DEBUG\" }}\n\
         \n[[expect]]\nkind = \"event\"\nevent = \"rpc.blockchain_info\"\n\
         filters = {{ blocks = 104 }}\n\
         \n[[expect]]\nkind = \"event\"\nevent = \"log.*\"\n"
    );
    let scenario = Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.expect.len(), 3);
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"log.block_checked_log\"\n\
         group = \"honest\"\n"
    );
    assert!(only_problem(&text)
        .to_string()
        .contains("log.block_checked_log events do not concern a peer"));
    // rpc.peer_infos is judged per peer: group applies, filters name PeerInfo's fields.
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"rpc.peer_infos\"\n\
         group = \"honest\"\nfilters = {{ addr_rate_limited = {{ op = \">=\", value = 10 }} }}\n\
         \n[[expect]]\nkind = \"event\"\nevent = \"p2p.ping_duration\"\n\
         \n[[expect]]\nkind = \"event\"\nevent = \"ipc.block_tip\"\nfilters = {{ height = 3 }}\n"
    );
    let scenario = Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.expect.len(), 3);
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"rpc.peer_infos\"\n\
         filters = {{ infos = 1 }}\n"
    );
    assert!(only_problem(&text)
        .to_string()
        .contains("have no field \"infos\""));
    let text = format!("{BASE}\n[[expect]]\nkind = \"event\"\nevent = \"rpc.peer_info\"\n");
    assert!(only_problem(&text)
        .to_string()
        .contains("did you mean \"peer_infos\"?"));
}

#[test]
fn alert_expectations_name_a_known_alert_and_group() {
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"alert\"\nalert = \"PingSpammer\"\ngroup = \"honest\"\n\
         \n[[expect]]\nkind = \"alert\"\nalert = \"*\"\nmin = 0\nmax = 0\n"
    );
    let scenario = Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&scenario.expect[0].check, Check::Alert(a) if a.alert == "PingSpammer"));
    let text = format!("{BASE}\n[[expect]]\nkind = \"alert\"\nalert = \"PingSpamer\"\n");
    let problem = only_problem(&text).to_string();
    assert!(
        problem.contains("unknown alert \"PingSpamer\""),
        "{problem}"
    );
    assert!(
        problem.contains("did you mean \"PingSpammer\"?"),
        "{problem}"
    );
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"alert\"\nalert = \"AddrSpammer\"\ngroup = \"nobody\"\n"
    );
    assert!(only_problem(&text).to_string().contains("nobody"));
}

#[test]
fn metric_expectations_name_a_family_and_compare_numbers() {
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"metric\"\nmetric = \"peerobserver_p2p_addr_addresses_count\"\n\
         labels = {{ direction = \"inbound\" }}\nop = \">\"\nvalue = 0\n"
    );
    Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"metric\"\nmetric = \"peerobserver_conn_inbund\"\nvalue = 1\n"
    );
    let problem = only_problem(&text).to_string();
    assert!(problem.contains("unknown metric"), "{problem}");
    assert!(
        problem.contains("did you mean \"peerobserver_conn_inbound\"?"),
        "{problem}"
    );
    let text = format!(
        "{BASE}\n[[expect]]\nkind = \"metric\"\nmetric = \"peerobserver_conn_inbound\"\nvalue = \"x\"\n"
    );
    assert!(only_problem(&text)
        .to_string()
        .contains("compares with a number"));
}

// ---- topologies ------------------------------------------------------------------------------

/// A minimal valid topology the error tests extend.
const TOPOLOGY: &str = r#"[scenario]
name = "t"

[[node]]
name = "a"
observe = true
addnode = ["b"]

[[node]]
name = "b"
"#;

#[test]
fn the_shipped_topologies_parse_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/topology");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(s.is_topology(), "{}", path.display());
            count += 1;
        }
    }
    assert!(
        count >= 3,
        "three topology scenarios at least, found {count}"
    );
}

#[test]
fn a_topology_decodes_nodes_edges_and_node_keys() {
    let text = format!(
        "{TOPOLOGY}\n[[peers]]\nname = \"spy\"\ncount = 1\nbehaviour = \"honest\"\nnodes = [\"a\", \"b\"]\n\
         distinct_addresses = true\n\n[[steps]]\nat_secs = 1\nnode = \"b\"\naction = \"mine\"\n\n\
         [[expect]]\nnode = \"a\"\nkind = \"event\"\nevent = \"message.inv\"\n"
    );
    let s = Scenario::from_str(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.topology.len(), 2);
    assert_eq!(s.topology[0].addnode, vec!["b".to_string()]);
    assert_eq!(s.home_node().map(|n| n.name.as_str()), Some("a"));
    assert_eq!(s.mine_at_start_of(&s.topology[0]), 101);
    assert_eq!(s.mine_at_start_of(&s.topology[1]), 0);
    assert_eq!(s.peers[0].nodes, vec!["a".to_string(), "b".to_string()]);
    assert!(s.peers[0].distinct_addresses);
    assert_eq!(s.steps[0].node.as_deref(), Some("b"));
    assert_eq!(s.expect[0].node.as_deref(), Some("a"));
}

#[test]
fn topology_mistakes_are_located() {
    let unknown_edge = TOPOLOGY.replace("addnode = [\"b\"]", "addnode = [\"c\"]");
    let p = only_problem(&unknown_edge);
    assert!(p.message.contains("unknown node \"c\""), "{p}");
    assert_eq!(p.line, 7);

    let unobserved = TOPOLOGY.replace("observe = true\n", "");
    assert!(only_problem(&unobserved)
        .message
        .contains("no node is observed"));

    let duplicate = TOPOLOGY.replace("name = \"b\"", "name = \"a\"");
    assert!(problems(&duplicate)
        .iter()
        .any(|p| p.message.contains("duplicate node name")));

    let restart = format!("{TOPOLOGY}\n[[steps]]\nat_secs = 1\naction = \"restart_node\"\n");
    assert!(only_problem(&restart)
        .message
        .contains("single embedded node"));

    let unobserved_events = format!(
        "{TOPOLOGY}\n[[expect]]\nnode = \"b\"\nkind = \"event\"\nevent = \"message.inv\"\n"
    );
    assert!(only_problem(&unobserved_events)
        .message
        .contains("not observed"));
}

#[test]
fn node_keys_need_a_topology() {
    let text = format!("{BASE}\n[[steps]]\nat_secs = 1\nnode = \"a\"\naction = \"mine\"\n");
    let p = only_problem(&text);
    assert!(p.message.contains("declare [[node]]s"), "{p}");
    let text = BASE.replace(
        "behaviour = \"honest\"",
        "behaviour = \"honest\"\ndistinct_addresses = true",
    );
    assert!(only_problem(&text).message.contains("container network"));
}
