//! The engine's error type.

use std::path::PathBuf;

use sqlseal_crypto::CryptoError;
use sqlseal_format::FormatError;
use sqlseal_source::SourceError;
use sqlseal_store::StoreError;

/// What can go wrong creating, verifying or restoring a backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Taking the snapshot failed.
    #[error(transparent)]
    Source(Box<SourceError>),
    /// The backup store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys or sealing failed while creating a backup.
    #[error("sealing the backup: {0}")]
    Seal(CryptoError),
    /// Writing the backup failed.
    #[error("writing backup {backup}: {source}")]
    Write {
        /// The backup name.
        backup: String,
        /// The cause.
        source: FormatError,
    },
    /// A backup's header could not be parsed or authenticated, or no key opens it.
    #[error("backup {backup}: {source}")]
    Open {
        /// The backup name.
        backup: String,
        /// The cause.
        source: CryptoError,
    },
    /// A backup's payload failed a check.
    #[error("backup {backup}: {source}")]
    Payload {
        /// The backup name.
        backup: String,
        /// The cause.
        source: FormatError,
    },
    /// The restored image is not what the trailer or header states.
    #[error("backup {backup}: {reason}")]
    Inconsistent {
        /// The backup name.
        backup: String,
        /// What did not match.
        reason: String,
    },
    /// The image failed `PRAGMA integrity_check`.
    #[error("backup {backup}: {source}")]
    Integrity {
        /// The backup name.
        backup: String,
        /// The cause.
        source: Box<SourceError>,
    },
    /// The restore target exists and `force` was not given.
    #[error(
        "{0} exists; pass --force to move it aside (to .pre-restore.<time>) and restore over it"
    )]
    TargetExists(PathBuf),
    /// A file operation on this machine failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the engine was doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store holds no backups.
    #[error("no backups in {0}")]
    NoBackups(String),
    /// No authenticated backup is as old as the time asked for.
    #[error(
        "no backup in {location} was made at or before {at}; the oldest point is {oldest}: choose a later --at"
    )]
    NoBackupAt {
        /// The store.
        location: String,
        /// The time asked for.
        at: sqlseal_format::CreatedAt,
        /// The oldest authenticated backup's time.
        oldest: sqlseal_format::CreatedAt,
    },
    /// The store holds backups, but no header authenticates under the keys given.
    #[error(
        "none of the {refused} backup(s) in {location} authenticates with the given keys; pass a key it is encrypted to with --key and its signer with --trust ({reasons})"
    )]
    NoVerifiedBackups {
        /// The store.
        location: String,
        /// How many backups were refused.
        refused: usize,
        /// Each backup and why it was refused.
        reasons: String,
    },
    /// The caller's approval hook refused the authenticated header; nothing was installed.
    #[error("backup {backup}: not installed: {reason}")]
    NotApproved {
        /// The backup name.
        backup: String,
        /// Why the hook refused it.
        reason: String,
    },
    /// A link of a chain does not bind to the link before it, or the
    /// chain it belongs to cannot be followed back to its full backup.
    #[error("backup {backup}: {reason}")]
    Chain {
        /// The link at fault.
        backup: String,
        /// What does not match.
        reason: String,
    },
    /// The local chain state cannot make the next increment (lost,
    /// damaged, or of another image); the next backup must be a full one.
    #[error("chain state {path}: {reason}; make a full backup to start a new chain")]
    ChainState {
        /// The state file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl From<SourceError> for EngineError {
    fn from(e: SourceError) -> Self {
        EngineError::Source(Box::new(e))
    }
}

impl EngineError {
    /// What failed, as one short stable word for metrics labels and
    /// alerts: `source` (reading the database), `store` (the backup
    /// location), `seal` (encrypting or signing), `write` (writing the
    /// backup), `integrity` (a backup failed authentication or a check),
    /// `open` (a backup could not be opened: key, version), `target`
    /// (restore target), `io` (local files), `no_backups`, `refused`
    /// (not approved for install), `chain_state` (no increment can be made
    /// from the local chain state) or `cancelled`.
    pub fn kind(&self) -> &'static str {
        if self.is_integrity_failure() {
            return "integrity";
        }
        match self {
            EngineError::Source(_) => "source",
            EngineError::Store(_) => "store",
            EngineError::Seal(_) => "seal",
            EngineError::Write { .. } => "write",
            EngineError::Open { .. } | EngineError::Payload { .. } => "open",
            EngineError::Inconsistent { .. }
            | EngineError::Integrity { .. }
            | EngineError::Chain { .. } => "integrity",
            EngineError::ChainState { .. } => "chain_state",
            EngineError::TargetExists(_) => "target",
            EngineError::Io { .. } => "io",
            EngineError::NoBackups(_)
            | EngineError::NoVerifiedBackups { .. }
            | EngineError::NoBackupAt { .. } => "no_backups",
            EngineError::NotApproved { .. } => "refused",
            EngineError::Cancelled => "cancelled",
        }
    }

    /// Whether this error means a backup failed authentication or
    /// integrity checks (as opposed to a missing file, a wrong key or an I/O
    /// problem on this machine).
    pub fn is_integrity_failure(&self) -> bool {
        match self {
            EngineError::Open { source, .. } => match source {
                CryptoError::Format(f) => format_is_integrity(f),
                CryptoError::StanzaFailed { .. }
                | CryptoError::StanzaMalformed { .. }
                | CryptoError::UntrustedSigner { .. }
                | CryptoError::BadSignature { .. }
                | CryptoError::BadSeal { .. } => true,
                _ => false,
            },
            EngineError::Payload { source, .. } => format_is_integrity(source),
            EngineError::Inconsistent { .. }
            | EngineError::Integrity { .. }
            | EngineError::Chain { .. } => true,
            _ => false,
        }
    }
}

fn format_is_integrity(e: &FormatError) -> bool {
    // A file of another format version is not damaged: it is refused (exit
    // 1) with a message naming the version, not reported as tampered with.
    !matches!(
        e,
        FormatError::Io(_) | FormatError::VersionOne | FormatError::UnsupportedVersion(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_are_not_integrity_failures() {
        let open = |e: FormatError| EngineError::Open {
            backup: "b".into(),
            source: CryptoError::Format(e),
        };
        assert!(!open(FormatError::VersionOne).is_integrity_failure());
        assert!(!open(FormatError::UnsupportedVersion("v3".into())).is_integrity_failure());
        assert!(open(FormatError::HeaderMac).is_integrity_failure());
        assert!(open(FormatError::ChunkAuth { index: 1 }).is_integrity_failure());
    }
}
