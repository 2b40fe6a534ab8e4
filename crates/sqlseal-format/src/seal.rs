//! The seal record: the signer's commitment to the exact header and payload.
//!
//! The header signature alone covers the header; whoever holds a recipient
//! key can unwrap the data key and seal any image under a genuine header.
//! The seal record closes that: after the final frame, the header's signer
//! signs a transcript of the exact header bytes and of every byte of the
//! payload as stored (salt and frames, ciphertext), so a reader that checks
//! it knows the payload is the one the signer wrote. The transcript hashes
//! ciphertext, never plaintext, and hashes each frame in full (not only its
//! GCM tag, which a key holder could keep while changing the ciphertext).
//!
//! This module builds and parses the bytes; signing and verifying is the job
//! of `sqlseal-crypto`.

use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};
use crate::header::SIGNATURE_LEN;
use crate::payload::{FRAME_HEADER_LEN, SALT_LEN};

/// The first bytes of every seal record.
pub const SEAL_MAGIC: [u8; 4] = *b"SEAL";
/// Length of the encoded seal record.
pub const SEAL_LEN: usize = 8 + SIGNATURE_LEN;
/// The context string that starts the signed seal message.
pub const SEAL_CONTEXT: &[u8] = b"sqlseal/v2 seal\n";

/// The integrity check the writer ran on the snapshot and recorded in the
/// seal (a failed check fails the backup, so only passes are recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordedCheck {
    /// No check was recorded.
    None,
    /// `PRAGMA quick_check` returned `ok`.
    Quick,
    /// `PRAGMA integrity_check` returned `ok`.
    Full,
}

impl RecordedCheck {
    fn code(self) -> u8 {
        match self {
            RecordedCheck::None => 0,
            RecordedCheck::Quick => 1,
            RecordedCheck::Full => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(RecordedCheck::None),
            1 => Some(RecordedCheck::Quick),
            2 => Some(RecordedCheck::Full),
            _ => None,
        }
    }

    /// Its name in reports: `none`, `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            RecordedCheck::None => "none",
            RecordedCheck::Quick => "quick",
            RecordedCheck::Full => "full",
        }
    }
}

/// The record after the final frame: what the writer attests, and its
/// signature over the [`seal_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealRecord {
    /// The integrity check recorded at backup time.
    pub check: RecordedCheck,
    /// ECDSA P-256 / SHA-256 signature `r || s` by the header's signer.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SealRecord {
    /// The 8 bytes of attested fields: magic, check code, 3 zero bytes.
    pub fn fields(check: RecordedCheck) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&SEAL_MAGIC);
        out[4] = check.code();
        out
    }

    /// The 72-byte encoding: [`SealRecord::fields`], then the signature.
    pub fn encode(&self) -> [u8; SEAL_LEN] {
        let mut out = [0u8; SEAL_LEN];
        out[..8].copy_from_slice(&Self::fields(self.check));
        out[8..].copy_from_slice(&self.signature);
        out
    }

    /// Strictly decodes [`SealRecord::encode`]'s output.
    pub fn decode(bytes: &[u8; SEAL_LEN]) -> Result<SealRecord> {
        let bad = |reason: &str| FormatError::BadSeal(reason.into());
        if bytes[..4] != SEAL_MAGIC {
            return Err(bad("it does not start with `SEAL`"));
        }
        let check = RecordedCheck::from_code(bytes[4]).ok_or_else(|| bad("unknown check code"))?;
        if bytes[5..8] != [0, 0, 0] {
            return Err(bad("reserved bytes are not zero"));
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&bytes[8..]);
        Ok(SealRecord { check, signature })
    }
}

/// SHA-256 of one frame as stored: its 17-byte header, then its sealed body.
pub fn frame_digest(frame_header: &[u8; FRAME_HEADER_LEN], sealed: &[u8]) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update(frame_header);
    sha.update(sealed);
    sha.finalize().into()
}

