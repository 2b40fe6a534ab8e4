//! Sealing containers: a fresh data key wrapped to every recipient, the
//! header signed and MACed, the payload sealed under the data key and its
//! transcript signed in the seal record; and the checks a reader runs on the
//! header and on the seal, in a fixed order. (Opening a payload is the
//! engine's job.)

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};

use sqlseal_format::header::{encode_mac_input, encode_signed_part};
use sqlseal_format::{
    BackupId, DataKey, Header, KeyId, Metadata, PayloadWriter, RecordedCheck, SALT_LEN, SealRecord,
    Trailer, seal_message,
};

use crate::error::CryptoError;
use crate::keys::{Identity, P256Identity, P256Recipient, Recipient, Unwrapped};

/// Fills a buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(CryptoError::Random)?;
    Ok(out)
}

/// A new random backup id.
pub fn random_backup_id() -> Result<BackupId, CryptoError> {
    Ok(BackupId(random_bytes::<16>()?))
}

/// Keys that open backups ([`P256Identity`]) and signers that are trusted.
///
/// Every identity's public half is trusted as a signer. A keyring remembers
/// the signatures it verified (shared by its clones), so that a header
/// listed, then found again on its chain, then opened is verified once:
/// only a signature that verified is remembered, under a digest of the
/// signer's public key, the message and the signature, so a different
/// byte anywhere is verified afresh.
#[derive(Debug, Default, Clone)]
pub struct Keyring {
    identities: Vec<P256Identity>,
    trusted: Vec<P256Recipient>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
}

