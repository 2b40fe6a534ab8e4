//! Turning parameters into checked settings: every key loaded, every path
//! checked, before anything runs. Each error names the parameter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlseal_crypto::{
    Keyring, P256Identity, P256Recipient, load_identity_file, load_recipient_file,
};
use sqlseal_format::KeyId;
use sqlseal_params::Params;

use crate::retention::RetentionPolicy;
use sqlseal_source::{CheckLevel, Method};
use sqlseal_store::{BackupStore, S3Settings, is_url, open_store};

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
    /// Its file name. Its subdirectory of `Backup.Location` is this name as
    /// [`sqlseal_engine::name_component`] encodes it (the same as in backup
    /// names; usually the name itself).
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
    /// `Backup.Location`: each database's backups are in a subdirectory
    /// (a directory path, or an `s3://BUCKET/PREFIX` URL).
    pub location: PathBuf,
    /// Where snapshot methods that copy the database put their temporary
    /// file: `Backup.TempDir`, else (`None`) a private directory beside
    /// each database, on its file system. Never `Backup.Location`, which
    /// the threat model lets others read.
    pub snapshot_temp_dir: Option<PathBuf>,
    /// Snapshot method.
    pub method: Method,
    /// `Backup.Check`: the integrity check run on each snapshot and
    /// recorded in its seal; a snapshot that fails it is not backed up.
    pub check: CheckLevel,
    /// Plaintext chunk size.
    pub chunk_size: u32,
    /// `Backup.TempDir`: directory for temporary snapshot files and
    /// verification images; `None` when empty.
    pub temp_dir: Option<PathBuf>,
    /// Time between scheduled backups; `None` disables scheduling.
    pub frequency: Option<std::time::Duration>,
    /// Backups to keep per database; 0 keeps all.
    pub max_count: u64,
    /// `Backup.MaxCount` and the `Backup.Keep*` rules.
    pub retention: RetentionPolicy,
    /// Restore missing databases at start-up.
    pub restore_auto: bool,
    /// What auto-restore does when every backup fails.
    pub on_failure: OnFailure,
    /// Signers whose backups auto-restore may install: the keys of
    /// `Backup.Keys` and `Backup.Trust` (not every signer the keyring trusts).
    pub restore_signers: Vec<KeyId>,
    /// `Restore.RequireNewest`: refuse to auto-restore a backup older than
    /// the newest one this host made or restored.
    pub require_newest: bool,
    /// Where the status file is written.
    pub status_file: PathBuf,
    /// The record of the newest backup per database, beside the status file.
    pub newest_record: PathBuf,
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
        let mut restore_signers: Vec<KeyId> = identities.iter().map(|i| i.key_id()).collect();
        for path in &b.trust {
            let trusted =
                load_recipient_file(path).map_err(|e| invalid("Backup.Trust", e.to_string()))?;
            restore_signers.push(trusted.key_id());
            keyring.trust(trusted);
        }
        let signer = identities[0].clone();
        for identity in identities {
            keyring.add_identity(identity);
        }
        let method: Method = b
            .method
            .parse()
            .map_err(|e: String| invalid("Backup.Method", e))?;
        let check: CheckLevel = b
            .check
            .parse()
            .map_err(|e: String| invalid("Backup.Check", e))?;
        let chunk_size = u32::try_from(b.chunk_size.bytes())
            .map_err(|_| invalid("Backup.ChunkSize", "too large"))?;

        if params.database.paths.is_empty() {
            return Err(invalid(
                "Database.Paths",
                "no databases configured; list the SQLite files to back up",
            ));
        }
        let location = &b.location;
        let remote = is_url(location);
        if !remote {
            prove_writable(location).map_err(|reason| invalid("Backup.Location", reason))?;
        }
        let s3 = s3_settings(&params.s3);
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
            // The same encoding as backup names: readable, with only what a
            // file system or an S3 key cannot hold percent-encoded.
            let subdir = sqlseal_engine::name_component(&name);
            let store_location = if remote {
                PathBuf::from(format!(
                    "{}/{subdir}",
                    location.display().to_string().trim_end_matches('/')
                ))
            } else if subdir != name
                && !location.join(&subdir).exists()
                && location.join(&name).is_dir()
            {
                // A store made before names were encoded (a leading `.` or a
                // `%` in the name): keep using it.
                location.join(&name)
            } else {
                location.join(&subdir)
            };
            let store: Arc<dyn BackupStore> = open_store(&store_location, &s3)
                .map_err(|e| invalid("Backup.Location", e.to_string()))?
                .into();
            if remote {
                // One request proves the bucket, the credentials and the endpoint.
                store
                    .list()
                    .map_err(|e| invalid("Backup.Location", e.to_string()))?;
            }
            databases.push(DatabaseConfig {
                path: path.clone(),
                store,
                name,
            });
        }
        let temp_dir = (!params.backup.temp_dir.as_os_str().is_empty())
            .then(|| params.backup.temp_dir.clone());
        if let Some(t) = &temp_dir {
            prove_writable(t).map_err(|reason| invalid("Backup.TempDir", reason))?;
        }
        let status_file = if !params.status.file.as_os_str().is_empty() {
            params.status.file.clone()
        } else if remote {
            return Err(invalid(
                "Status.File",
                "must be set when Backup.Location is a URL (the status file is local)",
            ));
        } else {
            location.join("status.json")
        };
        let snapshot_temp_dir = temp_dir.clone();
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
            snapshot_temp_dir,
            method,
            check,
            chunk_size,
            temp_dir,
            frequency: (!frequency.is_zero()).then_some(frequency),
            max_count: b.max_count,
            retention: RetentionPolicy {
                max_count: b.max_count,
                keep_last: b.keep_last,
                keep_hourly: b.keep_hourly,
                keep_daily: b.keep_daily,
                keep_weekly: b.keep_weekly,
                keep_monthly: b.keep_monthly,
                keep_yearly: b.keep_yearly,
            },
            restore_auto: params.restore.auto,
            on_failure,
            restore_signers,
            require_newest: params.restore.require_newest,
            newest_record: crate::newest::newest_record_path(&status_file),
            status_file,
            warnings,
        })
    }
}

