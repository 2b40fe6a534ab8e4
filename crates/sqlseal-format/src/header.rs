//! The text header: encoding, strict parsing, and the byte ranges that the
//! signature and the MAC cover.
//!
//! A header is a sequence of `\n`-terminated lines in a fixed order (see
//! `docs/format.md`). Encoding is canonical: [`Header::parse`] accepts exactly
//! the bytes that [`Header::encode`] produces for the parsed value, so the
//! signature and MAC can be checked over re-encoded bytes.

use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

use crate::error::{FormatError, Result};

/// The first line of every v2 container.
pub const MAGIC: &str = "sqlseal/v2";
/// No valid header is longer than this many bytes.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// At most this many recipient stanzas.
pub const MAX_RECIPIENTS: usize = 64;
/// At most this many arguments in one stanza.
pub const MAX_STANZA_ARGS: usize = 4;
/// Smallest allowed plaintext chunk size.
pub const MIN_CHUNK_SIZE: u32 = 4096;
/// Largest allowed plaintext chunk size.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Default plaintext chunk size (1 MiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 1024 * 1024;
/// Length of an ECDSA P-256 signature (`r || s`).
pub const SIGNATURE_LEN: usize = 64;
/// Length of the header MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;

/// Field names in the order they appear.
const FIELDS: &[&str] = &[
    "id",
    "created",
    "database",
    "page-size",
    "method",
    "compression",
    "chunk-size",
    "chain",
    "recipient",
    "signer",
    "signature",
    "mac",
];

/// A random 16-byte identifier of one backup, bound into every stanza.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BackupId(pub [u8; 16]);

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A short public identifier of a P-256 key: the first 8 bytes of SHA-256 of
/// its compressed SEC1 encoding, shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for KeyId {
    type Err = ParseKeyIdError;
    fn from_str(s: &str) -> Result<Self, ParseKeyIdError> {
        parse_lower_hex::<8>(s)
            .map(KeyId)
            .map_err(|_| ParseKeyIdError)
    }
}

/// Text that is not a [`KeyId`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("expected 16 lowercase hex digits")]
#[non_exhaustive]
pub struct ParseKeyIdError;

/// A creation time in UTC with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CreatedAt(jiff::Timestamp);

impl CreatedAt {
    /// Truncates `ts` to whole microseconds.
    pub fn from_timestamp(ts: jiff::Timestamp) -> Self {
        // as_microsecond() of a valid timestamp is always in range for from_microsecond.
        CreatedAt(jiff::Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts))
    }

    /// The earliest time a header can state: 0000-01-01T00:00:00Z.
    pub const MIN_MICROSECOND: i64 = -62_167_219_200_000_000;

    /// Microseconds since the Unix epoch; `None` before year 0 or past
    /// the latest time the `created:` field can hold.
    pub fn from_microsecond(us: i64) -> Option<Self> {
        if us < Self::MIN_MICROSECOND {
            return None;
        }
        jiff::Timestamp::from_microsecond(us).ok().map(CreatedAt)
    }

    /// The time as a `jiff` timestamp.
    pub fn timestamp(self) -> jiff::Timestamp {
        self.0
    }

    /// Microseconds since the Unix epoch.
    pub fn as_microsecond(self) -> i64 {
        self.0.as_microsecond()
    }
}

impl fmt::Display for CreatedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }
}

/// Text that is not a [`CreatedAt`] in its canonical form.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseCreatedAtError {
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    #[error("expected YYYY-MM-DDTHH:MM:SS.ffffffZ")]
    Shape,
    /// The right shape, but not a time jiff accepts.
    #[error("{0}")]
    Time(#[source] jiff::Error),
    /// A time jiff would normalise, such as `23:59:60`.
    #[error("not a canonical UTC time")]
    NotCanonical,
}

