//! The worked example of `docs/format.md`, Appendix A: a complete container
//! built step by step from fixed inputs, opened with the engine's reader,
//! and compared with the bytes the appendix shows.
//!
//! Every "random" input is SHA-256 of a fixed label. The ephemeral HPKE key
//! of each stanza is `DeriveKeyPair(ikmE)`, which `SetupBaseS` computes when
//! its random generator returns `ikmE`; ECDSA signatures use RFC 6979
//! deterministic nonces. So the container is the same on every run.
//!
//! After changing the format, regenerate the appendix with
//! `cargo test -p sqlseal-engine --test appendix -- --ignored --nocapture print_format_appendix`
//! and replace everything from `## Appendix A` to the end of the file.

use std::path::Path;

use hpke::{Deserializable, OpModeS, Serializable};
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};
use sqlseal_crypto::hpke_suite::{Aead, Kdf, Kem};
use sqlseal_crypto::{CryptoError, HPKE_INFO, Keyring, P256Identity, STANZA_KIND, sign_seal};
use sqlseal_engine::{CancelFlag, EngineError, NoProgress, open_container};
use sqlseal_format::header::{encode_mac_input, encode_signed_part};
use sqlseal_format::payload::{FLAG_STORED, FRAME_HEADER_LEN, TAG_LEN, frame_digest_of};
use sqlseal_format::{
    BackupId, ChunkCipher, Compression, CreatedAt, DataKey, Header, Metadata, PayloadDigest,
    RecordedCheck, SEAL_LEN, SealRecord, Stanza, Trailer, seal_message,
};
use sqlseal_testkit::FixedIkm;

const CREATED: &str = "2026-11-24T08:00:00.123456Z";
const PAGE_SIZE: u32 = 512;
const CHUNK_SIZE: u32 = 4096;
const PAGE_COUNT: u64 = 9;
const IMAGE_START: &[u8] = b"sqlseal example image\n";

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of `sqlseal/v2 example <what>`.
fn label(what: &str) -> [u8; 32] {
    sha256(format!("sqlseal/v2 example {what}").as_bytes())
}

fn identity(what: &str) -> P256Identity {
    let secret = p256::SecretKey::from_slice(&label(what)).expect("label hash is a valid scalar");
    P256Identity::new(secret).expect("valid key")
}

fn compressed(key: &P256Identity) -> Vec<u8> {
    key.recipient()
        .public_key()
        .to_sec1_point(true)
        .as_bytes()
        .to_vec()
}

/// HMAC-SHA256, written out so that the appendix can show derived keys.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// HKDF-SHA256 (RFC 5869) with a 32-byte output; no salt means 32 zero bytes.
fn hkdf32(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac_sha256(salt.unwrap_or(&[0u8; 32]), ikm);
    hmac_sha256(&prk, &[info, &[1u8]].concat())
}

struct StanzaValues {
    ikm_e: [u8; 32],
    enc: Vec<u8>,
    aad: [u8; 24],
    wrapped: Vec<u8>,
}

/// Everything the appendix shows.
struct Example {
    server: P256Identity,
    recovery: P256Identity,
    data_key: [u8; 32],
    backup_id: [u8; 16],
    salt: [u8; 32],
    image: Vec<u8>,
    stanzas: Vec<StanzaValues>,
    signed: Vec<u8>,
    signature: [u8; 64],
    mac_input: Vec<u8>,
    mac_key: [u8; 32],
    payload_key: [u8; 32],
    header: Vec<u8>,
    lz4_block: Vec<u8>,
    trailer: Trailer,
    frames: [Vec<u8>; 2],
    payload_digest: [u8; 32],
    seal_message: Vec<u8>,
    seal: [u8; SEAL_LEN],
    container: Vec<u8>,
}

