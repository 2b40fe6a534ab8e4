//! Backups in an S3-compatible object store.
//!
//! [`BackupStore`] is synchronous; object_store is async. The store owns a
//! small tokio runtime (two worker threads) and runs every request as a task
//! on it; the calling thread waits on a channel. That works from any
//! thread: a plain one, an engine worker, or a `spawn_blocking` thread of
//! another runtime (it never calls `block_on`, which panics there).
//!
//! A backup smaller than a part (6 MiB by default: most increments) is one
//! PUT at `finish`: two HEADs (at `create` and just before the PUT) make
//! sure no object has its name, and the write path makes no LIST (the
//! bucket is checked once per store, on its first write). A larger one is
//! a multipart upload, started when the first part is full: the writer
//! hands each full part to an upload task, with at most two parts in
//! flight, so an upload holds about three parts in memory whatever the
//! backup's size. `finish` completes the upload, which is when the object
//! appears; a writer dropped unfinished aborts it. Uploads that were never
//! completed (a crash, a server that went away) are never listed by S3; a
//! bucket lifecycle rule ("abort incomplete multipart uploads after N
//! days") reclaims their parts, so [`BackupStore::clean_stale`] has nothing
//! to do.
//!
//! Reads are ranged GETs of at most 4 MiB (the first one 256 KiB, enough for
//! a header), each pinned to the object's ETag, with the next range fetched
//! while the current one is consumed.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, GetOptions, GetRange, GetResult, MultipartUpload, ObjectStore, ObjectStoreExt,
    PutPayloadMut, RetryConfig,
};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use crate::{BackupEntry, BackupStore, BackupWriter, Result, S3Location, S3Settings, StoreError};

/// Size of the first ranged GET of an object: enough for any header.
const FIRST_RANGE: u64 = 256 << 10;
/// Size of the following ranged GETs.
const READ_RANGE: u64 = 4 << 20;
/// Ranged GETs in flight while an object is read, beside the range being
/// consumed: the reader keeps the server and the connection busy while
/// the caller decrypts, so a restore from S3 is not one round trip per
/// range behind a restore from a directory. Bounds the memory a reader
/// holds to (1 + this) ranges.
const READS_IN_FLIGHT: usize = 3;
/// Parts uploading while the next one fills.
const MAX_IN_FLIGHT: usize = 2;
/// The S3 limit on parts per upload.
const MAX_PARTS: usize = 10_000;
/// The S3 minimum part size (except the last part).
const MIN_PART_SIZE: usize = 5 << 20;
/// Parts are built from blocks of this size rather than one allocation per
/// part: glibc serves part-sized allocations that come and go from its
/// heaps once its mmap threshold has risen, and the peak RSS of an upload
/// then grew by about 25 MiB.
const PART_BLOCK: usize = 256 << 10;
/// The longest a dropped writer waits for its upload to be aborted.
const MAX_ABORT_WAIT: Duration = Duration::from_secs(10);

type ObjectResult<T> = std::result::Result<T, object_store::Error>;

/// Backups under a prefix of an S3 bucket (AWS S3 or any S3-compatible
/// server: MinIO, Ceph, Garage, s3s, ...).
///
/// Listing, retention and `latest` work on the object listing; names carry
/// the creation time, and the engine reads it from each header. Cloning is
/// cheap and clones share the connection pool and runtime.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    /// Only taken in `Drop`.
    runtime: Option<Runtime>,
    client: Arc<AmazonS3>,
    location: S3Location,
    part_size: usize,
    abort_wait: Duration,
    /// Whether a LIST has shown that the bucket exists.
    bucket_seen: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code; the
        // last handle on a store may well be dropped there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A request running on the store's runtime.
struct Pending<T> {
    task: JoinHandle<()>,
    answer: mpsc::Receiver<ObjectResult<T>>,
}