impl FromStr for CreatedAt {
    type Err = ParseCreatedAtError;
    fn from_str(s: &str) -> Result<Self, ParseCreatedAtError> {
        let bytes = s.as_bytes();
        let shape_ok = bytes.len() == 27
            && bytes.iter().enumerate().all(|(i, &b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'.',
                26 => b == b'Z',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(ParseCreatedAtError::Shape);
        }
        let ts: jiff::Timestamp = s.parse().map_err(ParseCreatedAtError::Time)?;
        let parsed = CreatedAt(ts);
        // Reject values like 23:59:60 that jiff would normalise.
        if parsed.to_string() != s {
            return Err(ParseCreatedAtError::NotCanonical);
        }
        Ok(parsed)
    }
}

/// The compression applied to each chunk. v2 knows only lz4 blocks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Each chunk is one LZ4 block (or stored, see the frame flags).
    #[default]
    Lz4,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Lz4 => f.write_str("lz4"),
        }
    }
}

/// What the backup holds, as stated by its writer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Metadata {
    /// Random identifier of this backup.
    pub backup_id: BackupId,
    /// When the snapshot was taken.
    pub created: CreatedAt,
    /// File name (not path) of the source database.
    pub database: String,
    /// SQLite page size of the image.
    pub page_size: u32,
    /// How the snapshot was taken (`dbpage`, `backup-api`, `vacuum`, ...).
    pub method: String,
    /// Chunk compression.
    pub compression: Compression,
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// For an increment: the chain it continues. `None` for a full backup.
    pub chain: Option<ChainLink>,
}

impl Metadata {
    /// Checks every field against the rules of `docs/format.md`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        validate_database(&self.database).map_err(|e| format!("database: {e}"))?;
        validate_page_size(self.page_size).map_err(|e| format!("page-size: {e}"))?;
        validate_token(&self.method).map_err(|e| format!("method: {e}"))?;
        validate_chunk_size(self.chunk_size).map_err(|e| format!("chunk-size: {e}"))?;
        if let Some(chain) = &self.chain {
            chain
                .validate(self.backup_id)
                .map_err(|e| format!("chain: {e}"))?;
        }
        Ok(())
    }

    /// Whether this container is an increment (its payload is a page
    /// list, not a database image).
    pub fn is_increment(&self) -> bool {
        self.chain.is_some()
    }
}

/// The `chain:` line of an increment: which chain it belongs to and the
/// exact image it applies to.
///
/// A chain is a full backup followed by increments; link `sequence` 1
/// applies to the full backup, link `n + 1` to link `n`. The parent is named
/// by id and by its image hash: for a full backup, the SHA-256 of its image
/// (its trailer's); for an increment, the image index hash its payload
/// states (see [`crate::increment`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ChainLink {
    /// The id of the chain's full backup.
    pub full: BackupId,
    /// The id of the backup this increment applies to.
    pub parent: BackupId,
    /// The parent's image hash.
    pub parent_image: [u8; 32],
    /// This link's place in the chain, from 1.
    pub sequence: u32,
}

impl ChainLink {
    /// Checks the rules of `docs/format.md` for the increment `own_id`: the
    /// sequence starts at 1, link 1 applies to the full backup itself and
    /// later links do not, and no link names itself.
    pub fn validate(&self, own_id: BackupId) -> std::result::Result<(), String> {
        if self.sequence == 0 {
            return Err("the sequence starts at 1".into());
        }
        if (self.sequence == 1) != (self.parent == self.full) {
            return Err("link 1, and only link 1, applies to the full backup".into());
        }
        if own_id == self.full || own_id == self.parent {
            return Err("an increment cannot name itself as its chain or parent".into());
        }
        Ok(())
    }

    fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.full,
            self.parent,
            hex::encode(self.parent_image),
            self.sequence
        )
    }

    fn parse(value: &str) -> std::result::Result<ChainLink, String> {
        let mut parts = value.split(' ');
        let mut next = |what: &str| {
            parts.next().ok_or_else(|| {
                format!("missing {what}: expected FULL-ID PARENT-ID PARENT-IMAGE SEQUENCE")
            })
        };
        let full = BackupId(parse_lower_hex::<16>(next("the full backup's id")?)?);
        let parent = BackupId(parse_lower_hex::<16>(next("the parent's id")?)?);
        let parent_image = parse_lower_hex::<32>(next("the parent's image hash")?)?;
        let sequence = parse_u32(next("the sequence")?)?;
        if parts.next().is_some() {
            return Err("expected 4 values: FULL-ID PARENT-ID PARENT-IMAGE SEQUENCE".into());
        }
        Ok(ChainLink {
            full,
            parent,
            parent_image,
            sequence,
        })
    }
}

