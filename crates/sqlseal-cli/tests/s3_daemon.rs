//! The daemon's work (sqlseal-schedule) with each database's backups in an
//! S3 store on a real S3 server (s3s-fs on the loopback interface):
//! scheduled backups with retention and auto-restore, configured through
//! `Backup.Location` and the `S3` parameters, and a server that goes away
//! while the scheduler runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlseal_engine::{CancelFlag, list_backups};
use sqlseal_format::CreatedAt;
use sqlseal_params::Params;
use sqlseal_schedule::{
    DatabaseJob, RestoreOutcome, Scheduler, Settings, SqliteJob, auto_restore_settings, read_status,
};
use sqlseal_store::{BackupStore, open_store};
use sqlseal_testkit::s3s::{CountingProxy, S3Server};
use sqlseal_testkit::{Proc, Writer, keygen, rows, sqlseal, wait_until, write_key};

fn add_rows(db: &Path, n: i64) {
    sqlseal_testkit::add_rows(db, n, 200);
}

struct Env {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    settings: Settings,
    store: Arc<dyn BackupStore>,
}

/// Settings for one database whose backups go to `s3://backups/PREFIX/app.db`.
/// With `configured`, `Backup.Location` and the `S3` parameters say so, as
/// in a config file; otherwise the store (with the test server's short
/// retries) replaces a local one in the settings.
fn env(server: &S3Server, prefix: &str, max_count: u64, configured: bool) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    add_rows(&db, 2_000);
    let key = dir.path().join("server.pem");
    write_key(&key);
    let mut params = Params::default();
    params.backup.location = vec![dir.path().join("local")];
    params.backup.keys = vec![key];
    params.backup.max_count = max_count;
    params.database.paths = vec![db.clone()];
    if configured {
        params.backup.location = vec![server.url(prefix).into()];
        let s3 = server.settings();
        params.s3.endpoint = s3.endpoint;
        params.s3.region = s3.region;
        params.s3.access_key_id = s3.access_key_id;
        params.s3.secret_access_key = s3.secret_access_key.as_str().into();
        params.s3.path_style = true;
        params.s3.allow_http = true;
        params.status.file = dir.path().join("status.json");
    }
    let mut settings = Settings::from_params(&params).expect("settings");
    let store = if configured {
        Arc::clone(&settings.databases[0].store)
    } else {
        let location = Path::new(&server.url(prefix)).join("app.db");
        let store: Arc<dyn BackupStore> =
            Arc::from(open_store(&location, &server.settings()).expect("S3 store"));
        settings.databases[0].store = Arc::clone(&store);
        store
    };
    Env {
        _dir: dir,
        db,
        settings,
        store,
    }
}

fn names(store: &dyn BackupStore) -> Vec<String> {
    let mut names: Vec<String> = list_backups(store, None)
        .expect("list")
        .into_iter()
        .map(|b| b.entry.name)
        .collect();
    names.sort();
    names
}

/// `i` hours after a fixed start, as the format crate stamps backups.
fn at(i: i64) -> CreatedAt {
    CreatedAt::from_microsecond((1_790_000_000 + i * 3600) * 1_000_000).expect("in range")
}

/// Now, as the format crate stamps backups.
fn now() -> CreatedAt {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros();
    CreatedAt::from_microsecond(i64::try_from(micros).expect("fits")).expect("in range")
}

/// Deletes the database (and its -wal, -shm); auto-restore must install
/// `backup`, refusing none.
fn lose_and_restore(e: &Env, backup: &str) {
    std::fs::remove_file(&e.db).expect("lose the database");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", e.db.display()));
    }
    let report = auto_restore_settings(&e.settings).expect("auto-restore");
    assert_eq!(
        report.databases[0].1,
        RestoreOutcome::Restored {
            backup: backup.to_owned(),
            refused: Vec::new(),
            older_than_newest: None,
        }
    );
}

#[test]
fn retention_and_auto_restore_work_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let e = env(&server, "daemon", 2, true);
    let job = SqliteJob::new(
        e.settings.databases[0].clone(),
        Arc::new(e.settings.clone()),
    );
    let mut made = Vec::new();
    for i in 0..4 {
        add_rows(&e.db, 100);
        let done = job
            .backup(at(i).timestamp(), &CancelFlag::new())
            .expect("backup");
        assert!(done.kept <= 2, "{done:?}");
        made.push(done.name);
    }
    let mut newest = made[2..].to_vec();
    newest.sort();
    assert_eq!(names(e.store.as_ref()), newest, "the two newest remain");
    assert_eq!(
        job.newest_backup().expect("newest"),
        Some(at(3).timestamp())
    );
    assert_eq!(
        e.store.location(),
        format!("{}/app.db", server.url("daemon")),
        "one prefix per database"
    );

    let expected = rows(&e.db);
    let report = auto_restore_settings(&e.settings).expect("auto-restore");
    assert_eq!(report.databases[0].1, RestoreOutcome::Present);
    lose_and_restore(&e, &made[3]);
    assert_eq!(rows(&e.db), expected);
}

