//! Decisions are made on authenticated headers only: listing with a
//! keyring, `latest_backup`, and restore's approval hook.

mod common;

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use sqlseal_crypto::P256Identity;
use sqlseal_engine::{
    CancelFlag, EngineError, HeaderCheck, NoProgress, RestoreOptions, choose_latest_at,
    create_backup, latest_backup, list_backups, restore_backup,
};
use sqlseal_format::CreatedAt;
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::BackupStore;
use sqlseal_testkit::{PLANTED, plant_future};

use common::{Fixture, keyring};

fn fixture() -> Fixture {
    Fixture::new(|db| {
        Connection::open(db)
            .expect("open")
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);")
            .expect("schema");
    })
}

fn backup_at(f: &Fixture, created: &str) -> String {
    let source = SqliteSource::new(&f.db, SnapshotOptions::new(Method::DbPage));
    let mut options = f.options();
    options.created_at = Some(created.parse::<CreatedAt>().expect("time"));
    create_backup(&source, &f.store, &options, &CancelFlag::new(), &NoProgress)
        .expect("backup")
        .name
}

#[test]
fn a_planted_future_header_is_refused_and_never_latest() {
    let f = fixture();
    let older = backup_at(&f, "2026-11-24T08:00:00.000000Z");
    let newest = backup_at(&f, "2026-11-24T09:00:00.000000Z");
    let backups = f.dir.path().join("backups");
    plant_future(&backups.join(&older), &backups.join(PLANTED));
    let keys = keyring(&f.key);

    // Without keys, it parses and (unauthenticated) sorts first.
    let unchecked = list_backups(&f.store, None).expect("list");
    assert_eq!(unchecked[0].entry.name, PLANTED);
    assert!(unchecked.iter().all(|b| b.check == HeaderCheck::NotChecked));
    assert!(unchecked.iter().all(|b| b.verified_created().is_none()));

    let listed = list_backups(&f.store, Some(&keys)).expect("list");
    let planted = listed
        .iter()
        .find(|b| b.entry.name == PLANTED)
        .expect("listed");
    match &planted.check {
        HeaderCheck::Refused(reason) => assert!(
            reason.contains("signature") && reason.contains("does not verify"),
            "{reason}"
        ),
        other => panic!("planted header was {other:?}"),
    }
    assert!(planted.created().is_some(), "stated time still shown");
    assert_eq!(planted.verified_created(), None);
    let verified: Vec<&str> = listed
        .iter()
        .filter(|b| b.is_verified())
        .map(|b| b.entry.name.as_str())
        .collect();
    assert_eq!(verified, vec![newest.as_str(), older.as_str()]);

    assert_eq!(latest_backup(&f.store, &keys).expect("latest"), newest);
}

#[test]
fn latest_names_the_location_and_reasons_when_nothing_verifies() {
    let f = fixture();
    let genuine = backup_at(&f, "2026-11-24T08:00:00.000000Z");
    let other = keyring(&P256Identity::generate().expect("key"));
    let e = latest_backup(&f.store, &other).expect_err("nothing opens");
    let text = e.to_string();
    assert!(
        matches!(e, EngineError::NoVerifiedBackups { refused: 1, .. }),
        "{e}"
    );
    assert!(text.contains(&f.store.location()), "{text}");
    assert!(
        text.contains(&genuine) && text.contains("none of the given keys"),
        "{text}"
    );
}

#[test]
fn the_approval_hook_sees_the_installed_header_and_can_refuse() {
    let f = fixture();
    let name = backup_at(&f, "2026-11-24T08:00:00.000000Z");
    let keys = keyring(&f.key);
    let seen = Arc::new(Mutex::new(Vec::new()));

    let target = f.dir.path().join("refused.db");
    let record = seen.clone();
    let options = RestoreOptions {
        approve: Some(Arc::new(move |h: &sqlseal_format::Header| {
            record.lock().expect("lock").push(h.metadata.backup_id);
            Err("not this one".to_owned())
        })),
        ..RestoreOptions::default()
    };
    let e = restore_backup(
        &f.store,
        &name,
        &keys,
        &target,
        &options,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("refused");
    assert!(matches!(e, EngineError::NotApproved { .. }), "{e}");
    assert!(e.to_string().contains("not this one"), "{e}");
    assert!(!target.exists(), "nothing installed");
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("sqlseal-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let listed_id = list_backups(&f.store, Some(&keys)).expect("list")[0]
        .verified_header()
        .expect("verified")
        .metadata
        .backup_id;
    assert_eq!(*seen.lock().expect("lock"), vec![listed_id]);

    let target = f.dir.path().join("approved.db");
    let options = RestoreOptions {
        approve: Some(Arc::new(move |h: &sqlseal_format::Header| {
            if h.metadata.backup_id == listed_id {
                Ok(())
            } else {
                Err("another backup".to_owned())
            }
        })),
        ..RestoreOptions::default()
    };
    restore_backup(
        &f.store,
        &name,
        &keys,
        &target,
        &options,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("approved");
    assert!(target.exists());
}

/// `restore --latest` chooses by one read of the headers and installs from
/// another: a backup copied over the chosen name in between (an older one,
/// validly signed) must not be installed as the newest.
#[test]
fn a_backup_swapped_in_after_it_was_chosen_is_not_installed() {
    let f = fixture();
    let older = backup_at(&f, "2026-11-24T08:00:00.000000Z");
    let newest = backup_at(&f, "2026-11-24T09:00:00.000000Z");
    let keys = keyring(&f.key);
    let chosen = choose_latest_at(&f.store, &keys, None).expect("choose");
    assert_eq!(chosen.name, newest);
    let backups = f.dir.path().join("backups");
    std::fs::copy(backups.join(&older), backups.join(&newest)).expect("swap");
    let restore = |approve| {
        let target = f.dir.path().join(format!("restored-{}.db", rand_name()));
        let options = RestoreOptions {
            approve,
            ..RestoreOptions::default()
        };
        let result = restore_backup(
            &f.store,
            &chosen.name,
            &keys,
            &target,
            &options,
            &CancelFlag::new(),
            &NoProgress,
        );
        (result, target)
    };
    match restore(Some(chosen.approve_same())) {
        (Err(EngineError::NotApproved { backup, reason }), target) => {
            assert_eq!(backup, newest);
            assert!(reason.contains("changed since it was chosen"), "{reason}");
            assert!(!target.exists(), "nothing installed");
        }
        (other, _) => panic!("the swapped backup must be refused, got {other:?}"),
    }
    // Without the approval the older backup, authentic in itself, would
    // have been installed under the newest one's name.
    let (installed, target) = restore(None);
    assert!(installed.is_ok(), "{installed:?}");
    assert!(target.exists());
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}
