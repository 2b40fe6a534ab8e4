//! Loading P-256 keys from the PEM files people actually have.
//!
//! Accepted: `EC PRIVATE KEY` (SEC1), with or without the `EC PARAMETERS`
//! block `openssl ecparam -genkey` writes before it; `PRIVATE KEY` (PKCS#8);
//! `PUBLIC KEY` (SPKI). Anything else gets one line saying what was found.

use std::path::Path;

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::keys::{P256Identity, P256Recipient};

/// A key read from a file: private (opens and signs) or public only.
#[derive(Debug, Clone)]
pub enum KeyFile {
    /// A private key.
    Private(P256Identity),
    /// A public key.
    Public(P256Recipient),
}

impl KeyFile {
    /// The public half, whichever kind it is.
    pub fn recipient(&self) -> &P256Recipient {
        match self {
            KeyFile::Private(identity) => identity.recipient(),
            KeyFile::Public(recipient) => recipient,
        }
    }
}

/// A loaded key and any warnings about its file (e.g. loose permissions).
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The key.
    pub key: KeyFile,
    /// Things the caller should tell the user; never key material.
    pub warnings: Vec<String>,
}

/// Why a key file or PEM text does not give a usable P-256 key. Each
/// message says what was found and what to do, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file does not exist.
    #[error("no such file; check the path")]
    NotFound,
    /// This user may not read the file.
    #[error("permission denied; run as a user who can read it")]
    PermissionDenied,
    /// A new key file would replace an existing file.
    #[error("exists; refusing to overwrite a key file (choose another path)")]
    Exists,
    /// A new key file could not be written.
    #[error("cannot write it: {0}")]
    Write(#[source] std::io::Error),
    /// The file cannot be read for another reason.
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// The file is too large to be a PEM key.
    #[error("larger than {} KiB, too large to be a PEM key; check the path", MAX_KEY_FILE_LEN / 1024)]
    TooLarge,
    /// The file holds a public key where a private key is needed.
    #[error(
        "holds a public key, but a private key is needed here (make one with `sqlseal keygen`)"
    )]
    NotPrivate,
    /// Nothing but white space.
    #[error("the file is empty; expected a `-----BEGIN ...` PEM key")]
    Empty,
    /// Not text.
    #[error("not a PEM file (binary data); expected a `-----BEGIN ...` text block")]
    Binary,
    /// Text without a PEM block.
    #[error("not a PEM file: no `-----BEGIN ...-----` block found")]
    NoBlock,
    /// An `ENCRYPTED PRIVATE KEY` (PKCS#8) block.
    #[error(
        "the private key is encrypted with a passphrase; decrypt it with `openssl pkey -in FILE -out PLAIN.pem` and keep the result 0600"
    )]
    EncryptedPkcs8,
    /// An `EC PRIVATE KEY` block with `Proc-Type: 4,ENCRYPTED` headers.
    #[error(
        "the private key is encrypted with a passphrase; decrypt it with `openssl ec -in FILE -out PLAIN.pem` and keep the result 0600"
    )]
    EncryptedSec1,
    /// An RSA key block.
    #[error(
        "holds an RSA key; sqlseal needs a P-256 (prime256v1) EC key, e.g. from `sqlseal keygen`"
    )]
    RsaBlock,
    /// An OpenSSH key block.
    #[error("holds an OpenSSH key; sqlseal needs a P-256 key in PEM, e.g. from `sqlseal keygen`")]
    OpenSsh,
    /// A certificate.
    #[error(
        "holds a certificate, not a key; extract the key with `openssl x509 -in FILE -pubkey -noout`"
    )]
    Certificate,
    /// Only an `EC PARAMETERS` block.
    #[error("holds only EC parameters, no key")]
    OnlyParameters,
    /// A block of another kind.
    #[error(
        "holds a `{0}` block, not a P-256 key (expected EC PRIVATE KEY, PRIVATE KEY or PUBLIC KEY)"
    )]
    OtherBlock(String),
    /// A block without its `-----END` line.
    #[error("the `{0}` block has no `-----END` line; the file is truncated")]
    Truncated(String),
    /// A block whose base64 does not decode.
    #[error("malformed `{label}` PEM block: {source}")]
    Malformed {
        /// The block's label.
        label: String,
        /// What the PEM decoder found.
        source: pem_rfc7468::Error,
    },
    /// A key of another curve or algorithm.
    #[error("holds {0}; sqlseal needs a P-256 (prime256v1) key, e.g. from `sqlseal keygen`")]
    ForeignKey(&'static str),
    /// A block that is not a valid P-256 key.
    #[error("the `{0}` block is not a valid P-256 key")]
    NotP256(String),
    /// A P-256 key that HPKE refuses.
    #[error(transparent)]
    Key(Box<CryptoError>),
}

