//! The status file: after each attempt, per database and location, the
//! last success, the last error, the next due time, the number of backups,
//! the last restore drill and what auto-restore did. Written atomically
//! (temporary file, then rename), mode 0600. The daemon's `/healthz` and
//! `sqlseal status` judge the same facts (see [`crate::stale_reasons`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The state of one database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    /// The database file name (its backup subdirectory).
    pub database: String,
    /// The database path.
    pub path: PathBuf,
    /// Where its backups go: a directory or an `s3://` URL.
    #[serde(default)]
    pub location: String,
    /// When the last backup attempt started.
    pub last_attempt: Option<String>,
    /// When the last successful backup was made.
    pub last_success: Option<String>,
    /// The name of the last successful backup.
    pub last_backup: Option<String>,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When the next backup is due; none when scheduling is disabled.
    pub next_due: Option<String>,
    /// Backups kept for this database.
    pub backup_count: Option<usize>,
    /// When a due backup last found the database unchanged since its last
    /// backup (so none was needed; it counts as current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged_at: Option<String>,
    /// How long the last successful backup took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    /// Bytes the last successful backup wrote to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_size: Option<u64>,
    /// When the last restore drill started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<String>,
    /// The backup the last drill verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill_backup: Option<String>,
    /// Which integrity check the last drill ran, and which one the backup
    /// recorded when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill_check: Option<String>,
    /// The last drill's error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill_error: Option<String>,
    /// When the next restore drill is due; none when drills are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_drill: Option<String>,
    /// What auto-restore did at this start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_restore: Option<String>,
    /// Set when auto-restore installed a backup older than the newest one
    /// this host made or restored, naming both. Kept across restarts until
    /// the next auto-restore of this database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_older: Option<String>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// When the file was written.
    pub updated: String,
    /// When the daemon that writes it started.
    #[serde(default)]
    pub started: String,
    /// One entry per configured database.
    pub databases: Vec<DatabaseStatus>,
}

/// Errors reading or writing the status file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The file could not be read or written.
    #[error("status file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a status file.
    #[error("status file {path}: not a sqlseal status file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Reads a status file.
