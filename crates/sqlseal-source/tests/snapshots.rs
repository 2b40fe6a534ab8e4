//! Every snapshot method gives an image that passes integrity_check and holds
//! exactly the rows committed at one instant, for the database shapes people
//! have, including one that another process writes to all the time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use sqlseal_source::{
    CheckLevel, Method, SnapshotOptions, SnapshotSource, SourceError, SqliteSource, check_integrity,
};
use sqlseal_testkit::wait_until;
use sqlseal_testkit::writer::{start_writer_process, stop_writer_process, writer_process_main};

fn take_image(
    db: &Path,
    method: Method,
    temp: &Path,
) -> Result<(Vec<u8>, sqlseal_source::SnapshotInfo), SourceError> {
    let mut options = SnapshotOptions::new(method);
    options.temp_dir = Some(temp.to_path_buf());
    options.block_size = 64 * 1024;
    let mut snapshot = SqliteSource::new(db, options).snapshot()?;
    let info = snapshot.info().clone();
    let mut image = Vec::new();
    while let Some(block) = snapshot.next_block() {
        let block = block?;
        assert_eq!(
            block.len() % info.page_size as usize,
            0,
            "blocks hold whole pages"
        );
        image.extend_from_slice(&block);
    }
    assert_eq!(image.len() as u64, info.image_len());
    // The default check ran on this very image and passed.
    let checked = snapshot
        .check_result(Duration::from_secs(120))
        .expect("the check ends")?;
    assert_eq!(checked, CheckLevel::Full, "{method}");
    Ok((image, info))
}

fn restore_image(image: &[u8], dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, image).expect("write image");
    check_integrity(&path).expect("image passes integrity_check");
    path
}

fn count(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open(path).expect("open restored");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

fn no_temp_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("read temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn every_method_journal_mode_and_page_size() {
    for method in Method::ALL {
        for wal in [false, true] {
            for page_size in [512u32, 4096, 65536] {
                let dir = tempfile::tempdir().expect("tempdir");
                let temp = tempfile::tempdir().expect("tempdir");
                let db = dir.path().join("app.db");
                let conn = Connection::open(&db).expect("open");
                conn.execute_batch(&format!("PRAGMA page_size = {page_size};"))
                    .expect("page size");
                if wal {
                    conn.execute_batch("PRAGMA journal_mode = WAL;")
                        .expect("wal");
                }
                conn.execute_batch(
                    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INTEGER);
                     CREATE INDEX t_name ON t(name);
                     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
                     INSERT INTO t(name, n) SELECT 'row ' || i, i * 7 FROM c;",
                )
                .expect("fill");
                // Under WAL the rows are still in the -wal file: the snapshot must include them.
                let (image, info) = take_image(&db, method, temp.path()).expect("snapshot");
                if method != Method::Vacuum {
                    assert_eq!(info.page_size, page_size, "{method} wal={wal}");
                }
                assert_eq!(info.method, method);
                let out = tempfile::tempdir().expect("tempdir");
                let restored = restore_image(&image, out.path(), "restored.db");
                assert_eq!(
                    count(&restored, "SELECT count(*) FROM t"),
                    3000,
                    "{method} wal={wal} ps={page_size}"
                );
                assert_eq!(
                    count(&restored, "SELECT sum(n) FROM t"),
                    7 * 3000 * 3001 / 2
                );
                no_temp_left(temp.path());
                drop(conn);
            }
        }
    }
}

#[test]
fn empty_database_files() {
    for method in Method::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        // A zero-byte file is a valid, empty SQLite database.
        let db = dir.path().join("empty.db");
        std::fs::write(&db, b"").expect("create");
        let (image, info) = take_image(&db, method, dir.path()).expect("snapshot of empty db");
        assert_eq!(
            info.page_count as usize * info.page_size as usize,
            image.len()
        );
        let restored = restore_image(&image, dir.path(), "restored.db");
        assert_eq!(count(&restored, "SELECT count(*) FROM sqlite_master"), 0);
    }
}

