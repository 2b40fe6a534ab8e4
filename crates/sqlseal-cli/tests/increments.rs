//! `Backup.IncrementFrequency` on the real binary: the daemon makes a chain
//! while another process commits, survives kill -9 (the chain continues or
//! a new full backup starts, never a broken chain), makes nothing while the
//! database is idle, and every point restores to one consistent instant,
//! by name and by `restore --at`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Proc, keygen, p, run, sqlseal, wait_until};
use rusqlite::Connection;
use sqlseal_testkit::writer::{start_writer_process, stop_writer_process, writer_process_main};

const LIMIT: Duration = Duration::from_secs(60);

/// Run by the writer process (see `start_writer_process`); a no-op in a
/// normal test run.
#[test]
#[ignore = "the writer process of these tests; not a test"]
fn writer_process() {
    writer_process_main();
}

/// The writer process's database: rows in `t`, their count in `counter`,
/// bumped in the same transaction; a few MiB to start with.
fn writer_db(db: &Path) {
    let conn = Connection::open(db).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB);
         CREATE TABLE counter(n INTEGER);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
         INSERT INTO t(payload) SELECT randomblob(200) FROM s;
         INSERT INTO counter VALUES (20000);",
    )
    .expect("schema");
}

/// Rows and counter of a restored database: equal in one consistent instant.
fn rows_and_counter(db: &Path) -> (i64, i64) {
    let conn = Connection::open(db).expect("open restored");
    let rows = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("rows");
    let counter = conn
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .expect("counter");
    (rows, counter)
}

/// The backups in `dir` (sorted by name: by creation time).
fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sqlseal"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A work directory holding the writer's database `app.db`, a key
/// `server.pem` and `sqlseal.yaml` backing up `app.db` to `backups` with
/// `backup` (YAML lines of the Backup section); and the database's backup
/// directory.
fn workdir(backup: &str) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    writer_db(&w.join("app.db"));
    keygen(w, "server.pem");
    std::fs::write(
        w.join("sqlseal.yaml"),
        format!("Backup:\n  Location: backups\n{backup}Database:\n  Paths: [app.db]\n"),
    )
    .expect("config");
    let dir = w.join("backups").join("app.db");
    (work, dir)
}

fn start_daemon(w: &Path, what: &str) -> Proc {
    let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], w));
    let up = wait_until(Duration::from_secs(20), || {
        daemon.stderr().contains("sqlseal daemon started")
    });
    assert!(up, "{what}: the daemon did not start: {}", daemon.stderr());
    daemon
}

/// SIGTERM, and a clean exit within 10 s.
fn stop_daemon(daemon: Proc) {
    daemon.signal("TERM");
    let o = daemon.wait(Duration::from_secs(10));
    assert_eq!(o.code("daemon, SIGTERM"), 0, "{}", o.stderr);
}

#[test]
fn the_daemon_makes_a_chain_that_restores_at_every_point_across_kill_9() {
    let (work, dir) = workdir(
        "  Frequency: 1h\n  IncrementFrequency: 1s\n  MaxCount: 3\n  Keys: [server.pem]\n  ChunkSize: 65536\n",
    );
    let w = work.path();
    let db = w.join("app.db");
    let writer = start_writer_process("writer_process", &db);

    let daemon = start_daemon(w, "first start");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() >= 4),
        "a full backup and three increments: {}",
        daemon.stderr()
    );
    daemon.kill9();
    let before_restart = backups(&dir).len();
    let daemon = start_daemon(w, "after kill -9");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() >= before_restart + 3),
        "increments after the restart: {}",
        daemon.stderr()
    );
    let log = daemon.stderr();
    assert!(
        log.contains("continuing the chain of the last run") || log.contains("starts one"),
        "the restart continues the chain or starts a new one: {log}"
    );
    stop_daemon(daemon);
    stop_writer_process(&db, writer);

    // Every point restores, to one consistent instant, later points to
    // later instants.
    let all = backups(&dir);
    assert!(all.len() >= 7, "{all:?}");
    let mut last = 0;
    for (i, backup) in all.iter().enumerate() {
        let target = w.join(format!("restored-{i}.db"));
        let o = run(
            sqlseal(
                &[
                    "backup",
                    "restore",
                    p(backup),
                    "--key",
                    "server.pem",
                    "--db",
                    p(&target),
                ],
                w,
            ),
            LIMIT,
        );
        o.expect_success(&format!("restore of point {i}"));
        let (rows, counter) = rows_and_counter(&target);
        assert_eq!(
            rows,
            counter,
            "point {i} ({}) is one instant",
            backup.display()
        );
        assert!(
            counter >= last,
            "point {i} is not older than point {}",
            i.max(1) - 1
        );
        last = counter;
    }

    // `list --chains`: every backup is a full backup or an increment of one.
    let chains = chains(w, &dir);
    let links: u64 = chains
        .iter()
        .map(|c| c["increments"].as_u64().expect("increments"))
        .sum();
    assert_eq!(chains.len() as u64 + links, all.len() as u64, "{chains:?}");
    assert!(links >= 5, "{chains:?}");
    assert!(
        chains
            .iter()
            .all(|c| c["first"].as_str() <= c["last"].as_str())
    );

    // `--at` the time of a point restores that point.
    let o = run(
        sqlseal(&["backup", "list", "--dir", p(&dir), "--json"], w),
        LIMIT,
    );
    let listed: serde_json::Value = serde_json::from_str(&o.expect_success("list")).expect("json");
    let rows = listed.as_array().expect("array");
    let third = rows
        .iter()
        .find(|r| r["path"].as_str() == Some(p(&all[2])))
        .expect("the third point is listed");
    let at = third["created"].as_str().expect("created");
    let target = w.join("at.db");
    let o = run(
        sqlseal(
            &[
                "backup",
                "restore",
                "--dir",
                p(&dir),
                "--at",
                at,
                "--key",
                "server.pem",
                "--db",
                p(&target),
            ],
            w,
        ),
        LIMIT,
    );
    let out = o.expect_success("restore --at");
    assert!(out.contains(p(&all[2])), "{out}");
    assert_eq!(
        rows_and_counter(&target),
        rows_and_counter(&w.join("restored-2.db"))
    );
}

