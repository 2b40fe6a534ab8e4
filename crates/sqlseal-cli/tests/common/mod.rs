//! Helpers shared by the tests that run the real `sqlseal` binary and
//! must never hang: every child runs under a deadline and is killed
//! (SIGKILL) when it passes it, so a hung binary fails the test instead of
//! the test suite.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The `sqlseal` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("sqlseal")
}

/// A path as a `&str` for an argument list.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `sqlseal ARGS` in `dir`, ready to spawn.
pub fn sqlseal(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(dir);
    cmd
}

/// A child process whose stdout and stderr are drained as they come, so a
/// full pipe never blocks it.
pub struct Proc {
    child: Child,
    started: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// How a child ended: its status, or `None` when it missed its deadline
/// and was killed.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

impl Proc {
    /// Starts `cmd` with piped stdout and stderr and no stdin.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            drain(child.stdout.take().expect("stdout"), stdout.clone()),
            drain(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Proc {
            child,
            started: Instant::now(),
            stdout,
            stderr,
            readers,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Whether the child has exited (without reaping it for good: the
    /// status is kept by `Child`).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Sends `signal` (a name such as `TERM` or `INT`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{signal} {}", self.id());
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) -> Outcome {
        let _ = self.child.kill();
        self.wait(Duration::from_secs(10))
    }

    /// Waits at most `limit` (from now); a child still running then is
    /// killed with SIGKILL and the outcome has no status.
    pub fn wait(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Outcome {
            status,
            stdout: self.stdout.lock().expect("lock").clone(),
            stderr: self.stderr.lock().expect("lock").clone(),
            elapsed,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A test that panics never leaves a child running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Outcome {
    /// The exit code; panics with `what` and the output when the child
    /// missed its deadline or died of a signal.
    pub fn code(&self, what: &str) -> i32 {
        let Some(status) = self.status else {
            panic!(
                "{what}: still running after {:.1} s, killed (hang); stderr so far: {}",
                self.elapsed.as_secs_f64(),
                self.stderr
            );
        };
        status.code().unwrap_or_else(|| {
            panic!(
                "{what}: killed by a signal ({status}); stderr: {}",
                self.stderr
            )
        })
    }

    /// Asserts exit `code` within `limit`, and for a failure exactly one
    /// `error: ` line on stderr (warnings aside) and no panic; returns
    /// that line.
    pub fn expect_failure(&self, what: &str, code: i32, limit: Duration) -> String {
        let got = self.code(what);
        assert!(
            self.elapsed <= limit,
            "{what}: took {:.1} s, more than {limit:?}",
            self.elapsed.as_secs_f64()
        );
        assert_eq!(
            got, code,
            "{what}: exit code; stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{what}: {}", self.stderr);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .collect();
        assert_eq!(lines.len(), 1, "{what}: one error line: {}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{what}: {}", self.stderr);
        lines[0].to_owned()
    }

    /// Asserts exit 0 and returns stdout.
    pub fn expect_success(&self, what: &str) -> String {
        assert_eq!(self.code(what), 0, "{what}: {}", self.stderr);
        self.stdout.clone()
    }
}

/// Runs `cmd` to completion under a deadline.
pub fn run(cmd: Command, limit: Duration) -> Outcome {
    Proc::spawn(cmd).wait(limit)
}

/// Polls `done` every few milliseconds for at most `limit`.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// A database of about `mib` MiB that barely compresses: `rows` rows of
/// 1000 random bytes each, plus `tag` in a one-row table so that tests can
/// tell databases apart.
pub fn make_random_db(path: &Path, mib: u64, tag: &str) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);
         CREATE TABLE IF NOT EXISTS tag(v TEXT);
         DELETE FROM tag;",
    )
    .expect("schema");
    conn.execute("INSERT INTO tag(v) VALUES (?1)", [tag])
        .expect("tag");
    let rows = i64::try_from(mib * 1024).expect("row count");
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1)
         INSERT INTO t(v, b) SELECT 'row ' || i, randomblob(1000) FROM c",
        [rows],
    )
    .expect("rows");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
}

/// The tag [`make_random_db`] stored, and the row count.
pub fn db_tag_and_rows(path: &Path) -> (String, i64) {
    let conn = Connection::open(path).expect("open");
    let tag = conn
        .query_row("SELECT v FROM tag", [], |r| r.get(0))
        .expect("tag");
    let rows = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    (tag, rows)
}

/// Writes a new key with `sqlseal keygen` into `dir` as `name`.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    run(
        sqlseal(&["keygen", "-o", p(&key)], dir),
        Duration::from_secs(30),
    )
    .expect_success("keygen");
    key
}

