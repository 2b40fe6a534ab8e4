//! Retention, failures and auto-restore against real databases and a real
//! local store; configuration errors name the parameter.

mod common;

use std::path::Path;

use rusqlite::Connection;
use sqlseal_crypto::P256Identity;
use sqlseal_engine::{CancelFlag, NoProgress};
use sqlseal_params::Params;
use sqlseal_schedule::{
    DatabaseJob, RestoreOutcome, ScheduleError, Settings, auto_restore_settings,
};
use sqlseal_testkit::{add_rows, rows};

use common::{at, backup_names, backup_signed_by, env, job, lose_database};

#[test]
fn retention_keeps_the_newest_max_count() {
    let e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let mut made = Vec::new();
    for i in 0..5 {
        let done = job.backup(at(i), &CancelFlag::new()).expect("backup");
        assert!(done.kept <= 3);
        made.push(done.name);
    }
    let mut newest: Vec<String> = made[2..].to_vec();
    newest.sort();
    assert_eq!(backup_names(&settings), newest, "the three newest remain");
    assert_eq!(job.newest_backup().expect("newest"), Some(at(4)));
    assert!(
        settings.databases[0]
            .store
            .local_path(&made[0])
            .is_some_and(|p| !p.exists())
    );
}

#[test]
fn max_count_zero_keeps_all() {
    let mut e = env();
    e.params.backup.max_count = 0;
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    for i in 0..4 {
        job.backup(at(i), &CancelFlag::new()).expect("backup");
    }
    assert_eq!(backup_names(&settings).len(), 4);
}

#[test]
fn gfs_rules_apply_after_each_backup() {
    // Backups every 6 hours over 3 days (the job's clock is passed in):
    // KeepDaily 2 keeps the newest of each of the last two days, and
    // MaxCount 0 adds nothing.
    let mut e = env();
    e.params.backup.max_count = 0;
    e.params.backup.keep_daily = 2;
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let day0 = jiff::Timestamp::from_second(1_790_035_200).expect("time"); // 2026-09-22T00:00Z
    let mut made = Vec::new();
    for i in 0..12 {
        let at = day0
            .checked_add(jiff::SignedDuration::from_hours(6 * i))
            .expect("time");
        made.push(job.backup(at, &CancelFlag::new()).expect("backup").name);
    }
    let mut expected = vec![made[7].clone(), made[11].clone()];
    expected.sort();
    assert_eq!(
        backup_names(&settings),
        expected,
        "the last backup of day 2 and of day 3"
    );
}

#[test]
fn a_failed_backup_deletes_nothing() {
    let mut e = env();
    e.params.backup.max_count = 2;
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    for i in 0..2 {
        job.backup(at(i), &CancelFlag::new()).expect("backup");
    }
    let before = backup_names(&settings);
    std::fs::write(&e.db, "no longer a database ".repeat(200)).expect("break db");
    let err = job.backup(at(5), &CancelFlag::new()).expect_err("fails");
    assert!(err.to_string().contains("not an SQLite database"), "{err}");
    assert_eq!(backup_names(&settings), before, "retention did not run");
}

fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn auto_restore_uses_the_newest_good_backup() {
    let e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let old = job.backup(at(0), &CancelFlag::new()).expect("backup").name;
    add_rows(&e.db, 50, 0);
    let good = job.backup(at(1), &CancelFlag::new()).expect("backup").name;
    add_rows(&e.db, 50, 0);
    let corrupt = job.backup(at(2), &CancelFlag::new()).expect("backup").name;
    let store = settings.databases[0].store.clone();
    flip_last_byte(&store.local_path(&corrupt).expect("path"));
    // The newest is signed by a key we do not trust (planted, or another server's).
    let stranger = P256Identity::generate().expect("key");
    let planted = backup_signed_by(&settings, &e.db, &stranger, 3);

    // An existing database is never touched.
    let report = auto_restore_settings(&settings).expect("auto-restore");
    assert_eq!(report.databases[0].1, RestoreOutcome::Present);

    lose_database(&e.db);
    let report = auto_restore_settings(&settings).expect("auto-restore");
    match &report.databases[0].1 {
        RestoreOutcome::Restored {
            backup, refused, ..
        } => {
            assert_eq!(backup, &good);
            let names: Vec<&str> = refused.iter().map(|r| r.backup.as_str()).collect();
            assert_eq!(
                names,
                vec![planted.as_str(), corrupt.as_str()],
                "newest first"
            );
            assert!(
                refused[0].reason.contains("not trusted"),
                "{}",
                refused[0].reason
            );
            assert!(
                refused[1].reason.contains("failed authentication")
                    || refused[1].reason.contains("trailer")
                    || refused[1].reason.contains("the seal by key"),
                "{}",
                refused[1].reason
            );
        }
        other => panic!("expected a restore, got {other:?}"),
    }
    assert_eq!(rows(&e.db), 150, "the state of the good backup");
    assert!(
        settings.databases[0]
            .store
            .local_path(&old)
            .is_some_and(|p| p.exists()),
        "older backups untouched"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&e.db).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn auto_restore_when_every_backup_is_bad() {
    let mut e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let job = job(&settings);
    let a = job.backup(at(0), &CancelFlag::new()).expect("backup").name;
    let b = job.backup(at(1), &CancelFlag::new()).expect("backup").name;
    let store = settings.databases[0].store.clone();
    for name in [&a, &b] {
        flip_last_byte(&store.local_path(name).expect("path"));
    }
    std::fs::remove_file(&e.db).expect("lose the database");
    let _ = std::fs::remove_file(format!("{}-wal", e.db.display()));
    let before = std::fs::read_dir(e.dir.path()).expect("dir").count();

    let err = auto_restore_settings(&settings).expect_err("fail is the default");
    assert!(
        matches!(err, ScheduleError::RestoreFailed { ref refused, .. } if refused.len() == 2),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&a) && message.contains(&b),
        "lists every backup: {message}"
    );
    assert!(!e.db.exists(), "nothing left behind");
    let after = std::fs::read_dir(e.dir.path()).expect("dir").count();
    assert_eq!(before, after, "no temporary files");

    e.params.restore.on_failure = sqlseal_params::RestoreOnFailure::Empty;
    let settings = Settings::from_params(&e.params).expect("settings");
    let report = auto_restore_settings(&settings).expect("starts empty");
    assert!(
        matches!(&report.databases[0].1, RestoreOutcome::StartedEmpty { refused } if refused.len() == 2)
    );
    assert!(!e.db.exists());

    e.params.restore.auto = false;
    let settings = Settings::from_params(&e.params).expect("settings");
    assert_eq!(
        auto_restore_settings(&settings)
            .expect("disabled")
            .databases[0]
            .1,
        RestoreOutcome::Disabled
    );
}

