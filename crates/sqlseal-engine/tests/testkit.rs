//! The container test vectors in `sqlseal-format/testdata/`.
//!
//! Each vector file says which keys to open it with and what must happen
//! (see `testdata/README.md`); [`every_vector_has_its_expected_outcome`]
//! opens every one with `open_container`, reads the whole image and checks
//! the outcome: the image's length and SHA-256, or the exact error message.
//!
//! Vectors are append-only: a changed vector is a format change. To add
//! one, add a recipe to [`Generator::run`] and run
//! `cargo test -p sqlseal-crypto --test testkit -- --ignored generate_missing_vectors`,
//! which writes only the files that do not exist yet (and the test keys, if
//! missing), after checking that each new vector behaves as its recipe says.

use std::fmt::Display;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlseal_crypto::{
    CryptoError, Keyring, P256Identity, Recipient, load_identity_file, load_recipient_file,
    random_backup_id, random_bytes, seal_container, seal_header, sign_seal,
};
use sqlseal_engine::{CancelFlag, NoProgress, open_container};
use sqlseal_format::payload::{
    FLAG_FINAL, FLAG_STORED, FRAME_HEADER_LEN, TAG_LEN, TRAILER_LEN, frame_digest_of,
};
use sqlseal_format::{
    ChunkCipher, Compression, CreatedAt, FormatError, FrameHeader, Header, ImageDigest, KeyId,
    Metadata, PayloadDigest, PayloadWriter, RecordedCheck, SALT_LEN, SEAL_LEN, Stanza, Trailer,
};

/// The folder of vector files.
fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sqlseal-format/testdata")
}

/// The folder of the test keys that `identity:` and `trust:` lines name.
fn keys_dir() -> PathBuf {
    testdata_dir().join("keys")
}

// ---------------------------------------------------------------------------
// The vector file format
// ---------------------------------------------------------------------------

/// What opening a vector must do.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    /// Opens, and the image has this length and SHA-256.
    Success { len: u64, sha256: [u8; 32] },
    /// Fails with exactly this message.
    Error(String),
}

/// One parsed vector file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Vector {
    expect: Expect,
    /// Private key files to put in the keyring.
    identities: Vec<String>,
    /// Public key files to trust as signers.
    trust: Vec<String>,
    comments: Vec<String>,
    /// The container bytes after the blank line.
    container: Vec<u8>,
}

fn set_once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), String> {
    if slot.replace(value).is_some() {
        return Err(format!("`{key}:` appears twice"));
    }
    Ok(())
}

fn parse_hex32(value: &str) -> Result<[u8; 32], String> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(format!(
            "`image-sha256: {value}`: expected 64 lowercase hex digits"
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn parse_len(value: &str) -> Result<u64, String> {
    let canonical = value.bytes().all(|b| b.is_ascii_digit())
        && !value.is_empty()
        && (value == "0" || !value.starts_with('0'));
    if !canonical {
        return Err(format!("`image-len: {value}`: expected a decimal number"));
    }
    value
        .parse()
        .map_err(|e| format!("`image-len: {value}`: {e}"))
}

/// Checks that a file or key name is a plain name (no path).
fn plain_name(key: &str, value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        && !value.starts_with('.');
    if !ok {
        return Err(format!("`{key}: {value}`: expected a file name in keys/"));
    }
    Ok(value.to_owned())
}

impl Vector {
    /// Parses a vector file strictly: `key: value` lines from a known set,
    /// `expect:` first, a blank line, then the container bytes.
    fn parse(bytes: &[u8]) -> Result<Vector, String> {
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or("no blank line ends the expectation lines")?;
        let head =
            std::str::from_utf8(&bytes[..split]).map_err(|_| "expectation lines are not UTF-8")?;
        let container = bytes[split + 2..].to_vec();

        let mut expect = None;
        let mut error = None;
        let mut len = None;
        let mut sha256 = None;
        let mut identities = Vec::new();
        let mut trust = Vec::new();
        let mut comments = Vec::new();
        for (i, line) in head.split('\n').enumerate() {
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("line {}: expected `key: value`, found `{line}`", i + 1))?;
            if value.is_empty() || value.trim() != value || value.contains('\r') {
                return Err(format!(
                    "line {}: `{key}:` has an empty or padded value",
                    i + 1
                ));
            }
            if i == 0 && key != "expect" {
                return Err("the first line must be `expect:`".into());
            }
            match key {
                "expect" => set_once(&mut expect, key, value.to_owned())?,
                "error" => set_once(&mut error, key, value.to_owned())?,
                "image-len" => set_once(&mut len, key, parse_len(value)?)?,
                "image-sha256" => set_once(&mut sha256, key, parse_hex32(value)?)?,
                "identity" => identities.push(plain_name(key, value)?),
                "trust" => trust.push(plain_name(key, value)?),
                "comment" => comments.push(value.to_owned()),
                other => return Err(format!("line {}: unknown key `{other}:`", i + 1)),
            }
        }
        let expect = match (expect.as_deref(), error, len, sha256) {
            (Some("success"), None, Some(len), Some(sha256)) => Expect::Success { len, sha256 },
            (Some("success"), ..) => {
                return Err(
                    "`expect: success` needs `image-len:` and `image-sha256:` and no `error:`"
                        .into(),
                );
            }
            (Some("error"), Some(message), None, None) => Expect::Error(message),
            (Some("error"), ..) => {
                return Err(
                    "`expect: error` needs `error:` and no `image-len:`/`image-sha256:`".into(),
                );
            }
            (other, ..) => {
                return Err(format!(
                    "`expect:` must be `success` or `error`, found {other:?}"
                ));
            }
        };
        if identities.is_empty() {
            return Err("no `identity:` line".into());
        }
        Ok(Vector {
            expect,
            identities,
            trust,
            comments,
            container,
        })
    }

    /// The file bytes; [`Vector::parse`] gives back `self`.
    fn encode(&self) -> Vec<u8> {
        let mut lines = Vec::new();
        match &self.expect {
            Expect::Success { len, sha256 } => {
                lines.push("expect: success".to_owned());
                lines.push(format!("image-len: {len}"));
                lines.push(format!("image-sha256: {}", hex::encode(sha256)));
            }
            Expect::Error(message) => {
                lines.push("expect: error".to_owned());
                lines.push(format!("error: {message}"));
            }
        }
        lines.extend(self.identities.iter().map(|k| format!("identity: {k}")));
        lines.extend(self.trust.iter().map(|k| format!("trust: {k}")));
        lines.extend(self.comments.iter().map(|c| format!("comment: {c}")));
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.container);
        out
    }
}

