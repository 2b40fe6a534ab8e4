//! `Header::parse` on arbitrary bytes; a header that parses must encode back
//! to exactly the bytes read.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sqlseal_engine::fuzzing::parse_header(data);
});
