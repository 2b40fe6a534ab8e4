//! Opening a backup: the one reader of a payload, and verify.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use sqlseal_crypto::Keyring;
use sqlseal_format::payload::read_salt;
use sqlseal_format::{
    ChunkCipher, DataKey, FrameReader, Header, PayloadDigest, RecordedCheck, SEAL_LEN, SealRecord,
    Trailer,
};
use sqlseal_source::{CheckLevel, SourceError, check_image};
use sqlseal_store::BackupStore;

use crate::pipeline::{self, OpenedPayload, PipelineError, pipeline_error};
use crate::{CancelFlag, EngineError, IntegrityCheck, Progress, VerifyOptions, VerifyReport};

/// What a full read of a backup proved: every field here is authenticated.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The header (signature and MAC verified).
    pub header: Header,
    /// The trailer, matched against the image read.
    pub trailer: Trailer,
    /// The integrity check the writer recorded in the seal.
    pub recorded_check: RecordedCheck,
}

/// The one reader of a container: parses and authenticates the header,
/// opens every frame on `threads` cores writing the image to `out` in order,
/// checks the trailer, and verifies the seal record's signature over the
/// exact header and payload read. `name` labels errors. The caller must not
/// use what was written to `out` unless this returns `Ok`.
pub fn open_container(
    name: &str,
    input: impl Read + Send,
    keyring: &Keyring,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<Opened, EngineError> {
    let open_err = |source: sqlseal_crypto::CryptoError| EngineError::Open {
        backup: name.to_owned(),
        source,
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let header = Header::parse(&mut reader).map_err(|e| open_err(e.into()))?;
    let data_key = keyring.open_header(&header).map_err(open_err)?;
    let opened = open_payload(
        reader,
        &data_key,
        header.metadata.chunk_size,
        out,
        threads,
        cancel,
        progress,
    );
    drop(data_key);
    let opened = opened.map_err(|e| pipeline_error(name, e))?;
    keyring
        .verify_seal(&header, &opened.payload_digest, &opened.seal)
        .map_err(open_err)?;
    Ok(Opened {
        header,
        trailer: opened.trailer,
        recorded_check: opened.seal.check,
    })
}

/// Opens the payload that follows a header (salt, frames, seal record)
/// under `data_key`; the seal's signature is left to the caller.
pub(crate) fn open_payload<R: Read + Send>(
    mut reader: R,
    data_key: &DataKey,
    chunk_size: u32,
    out: &mut dyn Write,
    threads: usize,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<OpenedPayload, PipelineError> {
    let salt = read_salt(&mut reader).map_err(PipelineError::Format)?;
    let cipher = ChunkCipher::new(data_key, &salt, chunk_size).map_err(PipelineError::Format)?;
    let frames = FrameReader::new(reader, chunk_size).map_err(PipelineError::Format)?;
    pipeline::open_stream(
        frames,
        &cipher,
        PayloadDigest::new(&salt),
        out,
        threads,
        cancel,
        progress,
    )
}

/// Checks that what [`open_container`] opened from backup `name` is a
/// database image: the format allows any image, a database is whole pages
/// (an increment's payload is a page list, restored through its chain).
fn whole_pages(name: &str, opened: Opened) -> Result<Opened, EngineError> {
    if opened.header.metadata.is_increment() {
        return Err(EngineError::Chain {
            backup: name.to_owned(),
            reason: "it is an increment, not a database image; restore it through its chain".into(),
        });
    }
    let trailer = &opened.trailer;
    let page_size = u64::from(opened.header.metadata.page_size);
    if trailer.page_count.checked_mul(page_size) != Some(trailer.db_len) {
        return Err(EngineError::Inconsistent {
            backup: name.to_owned(),
            reason: format!(
                "the image holds {} bytes but {} pages of {} bytes were stated",
                trailer.db_len, trailer.page_count, page_size
            ),
        });
    }
    Ok(opened)
}

pub(crate) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io { what, path, source }
}

/// Writes the image of `name` to `file` and checks it all; returns the
/// report. For an image to install, the file goes to disk while SQLite
/// checks it.
pub(crate) fn restore_into_file(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    image: ImageFile<'_>,
    options: &VerifyOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<VerifyReport, EngineError> {
    let started = Instant::now();
    let ImageFile { file, image_use } = image;
    let opened = write_image_into_file(store, name, keyring, file, options, cancel, progress)?;
    let path = file.path();
    // Decided on the authenticated seal of this very read.
    let level = options.integrity_check.level(opened.recorded_check);
    let synced = image_use.start_sync(file, File::sync_all)?;
    // On an error (a failed check, a cancel) the sync is left to end by
    // itself: the command does not wait for the disk.
    run_check(name, path, level, cancel)?;
    synced.wait()?;
    Ok(report(name, opened, options, level, started))
}

/// A temporary file that receives a backup's image, and what the image is
/// for.
pub(crate) struct ImageFile<'f> {
    pub(crate) file: &'f mut tempfile::NamedTempFile,
    pub(crate) image_use: ImageUse,
}

/// What an image written to a temporary file is for, which decides
/// whether it must reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImageUse {
    /// Installed as a database: synced before it is moved into place.
    Install,
    /// Read once and deleted (verify): never synced.
    Scratch,
    /// Tests: installed, but every sync fails, as a failing disk makes it.
    #[cfg(test)]
    FailingSync,
}

impl ImageUse {
    /// Starts `sync` of `file` on a thread of its own, if this use needs
    /// the file on disk.
    pub(crate) fn start_sync(
        self,
        file: &tempfile::NamedTempFile,
        sync: fn(&File) -> std::io::Result<()>,
    ) -> Result<PendingSync, EngineError> {
        let job = match self {
            ImageUse::Install => Some(in_background(file, sync)?),
            ImageUse::Scratch => None,
            #[cfg(test)]
            ImageUse::FailingSync => Some(in_background(file, |_| {
                Err(std::io::Error::other("input/output error (injected)"))
            })?),
        };
        Ok(PendingSync {
            job,
            path: file.path().to_path_buf(),
        })
    }
}

/// A sync of an image file running beside other work, or none.
pub(crate) struct PendingSync {
    job: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    path: std::path::PathBuf,
}

impl PendingSync {
    /// Waits for the sync to end; its error names the file.
    pub(crate) fn wait(self) -> Result<(), EngineError> {
        let Some(job) = self.job else {
            return Ok(());
        };
        job.join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")))
            .map_err(io_err("syncing", &self.path))
    }
}

/// Runs `job` on a thread of its own, over a second descriptor of `file`:
/// join it for the result. A thread left unjoined on an error path ends by
/// itself.
pub(crate) fn in_background<T: Send + 'static>(
    file: &tempfile::NamedTempFile,
    job: impl FnOnce(&File) -> std::io::Result<T> + Send + 'static,
) -> Result<std::thread::JoinHandle<std::io::Result<T>>, EngineError> {
    let copy = file
        .as_file()
        .try_clone()
        .map_err(io_err("opening", file.path()))?;
    Ok(std::thread::spawn(move || job(&copy)))
}