#[test]
fn an_idle_database_makes_no_increment() {
    let (work, dir) = workdir("  Frequency: 1h\n  IncrementFrequency: 1s\n  Keys: [server.pem]\n");
    let w = work.path();
    let daemon = start_daemon(w, "start");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 1),
        "the first full backup: {}",
        daemon.stderr()
    );
    // Several increment slots pass with nothing to write.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(backups(&dir).len(), 1, "{}", daemon.stderr());
    // One commit: one increment.
    Connection::open(w.join("app.db"))
        .expect("open")
        .execute_batch("INSERT INTO t(payload) VALUES (x'00'); UPDATE counter SET n = n + 1;")
        .expect("commit");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 2),
        "an increment after a commit: {}",
        daemon.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(backups(&dir).len(), 2, "{}", daemon.stderr());
    stop_daemon(daemon);
}

#[test]
fn a_sub_second_increment_frequency_is_refused_in_one_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    writer_db(&w.join("app.db"));
    keygen(w, "server.pem");
    std::fs::write(
        w.join("sqlseal.yaml"),
        "Backup:\n  Location: backups\n  IncrementFrequency: 500ms\n  Keys: [server.pem]\nDatabase:\n  Paths: [app.db]\n",
    )
    .expect("config");
    let o = run(
        sqlseal(&["config", "check", "--config", "sqlseal.yaml"], w),
        LIMIT,
    );
    let err = o.expect_failure("config check", 1, LIMIT);
    assert!(
        err.contains("Backup.IncrementFrequency") && err.contains("1s"),
        "{err}"
    );
}

#[test]
fn backup_create_increment_continues_the_chain_and_starts_one_when_it_cannot() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let db = w.join("app.db");
    writer_db(&db);
    keygen(w, "server.pem");
    let create = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "create",
            "--db",
            "app.db",
            "--dir",
            "backups",
            "--key",
            "server.pem",
            "--increment",
        ];
        args.extend_from_slice(extra);
        run(sqlseal(&args, w), LIMIT)
    };
    let dir = w.join("backups");
    let o = create(&[]);
    o.expect_success("first --increment");
    assert!(o.stderr.contains("starts one"), "{}", o.stderr);
    assert_eq!(backups(&dir).len(), 1);

    let o = create(&[]);
    o.expect_success("unchanged");
    assert!(o.stderr.contains("unchanged"), "{}", o.stderr);
    assert_eq!(backups(&dir).len(), 1, "nothing written");

    let commit = || {
        Connection::open(&db)
            .expect("open")
            .execute_batch("INSERT INTO t(payload) VALUES (x'01'); UPDATE counter SET n = n + 1;")
            .expect("commit");
    };
    for sequence in 1..=2 {
        commit();
        let o = create(&["--json"]);
        let made: serde_json::Value =
            serde_json::from_str(&o.expect_success("increment")).expect("json");
        assert_eq!(made["increment"], sequence, "{made}");
    }
    assert_eq!(backups(&dir).len(), 3);

    // A damaged state: a full backup starts a new chain, never a guess.
    let state = std::fs::read_dir(w)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains(".app.db.sqlseal-chain-"))
        .expect("the chain state beside the database");
    std::fs::write(&state, b"damaged").expect("damage");
    commit();
    let o = create(&["--json"]);
    let made: serde_json::Value =
        serde_json::from_str(&o.expect_success("after damage")).expect("json");
    assert!(made.get("increment").is_none(), "{made}");
    assert!(
        o.stderr.contains("not a sqlseal chain state file"),
        "{}",
        o.stderr
    );

    // The newest point restores, consistent.
    let target = w.join("restored.db");
    let o = run(
        sqlseal(
            &[
                "backup",
                "restore",
                "--dir",
                "backups",
                "--latest",
                "--key",
                "server.pem",
                "--db",
                p(&target),
            ],
            w,
        ),
        LIMIT,
    );
    o.expect_success("restore");
    assert_eq!(rows_and_counter(&target), rows_and_counter(&db));
}