/// Names of the files sqlseal leaves behind only when it fails to clean
/// up: store temp files (`.NAME.tmp-*`), verify images and snapshot
/// directories (`.sqlseal-*`), restore images (`.NAME.sqlseal-restore-*`).
pub fn leftovers(dirs: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // The database lock file stays by design (it is re-locked,
            // never deleted) and holds only a process id.
            let lock = name.starts_with('.') && name.ends_with(".lock");
            if (name.contains(".tmp-") || name.contains(".sqlseal-")) && !lock {
                found.push(dir.join(name).display().to_string());
            }
        }
    }
    found
}

/// Every entry of `dir` (for a private TMPDIR that must stay empty).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The size of the first file in `dir` whose name contains `marker`.
pub fn temp_size(dir: &Path, marker: &str) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains(marker) {
            return None;
        }
        let meta = e.metadata().ok()?;
        if meta.is_dir() {
            // A private temporary directory: the size of what it holds.
            let inside = std::fs::read_dir(e.path()).ok()?;
            Some(
                inside
                    .flatten()
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum(),
            )
        } else {
            Some(meta.len())
        }
    })
}

/// One frame of a container: where it starts, its chunk index, and where
/// its sealed body starts and ends.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub start: usize,
    pub index: u64,
    pub body: usize,
    pub end: usize,
}

const SALT_LEN: usize = 32;
const FRAME_HEADER_LEN: usize = 17;

/// The frames of a container (docs/format.md, section 4 and 8.3): the
/// payload starts after the LF of the `mac:` line with a 32-byte salt,
/// then frames of a 17-byte header (index u64be, flags u8, raw_len u32be,
/// sealed_len u32be) and the sealed chunk; it stops after the FINAL frame.
pub fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mac = bytes
        .windows(5)
        .position(|w| w == b"\nmac:")
        .expect("header has a mac: line")
        + 1;
    let header_end = mac
        + bytes[mac..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("mac line ends")
        + 1;
    let mut at = header_end + SALT_LEN;
    let mut out = Vec::new();
    while at + FRAME_HEADER_LEN <= bytes.len() {
        let h = &bytes[at..at + FRAME_HEADER_LEN];
        let index = u64::from_be_bytes(h[0..8].try_into().expect("8 bytes"));
        let flags = h[8];
        let sealed = u32::from_be_bytes(h[13..17].try_into().expect("4 bytes")) as usize;
        let body = at + FRAME_HEADER_LEN;
        out.push(Frame {
            start: at,
            index,
            body,
            end: body + sealed,
        });
        at = body + sealed;
        if flags & 1 != 0 {
            break;
        }
    }
    out
}

/// Flips one byte inside the sealed body of the frame that holds `offset`
/// (moved into the body if it falls on a frame header); returns that
/// frame's chunk index.
pub fn corrupt_at(backup: &Path, offset: usize) -> u64 {
    let mut bytes = std::fs::read(backup).expect("read backup");
    let all = frames(&bytes);
    let frame = *all
        .iter()
        .find(|f| f.start <= offset && offset < f.end)
        .expect("offset inside the frames");
    let at = offset.max(frame.body + 16).min(frame.end - 1);
    bytes[at] ^= 0x20;
    std::fs::write(backup, bytes).expect("write backup");
    frame.index
}

/// Flips one byte in the middle of chunk `index`'s sealed body.
pub fn corrupt_chunk(backup: &Path, index: u64) {
    let bytes = std::fs::read(backup).expect("read backup");
    let frame = *frames(&bytes)
        .iter()
        .find(|f| f.index == index)
        .expect("chunk exists");
    let got = corrupt_at(backup, (frame.body + frame.end) / 2);
    assert_eq!(got, index);
}

/// Parses `backup list --json` output into (path, has an error) pairs.
pub fn listed(stdout: &str) -> Vec<(PathBuf, bool)> {
    let rows: serde_json::Value = serde_json::from_str(stdout).expect("list --json");
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                PathBuf::from(r["path"].as_str().expect("path")),
                !r["error"].is_null(),
            )
        })
        .collect()
}
