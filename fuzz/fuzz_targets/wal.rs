//! SQLite's write-ahead log reader (the change tracker's) on arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sqlseal_engine::fuzzing::read_wal(data);
});
