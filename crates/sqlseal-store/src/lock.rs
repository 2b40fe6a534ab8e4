//! One writer of backups per database and location.
//!
//! A [`DatabaseLock`] is an advisory lock on a small file beside the
//! database, on the database's own file system:
//! `<db dir>/.<db file name>.sqlseal-<16 hex>.lock`, where the hex digits
//! are the start of the SHA-256 of the (normalised) backup location. It is
//! held until the lock is dropped, and the kernel releases it when the
//! holder dies, so a lock file left by a dead process never blocks. The
//! file holds the holder's process id, for the message of the next one to
//! try; it is never deleted, only locked again.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{is_symlink_refusal, is_url};

/// Why a [`DatabaseLock`] could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "database {} is already being backed up to {location} by {}; stop that process first",
        database.display(),
        holder(*pid)
    )]
    Held {
        /// The database.
        database: PathBuf,
        /// The backup location (normalised).
        location: String,
        /// The holder's process id, if its lock file says.
        pid: Option<u32>,
    },
    /// The database path names no file.
    #[error("database path {0} does not name a file; give the database file's path")]
    NotAFile(PathBuf),
    /// The lock file is a symlink, a directory or some other non-file.
    #[error("lock file {0} is not a regular file; remove it")]
    NotRegular(PathBuf),
    /// A file operation on the lock file failed.
    #[error("{what} lock file {}: {source}; check that the database's directory exists and is writable", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_owned(),
    }
}

/// The lock on one database and backup location, held until dropped.
#[derive(Debug)]
pub struct DatabaseLock {
    // Kept open: closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl DatabaseLock {
    /// Takes the lock for backing up `db_path` to `location` (a directory
    /// or an `s3://` URL), without waiting: if another process (or another
    /// lock in this one) holds it, fails with [`LockError::Held`] naming
    /// the holder's process id.
    pub fn acquire(db_path: &Path, location: &str) -> Result<DatabaseLock, LockError> {
        let location = normalize_location(location);
        let path = lock_path(db_path, &location)?;
        let io = |what: &'static str| {
            let path = path.clone();
            move |source| LockError::Io { what, path, source }
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Never follow a symlink planted at the lock's name, and never
            // block opening a FIFO planted there.
            options
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let mut file = match options.open(&path) {
            Ok(file) => file,
            Err(e) if is_symlink_refusal(&e) => return Err(LockError::NotRegular(path)),
            Err(e) => return Err(io("opening")(e)),
        };
        if !file
            .metadata()
            .map_err(io("reading"))
            .map(|m| m.is_file())?
        {
            return Err(LockError::NotRegular(path));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    database: db_path.to_path_buf(),
                    location,
                    pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("locking")(e)),
        }
        file.set_len(0).map_err(io("writing"))?;
        file.seek(SeekFrom::Start(0)).map_err(io("writing"))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io("writing"))?;
        Ok(DatabaseLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<db dir>/.<db file name>.sqlseal-<first 16 hex of SHA-256(location)>.lock`.
fn lock_path(db_path: &Path, location: &str) -> Result<PathBuf, LockError> {
    let Some(name) = db_path.file_name() else {
        return Err(LockError::NotAFile(db_path.to_path_buf()));
    };
    let dir = match db_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let digest = Sha256::digest(location.as_bytes());
    let tag = hex::encode(&digest[..8]);
    Ok(dir.join(format!(".{}.sqlseal-{tag}.lock", name.to_string_lossy())))
}

/// The same location however it was spelled: URLs without a trailing
/// slash, directories as absolute paths (symlinks resolved where the path
/// exists), so that `backups/app.db` and `/srv/backups/app.db/` agree.
fn normalize_location(location: &str) -> String {
    let trimmed = match location.trim_end_matches('/') {
        "" if location.starts_with('/') => "/",
        t => t,
    };
    if is_url(trimmed) {
        return trimmed.to_owned();
    }
    let path = Path::new(trimmed);
    if let Ok(real) = std::fs::canonicalize(path) {
        return real.display().to_string();
    }
    // Not there yet: resolve the parent that is.
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(real) = std::fs::canonicalize(parent) {
            return real.join(name).display().to_string();
        }
    }
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_naming_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let backups = dir.path().join("backups");
        let first = DatabaseLock::acquire(&db, &backups.display().to_string()).expect("first");
        let err = DatabaseLock::acquire(&db, &format!("{}/", backups.display()))
            .expect_err("second must fail");
        let LockError::Held { pid, .. } = &err else {
            panic!("expected Held, got {err:?}");
        };
        assert_eq!(*pid, Some(std::process::id()));
        let text = err.to_string();
        assert_eq!(
            text,
            format!(
                "database {} is already being backed up to {} by process {}; stop that process first",
                db.display(),
                std::fs::canonicalize(dir.path())
                    .expect("real")
                    .join("backups")
                    .display(),
                std::process::id()
            )
        );
        assert!(!text.contains('\n'));
        // Another location is another lock.
        let other = DatabaseLock::acquire(&db, "s3://bucket/other").expect("other location");
        assert_ne!(other.path(), first.path());
    }

    #[test]
    fn dropping_releases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let lock = DatabaseLock::acquire(&db, "s3://bucket/app.db").expect("first");
        let path = lock.path().to_path_buf();
        drop(lock);
        let again = DatabaseLock::acquire(&db, "s3://bucket/app.db").expect("after drop");
        assert_eq!(again.path(), path, "the same file is locked again");
        assert!(path.exists(), "the lock file is never deleted");
    }

    #[cfg(unix)]
    #[test]
    fn lock_file_is_private_beside_the_database_and_names_its_holder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let lock = DatabaseLock::acquire(&db, "s3://bucket/app.db").expect("lock");
        let digest = Sha256::digest(b"s3://bucket/app.db");
        assert_eq!(
            lock.path(),
            dir.path().join(format!(
                ".app.db.sqlseal-{}.lock",
                hex::encode(&digest[..8])
            ))
        );
        let meta = std::fs::metadata(lock.path()).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(lock.path()).expect("read");
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_dead_holders_lock_file_does_not_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let location = "s3://bucket/app.db";
        // A process that has exited, whose pid is in the lock file.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        let path = lock_path(&db, location).expect("path");
        std::fs::write(&path, format!("{dead}\n")).expect("stale lock file");
        let lock = DatabaseLock::acquire(&db, location).expect("a dead holder does not block");
        assert_eq!(lock.path(), path);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id()),
            "the new holder's pid replaces the old one"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_lock_name_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").expect("victim");
        let path = lock_path(&db, "/b").expect("path");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        let err = DatabaseLock::acquire(&db, "/b").expect_err("symlink refused");
        assert!(matches!(err, LockError::NotRegular(_)), "{err:?}");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep");
    }
}
