//! What the daemon tells observers (metrics, for one): each backup, drill
//! and auto-restore as it ends, per database and location. The status
//! file keeps the latest facts; observers see every event and can count
//! them.

use std::time::Duration;

use jiff::Timestamp;

/// Which database and backup location an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The database's name (its backup subdirectory).
    pub database: &'a str,
    /// Its backup location: a directory or an `s3://` URL.
    pub location: &'a str,
}

/// One thing the daemon did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Scheduling of a database started; `newest` is the creation time of
    /// its newest backup whose header authenticates, if any.
    Scheduled {
        /// The database and location.
        target: Target<'a>,
        /// The newest verified backup's creation time.
        newest: Option<Timestamp>,
        /// The newest verified backup's name.
        newest_name: Option<&'a str>,
    },
    /// A backup was made, read back, and retention ran.
    BackupSucceeded {
        /// The database and location.
        target: Target<'a>,
        /// When the attempt started.
        started: Timestamp,
        /// The new backup's authenticated creation time.
        created: Timestamp,
        /// How long the attempt took.
        duration: Duration,
        /// Bytes written to the store.
        bytes: u64,
        /// Backups kept after retention.
        kept: usize,
    },
    /// A backup was due, but the database had not changed since its last
    /// backup (by SQLite's change counters): none was made, and the
    /// database counts as current.
    BackupUnchanged {
        /// The database and location.
        target: Target<'a>,
        /// When the check ran.
        at: Timestamp,
    },
    /// A database found by `Database.Dirs` was removed: it is no longer
    /// scheduled (its backups are kept).
    Unscheduled {
        /// The database and location.
        target: Target<'a>,
    },
    /// A backup attempt failed.
    BackupFailed {
        /// The database and location.
        target: Target<'a>,
        /// When the attempt started.
        started: Timestamp,
        /// How long it took.
        duration: Duration,
        /// What failed, as a short stable word (see [`crate::ScheduleError::kind`]).
        kind: &'static str,
    },
    /// A restore drill ended.
    DrillFinished {
        /// The database and location.
        target: Target<'a>,
        /// When it started.
        started: Timestamp,
        /// How long it took.
        duration: Duration,
        /// `None` when it passed; the error kind when it failed.
        failure: Option<&'static str>,
    },
    /// Auto-restore looked at a database at start-up.
    AutoRestore {
        /// The database and location.
        target: Target<'a>,
        /// `present`, `disabled`, `no_backups`, `restored`,
        /// `restored_older` or `started_empty`.
        outcome: &'static str,
    },
}

/// Receives the daemon's events. Called on the scheduler's tasks: keep it
/// quick and never block.
pub trait Observer: Send + Sync {
    /// One event.
    fn observe(&self, event: &Event<'_>);
}
