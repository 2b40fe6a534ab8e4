//! Making room for a restored image at its target.
//!
//! SQLite pairs a database with the `-wal`, `-shm` and `-journal` files
//! beside it by name alone. Left over from the target's earlier life, they
//! would be replayed onto the restored image when it is first opened (or
//! make it unreadable), so they are moved aside before anything is
//! installed, whether or not the database file itself is still there.
//! Nothing is deleted but the temporary files of an earlier restore that
//! was killed.

use std::path::{Path, PathBuf};

use crate::EngineError;
use crate::open::io_err;

/// The files SQLite keeps beside a database, after the database itself.
const SIDE_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Moves `target` and its `-wal`, `-shm` and `-journal` files, whichever
/// exist, to `TARGET.pre-restore.<time>` plus the same suffix (never
/// deleting them); returns their new paths, the database first.
pub(crate) fn move_aside(target: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.6fZ")
        .to_string();
    let mut moved = Vec::new();
    for suffix in std::iter::once("").chain(SIDE_SUFFIXES) {
        let from = PathBuf::from(format!("{}{suffix}", target.display()));
        if from.symlink_metadata().is_err() {
            continue;
        }
        let to = PathBuf::from(format!("{}.pre-restore.{stamp}{suffix}", target.display()));
        std::fs::rename(&from, &to).map_err(io_err("moving aside", &from))?;
        moved.push(to);
    }
    Ok(moved)
}

/// Removes the regular files in `dir` whose names start with `prefix`
/// (the temporary files of a restore of the same target that was killed
/// before it could clean up); returns how many.
pub(crate) fn remove_stale_temps(dir: &Path, prefix: &str) -> Result<usize, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix) && n.len() > prefix.len());
        // file_type() does not follow symlinks.
        if !is_ours || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io_err(
                    "removing the temporary file of an earlier restore",
                    &path,
                )(e));
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_side_files_even_without_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("app.db");
        std::fs::write(dir.path().join("app.db-wal"), "wal").expect("wal");
        std::fs::write(dir.path().join("app.db-journal"), "journal").expect("journal");
        let moved = move_aside(&target).expect("move");
        assert_eq!(moved.len(), 2);
        assert!(!dir.path().join("app.db-wal").exists());
        assert!(!dir.path().join("app.db-journal").exists());
        let wal = moved[0].to_string_lossy().into_owned();
        assert!(
            wal.starts_with(&format!("{}.pre-restore.", target.display())) && wal.ends_with("-wal"),
            "{wal}"
        );
        assert_eq!(std::fs::read_to_string(&moved[0]).expect("read"), "wal");
        assert!(moved[1].to_string_lossy().ends_with("-journal"));
    }

    #[cfg(unix)]
    #[test]
    fn removes_only_regular_files_with_the_exact_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        let prefix = ".app.db.sqlseal-restore-";
        std::fs::write(p.join(".app.db.sqlseal-restore-abc123"), "x").expect("stale");
        std::fs::write(p.join(".app.db.sqlseal-restore-"), "x").expect("bare prefix");
        std::fs::write(p.join(".other.db.sqlseal-restore-abc"), "x").expect("other db");
        std::fs::write(p.join("app.db"), "x").expect("db");
        std::fs::create_dir(p.join(".app.db.sqlseal-restore-dir")).expect("dir");
        std::os::unix::fs::symlink(p.join("app.db"), p.join(".app.db.sqlseal-restore-link"))
            .expect("symlink");
        assert_eq!(remove_stale_temps(p, prefix).expect("clean"), 1);
        assert!(!p.join(".app.db.sqlseal-restore-abc123").exists());
        for kept in [
            ".app.db.sqlseal-restore-",
            ".other.db.sqlseal-restore-abc",
            "app.db",
            ".app.db.sqlseal-restore-dir",
            ".app.db.sqlseal-restore-link",
        ] {
            assert!(p.join(kept).symlink_metadata().is_ok(), "{kept} kept");
        }
    }
}
