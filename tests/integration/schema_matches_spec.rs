//! The compiled schema must equal the authoritative listing in
//! `shared/spec/event-wire-format.md`, in both directions.
//!
//! peer-observer tools decode what peerlab publishes (and vice versa), so any drift in a field
//! number, label, scalar kind, type name or enum value silently breaks interoperability. The
//! test parses the spec's listing into a small model ([`Schema`]), converts the embedded
//! descriptor pool into the same model, and [`diff`]s the two, reporting every difference at
//! once so a failure reads as a checklist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, Kind, Syntax};

/// File name of the spec inside `PEERLAB_SPEC_DIR`.
const SPEC_FILE: &str = "event-wire-format.md";

/// The protobuf scalar types, spelled as in `.proto` files and in the spec.
const SCALARS: &[&str] = &[
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
];

// ------------------------------------------------------------------------------------------
// The model both sides are converted into.
// ------------------------------------------------------------------------------------------

/// Everything the wire format fixes, keyed by full name so both sides line up.
#[derive(Debug, Clone, Default)]
struct Schema {
    /// File name (`ebpf_extractor/message.proto`) -> its header.
    files: BTreeMap<String, FileSpec>,
    /// Message full name -> definition. Synthetic map-entry messages are not listed.
    messages: BTreeMap<String, MessageSpec>,
    /// Enum full name (`ebpf_extractor.message.Reject.RejectReason`) -> definition.
    enums: BTreeMap<String, EnumSpec>,
    /// Services and extensions, described as "service `x`". The spec defines none, so any
    /// entry here is something the pool has beyond the spec.
    other_definitions: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct FileSpec {
    package: String,
    syntax: String,
}

#[derive(Debug, Clone)]
struct MessageSpec {
    file: String,
    /// Field name -> definition.
    fields: BTreeMap<String, FieldSpec>,
}

#[derive(Debug, Clone)]
struct FieldSpec {
    number: u32,
    label: Label,
    ty: FieldType,
    /// Name of the oneof the field is an arm of.
    oneof: Option<String>,
    /// Packed repeated encoding changes the bytes on the wire; the spec lists no field
    /// options, so every field must have proto2's default (unpacked) encoding.
    packed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Required,
    Optional,
    Repeated,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldType {
    /// A scalar, by its `.proto` keyword (`sint64`, `fixed64`, ...).
    Scalar(String),
    /// A message, by full name.
    Message(String),
    /// An enum, by full name.
    Enum(String),
    /// A proto2 group (different wire encoding from a message); the spec never uses one.
    Group(String),
    Map {
        key: Box<FieldType>,
        value: Box<FieldType>,
    },
}

#[derive(Debug, Clone)]
struct EnumSpec {
    file: String,
    /// Value name -> number.
    values: BTreeMap<String, i32>,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Label::Required => "required",
            Label::Optional => "optional",
            Label::Repeated => "repeated",
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Scalar(name) => f.write_str(name),
            FieldType::Message(name) => write!(f, "message `{name}`"),
            FieldType::Enum(name) => write!(f, "enum `{name}`"),
            FieldType::Group(name) => write!(f, "group `{name}`"),
            FieldType::Map { key, value } => write!(f, "map<{key}, {value}>"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Reading the spec.
// ------------------------------------------------------------------------------------------

/// `$PEERLAB_SPEC_DIR/event-wire-format.md`, else the copy next to this crate.
fn spec_path() -> PathBuf {
    match std::env::var_os("PEERLAB_SPEC_DIR") {
        Some(dir) => PathBuf::from(dir).join(SPEC_FILE),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/spec/event-wire-format.md"
        )),
    }
}

fn read_spec() -> String {
    let path = spec_path();
    std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read the wire-format spec at {} ({err}); set PEERLAB_SPEC_DIR to the \
             directory that holds {SPEC_FILE}",
            path.display()
        )
    })
}