/// Writes the image of full backup `name` to `file`, every byte of it
/// authenticated and the trailer checked; neither synced nor checked by
/// SQLite.
pub(crate) fn write_image_into_file(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    file: &mut tempfile::NamedTempFile,
    options: &VerifyOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<Opened, EngineError> {
    let path = file.path().to_path_buf();
    let opened = {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file.as_file_mut());
        let input = store.open(name)?;
        let opened = open_container(
            name,
            input,
            keyring,
            &mut out,
            options.threads,
            cancel,
            progress,
        )
        .and_then(|opened| whole_pages(name, opened))
        .map_err(|e| match e {
            // A failed write is about the file written, not the backup.
            EngineError::Write {
                source: sqlseal_format::FormatError::Io(source),
                ..
            } => EngineError::Io {
                what: "writing",
                path: path.clone(),
                source,
            },
            other => other,
        })?;
        out.flush().map_err(io_err("writing", &path))?;
        opened
    };
    Ok(opened)
}

/// Runs the integrity check `level` on the image of backup `name` at `path`.
pub(crate) fn run_check(
    name: &str,
    path: &Path,
    level: CheckLevel,
    cancel: &CancelFlag,
) -> Result<(), EngineError> {
    check_image(path, level, &|| cancel.is_cancelled()).map_err(|source| match source {
        SourceError::Cancelled => EngineError::Cancelled,
        source => EngineError::Integrity {
            backup: name.to_owned(),
            source: Box::new(source),
        },
    })
}