impl<T> Pending<T> {
    /// Blocks until the request is done.
    fn wait(self) -> ObjectResult<T> {
        self.answer.recv().unwrap_or_else(|_| Err(task_lost()))
    }

    /// Blocks until the request is done or `limit` has passed.
    fn wait_at_most(self, limit: Duration) -> ObjectResult<T> {
        let answer = self.answer.recv_timeout(limit);
        if answer.is_err() {
            self.task.abort();
        }
        answer.unwrap_or_else(|_| Err(task_lost()))
    }
}

/// What kind of failure an object_store error is. Errors of listing and
/// multipart requests come wrapped, with the HTTP status only in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Denied,
    NoBucket,
    NotFound,
    Other,
}

fn classify(e: &object_store::Error) -> Failure {
    let mut text = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        text.push_str(&c.to_string());
        text.push('\n');
        cause = c.source();
    }
    let status = text
        .split("status code: ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    if matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || matches!(status, Some(401 | 403))
    {
        Failure::Denied
    } else if text.contains("NoSuchBucket") {
        Failure::NoBucket
    } else if matches!(e, object_store::Error::NotFound { .. }) || status == Some(404) {
        Failure::NotFound
    } else {
        Failure::Other
    }
}

fn task_lost() -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: "the request was cancelled before it answered".into(),
    }
}

impl Inner {
    fn spawn<T, F>(&self, request: F) -> Pending<T>
    where
        F: Future<Output = ObjectResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (tell, answer) = mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            // The receiver may have given up waiting; nothing to do then.
            let _ = tell.send(request.await);
        });
        Pending { task, answer }
    }

    fn run<T, F>(&self, request: F) -> ObjectResult<T>
    where
        F: Future<Output = ObjectResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(request).wait()
    }

    fn path(&self, name: &str) -> Result<ObjectPath> {
        ObjectPath::parse(self.location.key(name))
            .map_err(|_| StoreError::InvalidName(name.chars().take(80).collect()))
    }

    /// Turns an object_store error into a store error about `target`.
    fn error(&self, what: &'static str, target: String, e: object_store::Error) -> StoreError {
        match classify(&e) {
            Failure::Denied => StoreError::Denied {
                what,
                location: target,
                source: Box::new(e),
            },
            Failure::NoBucket => self.no_bucket(),
            Failure::NotFound | Failure::Other => StoreError::Remote {
                what,
                location: target,
                source: Box::new(e),
            },
        }
    }

    fn no_bucket(&self) -> StoreError {
        StoreError::NoBucket {
            bucket: self.location.bucket().to_owned(),
            location: self.location.to_string(),
        }
    }

    fn not_found(&self, name: &str) -> StoreError {
        StoreError::NotFound {
            name: name.to_owned(),
            location: self.location.to_string(),
        }
    }

    /// Whether the object exists.
    fn exists(&self, name: &str, path: &ObjectPath) -> Result<bool> {
        let client = Arc::clone(&self.client);
        let path = path.clone();
        match self.run(async move { client.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(e) if classify(&e) == Failure::NotFound => Ok(false),
            Err(e) => Err(self.error("checking", self.location.url(name), e)),
        }
    }

    /// Fails with [`StoreError::NoBucket`] when the bucket does not exist
    /// (a HEAD of a missing object cannot tell). Lists the (empty)
    /// "directory" `path/`, which costs one small request, until a listing
    /// has succeeded once.
    fn check_bucket(&self, path: &ObjectPath) -> Result<()> {
        if self.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let client = Arc::clone(&self.client);
        let path = path.clone();
        self.run(async move { client.list_with_delimiter(Some(&path)).await })
            .map(|_| self.bucket_seen.store(true, Ordering::Relaxed))
            .map_err(|e| self.list_error(e))
    }

    fn list_error(&self, e: object_store::Error) -> StoreError {
        match classify(&e) {
            // Listing names no key: a 404 can only be the bucket.
            Failure::NotFound => self.no_bucket(),
            _ => self.error("listing", self.location.to_string(), e),
        }
    }
}

