//! One `debug.log` line -> one `log_extractor.log` message, exactly as peer-observer's log
//! extractor reads it (`shared/spec/extractors.md` §4).
//!
//! Invariants:
//! - **Pure and total.** Every line gives a message; a line that does not have the shape
//!   `TIMESTAMP WS [token]... MESSAGE` gives timestamp 0, category UNKNOWN, level INFO, no
//!   thread and an `unknown_log_message` with an empty raw message, and [`ParsedLine::shaped`]
//!   says so (the extractor counts those lines).
//! - `log_line_bytes` is the byte length of the whole line as read (before any lossy UTF-8
//!   repair), always set.
//! - Hashes stay display-order hex strings, as Core prints them.

use std::sync::LazyLock;

use regex::Regex;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event::proto::log_extractor::{
    log::LogEvent, BlockCheckedLog, BlockConnectedLog, Log, LogDebugCategory, LogLevel,
    UnknownLogMessage,
};

/// Timestamp, whitespace, bracket tokens each followed by whitespace, then the message.
static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z)\s+((?:\[[^\]]+\]\s+)*)(.+)$")
});
/// One bracket token.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| pattern(r"\[([^\]]+)\]"));
static BLOCK_CONNECTED: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"BlockConnected: block hash=([0-9a-f]{64}) block height=(\d+)"));
static BLOCK_CHECKED: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"BlockChecked: block hash=([0-9a-f]{64}) state=(.*)$"));

/// The patterns above are constants: a typo is a programming error the unit tests catch.
fn pattern(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a constant pattern (checked by the unit tests)")
}

/// The `state` values of a `BlockChecked` line that mean the block was mutated.
pub const MUTATED_STATES: [&str; 5] = [
    "bad-txnmrklroot",
    "bad-txns-duplicate",
    "bad-witness-nonce-size",
    "bad-witness-merkle-match",
    "unexpected-witness",
];

/// A parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine {
    /// The message to publish.
    pub log: Log,
    /// Whether the line had the expected shape (false: counted as unparsed).
    pub shaped: bool,
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> ParsedLine {
    let text = String::from_utf8_lossy(line);
    let mut log = Log {
        log_timestamp: 0,
        category: LogDebugCategory::Unknown as i32,
        threadname: String::new(),
        log_level: LogLevel::Info as i32,
        log_line_bytes: line.len() as u64,
        log_event: Some(LogEvent::UnknownLogMessage(UnknownLogMessage {
            raw_message: String::new(),
        })),
    };
    let (stamp, mut tokens, message) = match plain_shape(&text) {
        Some(parts) => parts,
        None => {
            let Some(captures) = SHAPE.captures(&text) else {
                return ParsedLine { log, shaped: false };
            };
            let part = |i: usize| captures.get(i).map_or("", |m| m.as_str());
            let tokens: Vec<&str> = TOKEN
                .captures_iter(part(2))
                .filter_map(|c| c.get(1).map(|m| m.as_str()))
                .collect();
            (part(1), tokens, part(3))
        }
    };
    log.log_timestamp = micros_since_epoch(stamp).unwrap_or(0);

    // 1. A level token anywhere (the first wins); every level token is removed.
    let explicit_level = tokens.iter().find_map(|t| level_token(t));
    tokens.retain(|t| level_token(t).is_none());
    // 2. The last remaining token may be the category (with an optional `:trace`).
    let mut trace = false;
    if let Some(last) = tokens.last() {
        let (name, is_trace) = match last.strip_suffix(":trace") {
            Some(name) => (name, true),
            None => (*last, false),
        };
        if let Some(category) = category(name) {
            log.category = category as i32;
            trace = is_trace;
            tokens.pop();
        }
    }
    // 3. The level: explicit, else trace, else debug for a category, else info.
    log.log_level = match explicit_level {
        Some(level) => level,
        None if trace => LogLevel::Trace,
        None if log.category != LogDebugCategory::Unknown as i32 => LogLevel::Debug,
        None => LogLevel::Info,
    } as i32;
    // 4. The first remaining token is the thread name (`-logthreadnames`).
    if let Some(first) = tokens.first() {
        log.threadname = (*first).to_string();
    }
    log.log_event = Some(match_message(message));
    ParsedLine { log, shaped: true }
}

