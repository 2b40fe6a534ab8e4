//! Which pages changed between two snapshots of a database, from the
//! frames SQLite appended to its write-ahead log in between, so that an
//! increment reads the pages that changed instead of every page.
//!
//! # How
//!
//! A [`ChangeTracker`] takes each snapshot in a read transaction that it
//! starts while it holds the database's write lock (for about a
//! millisecond): no transaction is being written then, so the snapshot
//! holds exactly the transactions whose frames are in the log, and the
//! tracker records the last commit frame as a [`WalPosition`], once it
//! matches the end of the log in SQLite's own index of it (the `-shm`
//! header: frame, salts and checksum). The next snapshot's changes are the
//! pages of the frames committed after that position.
//!
//! Between snapshots the tracker keeps the last one's read transaction
//! open (the *pin*). SQLite restarts the log from its first frame (with a
//! new first salt, one more than the last) only when every frame was
//! copied into the database and no reader uses the log: a pin that reads
//! frames stops both, and a pin that reads the database file alone
//! (SQLite's read lock 0) stops every copy back, so the log restarts at
//! most once while pinned, and only when it holds nothing newer than the
//! pin. So a log of the same generation continues at the recorded frame,
//! and a log of the next generation, while pinned, holds every change
//! since the snapshot from its first frame.
//!
//! A pin stops checkpoints from going past it, so the log grows by what
//! is written between two snapshots; [`ChangeTracker::settle`] then copies
//! the log back (a passive checkpoint) and re-pins on the database file
//! alone, which lets the next writer restart the log.
//!
//! # Invariants
//!
//! - Changes are reported only when they are certain: anything unexpected
//!   (no log, a damaged one, another generation, a database that is not
//!   in WAL mode, a write lock not taken in time, a page count that does
//!   not match the last commit frame) reports them as unknown, and the
//!   caller reads every page. A superset is allowed, never a subset.
//! - Every reported page number is of a committed frame of the log.
//! - The tracker never writes to the database; its checkpoints are
//!   SQLite's own passive ones.
//! - While it holds a connection, the tracker never closes a descriptor of
//!   the database's `-wal` or `-shm` file (POSIX locks end with the first
//!   close, SQLite's read locks included), and neither may anything else in
//!   the process: a caller that reads the database's files must not do so
//!   while [`ChangeTracker::is_pinned`].

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::wal::{
    WAL_INDEX_HEADER_LEN, WalHeader, WalIndexHeader, WalPosition, read_commits, read_wal_header,
};
use crate::{
    Method, Result, SnapshotInfo, SnapshotOptions, SourceError, begin_read, open_source,
    prepare_page_read, sqlite_err, stream_pages,
};

/// The log length in frames from which [`ChangeTracker::settle`]
/// checkpoints: SQLite's own automatic checkpoint threshold.
pub const SETTLE_FRAMES: u32 = 1000;

/// What changed since the tracker's committed snapshot, in the snapshot
/// [`ChangeTracker::begin`] started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedChanges {
    /// The new snapshot.
    pub info: SnapshotInfo,
    /// The pages that may differ from the committed snapshot, in order;
    /// `None` when that is not known (read every page).
    pub pages: Option<Vec<u32>>,
    /// Why the pages are not known, when they are not.
    pub unknown_because: Option<&'static str>,
}

/// Follows a database's write-ahead log from one snapshot to the next.
pub struct ChangeTracker {
    path: PathBuf,
    options: SnapshotOptions,
    /// The committed snapshot's read transaction, or after
    /// [`settle`](Self::settle) one on the same or a later image.
    pin: Option<Connection>,
    /// The log position of the pin's image.
    position: Option<Mark>,
    /// Pages changed between the committed snapshot and `position`.
    pending: BTreeSet<u32>,
    /// The snapshot `begin` started, until it is committed or forgotten.
    current: Option<Current>,
    /// The WAL index header when the committed snapshot started.
    committed_index: Option<[u8; 2 * WAL_INDEX_HEADER_LEN]>,
    /// The `-wal` and `-shm` files, kept open for as long as the tracker
    /// has a connection: closing any descriptor of a file ends every
    /// POSIX lock this process holds on it, SQLite's read locks included,
    /// which would let the log restart under the pin. Declared after the
    /// connections, so that they are closed first.
    wal_file: Option<File>,
    shm_file: Option<File>,
}