pub fn read_status(path: &Path) -> Result<StatusReport, StatusError> {
    let text = std::fs::read_to_string(path).map_err(|source| StatusError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| StatusError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Keeps the status in memory and rewrites the file on every change.
#[derive(Debug)]
pub struct StatusWriter {
    path: PathBuf,
    state: Mutex<StatusReport>,
    /// When the file was last written, and whether the facts changed since.
    written: Mutex<(Option<std::time::Instant>, bool)>,
    /// Held while the file is written, so writes never overtake each other.
    io: Mutex<()>,
}

/// The file is rewritten at most this often; changes in between are
/// written by the next change after it, or by [`StatusWriter::flush`] (the
/// scheduler flushes on this period and when it stops). Rewriting the
/// whole file on every change made a daemon of 1,000 databases spend its
/// start-up on 3,000 synced rewrites.
pub const STATUS_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

impl StatusWriter {
    /// The writer of `settings`' status file, one entry per configured database.
    pub fn for_settings(settings: &crate::Settings) -> Self {
        Self::new(
            settings.status_file.clone(),
            settings
                .databases
                .iter()
                .map(|d| (d.name.clone(), d.path.clone(), d.store.location())),
        )
    }

    /// A writer for `path` starting with one empty entry per database
    /// (name, path, location), carrying over from an existing file only
    /// `restored_older` and the last restore drill (so that a restart
    /// neither forgets a failed drill nor runs a drill early).
    pub fn new(
        path: PathBuf,
        databases: impl IntoIterator<Item = (String, PathBuf, String)>,
    ) -> Self {
        let previous = read_status(&path).ok();
        let databases = databases
            .into_iter()
            .map(|(database, db_path, location)| {
                let before = previous.as_ref().and_then(|p| {
                    p.databases
                        .iter()
                        .find(|d| d.database == database && d.location == location)
                });
                let mut entry = DatabaseStatus {
                    database,
                    path: db_path,
                    location,
                    ..DatabaseStatus::default()
                };
                if let Some(before) = before {
                    entry.restored_older = before.restored_older.clone();
                    entry.last_drill = before.last_drill.clone();
                    entry.last_drill_backup = before.last_drill_backup.clone();
                    entry.last_drill_check = before.last_drill_check.clone();
                    entry.last_drill_error = before.last_drill_error.clone();
                }
                entry
            })
            .collect();
        StatusWriter {
            path,
            written: Mutex::new((None, false)),
            io: Mutex::new(()),
            state: Mutex::new(StatusReport {
                updated: String::new(),
                started: crate::now_string(jiff::Timestamp::now()),
                databases,
            }),
        }
    }

    /// Adds an entry for a database found while running (nothing if one
    /// of that name and location exists).
    pub fn add(&self, database: &str, path: PathBuf, location: String) -> Result<(), StatusError> {
        {
            let mut state = lock(&self.state);
            if !state
                .databases
                .iter()
                .any(|d| d.database == database && d.location == location)
            {
                state.databases.push(DatabaseStatus {
                    database: database.to_owned(),
                    path,
                    location,
                    ..DatabaseStatus::default()
                });
            }
        }
        self.write()
    }

    /// Drops the entry of a database at a location that is no longer served.
    pub fn remove(&self, database: &str, location: &str) -> Result<(), StatusError> {
        {
            let mut state = lock(&self.state);
            state
                .databases
                .retain(|d| !(d.database == database && d.location == location));
        }
        self.write()
    }

    /// The facts as they stand (what the file holds after the last write).
    pub fn snapshot(&self) -> StatusReport {
        lock(&self.state).clone()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the (first) entry of `database` and rewrites the file.
    pub fn update(
        &self,
        database: &str,
        change: impl FnOnce(&mut DatabaseStatus),
    ) -> Result<(), StatusError> {
        self.update_where(|d| d.database == database, change)
    }

    /// Changes the entry of `database` at `location` and rewrites the file.
    pub fn update_at(
        &self,
        database: &str,
        location: &str,
        change: impl FnOnce(&mut DatabaseStatus),
    ) -> Result<(), StatusError> {
        self.update_where(|d| d.database == database && d.location == location, change)
    }

    fn update_where(
        &self,
        which: impl Fn(&DatabaseStatus) -> bool,
        change: impl FnOnce(&mut DatabaseStatus),
    ) -> Result<(), StatusError> {
        {
            let mut state = lock(&self.state);
            if let Some(entry) = state.databases.iter_mut().find(|d| which(d)) {
                change(entry);
            }
            state.updated = crate::now_string(jiff::Timestamp::now());
        }
        self.write()
    }

    /// Writes the file now if anything changed since it was last written.
    pub fn flush(&self) -> Result<(), StatusError> {
        let dirty = {
            let written = lock(&self.written);
            written.1
        };
        if !dirty {
            return Ok(());
        }
        self.write_now()
    }

    /// Writes `report` unless the file was written less than
    /// [`STATUS_WRITE_INTERVAL`] ago (then it is only marked changed).
    fn write(&self) -> Result<(), StatusError> {
        {
            let mut written = lock(&self.written);
            if written
                .0
                .is_some_and(|at| at.elapsed() < STATUS_WRITE_INTERVAL)
            {
                written.1 = true;
                return Ok(());
            }
        }
        self.write_now()
    }

    /// Writes the facts as they stand. The snapshot is taken after the
    /// changed mark is cleared, so a change that races a write is marked
    /// again and written by the next one.
    fn write_now(&self) -> Result<(), StatusError> {
        let _io = lock(&self.io);
        {
            let mut written = lock(&self.written);
            *written = (Some(std::time::Instant::now()), false);
        }
        let report = self.snapshot();
        let json = serde_json::to_vec_pretty(&report).map_err(|e| StatusError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.path, &json, ".sqlseal-status-")
    }
}

/// Locks `mutex`; a panic elsewhere while holding it leaves plain data, so
/// a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `bytes` and a newline to `path` through a 0600 temporary file
/// beside it (synced, then renamed over `path`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], prefix: &str) -> Result<(), StatusError> {
    let io = |source| StatusError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut file = sqlseal_private::private_tempfile_in(&dir, prefix).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_close_together_are_written_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        let writer = StatusWriter::new(
            path.clone(),
            [(
                "app.db".to_owned(),
                dir.path().join("app.db"),
                "b".to_owned(),
            )],
        );
        let error_in_file = || {
            read_status(&path).expect("status").databases[0]
                .last_error
                .clone()
        };
        writer
            .update("app.db", |s| s.last_error = Some("first".into()))
            .expect("update");
        assert_eq!(
            error_in_file().as_deref(),
            Some("first"),
            "the first change is written at once"
        );
        writer
            .update("app.db", |s| s.last_error = Some("second".into()))
            .expect("update");
        assert_eq!(
            error_in_file().as_deref(),
            Some("first"),
            "held back within the interval"
        );
        assert_eq!(
            writer.snapshot().databases[0].last_error.as_deref(),
            Some("second")
        );
        writer.flush().expect("flush");
        assert_eq!(
            error_in_file().as_deref(),
            Some("second"),
            "written by flush"
        );
        let before = std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime");
        writer.flush().expect("nothing to write");
        assert_eq!(
            std::fs::metadata(&path)
                .expect("meta")
                .modified()
                .expect("mtime"),
            before
        );
    }
}