/// Reads a PEM key file.
pub fn load_key_file(path: &Path) -> Result<LoadedKey, CryptoError> {
    let err = |reason| CryptoError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_bounded(path).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::NotFound => KeyFileError::NotFound,
            std::io::ErrorKind::PermissionDenied => KeyFileError::PermissionDenied,
            _ => KeyFileError::Read(e),
        })
    })?;
    if bytes.len() > MAX_KEY_FILE_LEN {
        return Err(err(KeyFileError::TooLarge));
    }
    let key = parse_key_pem(&bytes).map_err(err)?;
    let mut warnings = Vec::new();
    if let (KeyFile::Private(_), Some(w)) = (&key, permission_warning(path)) {
        warnings.push(w);
    }
    Ok(LoadedKey { key, warnings })
}

/// Reads a PEM file that must hold a private key.
pub fn load_identity_file(path: &Path) -> Result<(P256Identity, Vec<String>), CryptoError> {
    let loaded = load_key_file(path)?;
    match loaded.key {
        KeyFile::Private(identity) => Ok((identity, loaded.warnings)),
        KeyFile::Public(_) => Err(CryptoError::KeyFile {
            path: path.to_path_buf(),
            reason: KeyFileError::NotPrivate,
        }),
    }
}

/// Reads a PEM file holding a public key, or a private key whose public half is used.
pub fn load_recipient_file(path: &Path) -> Result<P256Recipient, CryptoError> {
    Ok(load_key_file(path)?.key.recipient().clone())
}

/// No PEM key file is anywhere near this long.
const MAX_KEY_FILE_LEN: usize = 64 * 1024;

/// Reads at most one byte more than [`MAX_KEY_FILE_LEN`], into memory that is wiped on drop.
fn read_bounded(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    // Reserved up front so that no reallocation leaves unwiped copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 1));
    std::fs::File::open(path)?
        .take(MAX_KEY_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(unix)]
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "private key file {} is readable by group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_warning(_path: &Path) -> Option<String> {
    None
}

/// Parses PEM text holding one P-256 key; the error says what was found instead.
pub fn parse_key_pem(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(KeyFileError::Empty);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::Binary)?;
    // Some Windows editors start text files with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let blocks = pem_blocks(text);
    if blocks.is_empty() {
        return Err(KeyFileError::NoBlock);
    }
    let mut saw_params = false;
    for block in &blocks {
        match block.label.as_str() {
            "EC PARAMETERS" => {
                saw_params = true;
                continue;
            }
            "EC PRIVATE KEY" | "PRIVATE KEY" | "PUBLIC KEY" => return parse_block(block),
            "ENCRYPTED PRIVATE KEY" => return Err(KeyFileError::EncryptedPkcs8),
            "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => return Err(KeyFileError::RsaBlock),
            "OPENSSH PRIVATE KEY" => return Err(KeyFileError::OpenSsh),
            "CERTIFICATE" => return Err(KeyFileError::Certificate),
            _ => {}
        }
    }
    if saw_params {
        return Err(KeyFileError::OnlyParameters);
    }
    Err(KeyFileError::OtherBlock(
        blocks[0].label.chars().take(40).collect(),
    ))
}

struct PemBlock {
    label: String,
    /// The whole block, BEGIN to END lines: private key text, wiped on drop.
    text: Zeroizing<String>,
    encrypted_headers: bool,
    /// Whether the `-----END` line was seen (false: the file was cut short).
    complete: bool,
}

