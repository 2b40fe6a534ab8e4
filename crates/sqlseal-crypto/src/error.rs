//! The error type of the crypto envelope.

use std::path::PathBuf;

use sqlseal_format::{FormatError, KeyId};

use crate::pem::KeyFileError;

/// What can go wrong loading keys, sealing or opening a header.
///
/// Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key file could not be read or is not a usable P-256 key.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What was found and what to do.
        #[source]
        reason: KeyFileError,
    },
    /// Key text (not from a file) is not a usable P-256 key.
    #[error("key: {0}")]
    KeyText(String),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[source] getrandom::Error),
    /// HPKE encapsulation failed (an invalid recipient key).
    #[error("wrapping the data key for key {key_id} failed")]
    Wrap {
        /// The recipient.
        key_id: KeyId,
    },
    /// None of the given keys is a recipient of the backup.
    #[error("none of the given keys ({ours}) can open this backup; it is encrypted to {theirs}")]
    NoMatchingKey {
        /// Key ids of the backup's stanzas.
        theirs: String,
        /// Key ids of the identities tried.
        ours: String,
    },
    /// A stanza addressed to one of our keys failed to open.
    #[error(
        "the recipient stanza for key {key_id} does not open: it was altered or moved from another backup"
    )]
    StanzaFailed {
        /// The key id of the stanza.
        key_id: KeyId,
    },
    /// A stanza has the right key id but the wrong shape.
    #[error("the recipient stanza for key {key_id} is malformed: {reason}")]
    StanzaMalformed {
        /// The key id of the stanza.
        key_id: KeyId,
        /// What is wrong.
        reason: String,
    },
    /// The header is signed by a key that is not trusted.
    #[error(
        "backup is signed by key {key_id}, which is not trusted; pass its public key with --trust if it is yours"
    )]
    UntrustedSigner {
        /// The signer's key id.
        key_id: KeyId,
    },
    /// The header signature does not verify.
    #[error("the header signature by key {key_id} does not verify: the header was edited")]
    BadSignature {
        /// The signer's key id.
        key_id: KeyId,
    },
    /// The seal record's signature does not verify: the payload is not the
    /// one the signer wrote.
    #[error(
        "the seal by key {key_id} does not verify: the payload was replaced or edited after it was signed"
    )]
    BadSeal {
        /// The signer's key id.
        key_id: KeyId,
    },
    /// A container-level error (header MAC, payload).
    #[error(transparent)]
    Format(#[from] FormatError),
}
