//! `sqlseal backup create|list|info|verify|restore`.
//!
//! Every `--dir` may also be an `s3://BUCKET/PREFIX` location, and every
//! BACKUP an `s3://BUCKET/PREFIX/NAME.sqlseal` object URL; the S3 settings
//! come from the `SQLSEAL_S3_*` variables (the S3 parameters) and then the
//! usual `AWS_*` ones.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use sqlseal_crypto::Keyring;
use sqlseal_engine::{
    Approve, BackupOptions, BackupReport, CancelFlag, ChainState, CheckLevel, EngineError,
    HeaderCheck, IncrementOutcome, IntegrityCheck, ListedBackup, RestoreOptions, VerifyOptions,
    VerifyReport, choose_latest_at, create_backup, create_increment, inspect_backup, latest_backup,
    list_backups, restore_backup, start_chain, verify_backup,
};
use sqlseal_format::{CreatedAt, RecordedCheck};
use sqlseal_schedule::{
    ChainMember, IncrementRetention, RetentionPolicy, chain_state_path, decide_chains,
    deletion_order,
};
use sqlseal_source::{SnapshotOptions, SqliteSource};
use sqlseal_store::{BackupStore, DatabaseLock, LocalStore, Location, S3Settings, is_url};

use crate::progress::Bar;
use crate::{BackupCommand, BackupSelector, CheckArg, Failure, keys};

