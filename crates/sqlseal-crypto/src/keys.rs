//! P-256 keys: the [`Recipient`] and [`Identity`] traits, their HPKE
//! implementation, ECDSA header signatures, and key ids.

use std::fmt;

use hpke::kem::DhP256HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};
use sqlseal_format::{BackupId, DataKey, KeyId, Stanza};
use zeroize::{Zeroize, Zeroizing};

use crate::error::CryptoError;

/// Stanza type of HPKE-wrapped data keys for P-256 keys.
pub const STANZA_KIND: &str = "p256-hpke";
/// HPKE `info`: binds the format version and the stanza type.
pub const HPKE_INFO: &[u8] = b"sqlseal/v2 p256-hpke";
/// Length of an HPKE encapsulated key (uncompressed P-256 point).
pub const ENC_LEN: usize = 65;
/// Length of the wrapped data key (32 bytes plus a 16-byte tag).
pub const WRAPPED_LEN: usize = DataKey::LEN + 16;

type Kem = DhP256HkdfSha256;

/// The HPKE suite of `p256-hpke` stanzas, named for the RFC 9180
/// known-answer tests: KEM 0x0010, KDF 0x0001, AEAD 0x0001.
#[doc(hidden)]
pub mod suite {
    /// DHKEM(P-256, HKDF-SHA256).
    pub type Kem = hpke::kem::DhP256HkdfSha256;
    /// HKDF-SHA256.
    pub type Kdf = hpke::kdf::HkdfSha256;
    /// AES-128-GCM.
    pub type Aead = hpke::aead::AesGcm128;
}

/// Wraps a data key so that one key holder can unwrap it.
pub trait Recipient {
    /// The id of the key the stanza is for.
    fn key_id(&self) -> KeyId;
    /// Wraps `data_key` into a stanza bound to `backup_id`.
    fn wrap(&self, data_key: &DataKey, backup_id: &BackupId) -> Result<Stanza, CryptoError>;
}

/// What an [`Identity`] made of a stanza.
#[derive(Debug)]
pub enum Unwrapped {
    /// The stanza is for another key.
    NotMine,
    /// The stanza is ours and opened.
    Opened(DataKey),
    /// The stanza is ours but did not open.
    Failed(CryptoError),
}

/// Unwraps stanzas addressed to one private key.
pub trait Identity {
    /// The id of this key.
    fn key_id(&self) -> KeyId;
    /// Tries to unwrap `stanza`.
    fn unwrap_stanza(&self, stanza: &Stanza, backup_id: &BackupId) -> Unwrapped;
}

/// The key id of a P-256 public key: the first 8 bytes of SHA-256 over its
/// compressed SEC1 encoding.
pub fn key_id_of(public: &p256::PublicKey) -> KeyId {
    let point = public.to_sec1_point(true);
    let digest = Sha256::digest(point.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    KeyId(id)
}

fn stanza_aad(backup_id: &BackupId, key_id: &KeyId) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..16].copy_from_slice(&backup_id.0);
    aad[16..].copy_from_slice(&key_id.0);
    aad
}

/// A P-256 public key: a recipient of backups and a signer to trust.
#[derive(Clone)]
pub struct P256Recipient {
    public: p256::PublicKey,
    hpke: <Kem as hpke::Kem>::PublicKey,
    key_id: KeyId,
}

impl P256Recipient {
    /// From a public key.
    pub fn new(public: p256::PublicKey) -> Result<Self, CryptoError> {
        let point = public.to_sec1_point(false);
        let hpke = <Kem as hpke::Kem>::PublicKey::from_bytes(point.as_bytes())
            .map_err(|_| CryptoError::KeyText("not a valid P-256 public key".into()))?;
        Ok(P256Recipient {
            key_id: key_id_of(&public),
            public,
            hpke,
        })
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public key.
    pub fn public_key(&self) -> &p256::PublicKey {
        &self.public
    }

    /// The public key as `PUBLIC KEY` (SPKI) PEM, as `openssl ec -pubout` writes it.
    pub fn to_public_pem(&self) -> String {
        // Encoding a valid point as SPKI cannot fail.
        self.public
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// Checks an ECDSA P-256 signature (`r || s`) by this key over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        VerifyingKey::from(&self.public)
            .verify(message, &sig)
            .is_ok()
    }
}

impl fmt::Debug for P256Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P256Recipient({})", self.key_id)
    }
}

impl Recipient for P256Recipient {
    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn wrap(&self, data_key: &DataKey, backup_id: &BackupId) -> Result<Stanza, CryptoError> {
        let aad = stanza_aad(backup_id, &self.key_id);
        let (enc, wrapped) = hpke::single_shot_seal::<suite::Aead, suite::Kdf, suite::Kem>(
            &OpModeS::Base,
            &self.hpke,
            HPKE_INFO,
            data_key.expose_secret(),
            &aad,
        )
        .map_err(|_| CryptoError::Wrap {
            key_id: self.key_id,
        })?;
        Ok(Stanza {
            kind: STANZA_KIND.to_owned(),
            key_id: self.key_id,
            args: vec![enc.to_bytes().to_vec(), wrapped],
        })
    }
}

/// A P-256 private key: opens backups addressed to it and signs headers.
/// The secret scalar is zeroized when this is dropped.
#[derive(Clone)]
pub struct P256Identity {
    secret: p256::SecretKey,
    hpke: <Kem as hpke::Kem>::PrivateKey,
    recipient: P256Recipient,
}

