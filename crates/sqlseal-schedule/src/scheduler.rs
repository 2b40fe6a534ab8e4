//! The scheduler: one task per database, backups every `Backup.Frequency`,
//! retention after each verified backup, restore drills every
//! `Backup.VerifyFrequency`, a status file, events for observers, and a
//! clean stop when the cancellation token fires.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sqlseal_engine::{
    BackupOptions, CancelFlag, ChainState, EngineError, HeaderCheck, IncrementOutcome,
    IncrementTracker, IntegrityCheck, NoProgress, VerifyOptions, create_backup,
    create_tracked_increment, list_backups, start_chain, verify_backup,
};
use sqlseal_format::CreatedAt;
use sqlseal_source::{ChangeMarker, SnapshotOptions, SqliteSource, change_marker};
use sqlseal_store::StoreError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::{DatabaseConfig, Settings};
use crate::events::{Event, Observer, Target};
use crate::newest::{NewestBackup, record_newest};
use crate::restore::AutoRestoreReport;
use crate::retention::{ChainMember, IncrementRetention, decide_chains, deletion_order};
use crate::status::StatusWriter;
use crate::{DatabaseLocks, ScheduleError, lock_all, now_string};

/// How often a database that does not exist yet is looked for (or each
/// `Backup.Frequency`, if that is shorter).
const MISSING_POLL: Duration = Duration::from_secs(10);

/// What one successful backup run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupDone {
    /// The new backup's name.
    pub name: String,
    /// Its creation time (from its header).
    pub created: Timestamp,
    /// Backups deleted by retention.
    pub deleted: Vec<String>,
    /// Backups kept.
    pub kept: usize,
    /// Bytes the new backup took in the store.
    pub size: u64,
    /// Whether it is an increment (a full backup otherwise).
    pub increment: bool,
}

/// What one passed restore drill verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrillDone {
    /// The backup drilled (the newest whose header authenticates).
    pub backup: String,
    /// Which integrity check ran, and which one the backup recorded.
    pub check: String,
}

/// The work the scheduler runs for one database. The real one snapshots,
/// seals, reads back and applies retention; tests use doubles.
pub trait DatabaseJob: Send + Sync + 'static {
    /// The database's name, for logs and the status file.
    fn name(&self) -> &str;
    /// Creation time of the newest backup whose header authenticates.
    fn newest_backup(&self) -> Result<Option<Timestamp>, ScheduleError>;
    /// Makes one backup stamped `now`; stops early when `cancel` is raised.
    fn backup(&self, now: Timestamp, cancel: &CancelFlag) -> Result<BackupDone, ScheduleError>;
    /// Where the backups go, for logs, status and metrics labels.
    fn location(&self) -> &str {
        ""
    }
    /// Found by a `Database.Dirs` pattern: its schedule starts at a stable
    /// offset within the period, so that many do not start at once.
    fn discovered(&self) -> bool {
        false
    }
    /// The database file (empty for jobs without one).
    fn path(&self) -> &Path {
        Path::new("")
    }
    /// The database has not changed since the last backup this job made
    /// (by SQLite's change counters), so a due backup can be skipped.
    /// Never true before a first backup.
    fn unchanged(&self) -> bool {
        false
    }
    /// Makes an increment stamped `now` (`Backup.IncrementFrequency`):
    /// `Ok(None)` when nothing changed since the last backup (nothing
    /// written, no request to the store); a full backup that starts a new
    /// chain when none can be continued. Jobs without increments make a
    /// full backup.
    fn increment(
        &self,
        now: Timestamp,
        cancel: &CancelFlag,
    ) -> Result<Option<BackupDone>, ScheduleError> {
        self.backup(now, cancel).map(Some)
    }
    /// Fully verifies the newest backup (a restore drill); `Ok(None)` when
    /// there is no backup to drill yet. Jobs without drills return `None`.
    fn drill(&self, cancel: &CancelFlag) -> Result<Option<DrillDone>, ScheduleError> {
        let _ = cancel;
        Ok(None)
    }
}

/// The real job: snapshot and check it (`Backup.Check`, recorded in the
/// seal), seal, store, read back (authenticate every chunk), then delete
/// the oldest backups beyond `Backup.MaxCount`. A failed check fails the
/// run: nothing is stored and retention does not run.
/// Only backups whose header authenticates under the daemon's keyring are
/// counted or deleted; the others are logged and left alone.
pub struct SqliteJob {
    db: DatabaseConfig,
    location: String,
    settings: Arc<Settings>,
    /// SQLite's change counters when the last full backup started.
    marker: std::sync::Mutex<Option<ChangeMarker>>,
    /// The same when the last backup of any kind started.
    increment_marker: std::sync::Mutex<Option<ChangeMarker>>,
    /// The chain increments continue (with `Backup.IncrementFrequency`).
    chain: std::sync::Mutex<ChainSlot>,
    /// Backups kept after the last retention, plus increments since.
    kept: std::sync::atomic::AtomicUsize,
    /// Follows the database's write-ahead log from link to link, and
    /// when the last increment read every page (a scrub).
    tracker: std::sync::Mutex<(IncrementTracker, Option<Instant>)>,
}

/// How often increments read every page anyway, proving that the pages
/// the write-ahead log named were all that changed (a scrub): at most one
/// increment in ten minutes pays for reading the whole database.
const SCRUB_EVERY: Duration = Duration::from_secs(600);

/// Increments further apart than this do not keep a read transaction
/// open in between (it would keep the log growing for that long); after
/// such a pause the log must not have restarted for the changes to be
/// known.
const PIN_AT_MOST: Duration = Duration::from_secs(10);

/// The chain a job continues, and whether its state file was read yet.
#[derive(Default)]
struct ChainSlot {
    state: Option<ChainState>,
    /// The sizes of the chain's full backup and of its increments, as
    /// written (or listed, for a chain continued after a restart).
    growth: Option<ChainGrowth>,
    loaded: bool,
    /// When a full backup made for want of a chain last failed: increments
    /// try again only after [`FULL_RETRY`], not every slot.
    full_failed: Option<Instant>,
}

/// How much a chain holds: its full backup's size and its increments'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChainGrowth {
    full: u64,
    increments: u64,
}

impl ChainGrowth {
    /// The sizes of the chain `state` continues, from a listing: its full
    /// backup and every increment whose authenticated header names it.
    fn listed(state: &ChainState, listed: &[sqlseal_engine::ListedBackup]) -> Option<ChainGrowth> {
        let mut growth = ChainGrowth {
            full: 0,
            increments: 0,
        };
        let mut found = false;
        for b in listed {
            let Some(m) = b.verified_header().map(|h| &h.metadata) else {
                continue;
            };
            match m.chain {
                Some(link) if link.full == state.full => growth.increments += b.entry.size,
                None if m.backup_id == state.full => {
                    growth.full = b.entry.size;
                    found = true;
                }
                _ => {}
            }
        }
        found.then_some(growth)
    }

    /// The increments as a percentage of the full backup, when they are
    /// more than `max_percent` of it (`Backup.IncrementMaxPercent`; 0: never).
    fn over(&self, max_percent: u64) -> Option<u64> {
        let percent = u128::from(self.increments) * 100 / u128::from(self.full.max(1));
        (max_percent > 0 && percent > u128::from(max_percent))
            .then(|| u64::try_from(percent).unwrap_or(u64::MAX))
    }
}

/// How long increments wait before making another full backup for want of
/// a chain, after one failed (the scheduled full backups keep their slots).
const FULL_RETRY: Duration = Duration::from_secs(60);

/// Where the chain state of the database at `db` for `location` is kept:
/// beside the database (the one place that holds its plaintext already),
/// hidden, one file per location.
pub fn chain_state_path(db: &Path, location: &str) -> PathBuf {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in location.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let file = db
        .file_name()
        .map_or_else(|| "database".into(), |n| n.to_string_lossy().into_owned());
    db.with_file_name(format!(".{file}.sqlseal-chain-{hash:016x}"))
}

