//! The local chain state file's decoder on arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sqlseal_engine::fuzzing::decode_chain_state(data);
});
