//! The fixture of the schedule tests: a database of 100 rows, a key and
//! the parameters of a daemon that backs it up to a local directory, and
//! the job, clock and backups the tests make from them.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlseal_crypto::P256Identity;
use sqlseal_engine::{BackupOptions, CancelFlag, NoProgress, create_backup, list_backups};
use sqlseal_params::Params;
use sqlseal_schedule::{Settings, SqliteJob};
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_testkit::{add_rows, write_key};

/// A temporary directory holding `app.db` (100 rows), the key
/// `server.pem`, and parameters that back it up to `backups/` keeping 3.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub key: PathBuf,
    pub params: Params,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    add_rows(&db, 100, 0);
    let key = dir.path().join("server.pem");
    write_key(&key);
    let mut params = Params::default();
    params.backup.location = vec![dir.path().join("backups")];
    params.backup.keys = vec![key.clone()];
    params.backup.max_count = 3;
    params.database.paths = vec![db.clone()];
    Env {
        dir,
        db,
        key,
        params,
    }
}

/// The job of the first configured database.
pub fn job(settings: &Settings) -> SqliteJob {
    SqliteJob::new(settings.databases[0].clone(), Arc::new(settings.clone()))
}

/// `i` hours after a fixed start.
pub fn at(i: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_790_000_000 + i * 3600).expect("time")
}

/// The names of the first database's backups, sorted.
pub fn backup_names(settings: &Settings) -> Vec<String> {
    let mut names: Vec<String> = list_backups(settings.databases[0].store.as_ref(), None)
        .expect("list")
        .into_iter()
        .map(|b| b.entry.name)
        .collect();
    names.sort();
    names
}

/// Makes a backup of `db` signed by `signer`, encrypted to the daemon's
/// keys, into the store of the first database, stamped `at(i)`.
pub fn backup_signed_by(settings: &Settings, db: &Path, signer: &P256Identity, i: i64) -> String {
    let source = SqliteSource::new(db, SnapshotOptions::new(Method::DbPage));
    let mut options = BackupOptions::new(settings.recipients.clone(), signer.clone());
    options.created_at = Some(sqlseal_format::CreatedAt::from_timestamp(at(i)));
    create_backup(
        &source,
        settings.databases[0].store.as_ref(),
        &options,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("backup")
    .name
}

/// Removes the database and its `-wal` and `-shm` files.
pub fn lose_database(db: &Path) {
    std::fs::remove_file(db).expect("lose the database");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
