//! Consistent snapshots of live SQLite databases: the only sqlseal crate
//! that links SQLite.
//!
//! Owns: snapshots, integrity checks, change markers. Never: blocks a
//! writer for longer than starting a read transaction, or leaves a
//! plaintext copy outside the database's directory or a private temp dir.
//!
//! A [`SnapshotSource`] produces a [`Snapshot`]: the bytes of one database
//! image as it was at a single instant, as a stream of blocks of whole
//! pages, read on a background thread so the caller can compress and seal
//! while SQLite reads. Dropping a snapshot cancels it between blocks and
//! removes any temporary file. Three methods ([`Method`]):
//! - `dbpage`: one read transaction reading pages through the
//!   `sqlite_dbpage` virtual table. Under WAL it never blocks writers and
//!   never restarts.
//! - `backup-api`: SQLite's online backup API in one step into a temporary
//!   file, which is then streamed.
//! - `vacuum`: `VACUUM INTO` a temporary file (a compacted image), then streamed.
//!
//! Each snapshot can run SQLite's integrity check ([`CheckLevel`]) on the
//! very image it streams, beside the stream, and reports the outcome through
//! [`Snapshot::check_result`]: `dbpage` runs it on a second connection that
//! reads the same database snapshot, `backup-api` and `vacuum` on their
//! temporary copy.
//!
//! A [`ChangeTracker`] follows a WAL database from one snapshot to the
//! next and says which pages changed in between, from the frames SQLite
//! appended to its log ([`wal`] reads them), so that an increment reads
//! those pages alone.
//!
//! [`check_image`] runs a check on a restored image;
//! [`change_marker`] tells from SQLite's change counters whether a
//! database changed;
//! [`demo`] makes a demo database and a writer that keeps committing to it.
//!
//! ```
//! use sqlseal_source::{Method, SnapshotOptions, SnapshotSource, SqliteSource};
//!
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("app.db");
//! let conn = rusqlite::Connection::open(&db)?;
//! conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")?;
//!
//! let source = SqliteSource::new(&db, SnapshotOptions::new(Method::DbPage));
//! let mut snapshot = source.snapshot()?;
//! let mut image = Vec::new();
//! while let Some(block) = snapshot.next_block() {
//!     image.extend_from_slice(&block?);
//! }
//! assert_eq!(image.len() as u64, snapshot.info().page_count * snapshot.info().page_size as u64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, InterruptHandle, OpenFlags};

mod change;
mod check;
pub mod demo;
mod tracker;
pub mod wal;

pub use change::{ChangeMarker, change_marker};
pub use tracker::{ChangeTracker, SETTLE_FRAMES, TrackedChanges};

/// How a snapshot is taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub enum Method {
    /// Read pages through `sqlite_dbpage` in one read transaction.
    #[default]
    DbPage,
    /// SQLite's online backup API into a temporary file.
    BackupApi,
    /// `VACUUM INTO` a temporary file.
    Vacuum,
}

impl Method {
    /// All methods, in the order the CLI lists them.
    pub const ALL: [Method; 3] = [Method::DbPage, Method::BackupApi, Method::Vacuum];

    /// The name used on the command line and in backup headers.
    pub fn name(self) -> &'static str {
        match self {
            Method::DbPage => "dbpage",
            Method::BackupApi => "backup-api",
            Method::Vacuum => "vacuum",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = ParseMethodError;
    fn from_str(s: &str) -> Result<Self, ParseMethodError> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| ParseMethodError(s.to_owned()))
    }
}

/// A name that is not a [`Method`]; holds the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown snapshot method `{0}`; use dbpage, backup-api or vacuum")]
pub struct ParseMethodError(pub String);

/// Which SQLite integrity check runs on an image.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash, PartialOrd, Ord)]
pub enum CheckLevel {
    /// No check.
    None,
    /// `PRAGMA quick_check`: page and b-tree structure, record formats and
    /// NOT NULL/CHECK constraints, but not whether indexes match their
    /// tables. About a tenth of the time of `integrity_check`.
    Quick,
    /// `PRAGMA integrity_check`: everything `quick_check` does, and that
    /// every index holds exactly the rows of its table (and UNIQUE holds).
    #[default]
    Full,
}

impl CheckLevel {
    /// All levels, in the order the CLI lists them.
    pub const ALL: [CheckLevel; 3] = [CheckLevel::Full, CheckLevel::Quick, CheckLevel::None];

    /// The name used on the command line and in reports: `full`, `quick`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            CheckLevel::None => "none",
            CheckLevel::Quick => "quick",
            CheckLevel::Full => "full",
        }
    }

    /// The pragma that runs it (`integrity_check`, `quick_check`); `None` for no check.
    pub fn pragma(self) -> Option<&'static str> {
        match self {
            CheckLevel::None => None,
            CheckLevel::Quick => Some("quick_check"),
            CheckLevel::Full => Some("integrity_check"),
        }
    }
}

impl fmt::Display for CheckLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CheckLevel {
    type Err = ParseCheckLevelError;
    fn from_str(s: &str) -> Result<Self, ParseCheckLevelError> {
        CheckLevel::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| ParseCheckLevelError(s.to_owned()))
    }
}

/// A name that is not a [`CheckLevel`]; holds the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check `{0}`; use full, quick or none")]
pub struct ParseCheckLevelError(pub String);

