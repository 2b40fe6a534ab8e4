//! The real `sqlseal run` process: scheduled backups under a writer,
//! SIGTERM in the middle of a backup, retention, auto-restore at start-up,
//! and configuration errors.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sqlseal_testkit::{Proc, Writer, add_rows, bin, keygen, rows, wait_until};

use common::create_args;

fn sqlseal(args: &[&str], dir: &std::path::Path) -> Output {
    sqlseal_testkit::sqlseal(args, dir).output().expect("runs")
}

struct Daemon {
    dir: tempfile::TempDir,
    db: PathBuf,
    config: PathBuf,
}

impl Daemon {
    fn new(frequency: &str, max_count: u32, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        add_rows(&db, 1000, 200);
        keygen(dir.path(), "server.pem");
        let config = dir.path().join("sqlseal.yaml");
        std::fs::write(
            &config,
            format!(
                "Backup:\n  Location: backups\n  Frequency: {frequency}\n  MaxCount: {max_count}\n  Keys: [server.pem]\n  ChunkSize: 65536\nDatabase:\n  Paths: [app.db]\n{extra}"
            ),
        )
        .expect("config");
        Daemon { dir, db, config }
    }

    fn backups_dir(&self) -> PathBuf {
        self.dir.path().join("backups").join("app.db")
    }

    fn backups(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.backups_dir())
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".sqlseal") && !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn temp_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [
            self.dir.path().to_path_buf(),
            self.dir.path().join("backups"),
            self.backups_dir(),
        ] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries {
                    let name = e.expect("entry").file_name().to_string_lossy().into_owned();
                    if name.contains(".tmp-") || name.starts_with(".sqlseal-") {
                        found.push(name);
                    }
                }
            }
        }
        found
    }

    /// `sqlseal run` with this configuration; its log is `stderr()`.
    fn start(&self, extra_args: &[&str]) -> Proc {
        let mut args = vec!["run", "--config", "sqlseal.yaml"];
        args.extend_from_slice(extra_args);
        Proc::spawn(sqlseal_testkit::sqlseal(&args, self.dir.path()))
    }
}

#[test]
fn scheduled_backups_retention_and_sigterm_mid_backup() {
    let d = Daemon::new("1s", 3, "");
    // A bigger database so that a backup takes long enough to be interrupted.
    add_rows(&d.db, 50_000, 200);
    let writer = Writer::start(
        &d.db,
        "INSERT INTO t(v) VALUES ('live')",
        Duration::from_millis(1),
    );
    let daemon = d.start(&[]);
    // Several scheduled backups, with retention keeping 3.
    let retained = wait_until(Duration::from_secs(90), || {
        daemon.stderr().contains("deleted by retention")
    });
    assert!(
        retained,
        "made more than MaxCount backups: {}",
        daemon.stderr()
    );
    // Catch a backup in flight: its temporary file exists.
    let in_flight = wait_until(Duration::from_secs(30), || {
        std::fs::read_dir(d.backups_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            })
            .unwrap_or(false)
    });
    assert!(in_flight, "saw a backup in flight");
    let signalled = Instant::now();
    daemon.signal("TERM");
    let (status, log) = daemon.wait_exit(Duration::from_secs(5));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(writer.stop() > 10, "the writer kept committing");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("deleted by retention"), "retention ran: {log}");
    assert!(
        d.temp_files().is_empty(),
        "no temporary file left: {:?}",
        d.temp_files()
    );
    let backups = d.backups();
    assert!(
        !backups.is_empty() && backups.len() <= 3,
        "MaxCount held: {backups:?}"
    );
    for name in &backups {
        let path = d.backups_dir().join(name);
        let o = sqlseal(
            &[
                "backup",
                "verify",
                path.to_str().expect("utf-8"),
                "--key",
                "server.pem",
            ],
            d.dir.path(),
        );
        assert!(
            o.status.success(),
            "{name} verifies: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let status = sqlseal(
        &["status", "--config", "sqlseal.yaml", "--json"],
        d.dir.path(),
    );
    assert!(status.status.success());
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(report["databases"][0]["database"], "app.db");
    assert!(report["databases"][0]["last_success"].is_string());
}

