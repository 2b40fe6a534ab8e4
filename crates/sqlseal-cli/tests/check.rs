//! `--check` on the real binary: what `backup create` records, that a
//! damaged database is refused in one line and leaves the directory as it
//! was, what restore and verify say about the check (text and `--json`),
//! a bad value, and Ctrl-C while the check runs.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Proc, create_args, keygen, p, sqlseal};
use sqlseal_testkit::{damage_index, indexed_db};

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    backups: PathBuf,
}

/// A WAL database with an indexed table, checkpointed and closed, and a key.
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    indexed_db(&db, 3000);
    keygen(dir.path(), "k.pem");
    Setup {
        backups: dir.path().join("backups"),
        db,
        dir,
    }
}

/// Exit code, stdout, stderr.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Proc::spawn(sqlseal(args, dir)).wait(Duration::from_secs(120));
    (out.code(&args.join(" ")), out.stdout, out.stderr)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn stored(s: &Setup) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(&s.backups) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn create(s: &Setup, extra: &[&str]) -> (i32, String, String) {
    let mut args = create_args("app.db", "backups", "k.pem", &["--json"]);
    args.extend_from_slice(extra);
    run(s.dir.path(), &args)
}

#[test]
fn create_records_full_by_default_and_quick_or_none_when_asked() {
    let s = setup();
    for (extra, recorded) in [
        (&[][..], "full"),
        (&["--check", "quick"][..], "quick"),
        (&["--check", "none"][..], "none"),
        (&["--check", "full"][..], "full"),
    ] {
        let (code, out, err) = create(&s, extra);
        assert_eq!(code, 0, "{err}");
        let made = json(&out);
        assert_eq!(made["check"], recorded, "{extra:?}");
        // Read back from the seal by verify.
        let (code, out, err) = run(
            s.dir.path(),
            &[
                "backup",
                "verify",
                made["path"].as_str().expect("path"),
                "--key",
                "k.pem",
                "--json",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["integrity_check"]["recorded"], recorded);
    }
}

#[test]
fn a_damaged_database_is_refused_in_one_line_and_nothing_is_written() {
    let s = setup();
    let (code, _, err) = create(&s, &[]);
    assert_eq!(code, 0, "{err}");
    let before = stored(&s);
    damage_index(&s.db);
    for extra in [&[][..], &["--check", "quick"][..]] {
        let (code, out, err) = create(&s, extra);
        assert_eq!(code, 1, "{extra:?}: {out} {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        let line = lines[0];
        assert!(line.starts_with("error: database app.db fails "), "{line}");
        assert!(
            line.contains("page 3"),
            "the first problem SQLite reports: {line}"
        );
        assert!(line.contains("--check none"), "{line}");
        assert_eq!(json(&out)["ok"], false);
        assert_eq!(stored(&s), before, "no new file, no temporary file left");
    }
    // Backed up as it is when told so; then checked (and refused) at restore.
    let (code, out, err) = create(&s, &["--check", "none"]);
    assert_eq!(code, 0, "{err}");
    let made = json(&out);
    assert_eq!(made["check"], "none");
    let backup = made["path"].as_str().expect("path").to_owned();
    let (code, _, err) = run(
        s.dir.path(),
        &[
            "backup", "restore", &backup, "--key", "k.pem", "--db", "r.db",
        ],
    );
    assert_eq!(
        code, 3,
        "a backup without a recorded check is checked: {err}"
    );
    assert!(err.contains("fails integrity_check"), "{err}");
    assert!(!s.dir.path().join("r.db").exists());
    let (code, out, err) = run(
        s.dir.path(),
        &[
            "backup", "restore", &backup, "--key", "k.pem", "--db", "r.db", "--check", "none",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("integrity check: not run (--check none); recorded at backup time: none"),
        "{out}"
    );
}

#[test]
fn restore_and_verify_say_whether_the_check_ran() {
    let s = setup();
    let (code, out, err) = create(&s, &[]);
    assert_eq!(code, 0, "{err}");
    let backup = json(&out)["path"].as_str().expect("path").to_owned();
    let restore = |target: &str, extra: &[&str]| {
        let mut args = vec![
            "backup", "restore", &backup, "--key", "k.pem", "--db", target,
        ];
        args.extend_from_slice(extra);
        run(s.dir.path(), &args)
    };

    // Default: the recorded full check is not re-run, and the output says so.
    let (code, out, err) = restore("a.db", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("integrity check: recorded full check at backup time, not re-run"),
        "{out}"
    );
    let (code, out, err) = restore("b.db", &["--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["integrity_check"]["recorded"], "full");
    assert_eq!(v["integrity_check"]["ran"], "none");
    assert!(
        v["integrity_check"]["note"]
            .as_str()
            .expect("note")
            .starts_with("recorded full check at backup time, not re-run"),
        "{v}"
    );
    // --check full runs it; --check quick runs quick_check.
    let (code, out, err) = restore("c.db", &["--check", "full"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("integrity check: integrity_check ran here: ok"),
        "{out}"
    );
    let (code, out, err) = restore("d.db", &["--check", "quick", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["integrity_check"]["ran"], "quick");

    let verify = |extra: &[&str]| {
        let mut args = vec!["backup", "verify", &backup, "--key", "k.pem"];
        args.extend_from_slice(extra);
        run(s.dir.path(), &args)
    };
    let (code, out, err) = verify(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("not re-run"), "{out}");
    let (code, out, err) = verify(&["--check", "full", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["integrity_check"]["ran"], "full");
    let (code, out, err) = run(
        s.dir.path(),
        &[
            "backup", "verify", "--dir", "backups", "--all", "--key", "k.pem", "--check", "none",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)[0]["integrity_check"]["ran"], "none");

    // A backup without a recorded check is checked at restore by default.
    let (code, out, err) = create(&s, &["--check", "none"]);
    assert_eq!(code, 0, "{err}");
    let unchecked = json(&out)["path"].as_str().expect("path").to_owned();
    let (code, out, err) = run(
        s.dir.path(),
        &[
            "backup", "restore", &unchecked, "--key", "k.pem", "--db", "e.db",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "integrity check: integrity_check ran here: ok (none recorded at backup time)"
        ),
        "{out}"
    );
}

#[test]
fn a_bad_check_value_is_a_usage_error() {
    let s = setup();
    for args in [
        &create_args("app.db", "backups", "k.pem", &["--check", "bogus"])[..],
        &[
            "backup",
            "restore",
            "x.sqlseal",
            "--key",
            "k.pem",
            "--db",
            "r.db",
            "--check",
            "bogus",
        ][..],
        &[
            "backup",
            "verify",
            "x.sqlseal",
            "--key",
            "k.pem",
            "--check",
            "bogus",
        ][..],
    ] {
        let (code, _, err) = run(s.dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("invalid value 'bogus' for '--check <CHECK>'"),
            "{err}"
        );
        assert!(
            err.contains("[possible values: full, quick, none]"),
            "{err}"
        );
    }
    assert!(stored(&s).is_empty());
}

#[cfg(unix)]
#[test]
fn ctrl_c_ends_a_checked_create_within_a_second() {
    let s = setup();
    let big = s.dir.path().join("big.db");
    sqlseal_source::demo::create_demo_database(&big, 64 << 20).expect("demo db");
    for delay in [300u64, 900] {
        let child = Proc::spawn(sqlseal(
            &create_args(p(&big), "backups", "k.pem", &[]),
            s.dir.path(),
        ));
        std::thread::sleep(Duration::from_millis(delay));
        let signalled = Instant::now();
        child.signal("INT");
        let out = child.wait(Duration::from_secs(30));
        let took = signalled.elapsed();
        let code = out.code("create");
        if code == 0 {
            // It finished before the signal; nothing to measure.
            continue;
        }
        assert_eq!(code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("cancelled"), "{}", out.stderr);
        assert!(took < Duration::from_secs(1), "ended {took:?} after Ctrl-C");
        let stored = stored(&s);
        assert!(
            stored.iter().all(|n| !n.contains("big.db")),
            "nothing of the cancelled backup: {stored:?}"
        );
    }
}
