//! The daemon seen from outside, on the real binary: `/metrics` scraped
//! with an HTTP client and read by a Prometheus text parser, `/healthz`
//! turning 503 when backups stop (the store made read-only) and 200 when
//! they resume, and a restore drill that catches a backup corrupted in
//! place.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Proc, corrupt_chunk, keygen, make_random_db, p, run, sqlseal, wait_until};

/// A daemon running on one database with a metrics endpoint on a free port.
struct Daemon {
    dir: tempfile::TempDir,
    proc: Option<Proc>,
    address: String,
}

impl Daemon {
    fn start(backup: &str, metrics: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        make_random_db(&dir.path().join("app.db"), 2, "metrics");
        keygen(dir.path(), "server.pem");
        std::fs::write(
            dir.path().join("sqlseal.yaml"),
            format!(
                "Database: {{Paths: [app.db]}}\n\
                 Backup: {{Keys: [server.pem], Location: backups, {backup}}}\n\
                 Metrics: {{Listen: \"127.0.0.1:0\", {metrics}}}\n"
            ),
        )
        .expect("config");
        let proc = Proc::spawn(sqlseal(&["run", "--config", "sqlseal.yaml"], dir.path()));
        let mut address = String::new();
        assert!(
            wait_until(Duration::from_secs(30), || {
                address = listening_on(&proc.stderr()).unwrap_or_default();
                !address.is_empty()
            }),
            "the daemon never said where it serves metrics: {}",
            proc.stderr()
        );
        Daemon {
            dir,
            proc: Some(proc),
            address,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        self.proc.as_ref().map(Proc::stderr).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        get(&format!("http://{}{path}", self.address))
    }

    fn scrape(&self) -> Samples {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "{body}");
        Samples::parse(&body)
    }

    /// SIGTERM; the daemon must stop within 5 s with exit 0.
    fn stop(&mut self) -> String {
        let proc = self.proc.take().expect("running");
        proc.signal("TERM");
        let out = proc.wait(Duration::from_secs(5));
        assert_eq!(out.code("run"), 0, "{}", out.stderr);
        out.stderr
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(proc) = self.proc.take() {
            let _ = proc.kill9();
        }
    }
}

/// The address from the "serving /metrics and /healthz" log line.
fn listening_on(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let rest = &line[line.find("address=")? + "address=".len()..];
    Some(rest.split_whitespace().next()?.to_owned())
}

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(url).call().expect("HTTP request");
    let code = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("body");
    (code, body)
}

/// Commits a row every 100 ms until dropped.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(db: &Path) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = conn.execute("INSERT INTO tag(v) VALUES ('w')", []);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A scrape parsed by a Prometheus text parser: (name, sorted labels) -> value.
struct Samples(HashMap<(String, Vec<(String, String)>), f64>);

impl Samples {
    fn parse(text: &str) -> Samples {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
        let mut out = HashMap::new();
        for s in scrape.samples {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            out.insert((s.metric, labels), value);
        }
        Samples(out)
    }

