//! The sqlseal container format, version 2: a text header, a binary
//! payload of sealed, independently compressed chunks, and a seal record.
//!
//! Owns: the bytes of a container and the symmetric crypto that `docs/format.md`
//! fixes (HKDF-SHA256, AES-256-GCM in the STREAM construction, HMAC-SHA256 for
//! the header, SHA-256 transcripts for the seal). Never: key wrapping, signing,
//! I/O beyond the `Read`/`Write` it is given, threads, SQLite or tokio.
//!
//! This crate knows bytes, not keys: it encodes and strictly parses the
//! header ([`Header`]), frames and seals the payload, and checks chunk order,
//! truncation and the trailer. Wrapping the [`DataKey`] to recipients and
//! signing the header and the seal is the job of `sqlseal-crypto`; opening a
//! payload is the job of the engine, whose parallel reader is the only one.
//!
//! Which type for which job:
//! - [`Header`]: encode, parse, and the byte ranges for signature and MAC.
//! - [`ChunkCipher`], [`FrameReader`], [`ImageDigest`]: seal or open chunks,
//!   split frames, hash the image, on as many threads as the caller likes.
//! - [`PayloadDigest`], [`SealRecord`], [`seal_message`]: the seal record
//!   and the transcript its signature covers.
//! - [`PayloadWriter`]: seal a payload on one thread.
//!
//! ```
//! use sqlseal_format::{DataKey, FrameReader, PayloadWriter, SALT_LEN};
//!
//! let key = DataKey::from_bytes([42; 32]);
//! let mut writer = PayloadWriter::new(Vec::new(), &key, [7; SALT_LEN], 4096)?;
//! writer.write_image(b"a database image")?;
//! let (payload, trailer, _payload_digest) = writer.finish(1)?;
//! assert_eq!(trailer.db_len, 16);
//!
//! let mut frames = FrameReader::new(&payload[SALT_LEN..], 4096)?;
//! let mut sealed = Vec::new();
//! let frame = frames.next_frame(&mut sealed)?.expect("one frame");
//! assert!(frame.is_final());
//! # Ok::<(), sqlseal_format::FormatError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod header;
pub mod increment;
pub mod payload;
pub mod seal;

pub use error::{FormatError, Result};
pub use header::{
    BackupId, ChainLink, Compression, CreatedAt, DEFAULT_CHUNK_SIZE, Header, KeyId, MAGIC,
    Metadata, ParseCreatedAtError, ParseKeyIdError, Stanza,
};
pub use increment::{IncrementParser, IncrementSummary, PageIndex};
pub use payload::{
    ChunkCipher, DataKey, FrameHeader, FrameReader, ImageDigest, PayloadWriter, SALT_LEN, Trailer,
    read_full,
};
pub use seal::{PayloadDigest, RecordedCheck, SEAL_LEN, SealRecord, seal_message};
