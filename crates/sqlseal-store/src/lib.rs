//! Where sqlseal keeps backups.
//!
//! Owns: the directory and S3 stores and the database locks. Never: lets a
//! half-written backup become visible, or replaces an existing name.
//!
//! A [`BackupStore`] lists, opens, creates and deletes backup files by name.
//! A writer from [`BackupStore::create`] becomes visible only when
//! [`BackupWriter::finish`] succeeds; dropped before that, it leaves
//! nothing behind. [`LocalStore`] is a directory on this machine: it writes
//! to a hidden temporary name, fsyncs the file, moves it into place without
//! ever replacing an existing backup (a no-replace rename or a hard link;
//! on file systems with neither, a rename once the name is found free),
//! and fsyncs the directory. Directories
//! it creates are 0700 and files 0600.
//!
//! With the `s3` feature, `S3Store` keeps backups under a prefix of an
//! S3-compatible bucket: multipart uploads that appear only when completed,
//! ranged reads, bounded memory. [`open_store`] picks the store for a
//! location: an `s3://BUCKET/PREFIX` URL ([`S3Location`], reached with
//! [`S3Settings`]) or a directory.
//!
//! [`DatabaseLock`] makes sure only one process at a time backs up a
//! database to a location: a lock file beside the database, released by
//! the kernel when its holder dies.
//!
//! ```
//! use std::io::Write;
//! use sqlseal_store::{BackupStore, LocalStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = LocalStore::new(dir.path().join("backups"));
//! let mut writer = store.create("app.db-20261124T080000.000000Z-0a1b.sqlseal")?;
//! writer.write_all(b"sealed bytes")?;
//! assert!(store.list()?.is_empty(), "invisible until finished");
//! writer.finish()?;
//! assert_eq!(store.list()?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

mod lock;
mod open;
#[cfg(feature = "s3")]
mod s3;

pub use lock::{DatabaseLock, LockError};
pub use open::{Location, S3Location, S3Settings, is_url, open_store, split_object_url};
#[cfg(feature = "s3")]
pub use s3::S3Store;

/// The file name extension of backups.
pub const EXTENSION: &str = ".sqlseal";
/// Marker in the names of temporary files.
const TEMP_MARKER: &str = ".tmp-";
/// Prefix of the temporary snapshot directories and verification images
/// that sqlseal creates beside backups.
const SQLSEAL_TEMP_PREFIX: &str = ".sqlseal-";

/// Errors of a backup store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the store was doing.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The backup directory does not exist.
    #[error("backup directory {0} does not exist; check --dir or Backup.Location")]
    NoDirectory(PathBuf),
    /// The backup directory is a file (or another non-directory).
    #[error(
        "backup directory {} is a file, not a directory; pass a directory to --dir (or Backup.Location)",
        .0.display()
    )]
    NotADirectory(PathBuf),
    /// This process may not create files in the backup directory.
    #[error(
        "backup directory {} is not writable by this user ({source}); fix its permissions or choose another --dir (or Backup.Location)",
        path.display()
    )]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// The cause (permission denied, read-only file system).
        source: io::Error,
    },
    /// No backup of that name.
    #[error("backup {name} not found in {location}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The store.
        location: String,
    },
    /// A backup of that name exists already.
    #[error("backup {0} exists already; refusing to replace it")]
    AlreadyExists(String),
    /// A backup's name is taken by a symlink, a directory, a FIFO or another non-file.
    #[error("{} is not a regular file; sqlseal reads only regular backup files (remove or replace it)", .0.display())]
    NotRegular(PathBuf),
    /// The name is not a valid backup file name.
    #[error("invalid backup name `{0}`: expected a plain file name ending in .sqlseal")]
    InvalidName(String),
    /// A location that is neither a directory path nor a valid `s3://` URL.
    #[error("invalid backup location `{location}`: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `s3://` location, in a build without the `s3` feature.
    #[error(
        "{0}: this build of sqlseal has no S3 support (build sqlseal-store with the `s3` feature)"
    )]
    NoS3Support(String),
    /// The bucket of an `s3://` location does not exist.
    #[error("bucket {bucket} does not exist ({location}); create it, or check S3.Endpoint")]
    NoBucket {
        /// The bucket.
        bucket: String,
        /// The store.
        location: String,
    },
    /// The object store refused the credentials.
    #[error(
        "{what} {location}: access denied; check S3.AccessKeyId and S3.SecretAccessKey \
         (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): {source}"
    )]
    Denied {
        /// What the store was doing.
        what: &'static str,
        /// The store or object.
        location: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other failure of a remote object store (network, server).
    #[error("{what} {location}: {source}")]
    Remote {
        /// What the store was doing.
        what: &'static str,
        /// The store or object.
        location: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One backup in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupEntry {
    /// The file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// A backup being written; visible only after [`finish`](BackupWriter::finish).
/// Dropping it unfinished discards what was written.
pub trait BackupWriter: Write + Send {
    /// Makes the backup durable and visible under its name.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// A place that holds backups.
pub trait BackupStore: Send + Sync + fmt::Debug {
    /// A human-readable location, for messages.
    fn location(&self) -> String;
    /// The finished backups, sorted by name. Temporary and foreign files are not listed.
    fn list(&self) -> Result<Vec<BackupEntry>>;
    /// Opens a backup for reading.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// Starts writing a new backup.
    fn create(&self, name: &str) -> Result<Box<dyn BackupWriter>>;
    /// Deletes a backup.
    fn delete(&self, name: &str) -> Result<()>;
    /// Removes temporary files left by crashed writers that are older than
    /// `age` ([`STALE_TEMP_AGE`] is the age every sqlseal writer uses).
    fn clean_stale(&self, age: Duration) -> Result<usize>;
    /// A backup's path on this machine, for stores that have one.
    fn local_path(&self, name: &str) -> Option<PathBuf>;
    /// The memory a writer of this store holds beside the sealing pipeline
    /// while it writes (0 for a directory; the parts in memory and the
    /// client for S3). Whoever runs an integrity check beside a backup to
    /// this store gives the check that much less page cache, so that one
    /// command stays within its memory whatever the store.
    fn write_buffer_bytes(&self) -> u64;
}

/// Checks that `name` is a plain backup file name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = name.ends_with(EXTENSION)
        && name.len() > EXTENSION.len()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.contains(TEMP_MARKER);
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.chars().take(80).collect()))
    }
}