/// [`SHAPE`]'s split of a line (timestamp, bracket tokens, message) without the regex, for
/// lines in the plain form bitcoind writes: ASCII timestamp, ASCII whitespace, tokens, a
/// non-empty message. Both give the same split, because every quantifier of [`SHAPE`] is
/// greedy and this takes the greedy path; only when that path ends in an empty message
/// would the regex backtrack, and then this returns `None`. So does anything the regex may
/// read otherwise (a non-ASCII character where `\s` or `\d` is tested: Unicode spaces and
/// digits count there), leaving the line to the regex. The regex's captures cost about a
/// third of the log extractor's time per line; this costs a scan.
fn plain_shape(text: &str) -> Option<(&str, Vec<&str>, &str)> {
    const STAMP: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    let b = text.as_bytes();
    if b.len() < STAMP.len() + 1 {
        return None;
    }
    let stamp_shaped = STAMP.iter().zip(b).all(|(p, c)| match p {
        b'd' => c.is_ascii_digit(),
        _ => c == p,
    });
    if !stamp_shaped {
        return None;
    }
    let mut at = STAMP.len();
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=6).contains(&digits) {
            return None;
        }
        at += 1 + digits;
    }
    if b.get(at) != Some(&b'Z') {
        return None;
    }
    at += 1;
    let stamp = &text[..at];
    let spaces = ascii_space_run(b, at)?;
    if spaces == 0 {
        return None;
    }
    at += spaces;
    let mut tokens = Vec::new();
    while b.get(at) == Some(&b'[') {
        // `[^\]]+` then `]`: the first `]`, with at least one character before it.
        let Some(close) = b[at + 1..].iter().position(|c| *c == b']') else {
            break;
        };
        if close == 0 {
            break;
        }
        let end = at + 1 + close;
        let spaces = ascii_space_run(b, end + 1)?;
        if spaces == 0 {
            break;
        }
        tokens.push(&text[at + 1..end]);
        at = end + 1 + spaces;
    }
    let message = &text[at..];
    if message.is_empty() {
        return None;
    }
    Some((stamp, tokens, message))
}

/// The length of the run of ASCII whitespace at `at`; `None` when a non-ASCII character ends
/// it (it may be Unicode whitespace, which the regex's `\s` takes).
fn ascii_space_run(b: &[u8], at: usize) -> Option<usize> {
    let rest = b.get(at..).unwrap_or_default();
    let n = rest
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .count();
    match rest.get(n) {
        Some(c) if !c.is_ascii() => None,
        _ => Some(n),
    }
}

/// The message's event: a block connected or checked, or the message itself. The literal
/// checks only skip the regexes for lines that cannot match them.
fn match_message(message: &str) -> LogEvent {
    if !message.contains("Block") {
        return LogEvent::UnknownLogMessage(UnknownLogMessage {
            raw_message: message.to_string(),
        });
    }
    if let Some(c) = BLOCK_CONNECTED.captures(message) {
        // A height beyond u32 falls through to an unknown message.
        if let Ok(block_height) = c[2].parse::<u32>() {
            return LogEvent::BlockConnectedLog(BlockConnectedLog {
                block_hash: c[1].to_string(),
                block_height,
            });
        }
    }
    if let Some(c) = BLOCK_CHECKED.captures(message) {
        let (state, debug_message) = c[2].split_once(", ").unwrap_or((&c[2], ""));
        return LogEvent::BlockCheckedLog(BlockCheckedLog {
            block_hash: c[1].to_string(),
            state: state.to_string(),
            debug_message: debug_message.to_string(),
        });
    }
    LogEvent::UnknownLogMessage(UnknownLogMessage {
        raw_message: message.to_string(),
    })
}

fn level_token(token: &str) -> Option<LogLevel> {
    if token.eq_ignore_ascii_case("error") {
        Some(LogLevel::Error)
    } else if token.eq_ignore_ascii_case("warning") {
        Some(LogLevel::Warning)
    } else {
        None
    }
}

/// A `LogDebugCategory` by its Core name (case-insensitive); never `UNKNOWN`.
fn category(name: &str) -> Option<LogDebugCategory> {
    LogDebugCategory::from_str_name(&name.to_ascii_uppercase())
        .filter(|c| *c != LogDebugCategory::Unknown)
}

