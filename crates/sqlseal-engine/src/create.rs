//! Creating a backup: snapshot -> chunks -> seal -> store.

use std::io::Write;
use std::time::{Duration, Instant};

use sqlseal_crypto::{Recipient, random_backup_id, random_bytes, sign_seal};
use sqlseal_format::header::sanitize_database_name;
use sqlseal_format::{
    ChunkCipher, Compression, CreatedAt, Metadata, PayloadDigest, RecordedCheck, SALT_LEN,
};
use sqlseal_source::{Snapshot, SnapshotSource};
use sqlseal_store::BackupStore;

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
    let started = Instant::now();
    let mut snapshot = source.snapshot()?;
    let info = snapshot.info().clone();
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
    };
    let recipients: Vec<&dyn Recipient> = options
        .recipients
        .iter()
        .map(|r| r as &dyn Recipient)
        .collect();
    let (header, data_key) = sqlseal_crypto::seal_header(metadata, &recipients, &options.signer)
        .map_err(EngineError::Seal)?;
    // The file name encodes the database's own name, as the daemon's
    // subdirectory does (the header's copy has control characters replaced).
    let file_part = database.rsplit('/').next().unwrap_or(&database);
    let name = backup_name(file_part, created)?;
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
    let (trailer, payload_digest) = pipeline::seal_stream(
        blocks,
        &cipher,
        info.page_count,
        PayloadDigest::new(&salt),
        &mut out,
        options.threads,
        cancel,
        progress,
    )
    .map_err(|e| pipeline_error(&name, e))?;
    // The check of this very image decides whether the backup is sealed at all.
    let recorded = wait_for_check(&mut snapshot, cancel)?;
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
    // The seal: the signer's commitment to this exact header and payload.
    let seal = sign_seal(&options.signer, &header, &payload_digest, recorded);
    out.write_all(&seal.encode()).map_err(write_err)?;
    let size = out.written;
    out.inner.finish()?;
    Ok(BackupReport {
        path: store.local_path(&name),
        name,
        header,
        trailer,
        size,
        recorded_check: recorded,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// How often a wait for the snapshot's check looks at the cancel flag.
const CHECK_POLL: Duration = Duration::from_millis(50);

/// Waits for the snapshot's integrity check, watching `cancel`; the check
/// to record in the seal. On a cancel or a failed check the caller drops
/// the snapshot (which interrupts the check) and the unfinished backup.
fn wait_for_check(
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
