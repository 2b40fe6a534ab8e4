//! Auto-restore: at start-up, a configured database that does not exist
//! is restored from the newest backup that passes every check.

use std::path::PathBuf;

use sqlseal_engine::{
    CancelFlag, NoProgress, RestoreOptions, VerifyOptions, list_backups, restore_backup,
};
use sqlseal_store::StoreError;
use tracing::{info, warn};

use crate::ScheduleError;
use crate::config::{OnFailure, Settings};

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
    },
    /// Every backup failed and `Restore.OnFailure` is `empty`: it starts empty.
    StartedEmpty {
        /// Every backup, newest first, and why it failed.
        refused: Vec<Refused>,
    },
}

/// What auto-restore did, per database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoRestoreReport {
    /// Database path and outcome, in configuration order.
    pub databases: Vec<(PathBuf, RestoreOutcome)>,
}

/// Restores every configured database that is missing, from its newest
/// backup that passes verification (signer trusted, every chunk, trailer
/// hash, integrity_check). A database file that exists is never touched.
pub fn auto_restore_settings(settings: &Settings) -> Result<AutoRestoreReport, ScheduleError> {
    let mut report = AutoRestoreReport {
        databases: Vec::new(),
    };
    for db in &settings.databases {
        let outcome = if db.path.symlink_metadata().is_ok() {
            RestoreOutcome::Present
        } else if !settings.restore_auto {
            RestoreOutcome::Disabled
        } else {
            restore_one(settings, db)?
        };
        report.databases.push((db.path.clone(), outcome));
    }
    Ok(report)
}

fn restore_one(
    settings: &Settings,
    db: &crate::DatabaseConfig,
) -> Result<RestoreOutcome, ScheduleError> {
    let listed = match list_backups(db.store.as_ref()) {
        Ok(listed) => listed,
        Err(sqlseal_engine::EngineError::Store(StoreError::NoDirectory(_))) => Vec::new(),
        Err(source) => {
            return Err(ScheduleError::Engine {
                database: db.name.clone(),
                source,
            });
        }
    };
    if listed.is_empty() {
        info!(database = %db.path.display(), "database is missing and has no backups; it will start empty");
        return Ok(RestoreOutcome::NoBackups);
    }
    let mut refused = Vec::new();
    let options = RestoreOptions {
        force: false,
        verify: VerifyOptions {
            temp_dir: settings.temp_dir.clone(),
            ..VerifyOptions::default()
        },
    };
    let expected = sqlseal_format::header::sanitize_database_name(&db.name);
    for backup in listed {
        let name = backup.entry.name;
        // The header is authenticated by the restore below; this only skips
        // backups that say they are of another database.
        if let Ok(header) = &backup.header
            && header.metadata.database != expected
        {
            let reason = format!(
                "it is a backup of {}, not of {expected}",
                header.metadata.database
            );
            warn!(database = %db.path.display(), backup = %name, error = %reason, "backup refused for auto-restore");
            refused.push(Refused {
                backup: name,
                reason,
            });
            continue;
        }
        match restore_backup(
            db.store.as_ref(),
            &name,
            &settings.keyring,
            &db.path,
            &options,
            &CancelFlag::new(),
            &NoProgress,
        ) {
            Ok(_) => {
                info!(
                    database = %db.path.display(),
                    backup = %name,
                    refused = refused.len(),
                    "restored missing database from backup"
                );
                return Ok(RestoreOutcome::Restored {
                    backup: name,
                    refused,
                });
            }
            Err(e) => {
                warn!(database = %db.path.display(), backup = %name, error = %e, "backup refused for auto-restore");
                refused.push(Refused {
                    backup: name,
                    reason: e.to_string(),
                });
            }
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
