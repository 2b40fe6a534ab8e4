//! sqlseal's engine: composes a snapshot source, the container format, the
//! crypto envelope and a backup store into the operations a user runs.
//!
//! Owns: the pipelines, the one reader of a payload (`open_container`),
//! authenticated listing, install. Never: schedules, prints, or decides
//! on bytes it has not authenticated.
//!
//! - [`create_backup`]: snapshot -> chunks -> lz4 + seal (on all cores) -> store.
//!   The snapshot's integrity check ([`CheckLevel`], full by default) runs
//!   on the exact image being backed up, beside the stream; a failure fails
//!   the backup (nothing reaches the store) and a pass is recorded in the
//!   signed seal.
//! - [`verify_backup`]: authenticate every chunk, decompress, check the
//!   trailer and the seal, and run the integrity check that
//!   [`IntegrityCheck`] asks for: by default none when the seal records a
//!   full check made at backup time, `PRAGMA integrity_check` on a private
//!   temporary copy of the image otherwise.
//! - [`restore_backup`]: the same checks, then install the image at a
//!   target path (temp + rename), never over an existing database unless
//!   forced, and then only after moving the old files aside.
//! - [`list_backups`], [`inspect_backup`], [`latest_backup`]: what a store
//!   holds; with a keyring, which headers authenticate (decide only on those).
//!
//! The engine is synchronous and uses threads; a [`CancelFlag`] stops an
//! operation at the next chunk. It prints nothing: progress goes through
//! [`Progress`], results come back as reports.
//!
//! ```
//! use sqlseal_crypto::{Keyring, P256Identity};
//! use sqlseal_engine::{create_backup, verify_backup, BackupOptions, CancelFlag, NoProgress, VerifyOptions};
//! use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
//! use sqlseal_store::LocalStore;
//!
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("app.db");
//! rusqlite::Connection::open(&db)?.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")?;
//!
//! let key = P256Identity::generate()?;
//! let store = LocalStore::new(dir.path().join("backups"));
//! let source = SqliteSource::new(&db, SnapshotOptions::new(Method::DbPage));
//! let options = BackupOptions::new(vec![key.recipient().clone()], key.clone());
//! let made = create_backup(&source, &store, &options, &CancelFlag::new(), &NoProgress)?;
//!
//! let mut keyring = Keyring::new();
//! keyring.add_identity(key);
//! let checked = verify_backup(&store, &made.name, &keyring, &VerifyOptions::default(), &CancelFlag::new(), &NoProgress)?;
//! assert_eq!(checked.trailer.db_len, made.trailer.db_len);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod chain;
mod create;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod install;
mod list;
mod open;
mod pipeline;
mod restore;
mod tracked;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlseal_crypto::{P256Identity, P256Recipient};
use sqlseal_format::{CreatedAt, DEFAULT_CHUNK_SIZE, Header, RecordedCheck, Trailer};

pub use chain::{ChainReport, ChainState, IncrementOutcome, create_increment, start_chain};
pub use create::{backup_name, create_backup, decode_name_component, name_component};
pub use error::EngineError;
pub use list::{
    ChosenBackup, HeaderCheck, ListedBackup, choose_latest_at, inspect_backup, latest_backup,
    latest_backup_at, list_backups,
};
pub use open::{Opened, open_container, verify_backup};
pub use restore::{Approve, RestoreOptions, RestoreReport, restore_backup};
pub use sqlseal_source::CheckLevel;
pub use tracked::{IncrementTracker, LinkScan, create_tracked_increment};

/// Raised to stop an operation at the next chunk boundary. Clones share one flag.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag was raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Receives progress of a long operation (image bytes processed).
pub trait Progress: Sync {
    /// The operation starts and will process about `total` image bytes.
    fn start(&self, total: u64);
    /// `bytes` more image bytes were processed.
    fn advance(&self, bytes: u64);
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How to create a backup.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Every key the data key is wrapped to.
    pub recipients: Vec<P256Recipient>,
    /// The key that signs the header.
    pub signer: P256Identity,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Worker threads for compression and sealing.
    pub threads: usize,
    /// The creation time to record; the current time when `None`. (For
    /// schedulers that run on a clock of their own, e.g. in tests.)
    pub created_at: Option<CreatedAt>,
    /// The database's name in the header; its file name when `None`. The
    /// daemon writes its own name for the database (such as `acme/app.db`,
    /// with `/` written `_`), so that a backup of one tenant's `app.db`
    /// cannot pass for another's. The backup's file name takes the last
    /// `/`-separated part.
    pub database_name: Option<String>,
}

