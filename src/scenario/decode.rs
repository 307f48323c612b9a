//! From TOML text to scenario types, keeping every location.
//!
//! The text is parsed once into toml's spanned tree ([`DeTable`]). Plain tables are
//! deserialized from their subtree with [`ValueDeserializer`], so serde's errors carry the
//! offending key's or value's byte span. Tagged tables (`[[peers]]`, `[[steps]]`,
//! `[[expect]]`) hold the tag, common keys and the variant's parameters side by side; serde's
//! internally tagged enums would buffer the table and lose every span, so we split the table
//! ourselves: the tag picks the variant, unknown keys are reported against the union of common
//! and variant keys, and each part is deserialized from its own spanned subtree.
//!
//! Every key's and value's span is also kept by path ([`Spans`]), so validation can point at
//! the value it complains about.

use std::collections::HashMap;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::{Diagnostic, Reporter, Stage};
use super::types::{
    Behaviour, Check, Expectation, ExpectationHeader, NodeSettings, PeerGroup, PeerGroupHeader,
    ScenarioMeta, Step, StepHeader, TopologyNode,
};

/// An enum whose variant is named by a tag key and whose parameters share its table.
pub(crate) trait Tagged: Sized {
    /// The tag key (`behaviour`).
    const TAG: &'static str;
    /// What the tag names, for messages (`behaviour`, `expectation kind`).
    const WHAT: &'static str;
    /// Every tag value.
    fn names() -> &'static [&'static str];
    /// The parameter keys of a variant, `None` for an unknown tag.
    fn fields(tag: &str) -> Option<&'static [&'static str]>;
    /// Deserializes a variant from its parameters.
    fn decode(tag: &str, de: ValueDeserializer<'_>) -> Result<Self, toml::de::Error>;
}

/// The parameters of a variant that takes none.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// The keys a derived `Deserialize` struct accepts, read from what it passes to
/// `deserialize_struct` (so the lists never drift from the types).
pub(crate) fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Byte spans of every key and value, by path (`peers[1].count`, `expect[0].filters."a.b"`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans {
    /// path -> (key span, value span); array elements have their element span twice.
    map: HashMap<String, (Range<usize>, Range<usize>)>,
}

impl Spans {
    pub(crate) fn collect(root: &Spanned<DeTable<'_>>) -> Spans {
        let mut spans = Spans::default();
        spans.walk_table("", root.get_ref());
        spans
    }

    fn walk_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = join(prefix, key.get_ref());
            self.map.insert(path.clone(), (key.span(), value.span()));
            self.walk_value(&path, value);
        }
    }

    fn walk_value(&mut self, path: &str, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => self.walk_table(path, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    self.map
                        .insert(item_path.clone(), (item.span(), item.span()));
                    self.walk_value(&item_path, item);
                }
            }
            _ => {}
        }
    }

    /// The span of the value at `path`, else of the nearest enclosing value that has one.
    pub(crate) fn value(&self, path: &str) -> Range<usize> {
        self.lookup(path, |(_, v)| v.clone())
    }

    /// Whether the file spells out `path` (defaults are not in the file).
    pub(crate) fn has(&self, path: &str) -> bool {
        self.map.contains_key(path)
    }

    fn lookup(
        &self,
        path: &str,
        pick: impl Fn(&(Range<usize>, Range<usize>)) -> Range<usize>,
    ) -> Range<usize> {
        let mut path = path;
        loop {
            if let Some(entry) = self.map.get(path) {
                return pick(entry);
            }
            match parent(path) {
                Some(p) => path = p,
                None => return 0..0,
            }
        }
    }
}

/// Joins a path and a key, quoting keys that are not bare TOML keys.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The enclosing path: `a.b[2]` -> `a.b`, `a.b` -> `a`, `a."x.y"` -> `a`.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        return path.rfind('[').map(|i| &path[..i]);
    }
    // The last separator outside quotes.
    let mut in_quotes = false;
    let mut escaped = false;
    let mut last = None;
    for (i, c) in path.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => last = Some(i),
            _ => {}
        }
    }
    Some(last.map_or("", |i| &path[..i]))
}

