//! The real `sqlseal` binary against a real S3 server (s3s-fs on the
//! loopback interface): `backup create|list|info|verify|restore` with
//! `s3://` locations, and the errors an operator meets.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use sqlseal_testkit::s3s::{self, BUCKET, S3Server};
use sqlseal_testkit::{add_rows, bin, keygen, p, rows as count, stderr, stdout};

use common::{create_args, one_line_error};

/// The binary with the server's settings in `SQLSEAL_S3_*` and no `AWS_*`
/// variables from the machine.
fn sqlseal(server: &S3Server) -> Command {
    let mut cmd = Command::new(bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(name);
        }
    }
    for (name, value) in server.env() {
        cmd.env(name, value);
    }
    cmd
}

fn run(server: &S3Server, args: &[&str]) -> Output {
    sqlseal(server).args(args).output().expect("runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    add_rows(&db, 50_000, 80);
    let key = keygen(dir.path(), "server.pem");
    Setup { dir, db, key }
}

#[test]
fn backup_commands_work_on_s3_locations() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let s = setup();
    let location = server.url("prod/app.db");

    let out = ok(&run(
        &server,
        &create_args(p(&s.db), &location, p(&s.key), &[]),
    ));
    let first = out.trim().to_owned();
    assert!(
        first.starts_with(&format!("{location}/app.db-")) && first.ends_with(".sqlseal"),
        "prints the object URL: {first}"
    );
    let name = first.rsplit('/').next().expect("a name");
    let object = server.root().join(BUCKET).join("prod/app.db").join(name);
    assert!(object.is_file(), "stored as {}", object.display());
    assert!(
        std::fs::read_dir(s.dir.path()).expect("dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with(".sqlseal")),
        "no snapshot temp files left beside the database"
    );

    // A second backup, after more rows, is the newest.
    add_rows(&s.db, 1_000, 80);
    let second = ok(&run(
        &server,
        &create_args(p(&s.db), &location, p(&s.key), &["--json"]),
    ));
    let created: serde_json::Value = serde_json::from_str(&second).expect("json");
    let second = created["path"].as_str().expect("path").to_owned();
    assert!(second.starts_with(&location), "{second}");
    assert_ne!(first, second);

    let listed = ok(&run(&server, &["backup", "list", "--dir", &location]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&format!("{second}\t")),
        "newest first: {listed}"
    );
    assert!(lines[1].starts_with(&format!("{first}\t")), "{listed}");
    let listed = ok(&run(
        &server,
        &["backup", "list", "--dir", &location, "--json"],
    ));
    let rows: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(rows[0]["path"], second.as_str());
    assert_eq!(
        rows[1]["size"].as_u64(),
        Some(std::fs::metadata(&object).expect("object").len())
    );

    let info = ok(&run(&server, &["backup", "info", &first, "--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["database"], "app.db");
    assert_eq!(info["path"], first.as_str());
    assert_eq!(
        info["size"].as_u64(),
        Some(std::fs::metadata(&object).expect("object").len())
    );

    let verified = ok(&run(
        &server,
        &[
            "backup",
            "verify",
            "--dir",
            &location,
            "--latest",
            "--key",
            p(&s.key),
        ],
    ));
    assert!(
        verified.starts_with(&format!("ok: {second} (")),
        "{verified}"
    );
    let verified = ok(&run(
        &server,
        &["backup", "verify", &first, "--key", p(&s.key)],
    ));
    assert!(
        verified.starts_with(&format!("ok: {first} (")),
        "{verified}"
    );

    let target = s.dir.path().join("restored.db");
    let restored = ok(&run(
        &server,
        &[
            "backup",
            "restore",
            "--dir",
            &location,
            "--latest",
            "--key",
            p(&s.key),
            "--db",
            p(&target),
        ],
    ));
    assert!(
        restored.starts_with(&format!("restored {second} to {}", target.display())),
        "{restored}"
    );
    assert_eq!(count(&target), 51_000);
    let older = s.dir.path().join("older.db");
    ok(&run(
        &server,
        &[
            "backup",
            "restore",
            &first,
            "--key",
            p(&s.key),
            "--db",
            p(&older),
        ],
    ));
    assert_eq!(count(&older), 50_000);
}

#[test]
fn s3_errors_are_one_clear_line() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let s = setup();
    let location = server.url("app");
    ok(&run(
        &server,
        &create_args(p(&s.db), &location, p(&s.key), &[]),
    ));

    // Wrong credentials: refused, named, and the secret never shown.
    let out = sqlseal(&server)
        .env("SQLSEAL_S3_SECRETACCESSKEY", "wrong-secret-value")
        .args(["backup", "list", "--dir", &location])
        .output()
        .expect("runs");
    let line = one_line_error(&out);
    assert!(
        line.contains("access denied; check S3.AccessKeyId"),
        "{line}"
    );
    assert!(
        !line.contains("wrong-secret-value") && !line.contains(s3s::SECRET_KEY),
        "{line}"
    );

    // Credentials from the AWS variables work when the parameters are unset.
    let out = sqlseal(&server)
        .env_remove("SQLSEAL_S3_ACCESSKEYID")
        .env_remove("SQLSEAL_S3_SECRETACCESSKEY")
        .env("AWS_ACCESS_KEY_ID", s3s::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3s::SECRET_KEY)
        .args(["backup", "list", "--dir", &location])
        .output()
        .expect("runs");
    assert_eq!(ok(&out).lines().count(), 1);

    let line = one_line_error(&run(
        &server,
        &["backup", "list", "--dir", "s3://no-such-bucket/app"],
    ));
    assert_eq!(
        line,
        "error: bucket no-such-bucket does not exist (s3://no-such-bucket/app); \
         create it, or check S3.Endpoint"
    );
    let line = one_line_error(&run(
        &server,
        &create_args(p(&s.db), "s3://no-such-bucket/app", p(&s.key), &[]),
    ));
    assert!(
        line.contains("bucket no-such-bucket does not exist"),
        "{line}"
    );

    let missing = format!("{location}/app.db-20260101T000000.000000Z-000000.sqlseal");
    let line = one_line_error(&run(
        &server,
        &["backup", "verify", &missing, "--key", p(&s.key)],
    ));
    assert!(line.contains("not found in s3://backups/app"), "{line}");
    let line = one_line_error(&run(&server, &["backup", "info", "s3://backups"]));
    assert!(line.contains("names no backup"), "{line}");
    let line = one_line_error(&run(&server, &["backup", "list", "--dir", "s3://x"]));
    assert!(
        line.starts_with("error: invalid backup location `s3://x`"),
        "{line}"
    );
    let line = one_line_error(&run(
        &server,
        &["backup", "list", "--dir", "ftp://host/dir"],
    ));
    assert!(line.contains("unsupported scheme ftp://"), "{line}");
    let line = one_line_error(&run(
        &server,
        &[
            "backup",
            "verify",
            "--dir",
            &server.url("empty"),
            "--latest",
            "--key",
            p(&s.key),
        ],
    ));
    assert_eq!(
        line,
        format!("error: no backups in {}", server.url("empty"))
    );

    let out = sqlseal(&server)
        .env("SQLSEAL_S3_PATHSTYLE", "maybe")
        .args(["backup", "list", "--dir", &location])
        .output()
        .expect("runs");
    let line = one_line_error(&out);
    assert!(
        line.starts_with("error: SQLSEAL_S3_PATHSTYLE (S3.PathStyle): "),
        "{line}"
    );

    // A server that is not there: a clear error once retries are spent.
    let mut server = server;
    server.stop();
    let line = one_line_error(&run(&server, &["backup", "list", "--dir", &location]));
    assert!(
        line.starts_with(&format!("error: listing {location}: ")),
        "{line}"
    );
}