impl BackupOptions {
    /// Defaults: 1 MiB chunks, one worker per core.
    pub fn new(recipients: Vec<P256Recipient>, signer: P256Identity) -> Self {
        BackupOptions {
            recipients,
            signer,
            chunk_size: DEFAULT_CHUNK_SIZE,
            threads: default_threads(),
            created_at: None,
            database_name: None,
        }
    }
}

/// What [`create_backup`] made.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// The backup's name in the store.
    pub name: String,
    /// Its path, for stores on this machine.
    pub path: Option<PathBuf>,
    /// Its header.
    pub header: Header,
    /// Its trailer.
    pub trailer: Trailer,
    /// Bytes written to the store.
    pub size: u64,
    /// The integrity check that passed on the snapshot and is recorded in
    /// the seal (as the source's `SnapshotOptions::check` asked).
    pub recorded_check: RecordedCheck,
    /// Seconds the whole operation took.
    pub seconds: f64,
}

/// Which integrity check verify and restore run on the image they read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IntegrityCheck {
    /// The default: no check when the seal records a full check made at
    /// backup time (every chunk authenticated and the image hash matched,
    /// so the image is bit-identical to one that passed `PRAGMA
    /// integrity_check`, and the signer attests that it did); the full
    /// check otherwise, including when the seal records only a quick check
    /// (checking quick again would prove nothing new about an identical
    /// image).
    #[default]
    Auto,
    /// Always `PRAGMA integrity_check`, whatever the seal records.
    Full,
    /// Always `PRAGMA quick_check`, whatever the seal records.
    Quick,
    /// No check.
    None,
}

impl IntegrityCheck {
    /// The check to run on an image whose seal records `recorded`.
    pub fn level(self, recorded: RecordedCheck) -> CheckLevel {
        match (self, recorded) {
            (IntegrityCheck::Auto, RecordedCheck::Full) => CheckLevel::None,
            (IntegrityCheck::Auto, _) | (IntegrityCheck::Full, _) => CheckLevel::Full,
            (IntegrityCheck::Quick, _) => CheckLevel::Quick,
            (IntegrityCheck::None, _) => CheckLevel::None,
        }
    }
}

impl From<CheckLevel> for IntegrityCheck {
    /// An explicit level: always that check.
    fn from(level: CheckLevel) -> Self {
        match level {
            CheckLevel::Full => IntegrityCheck::Full,
            CheckLevel::Quick => IntegrityCheck::Quick,
            CheckLevel::None => IntegrityCheck::None,
        }
    }
}

/// The seal's code for a check that passed on the snapshot.
pub fn recorded_check(level: CheckLevel) -> RecordedCheck {
    match level {
        CheckLevel::Full => RecordedCheck::Full,
        CheckLevel::Quick => RecordedCheck::Quick,
        CheckLevel::None => RecordedCheck::None,
    }
}

/// How to verify or restore.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Where verify writes its temporary image; the system's temporary
    /// directory when `None`. (Restore always writes beside the target.)
    pub temp_dir: Option<PathBuf>,
    /// Worker threads for authentication and decompression.
    pub threads: usize,
    /// Which integrity check runs on the image: by default
    /// ([`IntegrityCheck::Auto`]) none when the seal records a full check,
    /// the full check otherwise; [`IntegrityCheck::Full`] always runs it.
    pub integrity_check: IntegrityCheck,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            temp_dir: None,
            threads: default_threads(),
            integrity_check: IntegrityCheck::Auto,
        }
    }
}

/// What [`verify_backup`] or [`restore_backup`] checked.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The backup's name.
    pub name: String,
    /// Its authenticated header.
    pub header: Header,
    /// Its authenticated trailer, matched against the image.
    pub trailer: Trailer,
    /// The integrity check the writer recorded in the signed seal.
    pub recorded_check: RecordedCheck,
    /// Whether an integrity check ran (and passed) on the image here.
    pub integrity_checked: bool,
    /// Which check ran here ([`CheckLevel::None`] when none did).
    pub check_run: CheckLevel,
    /// The check that was asked for (with `recorded_check`, why `check_run`).
    pub check_asked: IntegrityCheck,
    /// Seconds the whole operation took.
    pub seconds: f64,
    /// For an increment: the chain its image was built from. Its `trailer`
    /// then states the built image's length and page count, and in
    /// `sha256` its image index hash (see `sqlseal_format::increment`).
    pub chain: Option<ChainReport>,
}
