//! A Rust service that embeds sqlseal: restore its database if it is
//! missing, then keep backing it up while the service runs, and stop
//! cleanly with the service.
//!
//! Run it with a config file (`cargo run -p sqlseal-schedule --example
//! embedded_service -- sqlseal.yaml`) or without one, in which case it
//! makes a key, a database and a config in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlseal_params::Params;
use sqlseal_schedule::{RestoreOutcome, Scheduler, Settings, auto_restore_settings};
use tokio_util::sync::CancellationToken;

fn demo_config(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let key = sqlseal_crypto::P256Identity::generate()?;
    let key_path = dir.join("server.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem()?.as_bytes())?;
    let config = dir.join("sqlseal.yaml");
    std::fs::write(
        &config,
        format!(
            "Backup:\n  Location: {}\n  Frequency: 1s\n  MaxCount: 3\n  Keys: [{}]\nDatabase:\n  Paths: [{}]\n",
            dir.join("backups").display(),
            key_path.display(),
            dir.join("service.db").display()
        ),
    )?;
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let scratch = tempfile::tempdir()?;
    let config = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => demo_config(scratch.path())?,
    };
    let yaml = std::fs::read_to_string(&config)?;
    let params = Params::load(Some(&yaml), sqlseal_params::process_env)?.params;
    let settings = Settings::from_params(&params)?;

    // 1. Before the service opens its database: restore it if it is gone.
    let restored = tokio::task::spawn_blocking({
        let settings = settings.clone();
        move || auto_restore_settings(&settings)
    })
    .await??;
    for (path, outcome) in &restored.databases {
        if let RestoreOutcome::Restored { backup, .. } = outcome {
            println!("restored {} from {backup}", path.display());
        }
    }

    // 2. Back up in the background, on the service's own token.
    let db_path = settings.databases[0].path.clone();
    let token = CancellationToken::new();
    let backups = Scheduler::new(settings).spawn(token.clone());

    // 3. The service itself: here, a few seconds of writes.
    let service = tokio::task::spawn_blocking(move || -> Result<u32, rusqlite::Error> {
        let conn = rusqlite::Connection::open(&db_path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS events(at TEXT);",
        )?;
        let mut n = 0;
        for _ in 0..300 {
            conn.execute("INSERT INTO events VALUES (datetime('now'))", [])?;
            n += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(n)
    });
    let written = service.await??;

    // 4. Shut down: stop taking backups, cancel the one in flight, wait.
    token.cancel();
    backups.await??;
    println!("service wrote {written} events; backups stopped cleanly");
    Ok(())
}
