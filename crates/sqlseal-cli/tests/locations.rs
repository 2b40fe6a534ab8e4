//! Several backup locations on the real binary: each backup goes to an S3
//! bucket (s3s-fs) and a local directory; with the S3 server stopped the
//! directory goes on and the failure is reported for S3 alone; a lost
//! database is restored from the location that answers.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Proc, keygen, sqlseal, wait_until};
use rusqlite::Connection;
use sqlseal_testkit::{rows, s3s};

fn sealed(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sqlseal"))
            .count()
    })
}

fn status(d: &Path) -> serde_json::Value {
    std::fs::read_to_string(d.join("status.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The status entry of app.db at the location that starts with `prefix`.
fn entry(d: &Path, prefix: &str) -> serde_json::Value {
    status(d)["databases"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|e| {
                    e["location"]
                        .as_str()
                        .is_some_and(|l| l.starts_with(prefix))
                })
                .cloned()
        })
        .unwrap_or_default()
}

#[test]
fn two_locations_one_failing_and_auto_restore_from_the_other() {
    let Some(mut server) = s3s::S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let db = d.join("app.db");
    let conn = Connection::open(&db).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('one');",
    )
    .expect("db");
    keygen(d, "server.pem");
    std::fs::write(
        d.join("sqlseal.yaml"),
        format!(
            "Database: {{Paths: [app.db]}}\n\
             Backup: {{Keys: [server.pem], Location: [\"{}\", local], Frequency: 1s}}\n\
             Status: {{File: status.json}}\n",
            server.url("many")
        ),
    )
    .expect("config");
    let env = server.env();
    let start = || {
        let mut cmd = sqlseal(&["run", "--config", "sqlseal.yaml"], d);
        cmd.envs(env.clone());
        Proc::spawn(cmd)
    };
    let s3_copies = |server: &s3s::S3Server| {
        server
            .files()
            .iter()
            .filter(|f| f.contains("many/app.db/") && f.ends_with(".sqlseal"))
            .count()
    };
    let daemon = start();
    assert!(
        wait_until(Duration::from_secs(60), || {
            s3_copies(&server) >= 1 && sealed(&d.join("local/app.db")) >= 1
        }),
        "a backup in each location: {}",
        daemon.stderr()
    );

    // The S3 server goes away; a commit makes the next slot back up.
    server.stop();
    conn.execute("INSERT INTO t VALUES ('two')", [])
        .expect("commit");
    assert!(
        wait_until(Duration::from_secs(60), || {
            sealed(&d.join("local/app.db")) >= 2 && entry(d, "s3://")["last_error"].is_string()
        }),
        "the directory goes on and S3's failure is reported: {}\n{}",
        status(d),
        daemon.stderr()
    );
    assert!(
        entry(d, "local")["last_error"].is_null(),
        "only S3 failed: {}",
        status(d)
    );
    daemon.signal("TERM");
    let out = daemon.wait(Duration::from_secs(10));
    assert_eq!(out.code("run"), 0, "{}", out.stderr);

    // The database is lost while S3 is still down: restored from the
    // directory, with the second row.
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(d.join(format!("app.db{suffix}")));
    }
    let daemon = start();
    // Listing the stopped server is retried before auto-restore gives up
    // on it (the S3 store's retry budget).
    assert!(
        wait_until(Duration::from_secs(180), || {
            daemon.stderr().contains("sqlseal daemon started")
        }),
        "{}",
        daemon.stderr()
    );
    assert_eq!(rows(&db), 2, "restored from the newest verified backup");
    let log = daemon.stderr();
    assert!(log.contains("cannot list this location"), "{log}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(10)).code("run"), 0);
    server.resume();
}
