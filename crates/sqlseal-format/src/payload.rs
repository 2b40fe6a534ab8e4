//! The binary payload: salt, then sealed chunks in the STREAM construction.
//!
//! Each chunk is compressed on its own (one LZ4 block, or stored when that
//! does not shrink it) and sealed with AES-256-GCM under a payload key derived
//! from the data key and the salt. The nonce is the chunk counter and a final
//! flag; the frame header is the associated data. The final chunk carries the
//! [`Trailer`]. The pieces are separate so that the engine can seal and open
//! independent chunks on several cores: [`ChunkCipher`] is `Sync` and
//! stateless, [`FrameReader`] and [`ImageDigest`] are the sequential parts.
//! [`PayloadWriter`] composes them to seal on one thread. Opening a payload
//! is the engine's job: it runs the one reader, on several cores.

use std::fmt;
use std::io::{self, Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{FormatError, Result};
use crate::header::{Header, MAC_LEN, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::seal::{PayloadDigest, SEAL_LEN, SEAL_MAGIC, SealRecord, frame_digest};

/// Length of the random salt that starts the payload.
pub const SALT_LEN: usize = 32;
/// Length of a chunk frame header.
pub const FRAME_HEADER_LEN: usize = 17;
/// Length of the AES-GCM tag at the end of each sealed chunk.
pub const TAG_LEN: usize = 16;
/// Length of the encoded trailer.
pub const TRAILER_LEN: usize = 48;
/// Frame flag: this is the final chunk.
pub const FLAG_FINAL: u8 = 0x01;
/// Frame flag: the chunk body is stored, not LZ4-compressed.
pub const FLAG_STORED: u8 = 0x02;

const PAYLOAD_INFO: &[u8] = b"sqlseal/v2 payload";
const HEADER_MAC_INFO: &[u8] = b"sqlseal/v2 header mac";

/// The random 32-byte key of one backup. Zeroized on drop; its `Debug`
/// output hides the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// Wraps key bytes (from a CSPRNG or an unwrapped stanza).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(bytes)
    }

    /// The key bytes, for wrapping to a recipient. Do not log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
        let _ = Hkdf::<Sha256>::new(salt, &self.0).expand(info, &mut okm);
        okm
    }

    /// HMAC-SHA256 of `input` under the header MAC key derived from this data key.
    pub fn header_mac(&self, input: &[u8]) -> [u8; MAC_LEN] {
        let mut key = self.derive(None, HEADER_MAC_INFO);
        let mut mac = hmac_sha256(&key);
        key.zeroize();
        mac.update(input);
        mac.finalize().into_bytes().into()
    }

    /// Checks a parsed header's MAC in constant time.
    pub fn verify_header_mac(&self, header: &Header) -> Result<()> {
        let mut key = self.derive(None, HEADER_MAC_INFO);
        let mut mac = hmac_sha256(&key);
        key.zeroize();
        mac.update(&header.mac_input());
        mac.verify_slice(&header.mac)
            .map_err(|_| FormatError::HeaderMac)
    }
}

fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; a 32-byte key cannot be rejected.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<secret>)")
    }
}

/// What the final chunk states about the whole image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Trailer {
    /// Length of the database image in bytes.
    pub db_len: u64,
    /// Number of database pages in the image.
    pub page_count: u64,
    /// SHA-256 of the whole image.
    pub sha256: [u8; 32],
}

impl Trailer {
    /// The 48-byte encoding: `db_len` (u64 BE), `page_count` (u64 BE), `sha256`.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[..8].copy_from_slice(&self.db_len.to_be_bytes());
        out[8..16].copy_from_slice(&self.page_count.to_be_bytes());
        out[16..].copy_from_slice(&self.sha256);
        out
    }

    /// Decodes [`Trailer::encode`]'s output.
    pub fn decode(bytes: &[u8; TRAILER_LEN]) -> Trailer {
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[..8]);
        let mut pages = [0u8; 8];
        pages.copy_from_slice(&bytes[8..16]);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[16..]);
        Trailer {
            db_len: u64::from_be_bytes(len),
            page_count: u64::from_be_bytes(pages),
            sha256,
        }
    }
}