impl SqliteJob {
    /// The job for one configured database.
    pub fn new(db: DatabaseConfig, settings: Arc<Settings>) -> Self {
        let mut tracked = SnapshotOptions::new(sqlseal_source::Method::DbPage);
        tracked.check = sqlseal_source::CheckLevel::None;
        let tracker = IncrementTracker::new(&db.path, tracked);
        SqliteJob {
            location: db.store.location(),
            db,
            settings,
            marker: std::sync::Mutex::new(None),
            increment_marker: std::sync::Mutex::new(None),
            chain: std::sync::Mutex::new(ChainSlot::default()),
            kept: std::sync::atomic::AtomicUsize::new(0),
            tracker: std::sync::Mutex::new((tracker, None)),
        }
    }

    /// Whether the increment tracker pins a snapshot of the database: then
    /// nothing here may open and close the database's files to read SQLite's
    /// counters, since closing a descriptor ends every POSIX lock this
    /// process holds on that file, the pin's included.
    fn pinned(&self) -> bool {
        self.tracker.lock().map_or(true, |t| t.0.is_pinned())
    }

    fn chain_path(&self) -> PathBuf {
        chain_state_path(&self.db.path, &self.location)
    }

    /// The chain to continue: the one in memory, else (once) the state
    /// file's, if the store still holds the link it names; `None` means a
    /// full backup next.
    fn take_chain(&self) -> Option<ChainState> {
        let mut slot = self.chain.lock().ok()?;
        if let Some(state) = slot.state.take() {
            let max_percent = self.settings.increment_max_percent;
            if let Some(percent) = slot.growth.and_then(|g| g.over(max_percent)) {
                info!(database = %self.db.name, percent, max_percent, "the chain's increments outgrew Backup.IncrementMaxPercent of its full backup; a full backup starts a new chain");
                slot.growth = None;
                return None;
            }
            return Some(state);
        }
        if std::mem::replace(&mut slot.loaded, true) {
            return None;
        }
        let path = self.chain_path();
        let state = match ChainState::load(&path) {
            Ok(Some(state)) => state,
            Ok(None) => return None,
            Err(e) => {
                warn!(database = %self.db.name, error = %e, "chain state unusable; the next backup is a full one");
                return None;
            }
        };
        // The newest link it names must be in the store and authenticate,
        // in the same chain: otherwise increments would follow nothing.
        let listed = list_backups(self.db.store.as_ref(), Some(&self.settings.keyring)).ok()?;
        let verified = listed.iter().filter(|b| b.is_verified()).count();
        self.kept
            .store(verified, std::sync::atomic::Ordering::Relaxed);
        if state.found_in(&listed) {
            info!(database = %self.db.name, link = state.sequence, "continuing the chain of the last run");
            slot.growth = ChainGrowth::listed(&state, &listed);
            slot.state = Some(state);
            drop(slot);
            // Continued only within Backup.IncrementMaxPercent.
            self.take_chain()
        } else {
            warn!(database = %self.db.name, path = %path.display(), "the chain state names a backup that is not in the store; the next backup is a full one");
            None
        }
    }

    /// Keeps `state` for the next increment, in memory and on disk.
    /// `made` is the size of the backup that made it: a full backup that
    /// starts the chain, or (`increment`) the chain's next link.
    fn keep_chain(&self, state: ChainState, made: u64, increment: bool) {
        if let Err(e) = state.save(&self.chain_path()) {
            warn!(database = %self.db.name, error = %e, "could not write the chain state; a restart starts a new chain");
        }
        if let Ok(mut slot) = self.chain.lock() {
            slot.state = Some(state);
            slot.loaded = true;
            slot.growth = match (slot.growth, increment) {
                (Some(g), true) => Some(ChainGrowth {
                    increments: g.increments.saturating_add(made),
                    ..g
                }),
                // Increments of a chain of unknown size: not bounded.
                (None, true) => None,
                (_, false) => Some(ChainGrowth {
                    full: made,
                    increments: 0,
                }),
            };
        }
    }

    /// A full backup that starts a chain, made at an increment slot; after
    /// one failed, the next waits [`FULL_RETRY`] (a database that fails its
    /// check is not re-read every second).
    fn full_for_want_of_a_chain(
        &self,
        now: Timestamp,
        cancel: &CancelFlag,
    ) -> Result<Option<BackupDone>, ScheduleError> {
        let recent_failure = self
            .chain
            .lock()
            .ok()
            .and_then(|slot| slot.full_failed)
            .is_some_and(|at| at.elapsed() < FULL_RETRY);
        if recent_failure {
            return Ok(None);
        }
        info!(database = %self.db.name, "no chain to continue; a full backup starts one");
        let result = self.backup(now, cancel);
        if let Ok(mut slot) = self.chain.lock() {
            slot.full_failed = result.is_err().then(Instant::now);
        }
        result.map(Some)
    }

    /// Puts back the chain `take_chain` gave, unchanged.
    fn keep_chain_in_memory(&self, state: ChainState) {
        if let Ok(mut slot) = self.chain.lock() {
            slot.state = Some(state);
        }
    }

    fn source(&self, check: sqlseal_source::CheckLevel) -> SqliteSource {
        let s = &self.settings;
        let mut snapshot = SnapshotOptions::new(s.method);
        snapshot.temp_dir = s.snapshot_temp_dir.clone();
        snapshot.check = check;
        // What an upload holds in memory comes off the check's cache.
        snapshot.leave_room_for(self.db.store.write_buffer_bytes());
        SqliteSource::new(&self.db.path, snapshot)
    }

    fn backup_options(&self, now: Timestamp) -> BackupOptions {
        let s = &self.settings;
        let mut options = BackupOptions::new(s.recipients.clone(), s.signer.clone());
        options.chunk_size = s.chunk_size;
        options.created_at = Some(CreatedAt::from_timestamp(now));
        options.database_name = Some(self.db.name.clone());
        options
    }

    fn engine_err(&self, source: EngineError) -> ScheduleError {
        ScheduleError::Engine {
            database: self.db.name.clone(),
            source,
        }
    }
}

