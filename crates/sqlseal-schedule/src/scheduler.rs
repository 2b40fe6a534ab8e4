//! The scheduler: one task per database, backups every `Backup.Frequency`,
//! retention after each verified backup, a status file, and a clean stop
//! when the cancellation token fires.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sqlseal_engine::{
    BackupOptions, CancelFlag, EngineError, HeaderCheck, IntegrityCheck, NoProgress, VerifyOptions,
    create_backup, list_backups, verify_backup,
};
use sqlseal_format::CreatedAt;
use sqlseal_source::{SnapshotOptions, SqliteSource};
use sqlseal_store::StoreError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::{DatabaseConfig, Settings};
use crate::newest::{NewestBackup, record_newest};
use crate::retention::to_delete;
use crate::status::StatusWriter;
use crate::{DatabaseLocks, ScheduleError, lock_all, now_string};

/// How old a temporary file must be before it is taken for a crashed writer's.
const STALE_AGE: Duration = Duration::from_secs(3600);
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
}

/// The real job: snapshot and check it (`Backup.Check`, recorded in the
/// seal), seal, store, read back (authenticate every chunk), then delete
/// the oldest backups beyond `Backup.MaxCount`. A failed check fails the
/// run: nothing is stored and retention does not run.
/// Only backups whose header authenticates under the daemon's keyring are
/// counted or deleted; the others are logged and left alone.
pub struct SqliteJob {
    db: DatabaseConfig,
    settings: Arc<Settings>,
}

