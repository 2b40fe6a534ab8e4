//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same entry points the fuzz targets call (`sqlseal_crypto::fuzzing`), so
//! stable `cargo test` covers every seed and every crash found so far.
//!
//! The seeds come from the container test vectors: each vector's container
//! is an `open_container` seed and its header bytes a `header` seed, named
//! after the vector. For those, the replay also checks that the fixed fuzz
//! keyring reaches the same outcome as the vector's own keys.
//!
//! After adding vectors, write their seeds with
//! `cargo test -p sqlseal-engine --test fuzz_corpus -- --ignored write_missing_seeds`.

use std::collections::HashSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sqlseal_crypto::{CryptoError, Keyring, load_identity_file, load_recipient_file};
use sqlseal_engine::EngineError;
use sqlseal_engine::fuzzing::{
    FUZZ_CHUNK_SIZE, FUZZ_DATA_KEY, fixed_keyring, open_container, open_payload, parse_header,
};
use sqlseal_format::{DataKey, PayloadWriter, RecordedCheck, SALT_LEN, SealRecord};

/// The checked-in corpus may not grow past this many bytes.
const CORPUS_BUDGET: u64 = 400 * 1024;

const WRITE_SEEDS: &str =
    "cargo test -p sqlseal-engine --test fuzz_corpus -- --ignored write_missing_seeds";

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testdata_dir() -> PathBuf {
    repo_dir().join("crates/sqlseal-format/testdata")
}

fn corpus_dir(target: &str) -> PathBuf {
    repo_dir().join("fuzz/corpus").join(target)
}

/// The files of a folder, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            let bytes = fs::read(&path).expect("readable file");
            Some((name, bytes))
        })
        .collect();
    out.sort();
    out
}

/// The parts of a vector file this test needs. The strict parser and the
/// exact outcomes are `tests/testkit.rs`'s job.
struct Vector {
    identities: Vec<String>,
    trust: Vec<String>,
    container: Vec<u8>,
}

fn vectors() -> Vec<(String, Vector)> {
    files(&testdata_dir())
        .into_iter()
        .filter(|(name, _)| name != "README.md")
        .map(|(name, bytes)| {
            let split = bytes
                .windows(2)
                .position(|w| w == b"\n\n")
                .unwrap_or_else(|| panic!("{name}: no blank line"));
            let head = std::str::from_utf8(&bytes[..split]).expect("UTF-8 expectation lines");
            let mut vector = Vector {
                identities: Vec::new(),
                trust: Vec::new(),
                container: bytes[split + 2..].to_vec(),
            };
            for line in head.lines() {
                if let Some(key) = line.strip_prefix("identity: ") {
                    vector.identities.push(key.to_owned());
                } else if let Some(key) = line.strip_prefix("trust: ") {
                    vector.trust.push(key.to_owned());
                }
            }
            (name, vector)
        })
        .collect()
}

fn keys_dir() -> PathBuf {
    testdata_dir().join("keys")
}

fn own_keyring(vector: &Vector) -> Keyring {
    let mut keyring = Keyring::new();
    for name in &vector.identities {
        keyring.add_identity(
            load_identity_file(&keys_dir().join(name))
                .expect("identity")
                .0,
        );
    }
    for name in &vector.trust {
        keyring.trust(load_recipient_file(&keys_dir().join(name)).expect("trusted key"));
    }
    keyring
}

/// The bytes `Header::parse` reads from `container`, whether it succeeds or not.
fn header_prefix(container: &[u8]) -> &[u8] {
    let mut rest = container;
    let _ = sqlseal_format::Header::parse(&mut rest);
    &container[..container.len() - rest.len()]
}

/// The whole container: the `open_container` seed of a vector.
fn whole(container: &[u8]) -> &[u8] {
    container
}

/// The outcome class: the image's length and hash, or the error variant.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Opened { len: u64, sha256: [u8; 32] },
    Failed(String),
}

fn variant(e: &EngineError) -> String {
    let debug = match e {
        EngineError::Open {
            source: CryptoError::Format(inner),
            ..
        } => format!("Format::{inner:?}"),
        EngineError::Open { source, .. } => format!("{source:?}"),
        EngineError::Payload { source, .. } => format!("Format::{source:?}"),
        other => format!("{other:?}"),
    };
    debug
        .split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn class(data: &[u8], keyring: &Keyring) -> Class {
    match open_container(data, keyring) {
        Ok((_, trailer)) => Class::Opened {
            len: trailer.db_len,
            sha256: trailer.sha256,
        },
        Err(e) => Class::Failed(variant(&e)),
    }
}

fn header_outcome(data: &[u8]) -> Result<Vec<u8>, String> {
    parse_header(data)
        .map(|h| h.encode())
        .map_err(|e| e.to_string())
}

/// Runs `f`, turning a panic into an error that names the seed.
fn no_panic<T>(target: &str, name: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| format!("{target}/{name}: panicked"))
}

