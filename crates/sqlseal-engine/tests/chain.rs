//! Chains of increments: every point restores to the database as it was,
//! nothing is written when nothing changed, and a chain that does not
//! verify link by link restores nothing.

mod common;

use std::path::Path;

use common::{Fixture, keyring};
use rusqlite::Connection;
use sqlseal_engine::{
    BackupOptions, CancelFlag, ChainState, EngineError, IncrementOutcome, IncrementTracker,
    IntegrityCheck, NoProgress, RestoreOptions, VerifyOptions, create_increment,
    create_tracked_increment, restore_backup, start_chain, verify_backup,
};
use sqlseal_format::CreatedAt;
use sqlseal_source::{CheckLevel, Method, SnapshotOptions, SqliteSource};
use sqlseal_store::{BackupStore, LocalStore};

fn wal_db(path: &Path) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         CREATE INDEX t_v ON t(v);",
    )
    .expect("schema");
    insert(path, 0, 2000);
}

fn insert(path: &Path, from: i64, n: i64) {
    let conn = Connection::open(path).expect("open");
    conn.execute(
        "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?1 + ?2)
         INSERT OR REPLACE INTO t SELECT i, printf('row %d %s', i, hex(randomblob(40))) FROM s",
        (from, n),
    )
    .expect("insert");
}

/// The rows as text, in order: what a restore must give back.
fn dump(path: &Path) -> String {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT id, v FROM t ORDER BY id")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}={}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
}

fn source(db: &Path) -> SqliteSource {
    let mut options = SnapshotOptions::new(Method::DbPage);
    options.check = CheckLevel::None;
    SqliteSource::new(db, options)
}

/// Options with a creation time `seconds` after a fixed start, so that
/// links are ordered without waiting.
fn at(options: &BackupOptions, seconds: i64) -> BackupOptions {
    BackupOptions {
        created_at: CreatedAt::from_microsecond(1_764_000_000_000_000 + seconds * 1_000_000),
        ..options.clone()
    }
}