impl DatabaseJob for SqliteJob {
    fn name(&self) -> &str {
        &self.db.name
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn discovered(&self) -> bool {
        self.db.discovered
    }

    fn path(&self) -> &Path {
        &self.db.path
    }

    fn unchanged(&self) -> bool {
        // While increments pin a snapshot, the database's files are not
        // opened here (see `pinned`): the full backup runs when due.
        if self.pinned() {
            return false;
        }
        let last = self.marker.lock().map(|m| m.clone()).unwrap_or(None);
        last.is_some() && change_marker(&self.db.path) == last
    }

    fn increment(
        &self,
        now: Timestamp,
        cancel: &CancelFlag,
    ) -> Result<Option<BackupDone>, ScheduleError> {
        if self.db.path.symlink_metadata().is_err() {
            // Let go of the old file: a pin would keep it open.
            if let Ok(mut tracking) = self.tracker.lock() {
                tracking.0.forget();
            }
            return Err(ScheduleError::DatabaseMissing(self.db.path.clone()));
        }
        // Idle: SQLite's counters did not move since the last backup of
        // any kind; no snapshot, no request. While a snapshot is pinned,
        // the tracker tells from the WAL index it keeps open.
        let pinned_idle = self
            .tracker
            .lock()
            .ok()
            .map(|t| (t.0.is_pinned(), t.0.unchanged_since_last()));
        let marker = match pinned_idle {
            Some((true, true)) => return Ok(None),
            Some((true, false)) => None,
            _ => change_marker(&self.db.path),
        };
        let last = self
            .increment_marker
            .lock()
            .map(|m| m.clone())
            .unwrap_or(None);
        if last.is_some() && marker == last {
            return Ok(None);
        }
        let Some(state) = self.take_chain() else {
            return self.full_for_want_of_a_chain(now, cancel);
        };
        // Increments record no integrity check (a check of the whole
        // image every second would cost more than the increment).
        let options = self.backup_options(now);
        let store = self.db.store.as_ref();
        let mut tracking = self.tracker.lock().unwrap_or_else(|poisoned| {
            // A panic mid-increment: follow nothing rather than guess.
            let mut tracking = poisoned.into_inner();
            tracking.0.forget();
            tracking
        });
        let (tracker, last_scrub) = &mut *tracking;
        let scrub = last_scrub.is_none_or(|at| at.elapsed() >= SCRUB_EVERY);
        let outcome =
            create_tracked_increment(tracker, store, &options, &state, scrub, cancel, &NoProgress);
        if let Some(scan) = tracker.last_scan() {
            debug!(database = %self.db.name, pages_read = scan.pages_read, pages_changed = scan.pages_changed, whole = scan.whole, unknown_because = scan.unknown_because.unwrap_or(""), "increment scan");
            if scan.whole && outcome.is_ok() {
                *last_scrub = Some(Instant::now());
            }
        }
        if outcome.is_ok() {
            if let Err(e) = tracker.settle() {
                debug!(database = %self.db.name, error = %e, "the write-ahead log was not settled");
            }
            if self
                .settings
                .increment_frequency
                .is_none_or(|every| every > PIN_AT_MOST)
            {
                tracker.release_pin();
            }
        }
        drop(tracking);
        match outcome {
            Ok(IncrementOutcome::Unchanged) => {
                self.keep_chain_in_memory(state);
                if let Ok(mut m) = self.increment_marker.lock() {
                    *m = marker;
                }
                Ok(None)
            }
            Ok(IncrementOutcome::Written(made, next)) => {
                self.keep_chain(next, made.size, true);
                // The parent's index becomes the next link's.
                if let Ok(mut tracking) = self.tracker.lock() {
                    tracking.0.recycle(state);
                }
                if let Ok(mut m) = self.increment_marker.lock() {
                    *m = marker;
                }
                let kept = self.kept.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Ok(Some(BackupDone {
                    name: made.name,
                    created: made.header.metadata.created.timestamp(),
                    deleted: Vec::new(),
                    kept,
                    size: made.size,
                    increment: true,
                }))
            }
            Err(e @ EngineError::ChainState { .. }) => {
                warn!(database = %self.db.name, error = %e, "the chain cannot be continued; a full backup starts a new one");
                self.full_for_want_of_a_chain(now, cancel)
            }
            Err(e) => {
                // Nothing became visible: the same parent is still the
                // newest link.
                self.keep_chain_in_memory(state);
                Err(self.engine_err(e))
            }
        }
    }

    fn drill(&self, cancel: &CancelFlag) -> Result<Option<DrillDone>, ScheduleError> {
        let store = self.db.store.as_ref();
        let s = &self.settings;
        let listed = match list_backups(store, Some(&s.keyring)) {
            Ok(listed) => listed,
            Err(EngineError::Store(StoreError::NoDirectory(_))) => return Ok(None),
            Err(e) => return Err(self.engine_err(e)),
        };
        let Some(newest) = listed
            .iter()
            .filter_map(|b| b.verified_created().map(|c| (c, &b.entry.name)))
            .max()
            .map(|(_, name)| name.clone())
        else {
            return Ok(None);
        };
        // The image goes to a private directory beside the database (the
        // one place that already holds its plaintext) or Backup.TempDir.
        let temp_dir = s.temp_dir.clone().or_else(|| {
            Some(match self.db.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => Path::new(".").to_path_buf(),
            })
        });
        // A drill always runs the full check on the restored image, even
        // when the backup recorded one: it tests the restore path itself.
        let options = VerifyOptions {
            temp_dir,
            integrity_check: IntegrityCheck::Full,
            ..VerifyOptions::default()
        };
        let report = verify_backup(store, &newest, &s.keyring, &options, cancel, &NoProgress)
            .map_err(|e| self.engine_err(e))?;
        Ok(Some(DrillDone {
            backup: newest,
            check: format!(
                "{} check ran on the restored image; recorded at backup time: {}",
                report.check_run.name(),
                report.recorded_check.name()
            ),
        }))
    }

    /// The newest full backup's time (increments do not postpone the
    /// next full backup).
    fn newest_backup(&self) -> Result<Option<Timestamp>, ScheduleError> {
        match list_backups(self.db.store.as_ref(), Some(&self.settings.keyring)) {
            Ok(listed) => Ok(listed
                .iter()
                .filter_map(|b| b.verified_header())
                .filter(|h| !h.metadata.is_increment())
                .map(|h| h.metadata.created)
                .max()
                .map(CreatedAt::timestamp)),
            Err(EngineError::Store(StoreError::NoDirectory(_))) => Ok(None),
            Err(e) => Err(self.engine_err(e)),
        }
    }

    fn backup(&self, now: Timestamp, cancel: &CancelFlag) -> Result<BackupDone, ScheduleError> {
        // Missing and nothing restored: the application has not created it
        // yet. Not an error, and nothing to clean or back up.
        if self.db.path.symlink_metadata().is_err() {
            return Err(ScheduleError::DatabaseMissing(self.db.path.clone()));
        }
        // Read before the snapshot, so a commit during it means another
        // backup next time, never a missed one (see `unchanged`).
        let marker = if self.pinned() {
            None
        } else {
            change_marker(&self.db.path)
        };
        let store = self.db.store.as_ref();
        match store.clean_stale(sqlseal_store::STALE_TEMP_AGE) {
            Ok(0) => {}
            Ok(n) => info!(database = %self.db.name, removed = n, "removed stale temporary files"),
            Err(e) => {
                warn!(database = %self.db.name, error = %e, "could not clean stale temporary files")
            }
        }
        let s = &self.settings;
        // Backup.Check: a snapshot that fails it fails this run, before
        // anything is stored or deleted.
        let source = self.source(s.check);
        let options = self.backup_options(now);
        // With increments, the full backup starts a chain: its pages are
        // hashed on the way for the first increment to compare with.
        let (made, chain) = if s.increment_frequency.is_some() {
            let (made, state) = start_chain(&source, store, &options, cancel, &NoProgress)
                .map_err(|e| self.engine_err(e))?;
            (made, Some(state))
        } else {
            let made = create_backup(&source, store, &options, cancel, &NoProgress)
                .map_err(|e| self.engine_err(e))?;
            (made, None)
        };
        // Read the new backup back before deleting anything older.
        let read_back = VerifyOptions {
            temp_dir: s.temp_dir.clone(),
            integrity_check: IntegrityCheck::None,
            ..VerifyOptions::default()
        };
        // Once the backup is in the store, the read-back and retention are
        // finished even during shutdown (within the stop grace period), so
        // that a stop never leaves more than MaxCount backups behind.
        let verified = verify_backup(
            store,
            &made.name,
            &s.keyring,
            &read_back,
            &CancelFlag::new(),
            &NoProgress,
        )
        .map_err(|e| self.engine_err(e))?;
        if let Err(e) = record_newest(
            &s.newest_record,
            &self.db.name,
            NewestBackup::from_header(&made.name, &verified.header),
        ) {
            warn!(database = %self.db.name, error = %e, "could not record the newest backup");
        }
        let listed = list_backups(store, Some(&s.keyring)).map_err(|e| self.engine_err(e))?;
        for b in &listed {
            if let HeaderCheck::Refused(reason) = &b.check {
                warn!(database = %self.db.name, backup = %b.entry.name, error = %reason, "backup does not authenticate; retention neither counts nor deletes it");
            }
        }
        if let Some(state) = chain {
            // Only now, with the backup durable and read back, do
            // increments follow it.
            self.keep_chain(state, made.size, false);
        }
        if let Ok(mut m) = self.increment_marker.lock() {
            *m = marker.clone();
        }
        let members: Vec<ChainMember> = listed
            .iter()
            .filter_map(|b| {
                b.verified_header()
                    .map(|h| ChainMember::from_header(&b.entry.name, h))
            })
            .collect();
        let increments = IncrementRetention {
            max_age: s.increment_max_age,
            now: Some(now),
            // A full backup that did not authenticate may be the one an
            // increment follows: keep such increments.
            keep_orphans: listed.iter().any(|b| !b.is_verified()),
        };
        let decisions = decide_chains(&members, &s.retention, increments);
        // The backup just made and read back is never deleted, even if a
        // validly signed one claims a later time.
        let doomed: Vec<String> = deletion_order(&decisions, &members)
            .into_iter()
            .filter(|name| *name != made.name)
            .collect();
        let mut deleted = Vec::new();
        for name in doomed {
            match store.delete(&name) {
                Ok(()) => {
                    info!(database = %self.db.name, backup = %name, "deleted by retention");
                    deleted.push(name);
                }
                Err(e) => {
                    warn!(database = %self.db.name, backup = %name, error = %e, "retention could not delete")
                }
            }
        }
        if let Ok(mut m) = self.marker.lock() {
            *m = marker;
        }
        let kept = members.len() - deleted.len();
        self.kept.store(kept, std::sync::atomic::Ordering::Relaxed);
        Ok(BackupDone {
            name: made.name,
            created: verified.header.metadata.created.timestamp(),
            kept,
            deleted,
            size: made.size,
            increment: false,
        })
    }
}