#[test]
fn auto_restore_at_start_up() {
    let d = Daemon::new("0", 10, "");
    let create = |d: &Daemon| {
        let o = sqlseal(
            &create_args("app.db", "backups/app.db", "server.pem", &[]),
            d.dir.path(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    };
    let good = create(&d);
    add_rows(&d.db, 500, 200);
    let newest = d.dir.path().join(create(&d));
    // The newest is corrupted: the older one must be used, and the reason logged.
    let mut bytes = std::fs::read(&newest).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&newest, bytes).expect("write");
    for f in ["app.db", "app.db-wal", "app.db-shm"] {
        let _ = std::fs::remove_file(d.dir.path().join(f));
    }
    let daemon = d.start(&["--log-format", "json"]);
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .stderr()
            .contains("sqlseal daemon started")),
        "started: {}",
        daemon.stderr()
    );
    assert!(d.db.exists(), "restored before the scheduler started");
    daemon.signal("TERM");
    let (status, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(rows(&d.db), 1000, "the older, good backup");
    for line in log.lines() {
        let _: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("JSON log line {line}: {e}"));
    }
    assert!(
        log.contains("backup refused for auto-restore") && log.contains("failed authentication"),
        "{log}"
    );
    assert!(
        log.contains(good.file_name().expect("name").to_str().expect("utf-8")),
        "{log}"
    );
    assert_eq!(
        messages(&log, "restored missing database from backup"),
        1,
        "the restore is logged once: {log}"
    );
}

/// How many JSON log lines have a message containing `text`.
fn messages(log: &str, text: &str) -> usize {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(text))
        })
        .count()
}

#[test]
fn a_missing_database_without_backups_is_waited_for_logged_once_then_backed_up() {
    let d = Daemon::new("1s", 10, "Restore:\n  OnFailure: fail\n");
    for f in ["app.db", "app.db-wal", "app.db-shm"] {
        let _ = std::fs::remove_file(d.dir.path().join(f));
    }
    let daemon = d.start(&["--log-format", "json"]);
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .stderr()
            .contains("waiting for DB to be created")),
        "waiting: {}",
        daemon.stderr()
    );
    // Several 1s slots pass while the database does not exist.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(d.backups().is_empty());
    add_rows(&d.db, 100, 200);
    assert!(
        wait_until(Duration::from_secs(30), || !d.backups().is_empty()),
        "backed up once it exists: {}",
        daemon.stderr()
    );
    daemon.signal("TERM");
    let (status, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(messages(&log, "has no backups"), 1, "{log}");
    assert_eq!(messages(&log, "waiting for DB to be created"), 1, "{log}");
    assert_eq!(messages(&log, "will start empty"), 0, "{log}");
    assert_eq!(messages(&log, "backup failed"), 0, "{log}");
    assert!(!log.to_lowercase().contains("no such file"), "{log}");
    assert!(messages(&log, "backup done") >= 1, "{log}");
}

#[test]
fn auto_restore_failure_stops_start_up() {
    let d = Daemon::new("0", 10, "");
    let o = sqlseal(
        &create_args("app.db", "backups/app.db", "server.pem", &[]),
        d.dir.path(),
    );
    assert!(o.status.success());
    let only = d.dir.path().join(String::from_utf8_lossy(&o.stdout).trim());
    let len = std::fs::metadata(&only).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&only)
        .expect("open")
        .set_len(len - 10)
        .expect("truncate");
    for f in ["app.db", "app.db-wal", "app.db-shm"] {
        let _ = std::fs::remove_file(d.dir.path().join(f));
    }
    let o = sqlseal(&["run", "--config", "sqlseal.yaml"], d.dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().expect("error line");
    assert!(
        last.starts_with("error: database ") && last.contains("truncated"),
        "{err}"
    );
    assert!(!d.db.exists(), "no empty database created");
    assert!(d.temp_files().is_empty(), "{:?}", d.temp_files());

    // With OnFailure: empty the daemon starts anyway.
    std::fs::write(
        &d.config,
        std::fs::read_to_string(&d.config).expect("read") + "Restore:\n  OnFailure: empty\n",
    )
    .expect("config");
    let daemon = d.start(&[]);
    assert!(wait_until(Duration::from_secs(30), || daemon
        .stderr()
        .contains("sqlseal daemon started")));
    daemon.signal("TERM");
    let (status, log) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(log.matches("starts empty").count(), 1, "logged once: {log}");
}