/// The running digest of a payload: SHA-256 of the salt followed by each
/// frame's [`frame_digest`], in order. Frames can be hashed on any thread;
/// only the 32-byte digests are folded in order.
#[derive(Clone, Debug)]
pub struct PayloadDigest(Sha256);

impl PayloadDigest {
    /// Starts the digest of a payload with this salt.
    pub fn new(salt: &[u8; SALT_LEN]) -> Self {
        let mut sha = Sha256::new();
        sha.update(salt);
        PayloadDigest(sha)
    }

    /// Adds the next frame's digest.
    pub fn add_frame(&mut self, frame_digest: &[u8; 32]) {
        self.0.update(frame_digest);
    }

    /// The digest of the salt and every frame added.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The message the seal signature covers:
/// `SEAL_CONTEXT || SHA-256(header bytes) || payload digest || fields`.
pub fn seal_message(header: &[u8], payload_digest: &[u8; 32], check: RecordedCheck) -> Vec<u8> {
    let header_digest: [u8; 32] = Sha256::digest(header).into();
    let mut out = Vec::with_capacity(SEAL_CONTEXT.len() + 32 + 32 + 8);
    out.extend_from_slice(SEAL_CONTEXT);
    out.extend_from_slice(&header_digest);
    out.extend_from_slice(payload_digest);
    out.extend_from_slice(&SealRecord::fields(check));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check() -> impl Strategy<Value = RecordedCheck> {
        prop_oneof![
            Just(RecordedCheck::None),
            Just(RecordedCheck::Quick),
            Just(RecordedCheck::Full)
        ]
    }

    proptest! {
        #[test]
        fn seal_record_round_trips(check in check(), signature in prop::collection::vec(any::<u8>(), SIGNATURE_LEN)) {
            let mut sig = [0u8; SIGNATURE_LEN];
            sig.copy_from_slice(&signature);
            let record = SealRecord { check, signature: sig };
            prop_assert_eq!(SealRecord::decode(&record.encode()).expect("decodes"), record);
        }

        #[test]
        fn any_edit_of_the_fields_is_refused_or_changes_the_message(at in 0usize..8, bit in 0u8..8) {
            let record = SealRecord { check: RecordedCheck::Full, signature: [7; SIGNATURE_LEN] };
            let mut bytes = record.encode();
            bytes[at] ^= 1 << bit;
            match SealRecord::decode(&bytes) {
                Err(_) => {}
                Ok(edited) => prop_assert_ne!(
                    seal_message(b"h", &[0; 32], edited.check),
                    seal_message(b"h", &[0; 32], record.check)
                ),
            }
        }
    }

    #[test]
    fn message_binds_header_payload_and_check() {
        let base = seal_message(b"header", &[1; 32], RecordedCheck::None);
        assert!(base.starts_with(SEAL_CONTEXT));
        assert_ne!(base, seal_message(b"headex", &[1; 32], RecordedCheck::None));
        assert_ne!(base, seal_message(b"header", &[2; 32], RecordedCheck::None));
        assert_ne!(base, seal_message(b"header", &[1; 32], RecordedCheck::Full));
    }

    #[test]
    fn payload_digest_depends_on_order() {
        let mut a = PayloadDigest::new(&[0; SALT_LEN]);
        a.add_frame(&[1; 32]);
        a.add_frame(&[2; 32]);
        let mut b = PayloadDigest::new(&[0; SALT_LEN]);
        b.add_frame(&[2; 32]);
        b.add_frame(&[1; 32]);
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn bad_records_are_refused() {
        let good = SealRecord {
            check: RecordedCheck::Quick,
            signature: [1; SIGNATURE_LEN],
        }
        .encode();
        let mut b = good;
        b[0] = b'X';
        assert!(SealRecord::decode(&b).is_err());
        let mut b = good;
        b[4] = 3;
        assert!(SealRecord::decode(&b).is_err());
        let mut b = good;
        b[7] = 1;
        assert!(SealRecord::decode(&b).is_err());
    }
}
