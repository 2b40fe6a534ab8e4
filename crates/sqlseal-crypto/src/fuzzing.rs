//! Entry points shared by the fuzz targets in `fuzz/` and by the stable test
//! that replays their corpus (`tests/fuzz_corpus.rs`), so both exercise the
//! same code. Not part of the supported API.
//!
//! Each entry point takes arbitrary bytes and may return any error, but
//! panics if one of the invariants it checks breaks: that is what the fuzzer
//! looks for.

use std::io;
use std::path::Path;

use sqlseal_format::{FormatError, Header, ImageDigest, Trailer};

use crate::envelope::Keyring;
use crate::error::CryptoError;
use crate::pem::{load_identity_file, load_recipient_file};

/// Private keys of the fixed fuzzing keyring, in the test key folder.
pub const FUZZ_IDENTITIES: [&str; 2] = ["alice.key", "bob.key"];
/// Public keys the fixed fuzzing keyring trusts as signers.
pub const FUZZ_TRUSTED: [&str; 1] = ["server.pub"];

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
/// the parser consumed: the encoding must be canonical, since the signature
/// and MAC are checked over re-encoded bytes.
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

/// Opens a container from arbitrary bytes with `keyring` and reads the
/// whole image into a sink.
///
/// # Panics
/// If the reader released bytes that do not match the trailer it returned.
pub fn open_container(data: &[u8], keyring: &Keyring) -> Result<(Header, Trailer), CryptoError> {
    let (header, reader) = crate::envelope::open_container(data, keyring)?;
    let mut sink = DigestSink(ImageDigest::new());
    let trailer = reader.copy_to(&mut sink)?;
    assert!(
        sink.0.check(&trailer).is_ok(),
        "the reader released an image that does not match its trailer"
    );
    Ok((header, trailer))
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
