//! Measures increments on a demo database of realistic rows (an orders
//! table with an index): a full backup that starts a chain, then LINKS
//! increments after about PERCENT % of the table's rows changed (in ten
//! contiguous runs each time) made as the daemon makes them (following the
//! write-ahead log, reading the pages it names), then three made by the
//! page-hash scan for comparison, then restores of the full backup alone
//! and of the newest point, three of each interleaved (without the
//! integrity check, to compare the rebuild itself). Prints one line per
//! figure.
//!
//! ```sh
//! cargo run --release -p sqlseal-engine --example increments -- [MIB] [LINKS] [PERCENT] [DIR]
//! ```
//! (defaults: 1024 MiB, 30 links, 1 %, the system's temporary directory).
//!
//! With `SQLSEAL_KEEP=1` in the environment the working directory is kept:
//! the chain in `chain/`, its key in `key.pem`, so that the restores can be
//! timed again with the CLI: `benches/chain_restore.sh DIR`.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use rusqlite::Connection;
use sqlseal_crypto::{Keyring, P256Identity};
use sqlseal_engine::{
    BackupOptions, CancelFlag, CheckLevel, IncrementOutcome, IncrementTracker, IntegrityCheck,
    NoProgress, RestoreOptions, VerifyOptions, create_backup, create_increment,
    create_tracked_increment, restore_backup, start_chain,
};
use sqlseal_source::demo::create_demo_database;
use sqlseal_source::{Method, SnapshotOptions, SqliteSource};
use sqlseal_store::LocalStore;

