//! A real S3 server on the loopback interface for tests: `s3s-fs`, started
//! by the test on a free port with a temporary root directory.
//!
//! Without the binary, a test is skipped (with a message on stderr) unless
//! the `CI` variable is set, in which case it fails: CI installs it.
//! `SQLSEAL_S3S_FS` names the binary explicitly; otherwise it is looked up on
//! `PATH` and in cargo's `bin` directory.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlseal_store::S3Settings;

/// The server's access key id.
pub const ACCESS_KEY: &str = "sqlseal-test-access";
/// The server's secret access key.
pub const SECRET_KEY: &str = "sqlseal-test-secret-key";
/// The one bucket the server has.
pub const BUCKET: &str = "backups";

/// A running s3s-fs, killed on drop.
pub struct S3Server {
    binary: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SQLSEAL_S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

impl S3Server {
    /// Starts a server with one bucket, [`BUCKET`]; `None` when the binary
    /// is missing outside CI (the test should then return early).
    pub fn start() -> Option<S3Server> {
        let Some(binary) = find_binary() else {
            let why = "s3s-fs is not installed; install it with \
                       `cargo install s3s-fs --version 0.14.1 --locked --features binary` \
                       (or set SQLSEAL_S3S_FS to its path)";
            if std::env::var_os("CI").is_some() {
                panic!("{why}; CI must run the S3 tests");
            }
            eprintln!("skipping: {why}");
            return None;
        };
        let root = tempfile::tempdir().expect("temporary root for s3s-fs");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket directory");
        let mut server = S3Server {
            binary,
            root,
            port: 0,
            child: None,
        };
        // Another process may take the free port before the server binds
        // it; then the server exits and we try another port.
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return Some(server);
            }
        }
        panic!("s3s-fs did not start on any of five free ports");
    }

    /// The server's root directory: one directory per bucket.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Settings that reach this server, ignoring the environment, with
    /// short retries so that failure tests are quick.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.to_owned().into(),
            path_style: true,
            allow_http: true,
            use_env: false,
            part_size: 5 << 20,
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(2),
            max_retries: 2,
            retry_timeout: Duration::from_secs(3),
        }
    }

    /// The environment that the `sqlseal` binary reads for this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SQLSEAL_S3_ENDPOINT", self.endpoint()),
            ("SQLSEAL_S3_REGION", "us-east-1".into()),
            ("SQLSEAL_S3_ACCESSKEYID", ACCESS_KEY.into()),
            ("SQLSEAL_S3_SECRETACCESSKEY", SECRET_KEY.into()),
            ("SQLSEAL_S3_PATHSTYLE", "true".into()),
            ("SQLSEAL_S3_ALLOWHTTP", "true".into()),
        ]
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// Kills the server (the port stays reserved for [`resume`](Self::resume)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, on the same port and root.
    pub fn resume(&mut self) {
        let port = self.port;
        assert!(
            self.try_start(),
            "s3s-fs did not start again on port {port}"
        );
    }

    /// Starts the server; `false` if it exited (its port was taken).
    fn try_start(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                // Someone listens; make sure it is our child, not a
                // process that took the port first.
                std::thread::sleep(Duration::from_millis(100));
                if matches!(child.try_wait(), Ok(None)) {
                    self.child = Some(child);
                    return true;
                }
                let _ = child.wait();
                return false;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            assert!(Instant::now() < deadline, "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every regular file under the root, relative to it, sorted.
    pub fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    let rel = path.strip_prefix(root).expect("under root");
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out.sort();
        out
    }
}

fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy in front of the S3 server that records the method and
/// target of every HTTP/1.1 request it passes on (bodies framed by
/// `Content-Length`, as object_store sends them).
pub struct CountingProxy {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CountingProxy {
    /// Starts a proxy to `server`; point a store's endpoint at
    /// [`CountingProxy::endpoint`].
    pub fn start(server: &S3Server) -> CountingProxy {
        use std::io::{BufRead, Read, Write};
        let upstream = format!("127.0.0.1:{}", server.port);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&requests);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let seen = std::sync::Arc::clone(&seen);
                let upstream = upstream.clone();
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut server = TcpStream::connect(&upstream)?;
                    let (mut from_server, mut to_client) =
                        (server.try_clone()?, client.try_clone()?);
                    std::thread::spawn(move || std::io::copy(&mut from_server, &mut to_client));
                    let mut from_client = std::io::BufReader::new(client);
                    loop {
                        let mut head = Vec::new();
                        let mut length = 0usize;
                        loop {
                            let mut line = String::new();
                            if from_client.read_line(&mut line)? == 0 {
                                return Ok(());
                            }
                            if let Some((key, value)) = line.split_once(':')
                                && key.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                            let end = line == "\r\n";
                            head.push(line);
                            if end {
                                break;
                            }
                        }
                        let request: Vec<&str> = head[0].split(' ').take(2).collect();
                        seen.lock().expect("requests").push(request.join(" "));
                        let mut body = vec![0u8; length];
                        from_client.read_exact(&mut body)?;
                        server.write_all(head.concat().as_bytes())?;
                        server.write_all(&body)?;
                    }
                });
            }
        });
        CountingProxy { port, requests }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests since the last call, as `METHOD TARGET`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("requests"))
    }
}