pub fn run(cmd: BackupCommand, cancel: &CancelFlag) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Create {
            db,
            dir,
            keys,
            recipients,
            method,
            chunk_size,
            temp_dir,
            check,
            increment,
            json,
        } => {
            let keyring = increment.then(|| keys::keyring(&keys, &[])).transpose()?;
            let identities = keys::identities(&keys)?;
            let recipients = keys::recipients(&identities, &recipients)?;
            let Some(signer) = identities.into_iter().next() else {
                bail!("no --key given; pass at least one private key file");
            };
            let store = open_location(&dir)?;
            // Not while a daemon (or another create) backs up this
            // database to this location; held until the backup is done.
            let _lock = DatabaseLock::acquire(&db, &store.location())?;
            // Temp files of crashed writers (over an hour old) go first.
            if let Err(e) = store.clean_stale(sqlseal_store::STALE_TEMP_AGE) {
                eprintln!("warning: could not clean stale temporary files: {e}");
            }
            let mut snapshot = SnapshotOptions::new(method);
            // The plaintext copy of `backup-api` and `vacuum` goes to a
            // private directory beside the database unless told otherwise;
            // never among the backups, which others may read.
            snapshot.temp_dir = temp_dir;
            snapshot.check = check.into();
            // What an upload holds in memory comes off the check's cache.
            snapshot.leave_room_for(store.write_buffer_bytes());
            let source = SqliteSource::new(&db, snapshot);
            let mut options = BackupOptions::new(recipients, signer);
            options.chunk_size = chunk_size;
            let bar = Bar::new("backup");
            let made = match &keyring {
                Some(keyring) => create_in_chain(
                    &db,
                    store.as_ref(),
                    &source,
                    &options,
                    keyring,
                    cancel,
                    &bar,
                )?,
                None => Some(create_backup(
                    &source,
                    store.as_ref(),
                    &options,
                    cancel,
                    &bar,
                )?),
            };
            bar.done();
            let Some(report) = made else {
                if json {
                    print_json(&serde_json::json!({ "unchanged": true }))?;
                } else {
                    eprintln!(
                        "unchanged since the newest point of its chain: no increment written"
                    );
                }
                return Ok(());
            };
            let path = report
                .path
                .clone()
                .unwrap_or_else(|| backup_path(store.as_ref(), &report.name));
            if json {
                #[derive(Serialize)]
                struct Created<'a> {
                    path: &'a Path,
                    created: String,
                    size: u64,
                    db_bytes: u64,
                    pages: u64,
                    method: &'a str,
                    /// The integrity check that passed on the snapshot and
                    /// is recorded in the seal: full, quick or none.
                    check: &'static str,
                    recipients: Vec<String>,
                    signer: String,
                    seconds: f64,
                    /// For an increment: its place in its chain.
                    #[serde(skip_serializing_if = "Option::is_none")]
                    increment: Option<u32>,
                }
                let h = &report.header;
                print_json(&Created {
                    increment: h.metadata.chain.map(|c| c.sequence),
                    path: &path,
                    created: h.metadata.created.to_string(),
                    size: report.size,
                    db_bytes: report.trailer.db_len,
                    pages: report.trailer.page_count,
                    method: &h.metadata.method,
                    check: report.recorded_check.name(),
                    recipients: h.stanzas.iter().map(|s| s.key_id.to_string()).collect(),
                    signer: h.signer.to_string(),
                    seconds: report.seconds,
                })?;
            } else {
                println!("{}", path.display());
            }
            Ok(())
        }
        BackupCommand::List {
            dir,
            auth,
            chains: true,
            json,
        } => {
            let keyring = auth.keyring()?;
            list_chains(&dir, keyring.as_ref(), json)
        }
        BackupCommand::List {
            dir, auth, json, ..
        } => {
            let keyring = auth.keyring()?;
            list(&dir, keyring.as_ref(), json)
        }
        BackupCommand::Prune {
            dir,
            auth,
            rules,
            dry_run,
            yes: _,
            json,
        } => {
            let keyring = auth.keyring()?;
            prune(&dir, &keyring, &rules, dry_run, json)
        }
        BackupCommand::Info { which, auth, json } => {
            let keyring = auth.keyring()?;
            info(&which, keyring.as_ref(), json)
        }
        BackupCommand::Verify {
            which,
            auth,
            temp_dir,
            check,
            json,
        } => {
            let keyring = auth.keyring()?;
            // The image is plaintext: never beside the backup, which others
            // may read; in a private directory of --temp-dir or the system's
            // temporary directory.
            let options = VerifyOptions {
                temp_dir,
                integrity_check: integrity_check(check),
                ..VerifyOptions::default()
            };
            let (store, name) = match (&which.backup, &which.dir) {
                (Some(path), _) => split_backup_path(path)?,
                (None, Some(dir)) if which.all => {
                    return verify_all(dir, &keyring, &options, json, cancel);
                }
                (None, Some(dir)) if which.latest => {
                    let store = open_location(dir)?;
                    let name = latest_backup(store.as_ref(), &keyring)?;
                    (store, name)
                }
                _ => bail!("name a BACKUP file, or --dir DIR --latest, or --dir DIR --all"),
            };
            let bar = Bar::reading("verify", stored_size(store.as_ref(), &name));
            let result = verify_backup(
                &bar.count(store.as_ref()),
                &name,
                &keyring,
                &options,
                cancel,
                &bar,
            );
            if result.is_ok() {
                bar.done();
            }
            let path = backup_path(store.as_ref(), &name);
            match result {
                Ok(report) => {
                    if json {
                        print_json(&Verified::ok(&path, &report))?;
                    } else {
                        println!(
                            "ok: {} ({} bytes, {} pages, {} {}, signed by {}, {:.2} s)",
                            path.display(),
                            report.trailer.db_len,
                            report.trailer.page_count,
                            if report.chain.is_some() {
                                "image index hash"
                            } else {
                                "sha256"
                            },
                            hex(&report.trailer.sha256),
                            report.header.signer,
                            report.seconds
                        );
                        if let Some(note) = chain_note(&report) {
                            println!("{note}");
                        }
                        println!("integrity check: {}", check_note(&report));
                    }
                    Ok(())
                }
                Err(e) => {
                    let failure = Failure {
                        path: Some(path),
                        ..Failure::default()
                    };
                    Err(anyhow::Error::new(e).context(failure))
                }
            }
        }
        BackupCommand::Restore {
            which,
            auth,
            db,
            force,
            check,
            json,
        } => {
            let keyring = auth.keyring()?;
            let (store, name, approve) = select(&which, Some(&keyring))?;
            let options = RestoreOptions {
                force,
                verify: VerifyOptions {
                    integrity_check: integrity_check(check),
                    ..VerifyOptions::default()
                },
                approve,
            };
            let path = backup_path(store.as_ref(), &name);
            let bar = Bar::reading("restore", stored_size(store.as_ref(), &name));
            let report = restore_backup(
                &bar.count(store.as_ref()),
                &name,
                &keyring,
                &db,
                &options,
                cancel,
                &bar,
            )
            .map_err(|e| {
                anyhow::Error::new(e).context(Failure {
                    path: Some(path.clone()),
                    ..Failure::default()
                })
            })?;
            bar.done();
            if json {
                #[derive(Serialize)]
                struct Restored<'a> {
                    #[serde(flatten)]
                    verified: Verified<'a>,
                    target: &'a Path,
                    moved_aside: &'a [PathBuf],
                    /// Octal permission bits of the restored file, e.g. "0600".
                    #[serde(skip_serializing_if = "Option::is_none")]
                    mode: Option<String>,
                    /// Whether the mode is that of the file replaced (--force).
                    mode_kept: bool,
                    /// Whether owner and group are those of the file replaced.
                    owner_kept: bool,
                }
                let v = &report.verified;
                print_json(&Restored {
                    verified: Verified::ok(&path, v),
                    target: &report.target,
                    moved_aside: &report.moved_aside,
                    mode: report.mode.map(|m| format!("{m:04o}")),
                    mode_kept: report.mode_kept,
                    owner_kept: report.owner_kept,
                })?;
            } else {
                println!(
                    "restored {} to {} ({} bytes, {:.2} s)",
                    path.display(),
                    report.target.display(),
                    report.verified.trailer.db_len,
                    report.verified.seconds
                );
                if let Some(note) = chain_note(&report.verified) {
                    println!("{note}");
                }
                println!("integrity check: {}", check_note(&report.verified));
                for moved in &report.moved_aside {
                    println!("moved aside: {}", moved.display());
                }
                if let Some(mode) = report.mode {
                    let whence = match (report.mode_kept, report.owner_kept) {
                        (true, true) => "mode and owner of the replaced file",
                        (true, false) => {
                            "mode of the replaced file; owner not changed (needs privileges)"
                        }
                        _ => "a new file",
                    };
                    println!("mode: {mode:04o} ({whence})");
                }
            }
            Ok(())
        }
    }
}

