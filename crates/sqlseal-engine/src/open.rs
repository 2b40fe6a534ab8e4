//! Opening a backup: the one reader of a payload, and verify.

use std::io::{BufReader, Write};
use std::path::Path;
use std::time::Instant;

use sqlseal_crypto::Keyring;
use sqlseal_format::{ChunkCipher, FrameReader, Header, Trailer};
use sqlseal_source::check_integrity;
use sqlseal_store::BackupStore;

use crate::pipeline::{self, pipeline_error};
use crate::{CancelFlag, EngineError, Progress, VerifyOptions, VerifyReport};

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

pub(crate) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io { what, path, source }
}

/// Writes the image of `name` to `file` and checks it all; returns the report.
pub(crate) fn restore_into_file(
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
