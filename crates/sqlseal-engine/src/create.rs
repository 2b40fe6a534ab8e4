//! Creating a backup: snapshot -> chunks -> seal -> store.

use std::io::Write;
use std::time::{Duration, Instant};

use sqlseal_crypto::{Recipient, random_backup_id, random_bytes, sign_seal};
use sqlseal_format::header::sanitize_database_name;
use sqlseal_format::{
    ChunkCipher, Compression, CreatedAt, Metadata, PageIndex, PayloadDigest, RecordedCheck,
    SALT_LEN, Trailer,
};
use sqlseal_source::{Snapshot, SnapshotSource};
use sqlseal_store::{BackupStore, BackupWriter};

use crate::pipeline::{self, pipeline_error};
use crate::{BackupOptions, BackupReport, CancelFlag, EngineError, Progress, recorded_check};

/// The longest encoded database name in a backup or directory name, in
/// bytes: with the time, suffix and temporary-file affixes the whole name
/// stays well under the usual 255-byte limit of file systems.
const MAX_NAME_COMPONENT: usize = 150;

/// A database name as it appears in backup names and in the daemon's
/// per-database subdirectory: readable (Unicode and spaces kept), with only
/// what a file system or an S3 key cannot hold percent-encoded as UTF-8
/// bytes (`%2F`): `/`, `\`, NUL and other control characters, `%` itself,
/// a leading `.` (hidden files, `.` and `..`), and the `.tmp-` of temporary
/// files. At most 150 bytes, cut at a character; an empty name becomes
/// `database`. [`decode_name_component`] reverses it.
pub fn name_component(database: &str) -> String {
    let mut out = String::new();
    for (i, c) in database.char_indices() {
        let tmp_marker = c == '.' && database[i..].starts_with(".tmp-");
        let encode =
            c.is_control() || matches!(c, '/' | '\\' | '%') || (c == '.' && i == 0) || tmp_marker;
        let piece = if encode {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > MAX_NAME_COMPONENT {
            break;
        }
        out.push_str(&piece);
    }
    if out.is_empty() {
        out.push_str("database");
    }
    out
}

/// The database name that [`name_component`] encoded; `%XX` escapes that
/// are not valid UTF-8 or hex are kept as written.
pub fn decode_name_component(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| component.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| component.to_owned())
}

/// The file name for a new backup: the database name (see
/// [`name_component`]), UTC time with microseconds (so names sort in
/// creation order), and a random suffix so that two backups in the same
/// microsecond cannot collide.
pub fn backup_name(database: &str, created: CreatedAt) -> Result<String, EngineError> {
    let safe = name_component(database);
    let time = created.timestamp().strftime("%Y%m%dT%H%M%S%.6fZ");
    let suffix = random_bytes::<3>().map_err(EngineError::Seal)?;
    Ok(format!("{safe}-{time}-{}.sqlseal", hex::encode(suffix)))
}

