//! Images built from the local binaries `peerlab setup` provisioned, with no registry.
//!
//! Each image is `FROM scratch`: the binaries under `/usr/bin` plus the shared libraries and
//! the loader `ldd` says they load, copied from this machine. So a container runs exactly the
//! bitcoind the host would (same build, same tracepoints, same libraries), nothing has to be
//! downloaded, and the image is a few tens of MiB.
//!
//! Images are built through the Docker API's classic builder (`POST /build` with a tar build
//! context made in memory), not BuildKit: podman's service (4.3, Debian 12) has no BuildKit,
//! and the classic builder is what both podman and Docker serve.
//!
//! An image's tag is a key over its content (the Containerfile and every file with its path),
//! so a rebuilt bitcoind, or an updated library, gets a new tag, and an existing tag is never
//! built again: [`ensure_images`] is cheap the second time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};

use super::{ContainerError, Engine};
use crate::node::Installation;

/// The label on every image peerlab builds (value `1`), so they can be listed and pruned.
pub const IMAGE_LABEL: &str = "io.peerlab.image";
/// The repository of the bitcoind image (`localhost/`: podman's name for local images, and
/// a name no registry resolves, so nothing is ever pulled in its place).
pub const BITCOIND_REPOSITORY: &str = "localhost/peerlab-bitcoind";
/// The repository of the nats-server image.
pub const NATS_REPOSITORY: &str = "localhost/peerlab-nats";

/// The build file's name in the context.
const CONTAINERFILE: &str = "Containerfile";
/// The directory of the context copied to the image's root.
const ROOTFS: &str = "rootfs";
/// Hex characters of the content key in a tag (64 bits: collisions are not a concern).
const KEY_CHARS: usize = 16;
/// Upper bound for one image build (the context is local and the Containerfile only copies).
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// How many lines of the builder's output an error quotes.
const BUILD_LOG_LINES: usize = 20;

/// The image references a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// The traceable bitcoind (with `bitcoin-node` when the installation has it).
    pub bitcoind: String,
    /// nats-server.
    pub nats: String,
}

/// Builds the images of `installation` unless they exist; returns their references.
///
/// Reading the binaries and running `ldd` happen on a blocking thread; building an image
/// takes seconds, checking an existing one an API call.
pub async fn ensure_images(
    engine: &Engine,
    installation: &Installation,
) -> Result<Images, ContainerError> {
    let installation = installation.clone();
    let (bitcoind, nats) = tokio::task::spawn_blocking(move || plan_images(&installation))
        .await
        .map_err(|e| ContainerError::Io {
            what: "preparing the images' build contexts".into(),
            source: std::io::Error::other(e),
        })??;
    let images = Images {
        bitcoind: bitcoind.reference.clone(),
        nats: nats.reference.clone(),
    };
    for plan in [bitcoind, nats] {
        ensure_image(engine, plan).await?;
    }
    Ok(images)
}

/// The references [`ensure_images`] would return, computed without the engine (it reads the
/// binaries and their libraries to compute the content keys). Blocking.
pub fn image_refs(installation: &Installation) -> Result<Images, ContainerError> {
    let (bitcoind, nats) = plan_images(installation)?;
    Ok(Images {
        bitcoind: bitcoind.reference,
        nats: nats.reference,
    })
}

/// One file of an image.
struct ImageFile {
    /// Absolute path inside the image.
    dest: String,
    /// Its contents (symlinks on the host resolved: the image holds the file itself).
    bytes: Vec<u8>,
}

/// An image to build: its reference and everything its build context holds.
struct ImagePlan {
    /// `localhost/peerlab-...:<key>`.
    reference: String,
    containerfile: String,
    files: Vec<ImageFile>,
}