fn pem_blocks(text: &str) -> Vec<PemBlock> {
    let mut blocks = Vec::new();
    // No block is longer than the whole text: reserved up front so that no
    // reallocation leaves an unwiped copy of key text behind.
    let capacity = text.len() + 1;
    let mut current: Option<PemBlock> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let mut block_text = Zeroizing::new(String::with_capacity(capacity));
            block_text.push_str(line);
            block_text.push('\n');
            current = Some(PemBlock {
                label: label.to_owned(),
                text: block_text,
                encrypted_headers: false,
                complete: false,
            });
            continue;
        }
        if let Some(block) = current.as_mut() {
            block.text.push_str(line);
            block.text.push('\n');
            if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
                block.encrypted_headers = true;
            }
            if line.starts_with("-----END ")
                && let Some(mut done) = current.take()
            {
                done.complete = true;
                blocks.push(done);
            }
        }
    }
    // Keep a block without its END line so the error can say it was cut short.
    blocks.extend(current);
    blocks
}

/// DER encodings of object identifiers, to name what a foreign key is.
const FOREIGN_OIDS: &[(&[u8], &str)] = &[
    (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22], "a P-384 key"),
    (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23], "a P-521 key"),
    (
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        "a secp256k1 key",
    ),
    (&[0x06, 0x03, 0x2b, 0x65, 0x70], "an Ed25519 key"),
    (&[0x06, 0x03, 0x2b, 0x65, 0x6e], "an X25519 key"),
    (&[0x06, 0x03, 0x2b, 0x65, 0x71], "an Ed448 key"),
    (
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ],
        "an RSA key",
    ),
];

fn name_foreign_key(der: &[u8]) -> Option<&'static str> {
    FOREIGN_OIDS
        .iter()
        .find(|(oid, _)| der.windows(oid.len()).any(|w| w == *oid))
        .map(|(_, name)| *name)
}

/// Decodes a block's base64 into a buffer that is wiped on drop, sized up
/// front (base64 is longer than what it encodes) so that the DER of a
/// private key is never copied into memory that is not wiped.
fn decode_der(block: &PemBlock) -> Result<(&str, Zeroizing<Vec<u8>>), KeyFileError> {
    let mut der = Zeroizing::new(vec![0u8; block.text.len()]);
    let (label, len) = pem_rfc7468::decode(block.text.as_bytes(), &mut der)
        .map(|(label, bytes)| (label, bytes.len()))
        .map_err(|source| KeyFileError::Malformed {
            label: block.label.clone(),
            source,
        })?;
    // Shortening keeps the allocation; Zeroizing wipes all of its capacity.
    der.truncate(len);
    Ok((label, der))
}

