//! The sqlseal container format, version 1: a text header followed by a
//! binary payload of sealed, independently compressed chunks.
//!
//! This crate knows bytes, not keys: it encodes and strictly parses the
//! header ([`Header`]), frames and seals the payload with the symmetric
//! primitives that `docs/format.md` fixes (HKDF-SHA256, AES-256-GCM in the
//! STREAM construction, HMAC-SHA256 for the header), and checks chunk order,
//! truncation and the trailer. Wrapping the [`DataKey`] to recipients and
//! signing the header is the job of `sqlseal-crypto`. It does no I/O beyond
//! the `Read`/`Write` it is given, and knows nothing of SQLite or tokio.
//!
//! Which type for which job:
//! - [`Header`]: encode, parse, and the byte ranges for signature and MAC.
//! - [`PayloadWriter`] / [`PayloadReader`]: seal or open a payload on one thread.
//! - [`ChunkCipher`], [`FrameReader`], [`ImageDigest`]: the same pieces, for
//!   callers that seal or open chunks on several threads.
//!
//! ```
//! use sqlseal_format::{DataKey, PayloadReader, PayloadWriter, SALT_LEN};
//!
//! let key = DataKey::from_bytes([42; 32]);
//! let mut writer = PayloadWriter::new(Vec::new(), &key, [7; SALT_LEN], 4096)?;
//! writer.write_image(b"a database image")?;
//! let (payload, trailer) = writer.finish(1)?;
//!
//! let mut image = Vec::new();
//! let read = PayloadReader::new(&payload[..], &key, 4096)?.copy_to(&mut image)?;
//! assert_eq!(image, b"a database image");
//! assert_eq!(read, trailer);
//! # Ok::<(), sqlseal_format::FormatError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod header;
pub mod payload;

pub use error::{FormatError, Result};
pub use header::{
    BackupId, Compression, CreatedAt, DEFAULT_CHUNK_SIZE, Header, KeyId, MAGIC, Metadata, Stanza,
};
pub use payload::{
    ChunkCipher, DataKey, FrameHeader, FrameReader, ImageDigest, PayloadReader, PayloadWriter,
    SALT_LEN, Trailer,
};