/// The middle value (the upper one of an even count); `v` sorted.
fn median(v: &[f64]) -> f64 {
    v[v.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Changes about `percent` % of the rows, in ten contiguous runs at
/// positions that move with `round`.
fn change_rows(db: &Path, percent: f64, round: u64) -> Result<(), Box<dyn Error>> {
    let conn = Connection::open(db)?;
    let rows: i64 = conn.query_row("SELECT max(id) FROM orders", [], |r| r.get(0))?;
    let run = ((rows as f64 * percent / 100.0) / 10.0).max(1.0) as i64;
    for i in 0..10u64 {
        let start = ((round * 7919 + i * 104_729) % rows.max(1) as u64) as i64;
        conn.execute(
            "UPDATE orders SET amount_cents = amount_cents + 1 WHERE id BETWEEN ?1 AND ?2",
            (start, start + run),
        )?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args.first().map_or(Ok(1024), |a| a.parse())?;
    let links: u64 = args.get(1).map_or(Ok(30), |a| a.parse())?;
    let percent: f64 = args.get(2).map_or(Ok(1.0), |a| a.parse())?;
    let parent = args
        .get(3)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = tempfile::tempdir_in(parent)?;
    let db = dir.path().join("orders.db");
    let t = Instant::now();
    create_demo_database(&db, size_mib << 20)?;
    println!(
        "database: {:.0} MiB of orders made in {:.1} s",
        mib(std::fs::metadata(&db)?.len()),
        t.elapsed().as_secs_f64()
    );

    let key = P256Identity::generate()?;
    let mut keyring = Keyring::new();
    keyring.add_identity(key.clone());
    let options = BackupOptions::new(vec![key.recipient().clone()], key.clone());
    let mut source_options = SnapshotOptions::new(Method::DbPage);
    source_options.check = CheckLevel::None;
    let source = SqliteSource::new(&db, source_options.clone());
    let (cancel, none) = (CancelFlag::new(), NoProgress);

    let plain_store = LocalStore::new(dir.path().join("plain"));
    let t = Instant::now();
    let plain = create_backup(&source, &plain_store, &options, &cancel, &none)?;
    let plain_secs = t.elapsed().as_secs_f64();
    println!(
        "full backup (no check): {:.1} MiB in {plain_secs:.2} s",
        mib(plain.size)
    );

    let store = LocalStore::new(dir.path().join("chain"));
    let t = Instant::now();
    let (full, mut state) = start_chain(&source, &store, &options, &cancel, &none)?;
    println!(
        "full backup starting a chain (pages hashed too): {:.1} MiB in {:.2} s",
        mib(full.size),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    match create_increment(&source, &store, &options, &state, &cancel, &none)? {
        IncrementOutcome::Unchanged => println!(
            "increment of an unchanged database, page-hash scan: nothing written in {:.2} s",
            t.elapsed().as_secs_f64()
        ),
        IncrementOutcome::Written(..) => {
            return Err("an unchanged database made an increment".into());
        }
    }
    // The tracker's first increment reads every page (nothing pinned yet);
    // from the second on it follows the log.
    let mut tracker = IncrementTracker::new(&db, source_options.clone());
    for attempt in ["first, every page read", "pinned, log followed"] {
        let t = Instant::now();
        let outcome = create_tracked_increment(
            &mut tracker,
            &store,
            &options,
            &state,
            false,
            &cancel,
            &none,
        )?;
        if !matches!(outcome, IncrementOutcome::Unchanged) {
            return Err("an unchanged database made an increment".into());
        }
        println!(
            "increment of an unchanged database, tracked ({attempt}): nothing written in {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }

    let mut last = full.name.clone();
    let mut rounds = |tracked: bool, from: u64, count: u64| -> Result<(), Box<dyn Error>> {
        let (mut sizes, mut times, mut pages) = (Vec::new(), Vec::new(), Vec::new());
        for round in from..from + count {
            change_rows(&db, percent, round)?;
            let t = Instant::now();
            let outcome = if tracked {
                create_tracked_increment(
                    &mut tracker,
                    &store,
                    &options,
                    &state,
                    false,
                    &cancel,
                    &none,
                )?
            } else {
                create_increment(&source, &store, &options, &state, &cancel, &none)?
            };
            let IncrementOutcome::Written(report, next) = outcome else {
                return Err("rows changed but no increment was made".into());
            };
            times.push(t.elapsed().as_secs_f64());
            if tracked {
                let scan = tracker.last_scan().ok_or("no scan")?;
                if scan.whole {
                    return Err(format!(
                        "round {round} read every page: {:?}",
                        scan.unknown_because
                    )
                    .into());
                }
                pages.push(scan.pages_read);
                tracker.settle()?;
            }
            sizes.push(report.size);
            last = report.name.clone();
            state = next;
        }
        if sizes.is_empty() {
            return Ok(());
        }
        sizes.sort_unstable();
        times.sort_by(f64::total_cmp);
        pages.sort_unstable();
        let size_median = sizes[sizes.len() / 2];
        println!(
            "increments after {percent} % of rows changed, {} ({count}): median {:.2} MiB ({:.2} % of the full backup), median {:.3} s, fastest {:.3} s, slowest {:.3} s{}",
            if tracked {
                "following the log"
            } else {
                "page-hash scan"
            },
            mib(size_median),
            100.0 * size_median as f64 / full.size as f64,
            median(&times),
            times[0],
            times[times.len() - 1],
            pages
                .get(pages.len() / 2)
                .map_or(String::new(), |p| format!(", median {p} pages read"))
        );
        Ok(())
    };
    rounds(true, 1, links)?;
    rounds(false, links + 1, 3.min(links))?;

    let restore_options = RestoreOptions {
        verify: VerifyOptions {
            integrity_check: IntegrityCheck::None,
            ..VerifyOptions::default()
        },
        ..RestoreOptions::default()
    };
    // Interleaved, each after the writes before it reached the disk, so
    // that neither pays for the other's (or the increments') writeback.
    let (mut full_times, mut chain_times, mut links_applied) = (Vec::new(), Vec::new(), 0);
    for _ in 0..3 {
        for (name, times) in [(&full.name, &mut full_times), (&last, &mut chain_times)] {
            let target = dir.path().join("restored.db");
            let _ = std::fs::remove_file(&target);
            std::process::Command::new("sync").status()?;
            std::thread::sleep(std::time::Duration::from_secs(1));
            let t = Instant::now();
            let restored = restore_backup(
                &store,
                name,
                &keyring,
                &target,
                &restore_options,
                &cancel,
                &none,
            )?;
            times.push(t.elapsed().as_secs_f64());
            links_applied = links_applied.max(restored.verified.chain.map_or(0, |c| c.links));
        }
    }
    full_times.sort_by(f64::total_cmp);
    chain_times.sort_by(f64::total_cmp);
    let (full_restore, chain_restore) = (median(&full_times), median(&chain_times));
    println!(
        "restore without check (median of 3, interleaved): full backup alone {full_restore:.2} s; newest point (full + {links_applied} increments) {chain_restore:.2} s ({:.2}x)",
        chain_restore / full_restore
    );
    if std::env::var_os("SQLSEAL_KEEP").is_some() {
        let kept = dir.keep();
        let mut pem = sqlseal_private::create_private_file(&kept.join("key.pem"))?;
        std::io::Write::write_all(&mut pem, key.to_pkcs8_pem()?.as_bytes())?;
        println!("kept: {}", kept.display());
    }
    Ok(())
}
