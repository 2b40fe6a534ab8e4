//! Project automation, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`). Not a library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::{Result, bail};

mod codegen;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen [--check]       regenerate crates/sqlseal-params/src/generated.rs and
                          docs/parameters.md from docs/parameters.yaml; with
                          --check, only fail if they are stale
  help                    show this text";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen::run(workspace_root(), false),
        ["codegen", "--check"] => codegen::run(workspace_root(), true),
        [] | ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown arguments `{}`\n\n{USAGE}", args.join(" ")),
    }
}

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_commands_fail_with_usage() {
        let err = run(vec!["deploy".to_owned()]).expect_err("unknown command");
        assert!(format!("{err}").contains("usage: cargo xtask"), "{err}");
    }
}