/// The page cache an integrity check gets, at most (shared equally by
/// the connections it runs on), chosen so that a
/// checked backup stays within the 64 MiB a command may use: the check runs
/// beside the sealing pipeline (about 35 MiB), and the cache only grows as
/// far as the image is large. A larger cache holds more of the index
/// b-trees that `integrity_check` looks every row up in: on a 484 MiB
/// database of 3 million rows with one text index, `backup create` took
/// 6.9 s with 24 MiB (peak RSS 60 MiB) against 6.2 s with 48 MiB (85 MiB),
/// medians of 3 alternating runs; on a 248 MB database, 48 MiB had saved
/// 20% of the check against SQLite's default 2 MB, and 32 MiB nothing.
/// `quick_check` does not look rows up and gains nothing.
pub const CHECK_CACHE_BYTES: u64 = 24 << 20;

/// Errors taking or checking a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The database file does not exist.
    #[error("database {0}: no such file; check the path")]
    NotFound(PathBuf),
    /// The file is not an SQLite database, or is encrypted.
    #[error(
        "database {0}: not an SQLite database (or it is encrypted); point --db at a plain SQLite file"
    )]
    NotADatabase(PathBuf),
    /// SQLite reported an error.
    #[error("database {path}: {what}: {source}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// What sqlseal was doing.
        what: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What sqlseal was doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The image read does not match what SQLite reported.
    #[error("database {path}: inconsistent snapshot: {reason}")]
    Inconsistent {
        /// The database.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// `PRAGMA integrity_check` (or `quick_check`) did not return `ok`.
    #[error(
        "database image {path} fails {}: {report}",
        check.pragma().unwrap_or("its check")
    )]
    IntegrityFailed {
        /// The checked file.
        path: PathBuf,
        /// The check that failed.
        check: CheckLevel,
        /// The first lines of SQLite's report.
        report: String,
    },
    /// The snapshot being backed up failed its integrity check, so no
    /// backup was made of it.
    #[error(
        "database {path} fails {}: {problem}; no backup was written (to back it up as it is, use --check none, or Backup.Check: none in the daemon)",
        check.pragma().unwrap_or("its check")
    )]
    CheckFailed {
        /// The database.
        path: PathBuf,
        /// The check that failed.
        check: CheckLevel,
        /// The first problem SQLite reported.
        problem: String,
    },
    /// The snapshot was cancelled.
    #[error("snapshot cancelled")]
    Cancelled,
}

type Result<T, E = SourceError> = std::result::Result<T, E>;

/// What a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Page size in bytes.
    pub page_size: u32,
    /// Number of pages in the image.
    pub page_count: u64,
    /// The method that took it.
    pub method: Method,
    /// The integrity check that runs on this image (see [`Snapshot::check_result`]).
    pub check: CheckLevel,
}

impl SnapshotInfo {
    /// Length of the image in bytes.
    pub fn image_len(&self) -> u64 {
        self.page_count * u64::from(self.page_size)
    }
}

/// Options for [`SqliteSource`].
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// The snapshot method.
    pub method: Method,
    /// Where `backup-api` and `vacuum` put their temporary copy (in a
    /// private 0700 directory, removed after); when `None`, the database's
    /// own directory, so that the plaintext copy stays on the database's
    /// file system, beside a file that is just as readable.
    pub temp_dir: Option<PathBuf>,
    /// Approximate size of the blocks handed out (rounded to whole pages).
    pub block_size: usize,
    /// How long to wait for a lock held by a writer.
    pub busy_timeout: Duration,
    /// The integrity check to run on the image, beside the stream.
    pub check: CheckLevel,
    /// The page cache the check may take, at most ([`CHECK_CACHE_BYTES`]
    /// by default; never less than SQLite's default of 2 MB). A backup to
    /// a store that holds data in memory while it uploads gives the check
    /// that much less (see `BackupStore::write_buffer_bytes` in
    /// sqlseal-store), so that the two together stay within a command's
    /// 64 MiB.
    pub check_cache_bytes: u64,
}

impl SnapshotOptions {
    /// Defaults for `method`: 1 MiB blocks, 30 s busy timeout, the full
    /// integrity check.
    pub fn new(method: Method) -> Self {
        SnapshotOptions {
            method,
            temp_dir: None,
            block_size: 1 << 20,
            busy_timeout: Duration::from_secs(30),
            check: CheckLevel::Full,
            check_cache_bytes: CHECK_CACHE_BYTES,
        }
    }

    /// Gives the check's page cache `bytes` less than [`CHECK_CACHE_BYTES`]:
    /// what a store holds in memory while a backup is written to it
    /// (`BackupStore::write_buffer_bytes` in sqlseal-store).
    pub fn leave_room_for(&mut self, bytes: u64) {
        self.check_cache_bytes = CHECK_CACHE_BYTES.saturating_sub(bytes);
    }

    /// The page cache the check of an image of `image_len` bytes takes:
    /// no more than the image and [`SnapshotOptions::check_cache_bytes`].
    fn check_cache(&self, image_len: u64) -> u64 {
        image_len.min(self.check_cache_bytes)
    }
}

/// Something that can produce consistent database images.
pub trait SnapshotSource {
    /// Starts a snapshot; returns once its size is known.
    fn snapshot(&self) -> Result<Snapshot>;
    /// The file name to record in backup headers.
    fn database_name(&self) -> String;
}

/// An SQLite database file on this machine.
#[derive(Clone, Debug)]
pub struct SqliteSource {
    path: PathBuf,
    options: SnapshotOptions,
}