fn report(
    name: &str,
    opened: Opened,
    options: &VerifyOptions,
    check_run: CheckLevel,
    started: Instant,
) -> VerifyReport {
    VerifyReport {
        name: name.to_owned(),
        header: opened.header,
        trailer: opened.trailer,
        recorded_check: opened.recorded_check,
        integrity_checked: check_run != CheckLevel::None,
        check_run,
        check_asked: options.integrity_check,
        seconds: started.elapsed().as_secs_f64(),
        chain: None,
    }
}

/// The check a backup's seal records, read from the end of a local file
/// without authenticating anything: only a guess of whether verify will
/// need the image on disk. Remote backups are guessed to record a full
/// check, as every backup made with the defaults does.
fn guess_recorded_check(store: &dyn BackupStore, name: &str) -> RecordedCheck {
    let Some(path) = store.local_path(name) else {
        return RecordedCheck::Full;
    };
    let tail = || -> std::io::Result<[u8; SEAL_LEN]> {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::End(-(SEAL_LEN as i64)))?;
        let mut tail = [0u8; SEAL_LEN];
        file.read_exact(&mut tail)?;
        Ok(tail)
    };
    tail()
        .ok()
        .and_then(|t| SealRecord::decode(&t).ok())
        .map_or(RecordedCheck::None, |seal| seal.check)
}