/// SIGTERM the moment the daemon says it started is a clean stop: the
/// handler is installed before that line, not by a task that may not have
/// run yet (found by the suite under load).
#[test]
fn sigterm_right_after_start_is_a_clean_stop() {
    let d = Daemon::new("1h", 3, "");
    for attempt in 0..20 {
        let daemon = d.start(&[]);
        assert!(
            wait_until(Duration::from_secs(30), || daemon
                .stderr()
                .contains("sqlseal daemon started")),
            "attempt {attempt}: {}",
            daemon.stderr()
        );
        daemon.signal("TERM");
        let (status, log) = daemon.wait_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "attempt {attempt}: {log}");
        assert!(
            log.contains("SIGTERM: stopping"),
            "attempt {attempt}: {log}"
        );
    }
}

#[test]
fn configuration_errors_are_one_line_and_name_the_parameter() {
    let d = Daemon::new("1h", 3, "");
    let check = |yaml: &str, env: &[(&str, &str)]| {
        std::fs::write(&d.config, yaml).expect("config");
        let o = Command::new(bin())
            .args(["config", "check", "--config", "sqlseal.yaml"])
            .envs(env.iter().copied())
            .current_dir(d.dir.path())
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(1), "{yaml}");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let base = "Backup:\n  Keys: [server.pem]\nDatabase:\n  Paths: [app.db]\n";
    assert!(check("Backup:\n  Colour: red\n", &[]).contains("unknown field Colour in Backup"));
    assert!(check("Backup:\n  Frequency: soon\n", &[]).contains("Backup.Frequency"));
    assert!(
        check(base, &[("SQLSEAL_BACKUP_FREQUENCY", "often")]).contains("SQLSEAL_BACKUP_FREQUENCY")
    );
    assert!(
        check(
            "Backup:\n  Keys: [missing.pem]\nDatabase:\n  Paths: [app.db]\n",
            &[]
        )
        .contains("Backup.Keys: key file missing.pem")
    );
    std::fs::write(d.dir.path().join("blocker"), "a file").expect("file");
    assert!(
        check("Backup:\n  Location: blocker/sub\n  Keys: [server.pem]\nDatabase:\n  Paths: [app.db]\n", &[])
            .contains("Backup.Location: ")
    );
    assert!(check("Backup:\n  Keys: [server.pem]\n", &[]).contains("Database.Paths: "));

    std::fs::write(&d.config, base).expect("config");
    let o = sqlseal(
        &["config", "check", "--config", "sqlseal.yaml"],
        d.dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(bin())
        .args(["config", "show", "--config", "sqlseal.yaml"])
        .env("SQLSEAL_BACKUP_MAXCOUNT", "7")
        .env("SQLSEAL_S3_SECRETACCESSKEY", "top-secret-value")
        .current_dir(d.dir.path())
        .output()
        .expect("runs");
    let shown = String::from_utf8_lossy(&o.stdout);
    let line = |name: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("Backup.MaxCount").contains("env") && line("Backup.MaxCount").ends_with('7'),
        "{shown}"
    );
    assert!(line("Backup.Keys").contains("file"), "{shown}");
    assert!(
        !shown.contains("top-secret-value"),
        "secrets are masked: {shown}"
    );
    assert!(
        line("S3.SecretAccessKey").contains("env")
            && line("S3.SecretAccessKey").ends_with("********"),
        "{shown}"
    );
    assert!(
        line("Backup.Frequency").contains("default") && line("Backup.Frequency").ends_with("24h"),
        "{shown}"
    );
}
