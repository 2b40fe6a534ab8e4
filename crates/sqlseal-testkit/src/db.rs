//! SQLite databases for tests.

use std::path::Path;

use rusqlite::Connection;

/// Appends `n` rows to table `t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)` of
/// the WAL database at `db` (both made if missing): `v` is `'row I'` and
/// `b` holds `blob` random bytes, so that `blob` sets how well it
/// compresses.
pub fn add_rows(db: &Path, n: i64, blob: i64) {
    let conn = Connection::open(db).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);",
    )
    .expect("schema");
    insert_rows(&conn, n, blob);
}

/// [`add_rows`] on an open connection whose database has the table.
pub fn insert_rows(conn: &Connection, n: i64, blob: i64) {
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1)
         INSERT INTO t(v, b) SELECT 'row ' || i, randomblob(?2) FROM c",
        [n, blob],
    )
    .expect("rows");
}

/// The number of rows in table `t`.
pub fn rows(db: &Path) -> i64 {
    Connection::open(db)
        .expect("open")
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count")
}

/// A database of about `mib` MiB that barely compresses: `rows` rows of
/// 1000 random bytes each, plus `tag` in a one-row table so that tests can
/// tell databases apart.
pub fn make_random_db(path: &Path, mib: u64, tag: &str) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);
         CREATE TABLE IF NOT EXISTS tag(v TEXT);
         DELETE FROM tag;",
    )
    .expect("schema");
    conn.execute("INSERT INTO tag(v) VALUES (?1)", [tag])
        .expect("tag");
    let rows = i64::try_from(mib * 1024).expect("row count");
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1)
         INSERT INTO t(v, b) SELECT 'row ' || i, randomblob(1000) FROM c",
        [rows],
    )
    .expect("rows");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
}

/// The tag [`make_random_db`] stored, and the row count.
pub fn db_tag_and_rows(path: &Path) -> (String, i64) {
    let conn = Connection::open(path).expect("open");
    let tag = conn
        .query_row("SELECT v FROM tag", [], |r| r.get(0))
        .expect("tag");
    let rows = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    (tag, rows)
}

/// A WAL database at `db` with a table `t(id, name, n)` of `rows` rows and
/// an index `t_name` on it, checkpointed and closed: what
/// [`damage_index`] breaks.
pub fn indexed_db(db: &Path, rows: u32) {
    let conn = Connection::open(db).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INTEGER);
         CREATE INDEX t_name ON t(name);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})
         INSERT INTO t(name, n) SELECT 'row ' || i, i * 7 FROM c;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .expect("fill");
}

/// Writes garbage over the cell area of the root page of index `t_name`
/// with plain file I/O, after every connection is closed: the table stays
/// readable, the index is damaged.
pub fn damage_index(db: &Path) {
    let (root, page_size): (i64, i64) = {
        let conn = Connection::open(db).expect("open");
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't_name'",
                [],
                |r| r.get(0),
            )
            .expect("index root");
        let page_size = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        (root, page_size)
    };
    let mut bytes = std::fs::read(db).expect("read db");
    let start = usize::try_from((root - 1) * page_size).expect("page offset");
    let len = usize::try_from(page_size).expect("page size");
    let page = &mut bytes[start..start + len];
    let half = page.len() / 2;
    for (i, b) in page[half..].iter_mut().enumerate() {
        // Truncation is the point: a repeating garbage pattern.
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(db, bytes).expect("write db");
}