impl S3Store {
    /// A store at `location`, reached with `settings`. Makes no request:
    /// a missing bucket or wrong credentials show on first use.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidLocation`] when the settings are unusable (a bad
    /// endpoint URL, a part size under 5 MiB) or the runtime cannot start.
    pub fn new(location: S3Location, settings: &S3Settings) -> Result<Self> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: location.to_string(),
            reason,
        };
        if settings.part_size < MIN_PART_SIZE {
            return Err(invalid(format!(
                "part size {} is below the S3 minimum of {MIN_PART_SIZE} bytes",
                settings.part_size
            )));
        }
        let env_allows_http = settings.use_env
            && std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        if settings.endpoint.starts_with("http://") && !settings.allow_http && !env_allows_http {
            return Err(invalid(format!(
                "S3.Endpoint {} is plain http; set S3.AllowHttp to true to allow it",
                settings.endpoint
            )));
        }
        let mut builder = if settings.use_env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        };
        builder = builder.with_bucket_name(location.bucket());
        let set = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        if let Some(endpoint) = set(&settings.endpoint) {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = set(&settings.region) {
            builder = builder.with_region(region);
        }
        if let Some(id) = set(&settings.access_key_id) {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = set(&settings.secret_access_key) {
            builder = builder.with_secret_access_key(secret);
        }
        let mut client_options = ClientOptions::new()
            .with_timeout(settings.request_timeout)
            .with_connect_timeout(settings.connect_timeout);
        if settings.allow_http {
            client_options = client_options.with_allow_http(true);
        } else if settings.use_env {
            // AWS_ALLOW_HTTP may still allow it: from_env put it in the
            // builder's client options, which `with_client_options` replaces.
            if let Ok(value) = std::env::var("AWS_ALLOW_HTTP") {
                client_options =
                    client_options.with_config(object_store::ClientConfigKey::AllowHttp, value);
            }
        }
        builder = builder
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_client_options(client_options)
            .with_retry(RetryConfig {
                max_retries: settings.max_retries,
                retry_timeout: settings.retry_timeout,
                ..RetryConfig::default()
            });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sqlseal-s3")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("starting the S3 client runtime: {e}")))?;
        let client = {
            // Building the HTTP client wants a runtime in reach.
            let _entered = runtime.enter();
            builder
                .build()
                .map_err(|e| invalid(format!("configuring the S3 client: {e}")))?
        };
        Ok(S3Store {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                client: Arc::new(client),
                location,
                part_size: settings.part_size,
                abort_wait: settings.retry_timeout.min(MAX_ABORT_WAIT),
                bucket_seen: AtomicBool::new(false),
            }),
        })
    }

    /// The bucket and prefix.
    pub fn s3_location(&self) -> &S3Location {
        &self.inner.location
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the client: its configuration holds the credentials.
        f.debug_struct("S3Store")
            .field("location", &self.inner.location)
            .field("part_size", &self.inner.part_size)
            .finish_non_exhaustive()
    }
}

impl BackupStore for S3Store {
    fn location(&self) -> String {
        self.inner.location.to_string()
    }