/// The chains in `dir`, as `backup list --chains --json` gives them.
fn chains(w: &Path, dir: &Path) -> Vec<serde_json::Value> {
    let o = run(
        sqlseal(
            &[
                "backup",
                "list",
                "--dir",
                p(dir),
                "--chains",
                "--key",
                "server.pem",
                "--json",
            ],
            w,
        ),
        LIMIT,
    );
    let chains: serde_json::Value =
        serde_json::from_str(&o.expect_success("list --chains")).expect("json");
    chains.as_array().expect("array").clone()
}

#[test]
fn a_chain_whose_increments_outgrow_increment_max_percent_ends_with_a_full_backup() {
    let (work, dir) = workdir(
        "  Frequency: 1h\n  IncrementFrequency: 1s\n  IncrementMaxPercent: 10\n  Keys: [server.pem]\n",
    );
    let w = work.path();
    let db = w.join("app.db");
    let daemon = start_daemon(w, "start");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 1),
        "the first full backup: {}",
        daemon.stderr()
    );
    // A small change: an increment well within 10 % of the full backup.
    let commit = |sql: &str| {
        Connection::open(&db)
            .expect("open")
            .execute_batch(sql)
            .expect("commit")
    };
    commit("UPDATE t SET payload = randomblob(200) WHERE id <= 20; UPDATE counter SET n = n + 1;");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 2),
        "a small increment: {}",
        daemon.stderr()
    );
    // A change of about a third of the rows: the increment is made (the
    // chain was within bounds), and puts the chain over 10 %.
    commit(
        "UPDATE t SET payload = randomblob(200) WHERE id % 3 = 0; UPDATE counter SET n = n + 1;",
    );
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 3),
        "a large increment: {}",
        daemon.stderr()
    );
    let before = chains(w, &dir);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["increments"].as_u64(), Some(2), "{before:?}");
    // The next change starts a new chain with a full backup.
    commit("UPDATE t SET payload = randomblob(200) WHERE id <= 20; UPDATE counter SET n = n + 1;");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 4),
        "the next backup: {}",
        daemon.stderr()
    );
    let after = chains(w, &dir);
    assert_eq!(after.len(), 2, "a new chain: {after:?}");
    assert!(
        daemon.stderr().contains("Backup.IncrementMaxPercent"),
        "{}",
        daemon.stderr()
    );
    // And that chain continues with increments.
    commit("UPDATE t SET payload = randomblob(200) WHERE id <= 20; UPDATE counter SET n = n + 1;");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 5),
        "an increment of the new chain: {}",
        daemon.stderr()
    );
    assert_eq!(chains(w, &dir).len(), 2);
    // A large increment puts that chain over the bound too; after a
    // restart the chain's size comes from the listing, and the next
    // change starts a third chain.
    commit(
        "UPDATE t SET payload = randomblob(200) WHERE id % 3 = 1; UPDATE counter SET n = n + 1;",
    );
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 6),
        "a large increment of the new chain: {}",
        daemon.stderr()
    );
    stop_daemon(daemon);
    assert_eq!(chains(w, &dir).len(), 2);
    let daemon = start_daemon(w, "restart");
    commit("UPDATE t SET payload = randomblob(200) WHERE id <= 20; UPDATE counter SET n = n + 1;");
    assert!(
        wait_until(LIMIT, || backups(&dir).len() == 7),
        "the backup after the restart: {}",
        daemon.stderr()
    );
    assert_eq!(chains(w, &dir).len(), 3, "a third chain");
    assert!(
        daemon
            .stderr()
            .contains("continuing the chain of the last run")
            && daemon.stderr().contains("Backup.IncrementMaxPercent"),
        "{}",
        daemon.stderr()
    );
    stop_daemon(daemon);
}