/// Takes a snapshot of `source` and writes it as a new sealed backup to
/// `store`, recording in the seal the integrity check that passed on the
/// snapshot. On any error (a failed check is one) or cancellation nothing
/// becomes visible in the store.
pub fn create_backup(
    source: &dyn SnapshotSource,
    store: &dyn BackupStore,
    options: &BackupOptions,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<BackupReport, EngineError> {
    create_full(source, store, options, None, cancel, progress)
}

/// A full backup that also fills `index` with the hashes of every page of
/// the image it seals (for a chain to start from).
pub(crate) fn create_full(
    source: &dyn SnapshotSource,
    store: &dyn BackupStore,
    options: &BackupOptions,
    mut index: Option<&mut PageIndex>,
    cancel: &CancelFlag,
    progress: &dyn Progress,
) -> Result<BackupReport, EngineError> {
    let started = Instant::now();
    let mut snapshot = source.snapshot()?;
    let info = snapshot.info().clone();
    if let Some(index) = index.as_deref_mut() {
        *index = PageIndex::new(info.page_size);
    }
    let created = options
        .created_at
        .unwrap_or_else(|| CreatedAt::from_timestamp(jiff::Timestamp::now()));
    let database = options
        .database_name
        .clone()
        .unwrap_or_else(|| source.database_name());
    let metadata = Metadata {
        backup_id: random_backup_id().map_err(EngineError::Seal)?,
        created,
        database: sanitize_database_name(&database),
        page_size: info.page_size,
        method: info.method.name().to_owned(),
        compression: Compression::Lz4,
        chunk_size: options.chunk_size,
        chain: None,
    };
    let name = backup_name(file_part(&database), created)?;
    let mut container = Container::start(store, name, metadata, options, false)?;
    progress.start(info.image_len());
    let blocks = std::iter::from_fn(|| snapshot.next_block()).map(|b| {
        if let (Ok(block), Some(index)) = (&b, index.as_deref_mut()) {
            index.push_pages(block);
        }
        b.map_err(EngineError::from)
    });
    let (trailer, payload_digest) =
        container.seal_stream(blocks, info.page_count, options, cancel, progress)?;
    // The check of this very image decides whether the backup is sealed at all.
    let recorded = wait_for_check(&mut snapshot, cancel)?;
    drop(snapshot);
    if trailer.db_len != info.image_len() {
        return Err(EngineError::Inconsistent {
            backup: container.name,
            reason: format!(
                "snapshot gave {} bytes, expected {}",
                trailer.db_len,
                info.image_len()
            ),
        });
    }
    container.finish(trailer, &payload_digest, recorded, options, started)
}

/// The part of a database name that names its backup files.
pub(crate) fn file_part(database: &str) -> &str {
    database.rsplit('/').next().unwrap_or(database)
}

/// A container on its way into a store: the header is written first (at
/// once, or with the first payload byte when `lazy`, so that a stream that
/// ends in an error before its first frame makes no request at all).
pub(crate) struct Container<'a> {
    pub(crate) name: String,
    header: sqlseal_format::Header,
    cipher: ChunkCipher,
    salt: [u8; SALT_LEN],
    out: LazyWriter<'a>,
}