/// Where a snapshot's image ends in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// There was no log, or an empty one: the database file held it all.
    Empty,
    /// At this commit frame.
    At(WalPosition),
}

/// How far [`ChangeTracker::begin`] read the log.
struct Reading {
    /// The last commit frame read.
    position: Option<Mark>,
    /// The database size in pages after the last commit read.
    page_count: Option<u32>,
    /// Why the changes are not known, once they are not.
    unknown: Option<&'static str>,
}

struct Current {
    conn: Connection,
    info: SnapshotInfo,
    next: Next,
    /// The WAL index header when it started.
    index: Option<[u8; 2 * WAL_INDEX_HEADER_LEN]>,
}

/// What [`ChangeTracker::commit`] counts the next changes from.
enum Next {
    /// This snapshot, at this position of the log.
    Track(Mark),
    /// The pinned snapshot: it is older than this one, so the changes
    /// after it include those after this one.
    KeepPinned,
    /// Nothing: the next changes are unknown.
    Forget,
}

impl std::fmt::Debug for ChangeTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeTracker")
            .field("path", &self.path)
            .field("pinned", &self.pin.is_some())
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn wal_path(path: &Path) -> PathBuf {
    sidecar(path, "-wal")
}

fn shm_path(path: &Path) -> PathBuf {
    sidecar(path, "-shm")
}