#[test]
fn auto_restore_refuses_a_backup_of_another_database() {
    let e = env();
    let settings = Settings::from_params(&e.params).expect("settings");
    let good = job(&settings)
        .backup(at(0), &CancelFlag::new())
        .expect("backup")
        .name;
    // A validly signed backup of another database, placed in app.db's directory.
    let other = e.dir.path().join("other.db");
    add_rows(&other, 7, 0);
    let misplaced = backup_signed_by(&settings, &other, &settings.signer, 1);
    std::fs::remove_file(&e.db).expect("lose the database");
    let _ = std::fs::remove_file(format!("{}-wal", e.db.display()));
    let report = auto_restore_settings(&settings).expect("auto-restore");
    match &report.databases[0].1 {
        RestoreOutcome::Restored {
            backup, refused, ..
        } => {
            assert_eq!(backup, &good);
            assert_eq!(refused.len(), 1);
            assert_eq!(refused[0].backup, misplaced);
            assert!(
                refused[0]
                    .reason
                    .contains("backup of other.db, not of app.db"),
                "{}",
                refused[0].reason
            );
        }
        other => panic!("expected a restore, got {other:?}"),
    }
    assert_eq!(rows(&e.db), 100);
}

#[test]
fn auto_restore_without_backups_starts_empty() {
    let e = env();
    std::fs::remove_file(&e.db).expect("remove");
    let settings = Settings::from_params(&e.params).expect("settings");
    let report = auto_restore_settings(&settings).expect("no backups");
    assert_eq!(report.databases[0].1, RestoreOutcome::NoBackups);
}

#[test]
fn configuration_errors_name_the_parameter() {
    let e = env();
    let err = |p: &Params| Settings::from_params(p).expect_err("invalid").to_string();

    let mut p = e.params.clone();
    p.backup.keys = vec![e.dir.path().join("missing.pem")];
    let m = err(&p);
    assert!(
        m.starts_with("Backup.Keys: ") && m.contains("missing.pem"),
        "{m}"
    );

    let mut p = e.params.clone();
    p.backup.keys.clear();
    assert!(err(&p).starts_with("Backup.Keys: "));

    let mut p = e.params.clone();
    p.backup.location = vec![e.key.clone()]; // a file, not a directory
    assert!(err(&p).starts_with("Backup.Location: "), "{}", err(&p));

    let mut p = e.params.clone();
    p.database.paths.clear();
    assert!(err(&p).starts_with("Database.Paths: "));

    // Two app.db in different directories: named apart, not refused.
    let mut p = e.params.clone();
    p.database.paths.push(e.dir.path().join("sub/app.db"));
    let both = Settings::from_params(&p).expect("two app.db are named apart");
    let names: Vec<&str> = both.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names[1], "sub/app.db", "{names:?}");
    assert!(
        names[0].ends_with("/app.db") && names[0] != names[1],
        "{names:?}"
    );
    // The same file twice is refused.
    let mut p = e.params.clone();
    p.database.paths.push(e.db.clone());
    assert!(err(&p).starts_with("Database.Paths: "), "{}", err(&p));

    let mut p = e.params.clone();
    p.backup.recipients = vec![e.dir.path().join("nope.pub")];
    assert!(err(&p).starts_with("Backup.Recipients: "));

    let mut p = e.params.clone();
    p.backup.trust = vec![e.db.clone()];
    assert!(err(&p).starts_with("Backup.Trust: "), "{}", err(&p));
}

