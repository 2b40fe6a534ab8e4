//! sqlseal's engine: composes a snapshot source, the container format, the
//! crypto envelope and a backup store into the operations a user runs.
//!
//! - [`create_backup`]: snapshot -> chunks -> lz4 + seal (on all cores) -> store.
//! - [`verify_backup`]: authenticate every chunk, decompress, check the
//!   trailer, write the image to a temporary file and run `PRAGMA
//!   integrity_check` on it.
//! - [`restore_backup`]: the same checks, then install the image at a
//!   target path (temp + rename), never over an existing database unless
//!   forced, and then only after moving the old files aside.
//! - [`list_backups`], [`inspect_backup`], [`latest_backup`]: what a store holds.
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

mod error;
mod pipeline;

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sqlseal_crypto::{
    Keyring, P256Identity, P256Recipient, Recipient, random_backup_id, random_bytes,
};
use sqlseal_format::header::sanitize_database_name;
use sqlseal_format::{
    ChunkCipher, Compression, CreatedAt, DEFAULT_CHUNK_SIZE, FrameReader, Header, Metadata,
    SALT_LEN, Trailer,
};
use sqlseal_source::{SnapshotSource, check_integrity};
use sqlseal_store::{BackupEntry, BackupStore};

pub use error::EngineError;
use pipeline::PipelineError;

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
    /// Seconds the whole operation took.
    pub seconds: f64,
}

/// The file name for a new backup: database name, UTC time with
/// microseconds (so names sort in creation order), and a random suffix so
/// that two backups in the same microsecond cannot collide.
pub fn backup_name(database: &str, created: CreatedAt) -> Result<String, EngineError> {
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let safe = safe.trim_start_matches('.');
    let time = created.timestamp().strftime("%Y%m%dT%H%M%S%.6fZ");
    let suffix = random_bytes::<3>().map_err(EngineError::Seal)?;
    Ok(format!("{safe}-{time}-{}.sqlseal", hex::encode(suffix)))
}

/// Counts the bytes that pass through to the store.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn pipeline_error(backup: &str, e: PipelineError) -> EngineError {
    match e {
        PipelineError::Input(e) => *e,
        PipelineError::Format(source) => EngineError::Payload {
            backup: backup.to_owned(),
            source,
        },
        PipelineError::Output(e) => EngineError::Write {
            backup: backup.to_owned(),
            source: e.into(),
        },
        PipelineError::Cancelled => EngineError::Cancelled,
    }
}