    /// The value of `name` for app.db (with `extra` labels), if present.
    fn get(&self, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = [("database", "app.db")]
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .iter()
            .find(|((n, l), _)| {
                n == name && {
                    let mut l: Vec<(String, String)> =
                        l.iter().filter(|(k, _)| k != "location").cloned().collect();
                    l.sort();
                    labels.sort();
                    l == labels
                }
            })
            .map(|(_, v)| *v)
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Makes `dir` refuse new files: chmod for an ordinary user; for root,
/// which chmod does not stop, the immutable attribute, else (a file
/// system without it) a plain file in the directory's place.
fn make_unwritable(dir: &Path) -> Box<dyn FnOnce()> {
    use std::os::unix::fs::PermissionsExt;
    let writable = |d: &Path| tempfile::tempfile_in(d).is_ok();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    if !writable(dir) {
        let dir = dir.to_path_buf();
        return Box::new(move || {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let chattr = std::process::Command::new("chattr")
        .arg("+i")
        .arg(dir)
        .status();
    if chattr.is_ok_and(|s| s.success()) && !writable(dir) {
        let dir = dir.to_path_buf();
        return Box::new(move || {
            let undone = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&dir)
                .status()
                .expect("chattr");
            assert!(undone.success());
        });
    }
    let aside = dir.with_extension("aside");
    std::fs::rename(dir, &aside).expect("move the store aside");
    std::fs::write(dir, b"not a directory").expect("file in its place");
    let dir = dir.to_path_buf();
    Box::new(move || {
        std::fs::remove_file(&dir).expect("remove the file");
        std::fs::rename(&aside, &dir).expect("move the store back");
    })
}

#[test]
fn metrics_are_scraped_and_healthz_follows_backups_stopping_and_resuming() {
    let mut daemon = Daemon::start("Frequency: 1s, MaxCount: 3", "MaxAge: 3s");
    let store = daemon.path("backups/app.db");
    // A database that changes, so that every slot makes a backup (an idle
    // one would be skipped and count as current).
    let _writer = Writer::start(&daemon.path("app.db"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            daemon
                .scrape()
                .get("sqlseal_backups_total", &[("result", "success")])
                .is_some_and(|n| n >= 1.0)
        }),
        "no successful backup counted: {}",
        daemon.log()
    );
    let (code, body) = daemon.get("/healthz");
    assert_eq!((code, body.as_str()), (200, "ok: 1 database(s) current\n"));
    let samples = daemon.scrape();
    let last_success = samples
        .get("sqlseal_backup_last_success_timestamp_seconds", &[])
        .expect("last success");
    assert!(
        (now_secs() - last_success).abs() < 60.0,
        "last success {last_success} is the backup just made"
    );
    assert_eq!(
        samples.get("sqlseal_backup_last_attempt_success", &[]),
        Some(1.0)
    );
    assert!(
        samples
            .get("sqlseal_backups_kept", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        samples
            .get("sqlseal_backup_duration_seconds_count", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        samples.get("sqlseal_auto_restores_total", &[("outcome", "present")]),
        Some(1.0)
    );

    // The store turns read-only: backups fail, and once the newest is
    // older than Metrics.MaxAge, /healthz says so.
    let restore_writes = make_unwritable(&store);
    let mut stale = String::new();
    let turned = wait_until(Duration::from_secs(30), || {
        let (code, body) = daemon.get("/healthz");
        stale = body;
        // Stale because backups fail (on a busy machine a backup may also
        // simply take longer than MaxAge; that is stale too, but not this).
        code == 503 && stale.contains("last error")
    });
    assert!(
        turned,
        "healthz never turned 503: {stale}\n{}",
        daemon.log()
    );
    assert!(
        stale.starts_with("database app.db at ")
            && stale.contains("older than Metrics.MaxAge 3s; last error: "),
        "{stale}"
    );
    assert_eq!(
        stale.lines().count(),
        1,
        "one line per stale database: {stale}"
    );
    let samples = daemon.scrape();
    assert_eq!(
        samples.get("sqlseal_backup_last_attempt_success", &[]),
        Some(0.0)
    );
    assert!(
        samples
            .get(
                "sqlseal_errors_total",
                &[("operation", "backup"), ("kind", "store")]
            )
            .is_some_and(|n| n >= 1.0),
        "{:?}",
        samples
            .0
            .keys()
            .filter(|(n, _)| n.contains("error"))
            .collect::<Vec<_>>()
    );
    let status = run(
        sqlseal(
            &["status", "--config", "sqlseal.yaml", "--json"],
            daemon.dir.path(),
        ),
        Duration::from_secs(10),
    );
    let report: serde_json::Value =
        serde_json::from_str(&status.expect_success("status --json")).expect("json");
    assert_eq!(report["healthy"], false, "{report}");
    assert!(report["databases"][0]["last_error"].is_string(), "{report}");

    // Writable again: the next backup succeeds and health comes back.
    restore_writes();
    assert!(
        wait_until(Duration::from_secs(20), || daemon.get("/healthz").0 == 200),
        "healthz never recovered: {}",
        daemon.log()
    );
    // The status file is rewritten just after the in-memory facts that
    // /healthz reads.
    let mut text = String::new();
    let recovered = wait_until(Duration::from_secs(5), || {
        let status = run(
            sqlseal(&["status", "--config", "sqlseal.yaml"], daemon.dir.path()),
            Duration::from_secs(10),
        );
        text = status.expect_success("status");
        text.contains("health: ok")
    });
    assert!(recovered, "{text}");
    assert!(
        text.contains("  last attempt: ") && text.contains("  ok"),
        "{text}"
    );
    daemon.stop();
}

#[test]
fn a_restore_drill_catches_a_backup_corrupted_in_place() {
    let mut daemon = Daemon::start("Frequency: 1h, VerifyFrequency: 1s", "");
    let status_file = daemon.path("backups/status.json");
    let status = || -> serde_json::Value {
        std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            status()["databases"][0]["last_drill_backup"].is_string()
        }),
        "no drill passed: {}",
        daemon.log()
    );
    let passed = status();
    let drilled = passed["databases"][0]["last_drill_backup"]
        .as_str()
        .expect("name")
        .to_owned();
    assert!(
        passed["databases"][0]["last_drill_check"]
            .as_str()
            .is_some_and(|c| c.starts_with("full check ran on the restored image")),
        "{passed}"
    );
    assert_eq!(daemon.get("/healthz").0, 200);

    // One flipped byte in the only backup, in place.
    let backup = daemon.path("backups/app.db").join(&drilled);
    corrupt_chunk(&backup, 1);
    let mut body = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let (code, b) = daemon.get("/healthz");
            body = b;
            code == 503
        }),
        "the drill never failed: {}",
        daemon.log()
    );
    assert!(
        body.contains("database app.db at ")
            && body.contains(": the restore drill of its newest backup failed: "),
        "{body}"
    );
    assert!(
        body.contains(&drilled),
        "the reason names the backup: {body}"
    );
    let samples = daemon.scrape();
    assert_eq!(samples.get("sqlseal_drill_last_success", &[]), Some(0.0));
    assert!(
        samples
            .get("sqlseal_drills_total", &[("result", "failure")])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        samples
            .get(
                "sqlseal_errors_total",
                &[("operation", "drill"), ("kind", "integrity")]
            )
            .is_some_and(|n| n >= 1.0)
    );
    // The file is rewritten just after the in-memory facts /healthz reads.
    assert!(
        wait_until(Duration::from_secs(5), || {
            status()["databases"][0]["last_drill_error"].is_string()
        }),
        "{}",
        status()
    );
    let log = daemon.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("restore drill FAILED")),
        "an error in the log: {log}"
    );
    // The drill's plaintext image never outlives it.
    let left: Vec<String> = std::fs::read_dir(daemon.dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        // The daemon's lock file stays (it is how a second daemon is stopped).
        .filter(|n| !n.ends_with(".lock"))
        .filter(|n| n.starts_with('.') || n.contains("tmp") || n.contains("verify"))
        .collect();
    assert!(left.is_empty(), "left beside the database: {left:?}");
}