fn wrap(
    recipient: &P256Identity,
    data_key: &[u8; 32],
    backup_id: &[u8; 16],
    ikm_e: [u8; 32],
) -> (Stanza, StanzaValues) {
    let point = recipient.recipient().public_key().to_sec1_point(false);
    let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(point.as_bytes()).expect("pkR");
    let (enc, mut ctx) = hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk_r,
        HPKE_INFO,
        &mut FixedIkm(ikm_e.to_vec()),
    )
    .expect("setup sender");
    let mut aad = [0u8; 24];
    aad[..16].copy_from_slice(backup_id);
    aad[16..].copy_from_slice(&recipient.key_id().0);
    let wrapped = ctx.seal(data_key, &aad).expect("seal");
    let enc = enc.to_bytes().to_vec();
    let stanza = Stanza {
        kind: STANZA_KIND.to_owned(),
        key_id: recipient.key_id(),
        args: vec![enc.clone(), wrapped.clone()],
    };
    let values = StanzaValues {
        ikm_e,
        enc,
        aad,
        wrapped,
    };
    (stanza, values)
}

fn example() -> Example {
    let server = identity("server key");
    let recovery = identity("recovery key");
    let data_key = label("data key");
    let mut backup_id = [0u8; 16];
    backup_id.copy_from_slice(&label("backup id")[..16]);
    let salt = label("salt");

    let mut image = IMAGE_START.to_vec();
    image.resize(CHUNK_SIZE as usize, 0);
    for k in 0u8..16 {
        image.extend_from_slice(&sha256(
            &[b"sqlseal/v2 example page ".as_slice(), &[k]].concat(),
        ));
    }
    assert_eq!(image.len() as u64, PAGE_COUNT * u64::from(PAGE_SIZE));

    let metadata = Metadata {
        backup_id: BackupId(backup_id),
        created: CREATED.parse::<CreatedAt>().expect("time"),
        database: "app.db".into(),
        page_size: PAGE_SIZE,
        method: "dbpage".into(),
        compression: Compression::Lz4,
        chunk_size: CHUNK_SIZE,
        chain: None,
    };
    let (s1, v1) = wrap(&server, &data_key, &backup_id, label("ikmE 1"));
    let (s2, v2) = wrap(&recovery, &data_key, &backup_id, label("ikmE 2"));
    let stanzas = vec![s1, s2];

    let key = DataKey::from_bytes(data_key);
    let signed = encode_signed_part(&metadata, &stanzas, server.key_id());
    let signature = server.sign(&signed);
    let mac_input = encode_mac_input(&signed, &signature);
    let mac = key.header_mac(&mac_input);
    let header = Header {
        metadata,
        stanzas,
        signer: server.key_id(),
        signature,
        mac,
    };
    let header_bytes = header.encode();
    assert_eq!(
        Header::parse(&mut &header_bytes[..]).expect("parses"),
        header
    );

    // The derived keys, computed here from their definitions and checked
    // against the format crate where it exposes them.
    let mac_key = hkdf32(None, &data_key, b"sqlseal/v2 header mac");
    assert_eq!(hmac_sha256(&mac_key, &mac_input), mac);
    let payload_key = hkdf32(Some(&salt), &data_key, b"sqlseal/v2 payload");

    let cipher = ChunkCipher::new(&key, &salt, CHUNK_SIZE).expect("cipher");
    let split = CHUNK_SIZE as usize;
    let trailer = Trailer {
        db_len: image.len() as u64,
        page_count: PAGE_COUNT,
        sha256: sha256(&image),
    };
    let mut frame0 = Vec::new();
    cipher
        .seal(0, &image[..split], None, &mut frame0)
        .expect("seal chunk 0");
    let mut frame1 = Vec::new();
    cipher
        .seal(1, &image[split..], Some(&trailer), &mut frame1)
        .expect("seal chunk 1");
    let lz4_block = lz4_block(&cipher, &frame0);

    let mut digest = PayloadDigest::new(&salt);
    digest.add_frame(&frame_digest_of(&frame0));
    digest.add_frame(&frame_digest_of(&frame1));
    let payload_digest = digest.finish();
    let message = seal_message(&header_bytes, &payload_digest, RecordedCheck::None);
    let record = sign_seal(&server, &header, &payload_digest, RecordedCheck::None);
    assert!(server.recipient().verify(&message, &record.signature));
    let seal = record.encode();
    assert_eq!(SealRecord::decode(&seal).expect("decodes"), record);

    let mut container = header_bytes.clone();
    container.extend_from_slice(&salt);
    container.extend_from_slice(&frame0);
    container.extend_from_slice(&frame1);
    container.extend_from_slice(&seal);

    Example {
        server,
        recovery,
        data_key,
        backup_id,
        salt,
        image,
        stanzas: vec![v1, v2],
        signed,
        signature,
        mac_input,
        mac_key,
        payload_key,
        header: header_bytes,
        lz4_block,
        trailer,
        frames: [frame0, frame1],
        payload_digest,
        seal_message: message,
        seal,
        container,
    }
}