impl SqliteSource {
    /// A source for the database at `path`.
    pub fn new(path: impl Into<PathBuf>, options: SnapshotOptions) -> Self {
        SqliteSource {
            path: path.into(),
            options,
        }
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SnapshotSource for SqliteSource {
    fn snapshot(&self) -> Result<Snapshot> {
        if !self.path.exists() {
            return Err(SourceError::NotFound(self.path.clone()));
        }
        let (info_tx, info_rx) = sync_channel::<Announcement>(1);
        // Two blocks in flight: the reader stays one step ahead of the consumer.
        let (block_tx, block_rx) = sync_channel::<Result<Vec<u8>>>(2);
        // One result: the check's, or the error that ended the snapshot after its last block.
        let (check_tx, check_rx) = sync_channel::<Result<CheckLevel>>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let path = self.path.clone();
        let options = self.options.clone();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlseal-snapshot".into())
            .spawn(move || {
                let started = Started {
                    info_tx: Some(info_tx),
                    block_tx: Some(block_tx),
                    check_tx: Some(check_tx),
                    stop: thread_stop,
                };
                run_snapshot(&path, &options, started);
            })
            .map_err(|e| SourceError::Io {
                what: "starting the snapshot thread for",
                path: self.path.clone(),
                source: e,
            })?;
        match info_rx.recv() {
            Ok(Ok((info, interrupts))) => Ok(Snapshot {
                path: self.path.clone(),
                info,
                rx: Some(block_rx),
                check_rx: Some(check_rx),
                interrupts,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(SourceError::Cancelled)
            }
        }
    }

    fn database_name(&self) -> String {
        database_name_of(&self.path)
    }
}

/// The name backup headers record for the database at `path`: its file
/// name (`database` if the path has none).
pub fn database_name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "database".into(), |n| n.to_string_lossy().into_owned())
}

/// One consistent database image, handed out in blocks of whole pages,
/// and the integrity check of that same image.
///
/// Dropping it before the end cancels the snapshot at the next block,
/// interrupts a check that is still running, and removes any temporary file.
pub struct Snapshot {
    path: PathBuf,
    info: SnapshotInfo,
    rx: Option<Receiver<Result<Vec<u8>>>>,
    check_rx: Option<Receiver<Result<CheckLevel>>>,
    interrupts: Vec<InterruptHandle>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Snapshot {
    /// What the image holds.
    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// The next block of the image; `None` after the last.
    pub fn next_block(&mut self) -> Option<Result<Vec<u8>>> {
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(block) => Some(block),
            Err(_) => {
                self.rx = None;
                None
            }
        }
    }

    /// The outcome of the integrity check of this image, once every block
    /// was read: `Ok(level)` when [`SnapshotInfo::check`] passed (`level`
    /// is that check; [`CheckLevel::None`] when none was asked for),
    /// [`SourceError::CheckFailed`] when it found a problem. Waits at most
    /// `timeout`; `None` while the check is still running, so that a caller
    /// can poll its own cancellation (dropping the snapshot interrupts the
    /// check). After the first `Some`, returns an error.
    pub fn check_result(&mut self, timeout: Duration) -> Option<Result<CheckLevel>> {
        let Some(rx) = self.check_rx.as_ref() else {
            return Some(Err(self.no_check_result("its result was already taken")));
        };
        let result = match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => {
                Err(self.no_check_result("the check stopped without a result"))
            }
        };
        self.check_rx = None;
        Some(result)
    }

    fn no_check_result(&self, reason: &str) -> SourceError {
        SourceError::Inconsistent {
            path: self.path.clone(),
            reason: format!("integrity check of the snapshot: {reason}"),
        }
    }
}

impl Iterator for Snapshot {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_block()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // Closing the channels stops the reader at its next send; interrupting
        // stops a long SQLite statement (backup step, VACUUM INTO, the
        // integrity check) sooner. An interrupt that lands between two
        // statements is forgotten, so it is repeated until the thread ends.
        self.rx = None;
        self.check_rx = None;
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            interrupt_until_done(&thread, &self.interrupts);
            let _ = thread.join();
        }
    }
}

/// What the snapshot thread reports once the image size is known: the
/// image, and the handles that interrupt its connections.
type Announcement = Result<(SnapshotInfo, Vec<InterruptHandle>)>;

struct Started {
    info_tx: Option<SyncSender<Announcement>>,
    block_tx: Option<SyncSender<Result<Vec<u8>>>>,
    check_tx: Option<SyncSender<Result<CheckLevel>>>,
    /// Raised when the consumer has gone.
    stop: Arc<AtomicBool>,
}

impl Started {
    /// Reports the image size; false if the consumer has gone.
    fn announce(&mut self, info: SnapshotInfo, interrupts: Vec<InterruptHandle>) -> bool {
        match self.info_tx.take() {
            Some(tx) => tx.send(Ok((info, interrupts))).is_ok(),
            None => true,
        }
    }

    /// Hands out a block; false if the consumer has gone (cancelled).
    fn block(&self, block: Vec<u8>) -> bool {
        self.block_tx
            .as_ref()
            .is_some_and(|tx| tx.send(Ok(block)).is_ok())
    }

    /// Ends the stream of blocks: the consumer sees the end while the
    /// check may still run.
    fn end_blocks(&mut self) {
        self.block_tx = None;
    }

    /// The sender for the check's result (taken once).
    fn take_check_tx(&mut self) -> Option<SyncSender<Result<CheckLevel>>> {
        self.check_tx.take()
    }

