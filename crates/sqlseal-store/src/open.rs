//! Choosing a store from a location: a directory path or an `s3://` URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::{BackupStore, LocalStore, StoreError};

/// How to reach an S3-compatible object store. Empty strings mean "not
/// set": the store then falls back to the usual AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`)
/// when [`use_env`](Self::use_env) is on, and then to AWS defaults. Values
/// set here win over the environment.
///
/// `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The endpoint URL, e.g. `http://127.0.0.1:9000`; empty for AWS.
    pub endpoint: String,
    /// The region, e.g. `eu-west-1`; empty for the environment or `us-east-1`.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key, zeroized when the settings are dropped.
    pub secret_access_key: Zeroizing<String>,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`) rather than
    /// virtual-hosted style (`BUCKET.ENDPOINT/KEY`). Most S3-compatible
    /// servers need path style.
    pub path_style: bool,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Read `AWS_*` environment variables for whatever is not set here.
    pub use_env: bool,
    /// Bytes per multipart-upload part (at least 5 MiB, the S3 minimum).
    /// At most two parts are in flight while the next one fills, so an
    /// upload holds about three parts in memory. S3 allows 10,000 parts,
    /// so the default of 6 MiB caps one backup at about 58 GiB.
    pub part_size: usize,
    /// Time allowed for one request, body included.
    pub request_timeout: Duration,
    /// Time allowed for connecting.
    pub connect_timeout: Duration,
    /// Retries of a failed request (with exponential back-off).
    pub max_retries: usize,
    /// No request is retried after this long since its first attempt.
    pub retry_timeout: Duration,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: Zeroizing::default(),
            path_style: true,
            allow_http: false,
            use_env: true,
            part_size: 6 << 20,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.secret_access_key.is_empty() {
            ""
        } else {
            "********"
        };
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &secret)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("use_env", &self.use_env)
            .field("part_size", &self.part_size)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

/// A bucket and a key prefix: `s3://BUCKET` or `s3://BUCKET/PREFIX`.
///
/// ```
/// use sqlseal_store::S3Location;
///
/// let loc: S3Location = "s3://backups/prod/app/".parse()?;
/// assert_eq!(loc.bucket(), "backups");
/// assert_eq!(loc.prefix(), "prod/app");
/// assert_eq!(loc.to_string(), "s3://backups/prod/app");
/// assert!("s3://backups/a//b".parse::<S3Location>().is_err());
/// # Ok::<(), sqlseal_store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct S3Location {
    bucket: String,
    prefix: String,
}

impl S3Location {
    /// The URL scheme.
    pub const SCHEME: &'static str = "s3://";

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/`; empty for the bucket's root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The URL of `name`, for messages: `s3://BUCKET/PREFIX/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("{}{}/{}", Self::SCHEME, self.bucket, self.key(name))
    }

    /// The location `part` (one or more `/`-separated segments) below this
    /// one: a database's sub-prefix of a backup location.
    pub fn join(&self, part: &str) -> Result<S3Location, StoreError> {
        format!("{self}/{}", part.trim_matches('/')).parse()
    }
}