/// One recipient stanza: the data key wrapped for one key.
///
/// The format does not interpret the arguments; `sqlseal-crypto` does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Stanza {
    /// Stanza type, e.g. `p256-hpke`.
    pub kind: String,
    /// Key id of the recipient key.
    pub key_id: KeyId,
    /// Binary arguments, base64 in the header.
    pub args: Vec<Vec<u8>>,
}

/// A complete, parsed header.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    /// The metadata lines.
    pub metadata: Metadata,
    /// One stanza per recipient key.
    pub stanzas: Vec<Stanza>,
    /// Key id of the signing key.
    pub signer: KeyId,
    /// ECDSA P-256 signature (`r || s`) over [`Header::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
    /// HMAC-SHA256 over [`Header::mac_input`].
    pub mac: [u8; MAC_LEN],
}

/// Encodes the lines the signature covers: magic, metadata, stanzas, signer.
pub fn encode_signed_part(metadata: &Metadata, stanzas: &[Stanza], signer: KeyId) -> Vec<u8> {
    let m = metadata;
    let mut out = String::with_capacity(512 + stanzas.len() * 200);
    out.push_str(MAGIC);
    out.push('\n');
    out.push_str(&format!("id: {}\n", m.backup_id));
    out.push_str(&format!("created: {}\n", m.created));
    out.push_str(&format!("database: {}\n", m.database));
    out.push_str(&format!("page-size: {}\n", m.page_size));
    out.push_str(&format!("method: {}\n", m.method));
    out.push_str(&format!("compression: {}\n", m.compression));
    out.push_str(&format!("chunk-size: {}\n", m.chunk_size));
    if let Some(chain) = &m.chain {
        out.push_str(&format!("chain: {}\n", chain.encode()));
    }
    for s in stanzas {
        out.push_str(&format!("recipient: {} {}", s.kind, s.key_id));
        for arg in &s.args {
            out.push(' ');
            out.push_str(&B64.encode(arg));
        }
        out.push('\n');
    }
    out.push_str(&format!("signer: {signer}\n"));
    out.into_bytes()
}

/// Appends the signature line to the signed part, giving the MAC input.
pub fn encode_mac_input(signed_part: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    let mut out = signed_part.to_vec();
    out.extend_from_slice(format!("signature: {}\n", B64.encode(signature)).as_bytes());
    out
}