impl P256Identity {
    /// From a secret key.
    pub fn new(secret: p256::SecretKey) -> Result<Self, CryptoError> {
        let recipient = P256Recipient::new(secret.public_key())?;
        let bytes = Zeroizing::new(secret.to_bytes());
        let hpke = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes[..])
            .map_err(|_| CryptoError::KeyText("not a valid P-256 private key".into()))?;
        Ok(P256Identity {
            secret,
            hpke,
            recipient,
        })
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, CryptoError> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut bytes[..]).map_err(CryptoError::Random)?;
            // A random 32-byte string is a valid scalar except with probability ~2^-32.
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes[..]) {
                return Self::new(secret);
            }
        }
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.recipient.key_id
    }

    /// The public half.
    pub fn recipient(&self) -> &P256Recipient {
        &self.recipient
    }

    /// The private key as `PRIVATE KEY` (PKCS#8) PEM.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, CryptoError> {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| CryptoError::KeyText(format!("encoding PKCS#8 failed: {e}")))
    }

    /// ECDSA P-256 / SHA-256 signature (`r || s`) over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let signing = SigningKey::from(&self.secret);
        let sig: Signature = signing.sign(message);
        sig.to_bytes().into()
    }
}

impl fmt::Debug for P256Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P256Identity({})", self.recipient.key_id)
    }
}

impl Identity for P256Identity {
    fn key_id(&self) -> KeyId {
        self.recipient.key_id
    }

    fn unwrap_stanza(&self, stanza: &Stanza, backup_id: &BackupId) -> Unwrapped {
        if stanza.kind != STANZA_KIND || stanza.key_id != self.recipient.key_id {
            return Unwrapped::NotMine;
        }
        let key_id = stanza.key_id;
        let malformed = |reason: &str| {
            Unwrapped::Failed(CryptoError::StanzaMalformed {
                key_id,
                reason: reason.into(),
            })
        };
        let [enc, wrapped] = &stanza.args[..] else {
            return malformed("expected 2 arguments");
        };
        if enc.len() != ENC_LEN || wrapped.len() != WRAPPED_LEN {
            return malformed("wrong argument lengths");
        }
        let Ok(enc) = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc) else {
            return Unwrapped::Failed(CryptoError::StanzaFailed { key_id });
        };
        let aad = stanza_aad(backup_id, &key_id);
        let opened = hpke::single_shot_open::<suite::Aead, suite::Kdf, suite::Kem>(
            &OpModeR::Base,
            &self.hpke,
            &enc,
            HPKE_INFO,
            wrapped,
            &aad,
        );
        match opened {
            Ok(mut bytes) => {
                let key = <[u8; 32]>::try_from(&bytes[..]).map(DataKey::from_bytes);
                bytes.zeroize();
                match key {
                    Ok(key) => Unwrapped::Opened(key),
                    Err(_) => malformed("wrapped key has the wrong length"),
                }
            }
            Err(_) => Unwrapped::Failed(CryptoError::StanzaFailed { key_id }),
        }
    }
}

/// `recipients` without repeats (by key id), in their first order: the
/// keys a backup is wrapped to, each once.
pub fn unique_recipients(
    recipients: impl IntoIterator<Item = P256Recipient>,
) -> Vec<P256Recipient> {
    let mut out: Vec<P256Recipient> = Vec::new();
    for r in recipients {
        if !out.iter().any(|o| o.key_id() == r.key_id()) {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip() {
        let alice = P256Identity::generate().expect("key");
        let bob = P256Identity::generate().expect("key");
        let key = DataKey::from_bytes([3; 32]);
        let id = BackupId([1; 16]);
        let stanza = alice.recipient().wrap(&key, &id).expect("wrap");
        assert_eq!(stanza.args[0].len(), ENC_LEN);
        assert_eq!(stanza.args[1].len(), WRAPPED_LEN);
        match alice.unwrap_stanza(&stanza, &id) {
            Unwrapped::Opened(k) => assert_eq!(k.expose_secret(), key.expose_secret()),
            other => panic!("expected Opened, got {other:?}"),
        }
        assert!(matches!(
            bob.unwrap_stanza(&stanza, &id),
            Unwrapped::NotMine
        ));
        // Bound to the backup id: the same stanza in another backup fails.
        assert!(matches!(
            alice.unwrap_stanza(&stanza, &BackupId([2; 16])),
            Unwrapped::Failed(CryptoError::StanzaFailed { .. })
        ));
    }

    #[test]
    fn signatures_verify_only_for_the_message_and_key() {
        let alice = P256Identity::generate().expect("key");
        let bob = P256Identity::generate().expect("key");
        let sig = alice.sign(b"header");
        assert!(alice.recipient().verify(b"header", &sig));
        assert!(!alice.recipient().verify(b"headex", &sig));
        assert!(!bob.recipient().verify(b"header", &sig));
    }

    #[test]
    fn key_ids_differ_and_are_stable() {
        let alice = P256Identity::generate().expect("key");
        let again = P256Identity::new(alice.secret.clone()).expect("key");
        assert_eq!(alice.key_id(), again.key_id());
        assert_ne!(
            alice.key_id(),
            P256Identity::generate().expect("key").key_id()
        );
    }

    #[test]
    fn debug_output_shows_only_the_key_id() {
        let alice = P256Identity::generate().expect("key");
        assert_eq!(
            format!("{alice:?}"),
            format!("P256Identity({})", alice.key_id())
        );
    }
}
