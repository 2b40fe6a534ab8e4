//! The fixture of the engine tests: a database in a temporary directory, a
//! key that both encrypts to and signs with itself, and a local store.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sqlseal_crypto::{Keyring, P256Identity};
use sqlseal_engine::BackupOptions;
use sqlseal_store::LocalStore;

/// `dir/app.db`, a new key, and a local store in `dir/backups`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub key: P256Identity,
    pub store: LocalStore,
}

impl Fixture {
    /// A new temporary directory whose `app.db` `make_db` makes.
    pub fn new(make_db: impl FnOnce(&Path)) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        make_db(&db);
        Fixture {
            store: LocalStore::new(dir.path().join("backups")),
            key: P256Identity::generate().expect("key"),
            db,
            dir,
        }
    }

    /// Backup options that encrypt to the fixture's key and sign with it.
    pub fn options(&self) -> BackupOptions {
        own_options(&self.key)
    }
}

/// Backup options that encrypt to `key` and sign with it.
pub fn own_options(key: &P256Identity) -> BackupOptions {
    BackupOptions::new(vec![key.recipient().clone()], key.clone())
}

/// A keyring holding only `key`.
pub fn keyring(key: &P256Identity) -> Keyring {
    let mut k = Keyring::new();
    k.add_identity(key.clone());
    k
}
