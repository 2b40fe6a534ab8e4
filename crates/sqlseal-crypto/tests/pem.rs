//! PEM key loading against key files made by the `openssl` command line
//! tool (see `tests/data/keys/README.md` for how each fixture was made).
//!
//! Accepted files must load as the right kind of key with the key id that
//! openssl computed independently (`expected-key-ids.txt`); rejected files
//! must fail with one line naming the file and what was found in it.

use std::path::{Path, PathBuf};

use sqlseal_crypto::{
    CryptoError, KeyFile, key_id_of, load_identity_file, load_key_file, load_recipient_file,
    parse_key_pem,
};
use sqlseal_format::KeyId;

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys")
}

fn fixture(name: &str) -> PathBuf {
    keys_dir().join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture is readable")
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture_bytes(name)).expect("fixture is text")
}

/// The key id as the loader reports it, checked against the recipient's own.
fn loaded_key_id(key: &KeyFile) -> KeyId {
    let recipient = key.recipient();
    let id = key_id_of(recipient.public_key());
    assert_eq!(
        id,
        recipient.key_id(),
        "key_id_of and Recipient::key_id agree"
    );
    id
}

/// `(file name, key id)` pairs computed by openssl, not by this crate.
fn expected_key_ids() -> Vec<(String, KeyId)> {
    fixture_text("expected-key-ids.txt")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, id) = line
                .split_once(' ')
                .expect("expectation line is `FILE KEYID`");
            let id: KeyId = id.trim().parse().expect("expected key id is 16 hex digits");
            (name.to_owned(), id)
        })
        .collect()
}

#[test]
fn openssl_keys_load_with_the_key_id_openssl_computed() {
    let expected = expected_key_ids();
    // Every accepted P-256 fixture is listed, so none goes unchecked.
    let mut names: Vec<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "p256-pkcs8-crlf.pem",
            "p256-pkcs8.pem",
            "p256-pkcs8.pub-crlf.pem",
            "p256-pkcs8.pub.pem",
            "p256-sec1-params-crlf.pem",
            "p256-sec1-params.pem",
            "p256-sec1.pem",
            "p256-sec1.pub.pem",
        ]
    );
    for (name, want) in &expected {
        let loaded = load_key_file(&fixture(name))
            .unwrap_or_else(|e| panic!("{name} should load, got: {e}"));
        let is_public = name.contains(".pub");
        match (&loaded.key, is_public) {
            (KeyFile::Private(_), false) | (KeyFile::Public(_), true) => {}
            (key, _) => panic!("{name}: loaded the wrong kind of key: {key:?}"),
        }
        assert_eq!(loaded_key_id(&loaded.key), *want, "{name}: key id");
    }
}

#[test]
fn spki_public_key_has_the_key_id_of_its_private_key() {
    for (private, public) in [
        ("p256-pkcs8.pem", "p256-pkcs8.pub.pem"),
        ("p256-sec1.pem", "p256-sec1.pub.pem"),
    ] {
        let (identity, _) = load_identity_file(&fixture(private)).expect("private key loads");
        let recipient = load_recipient_file(&fixture(public)).expect("public key loads");
        assert_eq!(recipient.public_key(), identity.recipient().public_key());
        assert_eq!(
            key_id_of(recipient.public_key()),
            key_id_of(identity.recipient().public_key()),
            "{public} vs {private}"
        );
    }
    // The two openssl keys are different keys, so the ids above are not trivially equal.
    let a = load_recipient_file(&fixture("p256-pkcs8.pub.pem")).expect("loads");
    let b = load_recipient_file(&fixture("p256-sec1.pub.pem")).expect("loads");
    assert_ne!(a.key_id(), b.key_id());
}

#[test]
fn sec1_with_and_without_the_ec_parameters_block() {
    // Guard the fixtures: one has the block `ecparam -genkey` writes, one does not.
    assert!(fixture_text("p256-sec1-params.pem").starts_with("-----BEGIN EC PARAMETERS-----"));
    assert!(!fixture_text("p256-sec1.pem").contains("EC PARAMETERS"));
    for name in ["p256-sec1-params.pem", "p256-sec1.pem"] {
        let key = parse_key_pem(&fixture_bytes(name))
            .unwrap_or_else(|e| panic!("{name} should parse, got: {e}"));
        assert!(matches!(key, KeyFile::Private(_)), "{name}");
    }
}

#[test]
fn crlf_files_load_the_same_key_as_lf_files() {
    for (lf, crlf) in [
        ("p256-sec1-params.pem", "p256-sec1-params-crlf.pem"),
        ("p256-pkcs8.pem", "p256-pkcs8-crlf.pem"),
        ("p256-pkcs8.pub.pem", "p256-pkcs8.pub-crlf.pem"),
    ] {
        let crlf_text = fixture_text(crlf);
        // Guard against the fixture being normalised to LF on checkout.
        assert_eq!(
            crlf_text.matches("\r\n").count(),
            crlf_text.lines().count(),
            "{crlf} has CRLF line endings"
        );
        let a = parse_key_pem(&fixture_bytes(lf)).expect("LF file parses");
        let b = parse_key_pem(crlf_text.as_bytes()).expect("CRLF file parses");
        assert_eq!(loaded_key_id(&a), loaded_key_id(&b), "{crlf}");
    }
}

