//! The real `sqlseal` binary on its failure paths, with streams much
//! longer than the pipeline's queues: a corrupted chunk early in the
//! stream, SIGTERM and SIGINT mid-operation, a full disk, and auto-restore
//! meeting a corrupted newest backup. Each must end within seconds, with
//! one `error:` line, and leave no temporary file and no half-made result.
//! Every child runs under a deadline and is killed when it passes it, so a
//! hang fails the test with a message instead of hanging the suite.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Proc, corrupt_at, corrupt_chunk, create_args, entries, frames, keygen, leftovers, listed,
    make_random_db, p, run, sqlseal, temp_size, wait_until,
};

/// Plaintext bytes per chunk: small, so that a few MiB give 100+ chunks.
const CHUNK: &str = "65536";
/// How long a failing verify or restore may take in a debug build.
const FAIL_FAST: Duration = Duration::from_secs(20);
/// How long an operation may take to stop after SIGTERM or SIGINT.
const SIGNAL_LIMIT: Duration = Duration::from_secs(5);
/// Generous limit for operations that are expected to succeed.
const SLOW: Duration = Duration::from_secs(120);

/// A database, a key, a backup directory and a private TMPDIR for the
/// children, all in one temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
    backups: PathBuf,
    tmp: PathBuf,
}

impl Fixture {
    fn new(mib: u64) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        make_random_db(&db, mib, "first");
        let key = keygen(dir.path(), "server.pem");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("tmp");
        Fixture {
            backups: dir.path().join("backups"),
            dir,
            db,
            key,
            tmp,
        }
    }

    /// `sqlseal ARGS` with TMPDIR set to the private temp directory.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = sqlseal(args, self.dir.path());
        cmd.env("TMPDIR", &self.tmp);
        cmd
    }

    fn create_args(&self) -> Vec<&str> {
        create_args(
            p(&self.db),
            p(&self.backups),
            p(&self.key),
            &["--chunk-size", CHUNK],
        )
    }

    fn create(&self) -> PathBuf {
        let out = run(self.cmd(&self.create_args()), SLOW).expect_success("backup create");
        PathBuf::from(out.trim())
    }

    fn list(&self) -> Vec<(PathBuf, bool)> {
        let o = run(
            self.cmd(&["backup", "list", "--dir", p(&self.backups), "--json"]),
            SLOW,
        );
        listed(&o.expect_success("backup list"))
    }

    fn verify_cmd(&self, backup: &Path) -> Command {
        self.cmd(&["backup", "verify", p(backup), "--key", p(&self.key)])
    }

    fn restore_cmd(&self, backup: &Path, target: &Path) -> Command {
        self.cmd(&[
            "backup",
            "restore",
            p(backup),
            "--key",
            p(&self.key),
            "--db",
            p(target),
        ])
    }

    /// A directory `name` for restore targets.
    fn subdir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).expect("subdir");
        d
    }

    fn assert_tmp_empty(&self, what: &str) {
        assert_eq!(
            entries(&self.tmp),
            Vec::<String>::new(),
            "{what}: TMPDIR left non-empty"
        );
    }
}

fn assert_no_leftovers(what: &str, dirs: &[&Path]) {
    let left = leftovers(dirs);
    assert!(left.is_empty(), "{what}: temporary files left: {left:?}");
}