/// Backups in a directory on this machine.
#[derive(Clone, Debug)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// A store in `dir`; the directory is created (0700) on the first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io { what, path, source }
    }

    fn ensure_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        if self.dir.exists() {
            return Err(StoreError::NotADirectory(self.dir.clone()));
        }
        sqlseal_private::create_private_dir_all(&self.dir).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                // Name the component that is in the way, e.g. the file
                // `x` of `--dir x/backups`.
                let file = self
                    .dir
                    .ancestors()
                    .find(|a| a.exists() && !a.is_dir())
                    .unwrap_or(&self.dir);
                StoreError::NotADirectory(file.to_path_buf())
            }
            _ => self.dir_error("creating backup directory", e),
        })
    }

    /// A failure to write in the directory: a one-line "not writable"
    /// error for permissions and read-only file systems.
    fn dir_error(&self, what: &'static str, e: io::Error) -> StoreError {
        match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                StoreError::NotWritable {
                    path: self.dir.clone(),
                    source: e,
                }
            }
            _ => self.io(what, &self.dir)(e),
        }
    }
}

impl LocalStore {
    /// A writer of a new backup `name` (see [`BackupStore::create`]).
    fn local_writer(&self, name: &str) -> Result<LocalWriter> {
        validate_name(name)?;
        self.ensure_dir()?;
        let target = self.dir.join(name);
        if target.exists() {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        let file =
            sqlseal_private::private_tempfile_in(&self.dir, &format!(".{name}{TEMP_MARKER}"))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                        self.dir_error("creating temporary file", e)
                    }
                    _ => self.io("creating temporary file", &self.dir)(e),
                })?;
        Ok(LocalWriter {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            target,
            dir: self.dir.clone(),
            unsynced: 0,
            syncs: 0,
        })
    }
}

impl BackupStore for LocalStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn list(&self) -> Result<Vec<BackupEntry>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoDirectory(self.dir.clone()));
            }
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(StoreError::NotADirectory(self.dir.clone()));
            }
            Err(e) => return Err(self.io("listing", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.io("listing", &self.dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_name(&name).is_err() {
                continue;
            }
            // Neither a symlink nor a FIFO, socket or device: only regular
            // files. One deleted since the directory was read (a retention
            // pass of a running daemon) is not listed.
            let is_file = match entry.file_type() {
                Ok(kind) => kind.is_file(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("reading", &entry.path())(e)),
            };
            if !is_file {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("reading", &entry.path())(e)),
            };
            if meta.is_file() {
                out.push(BackupEntry {
                    name,
                    size: meta.len(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        // Reading accepts any plain file name, so a backup copied under
        // another name can still be inspected, verified and restored.
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(StoreError::InvalidName(name.chars().take(80).collect()));
        }
        let path = self.dir.join(name);
        let file = match open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_owned(),
                    location: self.location(),
                });
            }
            Err(e) if is_symlink_refusal(&e) => return Err(StoreError::NotRegular(path)),
            Err(e) => return Err(self.io("opening", &path)(e)),
        };
        let meta = file.metadata().map_err(self.io("reading", &path))?;
        if !meta.is_file() {
            return Err(StoreError::NotRegular(path));
        }
        Ok(Box::new(file))
    }

    fn create(&self, name: &str) -> Result<Box<dyn BackupWriter>> {
        Ok(Box::new(self.local_writer(name)?))
    }

    fn delete(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let path = self.dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound {
                name: name.to_owned(),
                location: self.location(),
            }),
            Err(e) => Err(self.io("deleting", &path)(e)),
        }
    }

    fn clean_stale(&self, age: Duration) -> Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // Nothing to clean; creating a backup there says what is wrong.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(0);
            }
            Err(e) => return Err(self.io("listing", &self.dir)(e)),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_temp_file =
                name.starts_with('.') && name.contains(EXTENSION) && name.contains(TEMP_MARKER);
            let is_sqlseal_temp = name.starts_with(SQLSEAL_TEMP_PREFIX);
            if !is_temp_file && !is_sqlseal_temp {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|a| a >= age);
            if !old {
                continue;
            }
            let path = entry.path();
            let result = if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("removing stale temporary file", &path)(e)),
            }
        }
        Ok(removed)
    }

    fn write_buffer_bytes(&self) -> u64 {
        0
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(name))
    }
}

