//! `sqlseal backup create|list|info|verify|restore`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use sqlseal_engine::{
    BackupOptions, CancelFlag, RestoreOptions, VerifyOptions, create_backup, inspect_backup,
    latest_backup, list_backups, restore_backup, verify_backup,
};
use sqlseal_format::{Header, Trailer};
use sqlseal_source::{SnapshotOptions, SqliteSource};
use sqlseal_store::LocalStore;

use crate::progress::Bar;
use crate::{BackupCommand, BackupSelector, keys};

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
            json,
        } => {
            let identities = keys::identities(&keys)?;
            let recipients = keys::recipients(&identities, &recipients)?;
            let Some(signer) = identities.into_iter().next() else {
                bail!("no --key given; pass at least one private key file");
            };
            let store = LocalStore::new(&dir);
            let mut snapshot = SnapshotOptions::new(method);
            // Temporary snapshot files live beside the backups unless told otherwise.
            snapshot.temp_dir = Some(match temp_dir {
                Some(t) => t,
                None => {
                    create_private_dir(&dir)?;
                    dir.clone()
                }
            });
            let source = SqliteSource::new(&db, snapshot);
            let mut options = BackupOptions::new(recipients, signer);
            options.chunk_size = chunk_size;
            let report = create_backup(&source, &store, &options, cancel, &Bar::new("backup"))?;
            let path = report
                .path
                .clone()
                .unwrap_or_else(|| dir.join(&report.name));
            if json {
                #[derive(Serialize)]
                struct Created<'a> {
                    path: &'a Path,
                    created: String,
                    size: u64,
                    db_bytes: u64,
                    pages: u64,
                    method: &'a str,
                    recipients: Vec<String>,
                    signer: String,
                    seconds: f64,
                }
                let h = &report.header;
                print_json(&Created {
                    path: &path,
                    created: h.metadata.created.to_string(),
                    size: report.size,
                    db_bytes: report.trailer.db_len,
                    pages: report.trailer.page_count,
                    method: &h.metadata.method,
                    recipients: h.stanzas.iter().map(|s| s.key_id.to_string()).collect(),
                    signer: h.signer.to_string(),
                    seconds: report.seconds,
                })?;
            } else {
                println!("{}", path.display());
            }
            Ok(())
        }
        BackupCommand::List { dir, json } => list(&dir, json),
        BackupCommand::Info { backup, json } => info(&backup, json),
        BackupCommand::Verify {
            which,
            keys,
            trust,
            json,
        } => {
            let keyring = keys::keyring(&keys, &trust)?;
            let (store, name) = select(&which)?;
            let options = VerifyOptions::default();
            let result = verify_backup(
                &store,
                &name,
                &keyring,
                &options,
                cancel,
                &Bar::new("verify"),
            );
            let path = store.dir().join(&name);
            match result {
                Ok(report) => {
                    if json {
                        print_json(&Verified::ok(
                            &path,
                            &report.header,
                            &report.trailer,
                            report.seconds,
                        ))?;
                    } else {
                        println!(
                            "ok: {} ({} bytes, {} pages, sha256 {}, signed by {}, {:.2} s)",
                            path.display(),
                            report.trailer.db_len,
                            report.trailer.page_count,
                            hex(&report.trailer.sha256),
                            report.header.signer,
                            report.seconds
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    if json {
                        print_json(&Verified::failed(&path, &e.to_string()))?;
                    }
                    Err(e.into())
                }
            }
        }
        BackupCommand::Restore {
            which,
            keys,
            db,
            force,
            trust,
            json,
        } => {
            let keyring = keys::keyring(&keys, &trust)?;
            let (store, name) = select(&which)?;
            let options = RestoreOptions {
                force,
                verify: VerifyOptions::default(),
            };
            let report = restore_backup(
                &store,
                &name,
                &keyring,
                &db,
                &options,
                cancel,
                &Bar::new("restore"),
            )?;
            let path = store.dir().join(&name);
            if json {
                #[derive(Serialize)]
                struct Restored<'a> {
                    #[serde(flatten)]
                    verified: Verified<'a>,
                    target: &'a Path,
                    moved_aside: &'a [PathBuf],
                }
                let v = &report.verified;
                print_json(&Restored {
                    verified: Verified::ok(&path, &v.header, &v.trailer, v.seconds),
                    target: &report.target,
                    moved_aside: &report.moved_aside,
                })?;
            } else {
                println!(
                    "restored {} to {} ({} bytes, {:.2} s)",
                    path.display(),
                    report.target.display(),
                    report.verified.trailer.db_len,
                    report.verified.seconds
                );
                for moved in &report.moved_aside {
                    println!("moved aside: {}", moved.display());
                }
            }
            Ok(())
        }
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating backup directory {}", dir.display()))
}