/// The LZ4 block inside sealed chunk 0, which the format crate does not
/// expose. AES-GCM encrypts by XOR with a keystream that depends only on
/// the key and the nonce, so sealing an incompressible (stored) chunk 0
/// under the same cipher gives that keystream, and XOR with chunk 0's
/// ciphertext gives its plaintext body: exactly the block `seal` wrote.
fn lz4_block(cipher: &ChunkCipher, frame0: &[u8]) -> Vec<u8> {
    let mut noise = Vec::with_capacity(CHUNK_SIZE as usize);
    let mut state = label("keystream probe");
    while noise.len() < CHUNK_SIZE as usize {
        noise.extend_from_slice(&state);
        state = sha256(&state);
    }
    let mut probe = Vec::new();
    cipher
        .seal(0, &noise, None, &mut probe)
        .expect("seal probe");
    assert_eq!(probe[8], FLAG_STORED, "the probe chunk is stored");
    let body = &frame0[FRAME_HEADER_LEN..frame0.len() - TAG_LEN];
    body.iter()
        .zip(&probe[FRAME_HEADER_LEN..])
        .zip(&noise)
        .map(|((c, p), n)| c ^ p ^ n)
        .collect()
}

fn open_with(example: &Example, keyring: &Keyring) -> Result<Vec<u8>, EngineError> {
    let mut out = Vec::new();
    let opened = open_container(
        "example",
        &example.container[..],
        keyring,
        &mut out,
        1,
        &CancelFlag::new(),
        &NoProgress,
    )?;
    assert_eq!(opened.trailer, example.trailer);
    assert_eq!(opened.recorded_check, RecordedCheck::None);
    Ok(out)
}

/// What opening the example with only the recovery key reports.
fn recovery_only_error(example: &Example) -> String {
    let mut keyring = Keyring::new();
    keyring.add_identity(example.recovery.clone());
    match open_with(example, &keyring) {
        Ok(_) => panic!("opened with only the recovery key"),
        Err(EngineError::Open {
            source: source @ CryptoError::UntrustedSigner { key_id },
            ..
        }) => {
            assert_eq!(key_id, example.server.key_id());
            source.to_string()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn example_opens_only_with_a_trusted_signer() {
    let example = example();
    let mut server = Keyring::new();
    server.add_identity(example.server.clone());
    assert_eq!(open_with(&example, &server).expect("opens"), example.image);

    let error = recovery_only_error(&example);
    assert_eq!(
        error,
        format!(
            "backup is signed by key {}, which is not trusted; pass its public key with --trust if it is yours",
            example.server.key_id()
        )
    );

    let mut trusting = Keyring::new();
    trusting.add_identity(example.recovery.clone());
    trusting.trust(example.server.recipient().clone());
    assert_eq!(
        open_with(&example, &trusting).expect("opens"),
        example.image
    );
}

fn appendix_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/format.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/format.md");
    let start = doc
        .find("\n## Appendix A: worked example\n")
        .expect("docs/format.md has Appendix A");
    doc[start..].to_owned()
}

/// The contents of the first fenced block after the first line of
/// `section` that starts with `marker`.
fn fenced_after<'a>(section: &'a str, marker: &str) -> &'a str {
    let at = section
        .lines()
        .scan(0, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| line.starts_with(marker))
        .map(|(here, _)| here)
        .unwrap_or_else(|| panic!("no line starting with {marker:?}"));
    let rest = &section[at..];
    let open = rest.find("\n```\n").expect("a fenced block follows") + 5;
    let len = rest[open..].find("```\n").expect("the block ends");
    &rest[open..open + len]
}

fn subsection<'a>(appendix: &'a str, heading: &str) -> &'a str {
    let start = appendix
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no {heading} in Appendix A"));
    let rest = &appendix[start + 1..];
    let end = rest[1..].find("\n### ").map_or(rest.len(), |e| e + 2);
    &rest[..end]
}

