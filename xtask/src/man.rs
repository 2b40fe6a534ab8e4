//! `cargo xtask man`: the man pages in docs/man/, rendered by the sqlseal
//! binary itself (`sqlseal man --out DIR`, a hidden command) from its
//! command line definition, so they cannot drift from `--help`. They are
//! committed; `--check` fails when they are stale.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pages, relative to the workspace root.
pub const OUT: &str = "docs/man";
/// What to run when the pages are stale.
pub const COMMAND: &str = "cargo xtask man";

/// Writes the pages (or, with `check`, only compares them).
pub fn run(root: &Path, check: bool) -> Result<()> {
    if check {
        return self::check(root);
    }
    let fresh = generate(root)?;
    let dir = root.join(OUT);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {OUT}"))?;
    let current = read_pages(&dir)?;
    for name in current.keys().filter(|n| !fresh.contains_key(*n)) {
        std::fs::remove_file(dir.join(name)).with_context(|| format!("removing {OUT}/{name}"))?;
        println!("removed:   {OUT}/{name}");
    }
    for (name, text) in &fresh {
        if current.get(name) == Some(text) {
            continue;
        }
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {OUT}/{name}"))?;
        println!("updated:   {OUT}/{name}");
    }
    println!("{} man pages in {OUT}", fresh.len());
    Ok(())
}

/// Fails, naming the stale pages and the command to run, when docs/man/
/// differs from what the binary renders.
pub fn check(root: &Path) -> Result<()> {
    let fresh = generate(root)?;
    let current = read_pages(&root.join(OUT))?;
    let stale: Vec<&String> = fresh
        .keys()
        .chain(current.keys())
        .filter(|n| fresh.get(*n) != current.get(*n))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !stale.is_empty() {
        let names: Vec<&str> = stale.iter().map(|s| s.as_str()).collect();
        bail!(
            "{OUT}: {} out of date with the command line; run `{COMMAND}` and commit the result",
            names.join(", ")
        );
    }
    println!("man pages are up to date");
    Ok(())
}

/// The `*.1` files of `dir` by name (none if it does not exist).
fn read_pages(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut pages = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pages),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "1") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if let Some(name) = path.file_name() {
                pages.insert(name.to_string_lossy().into_owned(), text);
            }
        }
    }
    Ok(pages)
}

/// Renders the pages with the workspace's sqlseal into a scratch directory
/// under target/ and reads them back.
fn generate(root: &Path) -> Result<BTreeMap<String, String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let scratch = target.join("xtask-man");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("clearing {}", scratch.display()))?;
    }
    let status = Command::new(&cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "sqlseal-cli",
            "--bin",
            "sqlseal",
            "--",
        ])
        .arg("man")
        .arg("--out")
        .arg(&scratch)
        .current_dir(root)
        .status()
        .context("starting `cargo run -p sqlseal-cli -- man`")?;
    if !status.success() {
        bail!("`cargo run -p sqlseal-cli -- man` failed ({status})");
    }
    let pages = read_pages(&scratch)?;
    if !pages.contains_key("sqlseal.1") {
        bail!("sqlseal man wrote no sqlseal.1 into {}", scratch.display());
    }
    Ok(pages)
}
