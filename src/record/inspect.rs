//! (being written) `peerlab inspect` and `peerlab cat`: summaries and JSON lines of a recording.

use std::path::Path;

/// Prints a capinfos-like summary of `path` (JSON with `json`).
pub fn inspect(path: &Path, json: bool) -> anyhow::Result<()> {
    let _ = (path, json);
    anyhow::bail!("not implemented yet")
}

/// Prints every event of `path` as a JSON line.
pub fn cat(path: &Path) -> anyhow::Result<()> {
    let _ = path;
    anyhow::bail!("not implemented yet")
}