/// The clear 17-byte header in front of each sealed chunk; authenticated as
/// the AEAD's associated data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameHeader {
    /// 0-based chunk counter.
    pub index: u64,
    /// Bit set of [`FLAG_FINAL`] and [`FLAG_STORED`].
    pub flags: u8,
    /// Length of the chunk's image bytes after decompression.
    pub raw_len: u32,
    /// Length of the sealed body including the tag.
    pub sealed_len: u32,
}

impl FrameHeader {
    /// Whether this is the final chunk.
    pub fn is_final(&self) -> bool {
        self.flags & FLAG_FINAL != 0
    }

    /// `index` (u64 BE), `flags` (u8), `raw_len` (u32 BE), `sealed_len` (u32 BE).
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[..8].copy_from_slice(&self.index.to_be_bytes());
        out[8] = self.flags;
        out[9..13].copy_from_slice(&self.raw_len.to_be_bytes());
        out[13..].copy_from_slice(&self.sealed_len.to_be_bytes());
        out
    }

    /// Decodes the 17 bytes; does not check them.
    pub fn decode(bytes: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
        let mut index = [0u8; 8];
        index.copy_from_slice(&bytes[..8]);
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&bytes[9..13]);
        let mut sealed = [0u8; 4];
        sealed.copy_from_slice(&bytes[13..]);
        FrameHeader {
            index: u64::from_be_bytes(index),
            flags: bytes[8],
            raw_len: u32::from_be_bytes(raw),
            sealed_len: u32::from_be_bytes(sealed),
        }
    }

    /// The STREAM nonce: 11-byte big-endian counter, then the final flag.
    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[3..11].copy_from_slice(&self.index.to_be_bytes());
        nonce[11] = u8::from(self.is_final());
        nonce
    }
}

/// The largest sealed body a chunk of `chunk_size` plaintext bytes can have.
///
/// A chunk body is never longer than the chunk's image bytes: a writer
/// stores the bytes uncompressed whenever LZ4 would not make them shorter.
pub fn max_sealed_len(chunk_size: u32) -> usize {
    chunk_size as usize + TRAILER_LEN + TAG_LEN
}

fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(FormatError::InvalidParameters(format!(
            "chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )));
    }
    Ok(())
}

/// Seals and opens single chunks. Stateless and `Sync`: many threads may
/// use one `ChunkCipher` at once.
#[derive(Clone)]
pub struct ChunkCipher {
    aead: Aes256Gcm,
    chunk_size: u32,
}

impl ChunkCipher {
    /// Derives the payload key from the data key and salt.
    pub fn new(data_key: &DataKey, salt: &[u8; SALT_LEN], chunk_size: u32) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        let mut key = data_key.derive(Some(salt), PAYLOAD_INFO);
        let aead = Aes256Gcm::new_from_slice(&key);
        key.zeroize();
        let aead = aead.map_err(|_| FormatError::InvalidParameters("payload key length".into()))?;
        Ok(ChunkCipher { aead, chunk_size })
    }

    /// The plaintext chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Compresses and seals `data` as chunk `index`, appending the frame
    /// (header and sealed body) to `out`. A `trailer` makes it the final chunk.
    ///
    /// Every chunk but the final one must hold exactly `chunk_size` bytes.
    pub fn seal(
        &self,
        index: u64,
        data: &[u8],
        trailer: Option<&Trailer>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let too_long = data.len() > self.chunk_size as usize;
        let short = trailer.is_none() && data.len() != self.chunk_size as usize;
        if too_long || short {
            return Err(FormatError::InvalidParameters(format!(
                "chunk {index} holds {} bytes; non-final chunks hold exactly {} and the final at most that",
                data.len(),
                self.chunk_size
            )));
        }
        let start = out.len();
        let body_start = start + FRAME_HEADER_LEN;
        let max_body = lz4_flex::block::get_maximum_output_size(data.len());
        out.resize(body_start + max_body, 0);
        let mut flags = 0u8;
        let compressed = lz4_flex::block::compress_into(data, &mut out[body_start..]);
        let body_len = match compressed {
            Ok(n) if n < data.len() => n,
            _ => {
                flags |= FLAG_STORED;
                out[body_start..body_start + data.len()].copy_from_slice(data);
                data.len()
            }
        };
        out.truncate(body_start + body_len);
        if let Some(t) = trailer {
            flags |= FLAG_FINAL;
            out.extend_from_slice(&t.encode());
        }
        let sealed_len = out.len() - body_start + TAG_LEN;
        let header = FrameHeader {
            index,
            flags,
            raw_len: data.len() as u32,
            // Bounded by max_sealed_len(MAX_CHUNK_SIZE), far below u32::MAX.
            sealed_len: sealed_len as u32,
        };
        let aad = header.encode();
        out[start..body_start].copy_from_slice(&aad);
        let tag = self
            .aead
            .encrypt_inout_detached(
                &header.nonce().into(),
                &aad,
                InOutBuf::from(&mut out[body_start..]),
            )
            .map_err(|_| FormatError::InvalidParameters("chunk too long for AES-GCM".into()))?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens one frame that [`FrameReader`] checked: authenticates and
    /// decrypts `sealed` in place, then writes the chunk's image bytes to
    /// `out` (replacing its contents). Returns the trailer of a final chunk.
    ///
    /// Nothing is written to `out` unless the chunk authenticated.
    pub fn open(
        &self,
        header: &FrameHeader,
        sealed: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Trailer>> {
        let index = header.index;
        if sealed.len() != header.sealed_len as usize || sealed.len() < TAG_LEN {
            return Err(FormatError::BadFrame {
                index,
                reason: "sealed length does not match the frame header".into(),
            });
        }
        let (body, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
        let tag: &[u8] = tag;
        let tag = tag
            .try_into()
            .map_err(|_| FormatError::ChunkAuth { index })?;
        self.aead
            .decrypt_inout_detached(
                &header.nonce().into(),
                &header.encode(),
                InOutBuf::from(&mut *body),
                tag,
            )
            .map_err(|_| FormatError::ChunkAuth { index })?;
        let (data, trailer) = if header.is_final() {
            let split = body
                .len()
                .checked_sub(TRAILER_LEN)
                .ok_or(FormatError::BadFrame {
                    index,
                    reason: "final chunk too short for its trailer".into(),
                })?;
            let (data, trailer) = body.split_at(split);
            let trailer: &[u8; TRAILER_LEN] = trailer
                .try_into()
                .map_err(|_| FormatError::ChunkAuth { index })?;
            (data, Some(Trailer::decode(trailer)))
        } else {
            (&*body, None)
        };
        let raw_len = header.raw_len as usize;
        out.clear();
        if header.flags & FLAG_STORED != 0 {
            if data.len() != raw_len {
                return Err(FormatError::Decompress {
                    index,
                    expected: header.raw_len,
                });
            }
            out.extend_from_slice(data);
        } else {
            out.resize(raw_len, 0);
            match lz4_flex::block::decompress_into(data, out) {
                Ok(n) if n == raw_len => {}
                _ => {
                    out.clear();
                    return Err(FormatError::Decompress {
                        index,
                        expected: header.raw_len,
                    });
                }
            }
        }
        Ok(trailer)
    }
}

impl fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkCipher")
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends (retrying reads that were
/// interrupted); returns the bytes read, fewer than `buf.len()` only at the
/// end of the input.
pub fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the payload's salt.
pub fn read_salt<R: Read>(reader: &mut R) -> Result<[u8; SALT_LEN]> {
    let mut salt = [0u8; SALT_LEN];
    if read_full(reader, &mut salt)? != SALT_LEN {
        return Err(FormatError::SaltTruncated);
    }
    Ok(salt)
}

/// Splits the payload after the salt into frames and checks their order,
/// flags, lengths and the end of the stream; does no cryptography.
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    chunk_size: u32,
    next_index: u64,
    final_index: Option<u64>,
}

impl<R: Read> FrameReader<R> {
    /// Frames of a payload with this chunk size; `reader` is just past the salt.
    pub fn new(reader: R, chunk_size: u32) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        Ok(FrameReader {
            reader,
            chunk_size,
            next_index: 0,
            final_index: None,
        })
    }

    /// Reads the next frame's sealed body into `sealed` (replacing its
    /// contents) and returns its header; `None` once the final frame was
    /// read (the seal record follows: [`FrameReader::read_seal`]).
    pub fn next_frame(&mut self, sealed: &mut Vec<u8>) -> Result<Option<FrameHeader>> {
        if self.final_index.is_some() {
            return Ok(None);
        }
        let mut raw = [0u8; FRAME_HEADER_LEN];
        let n = read_full(&mut self.reader, &mut raw)?;
        let index = self.next_index;
        if n == 0 {
            return Err(FormatError::MissingFinal { chunks: index });
        }
        if n < FRAME_HEADER_LEN {
            return Err(FormatError::ChunkTruncated { index });
        }
        if raw[..4] == SEAL_MAGIC {
            // No frame index starts with these bytes (it would be above
            // 6 * 10^18): this is the seal record, and the final chunk is
            // missing.
            return Err(FormatError::SealBeforeFinal { chunks: index });
        }
        let header = FrameHeader::decode(&raw);
        if header.index < index {
            return Err(FormatError::ChunkRepeated {
                index: header.index,
                expected: index,
            });
        }
        if header.index > index {
            return Err(FormatError::ChunkSkipped {
                index: header.index,
                expected: index,
            });
        }
        let bad = |reason: &str| FormatError::BadFrame {
            index,
            reason: reason.into(),
        };
        if header.flags & !(FLAG_FINAL | FLAG_STORED) != 0 {
            return Err(bad("unknown flag bits"));
        }
        if header.raw_len > self.chunk_size {
            return Err(bad("raw length exceeds the chunk size"));
        }
        if !header.is_final() && header.raw_len != self.chunk_size {
            return Err(bad("a chunk shorter than the chunk size is not final"));
        }
        let min = TAG_LEN + if header.is_final() { TRAILER_LEN } else { 0 };
        let sealed_len = header.sealed_len as usize;
        if sealed_len < min || sealed_len > max_sealed_len(self.chunk_size) {
            return Err(bad("sealed length out of range"));
        }
        sealed.clear();
        sealed.resize(sealed_len, 0);
        if read_full(&mut self.reader, sealed)? != sealed_len {
            return Err(FormatError::ChunkTruncated { index });
        }
        if header.is_final() {
            self.final_index = Some(index);
        }
        self.next_index += 1;
        Ok(Some(header))
    }

    /// Reads the seal record that follows the final frame and checks that
    /// the input ends right after it. Call only after the final frame.
    pub fn read_seal(&mut self) -> Result<SealRecord> {
        let Some(index) = self.final_index else {
            return Err(FormatError::MissingFinal {
                chunks: self.next_index,
            });
        };
        let mut raw = [0u8; SEAL_LEN];
        let n = read_full(&mut self.reader, &mut raw)?;
        let mut frame = [0u8; FRAME_HEADER_LEN];
        frame.copy_from_slice(&raw[..FRAME_HEADER_LEN]);
        let second = FrameHeader::decode(&frame);
        if n >= FRAME_HEADER_LEN && second.is_final() && second.index <= index.saturating_add(1) {
            return Err(FormatError::SecondFinal { index });
        }
        if n != SEAL_LEN {
            return Err(FormatError::SealTruncated);
        }
        let mut more = [0u8; 1];
        if read_full(&mut self.reader, &mut more)? != 0 {
            return Err(FormatError::TrailingData { index });
        }
        SealRecord::decode(&raw)
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// Hashes the image in order and checks it against the trailer.
#[derive(Clone, Debug, Default)]
pub struct ImageDigest {
    sha: Sha256,
    len: u64,
}

impl ImageDigest {
    /// A digest of no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next bytes of the image.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The trailer for the image hashed so far.
    pub fn trailer(self, page_count: u64) -> Trailer {
        Trailer {
            db_len: self.len,
            page_count,
            sha256: self.sha.finalize().into(),
        }
    }

    /// Checks the image hashed so far against a trailer read from a backup.
    pub fn check(self, trailer: &Trailer) -> Result<()> {
        if self.len != trailer.db_len {
            return Err(FormatError::TrailerMismatch(format!(
                "the trailer states {} bytes but the chunks hold {}",
                trailer.db_len, self.len
            )));
        }
        let sha256: [u8; 32] = self.sha.finalize().into();
        if sha256 != trailer.sha256 {
            return Err(FormatError::TrailerMismatch(
                "SHA-256 of the image differs from the trailer".into(),
            ));
        }
        Ok(())
    }
}

/// Writes a payload on one thread: salt, then chunks as data arrives.
pub struct PayloadWriter<W: Write> {
    out: W,
    cipher: ChunkCipher,
    pending: Vec<u8>,
    frame: Vec<u8>,
    index: u64,
    digest: ImageDigest,
    payload: PayloadDigest,
}

impl<W: Write> PayloadWriter<W> {
    /// Writes the salt and prepares to seal chunks of `chunk_size` bytes.
    pub fn new(
        mut out: W,
        data_key: &DataKey,
        salt: [u8; SALT_LEN],
        chunk_size: u32,
    ) -> Result<Self> {
        let cipher = ChunkCipher::new(data_key, &salt, chunk_size)?;
        out.write_all(&salt)?;
        Ok(PayloadWriter {
            out,
            cipher,
            pending: Vec::with_capacity(chunk_size as usize),
            frame: Vec::with_capacity(max_sealed_len(chunk_size) + FRAME_HEADER_LEN),
            index: 0,
            digest: ImageDigest::new(),
            payload: PayloadDigest::new(&salt),
        })
    }

    fn seal_pending(&mut self, trailer: Option<&Trailer>) -> Result<()> {
        self.frame.clear();
        self.cipher
            .seal(self.index, &self.pending, trailer, &mut self.frame)?;
        self.payload.add_frame(&frame_digest_of(&self.frame));
        self.out.write_all(&self.frame)?;
        self.pending.clear();
        self.index += 1;
        Ok(())
    }

    /// Adds image bytes; seals each full chunk once more data follows it.
    pub fn write_image(&mut self, mut data: &[u8]) -> Result<()> {
        let chunk = self.cipher.chunk_size() as usize;
        while !data.is_empty() {
            if self.pending.len() == chunk {
                self.seal_pending(None)?;
            }
            let take = (chunk - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            self.digest.update(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the final chunk with the trailer and flushes. Returns the
    /// output, the trailer, and the [`PayloadDigest`] of everything written
    /// (for the seal record, which the caller signs and writes next).
    pub fn finish(mut self, page_count: u64) -> Result<(W, Trailer, [u8; 32])> {
        let trailer = std::mem::take(&mut self.digest).trailer(page_count);
        self.seal_pending(Some(&trailer))?;
        self.out.flush()?;
        Ok((self.out, trailer, self.payload.finish()))
    }
}

impl<W: Write> Write for PayloadWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_image(buf).map_err(into_io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The [`frame_digest`] of an encoded frame (header, then sealed body).
pub fn frame_digest_of(frame: &[u8]) -> [u8; 32] {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let split = frame.len().min(FRAME_HEADER_LEN);
    header[..split].copy_from_slice(&frame[..split]);
    frame_digest(&header, &frame[split..])
}

/// Turns a format error into an `io::Error` that keeps it as its source.
pub fn into_io(e: FormatError) -> io::Error {
    match e {
        FormatError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CS: u32 = 4096;

    fn seal_all(data: &[u8], chunk_size: u32) -> Vec<u8> {
        let key = DataKey::from_bytes([7; 32]);
        let mut w =
            PayloadWriter::new(Vec::new(), &key, [9; SALT_LEN], chunk_size).expect("writer");
        w.write_image(data).expect("write");
        w.finish(3).expect("finish").0
    }

    proptest! {
        #[test]
        fn frame_header_round_trips(index in any::<u64>(), flags in any::<u8>(), raw in any::<u32>(), sealed in any::<u32>()) {
            let h = FrameHeader { index, flags, raw_len: raw, sealed_len: sealed };
            prop_assert_eq!(FrameHeader::decode(&h.encode()), h);
        }

        #[test]
        fn trailer_round_trips(db_len in any::<u64>(), page_count in any::<u64>(), sha256 in any::<[u8; 32]>()) {
            let t = Trailer { db_len, page_count, sha256 };
            prop_assert_eq!(Trailer::decode(&t.encode()), t);
        }

        #[test]
        fn chunk_round_trips(index in any::<u64>(), data in prop::collection::vec(any::<u8>(), 0..=CS as usize), last in any::<bool>()) {
            let cipher = ChunkCipher::new(&DataKey::from_bytes([1; 32]), &[2; SALT_LEN], CS).expect("cipher");
            let trailer = Trailer { db_len: 1, page_count: 2, sha256: [3; 32] };
            let data = if last { data } else { vec![0xAB; CS as usize] };
            let mut frame = Vec::new();
            cipher.seal(index, &data, last.then_some(&trailer), &mut frame).expect("seal");
            let header = FrameHeader::decode(frame[..FRAME_HEADER_LEN].try_into().expect("17"));
            let mut sealed = frame[FRAME_HEADER_LEN..].to_vec();
            let mut out = Vec::new();
            let t = cipher.open(&header, &mut sealed, &mut out).expect("open");
            prop_assert_eq!(out, data);
            prop_assert_eq!(t, last.then_some(trailer));
        }
    }

    #[test]
    fn wrong_key_fails_authentication() {
        let sealed = seal_all(b"hello", CS);
        let mut frames = FrameReader::new(&sealed[SALT_LEN..], CS).expect("frames");
        let mut body = Vec::new();
        let header = frames
            .next_frame(&mut body)
            .expect("frame")
            .expect("one frame");
        let cipher =
            ChunkCipher::new(&DataKey::from_bytes([8; 32]), &[9; SALT_LEN], CS).expect("cipher");
        let e = cipher
            .open(&header, &mut body, &mut Vec::new())
            .expect_err("wrong key");
        assert!(matches!(e, FormatError::ChunkAuth { index: 0 }));
    }

    #[test]
    fn seal_record_must_end_the_payload() {
        let sealed = seal_all(b"hello", CS);
        let seal = crate::seal::SealRecord {
            check: crate::RecordedCheck::None,
            signature: [1; 64],
        }
        .encode();
        let read = |tail: &[u8]| {
            let mut bytes = sealed[SALT_LEN..].to_vec();
            bytes.extend_from_slice(tail);
            let mut frames = FrameReader::new(&bytes[..], CS).expect("frames");
            let mut body = Vec::new();
            assert!(frames.next_frame(&mut body).expect("frame").is_some());
            assert!(frames.next_frame(&mut body).expect("end").is_none());
            frames.read_seal().map_err(|e| e.to_string())
        };
        assert!(read(&seal).is_ok());
        assert_eq!(
            read(&seal[..10]).expect_err("short"),
            "truncated payload: the file ends inside the seal record"
        );
        let mut longer = seal.to_vec();
        longer.push(0);
        assert_eq!(
            read(&longer).expect_err("long"),
            "unexpected data after the seal record (final chunk 0)"
        );
    }

    #[test]
    fn compressible_data_is_compressed() {
        let data = vec![0u8; 4 * CS as usize];
        assert!(seal_all(&data, CS).len() < data.len() / 10);
    }

    #[test]
    fn data_key_debug_hides_bytes() {
        assert_eq!(
            format!("{:?}", DataKey::from_bytes([0x41; 32])),
            "DataKey(<secret>)"
        );
    }
}