/// Which database locks a scheduler holds while it runs.
enum Locking {
    /// None (test doubles and embedders' own jobs).
    None,
    /// Taken before the scheduler was built (see [`Scheduler::holding`]).
    Held(DatabaseLocks),
    /// To be taken when it starts: each database and its backup location.
    Take(Vec<(PathBuf, String)>),
}

/// Runs scheduled backups until cancelled.
pub struct Scheduler {
    jobs: Vec<Arc<dyn DatabaseJob>>,
    frequency: Option<Duration>,
    drill_frequency: Option<Duration>,
    increment_frequency: Option<Duration>,
    clock: Arc<dyn Clock>,
    status: Option<Arc<StatusWriter>>,
    observers: Vec<Arc<dyn Observer>>,
    /// Path, name and location of each configured database (for
    /// [`Scheduler::note_auto_restore`]).
    targets: Vec<(PathBuf, String, String)>,
    locks: Locking,
    /// The settings, when built from them: `Database.Dirs` is watched.
    settings: Option<Arc<Settings>>,
    /// Backups and drills in flight at once.
    concurrency: usize,
}

impl Scheduler {
    /// A scheduler for every configured database, on the system clock.
    pub fn new(settings: Settings) -> Self {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// The same on another clock.
    pub fn with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Self {
        let status = StatusWriter::for_settings(&settings);
        let targets: Vec<(PathBuf, String, String)> = settings
            .databases
            .iter()
            .map(|d| (d.path.clone(), d.name.clone(), d.store.location()))
            .collect();
        let locks = Locking::Take(
            targets
                .iter()
                .map(|(path, _, location)| (path.clone(), location.clone()))
                .collect(),
        );
        let settings = Arc::new(settings);
        let jobs = settings
            .databases
            .iter()
            .map(|db| {
                Arc::new(SqliteJob::new(db.clone(), settings.clone())) as Arc<dyn DatabaseJob>
            })
            .collect();
        Scheduler {
            jobs,
            frequency: settings.frequency,
            drill_frequency: settings.verify_frequency,
            increment_frequency: settings.increment_frequency,
            clock,
            status: Some(Arc::new(status)),
            observers: Vec::new(),
            targets,
            locks,
            concurrency: settings.concurrency,
            settings: Some(settings),
        }
    }

    /// Holds `locks` (from [`lock_databases`](crate::lock_databases)) for
    /// as long as the scheduler runs, instead of taking them when it starts.
    pub fn holding(mut self, locks: DatabaseLocks) -> Self {
        self.locks = Locking::Held(locks);
        self
    }

    /// A scheduler over arbitrary jobs (for tests and embedders), without a status file.
    pub fn from_jobs(
        jobs: Vec<Arc<dyn DatabaseJob>>,
        frequency: Option<Duration>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Scheduler {
            jobs,
            frequency,
            drill_frequency: None,
            increment_frequency: None,
            clock,
            status: None,
            observers: Vec::new(),
            targets: Vec::new(),
            locks: Locking::None,
            settings: None,
            concurrency: usize::MAX >> 4,
        }
    }

    /// Increments every `every` between full backups (`None`: none).
    pub fn incrementing(mut self, every: Option<Duration>) -> Self {
        self.increment_frequency = every;
        self
    }

    /// At most `n` backups and drills in flight at once (at least one).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Runs a restore drill of each database every `every` (`None`: never).
    pub fn drilling(mut self, every: Option<Duration>) -> Self {
        self.drill_frequency = every;
        self
    }

    /// Tells `observer` every [`Event`] from now on.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The status writer (its in-memory facts serve `/healthz`); `None`
    /// for schedulers built with [`Scheduler::from_jobs`].
    pub fn status(&self) -> Option<Arc<StatusWriter>> {
        self.status.clone()
    }

    /// Records what [`auto_restore_settings`](crate::auto_restore_settings)
    /// did, in the status file and as [`Event::AutoRestore`] for observers.
    pub fn note_auto_restore(&self, report: &AutoRestoreReport) {
        for (path, outcome) in &report.databases {
            for (_, name, location) in self.targets.iter().filter(|(p, ..)| p == path) {
                let target = Target {
                    database: name,
                    location,
                };
                emit(
                    &self.observers,
                    &Event::AutoRestore {
                        target,
                        outcome: outcome.kind(),
                    },
                );
                let described = outcome.describe();
                if let Some(status) = &self.status
                    && let Err(e) =
                        status.update_at(name, location, |s| s.auto_restore = Some(described))
                {
                    warn!(error = %e, "could not write the status file");
                }
            }
        }
    }

    /// Runs until `token` is cancelled, then cancels the backup in flight
    /// at its next chunk boundary and returns once every task has stopped.
    /// With `Backup.Frequency` 0 and no drills it only waits for the token.
    /// A scheduler built from settings holds the lock on each database and
    /// location throughout (taking them first unless given
    /// [`Scheduler::holding`]), and fails at once with
    /// [`ScheduleError::Locked`] if another process holds one.
    pub async fn run(self, token: CancellationToken) -> Result<(), ScheduleError> {
        // Dropped, and so released, only when the run ends.
        let mut locks = match self.locks {
            Locking::None => None,
            Locking::Held(locks) => Some(locks),
            Locking::Take(databases) => Some(lock_all(databases)?),
        };
        if self.frequency.is_none() {
            info!("Backup.Frequency is 0: scheduled backups are disabled");
        }
        if self.frequency.is_none()
            && self.drill_frequency.is_none()
            && self.increment_frequency.is_none()
        {
            token.cancelled().await;
            return Ok(());
        }
        let context = Arc::new(LoopContext {
            frequency: self.frequency,
            drill_frequency: self.drill_frequency,
            increment_frequency: self.increment_frequency,
            clock: self.clock,
            status: self.status,
            observers: self.observers,
            permits: Arc::new(tokio::sync::Semaphore::new(
                self.concurrency
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
        });
        // Changes the status writer held back are written on its period,
        // and once more when the scheduler stops.
        let flusher = context.status.clone().map(|status| {
            let token = token.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = token.cancelled() => break,
                        () = tokio::time::sleep(crate::status::STATUS_WRITE_INTERVAL) => {}
                    }
                    if let Err(e) = status.flush() {
                        warn!(error = %e, "could not write the status file");
                    }
                }
            })
        });
        let mut tasks = JoinSet::new();
        // Each database's loop stops on its own token (a child of `token`),
        // so a database that disappears can be dropped alone.
        let mut running = Running::new();
        let mut found_locks = HashMap::new();
        for job in self.jobs {
            let child = token.child_token();
            running.insert(
                (job.name().to_owned(), job.location().to_owned()),
                (child.clone(), job.path().to_path_buf(), job.discovered()),
            );
            tasks.spawn(database_loop(job, context.clone(), child));
        }
        let (changes_tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let settings = self.settings.filter(|s| !s.dirs.is_empty());
        if let Some(settings) = &settings {
            let known = settings
                .databases
                .iter()
                .filter(|d| d.discovered)
                .map(|d| (d.name.clone(), d.path.clone()))
                .collect();
            tokio::spawn(crate::watch::watch(
                settings.dirs.clone(),
                known,
                changes_tx,
                token.clone(),
            ));
        } else {
            drop(changes_tx);
        }
        let mut first_error = None;
        loop {
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = joined {
                        first_error.get_or_insert(ScheduleError::Task(e));
                    }
                }
                Some(change) = changes.recv() => {
                    if let Some(settings) = &settings {
                        let mut loops = Loops {
                            running: &mut running,
                            tasks: &mut tasks,
                            locks: locks.as_mut(),
                            found_locks: &mut found_locks,
                        };
                        apply_change(change, settings, &context, &mut loops, &token);
                    }
                }
                () = token.cancelled(), if tasks.is_empty() => break,
                else => break,
            }
        }
        if let Some(flusher) = flusher {
            flusher.abort();
        }
        if let Some(status) = &context.status
            && let Err(e) = status.flush()
        {
            warn!(error = %e, "could not write the status file");
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Spawns [`Scheduler::run`] on the current tokio runtime.
    pub fn spawn(
        self,
        token: CancellationToken,
    ) -> tokio::task::JoinHandle<Result<(), ScheduleError>> {
        tokio::spawn(self.run(token))
    }
}

