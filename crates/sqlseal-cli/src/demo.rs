//! `sqlseal demo`: a real backup run on a demo database that a writer keeps
//! committing to, then list, verify and restore, with a summary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlseal_crypto::{Keyring, P256Identity};
use sqlseal_engine::{
    BackupOptions, CancelFlag, IncrementOutcome, NoProgress, RestoreOptions, VerifyOptions,
    create_increment, list_backups, restore_backup, start_chain, verify_backup,
};
use sqlseal_source::demo::{DemoWriter, create_demo_database, demo_counts};
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::{BackupStore, LocalStore};

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn demo_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating demo directory {}", dir.display()))?;
            if dir.join("demo.db").exists() {
                bail!(
                    "{} already holds a demo (demo.db); choose an empty directory or delete it",
                    dir.display()
                );
            }
            Ok(dir)
        }
        None => Ok(tempfile::Builder::new()
            .prefix("sqlseal-demo-")
            .tempdir()
            .context("creating a temporary demo directory")?
            .keep()),
    }
}

fn write_key(path: &Path, key: &P256Identity) -> anyhow::Result<()> {
    Ok(sqlseal_crypto::write_identity_file(path, key)?)
}

pub fn run(dir: Option<PathBuf>, size_mib: u64, cancel: &CancelFlag) -> anyhow::Result<()> {
    let dir = demo_dir(dir)?;
    println!("sqlseal demo in {}", dir.display());

    let db = dir.join("demo.db");
    let t = Instant::now();
    create_demo_database(&db, size_mib.max(1) << 20)?;
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let (rows, _) = demo_counts(&db)?;
    println!(
        "  database  {}: {}, {rows} orders, WAL mode (made in {:.2} s)",
        db.display(),
        mib(db_size),
        t.elapsed().as_secs_f64()
    );

    let key = P256Identity::generate()?;
    let key_path = dir.join("demo-key.pem");
    write_key(&key_path, &key)?;
    println!(
        "  key       {} (key id {})",
        key_path.display(),
        key.key_id()
    );

    let writer = DemoWriter::start(&db, 1000)?;
    std::thread::sleep(Duration::from_millis(300));
    let before = writer.stats();
    writer.reset_longest();
    let backups = dir.join("backups");
    let store = LocalStore::new(&backups);
    let mut snapshot = SnapshotOptions::new(Method::DbPage);
    snapshot.temp_dir = Some(dir.clone());
    let source = SqliteSource::new(&db, snapshot);
    let options = BackupOptions::new(vec![key.recipient().clone()], key.clone());
    let (made, mut chain) = start_chain(&source, &store, &options, cancel, &NoProgress)?;
    let during = writer.stats();
    println!(
        "  backup    {}: {} from a {} image (ratio {:.2}) in {:.2} s, dbpage method",
        made.path
            .as_deref()
            .unwrap_or(Path::new(&made.name))
            .display(),
        mib(made.size),
        mib(made.trailer.db_len),
        made.size as f64 / made.trailer.db_len.max(1) as f64,
        made.seconds
    );
    println!(
        "            meanwhile the writer committed {} times (longest commit {:.1} ms)",
        during.commits - before.commits,
        during.longest_commit_us as f64 / 1000.0
    );

    // Increments: the pages the writer changed since the previous point,
    // each a complete encrypted and signed container.
    let mut increment_source = SnapshotOptions::new(Method::DbPage);
    increment_source.temp_dir = Some(dir.clone());
    increment_source.check = sqlseal_engine::CheckLevel::None;
    let increment_source = SqliteSource::new(&db, increment_source);
    let mut points = vec![made.name.clone()];
    let mut increment_bytes = 0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        match create_increment(
            &increment_source,
            &store,
            &options,
            &chain,
            cancel,
            &NoProgress,
        )? {
            IncrementOutcome::Written(report, next) => {
                increment_bytes += report.size;
                points.push(report.name);
                chain = next;
            }
            IncrementOutcome::Unchanged => {}
        }
    }
    let writer_stats = writer.stop()?;
    println!(
        "  chain     {} increment(s) after it, {} in all ({:.1}% of the full backup), half a second apart",
        points.len() - 1,
        mib(increment_bytes),
        100.0 * increment_bytes as f64 / made.size.max(1) as f64
    );

    let mut keyring = Keyring::new();
    keyring.add_identity(key);
    let listed = list_backups(&store, Some(&keyring))?;
    println!(
        "  list      {} backup(s) in {}",
        listed.len(),
        store.location()
    );

    let verified = verify_backup(
        &store,
        &made.name,
        &keyring,
        &VerifyOptions::default(),
        cancel,
        &NoProgress,
    )?;
    println!(
        "  verify    ok: every chunk authenticated, SHA-256 and seal match; integrity_check {} ({:.2} s)",
        match verified.check_run {
            sqlseal_engine::CheckLevel::None => "recorded at backup time, not re-run",
            _ => "passed",
        },
        verified.seconds
    );

    // The newest point: the full backup and every increment, each link
    // checked against the one before.
    let newest_point = points.last().unwrap_or(&made.name);
    let restored_path = dir.join("restored.db");
    let restored = restore_backup(
        &store,
        newest_point,
        &keyring,
        &restored_path,
        &RestoreOptions::default(),
        cancel,
        &NoProgress,
    )?;
    let (restored_rows, counter) = demo_counts(&restored_path)?;
    if restored_rows != counter {
        bail!(
            "restored database is inconsistent: {restored_rows} orders but the counter says {counter}"
        );
    }
    println!(
        "  restore   {}: the newest point ({} link(s) applied to the full backup): {restored_rows} orders = counter {counter}, one consistent instant ({:.2} s)",
        restored.target.display(),
        restored.verified.chain.as_ref().map_or(0, |c| c.links),
        restored.verified.seconds
    );
    let (final_rows, _) = demo_counts(&db)?;
    println!(
        "  writer    {} commits in all; the live database now has {final_rows} orders",
        writer_stats.commits
    );
    println!("done. Try: sqlseal backup list --dir {}", backups.display());
    Ok(())
}
