//! Writers that keep committing to a database while a test takes a
//! snapshot or runs a backup: a thread of the test ([`Writer`]) or another
//! process ([`start_writer_process`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::process::wait_until;

/// A thread that runs one SQL batch on a database again and again until
/// stopped, counting its commits.
pub struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts running `sql` on `db`, pausing `pause` after each run, with
    /// a 30-second busy timeout.
    pub fn start(db: &Path, sql: &'static str, pause: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let thread = {
            let (db, stop, commits) = (db.to_path_buf(), stop.clone(), commits.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&db).expect("writer open");
                conn.busy_timeout(Duration::from_secs(30)).expect("busy");
                while !stop.load(Ordering::Relaxed) {
                    conn.execute_batch(sql).expect("commit");
                    commits.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pause);
                }
            })
        };
        Writer {
            stop,
            commits,
            thread: Some(thread),
        }
    }

    /// How many times the writer has committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Waits (at most a minute) until the writer has committed `n` times.
    pub fn wait_for_commits(&self, n: u64) {
        assert!(
            wait_until(Duration::from_secs(60), || self.commits() >= n),
            "the writer did not commit {n} times within a minute"
        );
    }

    /// Stops the writer and returns how many times it committed.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("writer");
        }
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Set by [`start_writer_process`]: the test binary then acts as the
/// writer process, on the database it names.
pub const WRITER_ENV: &str = "SQLSEAL_TEST_WRITER_DB";

/// The body of the (ignored) test that [`start_writer_process`] runs in a
/// child process: commits as fast as it can (about a thousand times a
/// second, paced) until the file `DB.stop` appears. Each commit adds a row
/// to `t(payload)` and bumps `counter(n)` in the same transaction. Returns
/// at once when [`WRITER_ENV`] is not set.
pub fn writer_process_main() {
    let Ok(db) = std::env::var(WRITER_ENV) else {
        return;
    };
    let stop = PathBuf::from(format!("{db}.stop"));
    let conn = Connection::open(&db).expect("writer open");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    let mut next = Instant::now();
    while !stop.exists() {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             INSERT INTO t(payload) VALUES (randomblob(200));
             UPDATE counter SET n = n + 1;
             COMMIT;",
        )
        .expect("writer commit");
        next += Duration::from_micros(1000);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Runs the test `test` of the current test binary (whose body calls
/// [`writer_process_main`]) as a writer process on `db`.
pub fn start_writer_process(test: &str, db: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env(WRITER_ENV, db)
        .spawn()
        .expect("start writer process")
}

/// Tells the writer process on `db` to stop (the file `DB.stop`), waits
/// for it and asserts it succeeded.
pub fn stop_writer_process(db: &Path, mut writer: Child) {
    std::fs::write(format!("{}.stop", db.display()), b"").expect("stop writer");
    let status = writer.wait().expect("writer exits");
    assert!(status.success(), "writer process failed");
}
