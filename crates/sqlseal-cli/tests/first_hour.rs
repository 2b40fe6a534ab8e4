//! A new user's first hour, on the real binary: restore's --force,
//! `info --dir DIR --latest` and `list`'s tab-separated fields, the usage
//! line and `verify --all`, `--json` on every command with one failure
//! object, and help that teaches (examples, repeatable flags, completions,
//! man pages that match the binary).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Outcome, corrupt_chunk, create_args, keygen, make_random_db, p, sqlseal};

const LIMIT: Duration = Duration::from_secs(120);

fn run(dir: &Path, args: &[&str]) -> Outcome {
    common::run(sqlseal(args, dir), LIMIT)
}

/// A directory whose name has a space, holding app.db, server.pem and
/// two backups in `my backups/`; returns (dir, backups, [older, newer]).
fn setup() -> (tempfile::TempDir, PathBuf, [PathBuf; 2]) {
    let dir = tempfile::Builder::new()
        .prefix("first hour ")
        .tempdir()
        .expect("tempdir");
    make_random_db(&dir.path().join("app.db"), 1, "first-hour");
    keygen(dir.path(), "server.pem");
    let backups = dir.path().join("my backups");
    let mut made = Vec::new();
    for _ in 0..2 {
        let out = run(
            dir.path(),
            &create_args("app.db", p(&backups), "server.pem", &[]),
        )
        .expect_success("backup create");
        made.push(PathBuf::from(out.trim()));
    }
    let [older, newer]: [PathBuf; 2] = made.try_into().expect("two backups");
    (dir, backups, [older, newer])
}

fn json(out: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {out}"))
}

/// Item 1: restore refuses an existing database unless --force, and
/// restores to a new file as the tour now shows.
#[test]
fn restore_to_a_new_file_and_over_an_existing_one_only_with_force() {
    let (dir, backups, _) = setup();
    let d = dir.path();
    let base = [
        "backup",
        "restore",
        "--dir",
        p(&backups),
        "--latest",
        "--key",
        "server.pem",
    ];
    let line = run(d, &[&base[..], &["--db", "app.db"]].concat()).expect_failure(
        "restore over app.db",
        1,
        LIMIT,
    );
    assert!(line.contains("--force"), "{line}");
    run(d, &[&base[..], &["--db", "restored.db"]].concat()).expect_success("restore to new file");
    assert!(d.join("restored.db").exists());
    let out = run(d, &[&base[..], &["--db", "app.db", "--force"]].concat())
        .expect_success("restore --force");
    assert!(out.contains("moved aside"), "{out}");
}

/// Item 2: `info --dir DIR --latest` (a directory with spaces), with and
/// without a key, and `list`'s tab-separated fields that `cut -f1` splits.
#[test]
fn info_latest_and_list_fields_survive_spaces() {
    let (dir, backups, [older, newer]) = setup();
    let d = dir.path();
    let out = run(d, &["backup", "list", "--dir", p(&backups)]).expect_success("list");
    let paths: Vec<&str> = out
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    assert_eq!(paths, [p(&newer), p(&older)], "{out}");
    for line in out.lines() {
        assert_eq!(line.split('\t').count(), 3, "path, created, size: {line:?}");
    }
    let out = run(
        d,
        &[
            "backup",
            "list",
            "--dir",
            p(&backups),
            "--key",
            "server.pem",
        ],
    )
    .expect_success("list --key");
    assert!(out.lines().all(|l| l.ends_with("\tverified")), "{out}");

    // With a key: the newest verified backup, authenticated.
    let out = run(
        d,
        &[
            "backup",
            "info",
            "--dir",
            p(&backups),
            "--latest",
            "--key",
            "server.pem",
            "--json",
        ],
    )
    .expect_success("info --latest --key");
    let info = json(&out, "info --latest --key");
    assert_eq!(info["path"], p(&newer), "{info}");
    assert_eq!(info["authenticated"], true, "{info}");
    // Without: the newest by stated time, and it says so.
    let out = run(d, &["backup", "info", "--dir", p(&backups), "--latest"])
        .expect_success("info --latest");
    assert!(
        out.starts_with(&format!("path:        {}\n", p(&newer))),
        "{out}"
    );
    assert!(out.contains("unauthenticated"), "{out}");
    // The explicit file still works as before.
    let out = run(d, &["backup", "info", p(&older), "--json"]).expect_success("info FILE");
    assert_eq!(json(&out, "info FILE")["authenticated"], false);
    // --dir without --latest is a usage error.
    assert_eq!(
        run(d, &["backup", "info", "--dir", p(&backups)]).code("info --dir"),
        2
    );
}