/// Opens `path` for reading without following a symlink and without
/// blocking on a FIFO (`O_NOFOLLOW | O_NONBLOCK`); the caller checks that
/// what it opened is a regular file. Reads of a regular file ignore
/// `O_NONBLOCK`, so the flag can stay set.
fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NOFOLLOW | libc::O_NONBLOCK,
    );
    options.open(path)
}

/// `O_NOFOLLOW` on a symlink fails with `ELOOP`.
pub(crate) fn is_symlink_refusal(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::Io {
                what: "syncing directory",
                path: dir.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// How old a temporary file in a store must be before it is taken for a
/// crashed writer's and removed: far longer than any backup is written.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Bytes written between two syncs of a backup being written: the file
/// reaches the disk as it is written, so the final sync is small and the
/// kernel never holds a whole backup of dirty pages that a database's own
/// commit (fsync) would queue behind.
const SYNC_EVERY: u64 = 16 << 20;

struct LocalWriter {
    /// The temporary file (0600, beside the backup), removed when dropped
    /// unless persisted under the backup's name.
    file: Option<BufWriter<NamedTempFile>>,
    target: PathBuf,
    dir: PathBuf,
    /// Bytes written since the last sync.
    unsynced: u64,
    /// Syncs made while writing (not counting the final one).
    syncs: u32,
}

impl LocalWriter {
    /// The open file, or an error once the writer has finished.
    fn file(&mut self) -> io::Result<&mut BufWriter<NamedTempFile>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("backup writer already finished"))
    }

    /// Counts `n` written bytes; every [`SYNC_EVERY`], flushes and syncs.
    fn wrote(&mut self, n: usize) -> io::Result<()> {
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY {
            let file = self.file()?;
            file.flush()?;
            file.get_ref().as_file().sync_data()?;
            self.unsynced = 0;
            self.syncs += 1;
        }
        Ok(())
    }
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file()?.write(buf)?;
        self.wrote(n)?;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file()?.write_all(buf)?;
        self.wrote(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl BackupWriter for LocalWriter {
    fn finish(mut self: Box<Self>) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { what, path, source }
        };
        let file = file
            .into_inner()
            .map_err(|e| io("writing", &self.target)(e.into_error()))?;
        file.as_file()
            .sync_all()
            .map_err(io("syncing", file.path()))?;
        // Never replaces an existing file (a rename that refuses to, else a
        // hard link); on failure the temporary file is removed as the error
        // drops it.
        match file.persist_noclobber(&self.target) {
            Ok(_) => {}
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists(file_name(&self.target)));
            }
            Err(tempfile::PersistError { error, file }) => {
                // File systems with neither (some FUSE mounts): a plain
                // rename, after checking that nothing took the name.
                if self.target.exists() {
                    return Err(StoreError::AlreadyExists(file_name(&self.target)));
                }
                let path = file.path().to_path_buf();
                file.persist(&self.target).map_err(|e| {
                    io("renaming", &path)(std::io::Error::new(
                        e.error.kind(),
                        format!("{error}; then {}", e.error),
                    ))
                })?;
            }
        }
        sync_dir(&self.dir)
    }
}