/// The decoded parts of a scenario, before validation.
pub(crate) struct Decoded {
    pub(crate) meta: ScenarioMeta,
    pub(crate) node: NodeSettings,
    pub(crate) topology: Vec<TopologyNode>,
    pub(crate) peers: Vec<PeerGroup>,
    pub(crate) steps: Vec<Step>,
    pub(crate) expect: Vec<Expectation>,
    pub(crate) spans: Spans,
}

/// Parses and decodes `text`; all schema problems at once, or the syntax error alone.
pub(crate) fn decode(rep: &Reporter<'_>) -> Result<Decoded, Vec<Diagnostic>> {
    let root = DeTable::parse(rep.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        vec![rep.at(span, Stage::Syntax, syntax_message(e.message()))]
    })?;
    let spans = Spans::collect(&root);
    let mut d = Decoder {
        rep,
        problems: Vec::new(),
    };

    let mut meta = None;
    let mut node = None;
    let mut topology = Vec::new();
    let (mut peers, mut steps, mut expect) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in root.get_ref().iter() {
        match &**key.get_ref() {
            "scenario" => meta = d.table::<ScenarioMeta>(value, "scenario", "[scenario]"),
            // `[node]`: the one node; `[[node]]`: a topology of containers.
            "node" if matches!(value.get_ref(), DeValue::Array(_)) => {
                for (i, item) in d.array(value, "node").into_iter().enumerate() {
                    let path = format!("node[{i}]");
                    if let Some(n) = d.table::<TopologyNode>(item, &path, "[[node]]") {
                        topology.push(n);
                    }
                }
            }
            "node" => node = d.table::<NodeSettings>(value, "node", "[node]"),
            "peers" => {
                for (i, item) in d.array(value, "peers").into_iter().enumerate() {
                    let path = format!("peers[{i}]");
                    if let Some((h, behaviour)) =
                        d.tagged::<PeerGroupHeader, Behaviour>(item, &path, "[[peers]]")
                    {
                        peers.push(PeerGroup {
                            name: h.name,
                            count: h.count,
                            behaviour,
                            start_at_secs: h.start_at_secs,
                            stop_at_secs: h.stop_at_secs,
                            nodes: h.node.into_iter().chain(h.nodes).collect(),
                            distinct_addresses: h.distinct_addresses,
                        });
                    }
                }
            }
            "steps" => {
                for (i, item) in d.array(value, "steps").into_iter().enumerate() {
                    let path = format!("steps[{i}]");
                    if let Some((h, action)) = d.tagged::<StepHeader, _>(item, &path, "[[steps]]") {
                        steps.push(Step {
                            at_secs: h.at_secs,
                            node: h.node,
                            action,
                        });
                    }
                }
            }
            "expect" => {
                for (i, item) in d.array(value, "expect").into_iter().enumerate() {
                    let path = format!("expect[{i}]");
                    if let Some((h, check)) =
                        d.tagged::<ExpectationHeader, Check>(item, &path, "[[expect]]")
                    {
                        expect.push(Expectation {
                            name: h.name,
                            node: h.node,
                            check,
                        });
                    }
                }
            }
            other => d.problem(
                key.span(),
                unknown_key_message(other, "at the top level", TOP_LEVEL_KEYS),
            ),
        }
    }
    if !root.get_ref().contains_key("scenario") {
        d.problem(
            0..0,
            "missing [scenario] table (it needs at least `name`)".to_string(),
        );
    }
    if !d.problems.is_empty() {
        d.problems.sort_by_key(|p| (p.line, p.column));
        return Err(d.problems);
    }
    let meta = meta.expect("no problems, so [scenario] was decoded");
    Ok(Decoded {
        meta,
        node: node.unwrap_or_default(),
        topology,
        peers,
        steps,
        expect,
        spans,
    })
}

const TOP_LEVEL_KEYS: &[&str] = &["scenario", "node", "peers", "steps", "expect"];

struct Decoder<'a> {
    rep: &'a Reporter<'a>,
    problems: Vec<Diagnostic>,
}

