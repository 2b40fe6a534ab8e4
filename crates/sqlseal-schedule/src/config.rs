//! Turning parameters into checked settings: every key loaded, every path
//! checked, before anything runs. Each error names the parameter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlseal_crypto::{
    Keyring, P256Identity, P256Recipient, load_identity_file, load_recipient_file,
};
use sqlseal_params::Params;
use sqlseal_source::Method;
use sqlseal_store::{BackupStore, LocalStore};

/// A configuration that cannot run, naming the parameter at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A parameter's value cannot be used.
    #[error("{param}: {reason}")]
    Invalid {
        /// The parameter, e.g. `Backup.Keys`.
        param: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

fn invalid(param: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        param,
        reason: reason.into(),
    }
}

/// What to do when no backup of a missing database passes verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop with an error: the service must not start on an empty database.
    Fail,
    /// Warn and let the service start with a fresh database.
    Empty,
}

/// One database and where its backups go.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// The database file.
    pub path: PathBuf,
    /// Its file name, also the name of its subdirectory of `Backup.Location`.
    pub name: String,
    /// Its backups.
    pub store: Arc<dyn BackupStore>,
}

/// Checked settings for the daemon and for [`crate::auto_restore`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// The databases, in configuration order.
    pub databases: Vec<DatabaseConfig>,
    /// Signs new backups (the first of `Backup.Keys`).
    pub signer: P256Identity,
    /// Every key new backups are encrypted to.
    pub recipients: Vec<P256Recipient>,
    /// Opens backups and trusts signers (for auto-restore and read-back).
    pub keyring: Keyring,
    /// `Backup.Location`: each database's backups are in a subdirectory.
    pub location: PathBuf,
    /// Snapshot method.
    pub method: Method,
    /// Plaintext chunk size.
    pub chunk_size: u32,
    /// Directory for temporary snapshot files; beside the backups when `None`.
    pub temp_dir: Option<PathBuf>,
    /// Time between scheduled backups; `None` disables scheduling.
    pub frequency: Option<std::time::Duration>,
    /// Backups to keep per database; 0 keeps all.
    pub max_count: u64,
    /// Restore missing databases at start-up.
    pub restore_auto: bool,
    /// What auto-restore does when every backup fails.
    pub on_failure: OnFailure,
    /// Where the status file is written.
    pub status_file: PathBuf,
    /// Things to tell the operator (e.g. key files readable by others).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Checks `params` and loads every key. Creates `Backup.Location`
    /// (0700) if it is missing and proves it writable.
    pub fn from_params(params: &Params) -> Result<Settings, ConfigError> {
        let b = &params.backup;
        let mut warnings = Vec::new();
        if b.keys.is_empty() {
            return Err(invalid(
                "Backup.Keys",
                "no private key files; list at least one (make one with `sqlseal keygen -o FILE`)",
            ));
        }
        let mut identities = Vec::new();
        for path in &b.keys {
            let (identity, w) =
                load_identity_file(path).map_err(|e| invalid("Backup.Keys", e.to_string()))?;
            warnings.extend(w);
            identities.push(identity);
        }
        let mut recipients: Vec<P256Recipient> = Vec::new();
        let mut add = |r: P256Recipient| {
            if !recipients.iter().any(|o| o.key_id() == r.key_id()) {
                recipients.push(r);
            }
        };
        for identity in &identities {
            add(identity.recipient().clone());
        }
        for path in &b.recipients {
            add(load_recipient_file(path)
                .map_err(|e| invalid("Backup.Recipients", e.to_string()))?);
        }
        let mut keyring = Keyring::new();
        for path in &b.trust {
            keyring.trust(
                load_recipient_file(path).map_err(|e| invalid("Backup.Trust", e.to_string()))?,
            );
        }
        let signer = identities[0].clone();
        for identity in identities {
            keyring.add_identity(identity);
        }
        let method: Method = b
            .method
            .parse()
            .map_err(|e: String| invalid("Backup.Method", e))?;
        let chunk_size =
            u32::try_from(b.chunk_size).map_err(|_| invalid("Backup.ChunkSize", "too large"))?;

        if params.database.paths.is_empty() {
            return Err(invalid(
                "Database.Paths",
                "no databases configured; list the SQLite files to back up",
            ));
        }
        let location = &b.location;
        prove_writable(location).map_err(|reason| invalid("Backup.Location", reason))?;
        let mut databases: Vec<DatabaseConfig> = Vec::new();
        for path in &params.database.paths {
            let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                return Err(invalid(
                    "Database.Paths",
                    format!("{} is not a file path", path.display()),
                ));
            };
            if let Some(other) = databases.iter().find(|d| d.name == name) {
                return Err(invalid(
                    "Database.Paths",
                    format!(
                        "{} and {} have the same file name, and so would share a backup directory; rename one",
                        other.path.display(),
                        path.display()
                    ),
                ));
            }
            if path.is_dir() {
                return Err(invalid(
                    "Database.Paths",
                    format!("{} is a directory, not a database file", path.display()),
                ));
            }
            databases.push(DatabaseConfig {
                path: path.clone(),
                store: Arc::new(LocalStore::new(location.join(&name))),
                name,
            });
        }
        let temp_dir = (!params.backup.temp_dir.as_os_str().is_empty())
            .then(|| params.backup.temp_dir.clone());
        if let Some(t) = &temp_dir {
            prove_writable(t).map_err(|reason| invalid("Backup.TempDir", reason))?;
        }
        let status_file = if params.status.file.as_os_str().is_empty() {
            location.join("status.json")
        } else {
            params.status.file.clone()
        };
        let frequency = b.frequency.as_std();
        let on_failure = match params.restore.on_failure.as_str() {
            "empty" => OnFailure::Empty,
            _ => OnFailure::Fail,
        };
        Ok(Settings {
            databases,
            signer,
            recipients,
            keyring,
            location: location.clone(),
            method,
            chunk_size,
            temp_dir,
            frequency: (!frequency.is_zero()).then_some(frequency),
            max_count: b.max_count,
            restore_auto: params.restore.auto,
            on_failure,
            status_file,
            warnings,
        })
    }
}

/// Creates `dir` (0700) if missing and checks a file can be created in it.
fn prove_writable(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    tempfile::Builder::new()
        .prefix(".sqlseal-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("directory {} is not writable: {e}", dir.display()))
}
