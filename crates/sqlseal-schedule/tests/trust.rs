//! The daemon decides only on authenticated headers: retention, the first
//! due time and auto-restore ignore what nobody signed, auto-restore
//! installs exactly the read it approved, only from allowed signers, and
//! notices when it installs a backup older than the newest it knew of.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlseal_crypto::P256Identity;
use sqlseal_engine::CancelFlag;
use sqlseal_schedule::{
    DatabaseJob, RestoreOutcome, ScheduleError, Settings, auto_restore_settings, read_newest,
    read_status,
};
use sqlseal_store::{BackupEntry, BackupStore, BackupWriter, StoreError};
use sqlseal_testkit::{PLANTED, add_rows, rows};

use common::{at, backup_signed_by, env, job, lose_database};

fn exists(settings: &Settings, name: &str) -> bool {
    settings.databases[0]
        .store
        .local_path(name)
        .is_some_and(|p| p.exists())
}

/// A copy of a genuine backup whose `created:` line says 2999 and whose
/// signature is junk.
fn plant_future(settings: &Settings, genuine: &str) {
    let store = &settings.databases[0].store;
    sqlseal_testkit::plant_future(
        &store.local_path(genuine).expect("path"),
        &store.local_path(PLANTED).expect("path"),
    );
}

#[test]
fn a_planted_future_header_is_neither_counted_nor_deleted_nor_scheduled_from() {
    let e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let made: Vec<String> = (0..3)
        .map(|i| job.backup(at(i), &CancelFlag::new()).expect("backup").name)
        .collect();
    plant_future(&settings, &made[0]);

    // First due is from the newest authenticated header, not 2999.
    assert_eq!(job.newest_backup().expect("newest"), Some(at(2)));

    let done = job.backup(at(3), &CancelFlag::new()).expect("backup");
    assert_eq!(
        done.deleted,
        vec![made[0].clone()],
        "only the oldest genuine one"
    );
    assert_eq!(done.kept, 3);
    assert!(
        exists(&settings, PLANTED),
        "retention never deletes what it cannot authenticate"
    );
    for name in [&made[1], &made[2], &done.name] {
        assert!(
            exists(&settings, name),
            "{name} deleted because of the planted file"
        );
    }
    assert_eq!(job.newest_backup().expect("newest"), Some(at(3)));
}

/// A store whose second `open` of one name returns another backup's bytes:
/// a file swapped between the listing and the restore.
#[derive(Debug)]
struct Swapping {
    inner: Arc<dyn BackupStore>,
    victim: String,
    replacement: Vec<u8>,
    opens: Mutex<HashMap<String, usize>>,
}

impl BackupStore for Swapping {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn list(&self) -> Result<Vec<BackupEntry>, StoreError> {
        self.inner.list()
    }
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let n = {
            let mut opens = self.opens.lock().expect("lock");
            let n = opens.entry(name.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if name == self.victim && n >= 2 {
            return Ok(Box::new(std::io::Cursor::new(self.replacement.clone())));
        }
        self.inner.open(name)
    }
    fn create(&self, name: &str) -> Result<Box<dyn BackupWriter>, StoreError> {
        self.inner.create(name)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }
    fn clean_stale(&self, age: std::time::Duration) -> Result<usize, StoreError> {
        self.inner.clean_stale(age)
    }
    fn local_path(&self, name: &str) -> Option<PathBuf> {
        self.inner.local_path(name)
    }

    fn write_buffer_bytes(&self) -> u64 {
        self.inner.write_buffer_bytes()
    }
}

#[test]
fn auto_restore_refuses_a_backup_swapped_after_listing_and_falls_back() {
    let e = env();
    let mut settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let older = job.backup(at(0), &CancelFlag::new()).expect("backup").name;
    add_rows(&e.db, 50, 0);
    let newest = job.backup(at(1), &CancelFlag::new()).expect("backup").name;
    // A validly signed backup of another database, read in place of `newest`.
    let other = e.dir.path().join("other.db");
    add_rows(&other, 7, 0);
    let foreign = backup_signed_by(&settings, &other, &settings.signer, 2);
    let store = settings.databases[0].store.clone();
    let replacement = std::fs::read(store.local_path(&foreign).expect("path")).expect("read");
    store.delete(&foreign).expect("delete");
    settings.databases[0].store = Arc::new(Swapping {
        inner: store,
        victim: newest.clone(),
        replacement,
        opens: Mutex::new(HashMap::new()),
    });
    lose_database(&e.db);

    let report = auto_restore_settings(&settings).expect("auto-restore");
    match &report.databases[0].1 {
        RestoreOutcome::Restored {
            backup, refused, ..
        } => {
            assert_eq!(backup, &older);
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].backup, newest);
            assert!(
                refused[0].reason.contains("changed since it was listed"),
                "{}",
                refused[0].reason
            );
        }
        other => panic!("expected a restore, got {other:?}"),
    }
    assert_eq!(
        rows(&e.db),
        100,
        "the older backup of this database, not other.db"
    );
}