/// Parses the spec's `## file` sections. Prose outside them is ignored; inside them every
/// non-blank line must be understood, so a change of notation fails loudly instead of
/// silently dropping part of the listing.
fn parse_spec(text: &str) -> Schema {
    let mut parser = SpecParser::default();
    for (index, line) in text.lines().enumerate() {
        if let Err(err) = parser.line(line) {
            panic!("{SPEC_FILE}:{}: {err}\n    {line}", index + 1);
        }
    }
    parser
        .finish()
        .unwrap_or_else(|err| panic!("{SPEC_FILE}: {err}"))
}

/// Prose inside a file section (possibly a paragraph over several lines): it starts with a
/// letter. Listing lines start with `-`, `*` or spaces, so they are never mistaken for prose
/// and stay strictly parsed.
fn is_prose(line: &str) -> bool {
    line.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// A type as written in the spec, before names are resolved.
#[derive(Debug, Clone)]
enum TypeRef {
    Scalar(String),
    Named(String),
    Map(Box<TypeRef>, Box<TypeRef>),
}

/// A field as written in the spec. Its type is resolved in [`SpecParser::finish`] because
/// fields refer to types listed further down.
#[derive(Debug)]
struct RawField {
    message: String,
    name: String,
    number: u32,
    label: Label,
    ty: TypeRef,
    oneof: Option<String>,
}

/// What the lines being read belong to.
#[derive(Debug, Default)]
enum Block {
    #[default]
    None,
    Message(String),
    Enum(String),
}

#[derive(Debug, Default)]
struct SpecParser {
    schema: Schema,
    /// `(file name, package)` of the current `## file` section.
    file: Option<(String, String)>,
    block: Block,
    /// The oneof whose indented arms are being read.
    oneof: Option<String>,
    fields: Vec<RawField>,
}

impl SpecParser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if let Some(heading) = line.strip_prefix("## ") {
            return self.start_section(heading);
        }
        let line = line.trim_end();
        if self.file.is_none() || line.is_empty() {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("**message ") {
            self.start_message(rest)
        } else if let Some(rest) = line.strip_prefix("**enum ") {
            self.start_enum(rest)
        } else if let Some(rest) = line.strip_prefix("- oneof ") {
            self.start_oneof(rest)
        } else if let Some(rest) = line.strip_prefix("  - ") {
            self.field(rest, true)
        } else if let Some(rest) = line.strip_prefix("- ") {
            match self.block {
                Block::Enum(_) => self.enum_value(rest),
                _ => self.field(rest, false),
            }
        } else if line.starts_with("Imports: ") {
            // Imports follow from the types the fields name; the pool resolves them.
            Ok(())
        } else if is_prose(line) {
            // A sentence about the message (where its data comes from, a removed number that
            // must not be reused): nothing on the wire.
            Ok(())
        } else {
            Err("unrecognised line in a file section".into())
        }
    }

    /// `## file `X.proto` — package `pkg`` starts a file; any other `##` heading ends it.
    fn start_section(&mut self, heading: &str) -> Result<(), String> {
        self.block = Block::None;
        self.oneof = None;
        self.file = None;
        if !heading.starts_with("file ") {
            return Ok(());
        }
        let parts: Vec<&str> = heading.split('`').collect();
        let [_, name, middle, package, _] = parts[..] else {
            return Err("expected ## file `NAME` — package `PACKAGE`".into());
        };
        if !middle.trim().ends_with("package") {
            return Err("expected ## file `NAME` — package `PACKAGE`".into());
        }
        let spec = FileSpec {
            package: package.to_string(),
            // The spec prescribes `syntax = "proto2"` for every file; proto3 would drop
            // `required` and change presence semantics.
            syntax: "proto2".into(),
        };
        if self.schema.files.insert(name.to_string(), spec).is_some() {
            return Err(format!("file `{name}` listed twice"));
        }
        self.file = Some((name.to_string(), package.to_string()));
        Ok(())
    }

    fn current_file(&self) -> (&str, &str) {
        let (name, package) = self
            .file
            .as_ref()
            .expect("only called inside a file section");
        (name, package)
    }

    /// `**message X**` defines X; `**message X** (continued)` resumes it after a nested enum.
    fn start_message(&mut self, rest: &str) -> Result<(), String> {
        let (name, suffix) = rest
            .split_once("**")
            .ok_or("unterminated **message heading")?;
        let (file, package) = self.current_file();
        let full_name = qualify(package, name);
        match suffix {
            "" => {
                if self.is_defined(&full_name) {
                    return Err(format!("`{full_name}` defined twice"));
                }
                let spec = MessageSpec {
                    file: file.to_string(),
                    fields: BTreeMap::new(),
                };
                self.schema.messages.insert(full_name.clone(), spec);
            }
            " (continued)" => {
                if !self.schema.messages.contains_key(&full_name) {
                    return Err(format!("`{full_name}` continued before it was defined"));
                }
            }
            _ => return Err(format!("unexpected text after message heading: {suffix:?}")),
        }
        self.block = Block::Message(full_name);
        self.oneof = None;
        Ok(())
    }

    /// `**enum X**` or `**enum Outer.X**` (nested in message `Outer`).
    fn start_enum(&mut self, rest: &str) -> Result<(), String> {
        let name = rest.strip_suffix("**").ok_or("expected **enum NAME**")?;
        let (file, package) = self.current_file();
        let full_name = qualify(package, name);
        if self.is_defined(&full_name) {
            return Err(format!("`{full_name}` defined twice"));
        }
        let spec = EnumSpec {
            file: file.to_string(),
            values: BTreeMap::new(),
        };
        self.schema.enums.insert(full_name.clone(), spec);
        self.block = Block::Enum(full_name);
        self.oneof = None;
        Ok(())
    }

    /// `- oneof `name`:`; its arms follow as indented field lines.
    fn start_oneof(&mut self, rest: &str) -> Result<(), String> {
        if !matches!(self.block, Block::Message(_)) {
            return Err("oneof outside a message".into());
        }
        let name = rest
            .strip_prefix('`')
            .and_then(|r| r.strip_suffix("`:"))
            .ok_or("expected - oneof `NAME`:")?;
        self.oneof = Some(name.to_string());
        Ok(())
    }

    /// `N: `name` LABEL TYPE`, `N: `name` (oneof) TYPE` (an arm) or `N: `name`  map<K, V>`.
    fn field(&mut self, rest: &str, is_oneof_arm: bool) -> Result<(), String> {
        let Block::Message(message) = &self.block else {
            return Err("field outside a message".into());
        };
        let (number, rest) = rest.split_once(": ").ok_or("expected N: `name` ...")?;
        let number: u32 = number
            .parse()
            .map_err(|e| format!("bad field number {number:?}: {e}"))?;
        let (name, rest) = rest
            .strip_prefix('`')
            .and_then(|r| r.split_once('`'))
            .ok_or("expected a backquoted field name")?;
        let rest = rest.trim();

        // An unindented field ends the oneof above it (fields may follow a oneof, as in
        // `bitcoin_primitives.Address`).
        let oneof = if is_oneof_arm {
            Some(
                self.oneof
                    .clone()
                    .ok_or("indented oneof arm without a oneof above it")?,
            )
        } else {
            self.oneof = None;
            None
        };
        let (label, ty) = match (&oneof, rest.strip_prefix("(oneof) ")) {
            (Some(_), Some(ty)) => (Label::Optional, parse_type(ty)?),
            (Some(_), None) => return Err("oneof arm without (oneof) marker".into()),
            (None, Some(_)) => return Err("(oneof) marker on a field outside a oneof".into()),
            (None, None) if rest.starts_with("map<") => (Label::Repeated, parse_type(rest)?),
            (None, None) => {
                let (label, ty) = rest.split_once(' ').ok_or("expected LABEL TYPE")?;
                (parse_label(label)?, parse_type(ty)?)
            }
        };
        self.fields.push(RawField {
            message: message.clone(),
            name: name.to_string(),
            number,
            label,
            ty,
            oneof,
        });
        Ok(())
    }

    /// `V = NAME` inside an enum block.
    fn enum_value(&mut self, rest: &str) -> Result<(), String> {
        let Block::Enum(full_name) = &self.block else {
            unreachable!("enum_value is only called inside an enum block");
        };
        let (number, name) = rest.split_once(" = ").ok_or("expected V = NAME")?;
        let number: i32 = number
            .parse()
            .map_err(|e| format!("bad enum value {number:?}: {e}"))?;
        let values = &mut self
            .schema
            .enums
            .get_mut(full_name)
            .expect("registered")
            .values;
        if values.insert(name.to_string(), number).is_some() {
            return Err(format!("enum value `{name}` listed twice"));
        }
        Ok(())
    }

    fn is_defined(&self, full_name: &str) -> bool {
        self.schema.messages.contains_key(full_name) || self.schema.enums.contains_key(full_name)
    }

    /// Resolves every field's type now that all types are known, and files the fields under
    /// their messages.
    fn finish(mut self) -> Result<Schema, String> {
        let namespaces = package_namespaces(&self.schema);
        for raw in std::mem::take(&mut self.fields) {
            let ty = resolve_type(&raw.ty, &raw.message, &self.schema, &namespaces)
                .map_err(|e| format!("field `{}.{}`: {e}", raw.message, raw.name))?;
            let message = self
                .schema
                .messages
                .get_mut(&raw.message)
                .expect("registered");
            if let Some((other, _)) = message.fields.iter().find(|(_, f)| f.number == raw.number) {
                return Err(format!(
                    "`{}`: fields `{other}` and `{}` share number {}",
                    raw.message, raw.name, raw.number
                ));
            }
            let field = FieldSpec {
                number: raw.number,
                label: raw.label,
                ty,
                oneof: raw.oneof,
                packed: false,
            };
            if message.fields.insert(raw.name.clone(), field).is_some() {
                return Err(format!(
                    "`{}`: field `{}` listed twice",
                    raw.message, raw.name
                ));
            }
        }
        Ok(self.schema)
    }
}