    fn fail(mut self, e: SourceError) {
        if let Some(tx) = self.info_tx.take() {
            let _ = tx.send(Err(e));
        } else if let Some(tx) = self.block_tx.take() {
            let _ = tx.send(Err(e));
        } else if let Some(tx) = self.check_tx.take() {
            let _ = tx.send(Err(e));
        }
    }
}

fn run_snapshot(path: &Path, options: &SnapshotOptions, mut started: Started) {
    let result = match options.method {
        Method::DbPage => snapshot_dbpage(path, options, &mut started),
        Method::BackupApi | Method::Vacuum => snapshot_via_file(path, options, &mut started),
    };
    match result {
        Ok(()) | Err(SourceError::Cancelled) => {}
        Err(e) => started.fail(e),
    }
}

fn sqlite_err(path: &Path, what: &'static str) -> impl FnOnce(rusqlite::Error) -> SourceError {
    let path = path.to_path_buf();
    move |source| {
        if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase)
        ) {
            SourceError::NotADatabase(path)
        } else {
            SourceError::Sqlite { path, what, source }
        }
    }
}

/// Opens a database read-only, never creating it, and checks it is SQLite.
fn open_source(path: &Path, options: &SnapshotOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err(path, "opening"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(sqlite_err(path, "setting the busy timeout"))?;
    Ok(conn)
}

/// The longest `dbpage` waits for the write lock that lets a second
/// connection start on the same snapshot; after that the check runs after
/// the page stream, in the same read transaction.
const PIN_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often [`take_write_lock`] tries again: a busy writer holds the lock
/// for most of each commit and lets it go for moments, which SQLite's own
/// busy handler (sleeping 1 ms, then up to 100 ms) would mostly miss.
const LOCK_POLL: Duration = Duration::from_micros(100);

/// A busy handler that tries again every [`LOCK_POLL`], `TRIES` times.
fn poll_lock<const TRIES: i32>(count: i32) -> bool {
    if count >= TRIES {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// Takes the database's write lock (`BEGIN IMMEDIATE`) on a connection of
/// its own, so that no commit can land while two readers start; `None`
/// when it cannot (no write permission, a writer holding the lock for
/// longer than [`PIN_LOCK_TIMEOUT`], or 50 ms when `briefly`).
/// The lock is released when the connection is rolled back or dropped.
fn take_write_lock(path: &Path, briefly: bool) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).ok()?;
    const LONG: i32 = (PIN_LOCK_TIMEOUT.as_micros() / LOCK_POLL.as_micros()) as i32;
    const BRIEF: i32 = (50_000 / LOCK_POLL.as_micros()) as i32;
    let handler: fn(i32) -> bool = if briefly {
        poll_lock::<BRIEF>
    } else {
        poll_lock::<LONG>
    };
    conn.busy_handler(Some(handler)).ok()?;
    conn.execute_batch("BEGIN IMMEDIATE").ok()?;
    Some(conn)
}

/// Starts a read transaction on `conn` (its first read pins the snapshot);
/// returns the page count it sees.
fn begin_read(conn: &Connection, path: &Path) -> Result<u64> {
    conn.execute_batch("BEGIN DEFERRED")
        .map_err(sqlite_err(path, "starting a read transaction"))?;
    let page_count: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sqlite_err(path, "reading the page count"))?;
    Ok(page_count.max(0) as u64)
}

/// For `dbpage` with a check: a second read-only connection in a read
/// transaction on the same snapshot as `conn`, which is about to start its
/// own. Under WAL a reader's snapshot is fixed by its first read, so the
/// write lock is held (for milliseconds) while both start; in the other
/// journal modes `conn`'s shared lock keeps every writer from committing
/// for as long as its read transaction lasts. Returns `conn`'s page count
/// and the checkers (one per core, see [`check_connections`]; the check is
/// split among them where the database allows it), or none when the
/// snapshot cannot be shared (then the check runs on `conn` after the
/// pages).
fn begin_with_checker(
    conn: &Connection,
    path: &Path,
    options: &SnapshotOptions,
) -> Result<(u64, Vec<Connection>)> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite_err(path, "reading the journal mode"))?;
    let wal = mode.eq_ignore_ascii_case("wal");
    let lock = if wal {
        take_write_lock(path, false)
    } else {
        None
    };
    let page_count = begin_read(conn, path)?;
    if wal && lock.is_none() {
        return Ok((page_count, Vec::new()));
    }
    let mut checkers = Vec::new();
    let mut same = true;
    for _ in 0..check_connections() {
        let checker = open_source(path, options)?;
        same &= begin_read(&checker, path)? == page_count;
        checkers.push(checker);
    }
    if let Some(lock) = lock {
        // Every snapshot is pinned; let writers go on.
        lock.execute_batch("ROLLBACK")
            .map_err(sqlite_err(path, "releasing the write lock"))?;
    }
    if !same {
        checkers.clear();
    }
    Ok((page_count, checkers))
}

/// How many connections an integrity check runs on: one per core, at most
/// [`MAX_CHECK_CONNECTIONS`].
fn check_connections() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_CHECK_CONNECTIONS)
}

/// The most connections one integrity check runs on.
const MAX_CHECK_CONNECTIONS: usize = 8;

