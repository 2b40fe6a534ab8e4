//! Auto-restore: at start-up, a configured database that does not exist
//! is restored from the newest backup that passes every check.

use std::path::PathBuf;
use std::sync::Arc;

use sqlseal_engine::{
    Approve, CancelFlag, HeaderCheck, NoProgress, RestoreOptions, VerifyOptions, list_backups,
    restore_backup,
};
use sqlseal_format::{Header, KeyId};
use sqlseal_store::StoreError;
use tracing::{error, info, warn};

use crate::ScheduleError;
use crate::config::{OnFailure, Settings};
use crate::newest::{NewestBackup, read_newest, record_newest};
use crate::status::StatusWriter;

/// What auto-restore requires of an authenticated header besides its id:
/// this database's name and an allowed signer.
fn check_header(header: &Header, database: &str, signers: &[KeyId]) -> Result<(), String> {
    if header.metadata.database != database {
        return Err(format!(
            "it is a backup of {}, not of {database}",
            header.metadata.database
        ));
    }
    if !signers.contains(&header.signer) {
        return Err(format!(
            "it is signed by key {}, which is neither one of Backup.Keys nor listed in Backup.Trust",
            header.signer
        ));
    }
    Ok(())
}

/// A backup that was tried and refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The backup's name.
    pub backup: String,
    /// Why it was refused.
    pub reason: String,
}

/// What auto-restore did for one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The database exists; it was not touched.
    Present,
    /// `Restore.Auto` is off.
    Disabled,
    /// The database is missing and there are no backups: it starts empty.
    NoBackups,
    /// Restored from `backup`, after refusing the newer ones listed.
    Restored {
        /// The backup installed.
        backup: String,
        /// Newer backups that failed, newest first.
        refused: Vec<Refused>,
        /// Set when the installed backup is older than the newest one this
        /// host made or restored: what was installed and what is missing.
        older_than_newest: Option<String>,
    },
    /// Every backup failed and `Restore.OnFailure` is `empty`: it starts empty.
    StartedEmpty {
        /// Every backup, newest first, and why it failed.
        refused: Vec<Refused>,
    },
}

impl RestoreOutcome {
    /// One stable word for metrics labels: `present`, `disabled`,
    /// `no_backups`, `restored`, `restored_older` or `started_empty`.
    pub fn kind(&self) -> &'static str {
        match self {
            RestoreOutcome::Present => "present",
            RestoreOutcome::Disabled => "disabled",
            RestoreOutcome::NoBackups => "no_backups",
            RestoreOutcome::Restored {
                older_than_newest: Some(_),
                ..
            } => "restored_older",
            RestoreOutcome::Restored { .. } => "restored",
            RestoreOutcome::StartedEmpty { .. } => "started_empty",
        }
    }

    /// One line for the status file.
    pub fn describe(&self) -> String {
        match self {
            RestoreOutcome::Present => "database present; nothing restored".into(),
            RestoreOutcome::Disabled => "database missing; Restore.Auto is off".into(),
            RestoreOutcome::NoBackups => "database missing and no backups; it starts empty".into(),
            RestoreOutcome::Restored {
                backup, refused, ..
            } => format!(
                "restored from {backup}{}",
                match refused.len() {
                    0 => String::new(),
                    n => format!(" after refusing {n} newer backup(s)"),
                }
            ),
            RestoreOutcome::StartedEmpty { refused } => format!(
                "every one of {} backup(s) failed verification; started empty (Restore.OnFailure)",
                refused.len()
            ),
        }
    }
}

/// What auto-restore did, per database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoRestoreReport {
    /// Database path and outcome, in configuration order.
    pub databases: Vec<(PathBuf, RestoreOutcome)>,
}

/// Restores every configured database that is missing, from its newest
/// backup that passes verification (signer trusted, every chunk, trailer
/// hash, seal, and `PRAGMA integrity_check` unless the seal records a full
/// check made at backup time: the default rule of
/// [`IntegrityCheck::Auto`](sqlseal_engine::IntegrityCheck::Auto)). A
/// database file that exists is never touched.
///
/// Candidates are backups whose header authenticates, names this database
/// and is signed by one of `Backup.Keys` or `Backup.Trust`, newest first.
/// What is installed is decided again on the authenticated header of the
/// read that is installed (same backup id, database and signer), so a file
/// swapped after listing is refused. Installing a backup older than the
/// local record of the newest one is logged as an error and noted in the
/// status file, or refused with `Restore.RequireNewest`.
pub fn auto_restore_settings(settings: &Settings) -> Result<AutoRestoreReport, ScheduleError> {
    let mut report = AutoRestoreReport {
        databases: Vec::new(),
    };
    for (i, db) in settings.databases.iter().enumerate() {
        // One entry per database and location: each database once, from
        // the newest verified backup across all its locations.
        if settings.databases[..i].iter().any(|d| d.path == db.path) {
            continue;
        }
        let outcome = if db.path.symlink_metadata().is_ok() {
            RestoreOutcome::Present
        } else if !settings.restore_auto {
            RestoreOutcome::Disabled
        } else {
            let all: Vec<&crate::DatabaseConfig> = settings
                .databases
                .iter()
                .filter(|d| d.path == db.path)
                .collect();
            restore_one(settings, &all)?
        };
        report.databases.push((db.path.clone(), outcome));
    }
    Ok(report)
}

