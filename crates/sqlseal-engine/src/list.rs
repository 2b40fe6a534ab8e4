//! What a store holds: names, sizes and headers, and which headers
//! authenticate under a keyring.

use std::io::BufReader;
use std::sync::Arc;

use sqlseal_crypto::Keyring;
use sqlseal_format::{BackupId, CreatedAt, Header};
use sqlseal_store::{BackupEntry, BackupStore};

use crate::{Approve, EngineError};

/// Whether a listed backup's header was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    /// No keyring was given: nothing in the header is authenticated.
    NotChecked,
    /// The header parsed and [`Keyring::open_header`] succeeded: a stanza
    /// for one of our keys opened, the signer is trusted, the signature and
    /// the header MAC verify. Every header field is authentic; the payload
    /// is not checked until a full read.
    Verified,
    /// The header did not parse or did not authenticate, and why.
    Refused(String),
}

/// A backup in a store with its parsed header and whether it authenticated.
#[derive(Debug)]
pub struct ListedBackup {
    /// Name and size.
    pub entry: BackupEntry,
    /// The header, or why it could not be read.
    pub header: Result<Header, EngineError>,
    /// Whether the header authenticated under the keyring given to [`list_backups`].
    pub check: HeaderCheck,
}

impl ListedBackup {
    /// Creation time from the header, if it parsed. Not authenticated
    /// unless [`ListedBackup::is_verified`]: display it, never decide on it
    /// (use [`ListedBackup::verified_created`]).
    pub fn created(&self) -> Option<CreatedAt> {
        self.header.as_ref().ok().map(|h| h.metadata.created)
    }

    /// Whether the header authenticated.
    pub fn is_verified(&self) -> bool {
        self.check == HeaderCheck::Verified
    }

    /// The header, only if it authenticated.
    pub fn verified_header(&self) -> Option<&Header> {
        if self.is_verified() {
            self.header.as_ref().ok()
        } else {
            None
        }
    }

    /// Creation time, only if the header authenticated.
    pub fn verified_created(&self) -> Option<CreatedAt> {
        self.verified_header().map(|h| h.metadata.created)
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

fn check_header(header: &Result<Header, EngineError>, keyring: Option<&Keyring>) -> HeaderCheck {
    let Some(keyring) = keyring else {
        return HeaderCheck::NotChecked;
    };
    match header {
        Err(e) => HeaderCheck::Refused(e.to_string()),
        Ok(h) => match keyring.open_header(h) {
            Ok(_data_key) => HeaderCheck::Verified,
            Err(e) => HeaderCheck::Refused(e.to_string()),
        },
    }
}

/// All backups in `store`, newest first by header creation time (backups
/// whose header does not parse sort last, by name). With a keyring, every
/// header is authenticated and marked [`HeaderCheck::Verified`] or
/// [`HeaderCheck::Refused`]; without one, [`HeaderCheck::NotChecked`].
/// The order itself is by the stated (possibly unauthenticated) times, for
/// display: decide with [`ListedBackup::verified_created`].
pub fn list_backups(
    store: &dyn BackupStore,
    keyring: Option<&Keyring>,
) -> Result<Vec<ListedBackup>, EngineError> {
    let mut listed: Vec<ListedBackup> = store
        .list()?
        .into_iter()
        .map(|entry| {
            let header = inspect_backup(store, &entry.name);
            let check = check_header(&header, keyring);
            ListedBackup {
                header,
                check,
                entry,
            }
        })
        .collect();
    listed.sort_by(|a, b| {
        b.created()
            .cmp(&a.created())
            .then_with(|| b.entry.name.cmp(&a.entry.name))
    });
    Ok(listed)
}

/// The name of the newest backup in `store` whose header authenticates
/// under `keyring` (by its authenticated creation time). Backups that do
/// not authenticate are never chosen, whatever time they state.
pub fn latest_backup(store: &dyn BackupStore, keyring: &Keyring) -> Result<String, EngineError> {
    latest_backup_at(store, keyring, None)
}

/// The name of the newest backup (a full backup or an increment: a point)
/// whose header authenticates and whose authenticated creation time is at
/// or before `at` (any time when `None`).
pub fn latest_backup_at(
    store: &dyn BackupStore,
    keyring: &Keyring,
    at: Option<CreatedAt>,
) -> Result<String, EngineError> {
    choose_latest_at(store, keyring, at).map(|chosen| chosen.name)
}

/// A backup chosen from a store by its authenticated header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenBackup {
    /// Its name in the store.
    pub name: String,
    /// The backup id of the header it was chosen by.
    pub backup_id: BackupId,
}

impl ChosenBackup {
    /// A [`crate::RestoreOptions::approve`] that installs only the backup
    /// this was chosen by: a later read of the name whose authenticated
    /// header is another backup's (the object was replaced since it was
    /// listed, by an older or another database's backup, say) is refused.
    pub fn approve_same(&self) -> Approve {
        let chosen = self.backup_id;
        Arc::new(move |header: &Header| {
            let read = header.metadata.backup_id;
            if read == chosen {
                return Ok(());
            }
            Err(format!(
                "it changed since it was chosen: backup id {chosen} was chosen, {read} was read; choose again"
            ))
        })
    }
}

/// [`latest_backup_at`], with the backup id of the header it chose by:
/// restore with [`ChosenBackup::approve_same`] to install that very backup.
pub fn choose_latest_at(
    store: &dyn BackupStore,
    keyring: &Keyring,
    at: Option<CreatedAt>,
) -> Result<ChosenBackup, EngineError> {
    let listed = list_backups(store, Some(keyring))?;
    if listed.is_empty() {
        return Err(EngineError::NoBackups(store.location()));
    }
    let verified: Vec<(CreatedAt, &String, BackupId)> = listed
        .iter()
        .filter_map(|b| {
            let header = b.verified_header()?;
            Some((
                header.metadata.created,
                &b.entry.name,
                header.metadata.backup_id,
            ))
        })
        .collect();
    let newest = verified
        .iter()
        .filter(|(c, _, _)| at.is_none_or(|at| *c <= at))
        .max_by_key(|(c, name, _)| (*c, *name));
    if let Some((_, name, backup_id)) = newest {
        return Ok(ChosenBackup {
            name: (*name).clone(),
            backup_id: *backup_id,
        });
    }
    let oldest = verified.iter().map(|(c, _, _)| *c).min();
    if let (Some(at), Some(oldest)) = (at, oldest) {
        return Err(EngineError::NoBackupAt {
            location: store.location(),
            at,
            oldest,
        });
    }
    let reasons = listed
        .iter()
        .map(|b| match &b.check {
            HeaderCheck::Refused(reason) => format!("{}: {reason}", b.entry.name),
            _ => b.entry.name.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(EngineError::NoVerifiedBackups {
        location: store.location(),
        refused: listed.len(),
        reasons,
    })
}