/// Item 3: the usage line reads `<BACKUP | --dir DIR --latest>`, and
/// `verify --dir DIR --all` checks each backup, exiting 3 if any fails.
#[test]
fn usage_line_and_verify_all() {
    let (dir, backups, [older, newer]) = setup();
    let d = dir.path();
    for cmd in ["verify", "restore", "info"] {
        let help = run(d, &["backup", cmd, "--help"]).expect_success("help");
        assert!(
            help.contains("<BACKUP | --dir DIR --latest"),
            "{cmd}: {help}"
        );
        assert!(
            !help.contains("<BACKUP|--dir <DIR>|--latest>"),
            "{cmd}: {help}"
        );
    }
    let o = run(
        d,
        &[
            "backup",
            "verify",
            "--dir",
            p(&backups),
            "--key",
            "server.pem",
        ],
    );
    assert_eq!(o.code("verify --dir alone"), 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("--latest") && o.stderr.contains("--all"),
        "{}",
        o.stderr
    );

    let all = [
        "backup",
        "verify",
        "--dir",
        p(&backups),
        "--all",
        "--key",
        "server.pem",
    ];
    let out = run(d, &all).expect_success("verify --all, all good");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [format!("{}\tok", p(&newer)), format!("{}\tok", p(&older))]
    );

    corrupt_chunk(&older, 0);
    let o = run(d, &all);
    let line = o.expect_failure("verify --all, one corrupt", 3, LIMIT);
    assert!(line.contains("1 of 2"), "{line}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert_eq!(lines[0], format!("{}\tok", p(&newer)));
    assert!(
        lines[1].starts_with(&format!("{}\tfailed: ", p(&older))),
        "{}",
        lines[1]
    );

    let o = run(d, &[&all[..], &["--json"]].concat());
    assert_eq!(o.code("verify --all --json"), 3);
    let rows = json(&o.stdout, "verify --all --json");
    let rows = rows.as_array().expect("an array, and nothing after it");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["ok"], true);
    assert_eq!(rows[0]["path"], p(&newer));
    assert_eq!(rows[1]["ok"], false);
    assert_eq!(rows[1]["path"], p(&older));
    assert_eq!(rows[1]["exit_code"], 3);
    // The same object that verify --json prints for that one backup.
    let o = run(
        d,
        &[
            "backup",
            "verify",
            p(&older),
            "--key",
            "server.pem",
            "--json",
        ],
    );
    assert_eq!(o.code("verify --json"), 3);
    let single = json(&o.stdout, "verify --json");
    assert_eq!(single["ok"], false);
    assert_eq!(single["path"], rows[1]["path"]);
    assert_eq!(single["error"], rows[1]["error"]);
    assert_eq!(single["exit_code"], 3);
}

/// Asserts a `--json` failure: exit `code`, the failure object on stdout
/// and the one-line error on stderr, saying the same thing.
fn json_failure(o: &Outcome, what: &str, code: i32) -> serde_json::Value {
    assert_eq!(o.code(what), code, "{what}: {}", o.stderr);
    let v = json(&o.stdout, what);
    assert_eq!(v["ok"], false, "{what}: {v}");
    assert_eq!(v["exit_code"], code, "{what}: {v}");
    let error = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: error: {v}"));
    assert!(!error.is_empty(), "{what}");
    // The same words as the `error:` line (clap's usage errors wrap theirs).
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let stderr = words(&o.stderr);
    assert!(
        stderr.contains(&format!("error: {}", words(error))),
        "{what}: stderr {stderr:?} vs {error:?}"
    );
    v
}