/// The store and backup name a selector names.
fn select(which: &BackupSelector) -> anyhow::Result<(LocalStore, String)> {
    if let Some(path) = &which.backup {
        return split_backup_path(path);
    }
    let Some(dir) = &which.dir else {
        bail!("name a BACKUP file, or --dir DIR --latest");
    };
    let store = LocalStore::new(dir);
    let name = latest_backup(&store)?;
    Ok((store, name))
}

fn split_backup_path(path: &Path) -> anyhow::Result<(LocalStore, String)> {
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
    Ok((LocalStore::new(dir), name))
}

fn list(dir: &Path, json: bool) -> anyhow::Result<()> {
    let store = LocalStore::new(dir);
    let listed = list_backups(&store)?;
    if json {
        #[derive(Serialize)]
        struct Listed {
            path: PathBuf,
            created: Option<String>,
            size: u64,
            database: Option<String>,
            method: Option<String>,
            signer: Option<String>,
            error: Option<String>,
        }
        let rows: Vec<Listed> = listed
            .iter()
            .map(|b| {
                let h = b.header.as_ref().ok();
                Listed {
                    path: store.dir().join(&b.entry.name),
                    created: h.map(|h| h.metadata.created.to_string()),
                    size: b.entry.size,
                    database: h.map(|h| h.metadata.database.clone()),
                    method: h.map(|h| h.metadata.method.clone()),
                    signer: h.map(|h| h.signer.to_string()),
                    error: b.header.as_ref().err().map(|e| e.to_string()),
                }
            })
            .collect();
        return print_json(&rows);
    }
    for b in &listed {
        let created = b
            .created()
            .map_or_else(|| "(unreadable header)".to_string(), |c| c.to_string());
        println!(
            "{}  {}  {}",
            store.dir().join(&b.entry.name).display(),
            created,
            b.entry.size
        );
    }
    Ok(())
}

fn info(backup: &Path, json: bool) -> anyhow::Result<()> {
    let (store, name) = split_backup_path(backup)?;
    let header = inspect_backup(&store, &name)?;
    let size = std::fs::metadata(backup).map(|m| m.len()).unwrap_or(0);
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
            recipients: &recipients,
            signer: header.signer.to_string(),
            size,
            authenticated: false,
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
    println!("recipients:  {}", recipients.join(", "));
    println!("signer:      {}", header.signer);
    println!("size:        {size}");
    println!("(not authenticated; `sqlseal backup verify` checks it)");
    Ok(())
}

#[derive(Serialize)]
struct Verified<'a> {
    ok: bool,
    path: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
}

impl<'a> Verified<'a> {
    fn ok(path: &'a Path, header: &Header, trailer: &Trailer, seconds: f64) -> Self {
        Verified {
            ok: true,
            path,
            error: None,
            created: Some(header.metadata.created.to_string()),
            database: Some(header.metadata.database.clone()),
            db_bytes: Some(trailer.db_len),
            pages: Some(trailer.page_count),
            sha256: Some(hex(&trailer.sha256)),
            signer: Some(header.signer.to_string()),
            seconds: Some(seconds),
        }
    }

    fn failed(path: &'a Path, error: &str) -> Self {
        Verified {
            ok: false,
            path,
            error: Some(error.to_owned()),
            created: None,
            database: None,
            db_bytes: None,
            pages: None,
            sha256: None,
            signer: None,
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
