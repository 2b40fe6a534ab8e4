//! A demo database and a writer that keeps committing to it, for
//! `sqlseal demo`, the benchmarks and tests: realistic rows (text,
//! integers, an index) and a counter updated in the same transaction as
//! every insert, so a snapshot can be checked for consistency.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::SourceError;

fn sql(path: &Path, what: &'static str) -> impl FnOnce(rusqlite::Error) -> SourceError {
    let path = path.to_path_buf();
    move |source| SourceError::Sqlite { path, what, source }
}

/// Creates (or extends) a WAL-mode database of about `target_bytes` with
/// an `orders` table, an index, and a `counter` row equal to the number of
/// orders.
pub fn create_demo_database(path: &Path, target_bytes: u64) -> Result<(), SourceError> {
    let conn = Connection::open(path).map_err(sql(path, "creating the demo database"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS orders(
             id INTEGER PRIMARY KEY,
             customer TEXT NOT NULL,
             email TEXT NOT NULL,
             amount_cents INTEGER NOT NULL,
             status TEXT NOT NULL,
             note TEXT,
             created_at INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS orders_customer ON orders(customer);
         CREATE TABLE IF NOT EXISTS counter(n INTEGER NOT NULL);
         INSERT INTO counter SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM counter);",
    )
    .map_err(sql(path, "creating the demo schema"))?;
    let mut n: i64 = conn
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .map_err(sql(path, "reading the demo counter"))?;
    loop {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(format!("{}-wal", path.display()))
                .map(|m| m.len())
                .unwrap_or(0);
        if size >= target_bytes {
            break;
        }
        let tx = conn
            .unchecked_transaction()
            .map_err(sql(path, "filling the demo database"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO orders(customer, email, amount_cents, status, note, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql(path, "filling the demo database"))?;
            for _ in 0..5000 {
                n += 1;
                insert
                    .execute(demo_row(n))
                    .map_err(sql(path, "filling the demo database"))?;
            }
        }
        tx.execute("UPDATE counter SET n = ?1", [n])
            .map_err(sql(path, "filling the demo database"))?;
        tx.commit()
            .map_err(sql(path, "filling the demo database"))?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(sql(path, "checkpointing the demo database"))?;
    Ok(())
}

const NAMES: [&str; 8] = [
    "Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances",
];
const STATUSES: [&str; 4] = ["new", "paid", "shipped", "returned"];

fn demo_row(n: i64) -> (String, String, i64, &'static str, String, i64) {
    let name = NAMES[(n % 8) as usize];
    let customer = format!("{name} {}", n % 9973);
    let email = format!("{}.{}@example.com", name.to_lowercase(), n % 9973);
    let amount = (n * 7919) % 100_000;
    let status = STATUSES[(n % 4) as usize];
    let note = format!(
        "order {n} for {customer}: {} items, deliver to warehouse {}",
        n % 17 + 1,
        n % 31
    );
    (
        customer,
        email,
        amount,
        status,
        note,
        1_700_000_000 + n * 37,
    )
}

/// Rows in `orders` and the counter, which a consistent image has equal.
pub fn demo_counts(path: &Path) -> Result<(i64, i64), SourceError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql(path, "opening"))?;
    let rows = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .map_err(sql(path, "counting orders"))?;
    let counter = conn
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .map_err(sql(path, "reading the counter"))?;
    Ok((rows, counter))
}

/// Statistics of a [`DemoWriter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// The longest single commit, in microseconds.
    pub longest_commit_us: u64,
}

/// A thread that commits one order at a time to a demo database at a
/// target rate, until stopped.
pub struct DemoWriter {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    longest_us: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<(), SourceError>>>,
}

impl DemoWriter {
    /// Starts committing `per_second` transactions a second to `path`.
    pub fn start(path: &Path, per_second: u32) -> Result<Self, SourceError> {
        let path: PathBuf = path.to_path_buf();
        let conn = Connection::open(&path).map_err(sql(&path, "opening for the demo writer"))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(sql(&path, "setting the busy timeout"))?;
        // What a typical WAL service runs with: durable at checkpoints, fast commits.
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(sql(&path, "setting synchronous"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let longest_us = Arc::new(AtomicU64::new(0));
        let (s, c, l) = (stop.clone(), commits.clone(), longest_us.clone());
        let interval = Duration::from_secs(1) / per_second.max(1);
        let thread = std::thread::Builder::new()
            .name("sqlseal-demo-writer".into())
            .spawn(move || -> Result<(), SourceError> {
                let mut next = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let tx = conn
                        .unchecked_transaction()
                        .map_err(sql(&path, "demo writer"))?;
                    let n: i64 = tx
                        .query_row("UPDATE counter SET n = n + 1 RETURNING n", [], |r| r.get(0))
                        .map_err(sql(&path, "demo writer"))?;
                    let row = demo_row(n);
                    tx.execute(
                        "INSERT INTO orders(customer, email, amount_cents, status, note, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![row.0, row.1, row.2, row.3, row.4, row.5],
                    )
                    .map_err(sql(&path, "demo writer"))?;
                    tx.commit().map_err(sql(&path, "demo writer"))?;
                    let took = started.elapsed().as_micros() as u64;
                    l.fetch_max(took, Ordering::Relaxed);
                    c.fetch_add(1, Ordering::Relaxed);
                    next += interval;
                    match next.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::sleep(wait),
                        None => next = Instant::now(),
                    }
                }
                Ok(())
            })
            .map_err(|e| SourceError::Io {
                what: "starting the demo writer for",
                path: PathBuf::new(),
                source: e,
            })?;
        Ok(DemoWriter {
            stop,
            commits,
            longest_us,
            thread: Some(thread),
        })
    }

    /// Commits and longest commit so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.commits.load(Ordering::Relaxed),
            longest_commit_us: self.longest_us.load(Ordering::Relaxed),
        }
    }

    /// Resets the longest-commit statistic (e.g. when a backup starts).
    pub fn reset_longest(&self) {
        self.longest_us.store(0, Ordering::Relaxed);
    }

    /// Stops the writer and reports what it did, or its error.
    pub fn stop(mut self) -> Result<WriterStats, SourceError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(result) => result?,
                Err(_) => {
                    return Err(SourceError::Inconsistent {
                        path: PathBuf::new(),
                        reason: "the demo writer thread panicked".into(),
                    });
                }
            }
        }
        Ok(self.stats())
    }
}

impl Drop for DemoWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_database_is_consistent_while_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("demo.db");
        create_demo_database(&db, 2 << 20).expect("create");
        let (rows, counter) = demo_counts(&db).expect("counts");
        assert_eq!(rows, counter);
        assert!(std::fs::metadata(&db).expect("meta").len() >= 2 << 20);
        let writer = DemoWriter::start(&db, 500).expect("writer");
        std::thread::sleep(Duration::from_millis(200));
        let stats = writer.stop().expect("stop");
        // However slow the disk, the writer committed at least once.
        assert!(stats.commits > 0, "{stats:?}");
        let (rows2, counter2) = demo_counts(&db).expect("counts");
        assert_eq!(rows2, counter2);
        assert_eq!(rows2 as u64, rows as u64 + stats.commits);
    }
}