/// Corruption in chunk 1 (the second frame) and at 10% of a backup of
/// 100+ chunks: verify and restore each exit 3 within seconds, with one
/// error line naming the chunk, and leave no temporary file and no target.
#[test]
fn corruption_early_in_a_long_stream_fails_fast_and_cleans_up() {
    let f = Fixture::new(8);
    let pristine = f.create();
    let bytes = std::fs::read(&pristine).expect("read");
    let n = frames(&bytes).len();
    assert!(n >= 100, "the backup has 100+ chunks: {n}");

    for case in ["chunk-1", "ten-percent"] {
        let dir = f.subdir(case);
        let backup = dir.join(pristine.file_name().expect("name"));
        std::fs::copy(&pristine, &backup).expect("copy");
        let chunk = if case == "chunk-1" {
            corrupt_chunk(&backup, 1);
            1
        } else {
            corrupt_at(&backup, bytes.len() / 10)
        };
        assert!(
            chunk >= 1 && (chunk as usize) < n - 10,
            "{case}: chunk {chunk}"
        );
        let names_chunk = format!("chunk {chunk} ");

        let what = format!("verify, {case} (chunk {chunk})");
        let o = run(f.verify_cmd(&backup), FAIL_FAST);
        let line = o.expect_failure(&what, 3, FAIL_FAST);
        assert!(
            line.contains(&names_chunk),
            "{what}: names the chunk: {line}"
        );
        assert_no_leftovers(&what, &[&dir, f.dir.path()]);
        f.assert_tmp_empty(&what);

        let what = format!("restore, {case} (chunk {chunk})");
        let target_dir = f.subdir(&format!("{case}-restore"));
        let target = target_dir.join("restored.db");
        let o = run(f.restore_cmd(&backup, &target), FAIL_FAST);
        let line = o.expect_failure(&what, 3, FAIL_FAST);
        assert!(
            line.contains(&names_chunk),
            "{what}: names the chunk: {line}"
        );
        assert!(!target.exists(), "{what}: no database installed");
        assert_no_leftovers(&what, &[&target_dir, &dir, f.dir.path()]);
        f.assert_tmp_empty(&what);
    }
}

/// Starts `cmd`, waits until the temporary file whose name contains
/// `marker` in `watch` holds at least 1 MiB (the operation is mid-stream),
/// sends `signal`, and waits at most [`SIGNAL_LIMIT`] for the exit.
fn signal_mid_stream(
    what: &str,
    cmd: Command,
    watch: &Path,
    marker: &str,
    signal: &str,
) -> common::Outcome {
    let mut child = Proc::spawn(cmd);
    let mut finished = false;
    let under_way = wait_until(Duration::from_secs(60), || {
        if child.exited() {
            finished = true;
            return true;
        }
        temp_size(watch, marker).is_some_and(|len| len >= 1 << 20)
    });
    assert!(
        under_way && !finished,
        "{what}: never caught mid-stream (finished: {finished}); use a bigger database; stderr: {}",
        child.stderr()
    );
    let signalled = Instant::now();
    child.signal(signal);
    let o = child.wait(SIGNAL_LIMIT);
    if o.status.is_none() {
        panic!(
            "{what}: still running {:.1} s after SIG{signal}, killed (hang); stderr: {}",
            signalled.elapsed().as_secs_f64(),
            o.stderr
        );
    }
    o
}

/// SIGTERM once `backup create` is writing: exits 1 (main.rs: "1 error";
/// the CLI reports `error: cancelled`) within 5 s, leaves no temporary file
/// and no new backup in `backup list`.
#[test]
fn sigterm_mid_create_stops_without_a_backup() {
    let f = Fixture::new(16);
    let what = "create, SIGTERM";
    let o = signal_mid_stream(what, f.cmd(&f.create_args()), &f.backups, ".tmp-", "TERM");
    let line = o.expect_failure(what, 1, Duration::MAX);
    assert!(line.contains("cancel"), "{what}: {line}");
    assert_no_leftovers(what, &[&f.backups, f.dir.path()]);
    f.assert_tmp_empty(what);
    assert!(f.list().is_empty(), "{what}: no backup listed");
}

fn signal_mid_verify(signal: &str) {
    let f = Fixture::new(16);
    let backup = f.create();
    let what = format!("verify, SIG{signal}");
    // verify writes its image in a private directory of TMPDIR when it runs
    // a check: --check full, since the backup records one (and the default
    // would hash the image in memory without writing it).
    let watch = f.tmp.clone();
    let mut cmd = f.verify_cmd(&backup);
    cmd.args(["--check", "full"]);
    let o = signal_mid_stream(&what, cmd, &watch, ".sqlseal-verify-", signal);
    let code = o.code(&what);
    assert_ne!(code, 0, "{what}: a cancelled verify does not pass");
    o.expect_failure(&what, code, Duration::MAX);
    assert_no_leftovers(&what, &[&watch, f.dir.path()]);
    f.assert_tmp_empty(&what);
}

/// SIGTERM mid-verify: exits non-zero within 5 s, no verify image left.
#[test]
fn sigterm_mid_verify_stops_and_cleans_up() {
    signal_mid_verify("TERM");
}

/// Ctrl-C (SIGINT) mid-verify: exits non-zero within 5 s, no verify image left.
#[test]
fn sigint_mid_verify_stops_and_cleans_up() {
    signal_mid_verify("INT");
}

