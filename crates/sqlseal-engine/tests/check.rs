//! The integrity check at backup time and what verify and restore make of
//! it: a backup records the check that passed on its snapshot in the signed
//! seal; a database that fails it is not backed up; a restore skips the
//! check only for a recorded full check, and runs what it is told to.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlseal_engine::{
    CancelFlag, CheckLevel, EngineError, IntegrityCheck, NoProgress, Progress, RestoreOptions,
    VerifyOptions, create_backup, open_container, restore_backup, verify_backup,
};
use sqlseal_format::RecordedCheck;
use sqlseal_source::{Method, SnapshotOptions, SourceError, SqliteSource};
use sqlseal_store::BackupStore;
use sqlseal_testkit::{damage_index, indexed_db};

use common::{Fixture, keyring};

/// A WAL database with an indexed table, checkpointed and closed.
fn fixture() -> Fixture {
    Fixture::new(|db| indexed_db(db, 3000))
}

fn backup(f: &Fixture, check: CheckLevel) -> Result<String, EngineError> {
    let mut snapshot = SnapshotOptions::new(Method::DbPage);
    snapshot.check = check;
    let source = SqliteSource::new(&f.db, snapshot);
    let options = f.options();
    let made = create_backup(&source, &f.store, &options, &CancelFlag::new(), &NoProgress)?;
    assert_eq!(made.recorded_check, sqlseal_engine::recorded_check(check));
    Ok(made.name)
}

