//! One daemon for many databases, on the real binary: a glob over 200
//! tenants' databases, one added and one removed while it runs; two
//! `app.db` in different directories with readable names (and restored to
//! the right place); a name collision refused naming both; an idle
//! database that costs no backup.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Proc, keygen, run, sqlseal, wait_until};
use rusqlite::Connection;

fn tiny_db(path: &Path, tag: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('{tag}');"
    ))
    .expect("db");
}

fn tag_of(path: &Path) -> String {
    let conn = Connection::open(path).expect("open");
    conn.query_row("SELECT v FROM t", [], |r| r.get(0))
        .expect("tag")
}

fn status(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("backups/status.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Names in the status file, and how many of them have a backup.
fn scheduled(dir: &Path) -> (Vec<String>, usize) {
    let s = status(dir);
    let dbs = s["databases"].as_array().cloned().unwrap_or_default();
    let names = dbs
        .iter()
        .filter_map(|d| d["database"].as_str().map(str::to_owned))
        .collect();
    let backed_up = dbs.iter().filter(|d| d["last_backup"].is_string()).count();
    (names, backed_up)
}

fn sealed_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sqlseal"))
            })
            .count()
    })
}

fn write_config(dir: &Path, body: &str) {
    std::fs::write(dir.join("sqlseal.yaml"), body).expect("config");
}

#[test]
fn a_glob_serves_200_tenants_and_follows_one_added_and_one_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for i in 0..200 {
        tiny_db(
            &d.join(format!("tenants/t{i:03}/app.db")),
            &format!("t{i:03}"),
        );
    }
    // Something that is not a database the pattern wants.
    std::fs::create_dir_all(d.join("tenants/t000/cache")).expect("dir");
    keygen(d, "server.pem");
    write_config(
        d,
        "Database: {Dirs: [\"tenants/*/app.db\"]}\n\
         Backup: {Keys: [server.pem], Location: backups, Frequency: 5s, Concurrency: 2}\n",
    );
    let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], d));
    assert!(
        wait_until(Duration::from_secs(120), || scheduled(d).1 == 200),
        "not every tenant was backed up: {:?}\n{}",
        scheduled(d).1,
        daemon.stderr()
    );
    let (names, _) = scheduled(d);
    assert_eq!(names.len(), 200);
    assert!(names.contains(&"t042/app.db".to_owned()), "{names:?}");
    assert!(sealed_files(&d.join("backups/t042/app.db")) >= 1);

    // A new tenant appears; another one goes.
    tiny_db(&d.join("tenants/new/app.db"), "new");
    std::fs::remove_dir_all(d.join("tenants/t000")).expect("remove t000");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let (names, _) = scheduled(d);
            names.contains(&"new/app.db".to_owned())
                && !names.contains(&"t000/app.db".to_owned())
                && sealed_files(&d.join("backups/new/app.db")) >= 1
        }),
        "the change was not followed: {:?}\n{}",
        scheduled(d).0.len(),
        daemon.stderr()
    );
    assert!(
        sealed_files(&d.join("backups/t000/app.db")) >= 1,
        "a removed database's backups are kept"
    );
    daemon.signal("TERM");
    let out = daemon.wait(Duration::from_secs(5));
    assert_eq!(out.code("run"), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("database found; scheduled"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no longer scheduled"), "{}", out.stderr);

    // The header carries the tenant's name, not just app.db.
    let backup = std::fs::read_dir(d.join("backups/t042/app.db"))
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".sqlseal"))
        .expect("a backup")
        .path();
    let info = run(
        sqlseal(
            &["backup", "info", backup.to_str().expect("utf-8"), "--json"],
            d,
        ),
        Duration::from_secs(30),
    );
    let info: serde_json::Value = serde_json::from_str(&info.expect_success("info")).expect("json");
    assert_eq!(info["database"], "t042_app.db", "{info}");
}