fn parse_block(block: &PemBlock) -> Result<KeyFile, KeyFileError> {
    if block.encrypted_headers {
        return Err(KeyFileError::EncryptedSec1);
    }
    if !block.complete {
        return Err(KeyFileError::Truncated(block.label.clone()));
    }
    let (label, der) = decode_der(block)?;
    let foreign = |what: &str| match name_foreign_key(&der) {
        Some(name) => KeyFileError::ForeignKey(name),
        None => KeyFileError::NotP256(what.to_owned()),
    };
    let invalid = |e| KeyFileError::Key(Box::new(e));
    match label {
        "EC PRIVATE KEY" => {
            let secret = p256::SecretKey::from_sec1_der(&der).map_err(|_| foreign(label))?;
            P256Identity::new(secret)
                .map(KeyFile::Private)
                .map_err(invalid)
        }
        "PRIVATE KEY" => {
            let secret = p256::SecretKey::from_pkcs8_der(&der).map_err(|_| foreign(label))?;
            P256Identity::new(secret)
                .map(KeyFile::Private)
                .map_err(invalid)
        }
        _ => {
            let public = p256::PublicKey::from_public_key_der(&der).map_err(|_| foreign(label))?;
            P256Recipient::new(public)
                .map(KeyFile::Public)
                .map_err(invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trips() {
        let id = P256Identity::generate().expect("key");
        let pem = id.to_pkcs8_pem().expect("pem");
        match parse_key_pem(pem.as_bytes()).expect("parses") {
            KeyFile::Private(back) => {
                assert_eq!(back.recipient().public_key(), id.recipient().public_key())
            }
            KeyFile::Public(_) => panic!("expected a private key"),
        }
        let public = id.recipient().to_public_pem();
        match parse_key_pem(public.as_bytes()).expect("parses") {
            KeyFile::Public(back) => assert_eq!(back.public_key(), id.recipient().public_key()),
            KeyFile::Private(_) => panic!("expected a public key"),
        }
    }

    /// What can be checked without reading freed memory: every buffer that
    /// holds private key text or DER is a `Zeroizing` (wiped on drop, on
    /// every path), sized so that it never reallocates, and holds exactly
    /// what it should.
    #[test]
    fn private_key_copies_are_zeroizing_and_never_reallocate() {
        let id = P256Identity::generate().expect("key");
        let pem = id.to_pkcs8_pem().expect("pem");

        let dir = std::env::temp_dir().join(format!("sqlseal-pem-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("key.pem");
        std::fs::write(&path, pem.as_bytes()).expect("write");
        let read: Zeroizing<Vec<u8>> = read_bounded(&path).expect("read");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(read.as_slice(), pem.as_bytes());
        assert_eq!(read.capacity(), MAX_KEY_FILE_LEN + 1, "reserved, not grown");

        let text = std::str::from_utf8(&read).expect("utf8");
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 1);
        let block_text: &Zeroizing<String> = &blocks[0].text;
        assert_eq!(block_text.as_str(), pem.as_str());
        assert_eq!(block_text.capacity(), text.len() + 1, "reserved, not grown");

        let (label, der): (&str, Zeroizing<Vec<u8>>) = decode_der(&blocks[0]).expect("der");
        assert_eq!(label, "PRIVATE KEY");
        let expected = pem_rfc7468::decode_vec(pem.as_bytes())
            .expect("reference")
            .1;
        assert_eq!(der.as_slice(), expected.as_slice());
        assert!(der.capacity() >= der.len());
    }

    #[test]
    fn garbage_is_named() {
        let error = |bytes: &[u8]| parse_key_pem(bytes).expect_err("not a key").to_string();
        assert!(error(b"\x00\xff").contains("binary data"));
        assert!(error(b"hello").contains("no `-----BEGIN"));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_key_pem(cert.as_bytes()),
            Err(KeyFileError::Certificate)
        ));
        assert!(error(cert.as_bytes()).contains("certificate"));
    }
}

/// Writes `identity` to a new private key file (PKCS#8 PEM): created 0600,
/// never over an existing file, synced; a partly written file is removed.
/// The PEM text is zeroized once written.
pub fn write_identity_file(path: &Path, identity: &P256Identity) -> Result<(), CryptoError> {
    use std::io::Write;
    let fail = |reason| CryptoError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = identity.to_pkcs8_pem()?;
    let mut file = sqlseal_private::create_private_file(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => fail(KeyFileError::Exists),
        std::io::ErrorKind::PermissionDenied => fail(KeyFileError::PermissionDenied),
        _ => fail(KeyFileError::Write(e)),
    })?;
    let written = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(fail(KeyFileError::Write(e)));
    }
    Ok(())
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        let key = P256Identity::generate().expect("key");
        write_identity_file(&path, &key).expect("write");
        let (back, warnings) = load_identity_file(&path).expect("read back");
        assert_eq!(back.key_id(), key.key_id());
        assert!(warnings.is_empty(), "{warnings:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = P256Identity::generate().expect("key");
        let e = write_identity_file(&path, &other).expect_err("exists");
        assert!(
            matches!(
                &e,
                CryptoError::KeyFile {
                    reason: KeyFileError::Exists,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .ends_with("exists; refusing to overwrite a key file (choose another path)")
        );
        let (still, _) = load_identity_file(&path).expect("read back");
        assert_eq!(still.key_id(), key.key_id());
    }
}
