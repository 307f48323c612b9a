//! Retention: a size budget for a directory of recording files that rotate.
//!
//! A long-running recorder (a honeynode's, or the fleet collector's) writes file after file;
//! [`prune_to_budget`] deletes the oldest while their total exceeds the budget.
//!
//! Invariants:
//! - only files that `belongs` accepts are counted or deleted (a recorder never touches
//!   files it did not write);
//! - "oldest" is by name, which recorders make sortable by creation (zero-padded indexes or
//!   timestamps), so a clock change does not reorder files;
//! - the newest file (the one being written) is never deleted, even alone over budget.

use std::path::{Path, PathBuf};

/// Deletes the oldest files in `dir` accepted by `belongs` while their total size is above
/// `budget_bytes`, keeping the newest. Returns the deleted files. A file that vanished
/// meanwhile is skipped; one that cannot be deleted is an error.
pub fn prune_to_budget(
    dir: &Path,
    budget_bytes: u64,
    belongs: impl Fn(&str) -> bool,
) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !belongs(name) {
            continue;
        }
        match entry.metadata() {
            Ok(meta) if meta.is_file() => files.push((name.to_string(), meta.len())),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    files.sort();
    let mut total: u64 = files.iter().map(|(_, len)| len).sum();
    let mut deleted = Vec::new();
    // Everything but the newest may go.
    let removable = files.len().saturating_sub(1);
    for (name, len) in files.into_iter().take(removable) {
        if total <= budget_bytes {
            break;
        }
        let path = dir.join(&name);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(file = %path.display(), bytes = len, "deleted: the recordings exceed their size budget");
                deleted.push(path);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        total = total.saturating_sub(len);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, len: usize) {
        std::fs::write(dir.join(name), vec![0u8; len]).expect("write");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_oldest_go_first_until_the_total_fits() {
        let dir = tempfile::tempdir().expect("dir");
        for name in ["r-0001.mcap", "r-0002.mcap", "r-0003.mcap", "r-0004.mcap"] {
            write(dir.path(), name, 100);
        }
        write(dir.path(), "notes.txt", 1000);
        let deleted = prune_to_budget(dir.path(), 250, |n| n.ends_with(".mcap")).expect("prunes");
        assert_eq!(deleted.len(), 2);
        assert_eq!(
            names(dir.path()),
            ["notes.txt", "r-0003.mcap", "r-0004.mcap"],
            "other files are never touched"
        );
    }

    #[test]
    fn the_newest_file_stays_even_over_budget() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "r-0001.mcap", 100);
        write(dir.path(), "r-0002.mcap", 500);
        prune_to_budget(dir.path(), 10, |n| n.ends_with(".mcap")).expect("prunes");
        assert_eq!(names(dir.path()), ["r-0002.mcap"]);
    }

    #[test]
    fn within_budget_nothing_is_deleted() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "r-0001.mcap", 100);
        write(dir.path(), "r-0002.mcap", 100);
        let deleted = prune_to_budget(dir.path(), 200, |_| true).expect("prunes");
        assert!(deleted.is_empty());
    }
}