/// The store settings for the `S3` parameter group (the `AWS_*`
/// environment variables fill in what it leaves empty).
pub fn s3_settings(s3: &sqlseal_params::S3) -> S3Settings {
    S3Settings {
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone(),
        access_key_id: s3.access_key_id.clone(),
        secret_access_key: s3.secret_access_key.clone(),
        path_style: s3.path_style,
        allow_http: s3.allow_http,
        ..S3Settings::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(dir: &Path) -> Params {
        let key = P256Identity::generate().expect("key");
        let key_file = dir.join("server.pem");
        std::fs::write(&key_file, key.to_pkcs8_pem().expect("pem").as_bytes()).expect("key file");
        let mut params = Params::default();
        params.backup.keys = vec![key_file];
        params.backup.location = dir.join("backups");
        params.database.paths = vec![dir.join("data/app.db")];
        params
    }

    #[test]
    fn snapshot_copies_are_never_made_in_the_backup_location() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = params(dir.path());
        let settings = Settings::from_params(&params).expect("settings");
        assert_eq!(
            settings.snapshot_temp_dir, None,
            "unset: the source's private directory beside each database"
        );
        let scratch = dir.path().join("scratch");
        params.backup.temp_dir = scratch.clone();
        let settings = Settings::from_params(&params).expect("settings");
        assert_eq!(settings.snapshot_temp_dir, Some(scratch));
    }

    #[test]
    fn backup_check_defaults_to_full_and_takes_quick_and_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = params(dir.path());
        assert_eq!(
            Settings::from_params(&params).expect("settings").check,
            CheckLevel::Full
        );
        for level in CheckLevel::ALL {
            params.backup.check = level.name().to_owned();
            assert_eq!(
                Settings::from_params(&params).expect("settings").check,
                level
            );
        }
        let param = sqlseal_params::PARAMS
            .iter()
            .find(|p| p.name() == "Backup.Check")
            .expect("Backup.Check");
        let err = param.set(&mut params, "bogus").expect_err("not a choice");
        assert!(err.to_string().contains("full"), "{err}");
    }

    #[tokio::test]
    async fn a_scheduler_will_not_run_beside_another_holder_of_the_locks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = params(dir.path());
        std::fs::create_dir(dir.path().join("data")).expect("db dir");
        let settings = Settings::from_params(&params).expect("settings");
        let held = crate::lock_databases(&settings).expect("first holder");
        let token = tokio_util::sync::CancellationToken::new();
        token.cancel();
        let result = crate::Scheduler::new(settings.clone())
            .run(token.clone())
            .await;
        let Err(crate::ScheduleError::Locked(e)) = result else {
            panic!("expected Locked, got {result:?}");
        };
        assert!(
            e.to_string()
                .contains(&format!("by process {}", std::process::id())),
            "{e}"
        );
        drop(held);
        crate::Scheduler::new(settings)
            .run(token)
            .await
            .expect("runs (and stops at once) once the locks are free");
    }
}