// ---------------------------------------------------------------------------
// Checking a vector
// ---------------------------------------------------------------------------

/// Counts and hashes the image as it is read.
#[derive(Default)]
struct HashSink {
    sha: Sha256,
    len: u64,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The keyring a vector names. An error here is a broken vector, never an
/// expected outcome.
fn keyring_for(vector: &Vector) -> Result<Keyring, String> {
    let dir = keys_dir();
    let mut keyring = Keyring::new();
    for name in &vector.identities {
        let (identity, _warnings) =
            load_identity_file(&dir.join(name)).map_err(|e| format!("identity {name}: {e}"))?;
        keyring.add_identity(identity);
    }
    for name in &vector.trust {
        keyring
            .trust(load_recipient_file(&dir.join(name)).map_err(|e| format!("trust {name}: {e}"))?);
    }
    Ok(keyring)
}

/// Opens the container and reads the whole image: its length and SHA-256,
/// or the error's one-line message.
fn open_vector(container: &[u8], keyring: &Keyring) -> Result<(u64, [u8; 32]), String> {
    let mut sink = HashSink::default();
    let trailer = open_container(
        "vector",
        container,
        keyring,
        &mut sink,
        2,
        &CancelFlag::new(),
        &NoProgress,
    )
    .map_err(|e| match e {
        // The vectors expect the container's own message, without the
        // engine's "backup NAME: " prefix.
        sqlseal_engine::EngineError::Open { source, .. } => source.to_string(),
        sqlseal_engine::EngineError::Payload { source, .. } => source.to_string(),
        other => other.to_string(),
    })?
    .trailer;
    let sha256: [u8; 32] = sink.sha.finalize().into();
    if trailer.db_len != sink.len || trailer.sha256 != sha256 {
        return Err(format!(
            "BUG: the reader returned a trailer for {} bytes but released {}",
            trailer.db_len, sink.len
        ));
    }
    Ok((sink.len, sha256))
}

/// Opens a vector with its keys and compares the outcome with its expectation.
fn check_vector(vector: &Vector) -> Result<(), String> {
    let keyring = keyring_for(vector)?;
    match (&vector.expect, open_vector(&vector.container, &keyring)) {
        (Expect::Success { len, sha256 }, Ok((got_len, got_sha))) => {
            if (*len, *sha256) == (got_len, got_sha) {
                Ok(())
            } else {
                Err(format!(
                    "opened, but the image has {got_len} bytes with SHA-256 {}; expected {len} bytes with SHA-256 {}",
                    hex::encode(got_sha),
                    hex::encode(sha256)
                ))
            }
        }
        (Expect::Success { .. }, Err(got)) => Err(format!("expected success, got error `{got}`")),
        (Expect::Error(want), Ok(_)) => Err(format!("expected error `{want}`, but it opened")),
        (Expect::Error(want), Err(got)) if *want == got => Ok(()),
        (Expect::Error(want), Err(got)) => Err(format!(
            "expected error `{want}`\n        got error `{got}`"
        )),
    }
}

/// The vector files: every file of the folder except its README.
fn vector_files() -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(testdata_dir())
        .expect("testdata folder is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            (name != "README.md").then_some((name, path))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_vector_has_its_expected_outcome() {
    let files = vector_files();
    let mut failures = Vec::new();
    let (mut successes, mut errors) = (0, 0);
    for (name, path) in &files {
        let bytes = fs::read(path).expect("vector file is readable");
        let name_ok = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let result = if name_ok {
            Vector::parse(&bytes).and_then(|v| check_vector(&v).map(|()| v))
        } else {
            Err("vector names are lowercase letters, digits and `_`".into())
        };
        match result {
            Ok(Vector {
                expect: Expect::Success { .. },
                ..
            }) => successes += 1,
            Ok(_) => errors += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(
        successes > 0 && errors > 0,
        "found {successes} success and {errors} error vectors; expected both kinds"
    );
}

#[test]
fn vector_parser_is_strict() {
    let good = b"expect: error\nerror: boom\nidentity: alice.key\ncomment: c\n\nBYTES\n\n";
    let parsed = Vector::parse(good).expect("a well-formed vector parses");
    assert_eq!(parsed.expect, Expect::Error("boom".into()));
    assert_eq!(parsed.container, b"BYTES\n\n");
    assert_eq!(parsed.encode(), good);

    let sha = "00".repeat(32);
    let success = format!(
        "expect: success\nimage-len: 7\nimage-sha256: {sha}\nidentity: a.key\ntrust: s.pub\n\n"
    );
    assert!(matches!(
        Vector::parse(success.as_bytes()).expect("parses").expect,
        Expect::Success { len: 7, .. }
    ));

    let bad: &[(&str, &str)] = &[
        (
            "expect: error\nerror: x\nidentity: a.key\nfile-key: 00\n\n",
            "unknown key",
        ),
        ("error: x\nexpect: error\nidentity: a.key\n\n", "first line"),
        (
            "expect: error\nerror: x\nidentity: a.key\n",
            "no blank line",
        ),
        ("expect: error\nidentity: a.key\n\n", "needs `error:`"),
        (
            "expect: error\nerror: x\nerror: y\nidentity: a.key\n\n",
            "twice",
        ),
        ("expect: error\nerror: x\n\n", "no `identity:`"),
        (
            "expect: maybe\nerror: x\nidentity: a.key\n\n",
            "must be `success` or `error`",
        ),
        (
            "expect: success\nimage-len: 1\nidentity: a.key\n\n",
            "needs `image-len:`",
        ),
        (
            "expect: error\nerror: x\nimage-len: 1\nidentity: a.key\n\n",
            "no `image-len:`",
        ),
        (
            "expect: error\nerror: x\nidentity: ../a.key\n\n",
            "file name",
        ),
        ("expect: error\nerror:  x\nidentity: a.key\n\n", "padded"),
        ("expect: error\nerror: x\nidentity a.key\n\n", "key: value"),
    ];
    for (text, why) in bad {
        let err = Vector::parse(text.as_bytes()).expect_err(text);
        assert!(
            err.contains(why),
            "{text:?}: error `{err}` does not mention `{why}`"
        );
    }
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// Plaintext chunk size of the vectors: the smallest allowed, to keep files small.
const CS: u32 = 4096;
const CSU: usize = CS as usize;

/// Written above every test key.
const KEY_BANNER: &str =
    "TEST KEY ONLY: published with sqlseal's test vectors; never use it for real backups.\n";

/// The test keys. `server` signs, `alice` and `bob` receive, `mallory` is a stranger.
struct Keys {
    server: P256Identity,
    alice: P256Identity,
    bob: P256Identity,
    mallory: P256Identity,
}

impl Keys {
    /// Loads `NAME.key`/`NAME.pub`, creating the files that are missing.
    fn load_or_create(dir: &Path) -> Keys {
        fs::create_dir_all(dir).expect("create keys folder");
        let load = |name: &str| {
            let key_path = dir.join(format!("{name}.key"));
            if !key_path.exists() {
                let identity = P256Identity::generate().expect("generate key");
                let pem = identity.to_pkcs8_pem().expect("encode key");
                fs::write(&key_path, format!("{KEY_BANNER}{}", pem.as_str())).expect("write key");
            }
            let (identity, _warnings) = load_identity_file(&key_path).expect("load test key");
            let pub_path = dir.join(format!("{name}.pub"));
            if !pub_path.exists() {
                let pem = identity.recipient().to_public_pem();
                fs::write(&pub_path, format!("{KEY_BANNER}{pem}")).expect("write public key");
            }
            identity
        };
        Keys {
            server: load("server"),
            alice: load("alice"),
            bob: load("bob"),
            mallory: load("mallory"),
        }
    }
}

/// Deterministic text-like bytes: they compress.
fn text(len: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(
            format!("row {seed}:{i:06} of the test image, lorem ipsum\n").as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Deterministic noise: LZ4 cannot shrink it, so its chunk is stored.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed.to_be_bytes());
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

fn metadata(chunk_size: u32) -> Metadata {
    Metadata {
        backup_id: random_backup_id().expect("random id"),
        created: CreatedAt::from_microsecond(1_764_000_000_123_456).expect("valid time"),
        database: "app.db".into(),
        page_size: 4096,
        method: "dbpage".into(),
        compression: Compression::Lz4,
        chunk_size,
        chain: None,
    }
}

fn page_count(image: &[u8], page_size: u32) -> u64 {
    image.len().div_ceil(page_size as usize) as u64
}

/// A container made by the library's writer.
fn seal(meta: Metadata, to: &[&P256Identity], signer: &P256Identity, image: &[u8]) -> Vec<u8> {
    let pages = page_count(image, meta.page_size);
    let recipients: Vec<&dyn Recipient> =
        to.iter().map(|i| i.recipient() as &dyn Recipient).collect();
    let (_, mut writer) = seal_container(Vec::new(), meta, &recipients, signer).expect("seal");
    writer.write_image(image).expect("write image");
    writer.finish(pages, RecordedCheck::None).expect("finish").0
}

/// A container whose header is edited before it is signed and MACed again
/// with the real keys: a writer that makes other choices than ours.
fn seal_custom_header(keys: &Keys, image: &[u8], edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let meta = metadata(CS);
    let pages = page_count(image, meta.page_size);
    let (mut header, data_key) =
        seal_header(meta, &[keys.alice.recipient()], &keys.server).expect("seal header");
    edit(&mut header);
    header.signature = keys.server.sign(&header.signed_bytes());
    header.mac = data_key.header_mac(&header.mac_input());
    let mut out = header.encode();
    let salt = random_bytes::<SALT_LEN>().expect("salt");
    let mut writer = PayloadWriter::new(&mut out, &data_key, salt, CS).expect("payload writer");
    writer.write_image(image).expect("write image");
    let (_, _, digest) = writer.finish(pages).expect("finish");
    out.extend_from_slice(&sign_seal(&keys.server, &header, &digest, RecordedCheck::None).encode());
    out
}

/// A container whose frames are sealed one by one with the real data key,
/// so they authenticate but may break the stream's rules.
fn seal_by_hand(keys: &Keys, frames: impl FnOnce(&ChunkCipher) -> Vec<Vec<u8>>) -> Vec<u8> {
    let (header, data_key) =
        seal_header(metadata(CS), &[keys.alice.recipient()], &keys.server).expect("seal header");
    let salt = random_bytes::<SALT_LEN>().expect("salt");
    let cipher = ChunkCipher::new(&data_key, &salt, CS).expect("cipher");
    let mut out = header.encode();
    out.extend_from_slice(&salt);
    let mut digest = PayloadDigest::new(&salt);
    for frame in frames(&cipher) {
        digest.add_frame(&frame_digest_of(&frame));
        out.extend_from_slice(&frame);
    }
    let seal = sign_seal(&keys.server, &header, &digest.finish(), RecordedCheck::None);
    out.extend_from_slice(&seal.encode());
    out
}

fn seal_chunk(cipher: &ChunkCipher, index: u64, data: &[u8], trailer: Option<&Trailer>) -> Vec<u8> {
    let mut frame = Vec::new();
    cipher
        .seal(index, data, trailer, &mut frame)
        .expect("seal chunk");
    frame
}

fn trailer_of(image: &[u8]) -> Trailer {
    let mut digest = ImageDigest::new();
    digest.update(image);
    digest.trailer(page_count(image, 4096))
}

/// A container cut into header, salt, frames and seal record.
#[derive(Clone)]
struct Parts {
    header: Header,
    header_bytes: Vec<u8>,
    salt: Vec<u8>,
    frames: Vec<Vec<u8>>,
    seal: Vec<u8>,
}

impl Parts {
    fn split(container: &[u8]) -> Parts {
        let mut rest = container;
        let header = Header::parse(&mut rest).expect("base header parses");
        let header_len = container.len() - rest.len();
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (mut rest, seal) = rest.split_at(rest.len() - SEAL_LEN);
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let fh = FrameHeader::decode(rest[..FRAME_HEADER_LEN].try_into().expect("17 bytes"));
            let (frame, tail) = rest.split_at(FRAME_HEADER_LEN + fh.sealed_len as usize);
            frames.push(frame.to_vec());
            rest = tail;
        }
        Parts {
            header,
            header_bytes: container[..header_len].to_vec(),
            salt: salt.to_vec(),
            frames,
            seal: seal.to_vec(),
        }
    }

    /// Header bytes, salt, these frames, then the seal record.
    fn with_frames(&self, frames: &[&Vec<u8>]) -> Vec<u8> {
        let mut out = self.header_bytes.clone();
        out.extend_from_slice(&self.salt);
        for f in frames {
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&self.seal);
        out
    }

    fn join(&self) -> Vec<u8> {
        self.with_frames(&self.frames.iter().collect::<Vec<_>>())
    }

    /// The same payload behind a re-encoded, edited header.
    fn with_header(&self, edit: impl FnOnce(&mut Header)) -> Vec<u8> {
        let mut header = self.header.clone();
        edit(&mut header);
        let mut parts = self.clone();
        parts.header_bytes = header.encode();
        parts.join()
    }

    /// The same bytes with one text edit inside the header.
    fn edit_text(&self, from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(&self.header_bytes).expect("header is UTF-8");
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` must occur once in the header"
        );
        let mut parts = self.clone();
        parts.header_bytes = text.replacen(from, to, 1).into_bytes();
        parts.join()
    }

    /// The frames after `frame` (0-based) start at this offset of the file.
    fn frame_offset(&self, frame: usize) -> usize {
        self.header_bytes.len()
            + SALT_LEN
            + self.frames[..frame].iter().map(Vec::len).sum::<usize>()
    }
}

fn flipped(mut bytes: Vec<u8>, at: usize, mask: u8) -> Vec<u8> {
    bytes[at] ^= mask;
    bytes
}

/// Writes the vectors that are missing.
struct Generator {
    dir: PathBuf,
    keys: Keys,
    written: Vec<String>,
    kept: usize,
}

impl Generator {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `vector` as `name` unless that file exists, after checking
    /// that it behaves as the recipe says.
    fn add(&mut self, name: &str, vector: Vector) {
        let path = self.path(name);
        if path.exists() {
            self.kept += 1;
            return;
        }
        if let Err(e) = check_vector(&vector) {
            panic!("new vector {name} does not behave as its recipe says: {e}");
        }
        let bytes = vector.encode();
        assert_eq!(
            Vector::parse(&bytes).as_ref(),
            Ok(&vector),
            "{name} round-trips"
        );
        fs::write(&path, bytes).expect("write vector");
        self.written.push(name.to_owned());
    }

    /// A vector that an earlier step wrote.
    fn load(&self, name: &str) -> Vector {
        let bytes = fs::read(self.path(name)).expect("an earlier step wrote this vector");
        Vector::parse(&bytes).expect("vector parses")
    }

    /// A vector other vectors are made from: read from its file if it exists
    /// (so derived vectors match the committed one), else built and written.
    fn base(&mut self, name: &str, build: impl FnOnce(&Keys) -> Vector) -> Vector {
        let path = self.path(name);
        if path.exists() {
            self.kept += 1;
            return Vector::parse(&fs::read(&path).expect("read base vector"))
                .expect("base vector parses");
        }
        let vector = build(&self.keys);
        self.add(name, vector.clone());
        vector
    }

    /// Opens for alice, signed by the trusted server key.
    fn success(container: Vec<u8>, image: &[u8], comment: &str) -> Vector {
        Vector {
            expect: Expect::Success {
                len: image.len() as u64,
                sha256: Sha256::digest(image).into(),
            },
            identities: vec!["alice.key".into()],
            trust: vec!["server.pub".into()],
            comments: vec![comment.into()],
            container,
        }
    }

    /// Fails for alice (who trusts the server key) with `error`.
    fn error(container: Vec<u8>, error: impl Display, comment: &str) -> Vector {
        Vector {
            expect: Expect::Error(error.to_string()),
            identities: vec!["alice.key".into()],
            trust: vec!["server.pub".into()],
            comments: vec![comment.into()],
            container,
        }
    }

    fn run(&mut self) {
        self.good();
        self.header();
        self.payload();
    }

    fn good(&mut self) {
        let k = &self.keys;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "good_empty",
                Vec::new(),
                "an empty image: one final chunk of 0 bytes",
            ),
            ("good_one_byte", vec![0x53], "a 1-byte image"),
            (
                "good_one_full_chunk",
                noise(CSU, 1),
                "exactly one chunk of 4096 bytes, stored (incompressible), final and full",
            ),
            (
                "good_chunk_boundary_plus_one",
                text(CSU + 1, 2),
                "one byte past a chunk boundary: a full chunk, then a final chunk of 1 byte",
            ),
        ];
        let cases: Vec<(&str, Vector)> = cases
            .into_iter()
            .map(|(name, image, comment)| {
                let container = seal(metadata(CS), &[&k.alice], &k.server, &image);
                (name, Self::success(container, &image, comment))
            })
            .collect();
        for (name, vector) in cases {
            self.add(name, vector);
        }
        self.base("good_several_chunks", |k| {
            let image = several_chunks_image();
            let container = seal(metadata(CS), &[&k.alice], &k.server, &image);
            Self::success(
                container,
                &image,
                "4 chunks: lz4 text, stored noise, lz4 zeros, final 100 bytes; the payload vectors are edits of this file",
            )
        });

        let two = self.base("good_two_recipients_alice", |k| {
            let image = text(6000, 3);
            let container = seal(metadata(CS), &[&k.alice, &k.bob], &k.server, &image);
            Self::success(
                container,
                &image,
                "two recipients, alice and bob; opened by alice",
            )
        });
        self.add(
            "good_two_recipients_bob",
            Vector {
                identities: vec!["bob.key".into()],
                comments: vec!["the same file as good_two_recipients_alice, opened by bob".into()],
                ..two
            },
        );

        let k = &self.keys;
        let image = text(300, 4);
        let self_signed = Vector {
            trust: Vec::new(),
            ..Self::success(
                seal(metadata(CS), &[&k.alice], &k.alice, &image),
                &image,
                "signed by the recipient's own key, which needs no trust line",
            )
        };
        let second = Vector {
            identities: vec!["mallory.key".into(), "alice.key".into()],
            ..Self::success(
                seal(metadata(CS), &[&k.alice], &k.server, &image),
                &image,
                "two identities; the first has no stanza, the second opens",
            )
        };
        let image_unusual = text(20_000, 5);
        let unusual = Metadata {
            created: CreatedAt::from_microsecond(0).expect("the Unix epoch"),
            database: "Ünïcode data base.sqlite3".into(),
            page_size: 65536,
            method: "backup-api".into(),
            ..metadata(8192)
        };
        let unusual = Self::success(
            seal(unusual, &[&k.alice], &k.server, &image_unusual),
            &image_unusual,
            "unusual but valid metadata: chunk size 8192, page size 65536, non-ASCII name, created at the Unix epoch",
        );
        let alice_id = k.alice.key_id();
        let grease = Self::success(
            seal_custom_header(k, &image, |h| {
                h.stanzas.insert(
                    0,
                    Stanza {
                        kind: "x-future-kind".into(),
                        key_id: alice_id,
                        args: vec![b"not for this reader".to_vec()],
                    },
                );
            }),
            &image,
            "a stanza of a type this reader does not know, before alice's: skipped",
        );
        self.add("good_self_signed", self_signed);
        self.add("good_second_identity_opens", second);
        self.add("good_unusual_metadata", unusual);
        self.add("good_unknown_stanza_type", grease);

        // Added after the first set; vectors are append-only.
        let k = &self.keys;
        let failed_first = Self::success(
            seal_custom_header(k, &image, |h| {
                let mut broken = h.stanzas[0].clone();
                broken.args[1][0] ^= 0x01;
                h.stanzas.insert(0, broken);
            }),
            &image,
            "two stanzas for alice; the first does not open, the second does: the search goes on",
        );
        let full = text(CSU, 13);
        let empty_final = Self::success(
            seal_by_hand(k, |c| {
                vec![
                    seal_chunk(c, 0, &full, None),
                    seal_chunk(c, 1, &[], Some(&trailer_of(&full))),
                ]
            }),
            &full,
            "a full chunk, then an empty final chunk: writers do not split this way, readers accept it",
        );
        self.add("good_failed_stanza_then_good_one", failed_first);
        self.add("good_empty_final_chunk_after_full", empty_final);
    }

    fn header(&mut self) {
        let one = self.load("good_one_byte").container;
        let p = Parts::split(&one);
        let k = &self.keys;
        let (server, alice, mallory) = (k.server.key_id(), k.alice.key_id(), k.mallory.key_id());
        let h = &p.header;
        let header_text = std::str::from_utf8(&p.header_bytes).expect("UTF-8");
        let at = |needle: &str| header_text.find(needle).expect("line present");
        let sig_bad = CryptoError::BadSignature { key_id: server };
        let stanza_failed = CryptoError::StanzaFailed { key_id: alice };
        let no_match = CryptoError::NoMatchingKey {
            theirs: mallory.to_string(),
            ours: alice.to_string(),
        };

        let id = h.metadata.backup_id.to_string();
        let mut edited_id = id.clone().into_bytes();
        edited_id[0] = if edited_id[0] == b'0' { b'1' } else { b'0' };
        let edited_id = String::from_utf8(edited_id).expect("hex");
        let created = h.metadata.created;
        let later = CreatedAt::from_microsecond(created.as_microsecond() + 1).expect("valid time");

        let other_image = [0x54];
        let other = Parts::split(&seal(metadata(CS), &[&k.alice], &k.server, &other_image));

        let sqlite: Vec<u8> = b"SQLite format 3\0\x10\x00\x01\x01\x00\x40\x20\x20"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, 76))
            .collect();

        let cases: Vec<(&str, Vec<u8>, String, &str)> = vec![
            (
                "header_empty_file",
                Vec::new(),
                FormatError::Empty.to_string(),
                "a file of 0 bytes",
            ),
            (
                "header_not_sqlseal_sqlite",
                sqlite,
                FormatError::NotSqlseal.to_string(),
                "a SQLite database file, not a backup",
            ),
            (
                "header_not_sqlseal_age",
                b"age-encryption.org/v1\n-> X25519 AAAA\nBBBB\n--- CCCC\n\x00\x01".to_vec(),
                FormatError::NotSqlseal.to_string(),
                "an age file, not a sqlseal backup",
            ),
            (
                "header_unsupported_version",
                p.edit_text("sqlseal/v2\n", "sqlseal/v3\n"),
                FormatError::UnsupportedVersion("v3".into()).to_string(),
                "a future format version",
            ),
            (
                "header_unknown_field",
                p.edit_text("\npage-size: ", "\ncomment: hello\npage-size: "),
                FormatError::UnknownField {
                    line: 5,
                    field: "comment".into(),
                }
                .to_string(),
                "an extra line with a field name v2 does not define",
            ),
            (
                "header_compression_edited",
                p.edit_text("\ncompression: lz4\n", "\ncompression: lz5\n"),
                FormatError::InvalidValue {
                    line: 7,
                    field: "compression",
                    reason: "`lz5` is not supported (v2 knows `lz4`)".into(),
                }
                .to_string(),
                "compression edited to a value v2 does not know",
            ),
            (
                "header_page_size_invalid",
                p.edit_text("\npage-size: 4096\n", "\npage-size: 4000\n"),
                FormatError::InvalidValue {
                    line: 5,
                    field: "page-size",
                    reason: "4000 is not a power of two from 512 to 65536".into(),
                }
                .to_string(),
                "page-size edited to a value no SQLite database has",
            ),
            (
                "header_no_recipients",
                p.with_header(|h| h.stanzas.clear()),
                FormatError::NoRecipients.to_string(),
                "the recipient line removed",
            ),
            (
                "header_truncated_in_stanza",
                one[..at("recipient: ") + 30].to_vec(),
                FormatError::HeaderTruncated.to_string(),
                "the file ends inside the recipient line",
            ),
            (
                "header_truncated_before_mac",
                one[..at("mac: ")].to_vec(),
                FormatError::HeaderTruncated.to_string(),
                "the file ends after the signature line",
            ),
            (
                "header_truncated_in_mac_line",
                one[..at("mac: ") + 10].to_vec(),
                FormatError::HeaderTruncated.to_string(),
                "the file ends inside the mac line",
            ),
            (
                "header_edited_id",
                p.edit_text(&format!("id: {id}\n"), &format!("id: {edited_id}\n")),
                stanza_failed.to_string(),
                "one digit of the backup id changed: the stanza is bound to the id",
            ),
            (
                "header_edited_created",
                p.edit_text(
                    &format!("created: {created}\n"),
                    &format!("created: {later}\n"),
                ),
                sig_bad.to_string(),
                "created moved by one microsecond",
            ),
            (
                "header_edited_database",
                p.edit_text("database: app.db\n", "database: apq.db\n"),
                sig_bad.to_string(),
                "one letter of the database name changed",
            ),
            (
                "header_edited_page_size",
                p.edit_text("page-size: 4096\n", "page-size: 1024\n"),
                sig_bad.to_string(),
                "page-size changed to another valid value",
            ),
            (
                "header_edited_method",
                p.edit_text("method: dbpage\n", "method: vacuum\n"),
                sig_bad.to_string(),
                "method changed to another valid value",
            ),
            (
                "header_edited_chunk_size",
                p.edit_text("chunk-size: 4096\n", "chunk-size: 8192\n"),
                sig_bad.to_string(),
                "chunk-size changed to another valid value",
            ),
            (
                "header_edited_signer",
                p.edit_text(
                    &format!("signer: {server}\n"),
                    &format!("signer: {alice}\n"),
                ),
                CryptoError::BadSignature { key_id: alice }.to_string(),
                "the signer line names alice (trusted) instead of the server",
            ),
            (
                "header_edited_stanza_key_id",
                p.edit_text(&format!(" {alice} "), &format!(" {mallory} ")),
                no_match.to_string(),
                "the stanza's key id changed to mallory's",
            ),
            (
                "header_stanza_body_flipped",
                p.with_header(|h| h.stanzas[0].args[1][5] ^= 0x01),
                stanza_failed.to_string(),
                "one bit of the wrapped data key flipped",
            ),
            (
                "header_stanza_extra_argument",
                p.with_header(|h| h.stanzas[0].args.push(vec![0; 4])),
                CryptoError::StanzaMalformed {
                    key_id: alice,
                    reason: "expected 2 arguments".into(),
                }
                .to_string(),
                "a third argument appended to alice's stanza",
            ),
            (
                "header_stanza_from_other_backup",
                p.with_header(|h| h.stanzas = other.header.stanzas.clone()),
                stanza_failed.to_string(),
                "alice's stanza copied from another backup: it is bound to the other backup id",
            ),
            (
                "header_stanza_and_id_from_other_backup",
                p.with_header(|h| {
                    h.stanzas = other.header.stanzas.clone();
                    h.metadata.backup_id = other.header.metadata.backup_id;
                }),
                sig_bad.to_string(),
                "another backup's stanza and id: the stanza opens but the signature does not cover them",
            ),
            (
                "header_signature_flipped",
                p.with_header(|h| h.signature[10] ^= 0x01),
                sig_bad.to_string(),
                "one bit of the signature flipped",
            ),
            (
                "header_mac_flipped",
                p.with_header(|h| h.mac[0] ^= 0x80),
                FormatError::HeaderMac.to_string(),
                "one bit of the header MAC flipped",
            ),
            (
                "header_edited_and_resigned",
                p.with_header(|h| {
                    h.metadata.page_size = 1024;
                    h.signature = k.server.sign(&h.signed_bytes());
                }),
                FormatError::HeaderMac.to_string(),
                "page-size edited and signed again by the trusted key, which does not know the data key",
            ),
            (
                "header_wrong_key",
                seal(metadata(CS), &[&k.mallory], &k.server, &other_image),
                no_match.to_string(),
                "encrypted to mallory only; opened by alice",
            ),
            (
                "header_untrusted_signer",
                seal(metadata(CS), &[&k.alice], &k.mallory, &other_image),
                CryptoError::UntrustedSigner { key_id: mallory }.to_string(),
                "encrypted to alice but signed by mallory, whom alice does not trust",
            ),
            // Added after the first set; vectors are append-only.
            (
                "header_crlf",
                {
                    let crlf = header_text.replace('\n', "\r\n");
                    let mut parts = p.clone();
                    parts.header_bytes = crlf.into_bytes();
                    parts.join()
                },
                FormatError::CrLf.to_string(),
                "the header's line ends converted to CR LF",
            ),
            (
                "header_stanza_wrong_argument_lengths",
                p.with_header(|h| {
                    h.stanzas[0].args[1].pop();
                }),
                CryptoError::StanzaMalformed {
                    key_id: alice,
                    reason: "wrong argument lengths".into(),
                }
                .to_string(),
                "the last byte of alice's wrapped data key removed",
            ),
        ];
        for (name, container, error, comment) in cases {
            self.add(name, Self::error(container, error, comment));
        }
    }

    fn payload(&mut self) {
        let base = self.load("good_several_chunks").container;
        let p = Parts::split(&base);
        let f = &p.frames;
        assert_eq!(f.len(), 4, "good_several_chunks has 4 frames");
        assert_eq!(f[1][8], FLAG_STORED, "frame 1 is stored");
        assert_eq!(f[3][8] & FLAG_FINAL, FLAG_FINAL, "frame 3 is final");
        let h = p.header_bytes.len();
        // The end of the final frame; the seal record follows.
        let end = base.len() - SEAL_LEN;
        let k = &self.keys;
        let auth = |index| FormatError::ChunkAuth { index }.to_string();
        let bad_frame = |index, reason: &str| {
            FormatError::BadFrame {
                index,
                reason: reason.into(),
            }
            .to_string()
        };
        let off1 = p.frame_offset(1);
        let off3 = p.frame_offset(3);

        let other = Parts::split(&seal(
            metadata(CS),
            &[&k.alice],
            &k.server,
            &several_chunks_image(),
        ));
        let mut chunk_from_other = p.clone();
        chunk_from_other.frames[1] = other.frames[1].clone();
        let mut payload_from_other = p.clone();
        payload_from_other.salt = other.salt.clone();
        payload_from_other.frames = other.frames.clone();

        let img = text(CSU + 100, 6);
        let two_final = seal_by_hand(k, |c| {
            vec![
                seal_chunk(c, 0, &img[..CSU], Some(&trailer_of(&img[..CSU]))),
                seal_chunk(c, 1, &img[CSU..], Some(&trailer_of(&img))),
            ]
        });
        let img2 = text(2 * CSU, 7);
        let after_final = seal_by_hand(k, |c| {
            vec![
                seal_chunk(c, 0, &img2[..CSU], Some(&trailer_of(&img2[..CSU]))),
                seal_chunk(c, 1, &img2[CSU..], None),
            ]
        });
        let small = text(100, 8);
        let wrong_len = seal_by_hand(k, |c| {
            let t = Trailer {
                db_len: 101,
                ..trailer_of(&small)
            };
            vec![seal_chunk(c, 0, &small, Some(&t))]
        });
        let wrong_sha = seal_by_hand(k, |c| {
            let mut t = trailer_of(&small);
            t.sha256[0] ^= 0x01;
            vec![seal_chunk(c, 0, &small, Some(&t))]
        });

        // The forgery the seal stops: alice, a recipient, unwraps the data
        // key from the genuine signed header and seals an image of her own
        // under it, keeping the server's header and seal record.
        let mut alice = Keyring::new();
        alice.add_identity(k.alice.clone());
        alice.trust(k.server.recipient().clone());
        let data_key = alice
            .open_header(&p.header)
            .expect("alice opens the header");
        let forged_image = text(3 * CSU + 100, 13);
        let mut forged = p.header_bytes.clone();
        let mut writer =
            PayloadWriter::new(&mut forged, &data_key, [3; SALT_LEN], CS).expect("payload writer");
        writer.write_image(&forged_image).expect("write");
        let (_, _, forged_digest) = writer
            .finish(page_count(&forged_image, 4096))
            .expect("finish");
        let mut forged_self_signed = forged.clone();
        forged.extend_from_slice(&p.seal);
        forged_self_signed.extend_from_slice(
            &sign_seal(&k.alice, &p.header, &forged_digest, RecordedCheck::None).encode(),
        );
        let bad_seal = CryptoError::BadSeal {
            key_id: k.server.key_id(),
        }
        .to_string();
        let seal_at = base.len() - SEAL_LEN;

        let frames = |idx: &[usize]| p.with_frames(&idx.iter().map(|&i| &f[i]).collect::<Vec<_>>());
        let mut trailing_zeros = base.clone();
        trailing_zeros.extend_from_slice(&[0; 64]);
        let mut trailing_byte = base.clone();
        trailing_byte.push(0);

        let cases: Vec<(&str, Vec<u8>, String, &str)> = vec![
            (
                "payload_resealed_by_recipient",
                forged,
                bad_seal.clone(),
                "a recipient's forgery: the genuine header and seal record around another image sealed under the unwrapped data key",
            ),
            (
                "payload_resealed_by_recipient_self_signed",
                forged_self_signed,
                bad_seal.clone(),
                "the same forgery with a seal record the recipient signed with her own key",
            ),
            (
                "payload_seal_missing",
                base[..seal_at].to_vec(),
                FormatError::SealTruncated.to_string(),
                "the file ends right after the final frame",
            ),
            (
                "payload_seal_truncated",
                base[..base.len() - 1].to_vec(),
                FormatError::SealTruncated.to_string(),
                "the file ends one byte before the end of the seal record",
            ),
            (
                "payload_seal_signature_flipped",
                flipped(base.clone(), seal_at + 8 + 40, 0x02),
                bad_seal.clone(),
                "one bit of the seal signature flipped",
            ),
            (
                "payload_seal_check_edited",
                flipped(base.clone(), seal_at + 4, 0x02),
                bad_seal.clone(),
                "the recorded check changed from none to full: it is signed",
            ),
            (
                "payload_seal_magic_edited",
                flipped(base.clone(), seal_at, 0x20),
                FormatError::BadSeal("it does not start with `SEAL`".into()).to_string(),
                "the seal record's magic edited",
            ),
            (
                "payload_seal_reserved_set",
                flipped(base.clone(), seal_at + 7, 0x01),
                FormatError::BadSeal("reserved bytes are not zero".into()).to_string(),
                "a reserved byte of the seal record set",
            ),
            (
                "payload_seal_from_other_backup",
                {
                    let mut parts = p.clone();
                    parts.seal = other.seal.clone();
                    parts.join()
                },
                bad_seal,
                "the seal record of another backup of the same image, by the same server",
            ),
            (
                "payload_missing",
                base[..h].to_vec(),
                FormatError::SaltTruncated.to_string(),
                "the file ends right after the header",
            ),
            (
                "payload_truncated_in_salt",
                base[..h + 10].to_vec(),
                FormatError::SaltTruncated.to_string(),
                "the file ends inside the salt",
            ),
            (
                "payload_no_chunks",
                base[..h + SALT_LEN].to_vec(),
                FormatError::MissingFinal { chunks: 0 }.to_string(),
                "the file ends after the salt",
            ),
            (
                "payload_truncated_in_frame_header",
                base[..off1 + 8].to_vec(),
                FormatError::ChunkTruncated { index: 1 }.to_string(),
                "the file ends inside the frame header of chunk 1",
            ),
            (
                "payload_truncated_in_chunk",
                base[..off1 + FRAME_HEADER_LEN + 1000].to_vec(),
                FormatError::ChunkTruncated { index: 1 }.to_string(),
                "the file ends inside the body of chunk 1",
            ),
            (
                "payload_truncated_at_chunk_boundary",
                base[..p.frame_offset(2)].to_vec(),
                FormatError::MissingFinal { chunks: 2 }.to_string(),
                "the file ends after chunk 1",
            ),
            (
                "payload_final_chunk_dropped",
                frames(&[0, 1, 2]),
                FormatError::SealBeforeFinal { chunks: 3 }.to_string(),
                "the final chunk removed",
            ),
            (
                "payload_truncated_in_final_chunk",
                base[..end - 1].to_vec(),
                FormatError::ChunkTruncated { index: 3 }.to_string(),
                "the last byte removed",
            ),
            (
                "payload_chunks_reordered",
                frames(&[0, 2, 1, 3]),
                FormatError::ChunkSkipped {
                    index: 2,
                    expected: 1,
                }
                .to_string(),
                "chunks 1 and 2 swapped",
            ),
            (
                "payload_chunk_dropped",
                frames(&[0, 1, 3]),
                FormatError::ChunkSkipped {
                    index: 3,
                    expected: 2,
                }
                .to_string(),
                "chunk 2 removed",
            ),
            (
                "payload_chunk_duplicated",
                frames(&[0, 1, 1, 2, 3]),
                FormatError::ChunkRepeated {
                    index: 1,
                    expected: 2,
                }
                .to_string(),
                "chunk 1 appears twice",
            ),
            (
                "payload_two_final_chunks",
                frames(&[0, 1, 2, 3, 3]),
                FormatError::SecondFinal { index: 3 }.to_string(),
                "the final chunk appears twice",
            ),
            (
                "payload_two_final_chunks_sealed",
                two_final,
                FormatError::SecondFinal { index: 0 }.to_string(),
                "chunks 0 and 1 both sealed as final with the real key; chunk 0's trailer matches chunk 0",
            ),
            (
                "payload_chunk_after_final_sealed",
                after_final,
                FormatError::TrailingData { index: 0 }.to_string(),
                "chunk 0 sealed as final with a matching trailer, then a real non-final chunk 1",
            ),
            (
                "payload_trailing_byte",
                trailing_byte,
                FormatError::TrailingData { index: 3 }.to_string(),
                "one zero byte after the final chunk",
            ),
            (
                "payload_trailing_garbage",
                trailing_zeros,
                FormatError::TrailingData { index: 3 }.to_string(),
                "64 zero bytes after the final chunk",
            ),
            (
                "payload_salt_flipped",
                flipped(base.clone(), h + 3, 0x04),
                auth(0),
                "one bit of the salt flipped: every chunk key changes",
            ),
            (
                "payload_chunk_body_flipped",
                flipped(base.clone(), off1 + FRAME_HEADER_LEN + 100, 0x10),
                auth(1),
                "one bit of chunk 1's body flipped",
            ),
            (
                "payload_final_chunk_trailer_flipped",
                flipped(base.clone(), end - TAG_LEN - TRAILER_LEN + 7, 0x01),
                auth(3),
                "one bit of the final chunk's sealed trailer flipped",
            ),
            (
                "payload_final_chunk_tag_flipped",
                flipped(base.clone(), end - 1, 0x01),
                auth(3),
                "one bit of the final chunk's tag flipped",
            ),
            (
                "payload_frame_index_flipped",
                flipped(base.clone(), off1, 0x80),
                FormatError::ChunkSkipped {
                    index: (1 << 63) + 1,
                    expected: 1,
                }
                .to_string(),
                "the top bit of chunk 1's index flipped",
            ),
            (
                "payload_frame_stored_flag_flipped",
                flipped(base.clone(), off1 + 8, FLAG_STORED),
                auth(1),
                "chunk 1's stored flag cleared: the frame header is authenticated",
            ),
            (
                "payload_frame_unknown_flag",
                flipped(base.clone(), off1 + 8, 0x04),
                bad_frame(1, "unknown flag bits"),
                "an undefined flag bit set on chunk 1",
            ),
            (
                "payload_frame_final_flag_cleared",
                flipped(base.clone(), off3 + 8, FLAG_FINAL),
                bad_frame(3, "a chunk shorter than the chunk size is not final"),
                "the final flag of the short last chunk cleared",
            ),
            (
                "payload_frame_final_flag_set_early",
                flipped(base.clone(), off1 + 8, FLAG_FINAL),
                auth(1),
                "the final flag set on full chunk 1: the nonce and associated data change",
            ),
            (
                "payload_frame_raw_len_flipped",
                flipped(base.clone(), off3 + 12, 0x01),
                auth(3),
                "the final chunk's raw length changed from 100 to 101",
            ),
            (
                "payload_frame_raw_len_too_big",
                flipped(base.clone(), off3 + 9, 0x80),
                bad_frame(3, "raw length exceeds the chunk size"),
                "the top bit of the final chunk's raw length set",
            ),
            (
                "payload_frame_sealed_len_flipped",
                flipped(base.clone(), off1 + 16, 0x01),
                auth(1),
                "chunk 1's sealed length one more: it takes a byte of chunk 2",
            ),
            (
                "payload_frame_sealed_len_out_of_range",
                flipped(base.clone(), off1 + 13, 0x80),
                bad_frame(1, "sealed length out of range"),
                "the top bit of chunk 1's sealed length set",
            ),
            (
                "payload_chunk_from_other_backup",
                chunk_from_other.join(),
                auth(1),
                "chunk 1 taken from another backup of the same image",
            ),
            (
                "payload_from_other_backup",
                payload_from_other.join(),
                auth(0),
                "this header with the salt and chunks of another backup of the same image",
            ),
            (
                "payload_trailer_wrong_length",
                wrong_len,
                FormatError::TrailerMismatch(
                    "the trailer states 101 bytes but the chunks hold 100".into(),
                )
                .to_string(),
                "sealed with the real key, but the trailer states 101 bytes for a 100-byte image",
            ),
            (
                "payload_trailer_wrong_sha256",
                wrong_sha,
                FormatError::TrailerMismatch(
                    "SHA-256 of the image differs from the trailer".into(),
                )
                .to_string(),
                "sealed with the real key, but the trailer's SHA-256 has one bit flipped",
            ),
        ];
        for (name, container, error, comment) in cases {
            self.add(name, Self::error(container, error, comment));
        }
    }
}

/// The image of `good_several_chunks`.
fn several_chunks_image() -> Vec<u8> {
    let mut image = text(CSU, 10);
    image.extend_from_slice(&noise(CSU, 11));
    image.extend_from_slice(&[0; CSU]);
    image.extend_from_slice(&text(100, 12));
    image
}

#[test]
#[ignore = "writes missing vectors into the source tree; run it after adding a recipe"]
fn generate_missing_vectors() {
    let dir = testdata_dir();
    fs::create_dir_all(&dir).expect("create testdata folder");
    let mut generator = Generator {
        keys: Keys::load_or_create(&keys_dir()),
        dir,
        written: Vec::new(),
        kept: 0,
    };
    generator.run();
    println!(
        "wrote {} new vector(s), kept {} existing: {:?}",
        generator.written.len(),
        generator.kept,
        generator.written
    );
    // Every recipe's vector now exists and passes.
    every_vector_has_its_expected_outcome();
}

/// The committed test keys: four different P-256 keys, each `.pub` the
/// public half of its `.key`, each marked as a test key.
#[test]
fn test_keys_are_distinct_p256_keys() {
    let dir = keys_dir();
    let mut ids: Vec<KeyId> = Vec::new();
    for name in ["server", "alice", "bob", "mallory"] {
        let (identity, _) =
            load_identity_file(&dir.join(format!("{name}.key"))).expect("private key");
        let public = load_recipient_file(&dir.join(format!("{name}.pub"))).expect("public key");
        assert_eq!(
            public.key_id(),
            identity.key_id(),
            "{name}.pub is the public half of {name}.key"
        );
        let text = fs::read_to_string(dir.join(format!("{name}.key"))).expect("read");
        assert!(
            text.starts_with(KEY_BANNER),
            "{name}.key says it is a test key"
        );
        ids.push(identity.key_id());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four different keys");
}
