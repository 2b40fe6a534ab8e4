//! create -> list -> verify -> restore against a real database and a local
//! store, and what each refuses.

mod common;

use std::path::Path;

use rusqlite::Connection;
use sqlseal_crypto::{CryptoError, P256Identity};
use sqlseal_engine::{
    BackupOptions, CancelFlag, EngineError, NoProgress, RestoreOptions, VerifyOptions,
    create_backup, latest_backup, list_backups, restore_backup, verify_backup,
};
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::BackupStore;
use sqlseal_testkit::{add_rows, rows};

use common::{Fixture, keyring};

fn fixture(rows: i64) -> Fixture {
    Fixture::new(|db| add_rows(db, rows, 300))
}

fn backup(f: &Fixture, method: Method) -> String {
    let source = SqliteSource::new(&f.db, SnapshotOptions::new(method));
    let mut options = f.options();
    options.chunk_size = 64 * 1024;
    create_backup(&source, &f.store, &options, &CancelFlag::new(), &NoProgress)
        .expect("backup")
        .name
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn flip_byte(path: &Path, offset_from_end: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = bytes.len() - offset_from_end;
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn round_trip_every_method() {
    let f = fixture(5000);
    for method in Method::ALL {
        let name = backup(&f, method);
        let report = verify_backup(
            &f.store,
            &name,
            &keyring(&f.key),
            &VerifyOptions::default(),
            &CancelFlag::new(),
            &NoProgress,
        )
        .expect("verifies");
        assert_eq!(report.header.metadata.method, method.name());
        assert_eq!(report.header.metadata.database, "app.db");
        let target = f.dir.path().join(format!("restored-{method}.db"));
        let restored = restore_backup(
            &f.store,
            &name,
            &keyring(&f.key),
            &target,
            &RestoreOptions::default(),
            &CancelFlag::new(),
            &NoProgress,
        )
        .expect("restores");
        assert!(restored.moved_aside.is_empty());
        assert_eq!(rows(&target), 5000);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
    let listed = list_backups(&f.store, Some(&keyring(&f.key))).expect("list");
    assert!(listed.iter().all(|b| b.is_verified()));
    assert_eq!(listed.len(), 3);
    let times: Vec<_> = listed
        .iter()
        .map(|b| b.created().expect("header parses"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(
        latest_backup(&f.store, &keyring(&f.key)).expect("latest"),
        listed[0].entry.name
    );
}

#[test]
fn restore_refuses_existing_target_without_force_and_moves_it_aside_with() {
    let f = fixture(100);
    let name = backup(&f, Method::DbPage);
    let target = f.dir.path().join("live.db");
    Connection::open(&target)
        .expect("create")
        .execute_batch("CREATE TABLE other(x);")
        .expect("schema");
    let before = std::fs::read(&target).expect("read");
    let e = restore_backup(
        &f.store,
        &name,
        &keyring(&f.key),
        &target,
        &RestoreOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("refused");
    assert!(matches!(e, EngineError::TargetExists(_)), "{e}");
    assert!(e.to_string().contains("--force"));
    assert_eq!(std::fs::read(&target).expect("read"), before, "untouched");

    let options = RestoreOptions {
        force: true,
        ..RestoreOptions::default()
    };
    let report = restore_backup(
        &f.store,
        &name,
        &keyring(&f.key),
        &target,
        &options,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("forced restore");
    assert_eq!(rows(&target), 100);
    assert_eq!(report.moved_aside.len(), 1);
    assert_eq!(
        std::fs::read(&report.moved_aside[0]).expect("old kept"),
        before
    );
    assert!(
        report.moved_aside[0]
            .to_string_lossy()
            .contains("live.db.pre-restore.")
    );
}

#[test]
fn corrupted_backup_fails_and_restore_leaves_nothing() {
    let f = fixture(2000);
    let name = backup(&f, Method::DbPage);
    let path = f.store.local_path(&name).expect("local");
    flip_byte(&path, 100);
    let e = verify_backup(
        &f.store,
        &name,
        &keyring(&f.key),
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("corrupted");
    assert!(e.is_integrity_failure(), "{e}");
    assert!(e.to_string().contains(&name), "names the backup: {e}");

    let before = dir_names(f.dir.path());
    let target = f.dir.path().join("restored.db");
    let e = restore_backup(
        &f.store,
        &name,
        &keyring(&f.key),
        &target,
        &RestoreOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("corrupted");
    assert!(e.is_integrity_failure());
    assert!(!target.exists());
    assert_eq!(
        dir_names(f.dir.path()),
        before,
        "no temporary file left beside the target"
    );
}

#[test]
fn wrong_key_and_untrusted_signer() {
    let f = fixture(10);
    let name = backup(&f, Method::DbPage);
    let stranger = P256Identity::generate().expect("key");
    let e = verify_backup(
        &f.store,
        &name,
        &keyring(&stranger),
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("wrong key");
    assert!(
        matches!(
            e,
            EngineError::Open {
                source: CryptoError::NoMatchingKey { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_integrity_failure());

    // A backup made by another server, encrypted to our key too: we can open it but must not trust it.
    let other = P256Identity::generate().expect("key");
    let source = SqliteSource::new(&f.db, SnapshotOptions::new(Method::DbPage));
    let options = BackupOptions::new(vec![f.key.recipient().clone()], other.clone());
    let planted = create_backup(&source, &f.store, &options, &CancelFlag::new(), &NoProgress)
        .expect("backup")
        .name;
    let e = verify_backup(
        &f.store,
        &planted,
        &keyring(&f.key),
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("untrusted");
    assert!(
        matches!(
            e,
            EngineError::Open {
                source: CryptoError::UntrustedSigner { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&other.recipient().key_id().to_string()),
        "names the signer: {e}"
    );
    let mut trusting = keyring(&f.key);
    trusting.trust(other.recipient().clone());
    verify_backup(
        &f.store,
        &planted,
        &trusting,
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("trusted with --trust");
}

#[test]
fn cancelled_backup_leaves_nothing() {
    let f = fixture(20000);
    let cancel = CancelFlag::new();
    cancel.cancel();
    let source = SqliteSource::new(&f.db, SnapshotOptions::new(Method::DbPage));
    let options = f.options();
    let e =
        create_backup(&source, &f.store, &options, &cancel, &NoProgress).expect_err("cancelled");
    assert!(matches!(e, EngineError::Cancelled), "{e}");
    assert!(f.store.list().expect("list").is_empty());
    assert!(dir_names(f.store.dir()).is_empty(), "no temp file");
}

#[test]
fn two_backups_in_the_same_instant_do_not_collide() {
    let f = fixture(10);
    let names: Vec<String> = (0..5).map(|_| backup(&f, Method::DbPage)).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("app.db-") && n.ends_with(".sqlseal"))
    );
}
