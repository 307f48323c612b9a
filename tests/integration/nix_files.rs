//! Every Nix file parses (`nix-instantiate --parse`): the flake, the package and module files
//! under `nix/`, the VM tests and the evaluation tests. Evaluating the module is
//! `nix_module.rs`; building needs nixpkgs, which this machine cannot fetch, so the NixOS VM
//! tests run where Nix has network access.

use std::path::{Path, PathBuf};
use std::process::Command;

fn nix_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("directory exists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            nix_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "nix") {
            into.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("flake.nix")];
    for dir in ["nix", "vm-tests", "tests/nix"] {
        nix_files(&root.join(dir), &mut files);
    }
    for expected in [
        "nix/module.nix",
        "nix/module/default.nix",
        "nix/bitcoind.nix",
        "vm-tests/basic.nix",
        "vm-tests/fleet.nix",
        "tests/nix/eval.nix",
        "tests/nix/fleet-plan.nix",
    ] {
        assert!(
            files.contains(&root.join(expected)),
            "{expected} in {files:?}"
        );
    }
    for file in files {
        let output = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(&file)
            .output()
            .expect("nix-instantiate runs (the quickstart installs Debian's nix-bin)");
        assert!(
            output.status.success(),
            "{} does not parse: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
