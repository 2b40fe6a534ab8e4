//! The real `sqlseal` binary: every command, every bad input the issue
//! lists, exit codes, one-line errors, and each snapshot method while
//! another process keeps writing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rusqlite::Connection;
use sqlseal_testkit::{Writer, add_rows, bin, keygen, p, stderr, stdout};

use common::create_args;

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("runs")
}

/// Exit code `code` and, on failure, exactly one `error: ...` line and no panic.
fn expect_exit(o: &Output, code: i32) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(o)
    );
    assert!(!err.contains("panicked"), "{err}");
    if code != 0 && code != 2 {
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(lines[0].starts_with("error: "), "{err}");
    }
}

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
    backups: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    add_rows(&db, 3000, 0);
    // The writer bumps the counter with each row it adds.
    Connection::open(&db)
        .expect("open")
        .execute_batch(
            "CREATE TABLE counter(n INTEGER); INSERT INTO counter SELECT count(*) FROM t;",
        )
        .expect("counter");
    let key = keygen(dir.path(), "server.pem");
    let backups = dir.path().join("backups");
    Setup {
        db,
        key,
        backups,
        dir,
    }
}

fn create(s: &Setup, extra: &[&str]) -> PathBuf {
    let o = run(&create_args(p(&s.db), p(&s.backups), p(&s.key), extra));
    expect_exit(&o, 0);
    assert_eq!(
        stderr(&o),
        "",
        "no progress bar when stderr is not a terminal"
    );
    PathBuf::from(stdout(&o).trim())
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect("query")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn keygen_and_key_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k.pem");
    let o = run(&["keygen", "-o", p(&key)]);
    expect_exit(&o, 0);
    let out = stdout(&o);
    let id = out
        .lines()
        .next()
        .expect("id line")
        .strip_prefix("key id: ")
        .expect("prefix")
        .to_owned();
    assert_eq!(id.len(), 16);
    assert!(out.contains("-----BEGIN PUBLIC KEY-----"));
    assert!(
        std::fs::read_to_string(&key)
            .expect("key")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);

    let again = run(&["keygen", "-o", p(&key)]);
    expect_exit(&again, 1);
    assert!(stderr(&again).contains("refusing to overwrite"));

    let public = run(&["key", "public", p(&key)]);
    expect_exit(&public, 0);
    assert!(
        out.contains(&stdout(&public)),
        "keygen printed the same public key"
    );
    let pubfile = dir.path().join("k.pub.pem");
    std::fs::write(&pubfile, stdout(&public)).expect("write pub");
    for file in [&key, &pubfile] {
        let o = run(&["key", "id", p(file)]);
        expect_exit(&o, 0);
        assert_eq!(stdout(&o).trim(), id);
    }
    let o = run(&["key", "public", p(&pubfile)]);
    expect_exit(&o, 1);
    assert!(
        stderr(&o).contains("private key is needed"),
        "{}",
        stderr(&o)
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").expect("write");
    let o = run(&["key", "id", p(&garbage)]);
    expect_exit(&o, 1);
    assert!(stderr(&o).contains("garbage.pem"));
}

#[test]
fn create_list_info_verify_restore() {
    let s = setup();
    let first = create(&s, &[]);
    assert!(first.exists());
    assert!(
        first
            .file_name()
            .expect("name")
            .to_string_lossy()
            .starts_with("app.db-")
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&first), 0o600);
        assert_eq!(mode(&s.backups), 0o700);
    }
    let o = run(&create_args(
        p(&s.db),
        p(&s.backups),
        p(&s.key),
        &["--json", "--method", "vacuum"],
    ));
    expect_exit(&o, 0);
    let created: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for field in [
        "path",
        "created",
        "size",
        "db_bytes",
        "method",
        "recipients",
        "signer",
        "seconds",
    ] {
        assert!(created.get(field).is_some(), "missing {field}: {created}");
    }
    assert_eq!(created["method"], "vacuum");
    let second = PathBuf::from(created["path"].as_str().expect("path"));

    let o = run(&["backup", "list", "--dir", p(&s.backups)]);
    expect_exit(&o, 0);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(p(&second)), "newest first: {lines:?}");
    assert!(lines[1].starts_with(p(&first)));
    let o = run(&["backup", "list", "--dir", p(&s.backups), "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(listed.as_array().expect("array").len(), 2);
    assert_eq!(listed[0]["path"], created["path"]);

    let o = run(&["backup", "info", p(&first)]);
    expect_exit(&o, 0);
    let info = stdout(&o);
    assert!(
        info.contains("database:    app.db") && info.contains("method:      dbpage"),
        "{info}"
    );
    let o = run(&["backup", "info", p(&first), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(info["database"], "app.db");
    assert_eq!(info["recipients"].as_array().expect("array").len(), 1);

    let o = run(&["backup", "verify", p(&first), "--key", p(&s.key)]);
    expect_exit(&o, 0);
    assert!(stdout(&o).starts_with("ok: "));
    let o = run(&[
        "backup",
        "verify",
        "--dir",
        p(&s.backups),
        "--latest",
        "--key",
        p(&s.key),
        "--json",
    ]);
    expect_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(v["path"], created["path"]);

    let target = s.dir.path().join("restored.db");
    let o = run(&[
        "backup",
        "restore",
        "--dir",
        p(&s.backups),
        "--latest",
        "--key",
        p(&s.key),
        "--db",
        p(&target),
    ]);
    expect_exit(&o, 0);
    assert_eq!(count(&target, "SELECT count(*) FROM t"), 3000);
    #[cfg(unix)]
    assert_eq!(mode(&target), 0o600);

    // Existing target: refused without --force, moved aside with it.
    let o = run(&[
        "backup",
        "restore",
        p(&first),
        "--key",
        p(&s.key),
        "--db",
        p(&target),
    ]);
    expect_exit(&o, 1);
    assert!(stderr(&o).contains("--force"));
    let o = run(&[
        "backup",
        "restore",
        p(&first),
        "--key",
        p(&s.key),
        "--db",
        p(&target),
        "--force",
    ]);
    expect_exit(&o, 0);
    let aside: Vec<String> = entries(s.dir.path())
        .into_iter()
        .filter(|n| n.starts_with("restored.db.pre-restore."))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(stdout(&o).contains("moved aside"));
}

#[test]
fn extra_recipient_and_trust() {
    let s = setup();
    let offline = s.dir.path().join("offline.pem");
    expect_exit(&run(&["keygen", "-o", p(&offline)]), 0);
    let offline_pub = s.dir.path().join("offline.pub.pem");
    std::fs::write(&offline_pub, stdout(&run(&["key", "public", p(&offline)]))).expect("pub");
    let server_pub = s.dir.path().join("server.pub.pem");
    std::fs::write(&server_pub, stdout(&run(&["key", "public", p(&s.key)]))).expect("pub");
    let backup = create(&s, &["--recipient", p(&offline_pub)]);

    // The offline key opens it but does not trust the server's signature on its own.
    let o = run(&["backup", "verify", p(&backup), "--key", p(&offline)]);
    expect_exit(&o, 3);
    let server_id = stdout(&run(&["key", "id", p(&s.key)])).trim().to_owned();
    assert!(
        stderr(&o).contains(&server_id),
        "names the signer: {}",
        stderr(&o)
    );
    let o = run(&[
        "backup",
        "verify",
        p(&backup),
        "--key",
        p(&offline),
        "--trust",
        p(&server_pub),
    ]);
    expect_exit(&o, 0);
}

#[test]
fn bad_inputs() {
    let s = setup();
    let backup = create(&s, &[]);
    let d = s.dir.path();

    // A database that does not exist: clear error, nothing created.
    let empty_dir = d.join("none");
    let o = run(&create_args(
        p(&d.join("missing.db")),
        p(&empty_dir),
        p(&s.key),
        &[],
    ));
    expect_exit(&o, 1);
    assert!(
        stderr(&o).contains("missing.db") && stderr(&o).contains("no such file"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("missing.db").exists());
    assert!(entries(&empty_dir).is_empty());

    // Not SQLite.
    let text = d.join("notes.txt");
    std::fs::write(&text, "plain text, not a database ".repeat(100)).expect("write");
    let o = run(&create_args(p(&text), p(&empty_dir), p(&s.key), &[]));
    expect_exit(&o, 1);
    assert!(
        stderr(&o).contains("not an SQLite database"),
        "{}",
        stderr(&o)
    );
    assert!(entries(&empty_dir).is_empty(), "no backup file left");

    // Bad key file.
    let o = run(&create_args(p(&s.db), p(&empty_dir), p(&text), &[]));
    expect_exit(&o, 1);
    assert!(stderr(&o).contains("notes.txt"));

    // Usage errors exit 2.
    let o = run(&create_args(
        p(&s.db),
        p(&empty_dir),
        p(&s.key),
        &["--method", "copy"],
    ));
    expect_exit(&o, 2);
    expect_exit(
        &run(&[
            "backup",
            "verify",
            "--dir",
            p(&s.backups),
            "--key",
            p(&s.key),
        ]),
        2,
    );
    expect_exit(
        &run(&["backup", "restore", p(&backup), "--key", p(&s.key)]),
        2,
    );
    expect_exit(&run(&["frobnicate"]), 2);

    // Wrong key: an error, but not an integrity failure.
    let other = d.join("other.pem");
    expect_exit(&run(&["keygen", "-o", p(&other)]), 0);
    let o = run(&["backup", "verify", p(&backup), "--key", p(&other)]);
    expect_exit(&o, 1);
    assert!(
        stderr(&o).contains("none of the given keys"),
        "{}",
        stderr(&o)
    );

    // A flipped byte, a truncated copy, a file that is not a backup: exit 3.
    let bytes = std::fs::read(&backup).expect("read");
    let mut flipped = bytes.clone();
    let at = flipped.len() - 200;
    flipped[at] ^= 0x04;
    let flipped_path = s.backups.join("flipped.sqlseal");
    std::fs::write(&flipped_path, &flipped).expect("write");
    let o = run(&["backup", "verify", p(&flipped_path), "--key", p(&s.key)]);
    expect_exit(&o, 3);
    assert!(
        stderr(&o).contains("failed authentication"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "backup",
        "verify",
        p(&flipped_path),
        "--key",
        p(&s.key),
        "--json",
    ]);
    expect_exit(&o, 3);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    let truncated = s.backups.join("truncated.sqlseal");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).expect("write");
    expect_exit(
        &run(&["backup", "verify", p(&truncated), "--key", p(&s.key)]),
        3,
    );
    let o = run(&["backup", "info", p(&s.db)]);
    expect_exit(&o, 3);
    assert!(stderr(&o).contains("not a sqlseal backup"));
    expect_exit(&run(&["backup", "info", p(&d.join("nope.sqlseal"))]), 1);

    // A corrupted restore leaves no target and no temporary file.
    let before = entries(d);
    let target = d.join("fresh.db");
    let o = run(&[
        "backup",
        "restore",
        p(&flipped_path),
        "--key",
        p(&s.key),
        "--db",
        p(&target),
    ]);
    expect_exit(&o, 3);
    assert!(!target.exists());
    assert_eq!(entries(d), before);

    // --latest on a directory with no backups.
    std::fs::create_dir(d.join("emptyb")).expect("mkdir");
    let o = run(&[
        "backup",
        "verify",
        "--dir",
        p(&d.join("emptyb")),
        "--latest",
        "--key",
        p(&s.key),
    ]);
    expect_exit(&o, 1);
    assert!(stderr(&o).contains("no backups"));
}

/// A writer in this process commits continuously while the `sqlseal`
/// process backs the database up with each method.
#[test]
fn every_method_under_a_concurrent_writer() {
    let s = setup();
    let writer = Writer::start(
        &s.db,
        "BEGIN IMMEDIATE; INSERT INTO t(v) VALUES ('live'); UPDATE counter SET n = n + 1; COMMIT;",
        Duration::from_micros(500),
    );
    writer.wait_for_commits(1);
    for method in ["dbpage", "backup-api", "vacuum"] {
        let backup = create(&s, &["--method", method]);
        let before = writer.commits();
        // The writer is neither stuck nor dead after the backup: it goes
        // on committing (a failed commit ends its thread).
        writer.wait_for_commits(before + 3);
        let target = s.dir.path().join(format!("restored-{method}.db"));
        let o = run(&[
            "backup",
            "restore",
            p(&backup),
            "--key",
            p(&s.key),
            "--db",
            p(&target),
        ]);
        expect_exit(&o, 0);
        let rows = count(&target, "SELECT count(*) FROM t");
        assert_eq!(
            rows,
            count(&target, "SELECT n FROM counter"),
            "{method}: one instant"
        );
        assert!(rows > 3000, "{method}: includes live commits");
    }
    // Joining the writer re-raises a commit that failed during a backup.
    writer.stop();
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    let o = run(&["demo", p(&demo), "--size-mib", "4"]);
    expect_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("verify    ok"), "{out}");
    assert!(out.contains("one consistent instant"), "{out}");
    assert!(demo.join("restored.db").exists());
    // A second run into the same directory is refused, not mixed in.
    expect_exit(&run(&["demo", p(&demo)]), 1);
}