impl Header {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        encode_signed_part(&self.metadata, &self.stanzas, self.signer)
    }

    /// The bytes the MAC covers: the signed bytes and the signature line.
    pub fn mac_input(&self) -> Vec<u8> {
        encode_mac_input(&self.signed_bytes(), &self.signature)
    }

    /// The complete header bytes, ending with the `mac:` line.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.mac_input();
        out.extend_from_slice(format!("mac: {}\n", B64.encode(self.mac)).as_bytes());
        out
    }

    /// Reads and parses a header, leaving `reader` at the first payload byte.
    ///
    /// Parsing is strict: fields in the fixed order, each value canonical.
    /// Nothing here is authenticated yet: the caller must check the
    /// signature and the MAC before acting on any field.
    pub fn parse<R: BufRead>(reader: &mut R) -> Result<Header> {
        let mut lines = LineReader {
            reader,
            consumed: 0,
            line_no: 0,
        };
        let first = match lines.next_line()? {
            Some(line) => line,
            None => return Err(FormatError::Empty),
        };
        if first != MAGIC {
            if first.ends_with('\r') && first.starts_with("sqlseal/") {
                return Err(FormatError::CrLf);
            }
            if first == "sqlseal/v1" {
                return Err(FormatError::VersionOne);
            }
            if let Some(version) = first.strip_prefix("sqlseal/") {
                return Err(FormatError::UnsupportedVersion(shorten(version)));
            }
            return Err(FormatError::NotSqlseal);
        }
        let id = lines.field("id")?;
        let backup_id = BackupId(lines.value("id", parse_lower_hex::<16>(&id))?);
        let created = lines.field("created")?;
        let created = lines.value("created", created.parse::<CreatedAt>())?;
        let database = lines.field("database")?;
        lines.value("database", validate_database(&database))?;
        let page_size = lines.field("page-size")?;
        let page_size = lines.value("page-size", parse_u32(&page_size))?;
        lines.value("page-size", validate_page_size(page_size))?;
        let method = lines.field("method")?;
        lines.value("method", validate_token(&method))?;
        let compression = lines.field("compression")?;
        let compression = match compression.as_str() {
            "lz4" => Compression::Lz4,
            other => {
                return Err(lines.invalid(
                    "compression",
                    format!("`{}` is not supported (v2 knows `lz4`)", shorten(other)),
                ));
            }
        };
        let chunk_size = lines.field("chunk-size")?;
        let chunk_size = lines.value("chunk-size", parse_u32(&chunk_size))?;
        lines.value("chunk-size", validate_chunk_size(chunk_size))?;

        let mut chain = None;
        let mut stanzas = Vec::new();
        let signer = loop {
            let expected: &[&'static str] = if chain.is_none() && stanzas.is_empty() {
                &["recipient", "chain", "signer"]
            } else {
                &["recipient", "signer"]
            };
            let (name, value) = lines.any_field(expected)?;
            if name == "chain" {
                let link = lines.value("chain", ChainLink::parse(&value))?;
                lines.value("chain", link.validate(backup_id))?;
                chain = Some(link);
                continue;
            }
            if name == "signer" {
                break value;
            }
            if stanzas.len() == MAX_RECIPIENTS {
                return Err(lines.invalid(
                    "recipient",
                    format!("more than {MAX_RECIPIENTS} recipients"),
                ));
            }
            let stanza = lines.value("recipient", parse_stanza(&value))?;
            stanzas.push(stanza);
        };
        if stanzas.is_empty() {
            return Err(FormatError::NoRecipients);
        }
        let signer = lines.value("signer", signer.parse::<KeyId>())?;
        let signature = lines.field("signature")?;
        let signature = lines.value("signature", decode_fixed::<SIGNATURE_LEN>(&signature))?;
        let mac = lines.field("mac")?;
        let mac = lines.value("mac", decode_fixed::<MAC_LEN>(&mac))?;

        Ok(Header {
            metadata: Metadata {
                backup_id,
                created,
                database,
                page_size,
                method,
                compression,
                chunk_size,
                chain,
            },
            stanzas,
            signer,
            signature,
            mac,
        })
    }
}

/// Reads `\n`-terminated lines within the header length limit.
struct LineReader<'a, R> {
    reader: &'a mut R,
    consumed: usize,
    line_no: usize,
}

impl<R: BufRead> LineReader<'_, R> {
    /// The next line without its `\n`; `None` at a clean end of input
    /// before the first byte.
    fn next_line(&mut self) -> Result<Option<String>> {
        let mut buf = Vec::new();
        let budget = (MAX_HEADER_LEN - self.consumed) as u64;
        let n = std::io::Read::take(&mut *self.reader, budget).read_until(b'\n', &mut buf)?;
        self.consumed += n;
        self.line_no += 1;
        if n == 0 && self.line_no == 1 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            if self.consumed >= MAX_HEADER_LEN {
                return Err(FormatError::HeaderTooLong {
                    max: MAX_HEADER_LEN,
                });
            }
            if self.line_no == 1 && !buf.starts_with(b"sqlseal/") {
                return Err(FormatError::NotSqlseal);
            }
            return Err(FormatError::HeaderTruncated);
        }
        buf.pop();
        match String::from_utf8(buf) {
            Ok(s) => Ok(Some(s)),
            Err(_) if self.line_no == 1 => Err(FormatError::NotSqlseal),
            Err(_) => Err(FormatError::InvalidValue {
                line: self.line_no,
                field: "header",
                reason: "line is not UTF-8".into(),
            }),
        }
    }

    /// Reads the next line, which must be one of `names`.
    fn any_field(&mut self, names: &[&'static str]) -> Result<(&'static str, String)> {
        let line = self.next_line()?.ok_or(FormatError::HeaderTruncated)?;
        let (name, value) = match line.split_once(": ") {
            Some((name, value)) => (name, value),
            None => (line.as_str(), ""),
        };
        if let Some(&expected) = names.iter().find(|&&n| n == name) {
            return Ok((expected, value.to_owned()));
        }
        let has_value = line.contains(": ");
        if has_value && is_field_name(name) && !FIELDS.contains(&name) {
            return Err(FormatError::UnknownField {
                line: self.line_no,
                field: shorten(name),
            });
        }
        Err(FormatError::UnexpectedField {
            line: self.line_no,
            expected: names[0],
            found: shorten(name),
        })
    }

    fn field(&mut self, name: &'static str) -> Result<String> {
        Ok(self.any_field(&[name])?.1)
    }

    fn invalid(&self, field: &'static str, reason: String) -> FormatError {
        FormatError::InvalidValue {
            line: self.line_no,
            field,
            reason,
        }
    }

    fn value<T, E: fmt::Display>(
        &self,
        field: &'static str,
        r: std::result::Result<T, E>,
    ) -> Result<T> {
        r.map_err(|reason| self.invalid(field, reason.to_string()))
    }
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Shortens untrusted text for an error message and drops control bytes.
fn shorten(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

fn parse_lower_hex<const N: usize>(s: &str) -> std::result::Result<[u8; N], String> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("expected {} lowercase hex digits", 2 * N));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn parse_u32(s: &str) -> std::result::Result<u32, String> {
    let canonical = !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err("expected a decimal number without sign or leading zeros".into());
    }
    s.parse::<u32>().map_err(|e| e.to_string())
}

