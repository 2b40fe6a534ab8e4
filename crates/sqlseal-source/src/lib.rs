//! Consistent snapshots of live SQLite databases: the only sqlseal crate
//! that links SQLite.
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
//! [`check_integrity`] runs `PRAGMA integrity_check` on a restored image;
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
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, InterruptHandle, OpenFlags};

mod change;
pub mod demo;

pub use change::{ChangeMarker, change_marker};

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
    /// `PRAGMA integrity_check` did not return `ok`.
    #[error("database image {path} fails integrity_check: {report}")]
    IntegrityFailed {
        /// The checked file.
        path: PathBuf,
        /// The first lines of SQLite's report.
        report: String,
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
}

impl SnapshotOptions {
    /// Defaults for `method`: 1 MiB blocks, 30 s busy timeout.
    pub fn new(method: Method) -> Self {
        SnapshotOptions {
            method,
            temp_dir: None,
            block_size: 1 << 20,
            busy_timeout: Duration::from_secs(30),
        }
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
        let path = self.path.clone();
        let options = self.options.clone();
        let thread = std::thread::Builder::new()
            .name("sqlseal-snapshot".into())
            .spawn(move || {
                let started = Started {
                    info_tx: Some(info_tx),
                    block_tx,
                };
                run_snapshot(&path, &options, started);
            })
            .map_err(|e| SourceError::Io {
                what: "starting the snapshot thread for",
                path: self.path.clone(),
                source: e,
            })?;
        match info_rx.recv() {
            Ok(Ok((info, interrupt))) => Ok(Snapshot {
                info,
                rx: Some(block_rx),
                interrupt,
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
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database".into())
    }
}

/// One consistent database image, handed out in blocks of whole pages.
///
/// Dropping it before the end cancels the snapshot at the next block and
/// removes any temporary file.
pub struct Snapshot {
    info: SnapshotInfo,
    rx: Option<Receiver<Result<Vec<u8>>>>,
    interrupt: Option<InterruptHandle>,
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
        // Closing the channel stops the reader at its next send; interrupting
        // stops a long SQLite statement (backup step, VACUUM INTO) sooner.
        self.rx = None;
        if let Some(interrupt) = &self.interrupt {
            interrupt.interrupt();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the snapshot thread reports once the image size is known.
type Announcement = Result<(SnapshotInfo, Option<InterruptHandle>)>;

struct Started {
    info_tx: Option<SyncSender<Announcement>>,
    block_tx: SyncSender<Result<Vec<u8>>>,
}

impl Started {
    /// Reports the image size; false if the consumer has gone.
    fn announce(&mut self, info: SnapshotInfo, interrupt: Option<InterruptHandle>) -> bool {
        match self.info_tx.take() {
            Some(tx) => tx.send(Ok((info, interrupt))).is_ok(),
            None => true,
        }
    }

    /// Hands out a block; false if the consumer has gone (cancelled).
    fn block(&self, block: Vec<u8>) -> bool {
        self.block_tx.send(Ok(block)).is_ok()
    }

    fn fail(mut self, e: SourceError) {
        match self.info_tx.take() {
            Some(tx) => {
                let _ = tx.send(Err(e));
            }
            None => {
                let _ = self.block_tx.send(Err(e));
            }
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

fn snapshot_dbpage(path: &Path, options: &SnapshotOptions, started: &mut Started) -> Result<()> {
    let conn = open_source(path, options)?;
    // One read transaction: every page comes from the same snapshot.
    conn.execute_batch("BEGIN DEFERRED")
        .map_err(sqlite_err(path, "starting a read transaction"))?;
    let page_count: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sqlite_err(path, "reading the page count"))?;
    let page_count = page_count.max(0) as u64;
    let page_size: u32 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sqlite_err(path, "reading the page size"))?;
    let info = SnapshotInfo {
        page_size,
        page_count,
        method: Method::DbPage,
    };
    let mut stmt = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
        .map_err(|e| match e.to_string().contains("no such table") {
            true => SourceError::Inconsistent {
                path: path.to_path_buf(),
                reason: "this SQLite has no sqlite_dbpage table (built without SQLITE_ENABLE_DBPAGE_VTAB); use --method backup-api".into(),
            },
            false => sqlite_err(path, "preparing the page read")(e),
        })?;
    if !started.announce(info, Some(conn.get_interrupt_handle())) {
        return Err(SourceError::Cancelled);
    }
    let pages_per_block = (options.block_size / page_size as usize).max(1);
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
            if !started.block(full) {
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
    drop(rows);
    drop(stmt);
    conn.execute_batch("COMMIT")
        .map_err(sqlite_err(path, "ending the read transaction"))?;
    if !block.is_empty() && !started.block(block) {
        return Err(SourceError::Cancelled);
    }
    Ok(())
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
    let mut builder = tempfile::Builder::new();
    builder.prefix(".sqlseal-snapshot-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder
        .tempdir_in(&temp_root)
        .map_err(|e| SourceError::Io {
            what: "creating a temporary directory in",
            path: temp_root.clone(),
            source: e,
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
            loop {
                // -1: all pages in one step, so a busy writer cannot make it restart.
                match backup
                    .step(-1)
                    .map_err(sqlite_err(path, "copying with the backup API"))?
                {
                    rusqlite::backup::StepResult::Done => break,
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
    drop(conn);
    restrict_permissions(&copy)?;
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
    if !started.announce(info, Some(interrupt)) {
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
        let n = read_up_to(&mut from_start, &mut block).map_err(|e| SourceError::Io {
            what: "reading the snapshot copy",
            path: copy.clone(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        block.truncate(n);
        if !started.block(block) {
            return Err(SourceError::Cancelled);
        }
    }
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Page size and page count from a database file's 100-byte header.
fn read_db_header(file: &mut File, path: &Path) -> Result<(u32, u64)> {
    let mut header = [0u8; 100];
    let n = read_up_to(file, &mut header).map_err(|e| SourceError::Io {
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

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        SourceError::Io {
            what: "restricting permissions of",
            path: path.to_path_buf(),
            source: e,
        }
    })
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

/// Runs `PRAGMA integrity_check` on a database image file (read-only,
/// without locking: the file must not be in use).
pub fn check_integrity(path: &Path) -> Result<()> {
    let len = std::fs::metadata(path)
        .map_err(|e| SourceError::Io {
            what: "checking",
            path: path.to_path_buf(),
            source: e,
        })?
        .len();
    if len == 0 {
        return Ok(());
    }
    let uri = format!("file:{}?immutable=1", uri_escape(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&uri, flags)
        .map_err(sqlite_err(path, "opening for integrity_check"))?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(sqlite_err(path, "running integrity_check"))?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sqlite_err(path, "running integrity_check"))?
        .take(5)
        .collect::<std::result::Result<_, _>>()
        .map_err(sqlite_err(path, "running integrity_check"))?;
    if lines.len() == 1 && lines[0] == "ok" {
        return Ok(());
    }
    Err(SourceError::IntegrityFailed {
        path: path.to_path_buf(),
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
    fn uri_escape_keeps_paths_safe() {
        assert_eq!(
            uri_escape(Path::new("/a b/c?d#e.db")),
            "/a%20b/c%3Fd%23e.db"
        );
    }
}