fn parse_label(word: &str) -> Result<Label, String> {
    match word {
        "required" => Ok(Label::Required),
        "optional" => Ok(Label::Optional),
        "repeated" => Ok(Label::Repeated),
        _ => Err(format!("unknown label {word:?}")),
    }
}

/// `uint64`, `Metadata`, `bitcoin_primitives.ConnType` or `map<K, V>`.
fn parse_type(text: &str) -> Result<TypeRef, String> {
    if let Some(inner) = text.strip_prefix("map<").and_then(|r| r.strip_suffix('>')) {
        let (key, value) = inner.split_once(',').ok_or("expected map<K, V>")?;
        return Ok(TypeRef::Map(
            Box::new(parse_type(key.trim())?),
            Box::new(parse_type(value.trim())?),
        ));
    }
    if SCALARS.contains(&text) {
        return Ok(TypeRef::Scalar(text.to_string()));
    }
    let is_identifier = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if is_identifier {
        Ok(TypeRef::Named(text.to_string()))
    } else {
        Err(format!("not a type: {text:?}"))
    }
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

/// Every package and package prefix (`ebpf_extractor`, `ebpf_extractor.message`): protobuf
/// name lookup treats them as symbols, which is how `message.MessageEvent` in package
/// `ebpf_extractor` finds `ebpf_extractor.message.MessageEvent`.
fn package_namespaces(schema: &Schema) -> BTreeSet<String> {
    let mut namespaces = BTreeSet::new();
    for file in schema.files.values() {
        let mut prefix = String::new();
        for part in file.package.split('.') {
            prefix = qualify(&prefix, part);
            namespaces.insert(prefix.clone());
        }
    }
    namespaces
}

fn resolve_type(
    ty: &TypeRef,
    scope: &str,
    schema: &Schema,
    namespaces: &BTreeSet<String>,
) -> Result<FieldType, String> {
    match ty {
        TypeRef::Scalar(name) => Ok(FieldType::Scalar(name.clone())),
        TypeRef::Map(key, value) => Ok(FieldType::Map {
            key: Box::new(resolve_type(key, scope, schema, namespaces)?),
            value: Box::new(resolve_type(value, scope, schema, namespaces)?),
        }),
        TypeRef::Named(name) => {
            let full_name = resolve_name(name, scope, schema, namespaces)?;
            if schema.messages.contains_key(&full_name) {
                Ok(FieldType::Message(full_name))
            } else {
                Ok(FieldType::Enum(full_name))
            }
        }
    }
}

/// Protobuf's (protoc's) lookup of a relative name: walk outward from the scope of use (the
/// message's full name) and take the innermost scope in which the first component of the name
/// is a symbol; the rest of the name must then exist inside it.
fn resolve_name(
    name: &str,
    scope: &str,
    schema: &Schema,
    namespaces: &BTreeSet<String>,
) -> Result<String, String> {
    let is_type = |n: &str| schema.messages.contains_key(n) || schema.enums.contains_key(n);
    if let Some(absolute) = name.strip_prefix('.') {
        return if is_type(absolute) {
            Ok(absolute.to_string())
        } else {
            Err(format!("type `{name}` is not defined in the spec"))
        };
    }
    let first = name.split('.').next().unwrap_or(name);
    let mut next_scope = Some(scope);
    while let Some(current) = next_scope {
        let anchor = qualify(current, first);
        if is_type(&anchor) || namespaces.contains(&anchor) {
            let full_name = qualify(current, name);
            return if is_type(&full_name) {
                Ok(full_name)
            } else {
                Err(format!(
                    "type `{name}` resolves to `{full_name}`, which the spec lacks"
                ))
            };
        }
        next_scope = match current.rsplit_once('.') {
            Some((parent, _)) => Some(parent),
            None if !current.is_empty() => Some(""),
            None => None,
        };
    }
    Err(format!(
        "type `{name}` is not defined in the spec (looked outward from `{scope}`)"
    ))
}

// ------------------------------------------------------------------------------------------
// Reading the descriptor pool.
// ------------------------------------------------------------------------------------------

fn schema_from_pool(pool: &DescriptorPool) -> Schema {
    let mut schema = Schema::default();
    for file in pool.files() {
        let syntax = match file.syntax() {
            Syntax::Proto2 => "proto2",
            Syntax::Proto3 => "proto3",
        };
        let spec = FileSpec {
            package: file.package_name().to_string(),
            syntax: syntax.into(),
        };
        schema.files.insert(file.name().to_string(), spec);
        for service in file.services() {
            schema
                .other_definitions
                .insert(format!("service `{}`", service.full_name()));
        }
    }
    // `map<K, V>` compiles to a nested `XxxEntry` message; it is part of the map field, not a
    // message of its own.
    for message in pool.all_messages().filter(|m| !m.is_map_entry()) {
        let fields = message
            .fields()
            .map(|field| (field.name().to_string(), field_from_pool(&field)))
            .collect();
        let spec = MessageSpec {
            file: message.parent_file().name().to_string(),
            fields,
        };
        schema
            .messages
            .insert(message.full_name().to_string(), spec);
    }
    for enum_ in pool.all_enums() {
        let values = enum_
            .values()
            .map(|v| (v.name().to_string(), v.number()))
            .collect();
        let spec = EnumSpec {
            file: enum_.parent_file().name().to_string(),
            values,
        };
        schema.enums.insert(enum_.full_name().to_string(), spec);
    }
    for extension in pool.all_extensions() {
        schema
            .other_definitions
            .insert(format!("extension `{}`", extension.full_name()));
    }
    schema
}

fn field_from_pool(field: &FieldDescriptor) -> FieldSpec {
    let ty = match field.kind() {
        Kind::Message(entry) if field.is_map() => FieldType::Map {
            key: Box::new(type_of_kind(entry.map_entry_key_field().kind())),
            value: Box::new(type_of_kind(entry.map_entry_value_field().kind())),
        },
        Kind::Message(group) if field.is_group() => FieldType::Group(group.full_name().into()),
        kind => type_of_kind(kind),
    };
    FieldSpec {
        number: field.number(),
        label: match field.cardinality() {
            Cardinality::Required => Label::Required,
            Cardinality::Optional => Label::Optional,
            Cardinality::Repeated => Label::Repeated,
        },
        ty,
        oneof: field
            .containing_oneof()
            .map(|oneof| oneof.name().to_string()),
        packed: field.is_packed(),
    }
}

fn type_of_kind(kind: Kind) -> FieldType {
    let scalar = match kind {
        Kind::Message(message) => return FieldType::Message(message.full_name().into()),
        Kind::Enum(enum_) => return FieldType::Enum(enum_.full_name().into()),
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
    };
    FieldType::Scalar(scalar.into())
}

// ------------------------------------------------------------------------------------------
// Comparing.
// ------------------------------------------------------------------------------------------

/// Removes peerlab's own additions from the pool model, after checking that they follow the
/// spec's rule for them ("new field numbers >= 100, optional fields or new oneof arms"):
/// files under `peerlab/` (their messages and enums), and fields the spec does not list. What
/// remains must then match the spec exactly. Returns the additions that break the rule.
fn strip_extensions(spec: &Schema, pool: &mut Schema) -> Vec<String> {
    let mut problems = Vec::new();
    let is_extension_file = |file: &str| file.starts_with("peerlab/");
    pool.files.retain(|name, _| !is_extension_file(name));
    pool.messages.retain(|_, m| !is_extension_file(&m.file));
    pool.enums.retain(|_, e| !is_extension_file(&e.file));
    for (message, definition) in pool.messages.iter_mut() {
        let Some(listed) = spec.messages.get(message) else {
            continue;
        };
        definition.fields.retain(|name, field| {
            if listed.fields.contains_key(name) {
                return true;
            }
            if field.number < 100 || field.label == Label::Required {
                problems.push(format!(
                    "extension field `{message}.{name}` must be numbered >= 100 and not required"
                ));
            }
            false
        });
    }
    problems
}

/// Every difference between the spec and the pool, one readable line each.
fn diff(spec: &Schema, pool: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    diff_entries(
        "file",
        "",
        &spec.files,
        &pool.files,
        &mut problems,
        diff_file,
    );
    diff_entries(
        "message",
        "",
        &spec.messages,
        &pool.messages,
        &mut problems,
        diff_message,
    );
    diff_entries(
        "enum",
        "",
        &spec.enums,
        &pool.enums,
        &mut problems,
        diff_enum,
    );
    for extra in pool.other_definitions.difference(&spec.other_definitions) {
        problems.push(format!("{extra}: in descriptor pool, not in spec"));
    }
    for missing in spec.other_definitions.difference(&pool.other_definitions) {
        problems.push(format!("{missing}: in spec, missing from descriptor pool"));
    }
    problems
}

/// Reports names present on one side only, and hands names on both sides to `diff_values`
/// with a subject like "field `pkg.Msg.name`" for its messages.
fn diff_entries<V>(
    kind: &str,
    prefix: &str,
    spec: &BTreeMap<String, V>,
    pool: &BTreeMap<String, V>,
    problems: &mut Vec<String>,
    mut diff_values: impl FnMut(&str, &str, &V, &V, &mut Vec<String>),
) {
    for (name, spec_value) in spec {
        let subject = format!("{kind} `{prefix}{name}`");
        match pool.get(name) {
            Some(pool_value) => diff_values(&subject, name, spec_value, pool_value, problems),
            None => problems.push(format!("{subject}: in spec, missing from descriptor pool")),
        }
    }
    for name in pool.keys().filter(|name| !spec.contains_key(*name)) {
        problems.push(format!(
            "{kind} `{prefix}{name}`: in descriptor pool, not in spec"
        ));
    }
}

/// Records "SUBJECT: ASPECT: spec X, pool Y" when the two differ.
fn compare<T: PartialEq + fmt::Display>(
    subject: &str,
    aspect: &str,
    spec: T,
    pool: T,
    problems: &mut Vec<String>,
) {
    if spec != pool {
        problems.push(format!("{subject}: {aspect}: spec {spec}, pool {pool}"));
    }
}

fn diff_file(subject: &str, _: &str, spec: &FileSpec, pool: &FileSpec, out: &mut Vec<String>) {
    compare(subject, "package", &spec.package, &pool.package, out);
    compare(subject, "syntax", &spec.syntax, &pool.syntax, out);
}

fn diff_message(
    subject: &str,
    full_name: &str,
    spec: &MessageSpec,
    pool: &MessageSpec,
    out: &mut Vec<String>,
) {
    compare(subject, "file", &spec.file, &pool.file, out);
    let prefix = format!("{full_name}.");
    diff_entries(
        "field",
        &prefix,
        &spec.fields,
        &pool.fields,
        out,
        diff_field,
    );
}

fn diff_field(subject: &str, _: &str, spec: &FieldSpec, pool: &FieldSpec, out: &mut Vec<String>) {
    compare(subject, "number", spec.number, pool.number, out);
    compare(subject, "label", spec.label, pool.label, out);
    compare(subject, "type", &spec.ty, &pool.ty, out);
    compare(
        subject,
        "oneof",
        describe_oneof(&spec.oneof),
        describe_oneof(&pool.oneof),
        out,
    );
    let encoding = |packed: bool| if packed { "packed" } else { "unpacked" };
    compare(
        subject,
        "encoding",
        encoding(spec.packed),
        encoding(pool.packed),
        out,
    );
}

fn describe_oneof(oneof: &Option<String>) -> String {
    match oneof {
        Some(name) => format!("in oneof `{name}`"),
        None => "not in a oneof".into(),
    }
}

fn diff_enum(
    subject: &str,
    full_name: &str,
    spec: &EnumSpec,
    pool: &EnumSpec,
    out: &mut Vec<String>,
) {
    compare(subject, "file", &spec.file, &pool.file, out);
    let prefix = format!("{full_name}.");
    diff_entries(
        "enum value",
        &prefix,
        &spec.values,
        &pool.values,
        out,
        |subject, _, s, p, out| compare(subject, "number", s, p, out),
    );
}

// ------------------------------------------------------------------------------------------
// Tests.
// ------------------------------------------------------------------------------------------

#[test]
fn descriptor_pool_matches_wire_format_spec() {
    let spec = parse_spec(&read_spec());
    let mut pool = schema_from_pool(peerlab::event::descriptor_pool());
    let mut problems = strip_extensions(&spec, &mut pool);
    problems.extend(diff(&spec, &pool));
    assert!(
        problems.is_empty(),
        "the compiled proto/ files differ from {} in {} place(s):\n  - {}",
        spec_path().display(),
        problems.len(),
        problems.join("\n  - ")
    );
}

/// Proves the checker can fail: each mutation of the parsed spec must add exactly the one
/// expected mismatch. Only mismatches beyond those of the unmutated spec count, so this test
/// stays meaningful (and green) even while the schema itself still differs from the spec.
#[test]
fn checker_reports_each_mutation_of_the_spec() {
    let spec = parse_spec(&read_spec());
    let mut pool = schema_from_pool(peerlab::event::descriptor_pool());
    strip_extensions(&spec, &mut pool);
    let baseline = diff(&spec, &pool);

    let assert_single_mismatch = |mutate: &dyn Fn(&mut Schema), expected: &str| {
        let mut mutated = spec.clone();
        mutate(&mut mutated);
        let problems = diff(&mutated, &pool);
        let added: Vec<&String> = problems.iter().filter(|p| !baseline.contains(p)).collect();
        assert_eq!(added, [expected], "mismatches added by the mutation");
        assert_eq!(
            problems.len(),
            baseline.len() + 1,
            "the mutation hid other mismatches"
        );
    };

    assert_single_mismatch(
        &|schema| field_mut(schema, "ebpf_extractor.message.Ping", "value").number = 2,
        "field `ebpf_extractor.message.Ping.value`: number: spec 2, pool 1",
    );
    assert_single_mismatch(
        &|schema| {
            let fee = field_mut(schema, "ebpf_extractor.message.FeeFilter", "fee");
            fee.ty = FieldType::Scalar("int64".into());
        },
        "field `ebpf_extractor.message.FeeFilter.fee`: type: spec int64, pool sint64",
    );
    assert_single_mismatch(
        &|schema| {
            let conn_type = schema
                .enums
                .get_mut("bitcoin_primitives.ConnType")
                .expect("in spec");
            conn_type.values.remove("Feeler");
        },
        "enum value `bitcoin_primitives.ConnType.Feeler`: in descriptor pool, not in spec",
    );
}

fn field_mut<'a>(schema: &'a mut Schema, message: &str, field: &str) -> &'a mut FieldSpec {
    schema
        .messages
        .get_mut(message)
        .and_then(|m| m.fields.get_mut(field))
        .unwrap_or_else(|| panic!("spec lists no field `{message}.{field}`"))
}
