//! `cargo xtask fuzz`: runs each cargo-fuzz target in `fuzz/` for a set time.
//!
//! Needs `cargo fuzz`, installed with `cargo install cargo-fuzz --locked`
//! when missing. libFuzzer builds use `-Z` sanitizer flags that only nightly
//! accepts; on the stable toolchain `RUSTC_BOOTSTRAP=1` unlocks them for
//! these builds only.
//!
//! Each run reads the checked-in seeds in `fuzz/corpus/<target>/` and writes
//! the inputs it finds to `fuzz/target/corpus/<target>/`, which is not
//! checked in. A crash stops that target and leaves the input in
//! `fuzz/artifacts/<target>/`; once fixed, check it in as a seed so that the
//! `fuzz_corpus` test replays it on every `cargo test`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// Runs every fuzz target for `seconds` each, one after the other.
pub fn run(seconds: u64) -> Result<()> {
    ensure!(seconds > 0, "fuzz: give a positive number of seconds");
    let root = repo_root();
    ensure_cargo_fuzz()?;
    let targets = list_targets(&root)?;
    ensure!(
        !targets.is_empty(),
        "fuzz: `cargo fuzz list` found no targets"
    );
    let mut failed = Vec::new();
    for target in &targets {
        eprintln!("fuzz: running `{target}` for {seconds} s");
        std::fs::create_dir_all(work_corpus(&root, target))
            .with_context(|| format!("fuzz: creating the work corpus of `{target}`"))?;
        let status = fuzz_command(&root, target, seconds)
            .status()
            .context("fuzz: running `cargo fuzz run`")?;
        if !status.success() {
            eprintln!("fuzz: `{target}` failed ({status})");
            failed.push(target.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz: {} target(s) failed: {}; the crashing inputs are in fuzz/artifacts/<target>/ \
             (reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`)",
            failed.len(),
            failed.join(", ")
        );
    }
    eprintln!(
        "fuzz: {} target(s) ran {seconds} s each without a crash",
        targets.len()
    );
    Ok(())
}

/// The repository root: xtask lives one folder below it.
fn repo_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// The cargo that runs xtask, so `cargo fuzz` uses the same toolchain.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn work_corpus(root: &Path, target: &str) -> PathBuf {
    root.join("fuzz/target/corpus").join(target)
}

fn cargo_fuzz_installed() -> bool {
    Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn ensure_cargo_fuzz() -> Result<()> {
    if cargo_fuzz_installed() {
        return Ok(());
    }
    eprintln!("fuzz: cargo-fuzz is missing; installing it (a few minutes)");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("fuzz: running `cargo install cargo-fuzz --locked`")?;
    ensure!(
        status.success() && cargo_fuzz_installed(),
        "fuzz: `cargo install cargo-fuzz --locked` failed ({status})"
    );
    Ok(())
}

fn list_targets(root: &Path) -> Result<Vec<String>> {
    let out = Command::new(cargo())
        .current_dir(root)
        .args(["fuzz", "list"])
        .output()
        .context("fuzz: running `cargo fuzz list`")?;
    ensure!(
        out.status.success(),
        "fuzz: `cargo fuzz list` failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `cargo fuzz run TARGET WORK SEEDS -- -max_total_time=SECONDS`: new
/// inputs go to the first corpus folder, the seeds are only read.
fn fuzz_command(root: &Path, target: &str, seconds: u64) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", target])
        .arg(work_corpus(root, target))
        .arg(root.join("fuzz/corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        // The reader runs on threads: LeakSanitizer reports glibc's
        // thread-exit bookkeeping (32 bytes from __cxa_thread_atexit_impl)
        // as a leak once in a while, and the same input replayed alone does
        // not leak. Safe Rust cannot leak by mistake, so leak checks only
        // stop runs on that false positive.
        .arg("-detect_leaks=0");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_command_bounds_time_and_keeps_seeds_read_only() {
        let root = Path::new("/repo");
        let cmd = fuzz_command(root, "header", 42);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[..3], ["fuzz", "run", "header"]);
        // libFuzzer writes new inputs to the first folder only.
        assert_eq!(args[3], "/repo/fuzz/target/corpus/header");
        assert_eq!(args[4], "/repo/fuzz/corpus/header");
        let flags = &args[args.iter().position(|a| a == "--").expect("-- separator") + 1..];
        assert!(
            flags.contains(&"-max_total_time=42".to_owned()),
            "{flags:?}"
        );
        assert!(flags.contains(&"-detect_leaks=0".to_owned()), "{flags:?}");
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k == "RUSTC_BOOTSTRAP" && v.is_some_and(|v| v == "1"))
        );
        assert_eq!(cmd.get_current_dir(), Some(root));
    }

    #[test]
    fn repo_root_holds_the_fuzz_workspace() {
        assert!(repo_root().join("fuzz/Cargo.toml").is_file());
    }
}
