//! The engine's one reader on arbitrary bytes with the fixed test keyring,
//! reading the whole image; the image released must match the trailer.

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sqlseal_crypto::Keyring;
use sqlseal_engine::fuzzing;

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/sqlseal-format/testdata/keys");
    fuzzing::fixed_keyring(&keys).expect("the test keys load")
});

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::open_container(data, &KEYRING);
});