/// SIGTERM mid-restore: exits non-zero within 5 s, no restore image left,
/// and the target does not exist.
#[test]
fn sigterm_mid_restore_stops_and_cleans_up() {
    let f = Fixture::new(16);
    let backup = f.create();
    let what = "restore, SIGTERM";
    let target_dir = f.subdir("restore");
    let target = target_dir.join("restored.db");
    let o = signal_mid_stream(
        what,
        f.restore_cmd(&backup, &target),
        &target_dir,
        ".restored.db.sqlseal-restore-",
        "TERM",
    );
    let code = o.code(what);
    assert_ne!(code, 0, "{what}: a cancelled restore does not succeed");
    o.expect_failure(what, code, Duration::MAX);
    assert!(!target.exists(), "{what}: no database installed");
    assert_no_leftovers(what, &[&target_dir, f.dir.path()]);
    f.assert_tmp_empty(what);
}

/// File-size limit for the full-disk tests, in the units of `ulimit -f`.
/// POSIX (and dash, the usual /bin/sh) count 512-byte blocks, bash 1024-byte
/// ones: 2048 is 1 or 2 MiB, well below the 8 MiB outputs either way.
const FSIZE_BLOCKS: &str = "2048";

/// How the process finds SIGXFSZ when a write passes its file-size limit.
#[derive(Clone, Copy, Debug)]
enum Xfsz {
    /// Ignored by the parent (`trap '' XFSZ`), as some service managers do.
    Ignored,
    /// The default action, which kills: sqlseal must handle it itself.
    Default,
}

/// `cmd`'s program and arguments under `sh -c 'ulimit -f N; exec ...'`:
/// RLIMIT_FSIZE, SIGXFSZ as `xfsz` says, so that a write past the limit
/// fails with EFBIG ("File too large"), as on a full disk.
fn with_file_size_limit(f: &Fixture, xfsz: Xfsz, args: &[&str]) -> Command {
    let trap = match xfsz {
        Xfsz::Ignored => "trap '' XFSZ && ",
        Xfsz::Default => "",
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -f {FSIZE_BLOCKS} && {trap}exec \"$0\" \"$@\""
        ))
        .arg(common::bin())
        .args(args)
        .current_dir(f.dir.path())
        .env("TMPDIR", &f.tmp);
    cmd
}

/// Restore onto a "full disk": exits 1 within seconds with one error line
/// naming the file it could not write, no temporary file, no target.
#[test]
fn full_disk_during_restore_fails_fast_and_cleans_up() {
    for xfsz in [Xfsz::Ignored, Xfsz::Default] {
        full_disk_during_restore(xfsz);
    }
}

fn full_disk_during_restore(xfsz: Xfsz) {
    let f = Fixture::new(8);
    let backup = f.create();
    let target_dir = f.subdir("restore");
    let target = target_dir.join("restored.db");
    let what = &format!("restore, file-size limit, SIGXFSZ {xfsz:?}");
    let o = run(
        with_file_size_limit(
            &f,
            xfsz,
            &[
                "backup",
                "restore",
                p(&backup),
                "--key",
                p(&f.key),
                "--db",
                p(&target),
            ],
        ),
        FAIL_FAST,
    );
    let line = o.expect_failure(what, 1, FAIL_FAST);
    assert!(line.contains("File too large"), "{what}: the cause: {line}");
    assert!(
        line.contains("restored.db"),
        "{what}: names the file: {line}"
    );
    assert!(!target.exists(), "{what}: no database installed");
    assert_no_leftovers(what, &[&target_dir, f.dir.path()]);
    f.assert_tmp_empty(what);
}

/// Create onto a "full disk": exits 1 within seconds with one error line
/// naming the backup, no temporary file, nothing in `backup list`.
#[test]
fn full_disk_during_create_fails_fast_without_a_backup() {
    for xfsz in [Xfsz::Ignored, Xfsz::Default] {
        full_disk_during_create(xfsz);
    }
}