fn restore_one(
    settings: &Settings,
    locations: &[&crate::DatabaseConfig],
) -> Result<RestoreOutcome, ScheduleError> {
    let db = locations[0];
    // Every location's listing, in order; with several, one that cannot
    // be listed is skipped (and logged) and the others are used.
    let mut listed = Vec::new();
    for at in locations {
        match list_backups(at.store.as_ref(), Some(&settings.keyring)) {
            Ok(found) => listed.extend(found.into_iter().map(|b| (at.store.clone(), b))),
            Err(sqlseal_engine::EngineError::Store(StoreError::NoDirectory(_))) => {}
            Err(source) if locations.len() > 1 => {
                warn!(database = %db.path.display(), location = %at.store.location(), error = %source, "cannot list this location; auto-restore uses the others");
            }
            Err(source) => {
                return Err(ScheduleError::Engine {
                    database: db.name.clone(),
                    source,
                });
            }
        }
    }
    // Newest first across locations (by authenticated time; ties keep
    // the locations' order).
    listed.sort_by_key(|(_, b)| std::cmp::Reverse(b.verified_created()));
    if listed.is_empty() {
        info!(database = %db.path.display(), "database is missing and has no backups; nothing to restore, it is backed up once the application creates it");
        return Ok(RestoreOutcome::NoBackups);
    }
    let newest_known = match read_newest(&settings.newest_record) {
        Ok(mut all) => all.remove(&db.name),
        Err(e) => {
            error!(database = %db.path.display(), error = %e, "cannot read the record of the newest backup; an older backup will not be noticed");
            None
        }
    };
    let expected = sqlseal_format::header::sanitize_database_name(&db.name);
    let mut refused = Vec::new();
    let refuse = |refused: &mut Vec<Refused>, backup: String, reason: String| {
        warn!(database = %db.path.display(), backup = %backup, error = %reason, "backup refused for auto-restore");
        refused.push(Refused { backup, reason });
    };
    // Candidates: authenticated headers of this database by an allowed
    // signer, newest first (the listing's order, by authenticated time).
    let mut candidates = Vec::new();
    for (store, backup) in listed {
        let name = backup.entry.name.clone();
        let Some(header) = backup.verified_header() else {
            let reason = match &backup.check {
                HeaderCheck::Refused(reason) => reason.clone(),
                _ => "its header was not authenticated".to_owned(),
            };
            refuse(&mut refused, name, reason);
            continue;
        };
        if let Err(reason) = check_header(header, &expected, &settings.restore_signers) {
            refuse(&mut refused, name, reason);
            continue;
        }
        candidates.push((name, header.metadata.backup_id, store));
    }
    for (name, listed_id, store) in candidates {
        let approve: Approve = {
            let expected = expected.clone();
            let signers = settings.restore_signers.clone();
            let newest = newest_known.clone();
            let require_newest = settings.require_newest;
            Arc::new(move |header: &Header| {
                if header.metadata.backup_id != listed_id {
                    return Err(format!(
                        "it changed since it was listed: backup id {} was listed, {} was read",
                        listed_id, header.metadata.backup_id
                    ));
                }
                check_header(header, &expected, &signers)?;
                if require_newest
                    && let Some(newest) = &newest
                    && newest.is_newer_than(header)
                {
                    return Err(format!(
                        "it was created {} but this host made or restored {} (created {}); Restore.RequireNewest is set, so no older backup is installed",
                        header.metadata.created, newest.backup, newest.created
                    ));
                }
                Ok(())
            })
        };
        let options = RestoreOptions {
            force: false,
            verify: VerifyOptions {
                temp_dir: settings.temp_dir.clone(),
                ..VerifyOptions::default()
            },
            approve: Some(approve),
        };
        match restore_backup(
            store.as_ref(),
            &name,
            &settings.keyring,
            &db.path,
            &options,
            &CancelFlag::new(),
            &NoProgress,
        ) {
            Ok(report) => {
                let header = &report.verified.header;
                info!(
                    database = %db.path.display(),
                    backup = %name,
                    refused = refused.len(),
                    "restored missing database from backup"
                );
                let older_than_newest = newest_known
                    .as_ref()
                    .filter(|newest| newest.is_newer_than(header))
                    .map(|newest| {
                        format!(
                            "restored {name} (created {}), which is older than {} (created {}), the newest backup this host made or restored; that one is missing or fails verification",
                            header.metadata.created, newest.backup, newest.created
                        )
                    });
                if let Some(message) = &older_than_newest {
                    error!(database = %db.path.display(), backup = %name, newest = ?newest_known.as_ref().map(|n| &n.backup), "{message}");
                }
                let status = StatusWriter::for_settings(settings);
                if let Err(e) = status.update(&db.name, |s| {
                    s.restored_older = older_than_newest.clone();
                }) {
                    warn!(error = %e, "could not write the status file");
                }
                if let Err(e) = record_newest(
                    &settings.newest_record,
                    &db.name,
                    NewestBackup::from_header(&name, header),
                ) {
                    warn!(database = %db.path.display(), error = %e, "could not record the newest backup");
                }
                return Ok(RestoreOutcome::Restored {
                    backup: name,
                    refused,
                    older_than_newest,
                });
            }
            Err(e) => refuse(&mut refused, name, e.to_string()),
        }
    }
    match settings.on_failure {
        OnFailure::Empty => {
            warn!(
                database = %db.path.display(),
                backups = refused.len(),
                "every backup failed verification; Restore.OnFailure is empty, so the database starts empty"
            );
            Ok(RestoreOutcome::StartedEmpty { refused })
        }
        OnFailure::Fail => Err(ScheduleError::RestoreFailed {
            database: db.path.clone(),
            refused,
        }),
    }
}
