//! What a restore finds at its target from the target's earlier life: a
//! stale write-ahead log without its database, and temporary files of a
//! restore that was killed.

mod common;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use sqlseal_crypto::P256Identity;
use sqlseal_engine::{CancelFlag, NoProgress, RestoreOptions, create_backup, restore_backup};
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::LocalStore;
use sqlseal_testkit::{add_rows, insert_rows, rows};

use common::{keyring, own_options};

fn side(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

/// A WAL database of `rows` rows at `dir/app.db`, backed up to
/// `dir/backups`; returns the database, the store, the backup and its key.
fn backed_up(dir: &Path, rows: i64) -> (PathBuf, LocalStore, String, P256Identity) {
    let db = dir.join("app.db");
    add_rows(&db, rows, 300);
    let key = P256Identity::generate().expect("key");
    let store = LocalStore::new(dir.join("backups"));
    let source = SqliteSource::new(&db, SnapshotOptions::new(Method::DbPage));
    let mut options = own_options(&key);
    options.chunk_size = 64 * 1024;
    let name = create_backup(&source, &store, &options, &CancelFlag::new(), &NoProgress)
        .expect("backup")
        .name;
    (db, store, name, key)
}

#[test]
fn restore_over_a_missing_database_moves_its_stale_wal_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, store, name, key) = backed_up(dir.path(), 100);

    // The database lives on: 400 more rows, committed to its WAL and not
    // checkpointed. Keep a copy of that WAL, as a crash would leave it.
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
        .expect("no checkpoints");
    insert_rows(&conn, 400, 300);
    let wal = side(&db, "-wal");
    let stale_wal = std::fs::read(&wal).expect("read wal");
    assert!(stale_wal.len() > 4096, "the WAL holds the new rows");
    drop(conn);
    // Then only the main file is lost; its WAL stays behind.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(side(&db, suffix));
    }
    std::fs::write(&wal, &stale_wal).expect("leave the stale wal");

    let report = restore_backup(
        &store,
        &name,
        &keyring(&key),
        &db,
        &RestoreOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("restore");

    let wal_left = wal.exists();
    assert_eq!(rows(&db), 100, "exactly the backed-up rows");
    let check: String = Connection::open(&db)
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let moved: Vec<_> = report
        .moved_aside
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("-wal"))
        .collect();
    assert_eq!(moved.len(), 1, "the stale WAL is reported: {report:?}");
    assert!(
        moved[0]
            .to_string_lossy()
            .starts_with(&format!("{}.pre-restore.", db.display())),
        "{}",
        moved[0].display()
    );
    assert_eq!(
        std::fs::read(moved[0]).expect("moved wal"),
        stale_wal,
        "moved aside, not deleted"
    );
    assert!(!wal_left, "nothing was left to replay");
}

#[test]
fn restore_removes_temporary_files_of_a_killed_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, store, name, key) = backed_up(dir.path(), 50);
    let target_dir = dir.path().join("restored");
    std::fs::create_dir(&target_dir).expect("mkdir");
    let target = target_dir.join("app.db");
    let leftover = target_dir.join(".app.db.sqlseal-restore-Xy12Ab");
    std::fs::write(&leftover, vec![7u8; 8192]).expect("leftover");
    let unrelated = target_dir.join(".other.db.sqlseal-restore-Xy12Ab");
    std::fs::write(&unrelated, b"not ours").expect("unrelated");

    restore_backup(
        &store,
        &name,
        &keyring(&key),
        &target,
        &RestoreOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("restore");

    assert!(!leftover.exists(), "the killed restore's file is removed");
    assert!(unrelated.exists(), "another target's file is not touched");
    assert_eq!(rows(&target), 50);
    assert_eq!(rows(&db), 50);
}
