//! A backup nobody signed, planted in a store.

use std::path::Path;

/// The name [`plant_future`] gives its copy in the tests that use it: a
/// backup from 2999, newer than any genuine one.
pub const PLANTED: &str = "app.db-29990101T000000.000000Z-000000.sqlseal";

/// Writes to `planted` a copy of the backup at `genuine` whose `created:`
/// line says 2999 and whose signature is junk: what someone who can write
/// to the store but holds no key can make.
pub fn plant_future(genuine: &Path, planted: &Path) {
    let bytes = std::fs::read(genuine).expect("read");
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    loop {
        let end = rest.iter().position(|&b| b == b'\n').expect("line") + 1;
        let line = &rest[..end];
        if line.starts_with(b"created: ") {
            out.extend_from_slice(b"created: 2999-01-01T00:00:00.000000Z\n");
        } else if line.starts_with(b"signature: ") {
            out.extend_from_slice(b"signature: ");
            out.extend_from_slice(&[b'Q'; 86]);
            out.push(b'\n');
        } else {
            out.extend_from_slice(line);
        }
        rest = &rest[end..];
        if line.starts_with(b"mac: ") {
            break;
        }
    }
    out.extend_from_slice(rest);
    std::fs::write(planted, out).expect("plant");
}
