//! The increment parser (an increment's plaintext: page records and the
//! image index hash) on arbitrary bytes, in two feeds.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sqlseal_engine::fuzzing::parse_increment(data);
});