fn decode_b64(s: &str) -> std::result::Result<Vec<u8>, String> {
    B64.decode(s)
        .map_err(|e| format!("invalid base64 (unpadded standard alphabet): {e}"))
}

fn decode_fixed<const N: usize>(s: &str) -> std::result::Result<[u8; N], String> {
    let bytes = decode_b64(s)?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("expected {N} bytes, found {}", b.len()))
}

fn parse_stanza(value: &str) -> std::result::Result<Stanza, String> {
    let mut parts = value.split(' ');
    let kind = parts.next().unwrap_or_default();
    validate_token(kind).map_err(|e| format!("stanza type: {e}"))?;
    let key_id = parts
        .next()
        .ok_or("missing key id")?
        .parse::<KeyId>()
        .map_err(|e| format!("key id: {e}"))?;
    let args = parts
        .map(decode_b64)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if args.is_empty() || args.len() > MAX_STANZA_ARGS {
        return Err(format!(
            "expected 1 to {MAX_STANZA_ARGS} arguments, found {}",
            args.len()
        ));
    }
    Ok(Stanza {
        kind: kind.to_owned(),
        key_id,
        args,
    })
}

fn validate_token(s: &str) -> std::result::Result<(), String> {
    if s.is_empty()
        || s.len() > 32
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("expected 1 to 32 characters of a-z, 0-9 and -".into());
    }
    Ok(())
}

fn validate_database(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err("expected 1 to 255 bytes".into());
    }
    if s.chars().any(|c| c.is_control()) || s.contains('/') {
        return Err("control characters and `/` are not allowed".into());
    }
    Ok(())
}

fn validate_page_size(n: u32) -> std::result::Result<(), String> {
    if !(512..=65536).contains(&n) || !n.is_power_of_two() {
        return Err(format!("{n} is not a power of two from 512 to 65536"));
    }
    Ok(())
}

