//! `cargo xtask ci`: the checks a change must pass, in order, stopping at the
//! first failure.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{codegen, man};

/// The cargo steps, before the codegen check.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--check"],
    &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ],
    &["test", "--workspace"],
];

/// Runs every step; the error names the step that failed.
pub fn run(root: &Path) -> Result<()> {
    // The cargo that runs this xtask, so that the same toolchain runs the steps.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    for args in STEPS {
        let shown = format!("cargo {}", args.join(" "));
        announce(&shown);
        let status = Command::new(&cargo)
            .args(*args)
            .current_dir(root)
            .status()
            .with_context(|| format!("starting `{shown}`"))?;
        if !status.success() {
            bail!("ci: `{shown}` failed ({status})");
        }
    }
    // Public items are documented and the docs build without warnings.
    let shown = "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace --no-deps";
    announce(shown);
    let status = Command::new(&cargo)
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(root)
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("ci: `{shown}` failed ({status})");
    }
    let shown = format!("{} --check", codegen::COMMAND);
    announce(&shown);
    codegen::check(root).with_context(|| format!("ci: `{shown}` failed"))?;
    let shown = format!("{} --check", man::COMMAND);
    announce(&shown);
    man::check(root).with_context(|| format!("ci: `{shown}` failed"))?;
    println!("ci: all steps passed");
    Ok(())
}

fn announce(step: &str) {
    println!("==> {step}");
}
