//! The change tracker never misses a changed page: under a writer that
//! commits all the time and checkpoints often (so that the log restarts),
//! every page that differs between two snapshots is among the pages the
//! tracker names; it names them most of the time; and it never pins a
//! database that is not in WAL mode.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use sqlseal_source::{ChangeTracker, Method, SnapshotOptions};

fn image(tracker: &ChangeTracker) -> Vec<u8> {
    let mut image = Vec::new();
    tracker
        .read_all(1 << 16, |block| {
            image.extend_from_slice(&block);
            true
        })
        .expect("read the snapshot");
    image
}

/// The pages of `new` (of `page_size` bytes) that differ from `old`'s.
fn changed(old: &[u8], new: &[u8], page_size: usize) -> Vec<u32> {
    new.chunks(page_size)
        .enumerate()
        .filter(|(i, page)| old.get(i * page_size..(i + 1) * page_size) != Some(*page))
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

fn make_db(path: &Path, journal: &str) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode={journal};
         CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);
         CREATE INDEX t_k ON t(k);"
    ))
    .expect("schema");
    for i in 0..2000 {
        conn.execute(
            "INSERT INTO t(k, v) VALUES (?1, randomblob(200))",
            [i * 7919 % 2000],
        )
        .expect("insert");
    }
    conn
}

fn tracker(db: &Path) -> ChangeTracker {
    let mut options = SnapshotOptions::new(Method::DbPage);
    options.busy_timeout = Duration::from_secs(5);
    ChangeTracker::new(db, options)
}

#[test]
fn one_update_names_few_pages_and_nothing_after_no_commit() {
    let dir = tempfile::tempdir().expect("ok");
    let db = dir.path().join("app.db");
    let conn = make_db(&db, "wal");
    let mut tracker = tracker(&db);

    let first = tracker.begin().expect("begin");
    assert_eq!(first.pages, None, "nothing to count from yet");
    assert!(first.unknown_because.is_some());
    let before = image(&tracker);
    tracker.commit();
    assert!(tracker.is_pinned());

    let same = tracker.begin().expect("begin");
    assert_eq!(same.pages, Some(vec![]), "{:?}", same.unknown_because);
    tracker.commit();

    conn.execute("UPDATE t SET v = randomblob(200) WHERE id = 1000", [])
        .expect("ok");
    let next = tracker.begin().expect("begin");
    let pages = next.pages.clone().expect("known");
    let after = image(&tracker);
    let page_size = next.info.page_size as usize;
    let differ = changed(&before, &after, page_size);
    assert!(!differ.is_empty());
    for page in &differ {
        assert!(
            pages.contains(page),
            "page {page} changed but was not named: {pages:?}"
        );
    }
    assert!(pages.len() <= 4, "one row's update names {pages:?}");
    // read_page gives the snapshot's bytes.
    let p = pages[0];
    let at = (p as usize - 1) * page_size;
    assert_eq!(tracker.read_page(p).expect("ok"), after[at..at + page_size]);
    tracker.commit();
}

