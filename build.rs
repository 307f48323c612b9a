//! Build-time code generation:
//!
//! 1. `proto/*.proto` (peer-observer's wire format) are parsed with protox (no `protoc` on the
//!    machine), turned into Rust types by prost-build, and the encoded `FileDescriptorSet` is
//!    written to `OUT_DIR/descriptor_set.bin` so the binary can embed it (recordings carry it).
//! 2. `bpf/peerlab.bpf.c` is compiled with clang (`$BPF_CLANG`, else the first of clang,
//!    clang-19, clang-16, clang-14 on PATH) into `OUT_DIR/peerlab.bpf.o`, which the extractor
//!    embeds and loads with aya.
//! 3. A dispatch table `OUT_DIR/message_registry.rs` maps every message's full name to its
//!    prost type, so tests and tools can decode any message by name through generated code.
//! 4. `capnp/core_ipc.capnp` (the slice of Bitcoin Core's IPC interface the ipc extractor
//!    calls) is compiled by capnpc, which runs Debian's `capnp` tool, into
//!    `OUT_DIR/core_ipc_capnp.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message as _;

const PROTO_ROOT: &str = "proto";
/// The envelope (which imports every extractor's file) and the archive header, which only
/// peer-observer's archive files carry.
const PROTO_ENTRIES: [&str; 2] = ["event.proto", "archive/header.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let descriptors = protox::compile(PROTO_ENTRIES, [PROTO_ROOT])?;
    std::fs::write(
        out_dir.join("descriptor_set.bin"),
        descriptors.encode_to_vec(),
    )?;

    let mut config = prost_build::Config::new();
    // One include file builds the module tree (`event`, `ebpf_extractor::message`, ...).
    config.include_file("proto_modules.rs");
    config.compile_fds(descriptors.clone())?;

    write_registry(&descriptors, &out_dir.join("message_registry.rs"))?;
    compile_bpf(&out_dir)?;
    compile_capnp()?;
    Ok(())
}

/// Generates the Cap'n Proto client code; a missing `capnp` tool is an error that says what to
/// install.
fn compile_capnp() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=capnp");
    let found = std::process::Command::new("capnp")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err(
            "no `capnp` tool found for the IPC schema: install Debian's `capnproto` \
                    (./quickstart.sh does)"
                .into(),
        );
    }
    capnpc::CompilerCommand::new()
        .src_prefix("capnp")
        .file("capnp/core_ipc.capnp")
        // The generated module lives at crate::extractors::ipc::core_ipc_capnp.
        .default_parent_module(vec!["extractors".into(), "ipc".into()])
        .run()?;
    Ok(())
}

/// Compiles the eBPF programs; a missing clang is an error that says what to install.
fn compile_bpf(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    println!("cargo:rerun-if-env-changed=BPF_INCLUDE");
    let clang = find_clang().ok_or(
        "no clang found for the eBPF programs: install Debian's `clang` and `libbpf-dev` \
         (./quickstart.sh does), or set BPF_CLANG",
    )?;
    let object = out_dir.join("peerlab.bpf.o");
    let mut command = std::process::Command::new(&clang);
    command
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            "-Wall",
            "-Werror",
        ])
        .arg("-I/usr/include/x86_64-linux-gnu");
    if let Ok(include) = std::env::var("BPF_INCLUDE") {
        command.arg(format!("-I{include}"));
    }
    let status = command
        .arg("-c")
        .arg("bpf/peerlab.bpf.c")
        .arg("-o")
        .arg(&object)
        .status()?;
    if !status.success() {
        return Err(format!(
            "{} failed to compile bpf/peerlab.bpf.c ({status})",
            clang.display()
        )
        .into());
    }
    Ok(())
}

fn find_clang() -> Option<PathBuf> {
    if let Some(clang) = std::env::var_os("BPF_CLANG") {
        return Some(PathBuf::from(clang));
    }
    let path = std::env::var_os("PATH")?;
    ["clang", "clang-19", "clang-16", "clang-14"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
}

/// Emits `fn reencode(full_name, bytes)`: decode with the prost type of that name, encode again.
fn write_registry(
    fds: &prost_types::FileDescriptorSet,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut names = Vec::new();
    for file in &fds.file {
        let package = file.package();
        for message in &file.message_type {
            // Only top-level messages exist besides synthetic map entries, which have no type.
            names.push((package.to_string(), message.name().to_string()));
        }
    }
    let mut code = String::new();
    writeln!(
        code,
        "/// Every message full name in the schema, in file order."
    )?;
    writeln!(code, "pub const MESSAGE_NAMES: &[&str] = &[")?;
    for (package, name) in &names {
        writeln!(code, "    \"{package}.{name}\",")?;
    }
    writeln!(code, "];\n")?;
    writeln!(
        code,
        "/// Decodes `bytes` as the generated prost type named `full_name` and encodes it again.\n\
         /// `None` when no message has that name."
    )?;
    writeln!(
        code,
        "pub fn reencode(full_name: &str, bytes: &[u8]) -> Option<Result<Vec<u8>, prost::DecodeError>> {{"
    )?;
    writeln!(code, "    use prost::Message as _;")?;
    writeln!(code, "    match full_name {{")?;
    for (package, name) in &names {
        let module = package.replace('.', "::");
        let ty = upper_camel(name);
        writeln!(
            code,
            "        \"{package}.{name}\" => Some(super::proto::{module}::{ty}::decode(bytes).map(|m| m.encode_to_vec())),"
        )?;
    }
    writeln!(code, "        _ => None,\n    }}\n}}")?;
    std::fs::write(path, code)?;
    Ok(())
}

/// prost's type naming: `ebpf` -> `Ebpf`, `p2p` -> `P2p`, `GetCFHeaders` -> `GetCfHeaders`.
fn upper_camel(name: &str) -> String {
    // prost uses heck's UpperCamelCase; reproduce it for the names in our schema:
    // word boundaries at lower->upper transitions and at the last capital of an acronym run.
    let chars: Vec<char> = name.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
            });
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
        .iter()
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(cs.flat_map(|c| c.to_lowercase()))
                    .collect(),
                None => String::new(),
            }
        })
        .collect()
}