/// Splits an object URL (`SCHEME://BUCKET/PREFIX/NAME`) into its location
/// and the object's name; `None` when it names no object.
///
/// ```
/// use sqlseal_store::split_object_url;
///
/// assert_eq!(
///     split_object_url("s3://b/p/app.db-1.sqlseal"),
///     Some(("s3://b/p", "app.db-1.sqlseal"))
/// );
/// assert_eq!(split_object_url("s3://b/"), None);
/// assert_eq!(split_object_url("s3://b"), None);
/// ```
pub fn split_object_url(url: &str) -> Option<(&str, &str)> {
    let (location, name) = url.rsplit_once('/')?;
    let rest = location.split_once("://")?.1;
    (!name.is_empty() && !rest.is_empty()).then_some((location, name))
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::SCHEME, self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for S3Location {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidLocation {
            location: url.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix(Self::SCHEME)
            .ok_or_else(|| invalid("expected s3://BUCKET/PREFIX"))?;
        if rest.contains(['?', '#', '\\', '\0']) || rest.chars().any(char::is_whitespace) {
            return Err(invalid(
                "query strings, fragments, backslashes and spaces are not supported",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !bucket_ok {
            return Err(invalid(
                "the bucket name must be 3 to 63 lowercase letters, digits, dots or hyphens",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(invalid(
                "the prefix must not contain empty, `.` or `..` segments",
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// Whether `location` looks like a URL (`scheme://...`) rather than a path.
fn url_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once("://")?;
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

/// Whether `location` is a URL (`scheme://...`), which [`open_store`]
/// treats as a remote store, rather than a directory path.
pub fn is_url(location: impl AsRef<Path>) -> bool {
    location.as_ref().to_str().and_then(url_scheme).is_some()
}

/// The store at `location`: an `s3://BUCKET/PREFIX` URL gives an S3 store
/// (with the `s3` feature; without it, [`StoreError::NoS3Support`]); any
/// other scheme is an error; anything else is a [`LocalStore`] directory.
///
/// Opening makes no request and touches no file: a missing bucket, bad
/// credentials or a missing directory show on first use.
///
/// ```
/// use sqlseal_store::{open_store, S3Settings};
///
/// let local = open_store("backups/app.db", &S3Settings::default())?;
/// assert_eq!(local.location(), "backups/app.db");
/// assert!(open_store("ftp://host/dir", &S3Settings::default()).is_err());
/// # Ok::<(), sqlseal_store::StoreError>(())
/// ```
pub fn open_store(
    location: impl AsRef<Path>,
    s3: &S3Settings,
) -> Result<Box<dyn BackupStore>, StoreError> {
    Location::parse(location)?.open(s3)
}

/// Where backups are kept: a directory, or an S3 bucket and prefix. What
/// `--dir` and `Backup.Location` name, parsed once.
///
/// ```
/// use sqlseal_store::Location;
///
/// let dir = Location::parse("backups")?;
/// assert_eq!(dir.join("acme/app.db")?.to_string(), "backups/acme/app.db");
/// let s3 = Location::parse("s3://bucket/prod")?;
/// assert!(s3.is_remote());
/// assert_eq!(s3.join("acme/app.db")?.to_string(), "s3://bucket/prod/acme/app.db");
/// assert!(Location::parse("ftp://host/dir").is_err());
/// # Ok::<(), sqlseal_store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A directory on this machine.
    Dir(PathBuf),
    /// An S3 bucket and key prefix.
    S3(S3Location),
}

impl Location {
    /// A directory path, or a URL: `s3://BUCKET/PREFIX` (any other scheme
    /// is an error).
    pub fn parse(location: impl AsRef<Path>) -> Result<Location, StoreError> {
        let path = location.as_ref();
        let Some(text) = path.to_str() else {
            return Ok(Location::Dir(path.to_path_buf()));
        };
        match url_scheme(text) {
            None => Ok(Location::Dir(path.to_path_buf())),
            Some("s3") => Ok(Location::S3(text.parse()?)),
            Some(other) => Err(StoreError::InvalidLocation {
                location: text.chars().take(200).collect(),
                reason: format!(
                    "unsupported scheme {other}://; use a directory or s3://BUCKET/PREFIX"
                ),
            }),
        }
    }

    /// Whether it is remote (not a directory on this machine).
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::S3(_))
    }

    /// The directory, for a local location.
    pub fn as_dir(&self) -> Option<&Path> {
        match self {
            Location::Dir(dir) => Some(dir),
            Location::S3(_) => None,
        }
    }

    /// The location `part` (one or more `/`-separated segments) below this
    /// one: a subdirectory, or a sub-prefix.
    pub fn join(&self, part: &str) -> Result<Location, StoreError> {
        match self {
            Location::Dir(dir) => Ok(Location::Dir(
                part.split('/')
                    .filter(|p| !p.is_empty())
                    .fold(dir.clone(), |d, p| d.join(p)),
            )),
            Location::S3(s3) => s3.join(part).map(Location::S3),
        }
    }

    /// The store there (see [`open_store`]).
    pub fn open(self, s3: &S3Settings) -> Result<Box<dyn BackupStore>, StoreError> {
        match self {
            Location::Dir(dir) => Ok(Box::new(LocalStore::new(dir))),
            Location::S3(location) => open_s3(location, s3),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::S3(s3) => s3.fmt(f),
        }
    }
}

#[cfg(feature = "s3")]
fn open_s3(location: S3Location, s3: &S3Settings) -> Result<Box<dyn BackupStore>, StoreError> {
    Ok(Box::new(crate::S3Store::new(location, s3)?))
}

#[cfg(not(feature = "s3"))]
fn open_s3(location: S3Location, _s3: &S3Settings) -> Result<Box<dyn BackupStore>, StoreError> {
    Err(StoreError::NoS3Support(location.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_parse_strictly() {
        let loc: S3Location = "s3://my-bucket".parse().expect("bucket only");
        assert_eq!((loc.bucket(), loc.prefix()), ("my-bucket", ""));
        assert_eq!(loc.key("x.sqlseal"), "x.sqlseal");
        assert_eq!(loc.url("x.sqlseal"), "s3://my-bucket/x.sqlseal");
        assert_eq!(loc.to_string(), "s3://my-bucket");
        let loc: S3Location = "s3://b.c-d/a/b/".parse().expect("prefix");
        assert_eq!(loc.key("x.sqlseal"), "a/b/x.sqlseal");
        assert_eq!(loc.to_string(), "s3://b.c-d/a/b");
        for bad in [
            "s3://",
            "s3:///prefix",
            "s3://ab",
            "s3://Upper",
            "s3://-bucket",
            "s3://bucket/a//b",
            "s3://bucket/../b",
            "s3://bucket/a?x=1",
            "s3://bucket/a b",
            "http://bucket/a",
        ] {
            let err = bad.parse::<S3Location>().expect_err(bad);
            assert!(
                err.to_string().starts_with("invalid backup location"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn locations_pick_a_store() {
        let settings = S3Settings::default();
        let local = open_store("some/dir", &settings).expect("a path is a local store");
        assert_eq!(local.location(), "some/dir");
        let local = open_store("dir:with://no-scheme", &settings).expect("not a scheme");
        assert_eq!(local.location(), "dir:with://no-scheme");
        assert!(!is_url("dir:with://no-scheme") && !is_url("./s3://x") && !is_url("backups"));
        assert!(is_url("s3://bucket") && is_url("gs://bucket/x"));
        let err = open_store("gs://bucket/x", &settings).expect_err("other schemes");
        assert!(
            err.to_string().contains("unsupported scheme gs://"),
            "{err}"
        );
        let err = open_store("s3://x", &settings).expect_err("bad bucket");
        assert!(matches!(err, StoreError::InvalidLocation { .. }), "{err}");
        let s3 = open_store("s3://bucket/prefix", &settings);
        #[cfg(feature = "s3")]
        assert_eq!(s3.expect("s3 store").location(), "s3://bucket/prefix");
        #[cfg(not(feature = "s3"))]
        assert_eq!(
            s3.expect_err("no s3 in this build").to_string(),
            "s3://bucket/prefix: this build of sqlseal has no S3 support \
             (build sqlseal-store with the `s3` feature)"
        );
    }

    #[test]
    fn debug_masks_the_secret() {
        let settings = S3Settings {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: String::from("wJalrXUtnFEMI/K7MDENG").into(),
            ..S3Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
    }
}