/// `--chunk-size`: bytes or a binary size (`1048576`, `64KiB`, `1MiB`),
/// within the format's bounds. clap puts the flag and the value in front.
pub fn parse_chunk_size(text: &str) -> Result<u32, String> {
    use sqlseal_format::header::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
    use sqlseal_params::ByteSize;
    let size = ByteSize::parse(text).map_err(|e| e.to_string())?;
    u32::try_from(size.bytes())
        .ok()
        .filter(|n| (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(n))
        .ok_or_else(|| {
            format!(
                "chunk size {size} is out of range; use {} to {}",
                ByteSize::new(MIN_CHUNK_SIZE.into()),
                ByteSize::new(MAX_CHUNK_SIZE.into())
            )
        })
}

/// The S3 parameters from the environment (`SQLSEAL_S3_*`), as the
/// daemon reads them; `AWS_*` variables fill in what they leave empty.
fn s3_settings_from_env() -> anyhow::Result<S3Settings> {
    let mut params = sqlseal_params::Params::default();
    for param in sqlseal_params::PARAMS.iter().filter(|p| p.group() == "S3") {
        if let Some(text) = sqlseal_params::process_env(param.env()) {
            param
                .set(&mut params, &text)
                .with_context(|| format!("{} ({})", param.env(), param.name()))?;
        }
    }
    Ok(sqlseal_schedule::s3_settings(&params.s3))
}

/// The store for `--dir`: a directory, or an S3 bucket and prefix with the
/// settings of the `SQLSEAL_S3_*` variables.
fn open_location(location: &Location) -> anyhow::Result<Box<dyn BackupStore>> {
    match location {
        Location::Dir(dir) => Ok(Box::new(LocalStore::new(dir))),
        Location::S3(_) => Ok(location.clone().open(&s3_settings_from_env()?)?),
    }
}

/// A backup's size in the store, the total of the bar for reading it
/// (0, an empty bar, when it cannot be found out).
fn stored_size(store: &dyn BackupStore, name: &str) -> u64 {
    if let Some(path) = store.local_path(name) {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    }
    store
        .list()
        .ok()
        .and_then(|entries| entries.into_iter().find(|e| e.name == name))
        .map_or(0, |e| e.size)
}

/// How to show a backup: its path, or its URL for a remote store.
fn backup_path(store: &dyn BackupStore, name: &str) -> PathBuf {
    store
        .local_path(name)
        .unwrap_or_else(|| PathBuf::from(format!("{}/{name}", store.location())))
}

/// `backup create --increment`: the next link of the chain whose state is
/// beside `db` (for this store), or a full backup that starts a chain when
/// there is none to continue; `None` when nothing changed. The state is
/// saved only once the backup is in the store.
fn create_in_chain(
    db: &Path,
    store: &dyn BackupStore,
    source: &SqliteSource,
    options: &BackupOptions,
    keyring: &Keyring,
    cancel: &CancelFlag,
    bar: &Bar,
) -> anyhow::Result<Option<BackupReport>> {
    let state_path = chain_state_path(db, &store.location());
    let state = match ChainState::load(&state_path) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    };
    let state = match state {
        Some(state) if state.found_in(&list_backups(store, Some(keyring))?) => Some(state),
        Some(_) => {
            eprintln!(
                "note: the chain state names a backup that is not in {}; making a full backup that starts a new chain",
                store.location()
            );
            None
        }
        None => None,
    };
    if let Some(state) = state {
        match create_increment(source, store, options, &state, cancel, bar) {
            Ok(IncrementOutcome::Unchanged) => return Ok(None),
            Ok(IncrementOutcome::Written(report, next)) => {
                next.save(&state_path)?;
                return Ok(Some(*report));
            }
            Err(e @ EngineError::ChainState { .. }) => eprintln!("note: {e}"),
            Err(e) => return Err(e.into()),
        }
    } else {
        eprintln!("note: no chain to continue; making a full backup that starts one");
    }
    let (report, next) = start_chain(source, store, options, cancel, bar)?;
    next.save(&state_path)?;
    Ok(Some(report))
}

