//! Helpers for the tests that run the real `sqlseal` binary: the shared
//! fixtures of sqlseal-testkit (every child runs under a deadline), and
//! what only these tests read (leftover temporary files, container frames,
//! `backup list --json`).
// Each test file uses its own subset of these helpers.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub use sqlseal_testkit::{
    Outcome, Proc, bin, db_tag_and_rows, keygen, make_random_db, p, run, sqlseal, wait_until,
};

/// `backup create --db DB --dir DIR --key KEY` and then `extra`.
pub fn create_args<'a>(db: &'a str, dir: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["backup", "create", "--db", db, "--dir", dir, "--key", key];
    args.extend_from_slice(extra);
    args
}

/// Asserts exit code 1 with exactly one line on stderr (no warning first,
/// no panic), `error: ...`, and returns that line.
pub fn one_line_error(o: &Output) -> String {
    let err = sqlseal_testkit::stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        sqlseal_testkit::stdout(o)
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

/// Names of the files sqlseal leaves behind only when it fails to clean
/// up: store temp files (`.NAME.tmp-*`), verify images and snapshot
/// directories (`.sqlseal-*`), restore images (`.NAME.sqlseal-restore-*`).
pub fn leftovers(dirs: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // The database lock file stays by design (it is re-locked,
            // never deleted) and holds only a process id.
            let lock = name.starts_with('.') && name.ends_with(".lock");
            if (name.contains(".tmp-") || name.contains(".sqlseal-")) && !lock {
                found.push(dir.join(name).display().to_string());
            }
        }
    }
    found
}

/// Every entry of `dir` (for a private TMPDIR that must stay empty).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The size of the first file in `dir` whose name contains `marker`.
pub fn temp_size(dir: &Path, marker: &str) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains(marker) {
            return None;
        }
        let meta = e.metadata().ok()?;
        if meta.is_dir() {
            // A private temporary directory: the size of what it holds.
            let inside = std::fs::read_dir(e.path()).ok()?;
            Some(
                inside
                    .flatten()
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum(),
            )
        } else {
            Some(meta.len())
        }
    })
}

/// One frame of a container: where it starts, its chunk index, and where
/// its sealed body starts and ends.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    pub start: usize,
    pub index: u64,
    pub body: usize,
    pub end: usize,
}

const SALT_LEN: usize = 32;
const FRAME_HEADER_LEN: usize = 17;

/// The frames of a container (docs/format.md, section 4 and 8.3): the
/// payload starts after the LF of the `mac:` line with a 32-byte salt,
/// then frames of a 17-byte header (index u64be, flags u8, raw_len u32be,
/// sealed_len u32be) and the sealed chunk; it stops after the FINAL frame.
pub fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mac = bytes
        .windows(5)
        .position(|w| w == b"\nmac:")
        .expect("header has a mac: line")
        + 1;
    let header_end = mac
        + bytes[mac..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("mac line ends")
        + 1;
    let mut at = header_end + SALT_LEN;
    let mut out = Vec::new();
    while at + FRAME_HEADER_LEN <= bytes.len() {
        let h = &bytes[at..at + FRAME_HEADER_LEN];
        let index = u64::from_be_bytes(h[0..8].try_into().expect("8 bytes"));
        let flags = h[8];
        let sealed = u32::from_be_bytes(h[13..17].try_into().expect("4 bytes")) as usize;
        let body = at + FRAME_HEADER_LEN;
        out.push(Frame {
            start: at,
            index,
            body,
            end: body + sealed,
        });
        at = body + sealed;
        if flags & 1 != 0 {
            break;
        }
    }
    out
}

/// Flips one byte inside the sealed body of the frame that holds `offset`
/// (moved into the body if it falls on a frame header); returns that
/// frame's chunk index.
pub fn corrupt_at(backup: &Path, offset: usize) -> u64 {
    let mut bytes = std::fs::read(backup).expect("read backup");
    let all = frames(&bytes);
    let frame = *all
        .iter()
        .find(|f| f.start <= offset && offset < f.end)
        .expect("offset inside the frames");
    let at = offset.max(frame.body + 16).min(frame.end - 1);
    bytes[at] ^= 0x20;
    std::fs::write(backup, bytes).expect("write backup");
    frame.index
}

/// Flips one byte in the middle of chunk `index`'s sealed body.
pub fn corrupt_chunk(backup: &Path, index: u64) {
    let bytes = std::fs::read(backup).expect("read backup");
    let frame = *frames(&bytes)
        .iter()
        .find(|f| f.index == index)
        .expect("chunk exists");
    let got = corrupt_at(backup, (frame.body + frame.end) / 2);
    assert_eq!(got, index);
}

/// Parses `backup list --json` output into (path, has an error) pairs.
pub fn listed(stdout: &str) -> Vec<(PathBuf, bool)> {
    let rows: serde_json::Value = serde_json::from_str(stdout).expect("list --json");
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                PathBuf::from(r["path"].as_str().expect("path")),
                !r["error"].is_null(),
            )
        })
        .collect()
}