#[test]
fn a_busy_writer_with_restarts_never_hides_a_change() {
    let dir = tempfile::tempdir().expect("ok");
    let db = dir.path().join("app.db");
    drop(make_db(&db, "wal"));
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, commits) = (db.clone(), stop.clone(), commits.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).expect("ok");
            conn.busy_timeout(Duration::from_secs(5)).expect("ok");
            // Checkpoint (and so restart the log) very often.
            conn.execute_batch("PRAGMA wal_autocheckpoint=20")
                .expect("ok");
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let sql = match i % 5 {
                    0 => "DELETE FROM t WHERE id = (SELECT min(id) FROM t)",
                    1 | 2 => "INSERT INTO t(k, v) VALUES (?1 % 2000, randomblob(300))",
                    _ => {
                        "UPDATE t SET v = randomblob(250), k = ?1 % 1999 WHERE id = (?1 * 31) % 2000 + 1"
                    }
                };
                let params: &[&dyn rusqlite::ToSql] = if i % 5 == 0 { &[] } else { &[&i] };
                conn.execute(sql, params).expect("ok");
                if i % 97 == 0 {
                    // An application's own truncating checkpoint: it must
                    // not slip a restart past the tracker.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                }
                commits.fetch_add(1, Ordering::Relaxed);
                // A few thousand commits a second, not a lock held always.
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut tracker = tracker(&db);
    let first = tracker.begin().expect("begin");
    let mut previous = image(&tracker);
    let mut page_size = first.info.page_size as usize;
    tracker.commit();
    let (mut known, mut settled) = (0, 0);
    for round in 0..80 {
        let seen = commits.load(Ordering::Relaxed);
        assert!(
            sqlseal_testkit::wait_until(Duration::from_secs(10), || commits
                .load(Ordering::Relaxed)
                > seen + 5),
            "the writer goes on"
        );
        let changes = tracker.begin().expect("begin");
        let now = image(&tracker);
        page_size = changes.info.page_size as usize;
        assert_eq!(now.len() as u64, changes.info.image_len());
        if let Some(pages) = &changes.pages {
            known += 1;
            for page in changed(&previous, &now, page_size) {
                assert!(
                    pages.binary_search(&page).is_ok(),
                    "round {round}: page {page} changed but was not named"
                );
            }
        }
        previous = now;
        tracker.commit();
        if round % 3 == 0 && tracker.settle().expect("settle") {
            settled += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("ok");
    assert!(page_size >= 512);
    assert!(
        known >= 60,
        "the changes were known in {known} of 80 rounds"
    );
    assert!(settled >= 1, "settling never copied the whole log");
}

#[test]
fn the_log_stays_small_when_settled() {
    let dir = tempfile::tempdir().expect("ok");
    let db = dir.path().join("app.db");
    let conn = make_db(&db, "wal");
    let mut tracker = tracker(&db);
    tracker.begin().expect("begin");
    tracker.commit();
    let wal = dir.path().join("app.db-wal");
    let frame = 24 + 4096u64;
    for _ in 0..12 {
        for i in 0..400 {
            conn.execute(
                "UPDATE t SET v = randomblob(200) WHERE id = ?1",
                [(i * 13) % 2000 + 1],
            )
            .expect("ok");
        }
        let changes = tracker.begin().expect("begin");
        assert!(changes.pages.is_some(), "{:?}", changes.unknown_because);
        tracker.commit();
        tracker.settle().expect("settle");
    }
    // Without settling, the pin would have kept the log from restarting:
    // 4,800 commits of one to three pages each.
    let len = std::fs::metadata(&wal).expect("ok").len();
    assert!(
        len < 3 * u64::from(sqlseal_source::SETTLE_FRAMES) * frame,
        "the log grew to {len} bytes"
    );
}

#[test]
fn a_rollback_journal_database_is_never_pinned() {
    let dir = tempfile::tempdir().expect("ok");
    let db = dir.path().join("app.db");
    let conn = make_db(&db, "delete");
    let mut tracker = tracker(&db);
    for _ in 0..2 {
        let changes = tracker.begin().expect("begin");
        assert_eq!(changes.pages, None);
        assert_eq!(
            changes.unknown_because,
            Some("the database is not in WAL mode")
        );
        tracker.commit();
        assert!(!tracker.is_pinned());
        // A writer that does not wait commits at once.
        conn.busy_timeout(Duration::ZERO).expect("ok");
        conn.execute("UPDATE t SET k = k + 1 WHERE id = 5", [])
            .expect("nothing blocks the writer");
    }
}

/// A writer that died after writing a transaction's frames but before
/// SQLite indexed them leaves frames that look committed and that no
/// reader sees: the tracker must not count from past them.
#[test]
fn frames_sqlite_has_not_indexed_make_the_changes_unknown() {
    use sqlseal_source::wal::{read_commits, read_wal_header, wal_checksum};
    use std::io::Write;
    let dir = tempfile::tempdir().expect("ok");
    let db = dir.path().join("app.db");
    let conn = make_db(&db, "wal");
    let mut tracker = tracker(&db);
    tracker.begin().expect("begin");
    tracker.commit();
    conn.execute("UPDATE t SET k = k + 1 WHERE id = 7", [])
        .expect("ok");
    // Append a frame that continues the checksum chain and commits.
    let wal_path = dir.path().join("app.db-wal");
    let mut file = std::fs::File::open(&wal_path).expect("ok");
    let header = read_wal_header(&mut file).expect("ok").expect("a header");
    let mut pages = std::collections::BTreeSet::new();
    let end = read_commits(&mut file, header.start(), &mut pages).expect("ok");
    let page_count = end.page_count.expect("a commit");
    let mut head = Vec::new();
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(&page_count.to_be_bytes());
    let page = vec![0x42u8; header.page_size as usize];
    let sum = wal_checksum(header.big_endian, &head, end.position.checksum);
    let sum = wal_checksum(header.big_endian, &page, sum);
    head.extend_from_slice(&header.salts);
    head.extend_from_slice(&sum[0].to_be_bytes());
    head.extend_from_slice(&sum[1].to_be_bytes());
    let offset = 32 + u64::from(end.position.frame) * (24 + u64::from(header.page_size));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal_path)
        .expect("ok");
    std::io::Seek::seek(&mut out, std::io::SeekFrom::Start(offset)).expect("ok");
    out.write_all(&head).expect("ok");
    out.write_all(&page).expect("ok");
    drop(out);

    let changes = tracker.begin().expect("begin");
    assert_eq!(changes.pages, None);
    assert_eq!(
        changes.unknown_because,
        Some("the log does not end where SQLite's index of it does")
    );
    tracker.commit();
    assert!(!tracker.is_pinned(), "nothing to count from");
}

/// The writer of the cross-process test: this test binary, running only
/// this test.
#[test]
#[ignore = "run as a child process by a_writer_in_another_process_cannot_restart_the_log_under_the_pin"]
fn writer_process() {
    sqlseal_testkit::writer::writer_process_main();
}

/// SQLite's locks between processes are POSIX locks, which a process loses
/// when it closes any descriptor of the file: the pin holds against a
/// writer in another process (which restarts the log after every 1,000
/// frames when it can) only if the tracker never closes one.
#[test]
fn a_writer_in_another_process_cannot_restart_the_log_under_the_pin() {
    use sqlseal_testkit::writer::{start_writer_process, stop_writer_process};
    let dir = tempfile::tempdir().expect("ok");
    let db = dir.path().join("busy.db");
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB);
         CREATE TABLE counter(n INTEGER); INSERT INTO counter VALUES (0);",
    )
    .expect("schema");
    let writer = start_writer_process("writer_process", &db);
    let counter = || -> i64 {
        conn.query_row("SELECT n FROM counter", [], |r| r.get(0))
            .expect("count")
    };
    assert!(sqlseal_testkit::wait_until(
        Duration::from_secs(30),
        || counter() > 100
    ));
    let mut tracker = tracker(&db);
    tracker.begin().expect("begin");
    let mut previous = image(&tracker);
    tracker.commit();
    let mut unknown = Vec::new();
    for round in 0..30 {
        let seen = counter();
        assert!(sqlseal_testkit::wait_until(
            Duration::from_secs(10),
            || counter() > seen + 200
        ));
        let changes = tracker.begin().expect("begin");
        let now = image(&tracker);
        match &changes.pages {
            Some(pages) => {
                for page in changed(&previous, &now, changes.info.page_size as usize) {
                    assert!(
                        pages.binary_search(&page).is_ok(),
                        "round {round}: page {page} changed but was not named"
                    );
                }
            }
            None => unknown.push(changes.unknown_because),
        }
        previous = now;
        tracker.commit();
        tracker.settle().expect("settle");
    }
    stop_writer_process(&db, writer);
    assert!(
        unknown.len() <= 3,
        "the changes were unknown in {} of 30 rounds: {unknown:?}",
        unknown.len()
    );
}