/// `--at`: a time, or a time before now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PointInTime {
    /// An RFC 3339 time.
    At(jiff::Timestamp),
    /// `-DURATION`: that long before now.
    Ago(jiff::SignedDuration),
}

impl PointInTime {
    /// The time meant, `now` being now.
    pub(crate) fn resolve(&self, now: jiff::Timestamp) -> anyhow::Result<CreatedAt> {
        let at = match self {
            PointInTime::At(t) => *t,
            PointInTime::Ago(d) => now
                .checked_sub(*d)
                .context("--at: that is before the earliest time a backup can have")?,
        };
        Ok(CreatedAt::from_timestamp(at))
    }
}

/// Parses `--at`: RFC 3339, or `-` and a duration such as `15m` or `1h30m`.
pub(crate) fn parse_point_in_time(text: &str) -> Result<PointInTime, String> {
    if let Some(ago) = text.strip_prefix('-') {
        let d = sqlseal_params::Duration::parse(ago).map_err(|e| {
            format!("`{text}` is not a time ago: {e}; write it as -15m, -2h or -1h30m")
        })?;
        return Ok(PointInTime::Ago(d.as_jiff()));
    }
    text.parse::<jiff::Timestamp>()
        .map(PointInTime::At)
        .map_err(|e| {
            format!("`{text}` is not a time: {e}; write RFC 3339 (2026-12-01T09:30:00Z) or a time ago (-15m)")
        })
}

/// The store and backup name a selector names; `--latest` is the newest
/// backup whose header authenticates under `keyring`, or without one the
/// newest by the time its header states (unauthenticated: for display only).
fn select(
    which: &BackupSelector,
    keyring: Option<&Keyring>,
) -> anyhow::Result<(Box<dyn BackupStore>, String, Option<Approve>)> {
    if let Some(path) = &which.backup {
        let (store, name) = split_backup_path(path)?;
        return Ok((store, name, None));
    }
    let Some(dir) = &which.dir else {
        bail!("name a BACKUP file, or --dir DIR --latest");
    };
    let store = open_location(dir)?;
    if which.at.is_some() && keyring.is_none() {
        bail!("--at chooses among authenticated backups only; pass --key");
    }
    let at = which
        .at
        .as_ref()
        .map(|at| at.resolve(jiff::Timestamp::now()))
        .transpose()?;
    // Chosen by an authenticated header: the read that installs must be
    // of that very backup.
    if let Some(keyring) = keyring {
        let chosen = choose_latest_at(store.as_ref(), keyring, at)?;
        return Ok((store, chosen.name.clone(), Some(chosen.approve_same())));
    }
    // Newest first by stated time; the first whose header parses.
    let listed = list_backups(store.as_ref(), None)?;
    let Some(newest) = listed.iter().find(|b| b.header.is_ok()) else {
        bail!(
            "no readable backup in {}; check the directory or name a BACKUP file",
            dir
        );
    };
    let name = newest.entry.name.clone();
    Ok((store, name, None))
}