/// Checks everything about a backup: signer trusted, header MAC, every
/// chunk authenticated and decompressed, trailer length and SHA-256, the
/// seal, and the integrity check that [`VerifyOptions::integrity_check`]
/// asks for (by default: none when the seal records a full check made at
/// backup time, `PRAGMA integrity_check` otherwise), on the image in a
/// private temporary file (deleted after, never synced). When no check runs
/// on a full backup, the image is hashed in memory and never written
/// anywhere.
pub fn verify_backup(
    store: &dyn BackupStore,
    name: &str,
    keyring: &Keyring,
    options: &VerifyOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<VerifyReport, EngineError> {
    // An increment's image is built from its chain, on disk.
    let increment = crate::chain::looks_like_increment(store, name);
    // Whether a check will run is known for sure only from the seal at
    // the end of the read; the guess decides whether the image is written
    // to disk on the way.
    let needs_image = increment
        || match options.integrity_check {
            IntegrityCheck::None => false,
            IntegrityCheck::Auto => guess_recorded_check(store, name) != RecordedCheck::Full,
            IntegrityCheck::Full | IntegrityCheck::Quick => true,
        };
    if !needs_image {
        let started = Instant::now();
        let input = store.open(name)?;
        let opened = open_container(
            name,
            input,
            keyring,
            &mut std::io::sink(),
            options.threads,
            cancel,
            progress,
        )
        .and_then(|opened| whole_pages(name, opened))?;
        let level = options.integrity_check.level(opened.recorded_check);
        if level == CheckLevel::None {
            return Ok(report(name, opened, options, level, started));
        }
        // The guess was wrong (the file changed since it was looked at):
        // read it again, onto disk, and decide on that read.
    }
    let read = if increment {
        crate::chain::restore_chain_into_file
    } else {
        restore_into_file
    };
    let (_private, mut file) = private_image_file(options)?;
    read(
        store,
        name,
        keyring,
        ImageFile {
            file: &mut file,
            image_use: ImageUse::Scratch,
        },
        options,
        cancel,
        progress,
    )
}

/// A file for a plaintext image that verify writes: in a private 0700
/// directory (removed with everything in it when the first value drops) of
/// the chosen or the system's temporary directory, never beside the backup.
fn private_image_file(
    options: &VerifyOptions,
) -> Result<(tempfile::TempDir, tempfile::NamedTempFile), EngineError> {
    let temp_dir = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let private = sqlseal_private::private_tempdir_in(&temp_dir, ".sqlseal-verify-").map_err(
        io_err("creating a private temporary directory in", &temp_dir),
    )?;
    let file = tempfile::Builder::new()
        .prefix("image-")
        .tempfile_in(private.path())
        .map_err(io_err("creating a temporary file in", private.path()))?;
    Ok((private, file))
}

#[cfg(test)]
mod tests {
    use sqlseal_crypto::P256Identity;
    use sqlseal_format::CreatedAt;
    use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
    use sqlseal_store::LocalStore;
    use sqlseal_testkit::add_rows;

    use super::*;
    use crate::chain::restore_chain_into_file;
    use crate::{BackupOptions, IncrementOutcome, NoProgress, create_increment, start_chain};

    /// A full backup and one increment after it, of a small database.
    struct Chain {
        dir: tempfile::TempDir,
        store: LocalStore,
        keyring: Keyring,
        full: String,
        increment: String,
    }

    fn chain() -> Chain {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        add_rows(&db, 400, 200);
        let key = P256Identity::generate().expect("key");
        let store = LocalStore::new(dir.path().join("backups"));
        let options = BackupOptions::new(vec![key.recipient().clone()], key.clone());
        let mut snapshot = SnapshotOptions::new(Method::DbPage);
        snapshot.check = CheckLevel::None;
        let source = SqliteSource::new(&db, snapshot);
        let cancel = CancelFlag::new();
        let (full, state) =
            start_chain(&source, &store, &options, &cancel, &NoProgress).expect("full");
        add_rows(&db, 50, 200);
        // A link is dated after the backup before it.
        let created = full.header.metadata.created.as_microsecond();
        let later = BackupOptions {
            created_at: CreatedAt::from_microsecond(created + 1_000_000),
            ..options
        };
        let outcome = create_increment(&source, &store, &later, &state, &cancel, &NoProgress);
        let increment = match outcome.expect("increment") {
            IncrementOutcome::Written(report, _) => report.name,
            IncrementOutcome::Unchanged => panic!("the database changed"),
        };
        let mut keyring = Keyring::new();
        keyring.add_identity(key);
        Chain {
            dir,
            store,
            keyring,
            full: full.name,
            increment,
        }
    }

    /// Restores `name` (a full backup or an increment) into a new file of
    /// the chain's directory, with `image_use`.
    fn restore(c: &Chain, name: &str, image_use: ImageUse) -> Result<VerifyReport, EngineError> {
        let mut file = tempfile::NamedTempFile::new_in(c.dir.path()).expect("temp file");
        let image = ImageFile {
            file: &mut file,
            image_use,
        };
        let read = if name == c.increment {
            restore_chain_into_file
        } else {
            restore_into_file
        };
        let options = VerifyOptions {
            integrity_check: IntegrityCheck::Full,
            ..VerifyOptions::default()
        };
        read(
            &c.store,
            name,
            &c.keyring,
            image,
            &options,
            &CancelFlag::new(),
            &NoProgress,
        )
    }

    #[test]
    fn a_sync_that_fails_fails_the_restore_and_names_the_file() {
        let c = chain();
        for name in [&c.full, &c.increment] {
            for image_use in [ImageUse::Install, ImageUse::Scratch] {
                let report = restore(&c, name, image_use).expect("restores");
                assert!(report.integrity_checked, "{name}: checked");
            }
            match restore(&c, name, ImageUse::FailingSync) {
                Err(EngineError::Io { what, path, source }) => {
                    assert_eq!(what, "syncing", "{name}");
                    assert!(path.starts_with(c.dir.path()), "{name}: {}", path.display());
                    assert!(source.to_string().contains("injected"), "{name}: {source}");
                }
                other => panic!("{name}: a failed sync must fail the restore, got {other:?}"),
            }
        }
    }
}