/// The loops running: (database, location) -> its token, its path, and
/// whether a `Database.Dirs` pattern found it.
type Running = HashMap<(String, String), (CancellationToken, PathBuf, bool)>;

/// What [`apply_change`] changes.
struct Loops<'a> {
    running: &'a mut Running,
    tasks: &'a mut JoinSet<()>,
    /// The locks taken at start-up (released when their database goes).
    locks: Option<&'a mut DatabaseLocks>,
    /// The locks of databases found while running, dropped (released)
    /// as soon as their database goes.
    found_locks: &'a mut HashMap<(String, String), sqlseal_store::DatabaseLock>,
}

/// Starts or stops the loops (one per location) of a database that
/// `Database.Dirs` found or lost.
fn apply_change(
    change: crate::watch::Change,
    settings: &Arc<Settings>,
    cx: &Arc<LoopContext>,
    loops: &mut Loops<'_>,
    token: &CancellationToken,
) {
    let running = &mut *loops.running;
    match change {
        crate::watch::Change::Added(db) => {
            if running.keys().any(|(name, _)| *name == db.name) {
                return;
            }
            info!(database = %db.name, path = %db.path.display(), "database found; scheduled");
            for location in &settings.locations {
                let (name, path) = (db.name.clone(), db.path.clone());
                let mut config = match crate::config::database_config(
                    location,
                    &settings.s3,
                    db.clone(),
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        error!(database = %name, error = %e, "found by Database.Dirs but cannot be scheduled");
                        continue;
                    }
                };
                config.discovered = true;
                let location = config.store.location();
                let lock = match sqlseal_store::DatabaseLock::acquire(&path, &location) {
                    Ok(lock) => lock,
                    Err(e) => {
                        error!(database = %name, error = %e, "found by Database.Dirs but not scheduled");
                        continue;
                    }
                };
                if let Some(status) = &cx.status
                    && let Err(e) = status.add(&name, path.clone(), location.clone())
                {
                    warn!(error = %e, "could not write the status file");
                }
                let job =
                    Arc::new(SqliteJob::new(config, settings.clone())) as Arc<dyn DatabaseJob>;
                let child = token.child_token();
                loops
                    .found_locks
                    .insert((name.clone(), location.clone()), lock);
                running.insert((name, location), (child.clone(), path, true));
                let cx = cx.clone();
                loops
                    .tasks
                    .spawn(async move { database_loop(job, cx, child).await });
            }
        }
        crate::watch::Change::Removed(name) => {
            // Only databases found by a pattern are dropped; a listed one
            // that goes missing is waited for.
            let gone: Vec<(String, String)> = running
                .iter()
                .filter(|((n, _), (_, _, discovered))| *n == name && *discovered)
                .map(|(key, _)| key.clone())
                .collect();
            if gone.is_empty() {
                return;
            }
            for key in gone {
                loops.found_locks.remove(&key);
                if let Some((child, path, _)) = running.remove(&key) {
                    child.cancel();
                    // A lock taken at start-up is let go, so that the
                    // database can be scheduled again if it comes back.
                    if let Some(locks) = loops.locks.as_deref_mut() {
                        locks.release(&path, &key.1);
                    }
                }
                cx.emit(&Event::Unscheduled {
                    target: Target {
                        database: &key.0,
                        location: &key.1,
                    },
                });
                if let Some(status) = &cx.status
                    && let Err(e) = status.remove(&key.0, &key.1)
                {
                    warn!(error = %e, "could not write the status file");
                }
            }
            info!(database = %name, "database gone; no longer scheduled (its backups are kept)");
        }
    }
}

/// A stable offset within `period` for `name` (FNV-1a), so that databases
/// found together start their schedules spread over the period.
fn stable_offset(name: &str, period: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(hash % millis)
}

fn to_std(span: jiff::SignedDuration) -> Duration {
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}

/// When the first backup is due: the newest backup's time plus the
/// frequency, or now if there is none.
fn first_due(newest: Option<Timestamp>, now: Timestamp, frequency: Duration) -> Timestamp {
    match newest {
        Some(t) => t.checked_add(frequency).unwrap_or(now),
        None => now,
    }
}

/// When the first drill is due: one period after the last one the status
/// file remembers, but never more than one period from now (the file is
/// local state, not authenticated); now if there was none.
fn first_drill_due(last: Option<Timestamp>, now: Timestamp, every: Duration) -> Timestamp {
    let latest = now.checked_add(every).unwrap_or(now);
    match last.and_then(|t| t.checked_add(every).ok()) {
        Some(t) => t.min(latest),
        None => now,
    }
}

/// How long to wait for `due`: never negative, and never more than one
/// period, so a clock set back cannot stall the schedule.
fn wait_for(due: Timestamp, now: Timestamp, period: Duration) -> Duration {
    to_std(now.duration_until(due)).min(period)
}

fn emit(observers: &[Arc<dyn Observer>], event: &Event<'_>) {
    for o in observers {
        o.observe(event);
    }
}

/// What every database's loop shares.
struct LoopContext {
    frequency: Option<Duration>,
    drill_frequency: Option<Duration>,
    increment_frequency: Option<Duration>,
    clock: Arc<dyn Clock>,
    status: Option<Arc<StatusWriter>>,
    observers: Vec<Arc<dyn Observer>>,
    /// Bounds backups and drills in flight (`Backup.Concurrency`).
    permits: Arc<tokio::sync::Semaphore>,
}

impl LoopContext {
    fn update(&self, target: Target<'_>, change: impl FnOnce(&mut crate::DatabaseStatus)) {
        if let Some(status) = &self.status
            && let Err(e) = status.update_at(target.database, target.location, change)
        {
            warn!(error = %e, "could not write the status file");
        }
    }

    fn emit(&self, event: &Event<'_>) {
        emit(&self.observers, event);
    }

    /// Reports a backup (full or increment) that succeeded: event and status.
    fn succeeded(
        &self,
        target: Target<'_>,
        started: Timestamp,
        duration: Duration,
        done: &BackupDone,
    ) {
        self.emit(&Event::BackupSucceeded {
            target,
            started,
            created: done.created,
            duration,
            bytes: done.size,
            kept: done.kept,
        });
        self.update(target, |s| {
            s.last_success = Some(now_string(done.created));
            s.last_backup = Some(done.name.clone());
            s.last_error = None;
            s.backup_count = Some(done.kept);
            s.last_duration_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
            s.last_size = Some(done.size);
        });
    }