fn micros_since_epoch(stamp: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(stamp, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1000).ok()
}

/// Whether a `BlockChecked` state means the block was mutated.
pub fn is_mutated(state: &str) -> bool {
    MUTATED_STATES.contains(&state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The regex's split, as `parse_line` read it before the plain path existed.
    fn regex_shape(text: &str) -> Option<(String, Vec<String>, String)> {
        let c = SHAPE.captures(text)?;
        let tokens = TOKEN
            .captures_iter(&c[2])
            .map(|t| t[1].to_string())
            .collect();
        Some((c[1].to_string(), tokens, c[3].to_string()))
    }

    fn owned(parts: (&str, Vec<&str>, &str)) -> (String, Vec<String>, String) {
        (
            parts.0.to_string(),
            parts.1.into_iter().map(String::from).collect(),
            parts.2.to_string(),
        )
    }

    proptest! {
        /// Wherever the plain path answers, it answers exactly what the regex does, over
        /// lines built from the characters that decide a split (digits, separators,
        /// brackets, ASCII and Unicode spaces, Unicode digits).
        #[test]
        fn the_plain_split_is_the_regex_split(
            stamp in prop::sample::select(vec![
                "2026-11-30T02:41:35Z", "2026-11-30T02:41:35.123456Z", "2026-11-30T02:41:35.1Z",
                "2026-11-30T02:41:35.1234567Z", "2026-11-30T02:41:35.Z", "2026-11-3002:41:35Z",
                "٢026-11-30T02:41:35Z", "",
            ]),
            rest in "[ \\t\\[\\]a-c0-9:é\u{a0}\u{2003}٣.Z-]{0,24}",
        ) {
            let line = format!("{stamp}{rest}");
            if let Some(plain) = plain_shape(&line) {
                prop_assert_eq!(Some(owned(plain)), regex_shape(&line), "{:?}", line);
            }
        }
    }

    #[test]
    fn the_plain_path_takes_the_lines_bitcoind_writes() {
        for line in [
            "2026-11-30T02:41:35.123456Z [msghand] [net] received: ping (8 bytes) peer=3",
            "2026-11-30T02:41:35Z [net] sending pong (8 bytes) peer=1",
            "2026-11-30T02:41:35.1Z Loaded best chain",
            "2026-11-30T02:41:35Z [validation:trace] [warning] x",
        ] {
            let plain = plain_shape(line).expect("plain form");
            assert_eq!(Some(owned(plain)), regex_shape(line), "{line}");
        }
        // Left to the regex: an empty message after greedy tokens, Unicode spaces.
        assert!(plain_shape("2026-11-30T02:41:35Z [net] ").is_none());
        assert!(plain_shape("2026-11-30T02:41:35Z\u{a0}x").is_none());
    }

    fn parsed(line: &str) -> (Log, LogEvent) {
        let parsed = parse_line(line.as_bytes());
        assert!(parsed.shaped, "{line}");
        let event = parsed.log.log_event.clone().expect("an event");
        (parsed.log, event)
    }

    #[test]
    fn patterns_compile() {
        for pattern in [&*SHAPE, &*TOKEN, &*BLOCK_CONNECTED, &*BLOCK_CHECKED] {
            assert!(!pattern.as_str().is_empty());
            assert!(Regex::new(pattern.as_str()).is_ok());
        }
    }

    #[test]
    fn block_connected_lines_give_hash_height_category_and_thread() {
        let hash = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
        let line = format!(
            "2026-11-29T14:00:01.123456Z [msghand] [validation] Enqueuing BlockConnected: block hash={hash} block height=101"
        );
        let (log, event) = parsed(&line);
        assert_eq!(log.log_timestamp, 1_795_960_801_123_456);
        assert_eq!(log.category, LogDebugCategory::Validation as i32);
        assert_eq!(log.log_level, LogLevel::Debug as i32);
        assert_eq!(log.threadname, "msghand");
        assert_eq!(log.log_line_bytes, line.len() as u64);
        assert_eq!(
            event,
            LogEvent::BlockConnectedLog(BlockConnectedLog {
                block_hash: hash.into(),
                block_height: 101
            })
        );
    }

    #[test]
    fn block_checked_splits_state_and_debug_message_at_the_first_separator() {
        let hash = "00".repeat(32);
        let (_, event) = parsed(&format!(
            "2026-11-29T14:00:01Z [validation] BlockChecked: block hash={hash} state=bad-txnmrklroot, hashMerkleRoot mismatch, again"
        ));
        assert_eq!(
            event,
            LogEvent::BlockCheckedLog(BlockCheckedLog {
                block_hash: hash.clone(),
                state: "bad-txnmrklroot".into(),
                debug_message: "hashMerkleRoot mismatch, again".into(),
            })
        );
        assert!(is_mutated("bad-txnmrklroot"));
        let (_, event) = parsed(&format!(
            "2026-11-29T14:00:01Z BlockChecked: block hash={hash} state=Valid"
        ));
        let LogEvent::BlockCheckedLog(checked) = event else {
            panic!("a checked block")
        };
        assert_eq!(
            (checked.state.as_str(), checked.debug_message.as_str()),
            ("Valid", "")
        );
        assert!(!is_mutated("Valid"));
    }

    #[test]
    fn levels_categories_and_trace_follow_the_token_rules() {
        let (log, _) = parsed("2026-01-01T00:00:00Z [net:trace] sending ping");
        assert_eq!(log.category, LogDebugCategory::Net as i32);
        assert_eq!(log.log_level, LogLevel::Trace as i32);
        let (log, _) = parsed("2026-01-01T00:00:00Z [scheduler] [net] [WARNING] odd");
        assert_eq!(log.category, LogDebugCategory::Net as i32);
        assert_eq!(log.log_level, LogLevel::Warning as i32);
        assert_eq!(log.threadname, "scheduler");
        let (log, event) = parsed("2026-01-01T00:00:00Z [init] [error] Cannot obtain a lock");
        assert_eq!(log.log_level, LogLevel::Error as i32);
        assert_eq!(log.category, LogDebugCategory::Unknown as i32);
        assert_eq!(log.threadname, "init");
        assert_eq!(
            event,
            LogEvent::UnknownLogMessage(UnknownLogMessage {
                raw_message: "Cannot obtain a lock".into()
            })
        );
        let (log, _) = parsed("2026-01-01T00:00:00Z Bitcoin Core version v29.0");
        assert_eq!(log.log_level, LogLevel::Info as i32);
        assert_eq!(log.threadname, "");
        // `[unknown]` is not a category name.
        let (log, _) = parsed("2026-01-01T00:00:00Z [unknown] x");
        assert_eq!(log.category, LogDebugCategory::Unknown as i32);
        assert_eq!(log.threadname, "unknown");
    }

    #[test]
    fn lines_without_the_shape_are_unknown_with_an_empty_message() {
        for line in [
            &b""[..],
            b"no timestamp here",
            b"2026-01-01 00:00:00 missing T and Z",
        ] {
            let parsed = parse_line(line);
            assert!(!parsed.shaped);
            assert_eq!(parsed.log.log_timestamp, 0);
            assert_eq!(parsed.log.log_line_bytes, line.len() as u64);
            assert_eq!(
                parsed.log.log_event,
                Some(LogEvent::UnknownLogMessage(UnknownLogMessage {
                    raw_message: String::new()
                }))
            );
        }
    }

    #[test]
    fn an_out_of_range_height_and_non_utf8_bytes_do_not_panic() {
        let hash = "ab".repeat(32);
        let (_, event) = parsed(&format!(
            "2026-01-01T00:00:00Z BlockConnected: block hash={hash} block height=99999999999"
        ));
        assert!(matches!(event, LogEvent::UnknownLogMessage(_)));
        let mut line = b"2026-01-01T00:00:00Z [net] bad \xff\xfe bytes".to_vec();
        let parsed = parse_line(&line);
        assert!(parsed.shaped);
        assert_eq!(parsed.log.log_line_bytes, line.len() as u64);
        line.truncate(5);
        assert!(!parse_line(&line).shaped);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let parsed = parse_line(&bytes);
            proptest::prop_assert_eq!(parsed.log.log_line_bytes, bytes.len() as u64);
        }
    }
}