    fn list(&self) -> Result<Vec<BackupEntry>> {
        let inner = &self.inner;
        let prefix = match inner.location.prefix() {
            "" => None,
            p => Some(
                ObjectPath::parse(p).map_err(|e| StoreError::InvalidLocation {
                    location: inner.location.to_string(),
                    reason: e.to_string(),
                })?,
            ),
        };
        let client = Arc::clone(&inner.client);
        let listed = inner
            .run(async move { client.list_with_delimiter(prefix.as_ref()).await })
            .map_err(|e| inner.list_error(e))?;
        let mut out: Vec<BackupEntry> = listed
            .objects
            .into_iter()
            .filter_map(|object| {
                let name = object.location.filename()?;
                crate::validate_name(name).ok()?;
                Some(BackupEntry {
                    name: name.to_owned(),
                    size: object.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        if name.is_empty() || name.contains(['/', '\\', '\0']) {
            return Err(StoreError::InvalidName(name.chars().take(80).collect()));
        }
        let inner = &self.inner;
        let path = inner.path(name)?;
        let url = inner.location.url(name);
        let client = Arc::clone(&inner.client);
        let first_path = path.clone();
        let first = inner.run(async move {
            let options = GetOptions::new().with_range(Some(0..FIRST_RANGE));
            let got = client.get_opts(&first_path, options).await?;
            let meta = got.meta.clone();
            let range = got.range.clone();
            Ok((chunks(got).await?, meta, range))
        });
        let (bytes, meta, range) = match first {
            Ok(got) => got,
            Err(e) if classify(&e) == Failure::NotFound => {
                // A 404 is the object unless the bucket is missing.
                inner.check_bucket(&path)?;
                return Err(inner.not_found(name));
            }
            Err(e) if classify(&e) != Failure::Other => return Err(inner.error("reading", url, e)),
            Err(e) => {
                // An empty object cannot serve a range; anything else is an error.
                let client = Arc::clone(&inner.client);
                let head_path = path.clone();
                return match inner.run(async move { client.head(&head_path).await }) {
                    Ok(meta) if meta.size == 0 => Ok(Box::new(io::empty())),
                    _ => Err(inner.error("reading", url, e)),
                };
            }
        };
        Ok(Box::new(S3Reader {
            inner: Arc::clone(inner),
            path,
            url,
            e_tag: meta.e_tag,
            size: meta.size,
            requested: range.end,
            current: bytes,
            next: VecDeque::new(),
        }))
    }

    fn create(&self, name: &str) -> Result<Box<dyn BackupWriter>> {
        crate::validate_name(name)?;
        let inner = &self.inner;
        let path = inner.path(name)?;
        // Some servers start uploads into missing buckets and fail only
        // at the end; fail before the snapshot is streamed instead.
        inner.check_bucket(&path)?;
        // The name is checked now (a HEAD), and again just before the
        // object appears.
        if inner.exists(name, &path)? {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        Ok(Box::new(S3Writer {
            inner: Arc::clone(inner),
            name: name.to_owned(),
            path,
            upload: None,
            buffer: new_part(),
            parts: 0,
            in_flight: VecDeque::new(),
            failed: false,
            done: false,
        }))
    }

    fn delete(&self, name: &str) -> Result<()> {
        crate::validate_name(name)?;
        let inner = &self.inner;
        let path = inner.path(name)?;
        // S3 deletes of missing keys succeed; the trait reports them.
        if !inner.exists(name, &path)? {
            return Err(inner.not_found(name));
        }
        let client = Arc::clone(&inner.client);
        inner
            .run(async move { client.delete(&path).await })
            .map_err(|e| inner.error("deleting", inner.location.url(name), e))
    }

    /// Incomplete multipart uploads are invisible to listing and reads, and
    /// object_store cannot list them; a bucket lifecycle rule reclaims their
    /// storage. Nothing to do here: returns 0.
    fn clean_stale(&self, _age: Duration) -> Result<usize> {
        Ok(0)
    }

    fn local_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }

    /// The parts an upload holds (two in flight, one filling) and about
    /// what the client adds: the peak RSS of `backup list` on S3 is 5 MiB
    /// above that on a directory, and a backup's 6 MiB more.
    fn write_buffer_bytes(&self) -> u64 {
        (self.inner.part_size * (MAX_IN_FLIGHT + 1)) as u64 + S3_CLIENT_BYTES
    }
}

/// The memory the S3 client (connections, TLS, the runtime) adds to a
/// command that writes to S3, measured (see `write_buffer_bytes`).
const S3_CLIENT_BYTES: u64 = 6 << 20;

struct S3Writer {
    inner: Arc<Inner>,
    name: String,
    path: ObjectPath,
    /// The multipart upload, once the first part is full; `None` before
    /// (and after it was completed or aborted).
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: PutPayloadMut,
    parts: usize,
    in_flight: VecDeque<Pending<()>>,
    failed: bool,
    /// Finished: nothing more may be written.
    done: bool,
}

impl S3Writer {
    fn url(&self) -> String {
        self.inner.location.url(&self.name)
    }

    /// Hands the full buffer to an upload task, after waiting for the
    /// oldest part when two are in flight already.
    fn send_part(&mut self) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.wait_oldest()?;
        }
        if self.done {
            return Err(self.finished());
        }
        if self.upload.is_none() {
            let client = Arc::clone(&self.inner.client);
            let path = self.path.clone();
            let started = self
                .inner
                .run(async move { client.put_multipart(&path).await })
                .map_err(|e| self.inner.error("starting the upload of", self.url(), e))?;
            self.upload = Some(started);
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(self.finished());
        };
        if self.parts >= MAX_PARTS {
            return Err(StoreError::Remote {
                what: "uploading",
                location: self.url(),
                source: format!(
                    "the backup needs more than {MAX_PARTS} parts of {} bytes; raise the part size",
                    self.inner.part_size
                )
                .into(),
            });
        }
        let data = std::mem::replace(&mut self.buffer, new_part()).freeze();
        let part = upload.put_part(data);
        self.parts += 1;
        self.in_flight.push_back(self.inner.spawn(part));
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<()> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        oldest
            .wait()
            .map_err(|e| self.inner.error("uploading a part of", self.url(), e))
    }

    fn finished(&self) -> StoreError {
        StoreError::Remote {
            what: "writing",
            location: self.url(),
            source: "the upload was already finished or aborted".into(),
        }
    }

    fn earlier_failure(&self) -> StoreError {
        StoreError::Remote {
            what: "writing",
            location: self.url(),
            source: "an earlier part failed to upload".into(),
        }
    }

    /// Fails with [`StoreError::AlreadyExists`] when an object has this
    /// backup's name (one HEAD): writing would replace it.
    fn refuse_existing(&self) -> Result<()> {
        if self.inner.exists(&self.name, &self.path)? {
            return Err(StoreError::AlreadyExists(self.name.clone()));
        }
        Ok(())
    }

    fn complete(&mut self) -> Result<()> {
        if self.failed {
            return Err(self.earlier_failure());
        }
        if self.done {
            return Err(self.finished());
        }
        if self.upload.is_none() {
            // Smaller than a part: one PUT, no multipart upload.
            self.done = true;
            self.refuse_existing()?;
            let payload = std::mem::replace(&mut self.buffer, new_part()).freeze();
            let client = Arc::clone(&self.inner.client);
            let path = self.path.clone();
            return self
                .inner
                .run(async move { client.put(&path, payload).await })
                .map(|_| ())
                .map_err(|e| self.inner.error("uploading", self.url(), e));
        }
        if !self.buffer.is_empty() {
            self.send_part()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        // Completing replaces any object of that name; names carry a
        // random suffix, and this check narrows the window further.
        self.refuse_existing()?;
        let Some(mut upload) = self.upload.take() else {
            return Err(self.finished());
        };
        self.done = true;
        let abort_wait = self.inner.abort_wait;
        self.inner
            .run(async move {
                let done = upload.complete().await;
                if done.is_err() {
                    let _ = tokio::time::timeout(abort_wait, upload.abort()).await;
                }
                done
            })
            .map(|_| ())
            .map_err(|e| self.inner.error("completing the upload of", self.url(), e))
    }
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(self.earlier_failure()));
        }
        if self.done {
            return Err(io::Error::other(self.finished()));
        }
        let room = self.inner.part_size - self.buffer.content_length();
        let n = room.min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.content_length() == self.inner.part_size
            && let Err(e) = self.send_part()
        {
            self.failed = true;
            return Err(io::Error::other(e));
        }
        Ok(n)
    }

