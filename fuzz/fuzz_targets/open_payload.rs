//! The engine's payload reader on arbitrary bytes (salt, frames, seal
//! record) under a fixed data key, so that fuzzing reaches frame parsing,
//! AES-GCM, LZ4 and the trailer; the image released must match the trailer.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sqlseal_engine::fuzzing::open_payload(data);
});