fn plan_images(installation: &Installation) -> Result<(ImagePlan, ImagePlan), ContainerError> {
    let mut node_binaries = vec![(installation.bitcoind.as_path(), "/usr/bin/bitcoind")];
    if let Some(node) = &installation.bitcoin_node {
        node_binaries.push((node.as_path(), "/usr/bin/bitcoin-node"));
    }
    let bitcoind = ImagePlan::new(BITCOIND_REPOSITORY, &node_binaries, "/usr/bin/bitcoind")?;
    let nats = ImagePlan::new(
        NATS_REPOSITORY,
        &[(installation.nats_server.as_path(), "/usr/bin/nats-server")],
        "/usr/bin/nats-server",
    )?;
    Ok((bitcoind, nats))
}

impl ImagePlan {
    /// Reads `binaries` (host path, path in the image) and the libraries they load; the
    /// image's entrypoint is `entrypoint`.
    fn new(
        repository: &str,
        binaries: &[(&Path, &str)],
        entrypoint: &str,
    ) -> Result<ImagePlan, ContainerError> {
        let mut files = Vec::new();
        let mut libraries = BTreeSet::new();
        for (source, dest) in binaries {
            files.push(ImageFile {
                dest: (*dest).to_string(),
                bytes: read(source)?,
            });
            libraries.extend(shared_libraries(source)?);
        }
        for library in &libraries {
            let dest = library
                .to_str()
                .filter(|path| path.starts_with('/'))
                .ok_or_else(|| ContainerError::Io {
                    what: format!("copying {} into an image", library.display()),
                    source: std::io::Error::other("not an absolute UTF-8 path"),
                })?;
            files.push(ImageFile {
                dest: dest.to_string(),
                bytes: read(library)?,
            });
        }
        let containerfile = containerfile(&libraries, entrypoint);
        let reference = format!("{repository}:{}", content_key(&containerfile, &files));
        Ok(ImagePlan {
            reference,
            containerfile,
            files,
        })
    }

    /// The build context: the Containerfile and `rootfs/` (what the image's `/` receives),
    /// as an uncompressed tar. Timestamps are zero so the same content gives the same bytes.
    fn context(&self) -> Result<Vec<u8>, ContainerError> {
        let failed = |e: std::io::Error| ContainerError::Io {
            what: format!("making the build context of {}", self.reference),
            source: e,
        };
        let mut tar = tar::Builder::new(Vec::new());
        let mut dirs = BTreeSet::from([ROOTFS.to_string(), format!("{ROOTFS}/data")]);
        for file in &self.files {
            let mut dir = Path::new(&file.dest).parent();
            while let Some(d) = dir.filter(|d| *d != Path::new("/")) {
                dirs.insert(format!("{ROOTFS}{}", d.display()));
                dir = d.parent();
            }
        }
        for dir in &dirs {
            append(&mut tar, tar::EntryType::Directory, dir, 0o755, &[]).map_err(failed)?;
        }
        // bitcoind's and nats-server's scratch space when not given a volume.
        append(
            &mut tar,
            tar::EntryType::Directory,
            &format!("{ROOTFS}/tmp"),
            0o1777,
            &[],
        )
        .map_err(failed)?;
        append(
            &mut tar,
            tar::EntryType::Regular,
            CONTAINERFILE,
            0o644,
            self.containerfile.as_bytes(),
        )
        .map_err(failed)?;
        for file in &self.files {
            append(
                &mut tar,
                tar::EntryType::Regular,
                &format!("{ROOTFS}{}", file.dest),
                0o755,
                &file.bytes,
            )
            .map_err(failed)?;
        }
        tar.into_inner().map_err(failed)
    }

    fn size(&self) -> usize {
        self.files.iter().map(|f| f.bytes.len()).sum()
    }
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    mode: u32,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_data(&mut header, path, bytes)
}