/// The scheduler runs backups every second; the server goes away for a
/// while. Backups fail with a clear error and leave nothing visible; the
/// scheduler keeps running and backs up again once the server is back.
#[test]
fn the_scheduler_outlives_a_server_that_goes_away() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let mut e = env(&server, "flaky", 0, false);
    e.settings.frequency = Some(Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let token = tokio_util::sync::CancellationToken::new();
    let scheduler = {
        let _entered = runtime.enter();
        Scheduler::new(e.settings.clone()).spawn(token.clone())
    };
    let wait_for = |count: usize, store: &dyn BackupStore| {
        assert!(
            wait_until(Duration::from_secs(60), || names(store).len() >= count),
            "no backup {count} within 60 s"
        );
    };
    wait_for(1, e.store.as_ref());

    server.stop();
    // A few scheduled backups fail against the stopped server meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!scheduler.is_finished(), "the scheduler keeps running");
    let failure = job_error(&e);
    assert!(failure.contains("s3://backups/flaky/app.db"), "{failure}");
    server.resume();
    let before = names(e.store.as_ref());
    for name in server.files() {
        let partial = !name.contains("flaky/app.db/") && name.ends_with(".sqlseal");
        assert!(!partial, "a stray object: {name}");
    }
    wait_for(before.len() + 1, e.store.as_ref());
    assert!(!scheduler.is_finished());
    token.cancel();
    let stopped = runtime.block_on(scheduler).expect("joined");
    assert!(stopped.is_ok(), "{stopped:?}");
}

/// The error of one backup attempt made while the server is stopped.
fn job_error(e: &Env) -> String {
    let job = SqliteJob::new(
        e.settings.databases[0].clone(),
        Arc::new(e.settings.clone()),
    );
    job.backup(now().timestamp(), &CancelFlag::new())
        .expect_err("the server is gone")
        .to_string()
}

/// The real `sqlseal run` with `Backup.Location: s3://...` from its config
/// file and the S3 settings from `SQLSEAL_S3_*`: it backs up on schedule,
/// stops on SIGTERM, and on the next start restores the missing database
/// from the bucket before anything else.
#[test]
fn sqlseal_run_with_an_s3_location() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    add_rows(&db, 3_000);
    keygen(dir.path(), "server.pem");
    let location = server.url("run");
    std::fs::write(
        dir.path().join("sqlseal.yaml"),
        format!(
            "Backup:\n  Location: {location}\n  Frequency: 1s\n  MaxCount: 2\n  Keys: [server.pem]\nDatabase:\n  Paths: [app.db]\nStatus:\n  File: status.json\n"
        ),
    )
    .expect("config");
    let start = || {
        let mut cmd = sqlseal(&["run", "--config", "sqlseal.yaml"], dir.path());
        cmd.envs(server.env());
        Proc::spawn(cmd)
    };
    let store = open_store(Path::new(&location).join("app.db"), &server.settings()).expect("store");
    let stop = |child: Proc| {
        child.signal("TERM");
        let (status, log) = child.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{log}");
        log
    };

    let child = start();
    // The daemon skips a due backup of an unchanged database: a writer
    // makes each one needed until retention has had something to delete.
    let writer = Writer::start(
        &db,
        "INSERT INTO t(v, b) VALUES ('written while the daemon runs', randomblob(200));",
        Duration::from_millis(100),
    );
    let retained = wait_until(Duration::from_secs(120), || {
        let log = child.stderr();
        log.contains("deleted by retention") || log.matches("backup done").count() > 2
    });
    assert!(
        retained,
        "no backup deleted by retention within 120 s: {}",
        child.stderr()
    );
    writer.stop();
    // Once a due backup that started after the last write finds the
    // database unchanged, the newest backup holds every row.
    let written = now().to_string();
    let status = dir.path().join("status.json");
    let settled = wait_until(Duration::from_secs(60), || {
        read_status(&status)
            .ok()
            .and_then(|s| s.databases.first()?.unchanged_at.clone())
            .is_some_and(|at| at > written)
    });
    assert!(
        settled,
        "no backup of the last write within 60 s: {}",
        child.stderr()
    );
    let log = stop(child);
    let kept = names(store.as_ref());
    assert!(
        !kept.is_empty() && kept.len() <= 2,
        "MaxCount on the object listing: {kept:?}\n{log}"
    );
    let expected = rows(&db);
    assert!(expected > 3_000, "the writer added rows");

    for f in ["app.db", "app.db-wal", "app.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    let child = start();
    // Restored before the scheduler started, and started (SIGTERM is
    // handled from then on).
    wait_until(Duration::from_secs(30), || {
        let log = child.stderr();
        db.exists()
            && log.contains("restored missing database from backup")
            && log.contains("sqlseal daemon started")
    });
    let log = stop(child);
    assert_eq!(
        log.matches("restored missing database from backup").count(),
        1,
        "logged once: {log}"
    );
    assert_eq!(rows(&db), expected);
}