impl ChangeTracker {
    /// A tracker of the database at `path`, with nothing committed yet:
    /// the first snapshot's changes are unknown.
    pub fn new(path: impl Into<PathBuf>, options: SnapshotOptions) -> Self {
        ChangeTracker {
            path: path.into(),
            options,
            pin: None,
            position: None,
            pending: BTreeSet::new(),
            current: None,
            committed_index: None,
            wal_file: None,
            shm_file: None,
        }
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a committed snapshot is pinned.
    pub fn is_pinned(&self) -> bool {
        self.pin.is_some()
    }

    /// Drops everything: the next snapshot's changes are unknown.
    pub fn forget(&mut self) {
        self.current = None;
        self.pin = None;
        self.position = None;
        self.pending.clear();
        self.committed_index = None;
    }

    /// Opens the `-wal` and `-shm` files that are not open yet; replaces
    /// open ones only while the tracker holds no connection, pinned,
    /// current or about to be (`connections_open`; see `wal_file`).
    fn open_sidecars(&mut self, connections_open: bool) {
        if !connections_open && self.pin.is_none() && self.current.is_none() {
            self.wal_file = None;
            self.shm_file = None;
        }
        if self.wal_file.is_none() {
            self.wal_file = File::open(wal_path(&self.path)).ok();
        }
        if self.shm_file.is_none() {
            self.shm_file = File::open(shm_path(&self.path)).ok();
        }
    }

    /// Whether no transaction committed since the committed snapshot
    /// started, from SQLite's WAL index header (read through the open
    /// `-shm` descriptor, never a new one) and nothing read while
    /// settling; false when that cannot be told.
    pub fn unchanged_since_commit(&self) -> bool {
        self.pin.is_some()
            && self.pending.is_empty()
            && self.committed_index.is_some()
            && self.wal_index_bytes() == self.committed_index
    }

    /// Ends the pin but keeps the position: the next snapshot's changes
    /// are known if the log was not restarted meanwhile. For long pauses
    /// between snapshots, during which a pin would keep the log growing.
    pub fn release_pin(&mut self) {
        self.pin = None;
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> SourceError {
        let path = wal_path(&self.path);
        move |source| SourceError::Io { what, path, source }
    }

    /// Where reading the log continues from `from`, given its header:
    /// the same position in the same generation; while pinned, the start
    /// of the next generation, or of any generation after an empty log
    /// (see the module's documentation); else nowhere.
    fn continuation(&self, header: &WalHeader, from: Option<Mark>) -> Option<WalPosition> {
        let pinned = self.pin.is_some();
        match from? {
            Mark::At(from) if from.in_generation(header) => Some(from),
            Mark::At(from)
                if pinned
                    && header.follows(&from)
                    && header.big_endian == from.big_endian
                    && header.page_size == from.page_size =>
            {
                Some(header.start())
            }
            Mark::Empty if pinned => Some(header.start()),
            Mark::At(_) | Mark::Empty => None,
        }
    }

    /// Starts a snapshot and says which pages changed since the committed
    /// one. The snapshot stays open for [`read_page`](Self::read_page) and
    /// [`read_all`](Self::read_all) until [`commit`](Self::commit) (which
    /// makes it the one the next changes are counted from) or
    /// [`forget`](Self::forget).
    pub fn begin(&mut self) -> Result<TrackedChanges> {
        self.current = None;
        if !self.path.exists() {
            self.forget();
            return Err(SourceError::NotFound(self.path.clone()));
        }
        self.open_sidecars(false);
        let conn = open_source(&self.path, &self.options)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sqlite_err(&self.path, "reading the journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // No log to follow; and a pin would block every writer.
            self.forget();
            return self.start(conn, None, None, Some("the database is not in WAL mode"));
        }
        let mut pages = self.pending.clone();
        let mut reading = Reading {
            position: self.position,
            page_count: None,
            unknown: None,
        };
        // Read what committed so far without the lock (committed frames
        // never change within a generation), so that the lock is held
        // only for the frames committed since.
        self.advance(&mut reading, &mut pages)?;
        let Some(lock) = crate::take_write_lock(&self.path, false) else {
            // No exact position for this snapshot: the next changes are
            // counted from the pinned one's, a superset of them.
            let started = self.start(
                conn,
                None,
                None,
                Some("the write lock was not free in time"),
            );
            if let Some(current) = self.current.as_mut() {
                current.next = Next::KeepPinned;
            }
            return started;
        };
        // No transaction is being written now: the log ends at the last
        // commit, and the snapshot about to start holds exactly that.
        self.open_sidecars(true);
        self.advance(&mut reading, &mut pages)?;
        // ... as SQLite sees it: its WAL index must end at the same frame
        // (a writer that died between writing frames and indexing them
        // leaves committed-looking frames that no reader sees).
        let agreed = match (reading.position, self.wal_index()) {
            (Some(Mark::At(position)), Some(index)) => index.agrees_with(&position),
            (Some(Mark::Empty), Some(index)) => index.last_frame == 0,
            (Some(Mark::Empty), None) => !shm_path(&self.path).exists(),
            _ => false,
        };
        if !agreed {
            reading.position = None;
            reading.unknown = reading
                .unknown
                .or(Some("the log does not end where SQLite's index of it does"));
        }
        let index = self.wal_index_bytes();
        let page_count = begin_read(&conn, &self.path)?;
        lock.execute_batch("ROLLBACK")
            .map_err(sqlite_err(&self.path, "releasing the write lock"))?;
        // The new snapshot holds the log now; the old pin may go.
        self.pin = None;
        let unknown = match (reading.unknown, reading.page_count) {
            (None, Some(n)) if u64::from(n) != page_count => {
                Some("the log's last commit disagrees with the page count")
            }
            (unknown, _) => unknown,
        };
        let started = match unknown {
            Some(why) => self.start(conn, reading.position, None, Some(why)),
            None => self.start(conn, reading.position, Some(pages), None),
        };
        if let Some(current) = self.current.as_mut() {
            current.index = index;
        }
        started
    }

    /// SQLite's WAL index header, if the `-shm` file holds a valid one.
    fn wal_index(&self) -> Option<WalIndexHeader> {
        WalIndexHeader::parse(&self.wal_index_bytes()?)
    }

    fn wal_index_bytes(&self) -> Option<[u8; 2 * WAL_INDEX_HEADER_LEN]> {
        use std::os::unix::fs::FileExt;
        let mut bytes = [0u8; 2 * WAL_INDEX_HEADER_LEN];
        self.shm_file.as_ref()?.read_exact_at(&mut bytes, 0).ok()?;
        Some(bytes)
    }

    /// Reads the log's committed frames after `reading.position` into
    /// `pages` while the changes are known; when they are not (or stop
    /// being), reads them only to find the last commit frame.
    fn advance(&self, reading: &mut Reading, pages: &mut BTreeSet<u32>) -> Result<()> {
        let exists = self.wal_file.is_some();
        let mut file = self.wal_file.as_ref();
        let header = match file.as_mut() {
            Some(file) => read_wal_header(file).map_err(self.io("reading"))?,
            None => None,
        };
        let why_unknown = || match reading.position {
            None => "no earlier snapshot is pinned",
            Some(_) if self.pin.is_none() => "the log may have restarted while nothing was pinned",
            Some(_) => "the log restarted since the last snapshot",
        };
        let (Some(file), Some(header)) = (file.as_mut(), header) else {
            // No log, or an empty one: everything is in the database file.
            // While pinned, nothing after the pinned image can have been
            // copied there (see the module's documentation), so there is
            // nothing to read; a log that vanished is another matter.
            let known = self.pin.is_some()
                && match reading.position {
                    Some(Mark::Empty) => true,
                    Some(Mark::At(_)) => exists,
                    None => false,
                };
            if !known && reading.unknown.is_none() {
                reading.unknown = Some(why_unknown());
            }
            reading.position = Some(Mark::Empty);
            return Ok(());
        };
        let start = match self.continuation(&header, reading.position) {
            Some(start) => start,
            None => {
                if reading.unknown.is_none() {
                    reading.unknown = Some(why_unknown());
                }
                header.start()
            }
        };
        let mut ignored = BTreeSet::new();
        let into = if reading.unknown.is_none() {
            pages
        } else {
            &mut ignored
        };
        let read = read_commits(file, start, into).map_err(self.io("reading"))?;
        reading.position = Some(Mark::At(read.position));
        if read.page_count.is_some() {
            reading.page_count = read.page_count;
        }
        Ok(())
    }

    /// Records the started snapshot as current and describes it.
    fn start(
        &mut self,
        conn: Connection,
        position: Option<Mark>,
        pages: Option<BTreeSet<u32>>,
        unknown_because: Option<&'static str>,
    ) -> Result<TrackedChanges> {
        if position.is_none() && conn.is_autocommit() {
            begin_read(&conn, &self.path)?;
        }
        let page_count: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(sqlite_err(&self.path, "reading the page count"))?;
        let page_size: u32 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sqlite_err(&self.path, "reading the page size"))?;
        let info = SnapshotInfo {
            page_size,
            page_count: page_count.max(0) as u64,
            method: Method::DbPage,
            check: crate::CheckLevel::None,
        };
        let pages = pages.map(|set| set.into_iter().collect::<Vec<_>>());
        self.current = Some(Current {
            conn,
            info: info.clone(),
            next: position.map_or(Next::Forget, Next::Track),
            index: None,
        });
        Ok(TrackedChanges {
            info,
            pages,
            unknown_because,
        })
    }

    fn current(&self) -> Result<&Current> {
        self.current
            .as_ref()
            .ok_or_else(|| SourceError::Inconsistent {
                path: self.path.clone(),
                reason: "no snapshot was started".into(),
            })
    }

    /// Page `number` of the started snapshot.
    pub fn read_page(&self, number: u32) -> Result<Vec<u8>> {
        let current = self.current()?;
        let mut stmt = current
            .conn
            .prepare_cached("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
            .map_err(sqlite_err(&self.path, "preparing the page read"))?;
        let data: Vec<u8> = stmt
            .query_row([number], |r| r.get(0))
            .map_err(sqlite_err(&self.path, "reading a page"))?;
        if data.len() != current.info.page_size as usize {
            return Err(SourceError::Inconsistent {
                path: self.path.clone(),
                reason: format!("page {number} has {} bytes", data.len()),
            });
        }
        Ok(data)
    }

    /// Every page of the started snapshot in order, handed to `send` in
    /// blocks of about `block_size` bytes; stops with
    /// [`SourceError::Cancelled`] when `send` returns false.
    pub fn read_all(&self, block_size: usize, send: impl FnMut(Vec<u8>) -> bool) -> Result<()> {
        let current = self.current()?;
        let mut stmt = prepare_page_read(&current.conn, &self.path)?;
        stream_pages(&mut stmt, &self.path, &current.info, block_size, send)
    }

    /// Makes the started snapshot the one the next changes are counted
    /// from, and keeps its read transaction open as the pin (in WAL mode).
    pub fn commit(&mut self) {
        let Some(current) = self.current.take() else {
            return;
        };
        match current.next {
            Next::Track(position) => {
                self.pin = Some(current.conn);
                self.position = Some(position);
                self.pending.clear();
                self.committed_index = current.index;
            }
            Next::KeepPinned => {}
            Next::Forget => self.forget(),
        }
    }

    /// When the log has grown to [`SETTLE_FRAMES`] or more: copies it into
    /// the database with a passive checkpoint (without the write lock, as
    /// far as the pin allows), then, holding the write lock for as long as
    /// copying the last few frames takes, moves the pin to the end of the
    /// log and, if every frame was copied, onto the database file alone,
    /// so that the next writer restarts the log. Gives up quietly (the
    /// log then grows until the next try) when the lock is busy or a
    /// reader holds frames.
    pub fn settle(&mut self) -> Result<bool> {
        let (Some(_), Some(Mark::At(position))) = (self.pin.as_ref(), self.position) else {
            return Ok(false);
        };
        if position.frame < SETTLE_FRAMES {
            return Ok(false);
        }
        let checkpointer = self.checkpointer()?;
        // Copies what the pin allows while writers go on.
        passive_checkpoint(&checkpointer, &self.path)?;
        let Some(lock) = crate::take_write_lock(&self.path, true) else {
            return Ok(false);
        };
        self.open_sidecars(true);
        let Some(mut wal) = self.wal_file.as_ref() else {
            return Ok(false);
        };
        let header = read_wal_header(&mut wal).map_err(self.io("reading"))?;
        let Some(start) = header.and_then(|h| self.continuation(&h, Some(Mark::At(position))))
        else {
            self.forget();
            return Ok(false);
        };
        let read = read_commits(&mut wal, start, &mut self.pending).map_err(self.io("reading"))?;
        if !self
            .wal_index()
            .is_some_and(|index| index.agrees_with(&read.position))
        {
            self.forget();
            return Ok(false);
        }
        let end = open_source(&self.path, &self.options)?;
        begin_read(&end, &self.path)?;
        self.pin = Some(end);
        self.position = Some(Mark::At(read.position));
        let (_, log, copied) = passive_checkpoint(&checkpointer, &self.path)?;
        let settled = log >= 0 && log == copied;
        if settled {
            // Every frame is in the database: a reader starting now reads
            // the file alone, which lets the next writer restart the log.
            let file_only = open_source(&self.path, &self.options)?;
            begin_read(&file_only, &self.path)?;
            self.pin = Some(file_only);
        }
        lock.execute_batch("ROLLBACK")
            .map_err(sqlite_err(&self.path, "releasing the write lock"))?;
        Ok(settled)
    }

    fn checkpointer(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)
            .map_err(sqlite_err(&self.path, "opening for a checkpoint"))?;
        conn.busy_timeout(Duration::ZERO)
            .map_err(sqlite_err(&self.path, "setting the busy timeout"))?;
        Ok(conn)
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (busy, frames in the log, frames
/// copied into the database).
fn passive_checkpoint(conn: &Connection, path: &Path) -> Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .map_err(sqlite_err(path, "checkpointing the log"))
}
