//! Creating a backup: snapshot -> chunks -> seal -> store.

use std::io::Write;
use std::time::Instant;

use sqlseal_crypto::{Recipient, random_backup_id, random_bytes};
use sqlseal_format::header::sanitize_database_name;
use sqlseal_format::{ChunkCipher, Compression, CreatedAt, Metadata, SALT_LEN};
use sqlseal_source::SnapshotSource;
use sqlseal_store::BackupStore;

use crate::pipeline::{self, pipeline_error};
use crate::{BackupOptions, BackupReport, CancelFlag, EngineError, Progress};

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