impl Decoder<'_> {
    fn problem(&mut self, span: Range<usize>, message: String) {
        self.problems
            .push(self.rep.at(span, Stage::Schema, message));
    }

    /// Records a serde error raised while decoding the value at `path`.
    fn serde_error(&mut self, e: toml::de::Error, value: &Spanned<DeValue<'_>>, path: &str) {
        let span = e.span().unwrap_or_else(|| value.span());
        let at = key_path_of(value, path, &span).unwrap_or_else(|| path.to_string());
        self.problem(span, format!("{at}: {}", humanize(e.message())));
    }

    /// The elements of an array of tables.
    fn array<'v, 'i>(
        &mut self,
        value: &'v Spanned<DeValue<'i>>,
        name: &str,
    ) -> Vec<&'v Spanned<DeValue<'i>>> {
        match value.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            other => {
                self.problem(
                    value.span(),
                    format!(
                        "`{name}` must be an array of tables (write [[{name}]] before each \
                         entry), found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// A plain table, with unknown keys reported one by one.
    fn table<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
        what: &str,
    ) -> Option<T> {
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                value.span(),
                format!(
                    "`{path}` must be a table ({what}), found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        let fields = struct_fields::<T>();
        let mut ok = true;
        for key in table.keys() {
            if !fields.contains(&&**key.get_ref()) {
                let where_ = format!("in {what}");
                self.problem(
                    key.span(),
                    unknown_key_message(key.get_ref(), &where_, fields),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                self.serde_error(e, value, path);
                None
            }
        }
    }

    /// A tagged table: common keys into `H`, the tag and the rest into `E`.
    fn tagged<H: DeserializeOwned, E: Tagged>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
        what: &str,
    ) -> Option<(H, E)> {
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                value.span(),
                format!(
                    "`{path}` must be a table ({what}), found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        let names = E::names();
        let Some(tag_value) = table.get(E::TAG) else {
            self.problem(
                value.span(),
                format!(
                    "{what} without `{tag} = \"...\"` (expected one of: {})",
                    names.join(", "),
                    tag = E::TAG
                ),
            );
            return None;
        };
        let Some(tag) = tag_value.get_ref().as_str() else {
            self.problem(
                tag_value.span(),
                format!(
                    "`{}` must be a string naming the {} (one of: {}), found {}",
                    E::TAG,
                    E::WHAT,
                    names.join(", "),
                    tag_value.get_ref().type_str()
                ),
            );
            return None;
        };
        let Some(variant_fields) = E::fields(tag) else {
            self.problem(
                tag_value.span(),
                format!(
                    "unknown {} {tag:?} (expected one of: {}){}",
                    E::WHAT,
                    names.join(", "),
                    suggestion(tag, names)
                ),
            );
            return None;
        };
        let header_fields = struct_fields::<H>();

        let mut header = DeTable::new();
        let mut params = DeTable::new();
        let mut ok = true;
        for (key, v) in table.iter() {
            let k: &str = key.get_ref();
            if k == E::TAG {
                continue;
            }
            if header_fields.contains(&k) {
                header.insert(key.clone(), v.clone());
            } else if variant_fields.contains(&k) {
                params.insert(key.clone(), v.clone());
            } else {
                let mut allowed = vec![E::TAG];
                allowed.extend_from_slice(header_fields);
                allowed.extend_from_slice(variant_fields);
                let where_ = format!("in {what} with {} = {tag:?}", E::TAG);
                self.problem(key.span(), unknown_key_message(k, &where_, &allowed));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let span = value.span();
        let header_value = Spanned::new(span.clone(), DeValue::Table(header));
        let params_value = Spanned::new(span, DeValue::Table(params));
        let h = H::deserialize(ValueDeserializer::from(header_value.clone()));
        let e = E::decode(tag, ValueDeserializer::from(params_value.clone()));
        match (h, e) {
            (Ok(h), Ok(e)) => Some((h, e)),
            (h, e) => {
                if let Err(err) = h {
                    self.serde_error(err, &header_value, path);
                }
                if let Err(err) = e {
                    self.serde_error(err, &params_value, path);
                }
                None
            }
        }
    }
}

/// The path of the key whose key or value span is `span`, searching below `value`.
fn key_path_of(value: &Spanned<DeValue<'_>>, path: &str, span: &Range<usize>) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(t) => t.iter().find_map(|(k, v)| {
            let p = join(path, k.get_ref());
            if v.span() == *span || k.span() == *span {
                Some(p)
            } else {
                key_path_of(v, &p, span)
            }
        }),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let p = format!("{path}[{i}]");
            if v.span() == *span {
                Some(p)
            } else {
                key_path_of(v, &p, span)
            }
        }),
        _ => None,
    }
}

/// `unknown key "x" in WHERE (expected one of: ...); did you mean "y"?`
pub(crate) fn unknown_key_message(key: &str, where_: &str, allowed: &[&str]) -> String {
    format!(
        "unknown key {key:?} {where_} (expected one of: {}){}",
        allowed.join(", "),
        suggestion(key, allowed)
    )
}

/// `; did you mean "x"?` when a candidate is close to `word`.
pub(crate) fn suggestion(word: &str, candidates: &[&str]) -> String {
    if word.is_empty() || candidates.contains(&word) {
        return String::new();
    }
    // A long shared start also counts: `misbehave` -> `misbehaving`.
    let shared = |c: &str| {
        word.chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let prefix = |c: &str| shared(c) >= 4.max(word.chars().count() * 2 / 3);
    let best = candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(word.chars().count() / 4) || prefix(c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("; did you mean {c:?}?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn syntax_message(message: &str) -> String {
    format!("TOML syntax error: {message}")
}

/// Rewrites serde's Rust-flavoured messages for people writing TOML.
pub(crate) fn humanize(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // unknown variant `x`, expected `a` or `b` / expected one of `a`, `b`
        let mut ticks = backticked(rest);
        if !ticks.is_empty() {
            let value = ticks.remove(0);
            return format!(
                "unknown value {value:?} (expected one of: {})",
                ticks.join(", ")
            );
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        if let Some(name) = backticked(rest).first() {
            return format!("missing key {name:?}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let mut ticks = backticked(rest);
        if !ticks.is_empty() {
            let key = ticks.remove(0);
            return format!(
                "unknown key {key:?} (expected one of: {})",
                ticks.join(", ")
            );
        }
    }
    if let Some((head, expected)) = message.rsplit_once(", expected ") {
        let expected = match expected {
            "u32" => "an integer from 0 to 4294967295",
            "u64" | "usize" => "a non-negative integer",
            "i32" => "an integer from -2147483648 to 2147483647",
            "i64" | "isize" => "an integer",
            "f32" | "f64" => "a number",
            "a sequence" => "an array",
            "a map" => "a table",
            other if other.starts_with("struct ") => "a table",
            other => other,
        };
        let head = head
            .replace("invalid type: map", "invalid type: table")
            .replace("invalid type: sequence", "invalid type: array")
            .replace("floating point", "float");
        return format!("{head}, expected {expected}");
    }
    message.to_string()
}

fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_fields_reads_the_derived_list() {
        assert_eq!(
            struct_fields::<ScenarioMeta>(),
            &["name", "description", "seed", "timeout_secs"]
        );
        assert!(struct_fields::<NoParams>().is_empty());
    }

    #[test]
    fn parents_of_paths() {
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a.b"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(
            parent(r#"e[0].filters."meta.inbound""#),
            Some("e[0].filters")
        );
        assert_eq!(parent(""), None);
        assert_eq!(join("x", "meta.inbound"), r#"x."meta.inbound""#);
        assert_eq!(join("", "peers"), "peers");
    }

    #[test]
    fn humanized_messages() {
        assert_eq!(
            humanize("unknown variant `addrv3`, expected `addr` or `addrv2`"),
            "unknown value \"addrv3\" (expected one of: addr, addrv2)"
        );
        assert_eq!(humanize("missing field `count`"), "missing key \"count\"");
        assert_eq!(
            humanize("invalid type: string \"x\", expected u32"),
            "invalid type: string \"x\", expected an integer from 0 to 4294967295"
        );
        assert_eq!(
            suggestion("adr_flood", &["honest", "addr_flood"]),
            "; did you mean \"addr_flood\"?"
        );
        assert_eq!(suggestion("zzzzzz", &["honest", "addr_flood"]), "");
    }
}