#[test]
fn a_unicode_database_name_stays_readable_in_its_directory_and_backups() {
    let e = env();
    let db = e.dir.path().join("café app ☕.db");
    add_rows(&db, 10, 0);
    let mut params = e.params.clone();
    params.database.paths = vec![db];
    let settings = Settings::from_params(&params).expect("settings");
    let subdir = e.dir.path().join("backups").join("café app ☕.db");
    assert_eq!(
        settings.databases[0].store.local_path("x.sqlseal"),
        Some(subdir.join("x.sqlseal")),
        "the subdirectory keeps the real name"
    );
    let made = job(&settings)
        .backup(at(0), &CancelFlag::new())
        .expect("backup")
        .name;
    assert!(made.starts_with("café app ☕.db-"), "{made}");
    assert!(
        subdir.join(&made).is_file(),
        "{made} is in {}",
        subdir.display()
    );
}

#[test]
fn names_a_file_system_cannot_hold_are_encoded_alike_in_directory_and_backups() {
    let e = env();
    let db = e.dir.path().join("50%\tsplit.db");
    add_rows(&db, 10, 0);
    let mut params = e.params.clone();
    params.database.paths = vec![db];
    let settings = Settings::from_params(&params).expect("settings");
    let made = job(&settings)
        .backup(at(0), &CancelFlag::new())
        .expect("backup")
        .name;
    assert!(made.starts_with("50%25%09split.db-"), "{made}");
    let subdir = e.dir.path().join("backups").join("50%25%09split.db");
    assert!(
        subdir.join(&made).is_file(),
        "{made} is in {}",
        subdir.display()
    );
}

/// The check each seal records, read back through the one reader.
fn recorded_checks(settings: &Settings) -> Vec<sqlseal_format::RecordedCheck> {
    let store = settings.databases[0].store.as_ref();
    backup_names(settings)
        .iter()
        .map(|name| {
            sqlseal_engine::open_container(
                name,
                store.open(name).expect("open"),
                &settings.keyring,
                &mut std::io::sink(),
                2,
                &CancelFlag::new(),
                &NoProgress,
            )
            .expect("opens")
            .recorded_check
        })
        .collect()
}

/// Garbage over half the root page of a new index `t_v`, with plain file
/// I/O after every connection closed.
fn damage_an_index(db: &Path) {
    let (root, page_size): (i64, i64) = {
        let conn = Connection::open(db).expect("open");
        conn.execute_batch("CREATE INDEX t_v ON t(v); PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("index");
        (
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't_v'",
                [],
                |r| r.get(0),
            )
            .expect("root"),
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page size"),
        )
    };
    let mut bytes = std::fs::read(db).expect("read");
    let start = ((root - 1) * page_size) as usize;
    let page = &mut bytes[start..start + page_size as usize];
    let half = page.len() / 2;
    for (i, b) in page[half..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(db, bytes).expect("write");
}

#[test]
fn backup_check_is_recorded_and_a_damaged_database_stores_and_deletes_nothing() {
    let mut e = env();
    e.params.backup.max_count = 1;
    let settings = Settings::from_params(&e.params).expect("settings");
    job(&settings)
        .backup(at(0), &CancelFlag::new())
        .expect("full by default");
    assert_eq!(
        recorded_checks(&settings),
        [sqlseal_format::RecordedCheck::Full]
    );
    e.params.backup.check = sqlseal_params::BackupCheck::Quick;
    let quick = Settings::from_params(&e.params).expect("settings");
    job(&quick)
        .backup(at(1), &CancelFlag::new())
        .expect("quick");
    assert_eq!(
        recorded_checks(&settings),
        [sqlseal_format::RecordedCheck::Quick],
        "retention kept the newest"
    );
    let before = backup_names(&settings);

    damage_an_index(&e.db);
    let err = job(&settings)
        .backup(at(2), &CancelFlag::new())
        .expect_err("a damaged database is not backed up");
    let text = err.to_string();
    assert!(text.contains("fails integrity_check"), "{text}");
    assert!(text.contains("Backup.Check: none"), "{text}");
    assert_eq!(
        backup_names(&settings),
        before,
        "nothing stored, nothing deleted"
    );
    let temps: Vec<_> = std::fs::read_dir(e.params.backup.location[0].join("app.db"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");

    e.params.backup.check = sqlseal_params::BackupCheck::None;
    let unchecked = Settings::from_params(&e.params).expect("settings");
    job(&unchecked)
        .backup(at(3), &CancelFlag::new())
        .expect("backed up as it is");
    assert_eq!(
        recorded_checks(&settings),
        [sqlseal_format::RecordedCheck::None]
    );
}