/// How many verified signatures a keyring remembers before it forgets them
/// all (32 bytes each).
const VERIFIED_MAX: usize = 1 << 16;

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a private key: it can open backups, and its public half is a trusted signer.
    pub fn add_identity(&mut self, identity: P256Identity) {
        self.trust(identity.recipient().clone());
        self.identities.push(identity);
    }

    /// Trusts a public key as a signer.
    pub fn trust(&mut self, signer: P256Recipient) {
        if !self.trusted.iter().any(|t| t.key_id() == signer.key_id()) {
            self.trusted.push(signer);
        }
    }

    /// The private keys.
    pub fn identities(&self) -> &[P256Identity] {
        &self.identities
    }

    /// The trusted signer with this key id.
    pub fn trusted_signer(&self, key_id: &KeyId) -> Option<&P256Recipient> {
        self.trusted.iter().find(|t| t.key_id() == *key_id)
    }

    /// Whether `signer` signed `message` with `signature`: verified, or
    /// remembered from an earlier verification of the very same bytes.
    fn signed_by(&self, signer: &P256Recipient, message: &[u8], signature: &[u8; 64]) -> bool {
        let mut sha = Sha256::new();
        sha.update(b"sqlseal verified signature\n");
        sha.update(signer.public_key().to_sec1_point(true).as_bytes());
        sha.update((message.len() as u64).to_be_bytes());
        sha.update(message);
        sha.update(signature);
        let digest: [u8; 32] = sha.finalize().into();
        let remembered = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if remembered().contains(&digest) {
            return true;
        }
        if !signer.verify(message, signature) {
            return false;
        }
        let mut verified = remembered();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(digest);
        true
    }

    /// Unwraps the data key, checks the signature, then the MAC.
    ///
    /// The order is fixed: a stanza for one of our keys must open (which
    /// binds it to this backup's id), the signer must be trusted and the
    /// signature valid, and the header MAC must verify under the data key.
    pub fn open_header(&self, header: &Header) -> Result<DataKey, CryptoError> {
        let backup_id = &header.metadata.backup_id;
        let mut failure = None;
        let mut data_key = None;
        'stanzas: for stanza in &header.stanzas {
            for identity in &self.identities {
                match identity.unwrap_stanza(stanza, backup_id) {
                    Unwrapped::NotMine => {}
                    Unwrapped::Opened(key) => {
                        data_key = Some(key);
                        break 'stanzas;
                    }
                    Unwrapped::Failed(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        let Some(data_key) = data_key else {
            return Err(failure.unwrap_or_else(|| CryptoError::NoMatchingKey {
                theirs: join_ids(header.stanzas.iter().map(|s| s.key_id)),
                ours: join_ids(self.identities.iter().map(|i| i.key_id())),
            }));
        };
        let signer = self
            .trusted_signer(&header.signer)
            .ok_or(CryptoError::UntrustedSigner {
                key_id: header.signer,
            })?;
        if !self.signed_by(signer, &header.signed_bytes(), &header.signature) {
            return Err(CryptoError::BadSignature {
                key_id: header.signer,
            });
        }
        data_key.verify_header_mac(header)?;
        Ok(data_key)
    }

    /// Checks a seal record: the header's signer must be trusted and its
    /// signature must cover this exact header and a payload with this
    /// [`PayloadDigest`](sqlseal_format::PayloadDigest). Call only after
    /// every frame was read and authenticated.
    pub fn verify_seal(
        &self,
        header: &Header,
        payload_digest: &[u8; 32],
        seal: &SealRecord,
    ) -> Result<(), CryptoError> {
        let signer = self
            .trusted_signer(&header.signer)
            .ok_or(CryptoError::UntrustedSigner {
                key_id: header.signer,
            })?;
        let message = seal_message(&header.encode(), payload_digest, seal.check);
        if !self.signed_by(signer, &message, &seal.signature) {
            return Err(CryptoError::BadSeal {
                key_id: header.signer,
            });
        }
        Ok(())
    }
}

/// Signs the seal record of a container whose header and payload are done.
/// `signer` must be the header's signer.
pub fn sign_seal(
    signer: &P256Identity,
    header: &Header,
    payload_digest: &[u8; 32],
    check: RecordedCheck,
) -> SealRecord {
    let message = seal_message(&header.encode(), payload_digest, check);
    SealRecord {
        check,
        signature: signer.sign(&message),
    }
}

fn join_ids(ids: impl Iterator<Item = KeyId>) -> String {
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    if ids.is_empty() {
        "no keys".into()
    } else {
        ids.join(", ")
    }
}

/// Builds a signed, MACed header for `metadata` with a fresh data key
/// wrapped to every recipient. The signer is not added as a recipient
/// unless it is in `recipients`.
pub fn seal_header(
    metadata: Metadata,
    recipients: &[&dyn Recipient],
    signer: &P256Identity,
) -> Result<(Header, DataKey), CryptoError> {
    metadata
        .validate()
        .map_err(sqlseal_format::FormatError::InvalidParameters)?;
    if recipients.is_empty() {
        return Err(sqlseal_format::FormatError::NoRecipients.into());
    }
    let data_key = DataKey::from_bytes(random_bytes::<32>()?);
    let stanzas = recipients
        .iter()
        .map(|r| r.wrap(&data_key, &metadata.backup_id))
        .collect::<Result<Vec<_>, _>>()?;
    let signer_id = signer.key_id();
    let signed = encode_signed_part(&metadata, &stanzas, signer_id);
    let signature = signer.sign(&signed);
    let mac = data_key.header_mac(&encode_mac_input(&signed, &signature));
    let header = Header {
        metadata,
        stanzas,
        signer: signer_id,
        signature,
        mac,
    };
    Ok((header, data_key))
}

/// A container being written on one thread: write the image, then
/// [`ContainerWriter::finish`] seals the final chunk and writes the signed
/// seal record.
pub struct ContainerWriter<W: Write> {
    payload: PayloadWriter<W>,
    header: Header,
    signer: P256Identity,
}

impl<W: Write> ContainerWriter<W> {
    /// Adds image bytes.
    pub fn write_image(&mut self, data: &[u8]) -> Result<(), CryptoError> {
        Ok(self.payload.write_image(data)?)
    }

    /// Seals the final chunk, signs and writes the seal record recording
    /// `check`, and returns the output and the trailer.
    pub fn finish(
        self,
        page_count: u64,
        check: RecordedCheck,
    ) -> Result<(W, Trailer), CryptoError> {
        let (mut out, trailer, digest) = self.payload.finish(page_count)?;
        let seal = sign_seal(&self.signer, &self.header, &digest, check);
        out.write_all(&seal.encode())
            .and_then(|()| out.flush())
            .map_err(sqlseal_format::FormatError::from)?;
        Ok((out, trailer))
    }
}

/// Writes a header and starts the payload; write the image into the
/// returned writer and call `finish`.
pub fn seal_container<W: Write>(
    mut out: W,
    metadata: Metadata,
    recipients: &[&dyn Recipient],
    signer: &P256Identity,
) -> Result<(Header, ContainerWriter<W>), CryptoError> {
    let (header, data_key) = seal_header(metadata, recipients, signer)?;
    out.write_all(&header.encode())
        .map_err(sqlseal_format::FormatError::from)?;
    let salt = random_bytes::<SALT_LEN>()?;
    let payload = PayloadWriter::new(out, &data_key, salt, header.metadata.chunk_size)?;
    let writer = ContainerWriter {
        payload,
        header: header.clone(),
        signer: signer.clone(),
    };
    Ok((header, writer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_signatures_are_remembered_and_only_for_the_same_bytes() {
        let (alice, bob) = (
            P256Identity::generate().expect("key"),
            P256Identity::generate().expect("key"),
        );
        let keyring = Keyring::new();
        let signature = alice.sign(b"header bytes");
        // Not alice's: refused, and not remembered as if it were.
        assert!(!keyring.signed_by(bob.recipient(), b"header bytes", &signature));
        assert!(!keyring.signed_by(bob.recipient(), b"header bytes", &signature));
        assert!(keyring.verified.lock().expect("lock").is_empty());
        // Alice's: verified, remembered, and the memo serves clones too.
        assert!(keyring.signed_by(alice.recipient(), b"header bytes", &signature));
        assert_eq!(keyring.verified.lock().expect("lock").len(), 1);
        let clone = keyring.clone();
        assert!(clone.signed_by(alice.recipient(), b"header bytes", &signature));
        assert_eq!(keyring.verified.lock().expect("lock").len(), 1);
        // Any other byte is verified afresh: the message, the signature, the signer.
        assert!(!clone.signed_by(alice.recipient(), b"header bytez", &signature));
        let mut edited = signature;
        edited[63] ^= 1;
        assert!(!clone.signed_by(alice.recipient(), b"header bytes", &edited));
        assert!(!clone.signed_by(bob.recipient(), b"header bytes", &signature));
        assert_eq!(keyring.verified.lock().expect("lock").len(), 1);
    }
}
