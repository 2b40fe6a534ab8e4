//! sqlseal's daemon as a library: scheduled backups of several databases,
//! retention of the newest N, auto-restore of missing databases at
//! start-up, and a status file.
//!
//! Owns: settings, names, scheduling, retention, drills, auto-restore, the
//! status file and the health rule. Never: prints, serves HTTP, or opens a
//! payload itself (the engine does).
//!
//! A service that embeds sqlseal takes the [`DatabaseLocks`] (so that no
//! other process backs up the same databases to the same place), calls
//! [`auto_restore`] before it opens its database, so it never starts on an
//! empty database while a good backup exists, then spawns the
//! [`Scheduler`], holding the locks, with its own cancellation token:
//!
//! ```no_run
//! use sqlseal_params::Params;
//! use sqlseal_schedule::{Scheduler, Settings, auto_restore_settings, lock_databases};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn service() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = std::fs::read_to_string("sqlseal.yaml")?;
//! let params = Params::load(Some(&yaml), sqlseal_params::process_env)?.params;
//! let settings = Settings::from_params(&params)?;
//! let locks = lock_databases(&settings)?; // fails if another process backs them up
//! auto_restore_settings(&settings)?; // before opening the database
//!
//! let token = CancellationToken::new();
//! let backups = Scheduler::new(settings).holding(locks).spawn(token.clone());
//! // ... run the service; on shutdown:
//! token.cancel();
//! backups.await??;
//! # Ok(())
//! # }
//! ```
//!
//! Which item for which job:
//! - [`Settings::from_params`]: check a configuration and load its keys,
//!   with errors that name the parameter.
//! - [`lock_databases`]: one process per database and backup location.
//! - [`auto_restore`] / [`auto_restore_settings`]: restore missing databases.
//! - [`Scheduler`]: the periodic backups; [`Clock`] and [`DatabaseJob`] are
//!   its seams for tests.
//! - [`read_status`]: what the status file says; [`read_newest`]: the
//!   local record of the newest backup per database.
//!
//! Every decision (retention, the first due time, what auto-restore
//! installs) is made on headers that authenticate under the daemon's keys;
//! a file in the store that does not is logged and left alone.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
mod config;
mod events;
mod health;
mod names;
mod newest;
mod restore;
mod retention;
mod scheduler;
mod status;
mod watch;

use std::path::PathBuf;

use sqlseal_store::{DatabaseLock, LockError};

pub use clock::{Clock, SystemClock};
pub use config::{
    ConfigError, DatabaseConfig, OnFailure, Settings, database_config, health_policy, s3_settings,
    status_file,
};
pub use events::{Event, Observer, Target};
pub use health::{HealthPolicy, stale_reasons};
pub use names::{NamedDatabase, check_name, discover, pattern_base};
pub use newest::{NewestBackup, newest_record_path, read_newest};
pub use restore::{AutoRestoreReport, Refused, RestoreOutcome, auto_restore_settings};
pub use retention::{
    ChainMember, Decision, IncrementRetention, RetentionPolicy, beyond_max_count, decide,
    decide_chains, deletion_order, to_delete,
};
pub use scheduler::{BackupDone, DatabaseJob, DrillDone, Scheduler, SqliteJob, chain_state_path};
pub use status::{
    DatabaseStatus, STATUS_WRITE_INTERVAL, StatusError, StatusReport, StatusWriter, read_status,
};

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A backup, verification or restore of one database failed.
    #[error("database {database}: {source}")]
    Engine {
        /// The database's name.
        database: String,
        /// The cause.
        source: sqlseal_engine::EngineError,
    },
    /// A database is missing and no backup of it passed verification.
    #[error("database {} is missing and none of its {} backup(s) can be restored: {}", database.display(), refused.len(), list_refused(refused))]
    RestoreFailed {
        /// The missing database.
        database: PathBuf,
        /// Every backup tried, newest first, and why it was refused.
        refused: Vec<Refused>,
    },
    /// Another process backs up a database to the same location.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The database file does not exist (yet): the scheduler waits for the
    /// application to create it and backs it up then.
    #[error("database {} does not exist yet; waiting for it to be created", .0.display())]
    DatabaseMissing(PathBuf),
}

impl ScheduleError {
    /// What failed, as one short stable word for metrics labels: the
    /// engine's [`EngineError::kind`](sqlseal_engine::EngineError::kind),
    /// or `config`, `restore`, `locked`, `task`, `missing`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduleError::Config(_) => "config",
            ScheduleError::Engine { source, .. } => source.kind(),
            ScheduleError::RestoreFailed { .. } => "restore",
            ScheduleError::Locked(_) => "locked",
            ScheduleError::Task(_) => "task",
            ScheduleError::DatabaseMissing(_) => "missing",
        }
    }
}

fn list_refused(refused: &[Refused]) -> String {
    refused
        .iter()
        .map(|r| format!("{} ({})", r.backup, r.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The locks on every configured database and its backup location, held
/// until dropped (see [`DatabaseLock`]).
#[derive(Debug)]
pub struct DatabaseLocks {
    // Dropping a lock releases it: (database path, location, lock).
    held: Vec<(PathBuf, String, DatabaseLock)>,
}

impl DatabaseLocks {
    /// Releases the lock on `db` at `location` (a database that is no
    /// longer served), so that it can be taken again if it comes back.
    pub(crate) fn release(&mut self, db: &std::path::Path, location: &str) {
        self.held.retain(|(p, l, _)| !(p == db && l == location));
    }
}

/// Takes the lock on every configured database and its backup location,
/// without waiting: if another process (a second daemon, a one-shot
/// `sqlseal backup create`) holds one, fails naming the database, the
/// location and that process's id. Call it before [`auto_restore_settings`]
/// and keep the locks for as long as backups may run.
pub fn lock_databases(settings: &Settings) -> Result<DatabaseLocks, ScheduleError> {
    lock_all(
        settings
            .databases
            .iter()
            .map(|d| (d.path.clone(), d.store.location())),
    )
}

pub(crate) fn lock_all(
    databases: impl IntoIterator<Item = (PathBuf, String)>,
) -> Result<DatabaseLocks, ScheduleError> {
    let mut held = Vec::new();
    for (path, location) in databases {
        let lock = DatabaseLock::acquire(&path, &location)?;
        held.push((path, location, lock));
    }
    Ok(DatabaseLocks { held })
}

/// Checks `params`, then restores every missing database from its newest
/// good backup (see [`auto_restore_settings`]).
pub fn auto_restore(params: &sqlseal_params::Params) -> Result<AutoRestoreReport, ScheduleError> {
    auto_restore_settings(&Settings::from_params(params)?)
}

/// A time as the status file writes it (UTC, microseconds).
pub(crate) fn now_string(t: jiff::Timestamp) -> String {
    sqlseal_format::CreatedAt::from_timestamp(t).to_string()
}