    /// Reports a backup (full or increment) that failed: event and status.
    fn failed(
        &self,
        target: Target<'_>,
        started: Timestamp,
        duration: Duration,
        error: &ScheduleError,
    ) {
        self.emit(&Event::BackupFailed {
            target,
            started,
            duration,
            kind: error.kind(),
        });
        let message = error.to_string();
        self.update(target, |s| s.last_error = Some(message));
    }

    /// Runs `work` on a blocking thread once a permit is free; on shutdown
    /// raises its cancel flag and still waits for it (it stops at its next
    /// chunk boundary). `None` when shutdown came before it started.
    async fn run_blocking<T: Send + 'static>(
        &self,
        token: &CancellationToken,
        work: impl FnOnce(&CancelFlag) -> Result<T, ScheduleError> + Send + 'static,
    ) -> Option<Result<T, ScheduleError>> {
        let permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit.ok()?,
            () = token.cancelled() => return None,
        };
        let cancel = CancelFlag::new();
        let run = {
            let cancel = cancel.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                work(&cancel)
            })
        };
        tokio::pin!(run);
        let result = tokio::select! {
            r = &mut run => r,
            () = token.cancelled() => {
                cancel.cancel();
                run.await
            }
        };
        Some(result.unwrap_or_else(|e| Err(ScheduleError::Task(e))))
    }
}

async fn database_loop(job: Arc<dyn DatabaseJob>, cx: Arc<LoopContext>, token: CancellationToken) {
    let name = job.name().to_owned();
    let location = job.location().to_owned();
    let target = Target {
        database: &name,
        location: &location,
    };
    let newest = {
        let job = job.clone();
        tokio::task::spawn_blocking(move || job.newest_backup()).await
    };
    let newest = match newest {
        Ok(Ok(newest)) => newest,
        Ok(Err(e)) => {
            warn!(database = %name, error = %e, "could not list existing backups; backing up now");
            None
        }
        Err(e) => {
            warn!(database = %name, error = %e, "listing task failed; backing up now");
            None
        }
    };
    cx.emit(&Event::Scheduled {
        target,
        newest,
        newest_name: None,
    });
    if let Some(newest) = newest {
        cx.update(target, |s| s.last_success = Some(now_string(newest)));
    }
    let now = cx.clock.now();
    let mut due = cx.frequency.map(|f| match newest {
        // Found among many by a pattern: start at a stable point of the
        // period rather than all at once.
        None if job.discovered() => now.checked_add(stable_offset(&name, f)).unwrap_or(now),
        _ => first_due(newest, now, f),
    });
    let last_drill = cx.status.as_ref().and_then(|s| {
        s.snapshot()
            .databases
            .iter()
            .find(|d| d.database == name && d.location == location)
            .and_then(|d| d.last_drill.as_deref().and_then(|t| t.parse().ok()))
    });
    let mut drill_due = cx
        .drill_frequency
        .map(|every| first_drill_due(last_drill, now, every));
    let mut increment_due = cx
        .increment_frequency
        .map(|every| now.checked_add(every).unwrap_or(now));
    // Whether "waiting for the database to be created" was logged, so that
    // it is said once, not at every slot.
    let mut waiting = false;
    loop {
        // The earliest of the next backup, increment and drill; on a tie a
        // full backup goes first, then an increment, so that a drill sees
        // the newest backup.
        let next = [
            (due, cx.frequency, Slot::Backup),
            (increment_due, cx.increment_frequency, Slot::Increment),
            (drill_due, cx.drill_frequency, Slot::Drill),
        ]
        .into_iter()
        .filter_map(|(when, every, slot)| Some((when?, slot, every?)))
        .min_by_key(|(when, slot, _)| (*when, *slot));
        let Some((when, slot, period)) = next else {
            token.cancelled().await;
            break;
        };
        let drill = slot == Slot::Drill;
        cx.update(target, |s| {
            s.next_due = due.map(now_string);
            s.next_drill = drill_due.map(now_string);
        });
        if !waiting && slot == Slot::Backup {
            info!(database = %name, next_due = %now_string(when), "next backup scheduled");
        }
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(wait_for(when, cx.clock.now(), period)) => {}
        }
        let started = cx.clock.now();
        if drill {
            if !run_drill(&job, &cx, &token, target, started).await {
                break;
            }
            drill_due = started.checked_add(period).ok();
            continue;
        }
        if slot == Slot::Increment {
            increment_due = started.checked_add(period).ok().or(Some(started));
            match run_increment(&job, &cx, &token, target, started).await {
                IncrementRun::Stopped => break,
                IncrementRun::Done(Some(created)) => {
                    // It was a full backup (no chain to continue).
                    due = created
                        .checked_add(cx.frequency.unwrap_or(period))
                        .ok()
                        .or(Some(started));
                }
                IncrementRun::Done(None) => {}
            }
            continue;
        }
        if job.unchanged() {
            tracing::debug!(database = %name, "unchanged since its last backup; none needed");
            cx.emit(&Event::BackupUnchanged {
                target,
                at: started,
            });
            cx.update(target, |s| s.unchanged_at = Some(now_string(started)));
            due = started.checked_add(period).ok().or(Some(started));
            continue;
        }
        cx.update(target, |s| s.last_attempt = Some(now_string(started)));
        let clock = Instant::now();
        let result = {
            let job = job.clone();
            cx.run_blocking(&token, move |cancel| job.backup(started, cancel))
                .await
        };
        let Some(result) = result else { break };
        let duration = clock.elapsed();
        match result {
            Ok(done) => {
                waiting = false;
                info!(database = %name, backup = %done.name, deleted = done.deleted.len(), kept = done.kept, "backup done");
                cx.succeeded(target, started, duration, &done);
                due = done.created.checked_add(period).ok().or(Some(started));
            }
            Err(ScheduleError::DatabaseMissing(path)) => {
                if !waiting {
                    info!(database = %name, path = %path.display(), "waiting for DB to be created; it is backed up once it exists");
                    waiting = true;
                }
                // Look again soon rather than a whole period later.
                due = started
                    .checked_add(period.min(MISSING_POLL))
                    .ok()
                    .or(Some(started));
            }
            Err(e) if token.is_cancelled() => {
                info!(database = %name, error = %e, "backup cancelled by shutdown");
                break;
            }
            Err(e) => {
                warn!(database = %name, error = %e, "backup failed; retrying at the next slot");
                cx.failed(target, started, duration, &e);
                due = started.checked_add(period).ok().or(Some(started));
            }
        }
    }
    info!(database = %name, "scheduler stopped");
}

/// What a loop runs at a due time; ordered for ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Backup,
    Increment,
    Drill,
}

/// How an increment slot ended.
enum IncrementRun {
    /// Shutdown interrupted it.
    Stopped,
    /// Done; with the creation time of a full backup made instead.
    Done(Option<Timestamp>),
}

/// One increment (or, with no chain to continue, a full backup).
async fn run_increment(
    job: &Arc<dyn DatabaseJob>,
    cx: &LoopContext,
    token: &CancellationToken,
    target: Target<'_>,
    started: Timestamp,
) -> IncrementRun {
    let name = target.database;
    let clock = Instant::now();
    let result = {
        let job = job.clone();
        cx.run_blocking(token, move |cancel| job.increment(started, cancel))
            .await
    };
    let Some(result) = result else {
        return IncrementRun::Stopped;
    };
    let duration = clock.elapsed();
    match result {
        Ok(None) | Err(ScheduleError::DatabaseMissing(_)) => IncrementRun::Done(None),
        Ok(Some(done)) => {
            let full = !done.increment;
            tracing::debug!(database = %name, backup = %done.name, bytes = done.size, "increment done");
            cx.succeeded(target, started, duration, &done);
            IncrementRun::Done(full.then_some(done.created))
        }
        Err(e) if token.is_cancelled() => {
            info!(database = %name, error = %e, "increment cancelled by shutdown");
            IncrementRun::Stopped
        }
        Err(e) => {
            warn!(database = %name, error = %e, "increment failed; retrying at the next slot");
            cx.failed(target, started, duration, &e);
            IncrementRun::Done(None)
        }
    }
}

