//! sqlseal's crypto envelope: who can open a backup and who made it.
//!
//! Each backup gets a fresh random [`DataKey`](sqlseal_format::DataKey),
//! wrapped with HPKE (RFC 9180 base mode, DHKEM(P-256, HKDF-SHA256),
//! HKDF-SHA256, AES-128-GCM) to every recipient key, so any one of them can
//! restore it. The header is signed with ECDSA P-256 by a server key and
//! MACed under the data key; readers accept only signers they trust.
//!
//! Which type for which job:
//! - [`P256Identity`]: a private key; opens stanzas ([`Identity`]) and signs.
//! - [`P256Recipient`]: a public key; wraps data keys ([`Recipient`]) and verifies.
//! - [`Keyring`]: the identities and trusted signers a reader holds.
//! - [`seal_container`] / [`open_container`]: whole containers on one thread;
//!   [`seal_header`] and [`Keyring::open_header`] for callers that run the
//!   payload themselves.
//! - [`load_key_file`]: PEM files as `openssl` and `sqlseal keygen` write them.
//!
//! ```
//! use sqlseal_crypto::{open_container, random_backup_id, seal_container, Keyring, P256Identity, Recipient};
//! use sqlseal_format::{Compression, CreatedAt, Metadata};
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
//! };
//! let recipients: [&dyn Recipient; 1] = [server.recipient()];
//! let (_, mut payload) = seal_container(Vec::new(), metadata, &recipients, &server)?;
//! payload.write_image(b"pages")?;
//! let (file, _trailer) = payload.finish(1)?;
//!
//! let mut keyring = Keyring::new();
//! keyring.add_identity(server);
//! let (header, reader) = open_container(&file[..], &keyring)?;
//! let mut image = Vec::new();
//! reader.copy_to(&mut image)?;
//! assert_eq!(image, b"pages");
//! assert_eq!(header.metadata.database, "app.db");
//! # Ok::<(), sqlseal_crypto::CryptoError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod pem;

pub use envelope::{
    Keyring, open_container, random_backup_id, random_bytes, seal_container, seal_header,
};
pub use error::CryptoError;
#[doc(hidden)]
pub use keys::suite as hpke_suite;
pub use keys::{
    ENC_LEN, HPKE_INFO, Identity, P256Identity, P256Recipient, Recipient, STANZA_KIND, Unwrapped,
    WRAPPED_LEN, key_id_of,
};
pub use pem::{
    KeyFile, LoadedKey, load_identity_file, load_key_file, load_recipient_file, parse_key_pem,
};