fn validate_chunk_size(n: u32) -> std::result::Result<(), String> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&n) {
        return Err(format!(
            "{n} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        ));
    }
    Ok(())
}

/// Makes any file name acceptable as a `database:` value by replacing
/// control characters and `/` with `_` and cutting it to 255 bytes.
pub fn sanitize_database_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_control() || c == '/' { '_' } else { c };
        if out.len() + c.len_utf8() > 255 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push_str("database");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_metadata() -> impl Strategy<Value = Metadata> {
        (
            any::<[u8; 16]>(),
            0i64..4_102_444_800_000_000,
            "[a-zA-Z0-9 ._é-]{1,40}",
            9u32..=16,
            prop::sample::select(vec!["dbpage", "backup-api", "vacuum"]),
            12u32..=24,
            prop::option::of(arb_chain()),
        )
            .prop_map(|(id, us, db, ps, method, cs, chain)| Metadata {
                backup_id: BackupId(id),
                created: CreatedAt::from_microsecond(us).expect("in range"),
                database: db,
                page_size: 1 << ps,
                method: method.to_owned(),
                compression: Compression::Lz4,
                chunk_size: 1 << cs,
                chain: chain.map(|(full, parent, parent_image, sequence)| ChainLink {
                    full: BackupId(full),
                    // Link 1 applies to the full backup itself.
                    parent: BackupId(if sequence == 1 { full } else { parent }),
                    parent_image,
                    sequence,
                }),
            })
            // An id equal to its chain's or parent's is refused; 2^-128.
            .prop_filter("valid chain", |m| m.validate().is_ok())
    }

    fn arb_chain() -> impl Strategy<Value = ([u8; 16], [u8; 16], [u8; 32], u32)> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<[u8; 32]>(),
            prop_oneof![Just(1u32), 2u32..=u32::MAX],
        )
            .prop_filter("distinct ids", |(full, parent, _, _)| full != parent)
    }

    pub(crate) fn arb_stanza() -> impl Strategy<Value = Stanza> {
        (
            "[a-z0-9-]{1,32}",
            any::<[u8; 8]>(),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 1..=4),
        )
            .prop_map(|(kind, id, args)| Stanza {
                kind,
                key_id: KeyId(id),
                args,
            })
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            arb_metadata(),
            prop::collection::vec(arb_stanza(), 1..5),
            any::<[u8; 8]>(),
            prop::collection::vec(any::<u8>(), 64),
            any::<[u8; 32]>(),
        )
            .prop_map(|(metadata, stanzas, signer, sig, mac)| Header {
                metadata,
                stanzas,
                signer: KeyId(signer),
                signature: sig.try_into().expect("64 bytes"),
                mac,
            })
    }

    proptest! {
        #[test]
        fn header_round_trips(h in arb_header(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = h.encode();
            let header_len = bytes.len();
            bytes.extend_from_slice(&payload);
            let mut cursor = std::io::Cursor::new(&bytes[..]);
            let parsed = Header::parse(&mut cursor).expect("parses");
            prop_assert_eq!(&parsed, &h);
            prop_assert_eq!(cursor.position() as usize, header_len);
        }

        #[test]
        fn stanza_round_trips(s in arb_stanza()) {
            let mut line = format!("{} {}", s.kind, s.key_id);
            for a in &s.args { line.push(' '); line.push_str(&B64.encode(a)); }
            prop_assert_eq!(parse_stanza(&line).expect("parses"), s);
        }

        #[test]
        fn created_round_trips(us in CreatedAt::MIN_MICROSECOND..=jiff::Timestamp::MAX.as_microsecond()) {
            let c = CreatedAt::from_microsecond(us).expect("in range");
            prop_assert_eq!(c.to_string().parse::<CreatedAt>().expect("parses"), c);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Header::parse(&mut &bytes[..]);
        }

        #[test]
        fn truncated_header_is_refused(h in arb_header(), cut in any::<prop::sample::Index>()) {
            let bytes = h.encode();
            let cut = cut.index(bytes.len());
            prop_assert!(Header::parse(&mut &bytes[..cut]).is_err());
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| {
            Header::parse(&mut s.as_bytes())
                .expect_err("must fail")
                .to_string()
        };
        assert_eq!(err(""), "the file is empty, not a sqlseal backup");
        assert_eq!(
            err("SQLite format 3\0"),
            "not a sqlseal backup: the first line is not `sqlseal/v2`"
        );
        assert!(err("sqlseal/v3\n").contains("unsupported sqlseal format version `v3`"));
        assert!(err("sqlseal/v1\nid: 00\n").starts_with("this is a sqlseal/v1 backup"));
        assert!(err("sqlseal/v2\r\nid: 00\r\n").contains("CRLF"));
        assert!(CreatedAt::from_microsecond(CreatedAt::MIN_MICROSECOND - 1).is_none());
        assert_eq!(
            err("sqlseal/v2\nid: 00"),
            "truncated header: the file ends before the header's `mac:` line"
        );
        assert_eq!(
            err("sqlseal/v2\ncolour: blue\n"),
            "header line 2: unknown field `colour` (sqlseal/v2 defines no such field)"
        );
        assert_eq!(
            err("sqlseal/v2\ncreated: x\n"),
            "header line 2: expected `id:`, found `created`"
        );
        assert!(err("sqlseal/v2\nid: 0011\n").contains("invalid `id` value"));
    }

    #[test]
    fn chain_lines_follow_the_rules() {
        let link = ChainLink {
            full: BackupId([1; 16]),
            parent: BackupId([2; 16]),
            parent_image: [3; 32],
            sequence: 2,
        };
        let header = |chain: ChainLink| Header {
            metadata: Metadata {
                backup_id: BackupId([9; 16]),
                created: CreatedAt::from_microsecond(0).expect("epoch"),
                database: "app.db".into(),
                page_size: 4096,
                method: "dbpage".into(),
                compression: Compression::Lz4,
                chunk_size: 4096,
                chain: Some(chain),
            },
            stanzas: vec![Stanza {
                kind: "p256-hpke".into(),
                key_id: KeyId([4; 8]),
                args: vec![vec![5; 4]],
            }],
            signer: KeyId([6; 8]),
            signature: [7; SIGNATURE_LEN],
            mac: [8; MAC_LEN],
        };
        let good = header(link).encode();
        let text = String::from_utf8(good.clone()).expect("utf-8");
        assert!(text.contains(&format!(
            "\nchain: {} {} {} 2\nrecipient: ",
            "01".repeat(16),
            "02".repeat(16),
            "03".repeat(32)
        )));
        assert_eq!(
            Header::parse(&mut &good[..])
                .expect("parses")
                .metadata
                .chain,
            Some(link)
        );
        let refused = |chain: ChainLink| {
            Header::parse(&mut &header(chain).encode()[..])
                .expect_err("refused")
                .to_string()
        };
        assert!(
            refused(ChainLink {
                sequence: 0,
                ..link
            })
            .contains("starts at 1")
        );
        assert!(
            refused(ChainLink {
                sequence: 1,
                ..link
            })
            .contains("only link 1")
        );
        let to_full = ChainLink {
            parent: link.full,
            ..link
        };
        assert!(refused(to_full).contains("only link 1"));
        let own = ChainLink {
            full: BackupId([9; 16]),
            ..link
        };
        assert!(refused(own).contains("cannot name itself"));
        // Two chain lines, or one after a recipient, are out of order.
        let twice = text.replacen(
            "\nrecipient: ",
            &format!("\nchain: {}\nrecipient: ", link.encode()),
            1,
        );
        assert!(Header::parse(&mut twice.as_bytes()).is_err());
        let line = format!("chain: {}\n", link.encode());
        let moved =
            text.replacen(&line, "", 1)
                .replacen("\nsigner: ", &format!("\n{line}signer: "), 1);
        assert!(Header::parse(&mut moved.as_bytes()).is_err());
        let extra = text.replacen(" 2\nrecipient", " 2 x\nrecipient", 1);
        assert!(
            Header::parse(&mut extra.as_bytes())
                .expect_err("refused")
                .to_string()
                .contains("4 values")
        );
    }

    #[test]
    fn created_is_strict() {
        assert!("2026-11-24T08:00:00.000000Z".parse::<CreatedAt>().is_ok());
        for bad in [
            "2026-11-24T08:00:00Z",
            "2026-11-24T08:00:00.000000+00:00",
            "2026-13-24T08:00:00.000000Z",
            "2026-11-24T08:00:60.000000Z",
        ] {
            assert!(bad.parse::<CreatedAt>().is_err(), "{bad}");
        }
        let month = "2026-13-24T08:00:00.000000Z".parse::<CreatedAt>();
        let Err(e @ ParseCreatedAtError::Time(_)) = month else {
            panic!("month 13 is jiff's to refuse: {month:?}");
        };
        let cause = std::error::Error::source(&e).expect("jiff's error is the cause");
        assert_eq!(e.to_string(), cause.to_string());
        assert!(matches!(
            "2026-11-24T08:00:00Z".parse::<CreatedAt>(),
            Err(ParseCreatedAtError::Shape)
        ));
        assert!(matches!("00ff".parse::<KeyId>(), Err(ParseKeyIdError)));
    }

    #[test]
    fn sanitize_makes_valid_names() {
        assert_eq!(sanitize_database_name("a/b\nc"), "a_b_c");
        assert_eq!(sanitize_database_name(""), "database");
        assert!(validate_database(&sanitize_database_name(&"é".repeat(300))).is_ok());
    }
}