/// `verify --dir DIR --all`: every backup in DIR, one line (or JSON object)
/// each; fails with exit code 3 if any does not verify.
fn verify_all(
    dir: &Location,
    keyring: &Keyring,
    options: &VerifyOptions,
    json: bool,
    cancel: &CancelFlag,
) -> anyhow::Result<()> {
    let store = open_location(dir)?;
    // Newest first by stated time, as `list` shows them.
    let names: Vec<String> = list_backups(store.as_ref(), None)?
        .into_iter()
        .map(|b| b.entry.name)
        .collect();
    if names.is_empty() {
        bail!("no backups in {}; check the directory", store.location());
    }
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| backup_path(store.as_ref(), n))
        .collect();
    let mut results = Vec::with_capacity(names.len());
    let mut failed = 0usize;
    for (name, path) in names.iter().zip(&paths) {
        let result = verify_backup(
            store.as_ref(),
            name,
            keyring,
            options,
            cancel,
            &Bar::new("verify"),
        );
        let shown = match result {
            Ok(report) => Verified::ok(path, &report),
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled.into()),
            Err(e) => {
                failed += 1;
                let err = anyhow::Error::new(e);
                let code = crate::integrity_exit_code(&err);
                Verified::failed(path, &crate::one_line(&err), code)
            }
        };
        if !json {
            match &shown.error {
                None => println!("{}\tok", path.display()),
                Some(reason) => println!("{}\tfailed: {reason}", path.display()),
            }
        }
        results.push(shown);
    }
    if json {
        print_json(&results)?;
    }
    if failed > 0 {
        return Err(anyhow::anyhow!(
            "{failed} of {} backups in {} failed verification",
            names.len(),
            store.location()
        )
        .context(Failure {
            exit_code: Some(3),
            printed: json,
            ..Failure::default()
        }));
    }
    Ok(())
}

fn split_backup_path(path: &Path) -> anyhow::Result<(Box<dyn BackupStore>, String)> {
    if is_url(path) {
        let url = path.to_string_lossy();
        let Some((location, name)) = sqlseal_store::split_object_url(&url) else {
            bail!("{url} names no backup; expected s3://BUCKET/PREFIX/NAME.sqlseal");
        };
        return Ok((open_location(&Location::parse(location)?)?, name.to_owned()));
    }
    if !path.is_file() {
        if path.exists() {
            bail!("{} is not a file; name a backup file", path.display());
        }
        bail!("backup {}: no such file; check the path", path.display());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((Box::new(LocalStore::new(dir)), name))
}

/// `verified`, `refused` or `not-checked`, and the reason for a refusal.
fn check_words(b: &ListedBackup) -> (&'static str, Option<&str>) {
    match &b.check {
        HeaderCheck::Verified => ("verified", None),
        HeaderCheck::Refused(reason) => ("refused", Some(reason.as_str())),
        HeaderCheck::NotChecked => ("not-checked", None),
    }
}

fn list(dir: &Location, keyring: Option<&Keyring>, json: bool) -> anyhow::Result<()> {
    let store = open_location(dir)?;
    let listed = list_backups(store.as_ref(), keyring)?;
    if json {
        #[derive(Serialize)]
        struct Listed<'a> {
            path: PathBuf,
            created: Option<String>,
            size: u64,
            database: Option<String>,
            method: Option<String>,
            signer: Option<String>,
            error: Option<String>,
            /// Whether the header (and so `created`) authenticated.
            authenticated: bool,
            check: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            refused: Option<&'a str>,
        }
        let rows: Vec<Listed> = listed
            .iter()
            .map(|b| {
                let h = b.header.as_ref().ok();
                let (check, refused) = check_words(b);
                Listed {
                    path: backup_path(store.as_ref(), &b.entry.name),
                    created: h.map(|h| h.metadata.created.to_string()),
                    size: b.entry.size,
                    database: h.map(|h| h.metadata.database.clone()),
                    method: h.map(|h| h.metadata.method.clone()),
                    signer: h.map(|h| h.signer.to_string()),
                    error: b.header.as_ref().err().map(|e| e.to_string()),
                    authenticated: b.is_verified(),
                    check,
                    refused,
                }
            })
            .collect();
        return print_json(&rows);
    }
    if keyring.is_none() && !listed.is_empty() {
        eprintln!(
            "note: times are as the headers state them, unauthenticated; pass --key to check each header"
        );
    }
    for b in &listed {
        let created = b
            .created()
            .map_or_else(|| "(unreadable header)".to_string(), |c| c.to_string());
        let path = backup_path(store.as_ref(), &b.entry.name);
        // Tab-separated, so that `cut -f1` gives the paths whatever they hold.
        match check_words(b) {
            ("not-checked", _) => println!("{}\t{}\t{}", path.display(), created, b.entry.size),
            (word, None) => println!("{}\t{}\t{}\t{word}", path.display(), created, b.entry.size),
            (word, Some(reason)) => println!(
                "{}\t{}\t{}\t{word}: {}",
                path.display(),
                created,
                b.entry.size,
                reason.replace('\t', " ")
            ),
        }
    }
    Ok(())
}