/// One restore drill; false when shutdown interrupted it.
async fn run_drill(
    job: &Arc<dyn DatabaseJob>,
    cx: &LoopContext,
    token: &CancellationToken,
    target: Target<'_>,
    started: Timestamp,
) -> bool {
    let name = target.database;
    let clock = Instant::now();
    let result = {
        let job = job.clone();
        cx.run_blocking(token, move |cancel| job.drill(cancel))
            .await
    };
    let Some(result) = result else {
        return false;
    };
    let duration = clock.elapsed();
    match result {
        Ok(Some(done)) => {
            info!(database = %name, backup = %done.backup, check = %done.check, seconds = duration.as_secs_f64(), "restore drill passed");
            cx.emit(&Event::DrillFinished {
                target,
                started,
                duration,
                failure: None,
            });
            cx.update(target, |s| {
                s.last_drill = Some(now_string(started));
                s.last_drill_backup = Some(done.backup);
                s.last_drill_check = Some(done.check);
                s.last_drill_error = None;
            });
        }
        Ok(None) => info!(database = %name, "restore drill: no verified backup to drill yet"),
        Err(e) if token.is_cancelled() => {
            info!(database = %name, error = %e, "restore drill cancelled by shutdown");
            return false;
        }
        Err(e) => {
            error!(database = %name, error = %e, "restore drill FAILED: the newest backup does not restore");
            cx.emit(&Event::DrillFinished {
                target,
                started,
                duration,
                failure: Some(e.kind()),
            });
            let message = e.to_string();
            cx.update(target, |s| {
                s.last_drill = Some(now_string(started));
                s.last_drill_backup = None;
                s.last_drill_check = None;
                s.last_drill_error = Some(message);
            });
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Wall clock = a base time plus tokio's (paused) monotonic time, plus
    /// any jumps a test makes.
    struct TestClock {
        base: Timestamp,
        start: tokio::time::Instant,
        jump: Mutex<jiff::SignedDuration>,
    }

    impl TestClock {
        fn new(base: Timestamp) -> Arc<Self> {
            Arc::new(TestClock {
                base,
                start: tokio::time::Instant::now(),
                jump: Mutex::new(jiff::SignedDuration::ZERO),
            })
        }
        fn jump(&self, by: jiff::SignedDuration) {
            *self.jump.lock().expect("lock") += by;
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Timestamp {
            let elapsed = self.start.elapsed();
            let jump = *self.jump.lock().expect("lock");
            self.base
                .checked_add(elapsed)
                .and_then(|t| t.checked_add(jump))
                .expect("in range")
        }
    }

    /// Records when backups start; fails the attempts it is told to.
    struct FakeJob {
        newest: Option<Timestamp>,
        starts: Mutex<Vec<Timestamp>>,
        fail: Mutex<Vec<bool>>,
        running: Mutex<bool>,
        overlap: Mutex<bool>,
        busy_for: Duration,
    }

    impl FakeJob {
        fn new(newest: Option<Timestamp>) -> Arc<Self> {
            Arc::new(FakeJob {
                newest,
                starts: Mutex::new(Vec::new()),
                fail: Mutex::new(Vec::new()),
                running: Mutex::new(false),
                overlap: Mutex::new(false),
                busy_for: Duration::ZERO,
            })
        }
        fn starts(&self) -> Vec<Timestamp> {
            self.starts.lock().expect("lock").clone()
        }
    }

    impl DatabaseJob for FakeJob {
        fn name(&self) -> &str {
            "fake.db"
        }
        fn newest_backup(&self) -> Result<Option<Timestamp>, ScheduleError> {
            Ok(self.newest)
        }
        fn backup(
            &self,
            now: Timestamp,
            _cancel: &CancelFlag,
        ) -> Result<BackupDone, ScheduleError> {
            {
                let mut running = self.running.lock().expect("lock");
                if *running {
                    *self.overlap.lock().expect("lock") = true;
                }
                *running = true;
            }
            self.starts.lock().expect("lock").push(now);
            if !self.busy_for.is_zero() {
                std::thread::sleep(self.busy_for);
            }
            *self.running.lock().expect("lock") = false;
            let fail = {
                let mut f = self.fail.lock().expect("lock");
                if f.is_empty() { false } else { f.remove(0) }
            };
            if fail {
                return Err(ScheduleError::Config(crate::ConfigError::Invalid {
                    param: "test",
                    reason: "injected failure".into(),
                }));
            }
            Ok(BackupDone {
                name: format!("b-{now}"),
                created: now,
                deleted: Vec::new(),
                kept: 1,
                size: 0,
                increment: false,
            })
        }
    }

    fn base() -> Timestamp {
        "2026-11-24T08:00:00Z".parse().expect("time")
    }

    fn secs_after(t: Timestamp, base: Timestamp) -> i64 {
        t.duration_since(base).as_secs()
    }

    async fn run_for(
        job: Arc<FakeJob>,
        frequency: Duration,
        clock: Arc<TestClock>,
        total: Duration,
    ) {
        let token = CancellationToken::new();
        let scheduler =
            Scheduler::from_jobs(vec![job as Arc<dyn DatabaseJob>], Some(frequency), clock);
        let handle = scheduler.spawn(token.clone());
        tokio::time::sleep(total).await;
        token.cancel();
        handle.await.expect("join").expect("scheduler");
    }

    #[tokio::test(start_paused = true)]
    async fn first_backup_is_due_after_the_newest_existing_one() {
        let hour = Duration::from_secs(3600);
        // Newest backup 20 minutes old: next due in 40 minutes, then hourly.
        let clock = TestClock::new(base());
        let job = FakeJob::new(Some(
            base()
                .checked_sub(jiff::SignedDuration::from_mins(20))
                .expect("t"),
        ));
        run_for(job.clone(), hour, clock, Duration::from_secs(3 * 3600)).await;
        let offsets: Vec<i64> = job
            .starts()
            .iter()
            .map(|t| secs_after(*t, base()))
            .collect();
        assert_eq!(offsets, vec![40 * 60, 100 * 60, 160 * 60]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_backup_or_overdue_runs_immediately() {
        let hour = Duration::from_secs(3600);
        for newest in [
            None,
            Some(
                base()
                    .checked_sub(jiff::SignedDuration::from_hours(30))
                    .expect("t"),
            ),
        ] {
            let clock = TestClock::new(base());
            let job = FakeJob::new(newest);
            run_for(job.clone(), hour, clock, Duration::from_secs(90 * 60)).await;
            let offsets: Vec<i64> = job
                .starts()
                .iter()
                .map(|t| secs_after(*t, base()))
                .collect();
            assert_eq!(
                offsets,
                vec![0, 3600],
                "newest={newest:?}: one catch-up, no burst"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn frequency_zero_disables_scheduling() {
        let job = FakeJob::new(None);
        let token = CancellationToken::new();
        let scheduler = Scheduler::from_jobs(
            vec![job.clone() as Arc<dyn DatabaseJob>],
            None,
            TestClock::new(base()),
        );
        let handle = scheduler.spawn(token.clone());
        tokio::time::sleep(Duration::from_secs(10 * 86400)).await;
        token.cancel();
        handle.await.expect("join").expect("scheduler");
        assert!(job.starts().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_backup_is_retried_at_the_next_slot() {
        let hour = Duration::from_secs(3600);
        let job = FakeJob::new(None);
        job.fail.lock().expect("lock").extend([true, true, false]);
        run_for(
            job.clone(),
            hour,
            TestClock::new(base()),
            Duration::from_secs(3 * 3600 + 60),
        )
        .await;
        let offsets: Vec<i64> = job
            .starts()
            .iter()
            .map(|t| secs_after(*t, base()))
            .collect();
        assert_eq!(
            offsets,
            vec![0, 3600, 7200, 10800],
            "a failure waits a full period, no tight retry loop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clock_jumps_do_not_cause_bursts() {
        let hour = Duration::from_secs(3600);
        let clock = TestClock::new(base());
        let job = FakeJob::new(None);
        let token = CancellationToken::new();
        let scheduler = Scheduler::from_jobs(
            vec![job.clone() as Arc<dyn DatabaseJob>],
            Some(hour),
            clock.clone(),
        );
        let handle = scheduler.spawn(token.clone());
        tokio::time::sleep(Duration::from_secs(10)).await;
        // The wall clock jumps 3 days ahead (a machine that slept), then 5 days back.
        clock.jump(jiff::SignedDuration::from_hours(72));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        clock.jump(jiff::SignedDuration::from_hours(-120));
        tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
        token.cancel();
        handle.await.expect("join").expect("scheduler");
        let starts = job.starts();
        // One backup at start, then one per hour of monotonic time: 0 s, 1 h, 2 h, 3 h.
        assert_eq!(starts.len(), 4, "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn backups_of_one_database_never_overlap() {
        let second = Duration::from_secs(1);
        let job = Arc::new(FakeJob {
            busy_for: Duration::from_millis(30),
            ..Arc::into_inner(FakeJob::new(None)).expect("sole owner")
        });
        run_for(
            job.clone(),
            second,
            TestClock::new(base()),
            Duration::from_secs(5),
        )
        .await;
        assert!(job.starts().len() >= 3);
        assert!(!*job.overlap.lock().expect("lock"));
    }

    /// Records backups and drills on the test clock, in order.
    struct DrillJob {
        clock: Arc<TestClock>,
        log: Mutex<Vec<(&'static str, i64)>>,
    }

    impl DatabaseJob for DrillJob {
        fn name(&self) -> &str {
            "drilled.db"
        }
        fn newest_backup(&self) -> Result<Option<Timestamp>, ScheduleError> {
            Ok(None)
        }
        fn backup(&self, now: Timestamp, _: &CancelFlag) -> Result<BackupDone, ScheduleError> {
            self.log
                .lock()
                .expect("lock")
                .push(("backup", secs_after(now, base())));
            Ok(BackupDone {
                name: format!("b-{now}"),
                created: now,
                deleted: Vec::new(),
                kept: 1,
                size: 0,
                increment: false,
            })
        }
        fn increment(
            &self,
            now: Timestamp,
            _: &CancelFlag,
        ) -> Result<Option<BackupDone>, ScheduleError> {
            let at = secs_after(now, base());
            self.log.lock().expect("lock").push(("increment", at));
            // Every other one finds nothing changed.
            Ok((at % 60 != 0).then(|| BackupDone {
                name: format!("i-{now}"),
                created: now,
                deleted: Vec::new(),
                kept: 1,
                size: 0,
                increment: true,
            }))
        }
        fn drill(&self, _: &CancelFlag) -> Result<Option<DrillDone>, ScheduleError> {
            let now = self.clock.now();
            self.log
                .lock()
                .expect("lock")
                .push(("drill", secs_after(now, base())));
            Ok(Some(DrillDone {
                backup: "b".into(),
                check: "full".into(),
            }))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn drills_follow_the_first_backup_then_run_on_their_own_period() {
        let clock = TestClock::new(base());
        let job = Arc::new(DrillJob {
            clock: clock.clone(),
            log: Mutex::new(Vec::new()),
        });
        let token = CancellationToken::new();
        let scheduler = Scheduler::from_jobs(
            vec![job.clone() as Arc<dyn DatabaseJob>],
            Some(Duration::from_secs(3600)),
            clock,
        )
        .drilling(Some(Duration::from_secs(1800)));
        let handle = scheduler.spawn(token.clone());
        tokio::time::sleep(Duration::from_secs(2 * 3600 + 60)).await;
        token.cancel();
        handle.await.expect("join").expect("scheduler");
        let log = job.log.lock().expect("lock").clone();
        assert_eq!(
            log,
            vec![
                ("backup", 0),
                ("drill", 0),
                ("drill", 1800),
                ("backup", 3600),
                ("drill", 3600),
                ("drill", 5400),
                ("backup", 7200),
                ("drill", 7200),
            ],
            "a backup goes first on a tie; drills keep their own period"
        );
    }

    #[test]
    fn a_chain_is_over_its_bound_only_past_the_percentage() {
        let growth = |full, increments| ChainGrowth { full, increments };
        assert_eq!(growth(1000, 500).over(50), None);
        assert_eq!(growth(1000, 501).over(50), None, "50.1 % rounds down to 50");
        assert_eq!(growth(1000, 510).over(50), Some(51));
        assert_eq!(growth(1000, 5000).over(0), None, "0: never");
        assert_eq!(growth(0, 1).over(50), Some(100), "an empty full backup");
        assert_eq!(growth(1, u64::MAX).over(50), Some(u64::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn increments_run_on_their_own_period_between_full_backups() {
        let clock = TestClock::new(base());
        let job = Arc::new(DrillJob {
            clock: clock.clone(),
            log: Mutex::new(Vec::new()),
        });
        let token = CancellationToken::new();
        let handle = Scheduler::from_jobs(
            vec![job.clone() as Arc<dyn DatabaseJob>],
            Some(Duration::from_secs(100)),
            clock,
        )
        .incrementing(Some(Duration::from_secs(30)))
        .spawn(token.clone());
        tokio::time::sleep(Duration::from_secs(205)).await;
        token.cancel();
        handle.await.expect("join").expect("scheduler");
        let log = job.log.lock().expect("lock").clone();
        assert_eq!(
            log,
            vec![
                ("backup", 0),
                ("increment", 30),
                ("increment", 60),
                ("increment", 90),
                ("backup", 100),
                ("increment", 120),
                ("increment", 150),
                ("increment", 180),
                ("backup", 200),
            ],
            "an unchanged database (60 s, 120 s, 180 s) costs a slot, not a backup"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drills_run_with_scheduled_backups_off() {
        let clock = TestClock::new(base());
        let job = Arc::new(DrillJob {
            clock: clock.clone(),
            log: Mutex::new(Vec::new()),
        });
        let token = CancellationToken::new();
        let handle = Scheduler::from_jobs(vec![job.clone() as Arc<dyn DatabaseJob>], None, clock)
            .drilling(Some(Duration::from_secs(600)))
            .spawn(token.clone());
        tokio::time::sleep(Duration::from_secs(1250)).await;
        token.cancel();
        handle.await.expect("join").expect("scheduler");
        let log = job.log.lock().expect("lock").clone();
        assert_eq!(log, vec![("drill", 0), ("drill", 600), ("drill", 1200)]);
    }

    #[test]
    fn a_remembered_drill_is_never_due_more_than_a_period_ahead() {
        let every = Duration::from_secs(3600);
        let now = base();
        let recent = now
            .checked_sub(jiff::SignedDuration::from_mins(10))
            .expect("t");
        assert_eq!(
            secs_after(first_drill_due(Some(recent), now, every), now),
            50 * 60
        );
        let future = now
            .checked_add(jiff::SignedDuration::from_hours(900))
            .expect("t");
        assert_eq!(
            secs_after(first_drill_due(Some(future), now, every), now),
            3600
        );
        assert_eq!(first_drill_due(None, now, every), now);
    }

    #[test]
    fn wait_is_capped_at_one_period() {
        let hour = Duration::from_secs(3600);
        let now = base();
        let far = now
            .checked_add(jiff::SignedDuration::from_hours(500))
            .expect("t");
        assert_eq!(wait_for(far, now, hour), hour);
        let past = now
            .checked_sub(jiff::SignedDuration::from_hours(5))
            .expect("t");
        assert_eq!(wait_for(past, now, hour), Duration::ZERO);
    }
}
