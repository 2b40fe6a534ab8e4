//! Child processes under deadlines: every child is killed (SIGKILL) when
//! it passes its deadline or when its [`Proc`] is dropped, so a hung binary
//! fails the test instead of the test suite.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `sqlseal` binary cargo built for the tests of the package that has
/// it (sqlseal-cli).
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
    /// The exit status; `None` when the child was killed at its deadline.
    pub status: Option<ExitStatus>,
    /// All the child wrote to stdout.
    pub stdout: String,
    /// All the child wrote to stderr.
    pub stderr: String,
    /// From the start to the end of the child.
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

    /// The child's process id.
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

    /// Waits at most `limit` for the child to exit by itself and returns
    /// its status and stderr; panics (after SIGKILL) when it is still
    /// running then.
    pub fn wait_exit(self, limit: Duration) -> (ExitStatus, String) {
        let out = self.wait(limit);
        let Some(status) = out.status else {
            panic!("did not exit within {limit:?}; stderr: {}", out.stderr);
        };
        (status, out.stderr)
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

/// What a finished command wrote to stdout, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a finished command wrote to stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