fn snapshot_dbpage(path: &Path, options: &SnapshotOptions, started: &mut Started) -> Result<()> {
    let conn = open_source(path, options)?;
    // One read transaction: every page comes from the same snapshot.
    let (page_count, checkers) = match options.check {
        CheckLevel::None => (begin_read(&conn, path)?, Vec::new()),
        _ => begin_with_checker(&conn, path, options)?,
    };
    let page_size: u32 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sqlite_err(path, "reading the page size"))?;
    let info = SnapshotInfo {
        page_size,
        page_count,
        method: Method::DbPage,
        check: options.check,
    };
    let mut stmt = prepare_page_read(&conn, path)?;
    let mut interrupts = vec![conn.get_interrupt_handle()];
    // The check of the same snapshot on its own connection, beside the
    // stream; dropped on every early return, which stops it.
    let concurrent = !checkers.is_empty();
    let check_thread = match concurrent {
        true => {
            interrupts.extend(checkers.iter().map(Connection::get_interrupt_handle));
            let tx = started.take_check_tx();
            spawn_check(
                checkers,
                path,
                options.check,
                options.check_cache(info.image_len()),
                tx,
                started.stop.clone(),
            )?
        }
        false => {
            if options.check == CheckLevel::None {
                send_check(started.take_check_tx(), Ok(CheckLevel::None));
            }
            CheckThread::none(started.stop.clone())
        }
    };
    if !started.announce(info.clone(), interrupts) {
        return Err(SourceError::Cancelled);
    }
    stream_pages(&mut stmt, path, &info, options.block_size, |block| {
        started.block(block)
    })?;
    drop(stmt);
    if concurrent || options.check == CheckLevel::None {
        conn.execute_batch("COMMIT")
            .map_err(sqlite_err(path, "ending the read transaction"))?;
        started.end_blocks();
        check_thread.join();
        return Ok(());
    }
    // No second connection on this snapshot: the check runs here, in the
    // same read transaction, once the consumer has every block.
    started.end_blocks();
    let tx = started.take_check_tx();
    let mut conns = [conn];
    let outcome = run_check(
        &mut conns,
        path,
        options.check,
        options.check_cache(info.image_len()),
        &started.stop,
    );
    let [conn] = conns;
    let cancelled = matches!(outcome, Err(SourceError::Cancelled));
    send_check(tx, outcome);
    if cancelled {
        return Err(SourceError::Cancelled);
    }
    let _ = conn.execute_batch("COMMIT");
    Ok(())
}

/// The statement that reads every page of the snapshot, in order.
fn prepare_page_read<'c>(conn: &'c Connection, path: &Path) -> Result<rusqlite::Statement<'c>> {
    conn.prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
        .map_err(|e| match e.to_string().contains("no such table") {
            true => SourceError::Inconsistent {
                path: path.to_path_buf(),
                reason: "this SQLite has no sqlite_dbpage table (built without SQLITE_ENABLE_DBPAGE_VTAB); use --method backup-api".into(),
            },
            false => sqlite_err(path, "preparing the page read")(e),
        })
}