    /// Parts go out when full; a short part can only be the last one.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BackupWriter for S3Writer {
    fn finish(mut self: Box<Self>) -> Result<()> {
        // On error, Drop aborts whatever is left of the upload.
        self.complete()
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        for part in self.in_flight.drain(..) {
            part.task.abort();
        }
        let wait = self.inner.abort_wait;
        let aborting = self.inner.spawn(async move {
            tokio::time::timeout(wait, upload.abort())
                .await
                .unwrap_or_else(|_| Err(task_lost()))
        });
        // Best effort: parts of an upload that cannot be aborted now are
        // never visible, and a lifecycle rule reclaims them.
        let _ = aborting.wait_at_most(wait + Duration::from_secs(1));
    }
}

/// An empty part, filled block by block.
fn new_part() -> PutPayloadMut {
    PutPayloadMut::new().with_block_size(PART_BLOCK)
}

/// The body of a GET as the chunks the server sent, without gathering
/// them into one allocation (see [`PART_BLOCK`]).
async fn chunks(got: GetResult) -> ObjectResult<VecDeque<Bytes>> {
    let mut stream = got.into_stream();
    let mut out = VecDeque::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        out.push_back(chunk?);
    }
    Ok(out)
}

struct S3Reader {
    inner: Arc<Inner>,
    path: ObjectPath,
    url: String,
    /// Every range must come from the object the first one came from.
    e_tag: Option<String>,
    size: u64,
    /// End of the ranges requested so far.
    requested: u64,
    /// What is left of the current range, as the server sent it.
    current: VecDeque<Bytes>,
    /// The ranges requested and not yet consumed, in order.
    next: VecDeque<Pending<VecDeque<Bytes>>>,
}

