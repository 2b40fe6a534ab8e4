//! A crash harness: `sqlseal backup create` and `sqlseal run` killed with
//! SIGKILL at pseudo-random moments. Nothing a killed process leaves may
//! show up as a backup: `backup list` grows only by complete backups, every
//! listed backup verifies, and the next create (or daemon start) works.
//!
//! The moments come from `SQLSEAL_CRASH_SEED` (a u64; a fixed default
//! otherwise); the seed and every delay are printed, so a failure can be
//! replayed with `SQLSEAL_CRASH_SEED=<seed> cargo test -p sqlseal-cli --test
//! crash -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, create_args, keygen, listed, make_random_db, p, run, sqlseal, wait_until};

const DEFAULT_SEED: u64 = 0x5eed_c0de_2026_1124;
const KILLS: usize = 20;
const DAEMON_KILLS: usize = 20;
const LIMIT: Duration = Duration::from_secs(60);

/// splitmix64: small, good enough to spread kill moments.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = match std::env::var("SQLSEAL_CRASH_SEED") {
            Ok(s) => s
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("SQLSEAL_CRASH_SEED={s} is not a u64: {e}")),
            Err(_) => DEFAULT_SEED,
        };
        println!("crash harness seed: SQLSEAL_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A delay in `0..max`.
    fn delay(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(self.next() % ms)
    }
}

/// `backup list --json` of `dir`: the listed paths; fails on any entry
/// whose header does not read, and on any temporary name.
fn list_complete(work: &Path, dir: &Path, what: &str) -> Vec<PathBuf> {
    let o = run(
        sqlseal(&["backup", "list", "--dir", p(dir), "--json"], work),
        LIMIT,
    );
    let rows = listed(&o.expect_success("backup list"));
    let mut paths = Vec::new();
    for (path, error) in rows {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            !error,
            "{what}: listed backup with an unreadable header: {name}"
        );
        assert!(
            !name.starts_with('.') && !name.contains(".tmp-"),
            "{what}: a temporary file is listed: {name}"
        );
        paths.push(path);
    }
    paths
}

/// Every listed backup passes `backup verify`.
fn verify_all(work: &Path, backups: &[PathBuf], key: &Path) {
    for backup in backups {
        let path = if backup.is_absolute() {
            backup.clone()
        } else {
            work.join(backup)
        };
        let o = run(
            sqlseal(&["backup", "verify", p(&path), "--key", p(key)], work),
            LIMIT,
        );
        o.expect_success(&format!("verify {}", path.display()));
    }
}

fn create_cmd(work: &Path, db: &Path, dir: &Path, key: &Path) -> Command {
    sqlseal(
        &create_args(p(db), p(dir), p(key), &["--chunk-size", "65536"]),
        work,
    )
}

/// SIGKILL `backup create` at 20 moments across its run; after each, the
/// listed count grew by at most one complete backup and the next create
/// succeeds; at the end every listed backup verifies.
#[test]
fn sigkill_during_create_never_leaves_a_partial_backup() {
    let mut rng = Rng::from_env();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let db = w.join("app.db");
    make_random_db(&db, 4, "crash");
    let key = keygen(w, "server.pem");
    let dir = w.join("backups");

    // Calibrate: how long one create takes here.
    let o = run(create_cmd(w, &db, &dir, &key), LIMIT);
    o.expect_success("first create");
    let full = o.elapsed;
    println!("one create takes {:.2} s", full.as_secs_f64());
    let mut count = list_complete(w, &dir, "after the first create").len();
    assert_eq!(count, 1);

    for i in 0..KILLS {
        // Up to 120% of a create, so that some kills land after the rename.
        let delay = rng.delay(full.mul_f64(1.2));
        println!("kill {i}: SIGKILL after {} ms", delay.as_millis());
        let child = Proc::spawn(create_cmd(w, &db, &dir, &key));
        std::thread::sleep(delay);
        let o = child.kill9();
        let what = format!("kill {i} after {} ms", delay.as_millis());
        let now = list_complete(w, &dir, &what).len();
        let finished = o.status.and_then(|s| s.code()) == Some(0);
        println!("  exited on its own: {finished}; listed {now}, had {count}");
        // A create killed after its rename leaves one complete backup
        // (verified below with all the others); never anything else.
        assert!(
            now == count || now == count + 1,
            "{what}: listed {now}, had {count}"
        );
        assert!(
            !finished || now == count + 1,
            "{what}: a finished create is listed"
        );
        count = now;

        let o = run(create_cmd(w, &db, &dir, &key), LIMIT);
        o.expect_success(&format!("create after {what}"));
        let now = list_complete(w, &dir, &what).len();
        assert_eq!(now, count + 1, "{what}: the next create adds one backup");
        count = now;
    }
    let started = Instant::now();
    let all = list_complete(w, &dir, "at the end");
    verify_all(w, &all, &key);
    println!(
        "verified {} backups in {:.1} s",
        all.len(),
        started.elapsed().as_secs_f64()
    );
}

/// SIGKILL `sqlseal run` (backing up every second) at random moments; each
/// restart starts; at the end a clean SIGTERM works, every listed backup
/// verifies and no temporary file is listed.
#[test]
fn sigkill_during_the_daemon_never_leaves_a_partial_backup() {
    let mut rng = Rng::from_env();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    make_random_db(&w.join("app.db"), 4, "daemon");
    let key = keygen(w, "server.pem");
    std::fs::write(
        w.join("sqlseal.yaml"),
        "Backup:\n  Location: backups\n  Frequency: 1s\n  MaxCount: 4\n  Keys: [server.pem]\n  ChunkSize: 65536\nDatabase:\n  Paths: [app.db]\n",
    )
    .expect("config");
    let dir = w.join("backups").join("app.db");
    let start = |what: &str| {
        let daemon = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], w));
        let up = wait_until(Duration::from_secs(20), || {
            daemon.stderr().contains("sqlseal daemon started")
        });
        assert!(up, "{what}: the daemon did not start: {}", daemon.stderr());
        daemon
    };

    for i in 0..DAEMON_KILLS {
        let what = format!("daemon start {i}");
        let daemon = start(&what);
        let delay = rng.delay(Duration::from_millis(2500));
        println!(
            "daemon kill {i}: SIGKILL {} ms after start-up",
            delay.as_millis()
        );
        std::thread::sleep(delay);
        daemon.kill9();
        if dir.exists() {
            list_complete(w, &dir, &what);
        }
    }
    // A last run that is allowed to finish a backup and its retention pass
    // (kills between a backup and its retention may have left one extra),
    // then stops cleanly.
    let before = if dir.exists() {
        list_complete(w, &dir, "before the last run")
    } else {
        Vec::new()
    };
    let daemon = start("last start");
    let backed_up = wait_until(LIMIT, || {
        dir.exists() && {
            let now = list_complete(w, &dir, "last run");
            now.iter().any(|b| !before.contains(b)) && now.len() <= 4
        }
    });
    assert!(
        backed_up,
        "the daemon makes a backup and holds MaxCount: {}",
        daemon.stderr()
    );
    daemon.signal("TERM");
    let o = daemon.wait(Duration::from_secs(5));
    assert_eq!(o.code("daemon, SIGTERM"), 0, "{}", o.stderr);
    let all = list_complete(w, &dir, "at the end");
    assert!(all.len() <= 4, "MaxCount held: {all:?}");
    verify_all(w, &all, &key);
}