#[test]
fn fts5_and_large_blobs() {
    for method in Method::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("docs.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE VIRTUAL TABLE docs USING fts5(title, body);
             INSERT INTO docs VALUES ('sealed backups', 'consistent compressed encrypted'), ('other', 'words');
             CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB);
             INSERT INTO blobs(b) VALUES (randomblob(3 * 1024 * 1024)), (zeroblob(5 * 1024 * 1024));",
        )
        .expect("fill");
        let (image, _) = take_image(&db, method, dir.path()).expect("snapshot");
        let restored = restore_image(&image, dir.path(), "restored.db");
        assert_eq!(
            count(
                &restored,
                "SELECT count(*) FROM docs WHERE docs MATCH 'encrypted'"
            ),
            1
        );
        assert_eq!(
            count(&restored, "SELECT sum(length(b)) FROM blobs"),
            8 * 1024 * 1024
        );
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for method in Method::ALL {
        let missing = dir.path().join("missing.db");
        let e = take_image(&missing, method, dir.path()).expect_err("missing db");
        assert!(matches!(e, SourceError::NotFound(_)), "{e}");
        assert!(!missing.exists(), "a missing database must not be created");

        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "this is not a database, just some text that is long enough ".repeat(20),
        )
        .expect("write");
        let e = take_image(&text, method, dir.path()).expect_err("not sqlite");
        assert!(matches!(e, SourceError::NotADatabase(_)), "{method}: {e}");
        assert!(e.to_string().contains("not an SQLite database"), "{e}");
    }
}

#[test]
fn dropping_a_snapshot_cancels_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let temp = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("big.db");
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch("CREATE TABLE b(x); INSERT INTO b SELECT randomblob(1024 * 1024) FROM generate_series(1, 8);")
        .or_else(|_| {
            conn.execute_batch(
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 8)
                 INSERT INTO b SELECT randomblob(1024 * 1024) FROM c;",
            )
        })
        .expect("fill");
    for method in Method::ALL {
        let mut options = SnapshotOptions::new(method);
        options.temp_dir = Some(temp.path().to_path_buf());
        options.block_size = 64 * 1024;
        let mut snapshot = SqliteSource::new(&db, options)
            .snapshot()
            .expect("snapshot");
        let first = snapshot.next_block().expect("a block").expect("ok");
        assert!(!first.is_empty());
        drop(snapshot);
        no_temp_left(temp.path());
    }
}

/// The writer process that `concurrent_writer_process` starts: this test
/// binary, running only this test.
#[test]
#[ignore = "run as a child process by concurrent_writer_process"]
fn writer_process() {
    writer_process_main();
}

#[test]
fn concurrent_writer_process() {
    for wal in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("busy.db");
        let conn = Connection::open(&db).expect("open");
        if wal {
            conn.execute_batch("PRAGMA journal_mode = WAL;")
                .expect("wal");
        }
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB);
             CREATE TABLE counter(n INTEGER); INSERT INTO counter VALUES (0);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
             INSERT INTO t(payload) SELECT randomblob(500) FROM c;
             UPDATE counter SET n = 20000;",
        )
        .expect("fill");
        drop(conn);
        let writer = start_writer_process("writer_process", &db);
        // The writer has committed: the snapshots below start under it.
        let committed = || {
            let conn = Connection::open(&db).expect("open");
            conn.busy_timeout(Duration::from_secs(30)).expect("busy");
            conn.query_row("SELECT n FROM counter", [], |r| r.get::<_, i64>(0))
                .expect("counter")
        };
        assert!(
            wait_until(Duration::from_secs(60), || committed() > 20000),
            "wal={wal}: the writer process did not commit"
        );
        for method in Method::ALL {
            let (image, _) = take_image(&db, method, dir.path()).expect("snapshot under a writer");
            let restored = restore_image(&image, dir.path(), &format!("restored-{method}.db"));
            let rows = count(&restored, "SELECT count(*) FROM t");
            let counter = count(&restored, "SELECT n FROM counter");
            assert_eq!(
                rows, counter,
                "{method} wal={wal}: rows and counter from one instant"
            );
            assert!(
                rows > 20000,
                "{method} wal={wal}: the writer's commits before the snapshot are in it"
            );
        }
        stop_writer_process(&db, writer);
        let conn = Connection::open(&db).expect("open");
        let committed: i64 = conn
            .query_row("SELECT n FROM counter", [], |r| r.get(0))
            .expect("counter");
        assert!(
            committed > 20100,
            "wal={wal}: the writer kept committing during the snapshots ({committed})"
        );
    }
}