/// Runs `stmt` (from [`prepare_page_read`]) and hands every page of the
/// snapshot `info` describes to `send` in blocks of about `block_size`
/// bytes of whole pages; stops with [`SourceError::Cancelled`] when `send`
/// returns false. Checks that the pages are numbered 1 to the page count.
fn stream_pages(
    stmt: &mut rusqlite::Statement<'_>,
    path: &Path,
    info: &SnapshotInfo,
    block_size: usize,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> Result<()> {
    let (page_size, page_count) = (info.page_size, info.page_count);
    let pages_per_block = (block_size / page_size as usize).max(1);
    let mut block = Vec::with_capacity(pages_per_block * page_size as usize);
    let mut rows = stmt.query([]).map_err(sqlite_err(path, "reading pages"))?;
    let mut expected = 1u64;
    while let Some(row) = rows.next().map_err(sqlite_err(path, "reading pages"))? {
        let pgno: i64 = row.get(0).map_err(sqlite_err(path, "reading pages"))?;
        let pgno = pgno.max(0) as u64;
        let data = row
            .get_ref(1)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(sqlite_err(path, "reading pages"))?;
        if pgno != expected || data.len() != page_size as usize {
            return Err(SourceError::Inconsistent {
                path: path.to_path_buf(),
                reason: format!(
                    "page {pgno} ({} bytes) where page {expected} of {page_size} bytes was expected",
                    data.len()
                ),
            });
        }
        block.extend_from_slice(data);
        expected += 1;
        if block.len() >= pages_per_block * page_size as usize {
            let full = std::mem::replace(
                &mut block,
                Vec::with_capacity(pages_per_block * page_size as usize),
            );
            if !send(full) {
                return Err(SourceError::Cancelled);
            }
        }
    }
    if expected - 1 != page_count {
        return Err(SourceError::Inconsistent {
            path: path.to_path_buf(),
            reason: format!(
                "read {} pages but the database has {page_count}",
                expected - 1
            ),
        });
    }
    if !block.is_empty() && !send(block) {
        return Err(SourceError::Cancelled);
    }
    Ok(())
}

/// Sends a check's outcome, if anyone still listens.
fn send_check(tx: Option<SyncSender<Result<CheckLevel>>>, outcome: Result<CheckLevel>) {
    if let Some(tx) = tx {
        let _ = tx.send(outcome);
    }
}

/// Runs `level` on `conns` (see [`run_check`]) on a thread of its own and
/// sends the outcome.
fn spawn_check(
    mut conns: Vec<Connection>,
    path: &Path,
    level: CheckLevel,
    cache_bytes: u64,
    tx: Option<SyncSender<Result<CheckLevel>>>,
    stop: Arc<AtomicBool>,
) -> Result<CheckThread> {
    let db = path.to_path_buf();
    let interrupts = conns.iter().map(Connection::get_interrupt_handle).collect();
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("sqlseal-check".into())
        .spawn(move || {
            let outcome = run_check(&mut conns, &db, level, cache_bytes, &thread_stop);
            send_check(tx, outcome);
        })
        .map_err(|e| SourceError::Io {
            what: "starting the integrity check thread for",
            path: path.to_path_buf(),
            source: e,
        })?;
    Ok(CheckThread {
        running: Some((handle, interrupts)),
        stop,
    })
}

/// The check thread of a snapshot, joined before the snapshot thread ends
/// (it may read the snapshot's temporary copy). Dropped on an early return
/// (an error, a cancel), it is told to stop, its statement interrupted,
/// and joined.
struct CheckThread {
    running: Option<(JoinHandle<()>, Vec<InterruptHandle>)>,
    stop: Arc<AtomicBool>,
}

impl CheckThread {
    /// No check thread (the check runs elsewhere, or not at all).
    fn none(stop: Arc<AtomicBool>) -> Self {
        CheckThread {
            running: None,
            stop,
        }
    }

    /// Waits for the check to finish; its outcome goes to the consumer.
    fn join(mut self) {
        if let Some((thread, _)) = self.running.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CheckThread {
    fn drop(&mut self) {
        if let Some((thread, interrupts)) = self.running.take() {
            self.stop.store(true, Ordering::SeqCst);
            interrupt_until_done(&thread, &interrupts);
            let _ = thread.join();
        }
    }
}

/// Interrupts `handles` until `thread` ends: an interrupt that lands
/// between two statements is forgotten, so it is repeated.
fn interrupt_until_done(thread: &JoinHandle<()>, handles: &[InterruptHandle]) {
    while !thread.is_finished() {
        for handle in handles {
            handle.interrupt();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `level` on the image `conns` read (each in a read transaction on
/// the same snapshot; split among them where the database allows it, see
/// [`check`]) with a page cache sized for the check: `Ok(level)` when
/// SQLite reports `ok`,
/// [`SourceError::CheckFailed`] with the first problem otherwise, and
/// [`SourceError::Cancelled`] when `stop` was raised (the statement is
/// interrupted from outside).
fn run_check(
    conns: &mut [Connection],
    path: &Path,
    level: CheckLevel,
    cache_bytes: u64,
    stop: &AtomicBool,
) -> Result<CheckLevel> {
    if stop.load(Ordering::SeqCst) {
        return Err(SourceError::Cancelled);
    }
    match check_lines(conns, level, cache_bytes, 1) {
        Ok(lines) if is_ok(&lines) => Ok(level),
        Ok(lines) => Err(SourceError::CheckFailed {
            path: path.to_path_buf(),
            check: level,
            problem: lines.into_iter().next().unwrap_or_default(),
        }),
        Err(_) if stop.load(Ordering::SeqCst) => Err(SourceError::Cancelled),
        Err(e) => Err(sqlite_err(path, "running the integrity check")(e)),
    }
}

/// A page cache of `bytes` as the negative KiB figure `PRAGMA cache_size`
/// takes, at least SQLite's default (2 MB).
fn check_cache_kib(bytes: u64) -> i64 {
    -(i64::try_from(bytes / 1024).unwrap_or(i64::MAX).max(2000))
}

/// The first `max_lines` lines of `level`'s report on the image `conns`
/// read, with a page cache of `cache_bytes` in all.
fn check_lines(
    conns: &mut [Connection],
    level: CheckLevel,
    cache_bytes: u64,
    max_lines: usize,
) -> rusqlite::Result<Vec<String>> {
    check::check_on(conns, level, check_cache_kib(cache_bytes), max_lines).map(|r| r.lines)
}

/// SQLite's `*** in database main ***` line.
fn is_heading(line: &str) -> bool {
    line.starts_with("*** in database") && line.ends_with("***")
}

/// One problem of SQLite's report on one line: without the `*** in
/// database main ***` heading it puts before the first problem of a
/// database, and with line breaks inside an entry made `; `.
fn one_problem(entry: &str) -> String {
    entry
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_heading(l))
        .collect::<Vec<_>>()
        .join("; ")
}

fn is_ok(lines: &[String]) -> bool {
    lines.len() == 1 && lines[0] == "ok"
}

/// The directory in which `backup-api` and `vacuum` make their private
/// temporary directory: [`SnapshotOptions::temp_dir`], else the database's
/// own directory.
pub fn snapshot_temp_root(db: &Path, options: &SnapshotOptions) -> PathBuf {
    match (&options.temp_dir, db.parent()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(parent)) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        (None, _) => PathBuf::from("."),
    }
}

/// `backup-api` and `vacuum`: copy into a private temporary directory, then stream the copy.
fn snapshot_via_file(path: &Path, options: &SnapshotOptions, started: &mut Started) -> Result<()> {
    let temp_root = snapshot_temp_root(path, options);
    // A 0700 directory holds the copy; it and everything in it is removed on every path out.
    let dir =
        sqlseal_private::private_tempdir_in(&temp_root, ".sqlseal-snapshot-").map_err(|e| {
            SourceError::Io {
                what: "creating a temporary directory in",
                path: temp_root.clone(),
                source: e,
            }
        })?;
    let copy = dir.path().join("snapshot.db");
    let conn = open_source(path, options)?;
    let interrupt = conn.get_interrupt_handle();
    match options.method {
        Method::Vacuum => {
            let target = copy.to_str().ok_or_else(|| SourceError::Io {
                what: "using temporary directory",
                path: temp_root.clone(),
                source: std::io::Error::other("path is not UTF-8"),
            })?;
            conn.execute("VACUUM INTO ?1", [target])
                .map_err(sqlite_err(path, "running VACUUM INTO"))?;
        }
        _ => {
            let mut dst =
                Connection::open(&copy).map_err(sqlite_err(&copy, "creating the snapshot copy"))?;
            let backup = rusqlite::backup::Backup::new(&conn, &mut dst)
                .map_err(sqlite_err(path, "starting the backup API"))?;
            // All pages in one step (a step of more pages than there are:
            // i32::MAX pages is 1 TiB even at the smallest page size), so a
            // busy writer cannot make it restart; a busy or locked step is
            // retried after 20 ms.
            backup
                .run_to_completion(i32::MAX, Duration::from_millis(20), None)
                .map_err(sqlite_err(path, "copying with the backup API"))?;
        }
    }
    drop(conn);
    sqlseal_private::restrict_to_owner(&copy).map_err(|e| SourceError::Io {
        what: "restricting permissions of",
        path: copy.clone(),
        source: e,
    })?;
    let mut file = File::open(&copy).map_err(|e| SourceError::Io {
        what: "opening the snapshot copy",
        path: copy.clone(),
        source: e,
    })?;
    let (page_size, page_count) = read_db_header(&mut file, &copy)?;
    let info = SnapshotInfo {
        page_size,
        page_count,
        method: options.method,
        check: options.check,
    };
    let len = file
        .metadata()
        .map_err(|e| SourceError::Io {
            what: "reading the size of",
            path: copy.clone(),
            source: e,
        })?
        .len();
    if len != info.image_len() {
        return Err(SourceError::Inconsistent {
            path: path.to_path_buf(),
            reason: format!(
                "copy holds {len} bytes but its header states {}",
                info.image_len()
            ),
        });
    }
    // The check reads the private copy, which is exactly the image streamed.
    let mut interrupts = vec![interrupt];
    let check_thread = match options.check {
        CheckLevel::None => {
            send_check(started.take_check_tx(), Ok(CheckLevel::None));
            CheckThread::none(started.stop.clone())
        }
        level => {
            let checkers = open_image_checkers(&copy)?;
            interrupts.extend(checkers.iter().map(Connection::get_interrupt_handle));
            let tx = started.take_check_tx();
            spawn_check(
                checkers,
                path,
                level,
                options.check_cache(info.image_len()),
                tx,
                started.stop.clone(),
            )?
        }
    };
    if !started.announce(info, interrupts) {
        return Err(SourceError::Cancelled);
    }
    let block_len = (options.block_size / page_size as usize).max(1) * page_size as usize;
    let mut from_start = File::open(&copy).map_err(|e| SourceError::Io {
        what: "opening the snapshot copy",
        path: copy.clone(),
        source: e,
    })?;
    loop {
        let mut block = vec![0u8; block_len];
        let n = sqlseal_format::read_full(&mut from_start, &mut block).map_err(|e| {
            SourceError::Io {
                what: "reading the snapshot copy",
                path: copy.clone(),
                source: e,
            }
        })?;
        if n == 0 {
            break;
        }
        block.truncate(n);
        if !started.block(block) {
            return Err(SourceError::Cancelled);
        }
    }
    started.end_blocks();
    // Before the copy is removed.
    check_thread.join();
    Ok(())
}

/// Page size and page count from a database file's 100-byte header.
fn read_db_header(file: &mut File, path: &Path) -> Result<(u32, u64)> {
    let mut header = [0u8; 100];
    let n = sqlseal_format::read_full(file, &mut header).map_err(|e| SourceError::Io {
        what: "reading the header of",
        path: path.to_path_buf(),
        source: e,
    })?;
    if n == 0 {
        // An empty database: no pages yet.
        return Ok((4096, 0));
    }
    if n < 100 || &header[..16] != b"SQLite format 3\0" {
        return Err(SourceError::NotADatabase(path.to_path_buf()));
    }
    let raw = u16::from_be_bytes([header[16], header[17]]);
    let page_size = if raw == 1 { 65536 } else { u32::from(raw) };
    let page_count = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    Ok((page_size, page_count))
}

/// Opens a database image file read-only and without locking
/// (`immutable`): the file must not be in use.
fn open_image(path: &Path) -> Result<Connection> {
    let uri = format!("file:{}?immutable=1", uri_escape(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(&uri, flags)
        .map_err(sqlite_err(path, "opening for the integrity check"))
}

/// The connections that check the image file at `path`: one per core
/// (see [`check_connections`]), each as [`open_image`] opens it.
fn open_image_checkers(path: &Path) -> Result<Vec<Connection>> {
    (0..check_connections()).map(|_| open_image(path)).collect()
}

/// Runs `PRAGMA integrity_check` on a database image file (see [`check_image`]).
pub fn check_integrity(path: &Path) -> Result<()> {
    check_image(path, CheckLevel::Full, &|| false)
}

/// Runs `level` on a database image file (read-only, without locking: the
/// file must not be in use) with a page cache sized for the check (up to
/// [`CHECK_CACHE_BYTES`]). [`SourceError::IntegrityFailed`] carries the
/// first lines of SQLite's report. `cancelled` is polled while the check
/// runs; once it returns true the check is interrupted and this returns
/// [`SourceError::Cancelled`] (within tens of milliseconds).
pub fn check_image(
    path: &Path,
    level: CheckLevel,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<()> {
    let len = std::fs::metadata(path)
        .map_err(|e| SourceError::Io {
            what: "checking",
            path: path.to_path_buf(),
            source: e,
        })?
        .len();
    if len == 0 || level == CheckLevel::None {
        return Ok(());
    }
    let mut conns = open_image_checkers(path)?;
    let interrupts: Vec<_> = conns.iter().map(Connection::get_interrupt_handle).collect();
    let done = AtomicBool::new(false);
    let lines = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if cancelled() {
                    interrupts.iter().for_each(InterruptHandle::interrupt);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let lines = check_lines(&mut conns, level, len.min(CHECK_CACHE_BYTES), 5);
        done.store(true, Ordering::SeqCst);
        lines
    });
    let lines = match lines {
        Ok(lines) => lines,
        Err(_) if cancelled() => return Err(SourceError::Cancelled),
        Err(e) => return Err(sqlite_err(path, "running the integrity check")(e)),
    };
    if is_ok(&lines) {
        return Ok(());
    }
    Err(SourceError::IntegrityFailed {
        path: path.to_path_buf(),
        check: level,
        report: lines.join("; "),
    })
}

fn uri_escape(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>(), Ok(m));
        }
        let e = "copy".parse::<Method>().expect_err("unknown");
        assert_eq!(e, ParseMethodError("copy".into()));
        assert_eq!(
            e.to_string(),
            "unknown snapshot method `copy`; use dbpage, backup-api or vacuum"
        );
    }

    #[test]
    fn snapshot_copies_default_to_the_database_directory() {
        let mut options = SnapshotOptions::new(Method::Vacuum);
        assert_eq!(
            snapshot_temp_root(Path::new("/srv/data/app.db"), &options),
            Path::new("/srv/data")
        );
        assert_eq!(
            snapshot_temp_root(Path::new("app.db"), &options),
            Path::new(".")
        );
        options.temp_dir = Some(PathBuf::from("/scratch"));
        assert_eq!(
            snapshot_temp_root(Path::new("/srv/data/app.db"), &options),
            Path::new("/scratch")
        );
    }

    #[test]
    fn check_levels_round_trip_and_name_their_pragma() {
        for c in CheckLevel::ALL {
            assert_eq!(c.name().parse::<CheckLevel>(), Ok(c));
        }
        assert_eq!(CheckLevel::Full.pragma(), Some("integrity_check"));
        assert_eq!(CheckLevel::Quick.pragma(), Some("quick_check"));
        assert_eq!(CheckLevel::None.pragma(), None);
        let e = "bogus".parse::<CheckLevel>().expect_err("unknown");
        assert_eq!(e, ParseCheckLevelError("bogus".into()));
        assert_eq!(
            e.to_string(),
            "unknown check `bogus`; use full, quick or none"
        );
    }

    #[test]
    fn problems_are_one_line_without_the_database_heading() {
        assert_eq!(
            one_problem("*** in database main ***\nTree 3 page 3: free space corruption"),
            "Tree 3 page 3: free space corruption"
        );
        assert_eq!(
            one_problem("row 5 missing from index i"),
            "row 5 missing from index i"
        );
        assert_eq!(one_problem("a\nb"), "a; b");
        assert_eq!(one_problem("ok"), "ok");
    }

    #[test]
    fn the_check_cache_is_capped_and_never_below_the_default() {
        let options = SnapshotOptions::new(Method::DbPage);
        let kib = |image_len| check_cache_kib(options.check_cache(image_len));
        assert_eq!(kib(0), -2000);
        assert_eq!(kib(10 << 20), -10240);
        assert_eq!(kib(10 << 30), -((CHECK_CACHE_BYTES / 1024) as i64));
        let mut beside_an_upload = options.clone();
        beside_an_upload.leave_room_for(CHECK_CACHE_BYTES - (4 << 20));
        assert_eq!(
            check_cache_kib(beside_an_upload.check_cache(10 << 30)),
            -4096
        );
        beside_an_upload.leave_room_for(u64::MAX);
        assert_eq!(
            check_cache_kib(beside_an_upload.check_cache(10 << 30)),
            -2000
        );
    }

    /// Under a writer committing all the time, the checker connection
    /// reads exactly the snapshot of the streaming connection.
    #[test]
    fn the_checker_reads_the_same_snapshot_as_the_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(x);")
            .expect("schema");
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let db = db.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let conn = Connection::open(&db).expect("writer");
                conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
                let mut n = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    conn.execute("INSERT INTO t VALUES (?1)", [n])
                        .expect("insert");
                    n += 1;
                    // About a thousand commits a second, with the lock free
                    // in between (SQLite's busy wait is not fair to a waiter
                    // against a writer that never lets go).
                    std::thread::sleep(Duration::from_micros(500));
                }
                n
            })
        };
        let options = SnapshotOptions::new(Method::DbPage);
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .expect("count")
        };
        for _ in 0..30 {
            let reader = open_source(&db, &options).expect("reader");
            let (_, checkers) = begin_with_checker(&reader, &db, &options).expect("pinned");
            assert!(!checkers.is_empty(), "checkers on the same snapshot");
            std::thread::sleep(Duration::from_millis(2));
            for checker in &checkers {
                assert_eq!(count(&reader), count(checker));
            }
        }
        stop.store(true, Ordering::SeqCst);
        assert!(writer.join().expect("writer") > 0, "the writer committed");
    }

    #[test]
    fn uri_escape_keeps_paths_safe() {
        assert_eq!(
            uri_escape(Path::new("/a b/c?d#e.db")),
            "/a%20b/c%3Fd%23e.db"
        );
    }
}