impl<'a> Container<'a> {
    pub(crate) fn start(
        store: &'a dyn BackupStore,
        name: String,
        metadata: Metadata,
        options: &BackupOptions,
        lazy: bool,
    ) -> Result<Container<'a>, EngineError> {
        let recipients: Vec<&dyn Recipient> = options
            .recipients
            .iter()
            .map(|r| r as &dyn Recipient)
            .collect();
        let (header, data_key) =
            sqlseal_crypto::seal_header(metadata, &recipients, &options.signer)
                .map_err(EngineError::Seal)?;
        let salt = random_bytes::<SALT_LEN>().map_err(EngineError::Seal)?;
        let cipher = ChunkCipher::new(&data_key, &salt, options.chunk_size).map_err(|source| {
            EngineError::Write {
                backup: name.clone(),
                source,
            }
        })?;
        drop(data_key);
        let mut start = header.encode();
        start.extend_from_slice(&salt);
        let mut out = LazyWriter {
            store,
            name: name.clone(),
            start,
            writer: None,
            written: 0,
        };
        if !lazy {
            out.writer = Some(out.open()?);
        }
        Ok(Container {
            name,
            header,
            cipher,
            salt,
            out,
        })
    }

    pub(crate) fn seal_stream<I>(
        &mut self,
        blocks: I,
        page_count: u64,
        options: &BackupOptions,
        cancel: &CancelFlag,
        progress: &dyn Progress,
    ) -> Result<(Trailer, [u8; 32]), EngineError>
    where
        I: Iterator<Item = Result<Vec<u8>, EngineError>> + Send,
    {
        pipeline::seal_stream(
            blocks,
            &self.cipher,
            page_count,
            PayloadDigest::new(&self.salt),
            &mut self.out,
            options.threads,
            cancel,
            progress,
        )
        .map_err(|e| pipeline_error(&self.name, e))
    }

    /// Writes the seal record and makes the backup visible.
    pub(crate) fn finish(
        mut self,
        trailer: Trailer,
        payload_digest: &[u8; 32],
        recorded: RecordedCheck,
        options: &BackupOptions,
        started: Instant,
    ) -> Result<BackupReport, EngineError> {
        // The seal: the signer's commitment to this exact header and payload.
        let seal = sign_seal(&options.signer, &self.header, payload_digest, recorded);
        let name = self.name.clone();
        self.out
            .write_all(&seal.encode())
            .map_err(|e| EngineError::Write {
                backup: name,
                source: e.into(),
            })?;
        let size = self.out.written;
        let writer = match self.out.writer.take() {
            Some(writer) => writer,
            None => self.out.open()?,
        };
        writer.finish()?;
        Ok(BackupReport {
            path: self.out.store.local_path(&self.name),
            name: self.name,
            header: self.header,
            trailer,
            size,
            recorded_check: recorded,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Writes `start` (header and salt) and then everything else to a backup
/// writer that it creates on the first write (or when told to); counts
/// the bytes that pass through.
struct LazyWriter<'a> {
    store: &'a dyn BackupStore,
    name: String,
    start: Vec<u8>,
    writer: Option<Box<dyn BackupWriter>>,
    written: u64,
}

impl LazyWriter<'_> {
    fn open(&mut self) -> Result<Box<dyn BackupWriter>, EngineError> {
        let mut writer = self.store.create(&self.name)?;
        writer
            .write_all(&self.start)
            .map_err(|e| EngineError::Write {
                backup: self.name.clone(),
                source: e.into(),
            })?;
        self.written = self.start.len() as u64;
        Ok(writer)
    }
}

impl Write for LazyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.writer.is_none() {
            let writer = self.open().map_err(std::io::Error::other)?;
            self.writer = Some(writer);
        }
        let writer = self.writer.as_mut().expect("opened above");
        let n = writer.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

/// How often a wait for the snapshot's check looks at the cancel flag.
const CHECK_POLL: Duration = Duration::from_millis(50);

/// Waits for the snapshot's integrity check, watching `cancel`; the check
/// to record in the seal. On a cancel or a failed check the caller drops
/// the snapshot (which interrupts the check) and the unfinished backup.
pub(crate) fn wait_for_check(
    snapshot: &mut Snapshot,
    cancel: &CancelFlag,
) -> Result<RecordedCheck, EngineError> {
    loop {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if let Some(outcome) = snapshot.check_result(CHECK_POLL) {
            return Ok(recorded_check(outcome?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unicode_and_spaces_stay_readable_and_round_trip() {
        let name = "café app ☕.db";
        assert_eq!(name_component(name), name);
        assert_eq!(decode_name_component(&name_component(name)), name);
        let created = CreatedAt::from_microsecond(0).expect("epoch");
        let file = backup_name(name, created).expect("name");
        assert!(
            file.starts_with("café app ☕.db-19700101T000000.000000Z-"),
            "{file}"
        );
        sqlseal_store::validate_name(&file).expect("a valid backup name");
    }

    #[test]
    fn what_a_file_system_or_key_cannot_hold_is_encoded() {
        assert_eq!(name_component("a/b\\c"), "a%2Fb%5Cc");
        assert_eq!(name_component("tab\there\nnul\0"), "tab%09here%0Anul%00");
        assert_eq!(name_component("100%.db"), "100%25.db");
        assert_eq!(name_component(".hidden.db"), "%2Ehidden.db");
        assert_eq!(name_component(".."), "%2E.");
        assert_eq!(name_component("x.tmp-1.db"), "x%2Etmp-1.db");
        assert_eq!(name_component("a.b.db"), "a.b.db");
        assert_eq!(name_component(""), "database");
        assert_eq!(name_component("\u{7f}\u{85}"), "%7F%C2%85");
        assert_eq!(decode_name_component("a%2Fb%5Cc%0A%25"), "a/b\\c\n%");
    }

    #[test]
    fn long_names_are_cut_at_a_character() {
        let long = "☕".repeat(100);
        let encoded = name_component(&long);
        assert!(encoded.len() <= MAX_NAME_COMPONENT, "{}", encoded.len());
        assert!(encoded.chars().all(|c| c == '☕'));
        let escaped = name_component(&"/".repeat(100));
        assert_eq!(escaped.len(), 150);
        assert!(escaped.ends_with("%2F"));
    }

    proptest! {
        #[test]
        fn encoding_round_trips_and_makes_valid_names(name in "\\PC{0,30}|[./%\\\\\\x00-\\x1f a-z]{0,40}") {
            let encoded = name_component(&name);
            if !name.is_empty() {
                prop_assert_eq!(decode_name_component(&encoded), name.clone());
            }
            prop_assert!(!encoded.starts_with('.'));
            prop_assert!(!encoded.contains(['/', '\\', '\0']));
            prop_assert!(!encoded.chars().any(char::is_control));
            let file = backup_name(&name, CreatedAt::from_microsecond(0).expect("epoch"))
                .expect("name");
            prop_assert!(sqlseal_store::validate_name(&file).is_ok(), "{}", file);
        }
    }
}