fn full_disk_during_create(xfsz: Xfsz) {
    let f = Fixture::new(8);
    let what = &format!("create, file-size limit, SIGXFSZ {xfsz:?}");
    let o = run(with_file_size_limit(&f, xfsz, &f.create_args()), FAIL_FAST);
    let line = o.expect_failure(what, 1, FAIL_FAST);
    assert!(line.contains("File too large"), "{what}: the cause: {line}");
    assert!(
        line.contains("app.db-") && line.contains(".sqlseal"),
        "{what}: names the backup: {line}"
    );
    assert_no_leftovers(what, &[&f.backups, f.dir.path()]);
    f.assert_tmp_empty(what);
    assert!(f.list().is_empty(), "{what}: no backup listed");
}

/// `sqlseal run` with Restore.Auto, the database missing, and two backups
/// of which the newest is corrupted at 10% (100+ chunks): start-up restores
/// the older one within seconds and logs why the newest was refused.
#[test]
fn auto_restore_falls_back_quickly_past_a_corrupted_newest_backup() {
    let f = Fixture::new(8);
    std::fs::write(
        f.dir.path().join("sqlseal.yaml"),
        "Backup:\n  Location: backups\n  Frequency: 0\n  MaxCount: 10\n  Keys: [server.pem]\n  ChunkSize: 65536\nDatabase:\n  Paths: [app.db]\nRestore:\n  Auto: true\n",
    )
    .expect("config");
    let dir = f.backups.join("app.db");
    let create = |f: &Fixture| {
        let o = run(
            f.cmd(&create_args(
                "app.db",
                p(&dir),
                "server.pem",
                &["--chunk-size", CHUNK],
            )),
            SLOW,
        );
        PathBuf::from(o.expect_success("backup create").trim())
    };
    let older = create(&f);
    let (_, older_rows) = common::db_tag_and_rows(&f.db);
    make_random_db(&f.db, 1, "second");
    let newest = create(&f);
    assert!(newest > older, "names sort by time");
    let len = std::fs::metadata(&newest).expect("meta").len() as usize;
    let chunk = corrupt_at(&newest, len / 10);
    for name in ["app.db", "app.db-wal", "app.db-shm"] {
        let _ = std::fs::remove_file(f.dir.path().join(name));
    }

    let daemon = Proc::spawn(f.cmd(&["run", "--config", "sqlseal.yaml"]));
    let started = wait_until(FAIL_FAST, || {
        daemon.stderr().contains("sqlseal daemon started")
    });
    let log = daemon.stderr();
    assert!(
        started,
        "start-up did not finish within {FAIL_FAST:?} (auto-restore blocked on the corrupted newest backup); log: {log}"
    );
    assert!(f.db.exists(), "restored before the scheduler started");
    daemon.signal("TERM");
    let o = daemon.wait(SIGNAL_LIMIT);
    assert_eq!(o.code("run, SIGTERM"), 0, "{}", o.stderr);
    let log = o.stderr;
    assert!(
        log.contains("backup refused for auto-restore") && log.contains(&format!("chunk {chunk} ")),
        "logs why the newest was refused: {log}"
    );
    let newest_name = newest
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        log.contains(&newest_name),
        "names the refused backup: {log}"
    );
    assert_eq!(
        common::db_tag_and_rows(&f.db),
        ("first".to_owned(), older_rows),
        "the older backup's rows"
    );
    assert_no_leftovers("auto-restore", &[f.dir.path(), &f.backups, &dir]);
    f.assert_tmp_empty("auto-restore");
}

/// A store that stops answering (an S3 endpoint that accepts connections
/// and never replies): SIGTERM still ends the command within 5 s, exit 1,
/// with one line saying why.
#[test]
fn sigterm_while_a_store_does_not_answer_ends_the_command_in_5_s() {
    let f = Fixture::new(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    // Accepts and holds every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    let mut cmd = f.cmd(&["backup", "list", "--dir", "s3://bucket/app"]);
    cmd.env("SQLSEAL_S3_ENDPOINT", &endpoint)
        .env("SQLSEAL_S3_REGION", "us-east-1")
        .env("SQLSEAL_S3_ACCESSKEYID", "stalled")
        .env("SQLSEAL_S3_SECRETACCESSKEY", "stalled-secret")
        .env("SQLSEAL_S3_PATHSTYLE", "true")
        .env("SQLSEAL_S3_ALLOWHTTP", "true");
    let proc = Proc::spawn(cmd);
    std::thread::sleep(Duration::from_secs(1));
    let signalled = Instant::now();
    proc.signal("TERM");
    let (status, stderr) = proc.wait_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
}
