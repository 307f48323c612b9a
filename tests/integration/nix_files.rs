//! The Nix files parse (`nix-instantiate --parse`). Evaluating them needs nixpkgs, which this
//! machine cannot fetch; the NixOS VM tests run where Nix has network access.

use std::path::Path;
use std::process::Command;

#[test]
fn every_nix_file_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("flake.nix")];
    for dir in ["nix", "vm-tests"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("directory exists") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "nix") {
                files.push(path);
            }
        }
    }
    assert!(
        files.len() >= 4,
        "flake, package, module and a VM test expected: {files:?}"
    );
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