#[test]
fn format_appendix_matches() {
    let example = example();
    let appendix = appendix_text();
    let header = fenced_after(subsection(&appendix, "### A.3"), "###");
    let payload_hex: String = fenced_after(subsection(&appendix, "### A.4"), "The payload")
        .split_whitespace()
        .collect();
    let payload = hex::decode(&payload_hex).expect("the payload block is hex");
    let mut shown = header.as_bytes().to_vec();
    shown.extend_from_slice(&payload);
    assert!(
        shown == example.container,
        "Appendix A of docs/format.md does not show the container the example builds; \
         regenerate it with \
         `cargo test -p sqlseal-engine --test appendix -- --ignored --nocapture print_format_appendix`"
    );
    let digest = hex::encode(sha256(&example.container));
    assert!(appendix.contains(&digest), "container SHA-256 {digest}");
    let error = recovery_only_error(&example);
    assert!(appendix.contains(&error), "error text {error}");
}

#[test]
#[ignore = "prints Appendix A of docs/format.md"]
fn print_format_appendix() {
    print!("{}", render(&example()));
}

const INDENT: &str = "                     ";

/// A value in the appendix's two-column layout: the label padded to 21
/// columns, continuation lines indented to match.
fn field(label: &str, lines: &[String]) -> String {
    let mut out = format!("{label:<21}");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(INDENT);
        }
        out.push_str(line);
    }
    out.push('\n');
    out
}

/// Hex in lines of `first` bytes, then 32 bytes.
fn hex_lines(bytes: &[u8], first: usize) -> Vec<String> {
    let split = first.min(bytes.len());
    let mut lines = vec![hex::encode(&bytes[..split])];
    lines.extend(bytes[split..].chunks(32).map(hex::encode));
    lines
}

fn h(bytes: &[u8]) -> Vec<String> {
    hex_lines(bytes, 32)
}

fn frame_header_hex(frame: &[u8]) -> String {
    format!(
        "{} {} {} {}",
        hex::encode(&frame[..8]),
        hex::encode(&frame[8..9]),
        hex::encode(&frame[9..13]),
        hex::encode(&frame[13..17])
    )
}

