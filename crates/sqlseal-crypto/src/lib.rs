//! sqlseal's crypto envelope: who can open a backup and who made it.
//!
//! Owns: keys, HPKE wrapping of data keys, ECDSA signatures over the header
//! and the seal. Never: opening a payload (the engine's one reader does),
//! I/O beyond key files, threads, SQLite or tokio.
//!
//! Each backup gets a fresh random [`DataKey`](sqlseal_format::DataKey),
//! wrapped with HPKE (RFC 9180 base mode, DHKEM(P-256, HKDF-SHA256),
//! HKDF-SHA256, AES-128-GCM) to every recipient key, so any one of them can
//! restore it. The header is signed with ECDSA P-256 by a server key and
//! MACed under the data key, and the seal record after the payload is signed
//! by the same key over the exact header and payload bytes, so a recipient
//! (who can decrypt) cannot write what the server signs. Readers accept only
//! signers they trust.
//!
//! Which type for which job:
//! - [`P256Identity`]: a private key; opens stanzas ([`Identity`]) and signs.
//! - [`P256Recipient`]: a public key; wraps data keys ([`Recipient`]) and verifies.
//! - [`Keyring`]: the identities and trusted signers a reader holds;
//!   [`Keyring::open_header`] and [`Keyring::verify_seal`] are a reader's checks.
//! - [`seal_header`] and [`sign_seal`] for writers that run the payload
//!   themselves; [`seal_container`] writes a whole container on one thread.
//! - [`load_key_file`]: PEM files as `openssl` and `sqlseal keygen` write them.
//!
//! ```
//! use sqlseal_crypto::{random_backup_id, seal_container, Keyring, P256Identity, Recipient};
//! use sqlseal_format::{Compression, CreatedAt, Header, Metadata, RecordedCheck};
//!
//! let server = P256Identity::generate()?;
//! let metadata = Metadata {
//!     backup_id: random_backup_id()?,
//!     created: CreatedAt::from_microsecond(1_764_000_000_000_000).expect("valid time"),
//!     database: "app.db".into(),
//!     page_size: 4096,
//!     method: "dbpage".into(),
//!     compression: Compression::Lz4,
//!     chunk_size: 1 << 20,
//!     chain: None,
//! };
//! let recipients: [&dyn Recipient; 1] = [server.recipient()];
//! let (_, mut writer) = seal_container(Vec::new(), metadata, &recipients, &server)?;
//! writer.write_image(b"pages")?;
//! let (file, _trailer) = writer.finish(1, RecordedCheck::None)?;
//!
//! let mut keyring = Keyring::new();
//! keyring.add_identity(server);
//! let header = Header::parse(&mut &file[..])?;
//! let _data_key = keyring.open_header(&header)?;
//! assert_eq!(header.metadata.database, "app.db");
//! # Ok::<(), sqlseal_crypto::CryptoError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod envelope;
mod error;
mod keys;
mod pem;

pub use envelope::{
    ContainerWriter, Keyring, random_backup_id, random_bytes, seal_container, seal_header,
    sign_seal,
};
pub use error::CryptoError;
#[doc(hidden)]
pub use keys::suite as hpke_suite;
pub use keys::{
    ENC_LEN, HPKE_INFO, Identity, P256Identity, P256Recipient, Recipient, STANZA_KIND, Unwrapped,
    WRAPPED_LEN, key_id_of, unique_recipients,
};
pub use pem::{
    KeyFile, KeyFileError, LoadedKey, load_identity_file, load_key_file, load_recipient_file,
    parse_key_pem, write_identity_file,
};