#[test]
fn auto_restore_installs_only_backups_of_own_keys_or_backup_trust() {
    let mut e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let own = job(&settings)
        .backup(at(0), &CancelFlag::new())
        .expect("backup")
        .name;
    add_rows(&e.db, 50, 0);
    let peer = P256Identity::generate().expect("key");
    let peers = backup_signed_by(&settings, &e.db, &peer, 1);
    lose_database(&e.db);

    // Trusted by the keyring (as `verify --trust` would), but not configured.
    let mut trusting = settings.clone();
    trusting.keyring.trust(peer.recipient().clone());
    let report = auto_restore_settings(&trusting).expect("auto-restore");
    match &report.databases[0].1 {
        RestoreOutcome::Restored {
            backup, refused, ..
        } => {
            assert_eq!(backup, &own);
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].backup, peers);
            assert!(
                refused[0].reason.contains("Backup.Trust"),
                "{}",
                refused[0].reason
            );
        }
        other => panic!("expected a restore, got {other:?}"),
    }
    assert_eq!(rows(&e.db), 100);

    lose_database(&e.db);
    let peer_pub = e.dir.path().join("peer.pub.pem");
    std::fs::write(&peer_pub, peer.recipient().to_public_pem()).expect("write");
    e.params.backup.trust = vec![peer_pub];
    let listed = Settings::from_params(&e.params).expect("settings");
    let report = auto_restore_settings(&listed).expect("auto-restore");
    assert!(
        matches!(&report.databases[0].1, RestoreOutcome::Restored { backup, .. } if *backup == peers),
        "{:?}",
        report.databases[0].1
    );
    assert_eq!(rows(&e.db), 150);
}

#[test]
fn auto_restore_of_an_older_backup_is_reported_or_refused() {
    let mut e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let older = job.backup(at(0), &CancelFlag::new()).expect("backup").name;
    add_rows(&e.db, 50, 0);
    let newest = job.backup(at(1), &CancelFlag::new()).expect("backup").name;
    let record = read_newest(&settings.newest_record).expect("record");
    assert_eq!(record["app.db"].backup, newest);
    assert!(
        !settings.newest_record.starts_with(
            settings.locations[0]
                .as_dir()
                .expect("a directory")
                .join("app.db")
        ),
        "never in the store"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&settings.newest_record)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Someone deletes the newest backup to roll the database back.
    settings.databases[0].store.delete(&newest).expect("delete");
    lose_database(&e.db);
    let report = auto_restore_settings(&settings).expect("auto-restore");
    let warning = match &report.databases[0].1 {
        RestoreOutcome::Restored {
            backup,
            older_than_newest: Some(warning),
            ..
        } if *backup == older => warning.clone(),
        other => panic!("expected a restore with a warning, got {other:?}"),
    };
    assert!(
        warning.contains(&older) && warning.contains(&newest),
        "{warning}"
    );
    let status = read_status(&settings.status_file).expect("status");
    assert_eq!(
        status.databases[0].restored_older.as_deref(),
        Some(warning.as_str())
    );
    assert_eq!(rows(&e.db), 100);
    assert_eq!(
        read_newest(&settings.newest_record).expect("record")["app.db"].backup,
        newest,
        "the record keeps the newest it knew of"
    );

    lose_database(&e.db);
    e.params.restore.require_newest = true;
    let strict = Settings::from_params(&e.params).expect("settings");
    let err = auto_restore_settings(&strict).expect_err("refused");
    match &err {
        ScheduleError::RestoreFailed { refused, .. } => {
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert!(
                refused[0].reason.contains("Restore.RequireNewest")
                    && refused[0].reason.contains(&newest),
                "{}",
                refused[0].reason
            );
        }
        other => panic!("expected RestoreFailed, got {other}"),
    }
    assert!(!e.db.exists(), "no older backup installed");

    e.params.restore.on_failure = sqlseal_params::RestoreOnFailure::Empty;
    let strict = Settings::from_params(&e.params).expect("settings");
    assert!(matches!(
        auto_restore_settings(&strict)
            .expect("starts empty")
            .databases[0]
            .1,
        RestoreOutcome::StartedEmpty { .. }
    ));
    assert!(!e.db.exists());
}
