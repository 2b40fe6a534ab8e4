//! Plaintext stays home: while verify writes the image for
//! `PRAGMA integrity_check`, it is in a private 0700 directory of the chosen
//! temporary directory, never beside the backup; the daemon's read-back
//! (no integrity check) writes no file at all.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;
use sqlseal_crypto::{Keyring, P256Identity};
use sqlseal_engine::{
    BackupOptions, CancelFlag, IntegrityCheck, NoProgress, Progress, VerifyOptions, create_backup,
    verify_backup,
};
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::LocalStore;

/// Records, at every step of the read, what the watched directories hold.
struct Watch {
    dirs: Vec<PathBuf>,
    seen: Mutex<Vec<Vec<BTreeSet<String>>>>,
}

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Each entry's name and permission bits, as `NAME MODE`.
fn entries_with_modes(dir: &Path) -> BTreeSet<String> {
    entries(dir)
        .into_iter()
        .map(|name| {
            let mode = std::fs::metadata(dir.join(&name))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            format!("{name} {mode:o}")
        })
        .collect()
}

impl Progress for Watch {
    fn start(&self, _total: u64) {}
    fn advance(&self, _bytes: u64) {
        let now = vec![entries(&self.dirs[0]), entries_with_modes(&self.dirs[1])];
        self.seen.lock().expect("lock").push(now);
    }
}

#[test]
fn verify_keeps_the_image_in_a_private_temporary_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch(
        "CREATE TABLE t(b BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
         INSERT INTO t SELECT randomblob(500) FROM c;",
    )
    .expect("rows");
    drop(conn);
    let key = P256Identity::generate().expect("key");
    let backups = dir.path().join("backups");
    let store = LocalStore::new(&backups);
    let source = SqliteSource::new(&db, SnapshotOptions::new(Method::DbPage));
    let mut options = BackupOptions::new(vec![key.recipient().clone()], key.clone());
    options.chunk_size = 64 * 1024;
    let made =
        create_backup(&source, &store, &options, &CancelFlag::new(), &NoProgress).expect("backup");
    let mut keyring = Keyring::new();
    keyring.add_identity(key);
    let temp = dir.path().join("temp");
    std::fs::create_dir(&temp).expect("temp dir");

    // A backup made with the defaults records a full check, so the default
    // verify (Auto) needs no image on disk either.
    for (integrity_check, on_disk) in [
        (IntegrityCheck::Full, true),
        (IntegrityCheck::None, false),
        (IntegrityCheck::Auto, false),
    ] {
        let watch = Watch {
            dirs: vec![backups.clone(), temp.clone()],
            seen: Mutex::new(Vec::new()),
        };
        let verify = VerifyOptions {
            temp_dir: Some(temp.clone()),
            integrity_check,
            ..VerifyOptions::default()
        };
        verify_backup(
            &store,
            &made.name,
            &keyring,
            &verify,
            &CancelFlag::new(),
            &watch,
        )
        .expect("verifies");
        let seen = watch.seen.into_inner().expect("lock");
        assert!(seen.len() > 10, "the read went through many chunks");
        for step in &seen {
            assert_eq!(
                step[0],
                BTreeSet::from([made.name.clone()]),
                "nothing but the backup beside the backup"
            );
            if on_disk {
                let names: Vec<&String> = step[1].iter().collect();
                assert_eq!(names.len(), 1, "one private directory: {names:?}");
                assert!(names[0].starts_with(".sqlseal-verify-"), "{names:?}");
                assert!(
                    names[0].ends_with(" 700"),
                    "the directory is private: {names:?}"
                );
            } else {
                assert!(
                    step[1].is_empty(),
                    "read-back writes no plaintext: {:?}",
                    step[1]
                );
            }
        }
        assert!(entries(&temp).is_empty(), "nothing is left behind");
    }
}