/// The Containerfile: copy the root, point the loader at the libraries' directories (a
/// scratch image has no `ld.so.cache`, and a library outside the loader's default directories,
/// in `/usr/local/lib` say, would otherwise not be found), label, entrypoint.
fn containerfile(libraries: &BTreeSet<PathBuf>, entrypoint: &str) -> String {
    let dirs: BTreeSet<String> = libraries
        .iter()
        .filter_map(|l| l.parent())
        .map(|d| d.display().to_string())
        .collect();
    let mut text = format!("FROM scratch\nCOPY {ROOTFS}/ /\n");
    if !dirs.is_empty() {
        let dirs: Vec<String> = dirs.into_iter().collect();
        text.push_str(&format!("ENV LD_LIBRARY_PATH={}\n", dirs.join(":")));
    }
    text.push_str(&format!(
        "LABEL {IMAGE_LABEL}=1\nENTRYPOINT [\"{entrypoint}\"]\n"
    ));
    text
}

/// The first [`KEY_CHARS`] hex characters of SHA-256 over the Containerfile and every file
/// (path, length, contents), so any change to what the image holds changes the tag.
fn content_key(containerfile: &str, files: &[ImageFile]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(containerfile.as_bytes());
    for file in files {
        hasher.update(b"\0");
        hasher.update(file.dest.as_bytes());
        hasher.update(b"\0");
        hasher.update((file.bytes.len() as u64).to_le_bytes());
        hasher.update(&file.bytes);
    }
    let mut key = hex::encode(hasher.finalize());
    key.truncate(KEY_CHARS);
    key
}

fn read(path: &Path) -> Result<Vec<u8>, ContainerError> {
    std::fs::read(path).map_err(ContainerError::io(format!(
        "reading {} for an image",
        path.display()
    )))
}

/// The shared libraries and loader `binary` loads, as `ldd` resolves them on this machine.
///
/// `ldd` runs the loader on the binary (it does not run its code, but is meant for trusted
/// binaries): these are the binaries setup built or was given.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ContainerError> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(ContainerError::io(format!(
            "running ldd on {}",
            binary.display()
        )))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A static binary needs nothing beside it.
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(ContainerError::Io {
            what: format!("listing the libraries of {} with ldd", binary.display()),
            source: std::io::Error::other(format!("ldd {}: {}", output.status, stderr.trim())),
        });
    }
    parse_ldd(&stdout).map_err(|reason| ContainerError::Io {
        what: format!("listing the libraries of {} with ldd", binary.display()),
        source: std::io::Error::other(reason),
    })
}

