//! Turning parameters into checked settings: every key loaded, every path
//! checked, before anything runs. Each error names the parameter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlseal_crypto::{
    CryptoError, Keyring, P256Identity, P256Recipient, load_identity_file, load_recipient_file,
    unique_recipients,
};
use sqlseal_format::KeyId;
use sqlseal_params::{BackupCheck, BackupMethod, Params, RestoreOnFailure};

use crate::names;
use crate::retention::RetentionPolicy;
use sqlseal_source::{CheckLevel, Method};
use sqlseal_store::{BackupStore, Location, S3Settings, StoreError, is_url};

/// A configuration that cannot run, naming the parameter at fault and
/// keeping the error that made it so.
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
    /// A key file of `Backup.Keys`, `Backup.Recipients` or `Backup.Trust`
    /// cannot be loaded.
    #[error("{param}: {source}")]
    Key {
        /// The parameter.
        param: &'static str,
        /// Why the key cannot be loaded.
        source: CryptoError,
    },
    /// The backup store at `Backup.Location` cannot be opened or listed.
    #[error("{param}: {source}")]
    Store {
        /// The parameter.
        param: &'static str,
        /// Why the store cannot be used.
        source: StoreError,
    },
    /// A directory of `Backup.Location` or `Backup.TempDir` cannot be created.
    #[error("{param}: cannot create directory {}: {source}", .dir.display())]
    CreateDir {
        /// The parameter.
        param: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No file can be created in a directory of `Backup.Location` or
    /// `Backup.TempDir`.
    #[error("{param}: directory {} is not writable: {source}", .dir.display())]
    NotWritable {
        /// The parameter.
        param: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
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
    /// Found by a `Database.Dirs` pattern (dropped from scheduling when it
    /// disappears; its schedule starts at a stable offset in the period).
    pub discovered: bool,
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
    /// `Backup.Location`: each database's backups are in a subdirectory of
    /// each (a directory path, or an `s3://BUCKET/PREFIX` URL), in order.
    pub locations: Vec<Location>,
    /// `Database.Dirs`: glob patterns watched for databases.
    pub dirs: Vec<String>,
    /// The S3 settings, for stores opened after start-up.
    pub s3: S3Settings,
    /// `Backup.Concurrency`: backups and drills in flight at once.
    pub concurrency: usize,
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
    /// Time between restore drills; `None` turns drills off.
    pub verify_frequency: Option<std::time::Duration>,
    /// `Backup.IncrementFrequency`: time between increments; `None` makes
    /// full backups only.
    pub increment_frequency: Option<std::time::Duration>,
    /// `Backup.IncrementMaxAge`: increments older than this are deleted
    /// (but the newest chain's); `None` keeps them with their chain.
    pub increment_max_age: Option<jiff::SignedDuration>,
    /// `Backup.IncrementMaxPercent`: a chain whose increments add up to
    /// more than this percentage of its full backup's size is not continued
    /// (a full backup starts a new one); 0 never ends a chain early.
    pub increment_max_percent: u64,
    /// `Metrics.Listen`: where to serve `/metrics` and `/healthz`, checked
    /// to be a `HOST:PORT`; `None` when empty.
    pub metrics_listen: Option<String>,
    /// When `/healthz` and `sqlseal status` call a database stale
    /// (`Metrics.MaxAge`, else twice `Backup.Frequency`).
    pub health: crate::HealthPolicy,
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
            let (identity, w) = load_identity_file(path).map_err(key_error("Backup.Keys"))?;
            warnings.extend(w);
            identities.push(identity);
        }
        let extra = b
            .recipients
            .iter()
            .map(|path| load_recipient_file(path).map_err(key_error("Backup.Recipients")))
            .collect::<Result<Vec<_>, _>>()?;
        let recipients = unique_recipients(
            identities
                .iter()
                .map(|i| i.recipient().clone())
                .chain(extra),
        );
        let mut keyring = Keyring::new();
        let mut restore_signers: Vec<KeyId> = identities.iter().map(|i| i.key_id()).collect();
        for path in &b.trust {
            let trusted = load_recipient_file(path).map_err(key_error("Backup.Trust"))?;
            restore_signers.push(trusted.key_id());
            keyring.trust(trusted);
        }
        let signer = identities[0].clone();
        for identity in identities {
            keyring.add_identity(identity);
        }
        let method = match b.method {
            BackupMethod::Dbpage => Method::DbPage,
            BackupMethod::BackupApi => Method::BackupApi,
            BackupMethod::Vacuum => Method::Vacuum,
        };
        let check = match b.check {
            BackupCheck::Full => CheckLevel::Full,
            BackupCheck::Quick => CheckLevel::Quick,
            BackupCheck::None => CheckLevel::None,
        };
        let chunk_size = u32::try_from(b.chunk_size.bytes())
            .map_err(|_| invalid("Backup.ChunkSize", "too large"))?;

        if params.database.paths.is_empty() && params.database.dirs.is_empty() {
            return Err(invalid(
                "Database.Paths",
                "no databases configured; list the SQLite files to back up (or glob patterns in Database.Dirs)",
            ));
        }
        if b.location.is_empty() {
            return Err(invalid(
                "Backup.Location",
                "no location; give a directory or s3://BUCKET/PREFIX (or a list of them)",
            ));
        }
        let mut locations: Vec<Location> = Vec::new();
        for written in &b.location {
            let location = Location::parse(written).map_err(|source| ConfigError::Store {
                param: "Backup.Location",
                source,
            })?;
            if locations.contains(&location) {
                return Err(invalid(
                    "Backup.Location",
                    format!("{location} is listed twice; list each location once"),
                ));
            }
            if let Some(dir) = location.as_dir() {
                prove_writable("Backup.Location", dir)?;
            }
            locations.push(location);
        }
        let s3 = s3_settings(&params.s3);
        let entries = params
            .database
            .paths
            .iter()
            .map(|p| names::parse_path_entry(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| invalid("Database.Paths", reason))?;
        for (path, _) in &entries {
            if path.is_dir() {
                return Err(invalid(
                    "Database.Paths",
                    format!("{} is a directory, not a database file", path.display()),
                ));
            }
        }
        let mut named =
            names::name_paths(&entries).map_err(|reason| invalid("Database.Paths", reason))?;
        let listed = named.len();
        for pattern in &params.database.dirs {
            named.extend(
                names::discover(pattern).map_err(|reason| invalid("Database.Dirs", reason))?,
            );
        }
        names::check_unique(&named).map_err(|reason| {
            let param = if params.database.dirs.is_empty() {
                "Database.Paths"
            } else {
                "Database.Paths/Database.Dirs"
            };
            invalid(param, reason)
        })?;
        let mut databases: Vec<DatabaseConfig> = Vec::new();
        let several = locations.len() > 1;
        for (i, db) in named.into_iter().enumerate() {
            for location in &locations {
                let mut config = database_config(location, &s3, db.clone())?;
                config.discovered = i >= listed;
                if location.is_remote() && !several {
                    // One request proves the bucket, the credentials and the
                    // endpoint. With several locations none is probed: one
                    // that is down must not hold up the others (its backups
                    // fail, are retried and reported, per location).
                    config.store.list().map_err(|source| ConfigError::Store {
                        param: "Backup.Location",
                        source,
                    })?;
                }
                databases.push(config);
            }
        }
        let temp_dir = (!params.backup.temp_dir.as_os_str().is_empty())
            .then(|| params.backup.temp_dir.clone());
        if let Some(t) = &temp_dir {
            prove_writable("Backup.TempDir", t)?;
        }
        let status_file = status_file(params)?;
        let snapshot_temp_dir = temp_dir.clone();
        let frequency = b.frequency.as_std();
        let frequency = (!frequency.is_zero()).then_some(frequency);
        let verify_frequency = b.verify_frequency.as_std();
        let verify_frequency = (!verify_frequency.is_zero()).then_some(verify_frequency);
        let increment_frequency = b.increment_frequency.as_std();
        if !increment_frequency.is_zero() && increment_frequency < std::time::Duration::from_secs(1)
        {
            return Err(invalid(
                "Backup.IncrementFrequency",
                format!(
                    "{} is below the smallest value, 1s; use 1s or more, or 0 to make full backups only",
                    b.increment_frequency
                ),
            ));
        }
        let increment_frequency = (!increment_frequency.is_zero()).then_some(increment_frequency);
        let increment_max_age =
            (!b.increment_max_age.is_zero()).then(|| b.increment_max_age.as_jiff());
        let metrics_listen = metrics_listen(&params.metrics.listen)?;
        let health = health_policy(params);
        let on_failure = match params.restore.on_failure {
            RestoreOnFailure::Fail => OnFailure::Fail,
            RestoreOnFailure::Empty => OnFailure::Empty,
        };
        Ok(Settings {
            databases,
            signer,
            recipients,
            keyring,
            locations,
            dirs: params.database.dirs.clone(),
            s3,
            concurrency: match b.concurrency {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
            snapshot_temp_dir,
            method,
            check,
            chunk_size,
            temp_dir,
            frequency,
            verify_frequency,
            increment_frequency,
            increment_max_age,
            increment_max_percent: b.increment_max_percent,
            metrics_listen,
            health,
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
        secret_access_key: s3.secret_access_key.expose().to_owned().into(),
        path_style: s3.path_style,
        allow_http: s3.allow_http,
        ..S3Settings::default()
    }
}

/// The configuration of one named database: its store is its name's
/// subdirectory (or sub-prefix) of `location`, each part encoded as in
/// backup names.
pub fn database_config(
    location: &Location,
    s3: &S3Settings,
    db: names::NamedDatabase,
) -> Result<DatabaseConfig, ConfigError> {
    let store_error = |source| ConfigError::Store {
        param: "Backup.Location",
        source,
    };
    // The same encoding as backup names: readable, with only what a file
    // system or an S3 key cannot hold percent-encoded.
    let subdir: Vec<String> = db
        .name
        .split('/')
        .map(sqlseal_engine::name_component)
        .collect();
    let legacy = match location.as_dir() {
        // A store made before names were encoded (a leading `.` or a `%`
        // in the name): keep using it.
        Some(dir)
            if subdir.len() == 1
                && subdir[0] != db.name
                && !dir.join(&subdir[0]).exists()
                && dir.join(&db.name).is_dir() =>
        {
            Some(Location::Dir(dir.join(&db.name)))
        }
        _ => None,
    };
    let store_location = match legacy {
        Some(l) => l,
        None => location.join(&subdir.join("/")).map_err(store_error)?,
    };
    let store: Arc<dyn BackupStore> = store_location.open(s3).map_err(store_error)?.into();
    Ok(DatabaseConfig {
        path: db.path,
        name: db.name,
        store,
        discovered: false,
    })
}

/// Where the status file is: `Status.File`, else `status.json` in the
/// first `Backup.Location` that is a directory (URLs alone need `Status.File`).
pub fn status_file(params: &Params) -> Result<PathBuf, ConfigError> {
    if !params.status.file.as_os_str().is_empty() {
        return Ok(params.status.file.clone());
    }
    match params.backup.location.iter().find(|l| !is_url(l)) {
        Some(local) => Ok(local.join("status.json")),
        None => Err(invalid(
            "Status.File",
            "must be set when every Backup.Location is a URL (the status file is local)",
        )),
    }
}

/// When `params` call a database stale: `Metrics.MaxAge`, else twice
/// `Backup.Frequency`.
pub fn health_policy(params: &Params) -> crate::HealthPolicy {
    let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    crate::HealthPolicy::new(
        nonzero(params.metrics.max_age.as_std()),
        nonzero(params.backup.frequency.as_std()),
    )
}

/// `Metrics.Listen`: empty, or a `HOST:PORT` that resolves.
fn metrics_listen(listen: &str) -> Result<Option<String>, ConfigError> {
    let listen = listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    use std::net::ToSocketAddrs;
    let resolves = listen
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some());
    if !resolves {
        return Err(invalid(
            "Metrics.Listen",
            format!(
                "`{listen}` is not an address and port such as 127.0.0.1:9531; leave it empty to serve no metrics"
            ),
        ));
    }
    Ok(Some(listen.to_owned()))
}

/// The error of a key file named by `param`.
fn key_error(param: &'static str) -> impl Fn(CryptoError) -> ConfigError {
    move |source| ConfigError::Key { param, source }
}

/// Creates `dir` (0700) if missing and checks a file can be created in it.
fn prove_writable(param: &'static str, dir: &Path) -> Result<(), ConfigError> {
    if !dir.exists() {
        sqlseal_private::create_private_dir_all(dir).map_err(|source| ConfigError::CreateDir {
            param,
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    if !dir.is_dir() {
        return Err(invalid(
            param,
            format!("{} is not a directory", dir.display()),
        ));
    }
    tempfile::Builder::new()
        .prefix(".sqlseal-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|source| ConfigError::NotWritable {
            param,
            dir: dir.to_path_buf(),
            source,
        })
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
        params.backup.location = vec![dir.join("backups")];
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
    fn errors_name_the_parameter_and_keep_their_causes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = params(dir.path());
        let missing = dir.path().join("missing.pem");
        params.backup.trust = vec![missing.clone()];
        let e = Settings::from_params(&params).expect_err("no such key file");
        assert_eq!(
            e.to_string(),
            format!(
                "Backup.Trust: key file {}: no such file; check the path",
                missing.display()
            )
        );
        let cause = std::error::Error::source(&e).and_then(|c| c.downcast_ref::<CryptoError>());
        assert!(
            matches!(
                cause,
                Some(CryptoError::KeyFile {
                    reason: sqlseal_crypto::KeyFileError::NotFound,
                    ..
                })
            ),
            "{cause:?}"
        );

        let mut params = self::params(dir.path());
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "a file").expect("file");
        params.backup.location = vec![blocker.join("sub")];
        let e = Settings::from_params(&params).expect_err("a file is in the way");
        assert!(
            matches!(
                e,
                ConfigError::CreateDir {
                    param: "Backup.Location",
                    ..
                }
            ),
            "{e}"
        );
        let cause = std::error::Error::source(&e).and_then(|c| c.downcast_ref::<std::io::Error>());
        assert!(cause.is_some(), "{e:?}");
    }

    #[test]
    fn backup_check_defaults_to_full_and_takes_quick_and_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = params(dir.path());
        assert_eq!(
            Settings::from_params(&params).expect("settings").check,
            CheckLevel::Full
        );
        for (param, level) in [
            (BackupCheck::Full, CheckLevel::Full),
            (BackupCheck::Quick, CheckLevel::Quick),
            (BackupCheck::None, CheckLevel::None),
        ] {
            params.backup.check = param;
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
