//! A local record, per database, of the newest backup this host made or
//! restored. It lives beside the status file (never in the store, where
//! whoever can delete backups could also rewrite it), so that auto-restore
//! notices when the newest backup it knows of is missing or no longer
//! verifies and it is about to install an older one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sqlseal_format::{CreatedAt, Header};

use crate::status::{StatusError, write_atomic};

/// One database's newest known backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewestBackup {
    /// The backup's name in the store.
    pub backup: String,
    /// Its backup id (hex).
    pub id: String,
    /// Its authenticated creation time.
    pub created: String,
}

impl NewestBackup {
    /// The record of an authenticated header.
    pub fn from_header(name: &str, header: &Header) -> Self {
        NewestBackup {
            backup: name.to_owned(),
            id: header.metadata.backup_id.to_string(),
            created: header.metadata.created.to_string(),
        }
    }

    fn created_at(&self) -> Option<CreatedAt> {
        self.created.parse().ok()
    }

    /// Whether `header` is an older backup than this one (a different id
    /// and an earlier authenticated time). An unreadable recorded time
    /// counts as newer, so the warning errs on the loud side.
    pub fn is_newer_than(&self, header: &Header) -> bool {
        if self.id == header.metadata.backup_id.to_string() {
            return false;
        }
        self.created_at()
            .is_none_or(|recorded| recorded > header.metadata.created)
    }
}

/// The record file for a status file: `DIR/STEM.newest.json`.
pub fn newest_record_path(status_file: &Path) -> PathBuf {
    let stem = status_file
        .file_stem()
        .map_or_else(|| "status".to_owned(), |s| s.to_string_lossy().into_owned());
    status_file.with_file_name(format!("{stem}.newest.json"))
}

/// Serialises read-modify-write of record files within this process (the
/// scheduler backs up several databases at once).
static LOCK: Mutex<()> = Mutex::new(());

/// Reads the whole record; a missing file is an empty record.
pub fn read_newest(path: &Path) -> Result<BTreeMap<String, NewestBackup>, StatusError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(StatusError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|source| StatusError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Records `entry` for `database` unless the record already holds a newer
/// backup; written atomically, mode 0600.
pub(crate) fn record_newest(
    path: &Path,
    database: &str,
    entry: NewestBackup,
) -> Result<(), StatusError> {
    let _guard = match LOCK.lock() {
        Ok(g) => g,
        // The guarded data is the file; a panic elsewhere leaves it whole.
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut all = read_newest(path)?;
    if let Some(old) = all.get(database)
        && let (Some(old_t), Some(new_t)) = (old.created_at(), entry.created_at())
        && old_t > new_t
    {
        return Ok(());
    }
    all.insert(database.to_owned(), entry);
    let json = serde_json::to_vec_pretty(&all).map_err(|e| StatusError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, &json, ".sqlseal-newest-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_beside_the_status_file() {
        assert_eq!(
            newest_record_path(Path::new("/var/lib/sqlseal/status.json")),
            PathBuf::from("/var/lib/sqlseal/status.newest.json")
        );
    }

    #[test]
    fn keeps_the_newer_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.newest.json");
        let entry = |b: &str, t: &str| NewestBackup {
            backup: b.into(),
            id: b.into(),
            created: t.into(),
        };
        record_newest(&path, "a.db", entry("new", "2026-11-24T09:00:00.000000Z")).expect("w");
        record_newest(&path, "a.db", entry("old", "2026-11-24T08:00:00.000000Z")).expect("w");
        record_newest(&path, "b.db", entry("b", "2026-11-24T08:00:00.000000Z")).expect("w");
        let all = read_newest(&path).expect("read");
        assert_eq!(all["a.db"].backup, "new");
        assert_eq!(all["b.db"].backup, "b");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