/// Item 4: `--json` on every command that reports a result; success is
/// JSON, and failure is `{"ok": false, "error", "exit_code"}` everywhere.
#[test]
fn every_command_takes_json_with_one_failure_object() {
    let (dir, backups, [_, newer]) = setup();
    let d = dir.path();
    let dirs = p(&backups);

    // keygen, key public, key id
    let v = json(
        &run(d, &["keygen", "-o", "k2.pem", "--json"]).expect_success("keygen"),
        "keygen",
    );
    let key_id = v["key_id"].as_str().expect("key_id").to_owned();
    assert!(
        v["public_key"]
            .as_str()
            .expect("pem")
            .contains("BEGIN PUBLIC KEY")
    );
    json_failure(
        &run(d, &["keygen", "-o", "k2.pem", "--json"]),
        "keygen over a key",
        1,
    );
    let v = json(
        &run(d, &["key", "public", "k2.pem", "--json"]).expect_success("public"),
        "public",
    );
    assert_eq!(v["key_id"], key_id.as_str());
    json_failure(
        &run(d, &["key", "public", "nothere.pem", "--json"]),
        "key public",
        1,
    );
    let v = json(
        &run(d, &["key", "id", "k2.pem", "--json"]).expect_success("id"),
        "id",
    );
    assert_eq!(v["key_id"], key_id.as_str());
    json_failure(
        &run(d, &["key", "id", "nothere.pem", "--json"]),
        "key id",
        1,
    );

    // config check, config show, status, run
    std::fs::write(
        d.join("sqlseal.yaml"),
        "Backup:\n  Location: daemon-backups\n  Keys: [server.pem]\nDatabase:\n  Paths: [app.db]\n",
    )
    .expect("config");
    let v = json(
        &run(
            d,
            &["config", "check", "--config", "sqlseal.yaml", "--json"],
        )
        .expect_success("check"),
        "config check",
    );
    assert_eq!(v["ok"], true);
    assert_eq!(v["databases"].as_array().map(Vec::len), Some(1), "{v}");
    json_failure(
        &run(d, &["config", "check", "--config", "none.yaml", "--json"]),
        "check",
        1,
    );
    let v = json(
        &run(d, &["config", "show", "--config", "sqlseal.yaml", "--json"]).expect_success("show"),
        "config show",
    );
    let rows = v.as_array().expect("array");
    let location = rows
        .iter()
        .find(|r| r["name"] == "Backup.Location")
        .expect("Location");
    assert_eq!(location["value"], "daemon-backups");
    assert_eq!(location["env"], "SQLSEAL_BACKUP_LOCATION");
    json_failure(
        &run(d, &["config", "show", "--config", "none.yaml", "--json"]),
        "show",
        1,
    );
    json_failure(
        &run(d, &["status", "--config", "sqlseal.yaml", "--json"]),
        "status",
        1,
    );
    json_failure(
        &run(d, &["run", "--config", "none.yaml", "--json"]),
        "run",
        1,
    );
    let o = run(
        d,
        &[
            "run",
            "--config",
            "none.yaml",
            "--json",
            "--log-format",
            "text",
        ],
    );
    json_failure(&o, "run --json --log-format", 2);

    // backup create, list, info, verify, restore
    let v = json(
        &run(d, &create_args("app.db", dirs, "server.pem", &["--json"])).expect_success("create"),
        "create",
    );
    assert!(v["path"].is_string(), "{v}");
    json_failure(
        &run(d, &create_args("none.db", dirs, "server.pem", &["--json"])),
        "create from a missing db",
        1,
    );
    let v = json(
        &run(d, &["backup", "list", "--dir", dirs, "--json"]).expect_success("list"),
        "list",
    );
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    json_failure(
        &run(d, &["backup", "list", "--dir", "none", "--json"]),
        "list",
        1,
    );
    json(
        &run(d, &["backup", "info", p(&newer), "--json"]).expect_success("info"),
        "info",
    );
    json_failure(
        &run(d, &["backup", "info", "none.sqlseal", "--json"]),
        "info",
        1,
    );
    let v = json(
        &run(
            d,
            &[
                "backup",
                "verify",
                p(&newer),
                "--key",
                "server.pem",
                "--json",
            ],
        )
        .expect_success("verify"),
        "verify",
    );
    assert_eq!(v["ok"], true);
    let v = json_failure(
        &run(
            d,
            &["backup", "verify", p(&newer), "--key", "k2.pem", "--json"],
        ),
        "verify with a key it was not sealed to",
        1,
    );
    assert_eq!(v["path"], p(&newer));
    let restore = [
        "backup",
        "restore",
        p(&newer),
        "--key",
        "server.pem",
        "--json",
        "--db",
    ];
    let v = json(
        &run(d, &[&restore[..], &["r.db"]].concat()).expect_success("restore"),
        "restore",
    );
    assert_eq!(v["ok"], true);
    // Failed restores used to print nothing on stdout.
    let v = json_failure(
        &run(d, &[&restore[..], &["app.db"]].concat()),
        "restore over app.db",
        1,
    );
    assert_eq!(v["path"], p(&newer));
    assert!(v["error"].as_str().unwrap_or("").contains("--force"), "{v}");

    // A usage error with --json: the same object, exit 2.
    json_failure(
        &run(d, &["backup", "list", "--json"]),
        "list without --dir",
        2,
    );
}