/// The last component of `path`, for messages.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: u32) -> String {
        format!("app.db-20261124T0800{i:02}.000000Z-00{i:02}.sqlseal")
    }

    #[test]
    fn a_large_backup_is_synced_as_it_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("s"));
        let mut w = store.local_writer("big.sqlseal").expect("create");
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..40 {
            w.write_all(&chunk).expect("write");
        }
        assert_eq!(w.syncs, 2, "40 MiB: a sync every 16 MiB");
        assert_eq!(w.unsynced, 8 << 20);
        BackupWriter::finish(Box::new(w)).expect("finish");
        assert_eq!(
            std::fs::metadata(dir.path().join("s/big.sqlseal"))
                .expect("file")
                .len(),
            40 << 20
        );
    }

    #[test]
    fn writes_become_visible_only_on_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("b"));
        let mut w = store.create(&name(1)).expect("create");
        w.write_all(b"abc").expect("write");
        assert!(store.list().expect("list").is_empty());
        w.finish().expect("finish");
        assert_eq!(
            store.list().expect("list"),
            vec![BackupEntry {
                name: name(1),
                size: 3
            }]
        );
        let mut back = String::new();
        store
            .open(&name(1))
            .expect("open")
            .read_to_string(&mut back)
            .expect("read");
        assert_eq!(back, "abc");
        assert_eq!(
            std::fs::read_dir(store.dir()).expect("dir").count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        let mut w = store.create(&name(1)).expect("create");
        w.write_all(&[0; 4096]).expect("write");
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn never_replaces_an_existing_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        let mut first = store.create(&name(1)).expect("create");
        let mut second = store
            .create(&name(1))
            .expect("create before either finished");
        first.write_all(b"first").expect("write");
        second.write_all(b"second").expect("write");
        first.finish().expect("finish");
        assert!(matches!(second.finish(), Err(StoreError::AlreadyExists(_))));
        let mut back = String::new();
        store
            .open(&name(1))
            .expect("open")
            .read_to_string(&mut back)
            .expect("read");
        assert_eq!(back, "first");
        assert!(matches!(
            store.create(&name(1)),
            Err(StoreError::AlreadyExists(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("new/backups"));
        store
            .create(&name(1))
            .expect("create")
            .finish()
            .expect("finish");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.dir().join(name(1))), 0o600);
    }

    #[test]
    fn listing_ignores_temp_and_foreign_files_and_sorts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        for i in [3, 1, 2] {
            store
                .create(&name(i))
                .expect("create")
                .finish()
                .expect("finish");
        }
        std::fs::write(dir.path().join("notes.txt"), "x").expect("foreign");
        std::fs::write(dir.path().join(format!(".{}.tmp-1234", name(9))), "x").expect("temp");
        std::fs::create_dir(dir.path().join("sub.sqlseal")).expect("dir");
        let names: Vec<_> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec![name(1), name(2), name(3)]);
    }

    #[test]
    fn clean_stale_removes_only_old_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        store
            .create(&name(1))
            .expect("create")
            .finish()
            .expect("finish");
        let temp = dir.path().join(format!(".{}.tmp-abcd", name(2)));
        std::fs::write(&temp, "partial").expect("temp");
        assert_eq!(
            store.clean_stale(Duration::from_secs(3600)).expect("clean"),
            0
        );
        assert!(
            temp.exists(),
            "a young temp file may belong to a running writer"
        );
        assert_eq!(store.clean_stale(Duration::ZERO).expect("clean"), 1);
        assert!(!temp.exists());
        assert_eq!(
            store.list().expect("list").len(),
            1,
            "finished backups stay"
        );
    }

    /// Runs `f` on another thread and fails if it takes more than a few
    /// seconds (a blocking open of a FIFO would never return).
    #[cfg(unix)]
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("returned within 5 s (did open block?)")
    }

    #[cfg(unix)]
    #[test]
    fn open_refuses_a_symlink_named_like_a_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "not a backup").expect("secret");
        let store_dir = dir.path().join("b");
        std::fs::create_dir(&store_dir).expect("mkdir");
        std::os::unix::fs::symlink(&secret, store_dir.join(name(1))).expect("symlink");
        let store = LocalStore::new(&store_dir);
        let result = within_seconds(move || store.open(&name(1)).map(drop));
        let err = result.expect_err("a symlink is refused");
        assert!(matches!(err, StoreError::NotRegular(_)), "{err:?}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(LocalStore::new(&store_dir).list().expect("list").is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn open_refuses_a_fifo_named_like_a_backup_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join(name(1));
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo");
        let store = LocalStore::new(dir.path());
        let result = within_seconds(move || store.open(&name(1)).map(drop));
        let err = result.expect_err("a FIFO is refused");
        assert!(matches!(err, StoreError::NotRegular(_)), "{err:?}");
        assert!(LocalStore::new(dir.path()).list().expect("list").is_empty());
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "../x.sqlseal",
            ".hidden.sqlseal",
            "x.txt",
            ".sqlseal",
            "a/b.sqlseal",
            "a.sqlseal.tmp-1.sqlseal",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&name(1)).is_ok());
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("missing"));
        assert!(matches!(store.list(), Err(StoreError::NoDirectory(_))));
        assert!(matches!(
            LocalStore::new(dir.path()).open(&name(5)),
            Err(StoreError::NotFound { .. })
        ));
    }
}