#[test]
fn corpus_replays_without_panics_and_matches_the_vectors() {
    let keyring = fixed_keyring(&keys_dir()).expect("the fixed fuzz keyring loads");
    let vectors = vectors();
    let mut failures = Vec::new();

    let header_seeds = files(&corpus_dir("header"));
    for (name, seed) in &header_seeds {
        let got = match no_panic("header", name, || header_outcome(seed)) {
            Ok(got) => got,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if let Some((_, vector)) = vectors.iter().find(|(n, _)| n == name) {
            let want = header_outcome(&vector.container);
            if got != want {
                failures.push(format!(
                    "header/{name}: {got:?} on the seed, {want:?} on the vector"
                ));
            }
        }
    }

    let container_seeds = files(&corpus_dir("open_container"));
    for (name, seed) in &container_seeds {
        let got = match no_panic("open_container", name, || class(seed, &keyring)) {
            Ok(got) => got,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if let Some((_, vector)) = vectors.iter().find(|(n, _)| n == name) {
            let want = class(&vector.container, &own_keyring(vector));
            if got != want {
                failures.push(format!(
                    "open_container/{name}: {got:?} with the fuzz keyring, {want:?} with the vector's keys"
                ));
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} corpus problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        !header_seeds.is_empty() && !container_seeds.is_empty(),
        "the corpus is empty; run `{WRITE_SEEDS}`"
    );
}

/// Seeds for the `open_payload` target: payloads (salt, frames, seal
/// record) sealed under the fixed fuzz data key, so the fuzzer starts from
/// inputs that reach the frames, LZ4 and the trailer.
fn payload_seeds() -> Vec<(String, Vec<u8>)> {
    let key = DataKey::from_bytes(FUZZ_DATA_KEY);
    let cs = FUZZ_CHUNK_SIZE as usize;
    let text: Vec<u8> = (0..3 * cs + 100).map(|i| b"sqlite page "[i % 12]).collect();
    let noise: Vec<u8> = (0..cs as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut mixed = text[..cs].to_vec();
    mixed.extend_from_slice(&noise);
    mixed.extend_from_slice(&[0; 100]);
    [
        ("payload_empty", Vec::new()),
        ("payload_text", text),
        ("payload_mixed", mixed),
    ]
    .into_iter()
    .map(|(name, image)| {
        let mut writer =
            PayloadWriter::new(Vec::new(), &key, [1; SALT_LEN], FUZZ_CHUNK_SIZE).expect("writer");
        writer.write_image(&image).expect("write");
        let (mut payload, _, _) = writer.finish(1).expect("finish");
        let seal = SealRecord {
            check: RecordedCheck::None,
            signature: [0; 64],
        };
        payload.extend_from_slice(&seal.encode());
        (name.to_owned(), payload)
    })
    .collect()
}

#[test]
fn payload_seeds_open_and_replay() {
    let seeds = files(&corpus_dir("open_payload"));
    assert!(
        !seeds.is_empty(),
        "the open_payload corpus is empty; run `{WRITE_SEEDS}`"
    );
    let mut failures = Vec::new();
    for (name, seed) in &seeds {
        match no_panic("open_payload", name, || open_payload(seed)) {
            Err(e) => failures.push(e),
            Ok(outcome) => {
                if name.starts_with("payload_") && outcome.is_err() {
                    failures.push(format!("open_payload/{name}: {outcome:?}"));
                }
            }
        }
    }
    for (name, seed) in payload_seeds() {
        if !seeds.iter().any(|(_, s)| *s == seed) {
            failures.push(format!(
                "open_payload/{name} is missing; run `{WRITE_SEEDS}`"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Seeds for the `increment` and `chain_state` targets: valid encodings
/// (a page size byte and a split byte before an increment).
fn chain_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use sqlseal_format::increment::encode_increment;
    use sqlseal_format::{BackupId, CreatedAt, PageIndex};
    let page: Vec<u8> = (0..512u32).map(|i| (i % 7) as u8).collect();
    let mut seeds = Vec::new();
    for (name, pages) in [
        ("increment_empty", vec![]),
        (
            "increment_two_pages",
            vec![(1, page.clone()), (3, page.clone())],
        ),
    ] {
        let mut seed = vec![0u8, 30];
        seed.extend_from_slice(&encode_increment(512, 3, &pages, &[7; 32]));
        seeds.push(("increment", name.to_owned(), seed));
    }
    let mut index = PageIndex::new(512);
    index.push_pages(&[page.clone(), page].concat());
    let state = sqlseal_engine::ChainState {
        database: "app.db".into(),
        full: BackupId([1; 16]),
        parent: BackupId([2; 16]),
        parent_image: [3; 32],
        sequence: 4,
        parent_created: CreatedAt::from_microsecond(1_764_000_000_000_000).expect("time"),
        index,
    };
    seeds.push(("chain_state", "state_two_pages".to_owned(), state.encode()));
    seeds
}

#[test]
fn chain_seeds_parse_and_the_corpus_replays() {
    use sqlseal_engine::fuzzing::{decode_chain_state, parse_increment, read_wal};
    let mut failures = Vec::new();
    for (target, name, seed) in chain_seeds() {
        if !files(&corpus_dir(target)).iter().any(|(_, s)| *s == seed) {
            failures.push(format!("{target}/{name} is missing; run `{WRITE_SEEDS}`"));
        }
    }
    for (target, entry) in [
        (
            "increment",
            parse_increment as fn(&[u8]) -> Result<u64, String>,
        ),
        ("chain_state", decode_chain_state),
        ("wal", read_wal),
    ] {
        for (name, seed) in files(&corpus_dir(target)) {
            match no_panic(target, &name, || entry(&seed)) {
                Err(e) => failures.push(e),
                Ok(Err(e)) if !name.starts_with("bad_") => {
                    failures.push(format!("{target}/{name}: {e}"));
                }
                Ok(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `wal` seed is a log SQLite wrote (page size 512: a table created,
/// one insert, then an insert and an update in one transaction), so its
/// checksums are SQLite's: every frame reads back, three commits' worth.
#[test]
fn the_wal_seed_is_a_log_sqlite_wrote_and_reads_whole() {
    let seed = std::fs::read(corpus_dir("wal").join("sqlite_three_commits")).expect("seed");
    assert_eq!(sqlseal_engine::fuzzing::read_wal(&seed), Ok(4));
    // One flipped bit in the last frame's page: the last commit is lost,
    // the two before it stay.
    let mut damaged = seed.clone();
    let last = damaged.len() - 100;
    damaged[last] ^= 1;
    assert_eq!(sqlseal_engine::fuzzing::read_wal(&damaged), Ok(3));
}

#[test]
fn every_vector_seeds_the_corpus() {
    let header: HashSet<Vec<u8>> = files(&corpus_dir("header"))
        .into_iter()
        .map(|f| f.1)
        .collect();
    let containers: HashSet<Vec<u8>> = files(&corpus_dir("open_container"))
        .into_iter()
        .map(|f| f.1)
        .collect();
    let missing: Vec<String> = vectors()
        .into_iter()
        .filter(|(_, v)| {
            !containers.contains(&v.container) || !header.contains(header_prefix(&v.container))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty(),
        "vectors without fuzz seeds: {missing:?}; run `{WRITE_SEEDS}`"
    );
}

#[test]
fn corpus_stays_small() {
    let total: u64 = [
        "header",
        "open_container",
        "open_payload",
        "increment",
        "chain_state",
        "wal",
    ]
    .iter()
    .flat_map(|t| files(&corpus_dir(t)))
    .map(|(_, bytes)| bytes.len() as u64)
    .sum();
    assert!(
        total <= CORPUS_BUDGET,
        "the checked-in corpus holds {total} bytes, over the {CORPUS_BUDGET}-byte budget; \
         minimise it with `cargo fuzz cmin` instead of checking in a fuzzing run's corpus"
    );
}

/// Writes a seed per vector for each target unless a seed with the same
/// bytes exists; never removes or rewrites a seed.
#[test]
#[ignore = "writes missing seeds into the source tree; run it after adding vectors"]
fn write_missing_seeds() {
    for (target, seed_of) in [
        ("header", header_prefix as fn(&[u8]) -> &[u8]),
        ("open_container", whole),
    ] {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("create corpus folder");
        let mut have: HashSet<Vec<u8>> = files(&dir).into_iter().map(|f| f.1).collect();
        for (name, vector) in vectors() {
            let seed = seed_of(&vector.container);
            if have.insert(seed.to_vec()) {
                let path = dir.join(&name);
                assert!(!path.exists(), "{target}/{name} exists with other bytes");
                fs::write(path, seed).expect("write seed");
                println!("wrote {target}/{name}");
            }
        }
    }
    let dir = corpus_dir("open_payload");
    fs::create_dir_all(&dir).expect("create corpus folder");
    let have: HashSet<Vec<u8>> = files(&dir).into_iter().map(|f| f.1).collect();
    for (name, seed) in payload_seeds() {
        if !have.contains(&seed) {
            fs::write(dir.join(&name), &seed).expect("write seed");
            println!("wrote open_payload/{name}");
        }
    }
    for (target, name, seed) in chain_seeds() {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("create corpus folder");
        if !files(&dir).iter().any(|(_, s)| *s == seed) {
            fs::write(dir.join(&name), &seed).expect("write seed");
            println!("wrote {target}/{name}");
        }
    }
}