impl S3Reader {
    fn fetch_next(&mut self) -> Pending<VecDeque<Bytes>> {
        let start = self.requested;
        let end = start.saturating_add(READ_RANGE).min(self.size);
        self.requested = end;
        let mut options = GetOptions::new().with_range(Some(GetRange::Bounded(start..end)));
        options.if_match = self.e_tag.clone();
        let client = Arc::clone(&self.inner.client);
        let path = self.path.clone();
        self.inner
            .spawn(async move { chunks(client.get_opts(&path, options).await?).await })
    }

    /// Moves to the next range; `false` at the end of the object.
    fn advance(&mut self) -> io::Result<bool> {
        let pending = match self.next.pop_front() {
            Some(pending) => pending,
            None if self.requested < self.size => self.fetch_next(),
            None => return Ok(false),
        };
        let bytes = pending.wait().map_err(|e| {
            let e = match e {
                object_store::Error::Precondition { .. } => StoreError::Remote {
                    what: "reading",
                    location: self.url.clone(),
                    source: "the object changed while it was being read".into(),
                },
                e => self.inner.error("reading", self.url.clone(), e),
            };
            io::Error::other(e)
        })?;
        if bytes.iter().all(Bytes::is_empty) {
            return Err(io::Error::other(StoreError::Remote {
                what: "reading",
                location: self.url.clone(),
                source: "the server sent an empty range".into(),
            }));
        }
        self.current = bytes;
        while self.next.len() < READS_IN_FLIGHT && self.requested < self.size {
            let pending = self.fetch_next();
            self.next.push_back(pending);
        }
        Ok(true)
    }
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.current.front_mut() {
                Some(chunk) if chunk.is_empty() => {
                    self.current.pop_front();
                }
                Some(chunk) => {
                    let n = buf.len().min(chunk.len());
                    buf[..n].copy_from_slice(&chunk.split_to(n));
                    return Ok(n);
                }
                None => {
                    if !self.advance()? {
                        return Ok(0);
                    }
                }
            }
        }
    }
}

impl Drop for S3Reader {
    fn drop(&mut self) {
        for next in self.next.drain(..) {
            next.task.abort();
        }
    }
}