/// The paths in `ldd`'s output: `name => /path (0x...)` lines and the loader's
/// `/lib64/ld-linux-x86-64.so.2 (0x...)` line; the vDSO (no file) is skipped. A library
/// `ldd` could not find is an error: the image would not run.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("{} not found (ldd: {line:?})", name.trim()));
                }
                rest
            }
            None => line,
        };
        if let Some(path) = target
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// Builds `plan` unless its tag exists.
async fn ensure_image(engine: &Engine, plan: ImagePlan) -> Result<(), ContainerError> {
    let docker = engine.docker();
    if image_exists(engine, &plan.reference).await? {
        tracing::info!(image = %plan.reference, "image already built");
        return Ok(());
    }
    let started = Instant::now();
    tracing::info!(
        image = %plan.reference,
        files = plan.files.len(),
        "building image ({:.1} MiB of binaries and libraries)",
        plan.size() as f64 / (1024.0 * 1024.0)
    );
    let reference = plan.reference.clone();
    let context = tokio::task::spawn_blocking(move || plan.context())
        .await
        .map_err(|e| ContainerError::Io {
            what: format!("making the build context of {reference}"),
            source: std::io::Error::other(e),
        })??;
    let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
        .dockerfile(CONTAINERFILE)
        .t(&reference)
        .rm(true)
        .forcerm(true)
        .labels(&HashMap::from([(IMAGE_LABEL, "1")]))
        .build();
    let mut output = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    let mut log: VecDeque<String> = VecDeque::new();
    let built = tokio::time::timeout(BUILD_TIMEOUT, async {
        while let Some(item) = output.next().await {
            let info = item.map_err(|e| e.to_string())?;
            if let Some(text) = &info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    tracing::debug!(image = %reference, "build: {line}");
                    if log.len() == BUILD_LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line.to_string());
                }
            }
            if let Some(detail) = info.error_detail {
                return Err(detail
                    .message
                    .unwrap_or_else(|| "the builder reported an error".into()));
            }
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|_| Err(format!("no result within {}s", BUILD_TIMEOUT.as_secs())));
    let with_log = |reason: String| {
        let log: Vec<String> = log.iter().cloned().collect();
        ContainerError::Api {
            what: format!("building image {reference}"),
            reason: if log.is_empty() {
                reason
            } else {
                format!("{reason}; the builder's last lines:\n{}", log.join("\n"))
            },
        }
    };
    built.map_err(with_log)?;
    // A builder that ends its stream without an error but without an image (an engine that
    // ignored the tag) must not pass for a built image.
    if !image_exists(engine, &reference).await? {
        return Err(with_log(
            "the build ended without error, but no image has that tag".into(),
        ));
    }
    tracing::info!(
        image = %reference,
        "built image in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether the engine has an image tagged `reference`.
async fn image_exists(engine: &Engine, reference: &str) -> Result<bool, ContainerError> {
    match engine.docker().inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(ContainerError::api(format!("inspecting image {reference}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd5b1f5000)\n\
                    \tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f1784200000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1783f3e000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f178544c000)\n";
        assert_eq!(
            parse_ldd(text).expect("parses"),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libstdc++.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn a_library_ldd_cannot_find_is_an_error() {
        let text = "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        let error = parse_ldd(text).expect_err("missing library");
        assert!(error.contains("libfoo.so.1"), "{error}");
    }

    #[test]
    fn old_style_vdso_lines_are_skipped() {
        assert_eq!(
            parse_ldd("\tlinux-vdso.so.1 =>  (0x00007fff)\n").expect("parses"),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn the_key_changes_with_any_file_and_with_the_containerfile() {
        let files = |bytes: &[u8]| {
            vec![ImageFile {
                dest: "/usr/bin/bitcoind".into(),
                bytes: bytes.to_vec(),
            }]
        };
        let key = content_key("FROM scratch\n", &files(b"a"));
        assert_eq!(key.len(), KEY_CHARS);
        assert_eq!(key, content_key("FROM scratch\n", &files(b"a")));
        assert_ne!(key, content_key("FROM scratch\n", &files(b"b")));
        assert_ne!(key, content_key("FROM scratch\nLABEL x=1\n", &files(b"a")));
    }

    #[test]
    fn the_containerfile_points_the_loader_at_the_libraries() {
        let libraries = BTreeSet::from([
            PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
            PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            PathBuf::from("/usr/local/lib/libfoo.so"),
        ]);
        let text = containerfile(&libraries, "/usr/bin/bitcoind");
        assert!(text.starts_with("FROM scratch\n"), "{text}");
        assert!(
            text.contains("ENV LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/lib64:/usr/local/lib\n"),
            "{text}"
        );
        assert!(
            text.contains("ENTRYPOINT [\"/usr/bin/bitcoind\"]"),
            "{text}"
        );
    }

    #[test]
    fn the_context_holds_the_containerfile_and_the_root() {
        let plan = ImagePlan {
            reference: "localhost/x:1".into(),
            containerfile: "FROM scratch\n".into(),
            files: vec![ImageFile {
                dest: "/usr/bin/tool".into(),
                bytes: b"binary".to_vec(),
            }],
        };
        let context = plan.context().expect("context");
        let mut archive = tar::Archive::new(context.as_slice());
        let paths: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        for expected in [
            "Containerfile",
            "rootfs/usr/bin/tool",
            "rootfs/usr",
            "rootfs/usr/bin",
            "rootfs/tmp",
            "rootfs/data",
        ] {
            assert!(
                paths.iter().any(|p| p.trim_end_matches('/') == expected),
                "{expected} missing from {paths:?}"
            );
        }
    }
}