/// `backup list --chains`: one row per chain, newest first. With a
/// keyring only authenticated headers count; without one, the headers'
/// statements are shown as they are (for display, never to decide).
fn list_chains(dir: &Location, keyring: Option<&Keyring>, json: bool) -> anyhow::Result<()> {
    let store = open_location(dir)?;
    let listed = list_backups(store.as_ref(), keyring)?;
    #[derive(Serialize)]
    struct Chain {
        full: PathBuf,
        increments: usize,
        first: String,
        last: String,
        size: u64,
    }
    let usable = |b: &&ListedBackup| keyring.is_none() || b.is_verified();
    let mut chains: Vec<Chain> = Vec::new();
    for full in listed.iter().filter(usable) {
        let Ok(h) = &full.header else { continue };
        if h.metadata.is_increment() {
            continue;
        }
        let id = h.metadata.backup_id;
        let links: Vec<&ListedBackup> = listed
            .iter()
            .filter(usable)
            .filter(|b| {
                b.header
                    .as_ref()
                    .is_ok_and(|h| h.metadata.chain.is_some_and(|c| c.full == id))
            })
            .collect();
        let last = links
            .iter()
            .filter_map(|b| b.created())
            .max()
            .unwrap_or(h.metadata.created);
        chains.push(Chain {
            full: backup_path(store.as_ref(), &full.entry.name),
            increments: links.len(),
            first: h.metadata.created.to_string(),
            last: last.to_string(),
            size: full.entry.size + links.iter().map(|b| b.entry.size).sum::<u64>(),
        });
    }
    if json {
        return print_json(&chains);
    }
    if keyring.is_none() && !chains.is_empty() {
        eprintln!(
            "note: chains and times are as the headers state them, unauthenticated; pass --key to check each header"
        );
    }
    for c in &chains {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            c.full.display(),
            c.increments,
            c.first,
            c.last,
            c.size
        );
    }
    Ok(())
}

/// `backup info`: the header of a named backup, or of the newest in a
/// directory; with a keyring, whether the header authenticates.
fn info(which: &BackupSelector, keyring: Option<&Keyring>, json: bool) -> anyhow::Result<()> {
    let (store, name, _) = select(which, keyring)?;
    let shown_path = match &which.backup {
        Some(path) => path.clone(),
        None => backup_path(store.as_ref(), &name),
    };
    let backup = shown_path.as_path();
    let header = inspect_backup(store.as_ref(), &name)?;
    let listed = || -> anyhow::Result<Option<ListedBackup>> {
        Ok(list_backups(store.as_ref(), keyring)?
            .into_iter()
            .find(|b| b.entry.name == name))
    };
    // With a key, the header's check as `list --key` makes it.
    let check = match keyring {
        Some(_) => listed()?.map(|b| b.check),
        None => None,
    };
    let size = if is_url(backup) || which.backup.is_none() {
        store
            .list()?
            .into_iter()
            .find(|e| e.name == name)
            .map_or(0, |e| e.size)
    } else {
        std::fs::metadata(backup).map(|m| m.len()).unwrap_or(0)
    };
    let authenticated = matches!(check, Some(HeaderCheck::Verified));
    let refused = match &check {
        Some(HeaderCheck::Refused(reason)) => Some(reason.as_str()),
        _ => None,
    };
    // How --latest chose, when it did.
    let chosen = which.backup.is_none().then_some(if keyring.is_some() {
        "newest verified"
    } else {
        "newest by stated time (unauthenticated)"
    });
    let m = &header.metadata;
    let recipients: Vec<String> = header
        .stanzas
        .iter()
        .map(|s| s.key_id.to_string())
        .collect();
    if json {
        #[derive(Serialize)]
        struct Info<'a> {
            path: &'a Path,
            format: &'static str,
            id: String,
            created: String,
            database: &'a str,
            page_size: u32,
            method: &'a str,
            compression: String,
            chunk_size: u32,
            recipients: &'a [String],
            signer: String,
            size: u64,
            authenticated: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            refused: Option<&'a str>,
            /// How `--latest` chose this backup.
            #[serde(skip_serializing_if = "Option::is_none")]
            chosen: Option<&'a str>,
            /// For an increment: its chain's full backup id, its parent's
            /// id and image hash, and its place in the chain.
            #[serde(skip_serializing_if = "Option::is_none")]
            chain: Option<ChainInfo>,
        }
        #[derive(Serialize)]
        struct ChainInfo {
            full: String,
            parent: String,
            parent_image: String,
            sequence: u32,
        }
        return print_json(&Info {
            path: backup,
            format: sqlseal_format::MAGIC,
            id: m.backup_id.to_string(),
            created: m.created.to_string(),
            database: &m.database,
            page_size: m.page_size,
            method: &m.method,
            compression: m.compression.to_string(),
            chunk_size: m.chunk_size,
            chain: m.chain.map(|c| ChainInfo {
                full: c.full.to_string(),
                parent: c.parent.to_string(),
                parent_image: hex(&c.parent_image),
                sequence: c.sequence,
            }),
            recipients: &recipients,
            signer: header.signer.to_string(),
            size,
            authenticated,
            refused,
            chosen,
        });
    }
    println!("path:        {}", backup.display());
    println!("format:      {}", sqlseal_format::MAGIC);
    println!("id:          {}", m.backup_id);
    println!("created:     {}", m.created);
    println!("database:    {}", m.database);
    println!("page-size:   {}", m.page_size);
    println!("method:      {}", m.method);
    println!("compression: {}", m.compression);
    println!("chunk-size:  {}", m.chunk_size);
    if let Some(c) = &m.chain {
        println!(
            "chain:       increment {} of the chain of full backup {} (applies to {}, image {})",
            c.sequence,
            c.full,
            c.parent,
            hex(&c.parent_image)
        );
    }
    println!("recipients:  {}", recipients.join(", "));
    println!("signer:      {}", header.signer);
    println!("size:        {size}");
    if let Some(chosen) = chosen {
        println!("chosen:      {chosen}");
    }
    match (&check, refused) {
        (Some(HeaderCheck::Verified), _) => {
            println!("(header verified; `sqlseal backup verify` checks the whole backup)");
        }
        (_, Some(reason)) => println!("(header refused: {reason})"),
        _ if chosen.is_some() => println!(
            "(not authenticated, and chosen by the time its header states; pass --key to pick the newest verified backup)"
        ),
        _ => println!("(not authenticated; `sqlseal backup verify` checks it)"),
    }
    Ok(())
}