/// Item 5: examples in every long help, repeatable flags said so,
/// completions for three shells, and the committed man pages match the binary.
#[test]
fn help_teaches_completions_and_man_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let commands: &[&[&str]] = &[
        &["keygen"],
        &["key"],
        &["key", "public"],
        &["key", "id"],
        &["backup"],
        &["backup", "create"],
        &["backup", "list"],
        &["backup", "info"],
        &["backup", "verify"],
        &["backup", "restore"],
        &["run"],
        &["config"],
        &["config", "check"],
        &["config", "show"],
        &["status"],
        &["demo"],
        &["completions"],
    ];
    for cmd in commands {
        let help = run(d, &[*cmd, &["--help"]].concat()).expect_success("help");
        let examples = help.split_once("Examples:").map(|(_, e)| e).unwrap_or("");
        assert!(
            examples.contains(&format!("sqlseal {}", cmd[0])),
            "{cmd:?} --help has no examples:\n{help}"
        );
    }
    for (cmd, flags) in [
        ("create", &["--key", "--recipient"][..]),
        ("list", &["--key", "--trust"]),
        ("info", &["--key", "--trust"]),
        ("verify", &["--key", "--trust"]),
        ("restore", &["--key", "--trust"]),
    ] {
        let help = run(d, &["backup", cmd, "--help"]).expect_success("help");
        for flag in flags {
            let doc = help
                .split_once(&format!("      {flag} <"))
                .map(|(_, rest)| rest.split("\n      -").next().unwrap_or(""))
                .unwrap_or_else(|| panic!("{cmd} --help has no {flag}:\n{help}"));
            assert!(
                doc.contains("Repeat"),
                "{cmd} {flag} does not say it repeats: {doc}"
            );
        }
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = run(d, &["completions", shell]).expect_success(shell);
        assert!(
            script.contains("sqlseal") && script.contains("restore"),
            "{shell}"
        );
    }
    assert_eq!(run(d, &["completions", "tcsh"]).code("completions tcsh"), 2);

    // The committed man pages are what this binary renders (else run `cargo xtask man`).
    let out = d.join("man");
    run(d, &["man", "--out", p(&out)]).expect_success("man");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man");
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("man dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".1"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&out),
        names(&committed),
        "docs/man is stale: run `cargo xtask man`"
    );
    for name in names(&out) {
        let fresh = std::fs::read_to_string(out.join(&name)).expect("page");
        assert_eq!(
            std::fs::read_to_string(committed.join(&name)).expect("committed page"),
            fresh,
            "docs/man/{name} is stale: run `cargo xtask man`"
        );
        if name == "sqlseal-backup-verify.1" {
            assert!(
                fresh.contains("Examples:") && fresh.contains("\\-\\-all"),
                "{fresh}"
            );
        }
    }
}