#[test]
fn a_bad_or_taken_metrics_address_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_random_db(&dir.path().join("app.db"), 1, "metrics");
    keygen(dir.path(), "server.pem");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    for (listen, expect) in [
        (
            format!("127.0.0.1:{port}"),
            format!("error: Metrics.Listen 127.0.0.1:{port}: cannot listen there"),
        ),
        (
            "nonsense".to_owned(),
            "error: Metrics.Listen: `nonsense` is not an address and port".to_owned(),
        ),
    ] {
        std::fs::write(
            dir.path().join("sqlseal.yaml"),
            format!(
                "Database: {{Paths: [app.db]}}\n\
                 Backup: {{Keys: [server.pem], Location: backups}}\n\
                 Metrics: {{Listen: \"{listen}\"}}\n"
            ),
        )
        .expect("config");
        let out = run(
            sqlseal(&["run", "--config", "sqlseal.yaml"], dir.path()),
            Duration::from_secs(30),
        );
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_ne!(out.code("run"), 0, "{}", out.stderr);
        assert_eq!(errors.len(), 1, "{}", out.stderr);
        assert!(errors[0].starts_with(&expect), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    drop(taken);
    let _ = p(dir.path());
}

#[test]
fn systemd_hears_ready_once_the_daemon_serves_and_stopping_at_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    make_random_db(&dir.path().join("app.db"), 1, "notify");
    keygen(dir.path(), "server.pem");
    std::fs::write(
        dir.path().join("sqlseal.yaml"),
        "Database: {Paths: [app.db]}\n\
         Backup: {Keys: [server.pem], Location: backups}\n\
         Metrics: {Listen: \"127.0.0.1:0\"}\n",
    )
    .expect("config");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut cmd = sqlseal(&["run", "--config", "sqlseal.yaml"], dir.path());
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let proc = Proc::spawn(cmd);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means serving: the endpoint answers at once.
    let mut address = String::new();
    assert!(wait_until(Duration::from_secs(5), || {
        address = listening_on(&proc.stderr()).unwrap_or_default();
        !address.is_empty()
    }));
    let (code, _) = get(&format!("http://{address}/metrics"));
    assert_eq!(code, 200);
    proc.signal("TERM");
    let n = socket.recv(&mut buf).expect("STOPPING");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    let out = proc.wait(Duration::from_secs(5));
    assert_eq!(out.code("run"), 0, "{}", out.stderr);
}
