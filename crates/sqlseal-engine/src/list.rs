//! What a store holds: names, sizes and headers.

use std::io::BufReader;

use sqlseal_format::{CreatedAt, Header};
use sqlseal_store::{BackupEntry, BackupStore};

use crate::EngineError;

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
