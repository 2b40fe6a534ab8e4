//! Operational safety of the real binary: one backup writer per database
//! and location, and plaintext snapshot copies kept out of the backup
//! directory.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlseal_testkit::{Proc, add_rows, bin, keygen, run, wait_until};

use common::create_args;

fn sqlseal(args: &[&str], dir: &Path) -> Output {
    sqlseal_testkit::sqlseal(args, dir).output().expect("runs")
}

/// The `error:` lines of a failed command's stderr.
fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_owned)
        .collect()
}

/// Runs `cmd` to completion, failing the test if it takes longer than `limit`.
fn output_within(cmd: Command, limit: Duration) -> Output {
    let out = run(cmd, limit);
    let status = out
        .status
        .unwrap_or_else(|| panic!("the command did not exit within {limit:?}"));
    Output {
        status,
        stdout: out.stdout.into_bytes(),
        stderr: out.stderr.into_bytes(),
    }
}

/// The daemon's lock files beside `db`, with what each holds.
fn lock_files(db: &Path) -> Vec<(PathBuf, String)> {
    let dir = db.parent().expect("db dir");
    let name = db.file_name().expect("db name").to_string_lossy();
    let prefix = format!(".{name}.sqlseal-");
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let e = e.expect("entry");
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".lock") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            found.push((e.path(), text));
        }
    }
    found
}

#[test]
fn a_second_daemon_and_a_one_shot_backup_are_refused_while_one_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    add_rows(&db, 200, 100);
    keygen(dir.path(), "server.pem");
    std::fs::write(
        dir.path().join("sqlseal.yaml"),
        "Backup:\n  Location: backups\n  Frequency: 1h\n  Keys: [server.pem]\nDatabase:\n  Paths: [app.db]\n",
    )
    .expect("config");
    let first = Proc::spawn(sqlseal_testkit::sqlseal(
        &["run", "--config", "sqlseal.yaml"],
        dir.path(),
    ));
    let first_pid = first.id();

    // The first daemon holds its lock once its pid is in the lock file.
    let mut lock = None;
    let locked = wait_until(Duration::from_secs(30), || {
        lock = lock_files(&db)
            .into_iter()
            .find(|(_, text)| text.trim() == first_pid.to_string())
            .map(|(path, _)| path);
        lock.is_some()
    });
    assert!(
        locked,
        "the first daemon never took its lock: {:?}",
        lock_files(&db)
    );
    let lock = lock.expect("found");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&lock).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the lock file is private");
    }

    // A second daemon on the same configuration stops at once.
    let mut second = Command::new(bin());
    second
        .args(["run", "--config", "sqlseal.yaml"])
        .current_dir(dir.path());
    let out = output_within(second, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "second daemon: {out:?}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "one error line: {out:?}");
    let line = &errors[0];
    assert!(
        line.contains("database app.db is already being backed up to ")
            && line.contains(&format!(
                "backups/app.db by process {first_pid}; stop that process first"
            )),
        "{line}"
    );

    // So does a one-shot backup of the same database to the same place,
    // however the directory is spelled.
    let absolute = dir.path().join("backups/app.db/");
    for spelling in ["backups/app.db", absolute.to_str().expect("utf-8")] {
        let mut create = Command::new(bin());
        create
            .args(["backup", "create", "--db", "app.db", "--dir", spelling])
            .args(["--key", "server.pem"])
            .current_dir(dir.path());
        let out = output_within(create, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "backup create: {out:?}");
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{out:?}");
        assert!(
            errors[0].contains(&format!("by process {first_pid}; stop that process first")),
            "{}",
            errors[0]
        );
    }

    // Once the first daemon is dead (SIGKILL: no clean-up of its own),
    // the kernel has released its lock and a backup goes ahead.
    drop(first);
    let out = sqlseal(
        &create_args("app.db", "backups/app.db", "server.pem", &[]),
        dir.path(),
    );
    assert!(out.status.success(), "after the daemon died: {out:?}");
    assert!(lock.exists(), "the lock file stays, only unlocked");
}

#[test]
fn snapshot_copies_never_touch_the_backup_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let a = root.path().join("a");
    let b = root.path().join("b");
    std::fs::create_dir(&a).expect("a");
    std::fs::create_dir(&b).expect("b");
    let db = a.join("app.db");
    // Large enough that the copy lives for a while as it is sealed.
    add_rows(&db, 2000, 16 * 1024);
    keygen(root.path(), "server.pem");

    for method in ["backup-api", "vacuum"] {
        // Watch both directories for every name that appears in them.
        let stop = Arc::new(AtomicBool::new(false));
        let seen_a = Arc::new(Mutex::new(BTreeSet::new()));
        let seen_b = Arc::new(Mutex::new(BTreeSet::new()));
        let watcher = {
            let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
            let (seen_a, seen_b) = (seen_a.clone(), seen_b.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    seen_a.lock().expect("lock").extend(names(&a));
                    seen_b.lock().expect("lock").extend(names(&b));
                }
            })
        };
        let out = sqlseal(
            &create_args("a/app.db", "b", "server.pem", &["--method", method]),
            root.path(),
        );
        stop.store(true, Ordering::Relaxed);
        watcher.join().expect("watcher");
        assert!(out.status.success(), "{method}: {out:?}");
        let backup = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let backup_name = Path::new(&backup)
            .file_name()
            .expect("backup file name")
            .to_string_lossy()
            .into_owned();

        let strays: Vec<String> = seen_b
            .lock()
            .expect("lock")
            .iter()
            .filter(|n| {
                // Earlier backups, and this one and its own temporary file.
                let finished_backup = n.ends_with(".sqlseal") && !n.starts_with('.');
                let its_temp_file = n.starts_with(&format!(".{backup_name}.tmp-"));
                !finished_backup && !its_temp_file
            })
            .cloned()
            .collect();
        assert!(
            strays.is_empty(),
            "{method}: stray entries in the backup directory: {strays:?}"
        );
        assert!(
            seen_a
                .lock()
                .expect("lock")
                .iter()
                .any(|n| n.starts_with(".sqlseal-snapshot-")),
            "{method}: the copy was made beside the database"
        );
        let left: Vec<String> = names(&a)
            .into_iter()
            .filter(|n| n.starts_with(".sqlseal-snapshot-"))
            .collect();
        assert!(
            left.is_empty(),
            "{method}: copy left beside the database: {left:?}"
        );
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