/// The check recorded in the seal, read back through the one reader.
fn recorded(f: &Fixture, name: &str) -> RecordedCheck {
    let input = f.store.open(name).expect("open");
    open_container(
        name,
        input,
        &keyring(&f.key),
        &mut std::io::sink(),
        2,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("opens")
    .recorded_check
}

fn stored(f: &Fixture) -> Vec<String> {
    match std::fs::read_dir(f.store.dir()) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn restore(
    f: &Fixture,
    name: &str,
    check: IntegrityCheck,
) -> Result<sqlseal_engine::RestoreReport, EngineError> {
    let target = f.dir.path().join(format!("restored-{}.db", rand_suffix()));
    let mut options = RestoreOptions::default();
    options.verify.integrity_check = check;
    restore_backup(
        &f.store,
        name,
        &keyring(&f.key),
        &target,
        &options,
        &CancelFlag::new(),
        &NoProgress,
    )
}

fn rand_suffix() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn a_backup_records_full_by_default_and_quick_or_none_when_asked() {
    let f = fixture();
    let source = SqliteSource::new(&f.db, SnapshotOptions::new(Method::DbPage));
    let options = f.options();
    let made = create_backup(&source, &f.store, &options, &CancelFlag::new(), &NoProgress)
        .expect("backup");
    assert_eq!(made.recorded_check, RecordedCheck::Full);
    assert_eq!(recorded(&f, &made.name), RecordedCheck::Full);
    for (check, expected) in [
        (CheckLevel::Quick, RecordedCheck::Quick),
        (CheckLevel::None, RecordedCheck::None),
        (CheckLevel::Full, RecordedCheck::Full),
    ] {
        for method in Method::ALL {
            let mut snapshot = SnapshotOptions::new(method);
            snapshot.check = check;
            let source = SqliteSource::new(&f.db, snapshot);
            let made = create_backup(&source, &f.store, &options, &CancelFlag::new(), &NoProgress)
                .expect("backup");
            assert_eq!(recorded(&f, &made.name), expected, "{method} {check}");
        }
    }
}

#[test]
fn a_damaged_database_is_not_backed_up_unless_the_check_is_off() {
    let f = fixture();
    damage_index(&f.db);
    for check in [CheckLevel::Full, CheckLevel::Quick] {
        let err = backup(&f, check).expect_err("the check fails");
        let EngineError::Source(source) = &err else {
            panic!("expected a source error, got {err:?}");
        };
        assert!(
            matches!(**source, SourceError::CheckFailed { .. }),
            "{source:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&f.db.display().to_string()), "{text}");
        assert!(text.contains("--check none"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(!err.is_integrity_failure(), "not a damaged backup: exit 1");
        assert!(
            stored(&f).iter().all(|n| n.starts_with('.')),
            "nothing stored: {:?}",
            stored(&f)
        );
        assert!(f.store.list().map(|l| l.is_empty()).unwrap_or(true));
    }
    // --check none: backed up as it is, and checked (and refused) at restore.
    let name = backup(&f, CheckLevel::None).expect("backed up without a check");
    assert_eq!(recorded(&f, &name), RecordedCheck::None);
    let err = restore(&f, &name, IntegrityCheck::Auto).expect_err("checked at restore");
    assert!(matches!(err, EngineError::Integrity { .. }), "{err:?}");
    assert!(err.is_integrity_failure());
    let err = verify_backup(
        &f.store,
        &name,
        &keyring(&f.key),
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("checked at verify");
    assert!(matches!(err, EngineError::Integrity { .. }), "{err:?}");
    // Told not to check, restore installs it.
    let report = restore(&f, &name, IntegrityCheck::None).expect("restored unchecked");
    assert_eq!(report.verified.check_run, CheckLevel::None);
}

#[test]
fn restore_and_verify_skip_a_recorded_full_check_and_run_what_they_are_told() {
    let f = fixture();
    let full = backup(&f, CheckLevel::Full).expect("full");
    let quick = backup(&f, CheckLevel::Quick).expect("quick");
    let none = backup(&f, CheckLevel::None).expect("none");
    let cases = [
        (&full, IntegrityCheck::Auto, CheckLevel::None),
        (&full, IntegrityCheck::Full, CheckLevel::Full),
        (&full, IntegrityCheck::Quick, CheckLevel::Quick),
        (&full, IntegrityCheck::None, CheckLevel::None),
        // A recorded quick check leaves out what only the full one proves.
        (&quick, IntegrityCheck::Auto, CheckLevel::Full),
        (&none, IntegrityCheck::Auto, CheckLevel::Full),
        (&none, IntegrityCheck::Quick, CheckLevel::Quick),
    ];
    for (name, asked, ran) in cases {
        let report = restore(&f, name, asked).expect("restores");
        assert_eq!(report.verified.check_run, ran, "restore {name} {asked:?}");
        assert_eq!(report.verified.check_asked, asked);
        assert_eq!(report.verified.integrity_checked, ran != CheckLevel::None);
        let options = VerifyOptions {
            integrity_check: asked,
            ..VerifyOptions::default()
        };
        let report = verify_backup(
            &f.store,
            name,
            &keyring(&f.key),
            &options,
            &CancelFlag::new(),
            &NoProgress,
        )
        .expect("verifies");
        assert_eq!(report.check_run, ran, "verify {name} {asked:?}");
    }
}

/// Raises `cancel` once the whole image went through the pipeline, that
/// is while the check of a large database still runs.
struct CancelAfterStream {
    total: AtomicU64,
    done: AtomicU64,
    streamed_at: std::sync::Mutex<Option<Instant>>,
    cancel: CancelFlag,
}

impl Progress for CancelAfterStream {
    fn start(&self, total: u64) {
        self.total.store(total, Ordering::SeqCst);
    }
    fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if done >= self.total.load(Ordering::SeqCst) {
            *self.streamed_at.lock().expect("lock") = Some(Instant::now());
            self.cancel.cancel();
        }
    }
}

#[test]
fn a_cancel_while_the_check_runs_ends_create_at_once() {
    let f = fixture();
    let big = f.dir.path().join("big.db");
    sqlseal_source::demo::create_demo_database(&big, 48 << 20).expect("demo db");
    for method in Method::ALL {
        let mut snapshot = SnapshotOptions::new(method);
        snapshot.temp_dir = Some(f.dir.path().to_path_buf());
        let source = SqliteSource::new(&big, snapshot);
        let options = f.options();
        let progress = CancelAfterStream {
            total: AtomicU64::new(u64::MAX),
            done: AtomicU64::new(0),
            streamed_at: std::sync::Mutex::new(None),
            cancel: CancelFlag::new(),
        };
        let result = create_backup(&source, &f.store, &options, &progress.cancel, &progress);
        let ended = Instant::now();
        assert!(
            matches!(result, Err(EngineError::Cancelled)),
            "{method}: {result:?}"
        );
        let streamed_at = progress
            .streamed_at
            .lock()
            .expect("lock")
            .expect("streamed");
        let took = ended - streamed_at;
        assert!(
            took < Duration::from_secs(1),
            "{method}: {took:?} after the cancel"
        );
        assert!(
            f.store.list().map(|l| l.is_empty()).unwrap_or(true),
            "{method}"
        );
    }
}
