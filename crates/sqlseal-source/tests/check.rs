//! The integrity check that runs on the image a snapshot streams: what it
//! reports for a sound and a damaged database with each method and level,
//! that it runs beside a writer that holds the write lock, and that
//! dropping the snapshot stops it at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlseal_source::{
    CheckLevel, Method, SnapshotOptions, SnapshotSource, SourceError, SqliteSource, check_image,
};
use sqlseal_testkit::{damage_index, indexed_db};

/// A WAL database with a table and an index on it, checkpointed and closed.
fn database(dir: &Path, rows: u32) -> PathBuf {
    let db = dir.join("app.db");
    indexed_db(&db, rows);
    db
}

/// Streams the whole image, then waits for the check's outcome.
fn snapshot_and_check(
    db: &Path,
    method: Method,
    check: CheckLevel,
) -> Result<CheckLevel, SourceError> {
    let mut options = SnapshotOptions::new(method);
    options.check = check;
    options.block_size = 64 * 1024;
    let mut snapshot = SqliteSource::new(db, options).snapshot()?;
    assert_eq!(snapshot.info().check, check);
    while let Some(block) = snapshot.next_block() {
        block?;
    }
    snapshot
        .check_result(Duration::from_secs(120))
        .expect("the check ends")
}

#[test]
fn a_sound_database_passes_the_check_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database(dir.path(), 3000);
    for method in Method::ALL {
        for check in CheckLevel::ALL {
            let passed = snapshot_and_check(&db, method, check)
                .unwrap_or_else(|e| panic!("{method} {check}: {e}"));
            assert_eq!(passed, check, "{method}");
        }
    }
    assert_eq!(SnapshotOptions::new(Method::DbPage).check, CheckLevel::Full);
}

#[test]
fn a_damaged_index_fails_the_check_with_one_line_naming_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database(dir.path(), 3000);
    damage_index(&db);
    // vacuum rebuilds the copy it checks, so what it finds depends on the damage.
    for method in [Method::DbPage, Method::BackupApi] {
        let err = snapshot_and_check(&db, method, CheckLevel::Full)
            .expect_err("a damaged index fails integrity_check");
        let SourceError::CheckFailed {
            path,
            check,
            problem,
        } = &err
        else {
            panic!("{method}: expected CheckFailed, got {err:?}");
        };
        assert_eq!(path, &db);
        assert_eq!(*check, CheckLevel::Full);
        assert!(
            !problem.is_empty() && !problem.contains('\n'),
            "{problem:?}"
        );
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(&db.display().to_string()), "{text}");
        assert!(text.contains("fails integrity_check"), "{text}");
        assert!(text.contains(problem.as_str()), "{text}");
        assert!(text.contains("--check none"), "{text}");
        // No check: the image streams as it is.
        assert_eq!(
            snapshot_and_check(&db, method, CheckLevel::None).expect("no check"),
            CheckLevel::None
        );
    }
}

#[test]
fn the_check_runs_while_a_writer_holds_the_write_lock() {
    // No second connection can be pinned to the snapshot while another
    // connection holds the write lock: the check then runs after the pages,
    // in the same read transaction, and the writer is never blocked.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database(dir.path(), 3000);
    let writer = Connection::open(&db).expect("writer");
    writer
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO t(name, n) VALUES ('pending', 0);")
        .expect("hold the write lock");
    let started = Instant::now();
    let passed = snapshot_and_check(&db, Method::DbPage, CheckLevel::Full).expect("checked");
    assert_eq!(passed, CheckLevel::Full);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    writer.execute_batch("COMMIT").expect("the writer commits");
}

#[test]
fn dropping_a_snapshot_stops_its_check_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("big.db");
    sqlseal_source::demo::create_demo_database(&db, 48 << 20).expect("demo db");
    for method in Method::ALL {
        let mut options = SnapshotOptions::new(method);
        options.temp_dir = Some(dir.path().to_path_buf());
        let mut snapshot = SqliteSource::new(&db, options)
            .snapshot()
            .expect("snapshot");
        while let Some(block) = snapshot.next_block() {
            block.expect("block");
        }
        let running = snapshot.check_result(Duration::ZERO).is_none();
        let started = Instant::now();
        drop(snapshot);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(900),
            "{method}: dropping took {took:?} (check was running: {running})"
        );
        // Dropped in the middle of the stream, too.
        let mut options = SnapshotOptions::new(method);
        options.temp_dir = Some(dir.path().to_path_buf());
        let mut snapshot = SqliteSource::new(&db, options)
            .snapshot()
            .expect("snapshot");
        snapshot.next_block().expect("a block").expect("block");
        let started = Instant::now();
        drop(snapshot);
        assert!(started.elapsed() < Duration::from_millis(900), "{method}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with(".sqlseal-snapshot-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn check_image_reports_quick_and_full_and_can_be_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = database(dir.path(), 3000);
    for check in CheckLevel::ALL {
        check_image(&db, check, &|| false).expect("sound");
    }
    damage_index(&db);
    let err = check_image(&db, CheckLevel::Full, &|| false).expect_err("damaged");
    assert!(
        matches!(
            err,
            SourceError::IntegrityFailed {
                check: CheckLevel::Full,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("fails integrity_check"), "{err}");
    check_image(&db, CheckLevel::None, &|| false).expect("no check");

    let big = dir.path().join("big.db");
    sqlseal_source::demo::create_demo_database(&big, 32 << 20).expect("demo db");
    let started = Instant::now();
    let err = check_image(&big, CheckLevel::Full, &|| {
        started.elapsed() > Duration::from_millis(50)
    })
    .expect_err("cancelled");
    assert!(matches!(err, SourceError::Cancelled), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