#[test]
fn two_app_db_get_readable_names_and_are_restored_each_to_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tiny_db(&d.join("srv/a/app.db"), "a");
    tiny_db(&d.join("srv/b/app.db"), "b");
    keygen(d, "server.pem");
    write_config(
        d,
        "Database: {Paths: [srv/a/app.db, srv/b/app.db]}\n\
         Backup: {Keys: [server.pem], Location: backups, Frequency: 1h}\n",
    );
    let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], d));
    assert!(
        wait_until(Duration::from_secs(60), || scheduled(d).1 == 2),
        "{}",
        daemon.stderr()
    );
    assert_eq!(scheduled(d).0, ["a/app.db", "b/app.db"]);
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(5)).code("run"), 0);
    assert_eq!(sealed_files(&d.join("backups/a/app.db")), 1);
    assert_eq!(sealed_files(&d.join("backups/b/app.db")), 1);

    // Both lost: each is restored from its own backups.
    let lose = |t: &str| {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(d.join(format!("srv/{t}/app.db{suffix}")));
        }
    };
    lose("a");
    lose("b");
    let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], d));
    // Restored before the daemon starts (and handles SIGTERM).
    assert!(
        wait_until(Duration::from_secs(60), || {
            daemon.stderr().contains("sqlseal daemon started")
        }),
        "{}",
        daemon.stderr()
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(5)).code("run"), 0);
    assert_eq!(tag_of(&d.join("srv/a/app.db")), "a");
    assert_eq!(tag_of(&d.join("srv/b/app.db")), "b");

    // a's backup planted as b's only one: same key, same file name, but
    // its authenticated header names a/app.db, so b is not restored from it.
    lose("b");
    let only = |dir: &Path| {
        std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sqlseal"))
            .collect::<Vec<_>>()
    };
    for own in only(&d.join("backups/b/app.db")) {
        std::fs::remove_file(own).expect("remove b's backup");
    }
    let a_backup = only(&d.join("backups/a/app.db")).remove(0);
    std::fs::copy(
        &a_backup,
        d.join("backups/b/app.db")
            .join(a_backup.file_name().expect("name")),
    )
    .expect("plant");
    let out = run(
        sqlseal(&["run", "--config", "sqlseal.yaml"], d),
        Duration::from_secs(60),
    );
    assert_ne!(out.code("run"), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("a_app.db") && !d.join("srv/b/app.db").exists(),
        "refused by the name in its header: {}",
        out.stderr
    );
}

#[test]
fn names_that_collide_are_refused_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tiny_db(&d.join("x/other.db"), "x");
    tiny_db(&d.join("y/app.db"), "y");
    keygen(d, "server.pem");
    write_config(
        d,
        "Database: {Paths: [\"app.db=x/other.db\", y/app.db]}\n\
         Backup: {Keys: [server.pem], Location: backups}\n",
    );
    let out = run(
        sqlseal(&["config", "check", "--config", "sqlseal.yaml"], d),
        Duration::from_secs(30),
    );
    let line = out.expect_failure("config check", 1, Duration::from_secs(30));
    assert!(
        line.contains("Database.Paths")
            && line.contains("x/other.db and y/app.db are both named `app.db`"),
        "{line}"
    );
}

#[test]
fn an_idle_database_costs_no_backup_and_counts_as_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tiny_db(&d.join("app.db"), "idle");
    keygen(d, "server.pem");
    write_config(
        d,
        "Database: {Paths: [app.db]}\n\
         Backup: {Keys: [server.pem], Location: backups, Frequency: 1s, MaxCount: 0}\n\
         Metrics: {MaxAge: 2s}\n",
    );
    let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], d));
    assert!(
        wait_until(Duration::from_secs(30), || {
            status(d)["databases"][0]["unchanged_at"].is_string()
        }),
        "{}",
        daemon.stderr()
    );
    // Several slots later: still the one backup, and healthy.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sealed_files(&d.join("backups/app.db")), 1);
    let out = run(
        sqlseal(&["status", "--config", "sqlseal.yaml", "--json"], d),
        Duration::from_secs(10),
    );
    let report: serde_json::Value =
        serde_json::from_str(&out.expect_success("status")).expect("json");
    assert_eq!(report["healthy"], true, "{report}");
    // A commit: the next slot backs it up.
    let conn = Connection::open(d.join("app.db")).expect("open");
    conn.execute("INSERT INTO t VALUES ('changed')", [])
        .expect("commit");
    assert!(
        wait_until(Duration::from_secs(30), || sealed_files(
            &d.join("backups/app.db")
        ) == 2),
        "{}",
        daemon.stderr()
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(5)).code("run"), 0);
}

