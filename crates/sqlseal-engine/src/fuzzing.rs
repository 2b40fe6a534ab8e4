//! Entry points shared by the fuzz targets in `fuzz/` and by the stable test
//! that replays their corpus (`tests/fuzz_corpus.rs`), so both exercise the
//! code that ships: the engine's one reader. Not part of the supported API.
//!
//! Each entry point takes arbitrary bytes and may return any error, but
//! panics if one of the invariants it checks breaks: that is what the fuzzer
//! looks for.

use std::io;
use std::path::Path;

use sqlseal_crypto::{CryptoError, Keyring, load_identity_file, load_recipient_file};
use sqlseal_format::{DataKey, FormatError, Header, ImageDigest, Trailer};

use crate::{CancelFlag, EngineError, NoProgress};

/// Private keys of the fixed fuzzing keyring, in the test key folder.
pub const FUZZ_IDENTITIES: [&str; 2] = ["alice.key", "bob.key"];
/// Public keys the fixed fuzzing keyring trusts as signers.
pub const FUZZ_TRUSTED: [&str; 1] = ["server.pub"];
/// The data key of the `open_payload` target.
pub const FUZZ_DATA_KEY: [u8; 32] = [0x5a; 32];
/// The chunk size of the `open_payload` target.
pub const FUZZ_CHUNK_SIZE: u32 = 4096;
/// Worker threads the fuzz entry points use: two, so that reordering and
/// early exits in the parallel reader are exercised.
const THREADS: usize = 2;

/// The keyring the `open_container` target opens every input with: the
/// [`FUZZ_IDENTITIES`] and [`FUZZ_TRUSTED`] keys found in `keys_dir`.
pub fn fixed_keyring(keys_dir: &Path) -> Result<Keyring, CryptoError> {
    let mut keyring = Keyring::new();
    for name in FUZZ_IDENTITIES {
        keyring.add_identity(load_identity_file(&keys_dir.join(name))?.0);
    }
    for name in FUZZ_TRUSTED {
        keyring.trust(load_recipient_file(&keys_dir.join(name))?);
    }
    Ok(keyring)
}

/// Parses a header from arbitrary bytes.
///
/// # Panics
/// If a header parses but encoding it does not give back exactly the bytes
/// the parser consumed: the encoding must be canonical, since the signature,
/// MAC and seal are checked over re-encoded bytes.
pub fn parse_header(data: &[u8]) -> Result<Header, FormatError> {
    let mut rest = data;
    let header = Header::parse(&mut rest)?;
    let consumed = &data[..data.len() - rest.len()];
    assert!(
        header.encode() == consumed,
        "header parsed from bytes it does not encode back to"
    );
    Ok(header)
}

/// Opens a container from arbitrary bytes with `keyring` through the
/// engine's reader, writing the image into a digest.
///
/// # Panics
/// If the reader succeeded but released bytes that do not match the trailer
/// it returned.
pub fn open_container(data: &[u8], keyring: &Keyring) -> Result<(Header, Trailer), EngineError> {
    let mut sink = DigestSink(ImageDigest::new());
    let opened = crate::open_container(
        "fuzz",
        data,
        keyring,
        &mut sink,
        THREADS,
        &CancelFlag::new(),
        &NoProgress,
    )?;
    assert!(
        sink.0.check(&opened.trailer).is_ok(),
        "the reader released an image that does not match its trailer"
    );
    Ok((opened.header, opened.trailer))
}

/// Opens a payload (salt, frames, seal record) from arbitrary bytes under
/// the fixed [`FUZZ_DATA_KEY`], so that fuzzing reaches the frames, LZ4 and
/// the trailer, which a container's header would otherwise guard.
///
/// # Panics
/// If the reader succeeded but released bytes that do not match the trailer.
pub fn open_payload(data: &[u8]) -> Result<Trailer, String> {
    let mut sink = DigestSink(ImageDigest::new());
    let opened = crate::open::open_payload(
        data,
        &DataKey::from_bytes(FUZZ_DATA_KEY),
        FUZZ_CHUNK_SIZE,
        &mut sink,
        THREADS,
        &CancelFlag::new(),
        &NoProgress,
    )
    .map_err(|e| format!("{e:?}"))?;
    assert!(
        sink.0.check(&opened.trailer).is_ok(),
        "the reader released an image that does not match its trailer"
    );
    Ok(opened.trailer)
}

struct DigestSink(ImageDigest);

impl io::Write for DigestSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The increment parser on arbitrary bytes: the first byte picks the page
/// size (512 to 65536), the second where the rest is split in two feeds.
///
/// # Panics
/// If a parse succeeds on bytes that are not the canonical encoding of
/// what it returned (two encodings of one increment would let a signed
/// link be read two ways).
pub fn parse_increment(data: &[u8]) -> Result<u64, String> {
    use sqlseal_format::increment::{IncrementError, encode_increment};
    let [size, split, rest @ ..] = data else {
        return Err("too short".into());
    };
    let page_size = 512u32 << (size % 8);
    let split = usize::from(*split).min(rest.len());
    let mut parser = sqlseal_format::IncrementParser::new(page_size);
    let mut pages = Vec::new();
    for piece in [&rest[..split], &rest[split..]] {
        parser
            .feed(piece, &mut |n, p| {
                pages.push((n, p.to_vec()));
                Ok::<(), ()>(())
            })
            .map_err(|e| match e {
                IncrementError::Format(e) => e.to_string(),
                IncrementError::Sink(()) => "sink".into(),
            })?;
    }
    let summary = parser.finish().map_err(|e| e.to_string())?;
    assert_eq!(
        encode_increment(page_size, summary.page_count, &pages, &summary.image_hash),
        rest,
        "an increment parsed from bytes that are not its encoding"
    );
    Ok(summary.pages)
}

/// SQLite's write-ahead log, as the change tracker reads it, on arbitrary
/// bytes: the header, then the committed frames from the first.
///
/// # Panics
/// If the reader reports more frames than the bytes hold, a position past
/// them, or page numbers without a committed frame.
pub fn read_wal(data: &[u8]) -> Result<u64, String> {
    use sqlseal_source::wal::{FRAME_HEADER_LEN, WAL_HEADER_LEN, read_commits, read_wal_header};
    let mut cursor = io::Cursor::new(data);
    let header = read_wal_header(&mut cursor)
        .map_err(|e| e.to_string())?
        .ok_or("no valid header")?;
    let mut pages = std::collections::BTreeSet::new();
    let read = read_commits(&mut cursor, header.start(), &mut pages).map_err(|e| e.to_string())?;
    let frame_len = FRAME_HEADER_LEN + header.page_size as usize;
    let whole_frames = (data.len() - WAL_HEADER_LEN) / frame_len;
    assert!(
        read.frames as usize <= whole_frames,
        "more frames than the bytes hold"
    );
    assert_eq!(
        read.position.frame as u64, read.frames,
        "position after the frames read"
    );
    assert_eq!(pages.is_empty(), read.frames == 0, "pages without frames");
    assert!(!pages.contains(&0), "page 0 is not a page");
    Ok(read.frames)
}

/// The chain state decoder on arbitrary bytes.
///
/// # Panics
/// If a decode succeeds on bytes that are not the encoding of what it
/// returned.
pub fn decode_chain_state(data: &[u8]) -> Result<u64, String> {
    let state = crate::ChainState::decode(data)?;
    assert_eq!(
        state.encode(),
        data,
        "a chain state decoded from bytes that are not its encoding"
    );
    Ok(state.index.page_count())
}