/// `--check` of verify and restore: the chosen check, or without it the
/// default rule (skip a recorded full check, else run the full check).
fn integrity_check(check: Option<CheckArg>) -> IntegrityCheck {
    check.map_or(IntegrityCheck::Auto, |c| CheckLevel::from(c).into())
}

/// What verify or restore did about the integrity check, in words: the
/// text output's `integrity check:` line and the `note` of `--json`.
fn check_note(report: &VerifyReport) -> String {
    let recorded = report.recorded_check;
    match (report.check_run.pragma(), report.check_asked) {
        (Some(pragma), _) if recorded == RecordedCheck::None => {
            format!("{pragma} ran here: ok (none recorded at backup time)")
        }
        (Some(pragma), _) => format!(
            "{pragma} ran here: ok (a {} check was recorded at backup time)",
            recorded.name()
        ),
        (None, IntegrityCheck::None) => format!(
            "not run (--check none); recorded at backup time: {}",
            recorded.name()
        ),
        (None, _) => format!(
            "recorded {} check at backup time, not re-run (--check full re-runs it)",
            recorded.name()
        ),
    }
}

/// The `integrity_check` object of verify's and restore's `--json`.
#[derive(Serialize)]
struct CheckShown {
    /// The check the signed seal records (full, quick, none).
    recorded: &'static str,
    /// The check that ran here (full, quick, none).
    ran: &'static str,
    /// The same in words.
    note: String,
}

#[derive(Serialize)]
struct Verified<'a> {
    ok: bool,
    path: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// On failure, the exit code the failure alone would give (1 or 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    db_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// For an increment: its image index hash (it has no image SHA-256).
    #[serde(skip_serializing_if = "Option::is_none")]
    image_index_hash: Option<String>,
    /// For an increment: the chain its image was built from.
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<ChainShown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    integrity_check: Option<CheckShown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
}

/// Where an increment's image came from.
#[derive(Serialize)]
struct ChainShown {
    /// The chain's full backup (its name in the store).
    full: String,
    /// How many increments were applied to it.
    increments: u32,
}

/// The line that says which chain an increment's image was built from.
fn chain_note(report: &VerifyReport) -> Option<String> {
    report.chain.as_ref().map(|c| {
        format!(
            "chain: built from full backup {} and {} increment(s), each checked against the one before; image index hash {}",
            c.full,
            c.links,
            hex(&report.trailer.sha256)
        )
    })
}