#[test]
fn variables_in_the_config_file_are_expanded_unless_told_not_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tiny_db(&d.join("app.db"), "env");
    keygen(d, "server.pem");
    write_config(
        d,
        "Database: {Paths: [\"${SQLSEAL_TEST_DB}\"]}\n\
         Backup: {Keys: [server.pem], Location: \"${SQLSEAL_TEST_DIR:-env-backups}\"}\n",
    );
    let show = |extra: &[&str], db: Option<&str>| {
        let mut args = vec!["config", "show", "--config", "sqlseal.yaml", "--json"];
        args.extend_from_slice(extra);
        let mut cmd = sqlseal(&args, d);
        cmd.env_remove("SQLSEAL_TEST_DIR");
        match db {
            Some(db) => cmd.env("SQLSEAL_TEST_DB", db),
            None => cmd.env_remove("SQLSEAL_TEST_DB"),
        };
        run(cmd, Duration::from_secs(30))
    };
    let value = |out: &common::Outcome, name: &str| -> String {
        let all: serde_json::Value =
            serde_json::from_str(&out.expect_success("config show")).expect("json");
        all.as_array()
            .expect("array")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["value"].as_str())
            .expect("parameter")
            .to_owned()
    };
    let out = show(&[], Some("app.db"));
    assert_eq!(value(&out, "Database.Paths"), "app.db");
    assert_eq!(value(&out, "Backup.Location"), "env-backups");

    let out = show(&[], None);
    let line = out.expect_failure("unset variable", 1, Duration::from_secs(30));
    assert!(
        line.contains("line 1: ${SQLSEAL_TEST_DB} is not set; set it, give a default as ${SQLSEAL_TEST_DB:-VALUE}, or run with --no-expand-env"),
        "{line}"
    );

    let out = show(&["--no-expand-env"], None);
    assert_eq!(value(&out, "Database.Paths"), "${SQLSEAL_TEST_DB}");
    assert_eq!(
        value(&out, "Backup.Location"),
        "${SQLSEAL_TEST_DIR:-env-backups}"
    );
}

#[test]
fn a_database_that_goes_and_comes_back_is_scheduled_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    tiny_db(&d.join("tenants/a/app.db"), "a");
    tiny_db(&d.join("tenants/b/app.db"), "b");
    keygen(d, "server.pem");
    write_config(
        d,
        "Database: {Dirs: [\"tenants/*/app.db\"]}\n\
         Backup: {Keys: [server.pem], Location: backups, Frequency: 1h}\n",
    );
    let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], d));
    assert!(
        wait_until(Duration::from_secs(60), || scheduled(d).0.len() == 2),
        "{}",
        daemon.stderr()
    );
    std::fs::rename(d.join("tenants/a/app.db"), d.join("a.db")).expect("move away");
    assert!(
        wait_until(Duration::from_secs(60), || {
            daemon.stderr().contains("no longer scheduled")
        }),
        "{}",
        daemon.stderr()
    );
    std::fs::rename(d.join("a.db"), d.join("tenants/a/app.db")).expect("move back");
    assert!(
        wait_until(Duration::from_secs(60), || {
            daemon.stderr().matches("database found; scheduled").count() >= 1
                && scheduled(d).0.contains(&"a/app.db".to_owned())
        }),
        "{}",
        daemon.stderr()
    );
    daemon.signal("TERM");
    let out = daemon.wait(Duration::from_secs(10));
    assert_eq!(out.code("run"), 0, "{}", out.stderr);
    assert!(
        !out.stderr.contains("not scheduled") && !out.stderr.contains("already being backed up"),
        "scheduled again under its own lock: {}",
        out.stderr
    );
}