/// Takes a snapshot of `source` and writes it as a new sealed backup to
/// `store`. On any error or cancellation nothing becomes visible in the store.
pub fn create_backup(
    source: &dyn SnapshotSource,
    store: &dyn BackupStore,
    options: &BackupOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<BackupReport, EngineError> {
    let started = Instant::now();
    let mut snapshot = source.snapshot()?;
    let info = snapshot.info().clone();
    let created = options
        .created_at
        .unwrap_or_else(|| CreatedAt::from_timestamp(jiff::Timestamp::now()));
    let metadata = Metadata {
        backup_id: random_backup_id().map_err(EngineError::Seal)?,
        created,
        database: sanitize_database_name(&source.database_name()),
        page_size: info.page_size,
        method: info.method.name().to_owned(),
        compression: Compression::Lz4,
        chunk_size: options.chunk_size,
    };
    let recipients: Vec<&dyn Recipient> = options
        .recipients
        .iter()
        .map(|r| r as &dyn Recipient)
        .collect();
    let (header, data_key) = sqlseal_crypto::seal_header(metadata, &recipients, &options.signer)
        .map_err(EngineError::Seal)?;
    let name = backup_name(&header.metadata.database, created)?;
    let write_err = |e: std::io::Error| EngineError::Write {
        backup: name.clone(),
        source: e.into(),
    };
    let mut out = Counting {
        inner: store.create(&name)?,
        written: 0,
    };
    out.write_all(&header.encode()).map_err(write_err)?;
    let salt = random_bytes::<SALT_LEN>().map_err(EngineError::Seal)?;
    out.write_all(&salt).map_err(write_err)?;
    let cipher = ChunkCipher::new(&data_key, &salt, options.chunk_size).map_err(|source| {
        EngineError::Write {
            backup: name.clone(),
            source,
        }
    })?;
    drop(data_key);
    progress.start(info.image_len());
    let blocks = std::iter::from_fn(|| snapshot.next_block()).map(|b| b.map_err(EngineError::from));
    let trailer = pipeline::seal_stream(
        blocks,
        &cipher,
        info.page_count,
        &mut out,
        options.threads,
        cancel,
        progress,
    )
    .map_err(|e| pipeline_error(&name, e))?;
    drop(snapshot);
    if trailer.db_len != info.image_len() {
        return Err(EngineError::Inconsistent {
            backup: name,
            reason: format!(
                "snapshot gave {} bytes, expected {}",
                trailer.db_len,
                info.image_len()
            ),
        });
    }
    let size = out.written;
    out.inner.finish()?;
    Ok(BackupReport {
        path: store.local_path(&name),
        name,
        header,
        trailer,
        size,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A backup in a store with its parsed (not yet authenticated) header.
#[derive(Debug)]
pub struct ListedBackup {
    /// Name and size.
    pub entry: BackupEntry,
    /// The header, or why it could not be read.
    pub header: Result<Header, EngineError>,
}

impl ListedBackup {
    /// Creation time from the header, if it parsed.
    pub fn created(&self) -> Option<CreatedAt> {
        self.header.as_ref().ok().map(|h| h.metadata.created)
    }
}

/// Reads and parses a backup's header without any key. Nothing in it is
/// authenticated: use it to display, never to decide.
pub fn inspect_backup(store: &dyn BackupStore, name: &str) -> Result<Header, EngineError> {
    let mut reader = BufReader::with_capacity(64 * 1024, store.open(name)?);
    Header::parse(&mut reader).map_err(|e| EngineError::Open {
        backup: name.to_owned(),
        source: e.into(),
    })
}

/// All backups in `store`, newest first by header creation time (backups
/// whose header does not parse sort last, by name).
pub fn list_backups(store: &dyn BackupStore) -> Result<Vec<ListedBackup>, EngineError> {
    let mut listed: Vec<ListedBackup> = store
        .list()?
        .into_iter()
        .map(|entry| ListedBackup {
            header: inspect_backup(store, &entry.name),
            entry,
        })
        .collect();
    listed.sort_by(|a, b| {
        b.created()
            .cmp(&a.created())
            .then_with(|| b.entry.name.cmp(&a.entry.name))
    });
    Ok(listed)
}

/// The name of the newest backup in `store` (by header time).
pub fn latest_backup(store: &dyn BackupStore) -> Result<String, EngineError> {
    list_backups(store)?
        .into_iter()
        .next()
        .map(|b| b.entry.name)
        .ok_or_else(|| EngineError::NoBackups(store.location()))
}

/// How to verify or restore.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Where verify writes its temporary image; the system's temporary
    /// directory when `None`. (Restore always writes beside the target.)
    pub temp_dir: Option<PathBuf>,
    /// Worker threads for authentication and decompression.
    pub threads: usize,
    /// Run `PRAGMA integrity_check` on the image.
    pub integrity_check: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            temp_dir: None,
            threads: default_threads(),
            integrity_check: true,
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
    /// Seconds the whole operation took.
    pub seconds: f64,
}

/// Opens `name`, checks everything, and writes the image to `out`; the
/// caller must not use the image unless this returns `Ok`.
fn open_into(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<(Header, Trailer), EngineError> {
    let open_err = |source: sqlseal_crypto::CryptoError| EngineError::Open {
        backup: name.to_owned(),
        source,
    };
    let payload_err = |source| EngineError::Payload {
        backup: name.to_owned(),
        source,
    };
    let mut reader = BufReader::with_capacity(1 << 20, store.open(name)?);
    let header = Header::parse(&mut reader).map_err(|e| open_err(e.into()))?;
    let data_key = keyring.open_header(&header).map_err(open_err)?;
    let salt = sqlseal_format::payload::read_salt(&mut reader).map_err(payload_err)?;
    let chunk_size = header.metadata.chunk_size;
    let cipher = ChunkCipher::new(&data_key, &salt, chunk_size).map_err(payload_err)?;
    drop(data_key);
    let frames = FrameReader::new(reader, chunk_size).map_err(payload_err)?;
    let trailer = pipeline::open_stream(frames, &cipher, out, threads, cancel, progress)
        .map_err(|e| pipeline_error(name, e))?;
    let expected = trailer.page_count * u64::from(header.metadata.page_size);
    if trailer.db_len != expected {
        return Err(EngineError::Inconsistent {
            backup: name.to_owned(),
            reason: format!(
                "the image holds {} bytes but {} pages of {} bytes were stated",
                trailer.db_len, trailer.page_count, header.metadata.page_size
            ),
        });
    }
    Ok((header, trailer))
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io { what, path, source }
}

/// Writes the image of `name` to `file` and checks it all; returns the report.
fn restore_into_file(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    file: &mut tempfile::NamedTempFile,
    options: &VerifyOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<VerifyReport, EngineError> {
    let started = Instant::now();
    let path = file.path().to_path_buf();
    let (header, trailer) = {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file.as_file_mut());
        let opened = open_into(
            store,
            name,
            keyring,
            &mut out,
            options.threads,
            cancel,
            progress,
        )?;
        out.flush().map_err(io_err("writing", &path))?;
        opened
    };
    file.as_file()
        .sync_all()
        .map_err(io_err("syncing", &path))?;
    if options.integrity_check {
        check_integrity(&path).map_err(|source| EngineError::Integrity {
            backup: name.to_owned(),
            source: Box::new(source),
        })?;
    }
    Ok(VerifyReport {
        name: name.to_owned(),
        header,
        trailer,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks everything about a backup: signer trusted, header MAC, every
/// chunk authenticated and decompressed, trailer length and SHA-256, and
/// `PRAGMA integrity_check` on the image in a temporary file (deleted after).
pub fn verify_backup(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    options: &VerifyOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<VerifyReport, EngineError> {
    let temp_dir = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut file = tempfile::Builder::new()
        .prefix(".sqlseal-verify-")
        .tempfile_in(&temp_dir)
        .map_err(io_err("creating a temporary file in", &temp_dir))?;
    restore_into_file(store, name, keyring, &mut file, options, cancel, progress)
}

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore over an existing database (moving its files aside first).
    pub force: bool,
    /// The checks and threads, as for verify.
    pub verify: VerifyOptions,
}

/// What [`restore_backup`] did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The checks that passed.
    pub verified: VerifyReport,
    /// The restored database.
    pub target: PathBuf,
    /// Where the previous database files were moved, if any.
    pub moved_aside: Vec<PathBuf>,
}

/// Restores `name` to `target`: writes the image to a temporary file
/// beside it, checks it exactly as [`verify_backup`] does, sets 0600, and
/// renames it into place. An existing target is refused unless `force`;
/// with `force` it and its `-wal`/`-shm` files are first moved aside to
/// `TARGET.pre-restore.<time>` (never deleted). On any failure the target
/// is left as it was and no temporary file remains.
pub fn restore_backup(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    target: &Path,
    options: &RestoreOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<RestoreReport, EngineError> {
    let force = options.force;
    let exists = target.symlink_metadata().is_ok();
    if exists && !force {
        return Err(EngineError::TargetExists(target.to_path_buf()));
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(EngineError::Io {
            what: "restoring into",
            path: parent,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "directory does not exist; create it first",
            ),
        });
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into());
    let prefix = format!(".{file_name}.sqlseal-restore-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = builder
        .tempfile_in(&parent)
        .map_err(io_err("creating a temporary file in", &parent))?;
    let verified = restore_into_file(
        store,
        name,
        keyring,
        &mut file,
        &options.verify,
        cancel,
        progress,
    )?;
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    let mut moved_aside = Vec::new();
    if target.symlink_metadata().is_ok() {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%S%.6fZ")
            .to_string();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let from = PathBuf::from(format!("{}{suffix}", target.display()));
            if from.symlink_metadata().is_err() {
                continue;
            }
            let to = PathBuf::from(format!("{}.pre-restore.{stamp}{suffix}", target.display()));
            std::fs::rename(&from, &to).map_err(io_err("moving aside", &from))?;
            moved_aside.push(to);
        }
    }
    file.persist_noclobber(target)
        .map_err(|e| EngineError::Io {
            what: "installing the restored database at",
            path: target.to_path_buf(),
            source: e.error,
        })?;
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(RestoreReport {
        verified,
        target: target.to_path_buf(),
        moved_aside,
    })
}
