//! The forgery the v2 seal stops: a holder of a recipient key (the offline
//! recovery key) who can write to the store keeps a genuine signed header,
//! unwraps the data key, seals an image of their choosing under it, and
//! replaces the backup. Verify, restore and `--latest` must refuse it.
//!
//! On a v1 reader (header signature only) every step of this test opened the
//! forged file: the header, its signature and its MAC stay valid, and every
//! chunk and the trailer authenticate under the data key.

use std::path::Path;

use rusqlite::Connection;
use sqlseal_crypto::{CryptoError, Keyring, P256Identity};
use sqlseal_engine::{
    BackupOptions, CancelFlag, EngineError, NoProgress, RestoreOptions, VerifyOptions,
    create_backup, restore_backup, verify_backup,
};
use sqlseal_format::{Header, PayloadWriter, SALT_LEN, SEAL_LEN};
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::{BackupStore, LocalStore};

fn database(path: &Path, value: &str) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("CREATE TABLE t(v TEXT);")
        .expect("schema");
    conn.execute("INSERT INTO t VALUES (?1)", [value])
        .expect("row");
}

fn value(path: &Path) -> String {
    Connection::open(path)
        .expect("open")
        .query_row("SELECT v FROM t", [], |r| r.get(0))
        .expect("row")
}

#[test]
fn a_recipient_cannot_replace_the_payload_of_a_signed_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = P256Identity::generate().expect("server key");
    let recovery = P256Identity::generate().expect("recovery key");
    let store = LocalStore::new(dir.path().join("backups"));

    // The server backs up its database, encrypted to itself and to the
    // offline recovery key, signed by itself.
    let db = dir.path().join("app.db");
    database(&db, "genuine");
    let source = SqliteSource::new(&db, SnapshotOptions::new(Method::DbPage));
    let options = BackupOptions::new(
        vec![server.recipient().clone(), recovery.recipient().clone()],
        server.clone(),
    );
    let made =
        create_backup(&source, &store, &options, &CancelFlag::new(), &NoProgress).expect("backup");
    let path = store.local_path(&made.name).expect("local path");

    // The recovery key's holder: keep the header (and the seal record), unwrap
    // the data key, seal a database of their choosing under it.
    let planted_db = dir.path().join("planted.db");
    database(&planted_db, "planted");
    let planted = std::fs::read(&planted_db).expect("read planted");
    let genuine = std::fs::read(&path).expect("read backup");
    let mut rest = &genuine[..];
    let header = Header::parse(&mut rest).expect("header parses");
    let header_len = genuine.len() - rest.len();
    let mut holder = Keyring::new();
    holder.add_identity(recovery.clone());
    holder.trust(server.recipient().clone());
    let data_key = holder
        .open_header(&header)
        .expect("the recovery key opens it");
    let mut forged = genuine[..header_len].to_vec();
    let mut writer = PayloadWriter::new(
        &mut forged,
        &data_key,
        [7; SALT_LEN],
        header.metadata.chunk_size,
    )
    .expect("payload writer");
    writer.write_image(&planted).expect("write image");
    let pages = planted.len() as u64 / u64::from(header.metadata.page_size);
    writer.finish(pages).expect("finish");
    forged.extend_from_slice(&genuine[genuine.len() - SEAL_LEN..]);
    std::fs::write(&path, &forged).expect("replace the backup");

    // The server, and the recovery key trusting the server, both refuse it.
    for keyring in [
        {
            let mut k = Keyring::new();
            k.add_identity(server.clone());
            k
        },
        holder,
    ] {
        let err = verify_backup(
            &store,
            &made.name,
            &keyring,
            &VerifyOptions::default(),
            &CancelFlag::new(),
            &NoProgress,
        )
        .expect_err("verify refuses the forgery");
        assert!(
            matches!(
                err,
                EngineError::Open {
                    source: CryptoError::BadSeal { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_integrity_failure(), "exit code 3: {err}");
        let target = dir.path().join("restored.db");
        let err = restore_backup(
            &store,
            &made.name,
            &keyring,
            &target,
            &RestoreOptions::default(),
            &CancelFlag::new(),
            &NoProgress,
        )
        .expect_err("restore refuses the forgery");
        assert!(err.to_string().contains("the seal by key"), "{err}");
        assert!(!target.exists(), "nothing was installed");
    }

    // The untouched backup still restores the genuine database.
    std::fs::write(&path, &genuine).expect("put the genuine file back");
    let target = dir.path().join("restored.db");
    let mut keyring = Keyring::new();
    keyring.add_identity(server);
    restore_backup(
        &store,
        &made.name,
        &keyring,
        &target,
        &RestoreOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect("the genuine backup restores");
    assert_eq!(value(&target), "genuine");
}

/// A trailer whose page count times the page size overflows u64 is an
/// inconsistent backup, not a panic (the product was unchecked).
#[test]
fn a_page_count_that_overflows_is_refused_without_a_panic() {
    use sqlseal_crypto::{Recipient, random_backup_id, seal_container};
    use sqlseal_format::{Compression, CreatedAt, Metadata, RecordedCheck};
    use std::io::Write;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = P256Identity::generate().expect("key");
    let store = LocalStore::new(dir.path().join("backups"));
    let metadata = Metadata {
        backup_id: random_backup_id().expect("id"),
        created: CreatedAt::from_microsecond(1_764_000_000_000_000).expect("time"),
        database: "app.db".into(),
        page_size: 4096,
        method: "dbpage".into(),
        compression: Compression::Lz4,
        chunk_size: 4096,
        chain: None,
    };
    let recipients: [&dyn Recipient; 1] = [server.recipient()];
    let (_, mut writer) =
        seal_container(Vec::new(), metadata, &recipients, &server).expect("container");
    writer.write_image(&[0u8; 4096]).expect("image");
    let (bytes, _) = writer
        .finish(u64::MAX, RecordedCheck::None)
        .expect("finish");
    let name = "app.db-20251124T160000.000000Z-000000.sqlseal";
    let mut out = store.create(name).expect("create");
    out.write_all(&bytes).expect("write");
    out.finish().expect("finish");

    let mut keyring = Keyring::new();
    keyring.add_identity(server);
    let err = verify_backup(
        &store,
        name,
        &keyring,
        &VerifyOptions::default(),
        &CancelFlag::new(),
        &NoProgress,
    )
    .expect_err("refused");
    assert!(matches!(err, EngineError::Inconsistent { .. }), "{err}");
    assert!(
        err.to_string().contains("18446744073709551615 pages"),
        "{err}"
    );
}
