//! `backup list --key` authenticates each header, and `--latest` picks the
//! newest backup whose header authenticates, never a planted one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;
use sqlseal_testkit::{PLANTED, bin, keygen, p, stderr, stdout};

use common::create_args;

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("runs")
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// A copy of a genuine backup claiming to be from 2999, with a junk signature.
fn plant_future(genuine: &Path) -> PathBuf {
    let path = genuine.with_file_name(PLANTED);
    sqlseal_testkit::plant_future(genuine, &path);
    path
}

#[test]
fn list_marks_a_planted_header_refused_and_latest_skips_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    Connection::open(&db)
        .expect("open")
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
        .expect("schema");
    let key = keygen(dir.path(), "server.pem");
    let backups = dir.path().join("backups");
    let create = || {
        let o = run(&create_args(p(&db), p(&backups), p(&key), &[]));
        ok(&o);
        PathBuf::from(stdout(&o).trim())
    };
    let first = create();
    let second = create();
    let planted = plant_future(&first);

    // Without keys: stdout keeps its format; stderr says times are unauthenticated.
    let o = run(&["backup", "list", "--dir", p(&backups)]);
    ok(&o);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(p(&planted)),
        "stated time sorts first: {lines:?}"
    );
    assert_eq!(
        lines[0].split('\t').count(),
        3,
        "path, created, size: {lines:?}"
    );
    assert!(stderr(&o).contains("unauthenticated"), "{}", stderr(&o));
    let o = run(&["backup", "list", "--dir", p(&backups), "--json"]);
    ok(&o);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["authenticated"] == false), "{rows:?}");

    // With the key: each line says verified or refused, and why.
    let o = run(&["backup", "list", "--dir", p(&backups), "--key", p(&key)]);
    ok(&o);
    let text = stdout(&o);
    let line_of = |path: &Path| {
        text.lines()
            .find(|l| l.starts_with(p(path)))
            .unwrap_or_else(|| panic!("{} not listed: {text}", path.display()))
            .to_owned()
    };
    let refused = line_of(&planted);
    assert!(
        refused.contains("refused: ") && refused.contains("signature"),
        "{refused}"
    );
    for genuine in [&first, &second] {
        assert!(line_of(genuine).ends_with("\tverified"), "{text}");
    }
    let o = run(&[
        "backup",
        "list",
        "--dir",
        p(&backups),
        "--key",
        p(&key),
        "--json",
    ]);
    ok(&o);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for row in rows.as_array().expect("array") {
        let is_planted = row["path"] == p(&planted);
        assert_eq!(row["authenticated"], !is_planted, "{row}");
        assert_eq!(
            row["check"],
            if is_planted { "refused" } else { "verified" }
        );
        assert_eq!(row["refused"].is_string(), is_planted, "{row}");
        assert!(row["created"].is_string(), "existing fields kept: {row}");
    }

    // --latest is the newest authenticated backup, not the planted one.
    let o = run(&[
        "backup",
        "verify",
        "--dir",
        p(&backups),
        "--latest",
        "--key",
        p(&key),
    ]);
    ok(&o);
    assert!(stdout(&o).contains(p(&second)), "{}", stdout(&o));
    let target = dir.path().join("restored.db");
    let o = run(&[
        "backup",
        "restore",
        "--dir",
        p(&backups),
        "--latest",
        "--key",
        p(&key),
        "--db",
        p(&target),
    ]);
    ok(&o);
    assert!(stdout(&o).contains(p(&second)), "{}", stdout(&o));
    assert!(planted.exists());
}