impl SqliteJob {
    /// The job for one configured database.
    pub fn new(db: DatabaseConfig, settings: Arc<Settings>) -> Self {
        SqliteJob { db, settings }
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

    fn newest_backup(&self) -> Result<Option<Timestamp>, ScheduleError> {
        match list_backups(self.db.store.as_ref(), Some(&self.settings.keyring)) {
            Ok(listed) => Ok(listed
                .iter()
                .filter_map(|b| b.verified_created())
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
        let store = self.db.store.as_ref();
        match store.clean_stale(STALE_AGE) {
            Ok(0) => {}
            Ok(n) => info!(database = %self.db.name, removed = n, "removed stale temporary files"),
            Err(e) => {
                warn!(database = %self.db.name, error = %e, "could not clean stale temporary files")
            }
        }
        let s = &self.settings;
        let mut snapshot = SnapshotOptions::new(s.method);
        snapshot.temp_dir = s.snapshot_temp_dir.clone();
        // Backup.Check: a snapshot that fails it fails this run, before
        // anything is stored or deleted.
        snapshot.check = s.check;
        let source = SqliteSource::new(&self.db.path, snapshot);
        let mut options = BackupOptions::new(s.recipients.clone(), s.signer.clone());
        options.chunk_size = s.chunk_size;
        options.created_at = Some(CreatedAt::from_timestamp(now));
        let made = create_backup(&source, store, &options, cancel, &NoProgress)
            .map_err(|e| self.engine_err(e))?;
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
        let dated: Vec<(String, CreatedAt)> = listed
            .iter()
            .filter_map(|b| b.verified_created().map(|c| (b.entry.name.clone(), c)))
            .collect();
        // The backup just made and read back is never deleted, even if a
        // validly signed one claims a later time.
        let doomed: Vec<String> = to_delete(&dated, &s.retention)
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
        Ok(BackupDone {
            name: made.name,
            created: verified.header.metadata.created.timestamp(),
            kept: dated.len() - deleted.len(),
            deleted,
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
    clock: Arc<dyn Clock>,
    status: Option<Arc<StatusWriter>>,
    locks: Locking,
}

impl Scheduler {
    /// A scheduler for every configured database, on the system clock.
    pub fn new(settings: Settings) -> Self {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// The same on another clock.
    pub fn with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Self {
        let status = StatusWriter::for_settings(&settings);
        let locks = Locking::Take(
            settings
                .databases
                .iter()
                .map(|d| (d.path.clone(), d.store.location()))
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
            clock,
            status: Some(Arc::new(status)),
            locks,
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
            clock,
            status: None,
            locks: Locking::None,
        }
    }

    /// Runs until `token` is cancelled, then cancels the backup in flight
    /// at its next chunk boundary and returns once every task has stopped.
    /// With `Backup.Frequency` 0 it only waits for the token. A scheduler
    /// built from settings holds the lock on each database and location
    /// throughout (taking them first unless given [`Scheduler::holding`]),
    /// and fails at once with [`ScheduleError::Locked`] if another process
    /// holds one.
    pub async fn run(self, token: CancellationToken) -> Result<(), ScheduleError> {
        // Dropped, and so released, only when the run ends.
        let _locks = match self.locks {
            Locking::None => None,
            Locking::Held(locks) => Some(locks),
            Locking::Take(databases) => Some(lock_all(databases)?),
        };
        let Some(frequency) = self.frequency else {
            info!("Backup.Frequency is 0: scheduled backups are disabled");
            token.cancelled().await;
            return Ok(());
        };
        let mut tasks = JoinSet::new();
        for job in self.jobs {
            tasks.spawn(database_loop(
                job,
                frequency,
                self.clock.clone(),
                self.status.clone(),
                token.clone(),
            ));
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                first_error.get_or_insert(ScheduleError::Task(e.to_string()));
            }
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

/// How long to wait for `due`: never negative, and never more than one
/// period, so a clock set back cannot stall the schedule.
fn wait_for(due: Timestamp, now: Timestamp, frequency: Duration) -> Duration {
    to_std(now.duration_until(due)).min(frequency)
}

fn update_status(
    status: &Option<Arc<StatusWriter>>,
    name: &str,
    change: impl FnOnce(&mut crate::DatabaseStatus),
) {
    if let Some(status) = status
        && let Err(e) = status.update(name, change)
    {
        warn!(error = %e, "could not write the status file");
    }
}

async fn database_loop(
    job: Arc<dyn DatabaseJob>,
    frequency: Duration,
    clock: Arc<dyn Clock>,
    status: Option<Arc<StatusWriter>>,
    token: CancellationToken,
) {
    let name = job.name().to_owned();
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
    let mut due = first_due(newest, clock.now(), frequency);
    // Whether "waiting for the database to be created" was logged, so that
    // it is said once, not at every slot.
    let mut waiting = false;
    loop {
        let wait = wait_for(due, clock.now(), frequency);
        update_status(&status, &name, |s| s.next_due = Some(now_string(due)));
        if !waiting {
            info!(database = %name, next_due = %now_string(due), "next backup scheduled");
        }
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let started = clock.now();
        update_status(&status, &name, |s| {
            s.last_attempt = Some(now_string(started))
        });
        let cancel = CancelFlag::new();
        let run = {
            let (job, cancel) = (job.clone(), cancel.clone());
            tokio::task::spawn_blocking(move || job.backup(started, &cancel))
        };
        tokio::pin!(run);
        let result = tokio::select! {
            r = &mut run => r,
            () = token.cancelled() => {
                cancel.cancel();
                run.await
            }
        };
        let result = result.unwrap_or_else(|e| Err(ScheduleError::Task(e.to_string())));
        match result {
            Ok(done) => {
                waiting = false;
                info!(database = %name, backup = %done.name, deleted = done.deleted.len(), kept = done.kept, "backup done");
                update_status(&status, &name, |s| {
                    s.last_success = Some(now_string(done.created));
                    s.last_backup = Some(done.name.clone());
                    s.last_error = None;
                    s.backup_count = Some(done.kept);
                });
                due = done.created.checked_add(frequency).unwrap_or(started);
            }
            Err(ScheduleError::DatabaseMissing(path)) => {
                if !waiting {
                    info!(database = %name, path = %path.display(), "waiting for DB to be created; it is backed up once it exists");
                    waiting = true;
                }
                // Look again soon rather than a whole period later.
                due = started
                    .checked_add(frequency.min(MISSING_POLL))
                    .unwrap_or(started);
            }
            Err(e) if token.is_cancelled() => {
                info!(database = %name, error = %e, "backup cancelled by shutdown");
                break;
            }
            Err(e) => {
                warn!(database = %name, error = %e, "backup failed; retrying at the next slot");
                let message = e.to_string();
                update_status(&status, &name, |s| s.last_error = Some(message));
                due = started.checked_add(frequency).unwrap_or(started);
            }
        }
    }
    info!(database = %name, "scheduler stopped");
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
                return Err(ScheduleError::Task("injected failure".into()));
            }
            Ok(BackupDone {
                name: format!("b-{now}"),
                created: now,
                deleted: Vec::new(),
                kept: 1,
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
