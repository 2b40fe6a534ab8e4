//! Whether a database changed, from SQLite's own change counters, without
//! opening it: the file change counter in the database header (bumped by
//! every commit in rollback-journal mode, and by checkpoints), and, in WAL
//! mode, the WAL-index header in the `-shm` file, whose change counter and
//! last valid frame move with every commit.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The counters of a database at one moment. Two equal markers mean no
/// transaction committed in between (a marker that cannot be read is
/// `None`, and never counts as unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeMarker {
    /// Header bytes 24..28 (file change counter) and 92..96 (version-valid-for).
    header: [u8; 8],
    /// The database file's size.
    db_len: u64,
    /// The database file's modification time: in WAL mode the change
    /// counter need not move, and a checkpoint that copies a commit into
    /// the file and removes the WAL would otherwise leave no trace.
    db_modified: Option<std::time::SystemTime>,
    /// The first 48 bytes of `-shm` (one copy of the WAL-index header:
    /// change counter, last valid frame, page count, salts, checksums),
    /// or none when it or the WAL does not exist (or the WAL is empty).
    wal_index: Option<[u8; 48]>,
    /// The `-wal` file's size, or none when it is missing or empty.
    wal_len: Option<u64>,
}

fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn read_prefix<const N: usize>(path: &Path) -> std::io::Result<Option<[u8; N]>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; N];
    file.read_exact(&mut buf)?;
    Ok(Some(buf))
}

fn len_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Reads the change counters of the database at `path`; `None` when they
/// cannot be read (missing file, a header shorter than SQLite's).
pub fn change_marker(path: &Path) -> Option<ChangeMarker> {
    let head: [u8; 100] = read_prefix(path).ok()??;
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&head[24..28]);
    header[4..].copy_from_slice(&head[92..96]);
    let wal_index = match read_prefix::<48>(&sidecar(path, "-shm")) {
        Ok(v) => v,
        // A -shm shorter than its header: being created; not comparable.
        Err(_) => return None,
    };
    let wal_len = len_of(&sidecar(path, "-wal")).filter(|&n| n > 0);
    let meta = std::fs::metadata(path).ok()?;
    Some(ChangeMarker {
        header,
        db_len: meta.len(),
        db_modified: meta.modified().ok(),
        // An empty or missing WAL holds no commits: whatever -shm says
        // then (a reader that just opened the database creates both) is
        // no change. The database header covers what was checkpointed.
        wal_index: wal_index.filter(|_| wal_len.is_some()),
        wal_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn every_commit_moves_the_marker_and_reads_do_not() {
        for mode in ["WAL", "DELETE"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = dir.path().join("app.db");
            let conn = Connection::open(&db).expect("open");
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = {mode}; CREATE TABLE t(x); INSERT INTO t VALUES (1);"
            ))
            .expect("schema");
            let before = change_marker(&db).expect("marker");
            let _: i64 = conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .expect("read");
            assert_eq!(change_marker(&db), Some(before.clone()), "{mode}: a read");
            let mut last = before;
            for i in 0..20 {
                conn.execute("UPDATE t SET x = ?1", [i]).expect("commit");
                let now = change_marker(&db).expect("marker");
                assert_ne!(now, last, "{mode}: commit {i} must move the marker");
                last = now;
            }
            // A checkpoint and a close change nothing that was committed,
            // but the marker may move; it must never stand still on a change.
            drop(conn);
            let closed = change_marker(&db).expect("marker");
            let conn = Connection::open(&db).expect("reopen");
            conn.execute("INSERT INTO t VALUES (99)", [])
                .expect("commit");
            assert_ne!(
                change_marker(&db).expect("marker"),
                closed,
                "{mode}: after reopen"
            );
        }
        assert_eq!(change_marker(Path::new("/nonexistent/app.db")), None);
    }

    #[test]
    fn a_commit_checkpointed_before_the_next_look_moves_the_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
        )
        .expect("schema");
        drop(conn);
        let closed = change_marker(&db).expect("marker");
        // One small commit (no new page, page 1 untouched), then the last
        // close checkpoints it into the file and removes the WAL.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let conn = Connection::open(&db).expect("reopen");
        conn.execute("UPDATE t SET x = 2", []).expect("commit");
        drop(conn);
        assert!(!dir.path().join("app.db-wal").exists(), "the WAL is gone");
        assert_ne!(change_marker(&db), Some(closed));
    }

    #[test]
    fn a_reader_that_creates_the_wal_files_is_no_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
        )
        .expect("schema");
        drop(conn); // the last close checkpoints and removes -wal and -shm
        let closed = change_marker(&db).expect("marker");
        let reader = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("reader");
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("read");
        assert_eq!(change_marker(&db), Some(closed));
    }
}