fn render(e: &Example) -> String {
    let mut out = String::new();
    let push = |out: &mut String, s: &str| out.push_str(s);
    push(
        &mut out,
        "## Appendix A: worked example

A complete container, reproducible byte for byte from the inputs below. All
\"random\" inputs are SHA-256 hashes of fixed labels, so that they can be
recomputed; a real writer uses a random generator. The test
`crates/sqlseal-engine/tests/appendix.rs` builds this container, opens it, and
checks it against this appendix.

### A.1 Inputs

```
",
    );
    push(
        &mut out,
        &field(
            "server private key",
            &[
                hex::encode(label("server key")),
                "= SHA-256(\"sqlseal/v2 example server key\")".into(),
            ],
        ),
    );
    push(
        &mut out,
        &field(
            "server public key",
            &[format!(
                "{}   (compressed)",
                hex::encode(compressed(&e.server))
            )],
        ),
    );
    push(
        &mut out,
        &field("server key id", &[e.server.key_id().to_string()]),
    );
    push(
        &mut out,
        &field(
            "recovery private key",
            &[
                hex::encode(label("recovery key")),
                "= SHA-256(\"sqlseal/v2 example recovery key\")".into(),
            ],
        ),
    );
    push(
        &mut out,
        &field(
            "recovery public key",
            &[format!(
                "{}   (compressed)",
                hex::encode(compressed(&e.recovery))
            )],
        ),
    );
    push(
        &mut out,
        &field("recovery key id", &[e.recovery.key_id().to_string()]),
    );
    push(&mut out, "\n");
    let inputs: [(&str, String, &str); 3] = [
        (
            "data key",
            hex::encode(e.data_key),
            "= SHA-256(\"sqlseal/v2 example data key\")",
        ),
        (
            "backup id",
            hex::encode(e.backup_id),
            "= first 16 bytes of SHA-256(\"sqlseal/v2 example backup id\")",
        ),
        (
            "salt",
            hex::encode(e.salt),
            "= SHA-256(\"sqlseal/v2 example salt\")",
        ),
    ];
    for (name, value, how) in inputs {
        push(&mut out, &field(name, &[value, how.into()]));
    }
    for (i, stanza) in e.stanzas.iter().enumerate() {
        let n = i + 1;
        push(
            &mut out,
            &field(
                &format!("HPKE ikmE, stanza {n}"),
                &[
                    hex::encode(stanza.ikm_e),
                    format!("= SHA-256(\"sqlseal/v2 example ikmE {n}\")"),
                ],
            ),
        );
    }
    push(
        &mut out,
        &format!(
            "
created              {CREATED}
database             app.db
page-size            {PAGE_SIZE}
method               dbpage
chunk-size           {CHUNK_SIZE}
recipients           server key, then recovery key
signer               server key
page_count           {PAGE_COUNT}
check                none (check code 0 in the seal record)
```

The ephemeral HPKE key of each stanza is `DeriveKeyPair(ikmE)` (RFC 9180
section 7.1.3), which is what `SetupBaseS` does when its random generator
returns `ikmE`.

The image is {image_len} bytes ({PAGE_COUNT} pages of {PAGE_SIZE}; it is synthetic, not a real SQLite
file): the {start_len} bytes `\"sqlseal example image\" LF`, then {zeros} zero bytes ({CHUNK_SIZE}
so far), then `SHA-256(\"sqlseal/v2 example page \" || u8(k))` for `k` = 0 to 15
in order (16 x 32 = 512 bytes).

```
",
            image_len = e.image.len(),
            start_len = IMAGE_START.len(),
            zeros = CHUNK_SIZE as usize - IMAGE_START.len(),
        ),
    );
    push(&mut out, &field("SHA-256(image)", &h(&sha256(&e.image))));
    push(&mut out, "```\n\n### A.2 Derived values\n\n```\n");
    for (i, stanza) in e.stanzas.iter().enumerate() {
        let n = i + 1;
        push(
            &mut out,
            &field(&format!("enc, stanza {n}"), &hex_lines(&stanza.enc, 33)),
        );
        push(
            &mut out,
            &field(
                &format!("aad, stanza {n}"),
                &[format!(
                    "{} {}",
                    hex::encode(&stanza.aad[..16]),
                    hex::encode(&stanza.aad[16..])
                )],
            ),
        );
        push(
            &mut out,
            &field(&format!("wrapped, stanza {n}"), &h(&stanza.wrapped)),
        );
    }
    push(&mut out, "\n");
    push(
        &mut out,
        &field(
            "signed_bytes",
            &[format!(
                "{} bytes, SHA-256 {}",
                e.signed.len(),
                hex::encode(sha256(&e.signed))
            )],
        ),
    );
    let mut sig = h(&e.signature);
    sig.push("(RFC 6979 deterministic k)".into());
    push(&mut out, &field("signature (r || s)", &sig));
    push(
        &mut out,
        &field("mac_input", &[format!("{} bytes", e.mac_input.len())]),
    );
    push(&mut out, &field("mac_key", &h(&e.mac_key)));
    push(&mut out, &field("payload_key", &h(&e.payload_key)));
    push(&mut out, "\n");
    for (i, frame) in e.frames.iter().enumerate() {
        push(
            &mut out,
            &field(
                &format!("SHA-256(frame_{i})"),
                &[format!(
                    "{}   ({} bytes)",
                    hex::encode(frame_digest_of(frame)),
                    frame.len()
                )],
            ),
        );
    }
    push(&mut out, &field("payload_digest", &h(&e.payload_digest)));
    push(&mut out, &field("SHA-256(header)", &h(&sha256(&e.header))));
    push(
        &mut out,
        &field(
            "seal_message",
            &[format!(
                "{} bytes, SHA-256 {}",
                e.seal_message.len(),
                hex::encode(sha256(&e.seal_message))
            )],
        ),
    );
    let mut seal_sig = h(&e.seal[8..]);
    seal_sig.push("(RFC 6979 deterministic k)".into());
    push(&mut out, &field("seal signature", &seal_sig));
    push(
        &mut out,
        "```

`frame_i` is the frame as stored: its 17-byte frame header, then its sealed
bytes. `seal_message` is `\"sqlseal/v2 seal\" LF`, `SHA-256(header)`,
`payload_digest`, then the 8 field bytes `5345414c 00 000000`.

### A.3 The header

",
    );
    let header = std::str::from_utf8(&e.header).expect("the header is text");
    push(
        &mut out,
        &format!(
            "{} bytes; every line ends with LF. (The two `recipient:` lines are long: each
is one line.)

```
{header}```

",
            e.header.len()
        ),
    );
    let lens: Vec<usize> = header.split_inclusive('\n').map(str::len).collect();
    let mut parts = Vec::new();
    let mut sum = 0;
    for (i, len) in lens.iter().enumerate() {
        sum += len;
        let note = if sum == e.signed.len() {
            format!(" (`signed_bytes`: {sum})")
        } else if sum == e.mac_input.len() {
            format!(" (`mac_input`: {sum})")
        } else if i + 1 == lens.len() {
            format!(" (header: {sum})")
        } else {
            String::new()
        };
        parts.push(format!("{len}{note}"));
    }
    push(
        &mut out,
        &wrap_words(&format!(
            "Line lengths including the LF: {}.",
            parts.join(", ")
        )),
    );
    let [frame0, frame1] = &e.frames;
    let sealed0 = frame0.len() - FRAME_HEADER_LEN;
    let sealed1 = frame1.len() - FRAME_HEADER_LEN;
    let tail = e.image.len() - CHUNK_SIZE as usize;
    push(
        &mut out,
        &format!(
            "
### A.4 The payload and the seal record

Two chunks. Chunk 0 (image bytes 0 to {last0}) compresses to a {lz}-byte LZ4 block:

```
{block}
```

Chunk 1 (image bytes {CHUNK_SIZE} to {last1}) does not compress and is stored; it is
final and carries the trailer:

```
",
            last0 = CHUNK_SIZE - 1,
            lz = e.lz4_block.len(),
            block = hex::encode(&e.lz4_block),
            last1 = e.image.len() - 1,
        ),
    );
    let trailer = e.trailer.encode();
    let mut trailer_lines = vec![format!(
        "{} {}",
        hex::encode(&trailer[..8]),
        hex::encode(&trailer[8..16])
    )];
    trailer_lines.push(hex::encode(&trailer[16..]));
    push(&mut out, &field("trailer", &trailer_lines));
    push(
        &mut out,
        &format!(
            "```

| chunk | frame header | flags | raw_len | sealed_len | nonce |
|---|---|---|---|---|---|
| 0 | `{fh0}` | 0x{f0:02x} | {CHUNK_SIZE} | {sealed0} = {lz} + 16 | `000000000000000000000000` |
| 1 | `{fh1}` | 0x{f1:02x} | {tail} | {sealed1} = {tail} + 48 + 16 | `000000000000000000000101` |

After the final frame comes the seal record ({SEAL_LEN} bytes): `\"SEAL\"`, check code
0 (none), 3 zero bytes, then the seal signature from A.2:

```
",
            fh0 = frame_header_hex(frame0),
            f0 = frame0[8],
            lz = e.lz4_block.len(),
            fh1 = frame_header_hex(frame1),
            f1 = frame1[8],
        ),
    );
    let mut seal_lines = vec![format!(
        "{} {} {}",
        hex::encode(&e.seal[..4]),
        hex::encode(&e.seal[4..5]),
        hex::encode(&e.seal[5..8])
    )];
    seal_lines.extend(h(&e.seal[8..]));
    push(&mut out, &field("seal record", &seal_lines));
    let payload = &e.container[e.header.len()..];
    push(
        &mut out,
        &format!(
            "```

The payload and the seal record ({} bytes = 32 + 17 + {sealed0} + 17 + {sealed1} + {SEAL_LEN})
in hex, 32 bytes a line (`xxd -r -p` turns it back into bytes):

```
",
            payload.len()
        ),
    );
    for line in payload.chunks(32) {
        push(&mut out, &format!("{}\n", hex::encode(line)));
    }
    push(
        &mut out,
        &format!(
            "```

The whole container (header, payload, seal record) is {} bytes with SHA-256
`{}`.

Opening it with the server key succeeds (the server key is its own trusted
signer, and the seal verifies). Opening it with only the recovery key fails at
step 3:

```
{}
```

and succeeds once the server's public key is trusted.
",
            e.container.len(),
            hex::encode(sha256(&e.container)),
            recovery_only_error(e)
        ),
    );
    out
}

/// Wraps prose at 80 columns.
fn wrap_words(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > 80 {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}