fn increment(f: &Fixture, state: &ChainState, seconds: i64) -> (String, ChainState) {
    match create_increment(
        &source(&f.db),
        &f.store,
        &at(&f.options(), seconds),
        state,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("increment")
    {
        IncrementOutcome::Written(report, next) => (report.name, next),
        IncrementOutcome::Unchanged => panic!("expected an increment"),
    }
}

fn restore(f: &Fixture, store: &dyn BackupStore, name: &str) -> Result<String, EngineError> {
    let target = f.dir.path().join(format!("restored-{name}.db"));
    let options = RestoreOptions {
        verify: VerifyOptions {
            integrity_check: IntegrityCheck::Full,
            ..VerifyOptions::default()
        },
        ..RestoreOptions::default()
    };
    restore_backup(
        store,
        name,
        &keyring(&f.key),
        &target,
        &options,
        &CancelFlag::new(),
        &NoProgress,
    )?;
    Ok(dump(&target))
}

/// A full backup that starts a chain, made at the fixed start time.
fn full(f: &Fixture) -> (sqlseal_engine::BackupReport, ChainState) {
    start_chain(
        &source(&f.db),
        &f.store,
        &at(&f.options(), 0),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("full backup")
}

/// A chain of a full backup and `links` increments, with the database's
/// rows at each point.
fn chain(f: &Fixture, links: i64) -> (Vec<(String, String)>, ChainState) {
    chain_made_by(f, links, |state, i| increment(f, state, i))
}

/// A chain of `links` increments made by `link`, after changes of every
/// kind (updates, deletes, inserts that grow the file); every point with
/// the rows it must restore to.
fn chain_made_by(
    f: &Fixture,
    links: i64,
    mut link: impl FnMut(&ChainState, i64) -> (String, ChainState),
) -> (Vec<(String, String)>, ChainState) {
    let (full, mut state) = full(f);
    let mut points = vec![(full.name, dump(&f.db))];
    for i in 1..=links {
        let conn = Connection::open(&f.db).expect("open");
        match i % 3 {
            0 => conn
                .execute("DELETE FROM t WHERE id % 7 = ?1", [i % 7])
                .map(drop),
            1 => conn
                .execute("UPDATE t SET v = v || '!' WHERE id % 50 = ?1", [i])
                .map(drop),
            _ => {
                insert(&f.db, 10_000 * i, 300);
                Ok(())
            }
        }
        .expect("change");
        drop(conn);
        let (name, next) = link(&state, i);
        state = next;
        points.push((name, dump(&f.db)));
    }
    (points, state)
}

#[test]
fn every_point_of_a_chain_restores_to_the_database_at_that_moment() {
    let f = Fixture::new(wal_db);
    let (points, state) = chain(&f, 7);
    assert_eq!(state.sequence, 7);
    for (name, rows) in &points {
        assert_eq!(
            &restore(&f, &f.store, name).expect("restores"),
            rows,
            "{name}"
        );
    }
    // Verify builds the same chain and says where the image came from.
    let (last, _) = points.last().expect("points");
    let verified = verify_backup(
        &f.store,
        last,
        &keyring(&f.key),
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("verifies");
    let chain = verified.chain.expect("an increment");
    assert_eq!(chain.full, points[0].0);
    assert_eq!(chain.links, 7);
    // An increment records no check: the default check runs on the image.
    assert_eq!(verified.check_run, CheckLevel::Full);
}

#[test]
fn increments_hold_only_what_changed_and_nothing_is_written_when_nothing_did() {
    let f = Fixture::new(wal_db);
    insert(&f.db, 100_000, 20_000);
    let (full, state) = full(&f);
    let before = f.store.list().expect("list");
    let outcome = create_increment(
        &source(&f.db),
        &f.store,
        &at(&f.options(), 1),
        &state,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("no error");
    assert!(
        matches!(outcome, IncrementOutcome::Unchanged),
        "{outcome:?}"
    );
    assert_eq!(f.store.list().expect("list"), before);
    // One row changed: a few pages, a small fraction of the full backup.
    Connection::open(&f.db)
        .expect("open")
        .execute("UPDATE t SET v = 'changed' WHERE id = 100500", [])
        .expect("update");
    let IncrementOutcome::Written(report, _) = create_increment(
        &source(&f.db),
        &f.store,
        &at(&f.options(), 2),
        &state,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("increment") else {
        panic!("a page changed");
    };
    assert!(
        report.size * 20 < full.size,
        "increment {} bytes, full backup {} bytes",
        report.size,
        full.size
    );
}

#[test]
fn a_shrinking_database_restores_at_its_new_size() {
    let f = Fixture::new(wal_db);
    insert(&f.db, 100_000, 5_000);
    let (_, state) = full(&f);
    let conn = Connection::open(&f.db).expect("open");
    conn.execute_batch("DELETE FROM t WHERE id >= 100000; VACUUM;")
        .expect("shrink");
    drop(conn);
    let (name, next) = increment(&f, &state, 1);
    assert!(next.index.page_count() < state.index.page_count());
    assert_eq!(restore(&f, &f.store, &name).expect("restores"), dump(&f.db));
    // Grown again past the full backup's size: the pages cut off and
    // written anew are the new ones, not the full backup's.
    insert(&f.db, 200_000, 8_000);
    let (grown, last) = increment(&f, &next, 2);
    assert!(last.index.page_count() > state.index.page_count());
    assert_eq!(
        restore(&f, &f.store, &grown).expect("restores"),
        dump(&f.db)
    );
}

fn tracker(db: &Path) -> IncrementTracker {
    let mut options = SnapshotOptions::new(Method::DbPage);
    options.check = CheckLevel::None;
    IncrementTracker::new(db, options)
}

fn tracked(
    f: &Fixture,
    tracker: &mut IncrementTracker,
    state: &ChainState,
    seconds: i64,
    scrub: bool,
) -> Result<IncrementOutcome, EngineError> {
    create_tracked_increment(
        tracker,
        &f.store,
        &at(&f.options(), seconds),
        state,
        scrub,
        &CancelFlag::new(),
        &NoProgress,
    )
}

#[test]
fn tracked_increments_read_the_changed_pages_and_restore_every_point() {
    let f = Fixture::new(wal_db);
    insert(&f.db, 100_000, 20_000);
    let mut tracker = tracker(&f.db);
    let mut scans = Vec::new();
    let (points, state) = chain_made_by(&f, 9, |state, i| {
        // Every third link is a scrub: every page read, the log's names checked.
        match tracked(&f, &mut tracker, state, i, i % 3 == 0).expect("increment") {
            IncrementOutcome::Written(report, next) => {
                scans.push(tracker.last_scan().cloned().expect("a scan"));
                // As the daemon does: the next link's index is built in the
                // parent's memory, whatever it holds.
                tracker.recycle(state.clone());
                (report.name, next)
            }
            IncrementOutcome::Unchanged => panic!("link {i}: expected an increment"),
        }
    });
    let pages = state.index.page_count();
    // The first link reads every page (nothing was tracked before it);
    // the others, bar the scrubs, the pages the log named alone.
    assert!(scans[0].whole);
    for (i, scan) in scans.iter().enumerate().skip(1) {
        if (i + 1) % 3 == 0 {
            assert!(scan.whole && scan.pages_read * 2 > pages, "{scan:?}");
        } else {
            assert!(!scan.whole, "link {}: {:?}", i + 1, scan.unknown_because);
            // What the log names beyond the changed pages: pages written
            // again with the same bytes, a few at most.
            assert!(
                scan.pages_read < pages && scan.pages_read <= scan.pages_changed + 8,
                "link {}: {scan:?} of {pages}",
                i + 1
            );
        }
    }
    for (name, rows) in &points {
        assert_eq!(
            &restore(&f, &f.store, name).expect("restores"),
            rows,
            "{name}"
        );
    }
    // Nothing changed: nothing written, and the next link is still tracked.
    let before = f.store.list().expect("list");
    let outcome = tracked(&f, &mut tracker, &state, 100, false).expect("no error");
    assert!(
        matches!(outcome, IncrementOutcome::Unchanged),
        "{outcome:?}"
    );
    assert_eq!(f.store.list().expect("list"), before);
    assert_eq!(tracker.last_scan().expect("scan").pages_read, 0);
    // A shrinking database (VACUUM) is tracked too.
    let conn = Connection::open(&f.db).expect("open");
    conn.execute_batch("DELETE FROM t WHERE id >= 100000; VACUUM;")
        .expect("shrink");
    drop(conn);
    let IncrementOutcome::Written(report, next) =
        tracked(&f, &mut tracker, &state, 101, false).expect("increment")
    else {
        panic!("the database shrank");
    };
    assert!(next.index.page_count() < state.index.page_count());
    assert_eq!(
        restore(&f, &f.store, &report.name).expect("restores"),
        dump(&f.db)
    );
}

#[test]
fn tracked_increments_under_a_writer_pass_every_scrub() {
    let f = Fixture::new(wal_db);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (f.db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).expect("open");
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .expect("timeout");
            // Checkpoints, and so restarts of the log, all the time.
            conn.execute_batch("PRAGMA wal_autocheckpoint=30")
                .expect("pragma");
            let mut i: i64 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                conn.execute(
                    "INSERT OR REPLACE INTO t VALUES (?1 % 3000, printf('w %d %s', ?1, hex(randomblob(30))))",
                    [i],
                )
                .expect("write");
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        })
    };
    let (_, mut state) = full(&f);
    let mut tracker = tracker(&f.db);
    let mut names = Vec::new();
    for i in 1..=24 {
        std::thread::sleep(std::time::Duration::from_millis(30));
        match tracked(&f, &mut tracker, &state, i, i % 2 == 0) {
            Ok(IncrementOutcome::Written(report, next)) => {
                names.push(report.name);
                state = next;
            }
            Ok(IncrementOutcome::Unchanged) => {}
            Err(e) => panic!("link {i}: {e}"),
        }
        if i % 5 == 0 {
            tracker.settle().expect("settle");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    let IncrementOutcome::Written(last, _) =
        tracked(&f, &mut tracker, &state, 100, true).expect("last")
    else {
        panic!("the writer wrote");
    };
    assert!(names.len() >= 20, "{} links", names.len());
    assert_eq!(
        restore(&f, &f.store, &last.name).expect("restores"),
        dump(&f.db)
    );
}

/// A copy of the fixture's store in which `edit` changed some files.
fn edited_store(f: &Fixture, name: &str, edit: impl FnOnce(&Path)) -> LocalStore {
    let dir = f.dir.path().join(name);
    std::fs::create_dir(&dir).expect("dir");
    for entry in std::fs::read_dir(f.store.dir()).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
    }
    edit(&dir);
    LocalStore::new(dir)
}

#[test]
fn a_chain_that_does_not_verify_link_by_link_restores_nothing() {
    let f = Fixture::new(wal_db);
    let (points, _) = chain(&f, 4);
    let names: Vec<&str> = points.iter().map(|(n, _)| n.as_str()).collect();
    let last = names[4];

    // A link removed: the next one names a parent that is not there.
    let removed = edited_store(&f, "removed", |d| {
        std::fs::remove_file(d.join(names[2])).expect("rm")
    });
    let err = restore(&f, &removed, last)
        .expect_err("refused")
        .to_string();
    assert!(err.contains(names[3]) && err.contains("is not in"), "{err}");
    // Earlier points still restore.
    assert_eq!(
        restore(&f, &removed, names[1]).expect("restores"),
        points[1].1
    );

    // A link replayed under another name: its parent is there twice.
    let replayed = edited_store(&f, "replayed", |d| {
        let copy = names[2].replace(".sqlseal", "-copy.sqlseal");
        std::fs::copy(d.join(names[2]), d.join(copy)).expect("copy");
    });
    let err = restore(&f, &replayed, last)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("more than once"), "{err}");

    // A link swapped for one of another chain of the same database, under
    // its name: it applies to another parent.
    let other = Fixture {
        dir: tempfile::tempdir().expect("dir"),
        db: f.db.clone(),
        key: f.key.clone(),
        store: LocalStore::new(f.dir.path().join("other-chain")),
    };
    let (other_points, _) = chain(&other, 2);
    let swapped = edited_store(&f, "swapped", |d| {
        std::fs::copy(other.store.dir().join(&other_points[2].0), d.join(names[2])).expect("swap");
    });
    let err = restore(&f, &swapped, last)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("chain") && err.contains(names[3]), "{err}");

    // A link of another database's chain placed in this store.
    let g = Fixture::new(wal_db);
    let g = Fixture {
        key: f.key.clone(),
        ..g
    };
    let (g_points, _) = chain(&g, 1);
    let foreign = edited_store(&f, "foreign", |d| {
        std::fs::copy(g.store.dir().join(&g_points[1].0), d.join(names[2])).expect("swap");
    });
    let err = restore(&f, &foreign, last).expect_err("refused");
    assert_eq!(err.kind(), "integrity", "{err}");

    // Nothing was installed by any refused restore.
    let target = f.dir.path().join(format!("restored-{last}.db"));
    assert!(!target.exists());
}

#[test]
fn a_damaged_or_foreign_chain_state_means_a_full_backup() {
    let f = Fixture::new(wal_db);
    let (_, state) = chain(&f, 1);
    let path = f.dir.path().join("app.db.chain");
    state.save(&path).expect("save");
    assert_eq!(ChainState::load(&path).expect("load"), Some(state.clone()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let err = ChainState::load(&path).expect_err("damaged");
    assert_eq!(err.kind(), "chain_state", "{err}");
    assert!(
        ChainState::load(&f.dir.path().join("none"))
            .expect("ok")
            .is_none()
    );

    let other = ChainState {
        database: "other.db".into(),
        ..state
    };
    let err = create_increment(
        &source(&f.db),
        &f.store,
        &at(&f.options(), 10),
        &other,
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("another database's chain");
    assert!(err.to_string().contains("other.db"), "{err}");
}