impl<'a> Verified<'a> {
    fn ok(path: &'a Path, report: &VerifyReport) -> Self {
        let (header, trailer) = (&report.header, &report.trailer);
        Verified {
            ok: true,
            path,
            error: None,
            exit_code: None,
            created: Some(header.metadata.created.to_string()),
            database: Some(header.metadata.database.clone()),
            db_bytes: Some(trailer.db_len),
            pages: Some(trailer.page_count),
            sha256: report.chain.is_none().then(|| hex(&trailer.sha256)),
            image_index_hash: report.chain.is_some().then(|| hex(&trailer.sha256)),
            chain: report.chain.as_ref().map(|c| ChainShown {
                full: c.full.clone(),
                increments: c.links,
            }),
            signer: Some(header.signer.to_string()),
            integrity_check: Some(CheckShown {
                recorded: report.recorded_check.name(),
                ran: report.check_run.name(),
                note: check_note(report),
            }),
            seconds: Some(report.seconds),
        }
    }

    fn failed(path: &'a Path, error: &str, exit_code: u8) -> Self {
        Verified {
            ok: false,
            path,
            error: Some(error.to_owned()),
            exit_code: Some(exit_code),
            created: None,
            database: None,
            db_bytes: None,
            pages: None,
            sha256: None,
            image_index_hash: None,
            chain: None,
            signer: None,
            integrity_check: None,
            seconds: None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `backup prune`: the retention decision for every verified backup of
/// `dir`, carried out unless `dry_run`. Files whose header does not verify
/// are reported and never touched.
fn prune(
    dir: &Location,
    keyring: &Keyring,
    policy: &RetentionPolicy,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    if policy.keeps_all() {
        bail!(
            "no retention rule given, so nothing would be deleted; pass --max-count N or a --keep-* rule"
        );
    }
    let store = open_location(dir)?;
    let listed = list_backups(store.as_ref(), Some(keyring))?;
    // Chains: the rules count full backups; increments go with theirs.
    let members: Vec<ChainMember> = listed
        .iter()
        .filter_map(|b| {
            b.verified_header()
                .map(|h| ChainMember::from_header(&b.entry.name, h))
        })
        .collect();
    let increments = IncrementRetention {
        // An increment whose full backup did not authenticate is kept.
        keep_orphans: listed.iter().any(|b| !b.is_verified()),
        ..IncrementRetention::default()
    };
    let decisions = decide_chains(&members, policy, increments);
    // Increments before their full backup, so that a prune cut short
    // leaves every chain restorable.
    let order = deletion_order(&decisions, &members);
    let mut decisions = decisions;
    decisions.sort_by_key(|d| order.iter().position(|n| *n == d.name));
    #[derive(Serialize)]
    struct Pruned {
        path: PathBuf,
        action: &'static str,
        created: Option<String>,
        kept_by: Vec<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }
    let mut rows = Vec::new();
    let mut failed = 0usize;
    for d in decisions {
        let path = backup_path(store.as_ref(), &d.name);
        let (action, reason) = match (d.keep(), dry_run) {
            (true, _) => ("keep", None),
            (false, true) => ("delete", None),
            (false, false) => match store.delete(&d.name) {
                Ok(()) => ("deleted", None),
                Err(e) => {
                    failed += 1;
                    ("failed", Some(e.to_string()))
                }
            },
        };
        rows.push(Pruned {
            path,
            action,
            created: Some(d.created.to_string()),
            kept_by: d.kept_by,
            reason,
        });
    }
    for b in listed.iter().filter(|b| !b.is_verified()) {
        let (_, refused) = check_words(b);
        rows.push(Pruned {
            path: backup_path(store.as_ref(), &b.entry.name),
            action: "skip",
            created: None,
            kept_by: Vec::new(),
            reason: Some(refused.unwrap_or("the header does not verify").to_owned()),
        });
    }
    if json {
        print_json(&rows)?;
    } else {
        for r in &rows {
            let why = match &r.reason {
                Some(reason) => reason.clone(),
                None => r.kept_by.join(","),
            };
            println!(
                "{}\t{}\t{}\t{}",
                r.action,
                r.path.display(),
                r.created.as_deref().unwrap_or("-"),
                why
            );
        }
    }
    if failed > 0 {
        bail!("{failed} backup(s) could not be deleted; see the lines marked failed");
    }
    Ok(())
}