/// `Backup.IncrementFrequency` on S3: a chain of increments (one object
/// each), none while nothing changed, retention that removes a whole
/// chain once a newer full backup exists, and auto-restore of the newest
/// point through its chain.
#[test]
fn chains_of_increments_work_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let mut e = env(&server, "chains", 1, true);
    e.settings.increment_frequency = Some(Duration::from_secs(1));
    let job = SqliteJob::new(
        e.settings.databases[0].clone(),
        Arc::new(e.settings.clone()),
    );
    let first_full = job
        .backup(at(0).timestamp(), &CancelFlag::new())
        .expect("full backup");
    assert!(!first_full.increment);
    let mut first_chain = vec![first_full.name];
    for i in 1..=3 {
        add_rows(&e.db, 50);
        let done = job
            .increment(at(i).timestamp(), &CancelFlag::new())
            .expect("increment")
            .expect("rows changed");
        assert!(done.increment, "{done:?}");
        first_chain.push(done.name);
    }
    let objects = server.files().len();
    assert_eq!(
        job.increment(at(4).timestamp(), &CancelFlag::new())
            .expect("idle"),
        None,
        "nothing changed: no increment"
    );
    assert_eq!(server.files().len(), objects, "and no object");
    first_chain.sort();
    assert_eq!(names(e.store.as_ref()), first_chain);

    // A new full backup: MaxCount 1 keeps it, the old chain goes whole.
    add_rows(&e.db, 50);
    let second_full = job
        .backup(at(5).timestamp(), &CancelFlag::new())
        .expect("second full backup");
    assert_eq!(second_full.deleted.len(), 4, "{second_full:?}");
    add_rows(&e.db, 50);
    let newest = job
        .increment(at(6).timestamp(), &CancelFlag::new())
        .expect("increment")
        .expect("rows changed");
    let mut second_chain = vec![second_full.name, newest.name.clone()];
    second_chain.sort();
    assert_eq!(names(e.store.as_ref()), second_chain);

    // Lose the database: auto-restore installs the newest point.
    let expected = rows(&e.db);
    lose_and_restore(&e, &newest.name);
    assert_eq!(rows(&e.db), expected);
}

/// Requests to S3, counted by a proxy in front of the server: an
/// increment is one PUT (and the HEADs that keep it from replacing an
/// object), with no LIST and no multipart upload; an idle database makes
/// no request at all.
#[test]
fn an_increment_on_s3_is_one_put_and_an_idle_database_makes_no_request() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = CountingProxy::start(&server);
    let mut e = env(&server, "counted", 0, false);
    let mut through_proxy = server.settings();
    through_proxy.endpoint = proxy.endpoint();
    let location = Path::new(&server.url("counted")).join("app.db");
    let store: Arc<dyn BackupStore> =
        Arc::from(open_store(&location, &through_proxy).expect("S3 store"));
    e.settings.databases[0].store = Arc::clone(&store);
    e.settings.increment_frequency = Some(Duration::from_secs(1));
    let job = SqliteJob::new(
        e.settings.databases[0].clone(),
        Arc::new(e.settings.clone()),
    );
    job.backup(at(0).timestamp(), &CancelFlag::new())
        .expect("full backup");
    proxy.take();
    for i in 1..=3 {
        add_rows(&e.db, 20);
        let done = job
            .increment(at(i).timestamp(), &CancelFlag::new())
            .expect("increment")
            .expect("rows changed");
        assert!(done.increment, "{done:?}");
        let requests = proxy.take();
        let methods: Vec<&str> = requests
            .iter()
            .map(|r| r.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(
            methods,
            ["HEAD", "HEAD", "PUT"],
            "increment {i}: {requests:?}"
        );
    }
    for i in 4..=6 {
        assert_eq!(
            job.increment(at(i).timestamp(), &CancelFlag::new())
                .expect("idle"),
            None
        );
    }
    assert_eq!(proxy.take(), Vec::<String>::new(), "idle: no request");
    assert_eq!(names(store.as_ref()).len(), 4);
}