#[test]
fn utf8_byte_order_mark_is_ignored() {
    // Some Windows editors save text with a leading byte order mark.
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(&fixture_bytes("p256-pkcs8.pem"));
    let with_bom = parse_key_pem(&bytes).expect("file with a BOM parses");
    let plain = parse_key_pem(&fixture_bytes("p256-pkcs8.pem")).expect("parses");
    assert_eq!(loaded_key_id(&with_bom), loaded_key_id(&plain));
}

/// Loads a file that must be rejected, checks that the message is one line
/// naming the file, and returns what it says was found (the message without
/// the path, so that checks on it cannot match the file name).
fn rejection(name: &str) -> String {
    let path = fixture(name);
    let err = match load_key_file(&path) {
        Ok(loaded) => panic!("{name} should be rejected, loaded {:?}", loaded.key),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(!message.contains('\n'), "{name}: one line: {message:?}");
    assert!(message.contains(name), "{name}: names the file: {message}");
    match err {
        CryptoError::KeyFile { path: p, reason } => {
            assert_eq!(p, path, "{name}: error carries the path");
            let reason = reason.to_string();
            assert!(message.ends_with(&reason), "{name}: {message}");
            reason
        }
        other => panic!("{name}: expected a key file error, got {other:?}"),
    }
}

#[test]
fn other_curves_and_key_types_are_named() {
    for (name, what) in [
        ("p384-sec1.pem", "P-384"),
        ("p384-pkcs8.pem", "P-384"),
        ("p384.pub.pem", "P-384"),
        ("rsa-pkcs8.pem", "RSA"),
        ("rsa-traditional.pem", "RSA"),
        ("rsa.pub.pem", "RSA"),
        ("ed25519.pem", "Ed25519"),
        ("ed25519.pub.pem", "Ed25519"),
    ] {
        let reason = rejection(name);
        assert!(reason.contains(what), "{name}: says {what}: {reason}");
        assert!(
            reason.contains("P-256"),
            "{name}: says what is needed: {reason}"
        );
    }
}

#[test]
fn encrypted_keys_are_named() {
    assert!(
        fixture_text("encrypted-pkcs8.pem").starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    assert!(fixture_text("encrypted-sec1.pem").contains("Proc-Type: 4,ENCRYPTED"));
    for (name, how) in [
        ("encrypted-pkcs8.pem", "openssl pkey"),
        ("encrypted-sec1.pem", "openssl ec"),
    ] {
        let reason = rejection(name);
        assert!(reason.contains("encrypted"), "{name}: {reason}");
        assert!(
            reason.contains(how),
            "{name}: says how to decrypt: {reason}"
        );
    }
}

#[test]
fn files_that_are_not_pem_keys_are_named() {
    assert!(fixture_bytes("empty.pem").is_empty());
    assert!(std::str::from_utf8(&fixture_bytes("p256-pkcs8.der")).is_err());
    for (name, what) in [
        ("empty.pem", "empty"),
        ("p256-pkcs8.der", "binary"),
        ("garbage.pem", "not a PEM file"),
        ("truncated.pem", "EC PRIVATE KEY"),
        ("truncated.pem", "truncated"),
        ("no-such-file.pem", "no such file"),
    ] {
        let reason = rejection(name);
        assert!(reason.contains(what), "{name}: says {what:?}: {reason}");
    }
}

#[test]
fn public_key_where_a_private_key_is_needed_is_named() {
    let err = load_identity_file(&fixture("p256-pkcs8.pub.pem")).expect_err("public only");
    let message = err.to_string();
    assert!(message.contains("p256-pkcs8.pub.pem"), "{message}");
    assert!(message.contains("public key"), "{message}");
}

#[cfg(unix)]
#[test]
fn loose_permissions_on_private_keys_warn() {
    use std::os::unix::fs::PermissionsExt;

    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pem-modes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = |from: &str, to: &str, mode: u32| {
        let path = dir.join(to);
        std::fs::copy(fixture(from), &path).expect("copy fixture");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    };

    for (mode, name) in [(0o644, "world.pem"), (0o640, "group.pem")] {
        let path = copy("p256-sec1.pem", name, mode);
        let loaded = load_key_file(&path).expect("loads despite the mode");
        assert_eq!(
            loaded.warnings.len(),
            1,
            "mode {mode:o}: {:?}",
            loaded.warnings
        );
        let warning = &loaded.warnings[0];
        assert!(warning.contains(name), "names the file: {warning}");
        assert!(
            warning.contains(&format!("{mode:o}")),
            "shows the mode: {warning}"
        );
        assert!(warning.contains("chmod 600"), "says the fix: {warning}");
        // load_identity_file passes the warning on.
        let (_, warnings) = load_identity_file(&path).expect("loads");
        assert_eq!(&warnings, &loaded.warnings);
    }

    let tight = copy("p256-sec1.pem", "tight.pem", 0o600);
    assert!(load_key_file(&tight).expect("loads").warnings.is_empty());

    // A public key is not secret: no warning whatever the mode.
    let public = copy("p256-sec1.pub.pem", "public.pem", 0o644);
    assert!(load_key_file(&public).expect("loads").warnings.is_empty());

    std::fs::remove_dir_all(&dir).expect("clean up temp dir");
}
