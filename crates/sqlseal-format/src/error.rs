//! The one error type of the container format.

use std::io;

/// Everything that can go wrong reading or writing a container.
///
/// Messages are one line, say which part of the file is at fault, and never
/// contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// An increment's plaintext is not a valid page list.
    #[error("invalid increment: {0}")]
    BadIncrement(String),
    /// The file is empty.
    #[error("the file is empty, not a sqlseal backup")]
    Empty,
    /// The first line is not a sqlseal magic line.
    #[error("not a sqlseal backup: the first line is not `sqlseal/v2`")]
    NotSqlseal,
    /// The file is a sqlseal backup of a version this reader does not know.
    #[error(
        "unsupported sqlseal format version `{0}`: this reader understands sqlseal/v2 only; upgrade sqlseal"
    )]
    UnsupportedVersion(String),
    /// The file is a sqlseal/v1 backup, which this reader refuses.
    #[error(
        "this is a sqlseal/v1 backup, which this sqlseal does not open: v1 does not seal its payload against recipient-key holders; restore it with the sqlseal release that wrote it, then make a new backup"
    )]
    VersionOne,
    /// The header's lines end in CRLF: the file was converted as text.
    #[error(
        "header lines end in CRLF: the backup was converted as a text file; copy it in binary mode"
    )]
    CrLf,
    /// The file ends inside the text header.
    #[error("truncated header: the file ends before the header's `mac:` line")]
    HeaderTruncated,
    /// The header is longer than any valid header can be.
    #[error("header longer than {max} bytes: not a valid sqlseal/v2 header")]
    HeaderTooLong {
        /// The limit.
        max: usize,
    },
    /// A header line has a field name this version does not define.
    #[error("header line {line}: unknown field `{field}` (sqlseal/v2 defines no such field)")]
    UnknownField {
        /// 1-based line number.
        line: usize,
        /// The field name found.
        field: String,
    },
    /// A header line is not the field expected at that position.
    #[error("header line {line}: expected `{expected}:`, found `{found}`")]
    UnexpectedField {
        /// 1-based line number.
        line: usize,
        /// The field that must come here.
        expected: &'static str,
        /// What was found (field name, truncated).
        found: String,
    },
    /// A header field's value is malformed.
    #[error("header line {line}: invalid `{field}` value: {reason}")]
    InvalidValue {
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The header has no recipient stanza.
    #[error("header has no `recipient:` line: nobody can open this backup")]
    NoRecipients,
    /// The header MAC does not verify under the data key.
    #[error(
        "header authentication failed: the header was edited or does not belong to this data key"
    )]
    HeaderMac,
    /// The payload ends before its salt.
    #[error("truncated payload: the file ends inside the payload salt")]
    SaltTruncated,
    /// The payload ends in the middle of a chunk.
    #[error("truncated payload: the file ends inside chunk {index}")]
    ChunkTruncated {
        /// 0-based chunk index.
        index: u64,
    },
    /// The payload ends at a chunk boundary without a final chunk.
    #[error("truncated payload: the file ends after {chunks} chunk(s) without the final chunk")]
    MissingFinal {
        /// Number of chunks read.
        chunks: u64,
    },
    /// A chunk number appears twice.
    #[error(
        "chunk {index} appears again where chunk {expected} belongs: duplicated or reordered chunk"
    )]
    ChunkRepeated {
        /// The index found in the frame.
        index: u64,
        /// The index expected.
        expected: u64,
    },
    /// A chunk appears before its predecessors.
    #[error("chunk {index} found where chunk {expected} belongs: dropped or reordered chunk")]
    ChunkSkipped {
        /// The index found in the frame.
        index: u64,
        /// The index expected.
        expected: u64,
    },
    /// A chunk frame is malformed (bad flags or lengths).
    #[error("chunk {index}: malformed frame: {reason}")]
    BadFrame {
        /// 0-based chunk index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// A chunk failed AEAD authentication.
    #[error("chunk {index} failed authentication: the backup is corrupted or was tampered with")]
    ChunkAuth {
        /// 0-based chunk index.
        index: u64,
    },
    /// A chunk authenticated but did not decompress to its stated length.
    #[error("chunk {index} does not decompress to {expected} bytes")]
    Decompress {
        /// 0-based chunk index.
        index: u64,
        /// The stated raw length.
        expected: u32,
    },
    /// A second final chunk follows the final chunk (where the seal record belongs).
    #[error("a second final chunk follows final chunk {index}")]
    SecondFinal {
        /// Index of the first final chunk.
        index: u64,
    },
    /// The seal record comes where a chunk belongs: the final chunk is missing.
    #[error(
        "the seal record follows {chunks} chunk(s) without the final chunk: chunks were dropped"
    )]
    SealBeforeFinal {
        /// Number of chunks read.
        chunks: u64,
    },
    /// The file ends inside the seal record.
    #[error("truncated payload: the file ends inside the seal record")]
    SealTruncated,
    /// The seal record is malformed.
    #[error("malformed seal record: {0}")]
    BadSeal(String),
    /// Bytes follow the seal record.
    #[error("unexpected data after the seal record (final chunk {index})")]
    TrailingData {
        /// Index of the final chunk.
        index: u64,
    },
    /// The trailer does not match the image that was read.
    #[error("trailer mismatch: {0}")]
    TrailerMismatch(String),
    /// A writer was given invalid parameters.
    #[error("invalid writer parameters: {0}")]
    InvalidParameters(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
