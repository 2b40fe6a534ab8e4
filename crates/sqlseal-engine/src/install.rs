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

/// Files moved out of a restore's way: each from where, to where.
#[derive(Debug, Default)]
pub(crate) struct MovedAside(Vec<(PathBuf, PathBuf)>);

impl MovedAside {
    /// Where the files are now, the database first.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.0.iter().map(|(_, to)| to.clone()).collect()
    }

    /// Moves the files back where they were (when the restore could not be
    /// installed), never over a file that took a name since; returns a note
    /// for the error: where each file is now.
    pub(crate) fn put_back(self) -> String {
        let mut left = Vec::new();
        for (from, to) in self.0.into_iter().rev() {
            // A hard link refuses a name taken since (by an application
            // that reopened the database, say): that file stays aside.
            match std::fs::hard_link(&to, &from) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&to);
                }
                Err(_) => left.push(to.display().to_string()),
            }
        }
        if left.is_empty() {
            "the files moved aside were put back".to_owned()
        } else {
            format!("moved aside and left there: {}", left.join(", "))
        }
    }
}

/// Moves `target` and its `-wal`, `-shm` and `-journal` files, whichever
/// exist, to `TARGET.pre-restore.<time>` plus the same suffix (never
/// deleting them). If one cannot be moved, those already moved are put
/// back.
pub(crate) fn move_aside(target: &Path) -> Result<MovedAside, EngineError> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.6fZ")
        .to_string();
    let mut moved = MovedAside::default();
    for suffix in std::iter::once("").chain(SIDE_SUFFIXES) {
        let from = PathBuf::from(format!("{}{suffix}", target.display()));
        if from.symlink_metadata().is_err() {
            continue;
        }
        let to = PathBuf::from(format!("{}.pre-restore.{stamp}{suffix}", target.display()));
        if let Err(e) = std::fs::rename(&from, &to) {
            let note = moved.put_back();
            return Err(io_err("moving aside", &from)(std::io::Error::new(
                e.kind(),
                format!("{e}; {note}"),
            )));
        }
        moved.0.push((from, to));
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
        let moved = move_aside(&target).expect("move").paths();
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

    #[test]
    fn put_back_restores_every_name_but_one_taken_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("app.db");
        std::fs::write(&target, "db").expect("db");
        std::fs::write(dir.path().join("app.db-wal"), "wal").expect("wal");
        let moved = move_aside(&target).expect("move");
        assert!(!target.exists());
        assert_eq!(moved.put_back(), "the files moved aside were put back");
        assert_eq!(std::fs::read_to_string(&target).expect("db"), "db");
        let wal = dir.path().join("app.db-wal");
        assert_eq!(std::fs::read_to_string(&wal).expect("wal"), "wal");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 2);

        let moved = move_aside(&target).expect("move");
        let aside = moved.paths();
        // The application made a new, empty database in the meantime.
        std::fs::write(&target, "").expect("new db");
        let note = moved.put_back();
        assert!(note.contains(&aside[0].display().to_string()), "{note}");
        assert_eq!(std::fs::read_to_string(&target).expect("db"), "");
        assert_eq!(std::fs::read_to_string(&aside[0]).expect("aside"), "db");
        assert_eq!(std::fs::read_to_string(&wal).expect("wal"), "wal");
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
