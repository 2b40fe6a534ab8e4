//! Project automation, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`). Not a library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

mod ci;
mod codegen;
mod fuzz;
mod man;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen [--check]       regenerate crates/sqlseal-params/src/generated.rs and
                          docs/parameters.md from docs/parameters.yaml; with
                          --check, only fail if they are stale
  man [--check]           regenerate the man pages in docs/man/ from the
                          sqlseal command line; with --check, only fail if
                          they are stale
  ci                      fmt check, clippy, tests, the codegen and man page
                          checks, in order, stopping at the first failure
  fuzz [--seconds N]      run each fuzz target for N seconds (default 60)
  help                    show this text";

const DEFAULT_FUZZ_SECONDS: u64 = 60;

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
        ["man"] => man::run(workspace_root(), false),
        ["man", "--check"] => man::run(workspace_root(), true),
        ["ci"] => ci::run(workspace_root()),
        ["fuzz", rest @ ..] => fuzz::run(fuzz_seconds(rest)?),
        [] | ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown arguments `{}`\n\n{USAGE}", args.join(" ")),
    }
}

/// `fuzz`'s arguments: nothing, `--seconds N`, `--seconds=N` or `N`.
fn fuzz_seconds(args: &[&str]) -> Result<u64> {
    let text = match args {
        [] => return Ok(DEFAULT_FUZZ_SECONDS),
        ["--seconds", n] | [n] => *n,
        _ => bail!("usage: cargo xtask fuzz [--seconds N]"),
    };
    let text = text.strip_prefix("--seconds=").unwrap_or(text);
    text.parse()
        .with_context(|| format!("fuzz: {text:?} is not a number of seconds"))
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
    fn fuzz_takes_seconds_in_three_spellings() {
        assert_eq!(fuzz_seconds(&[]).expect("default"), DEFAULT_FUZZ_SECONDS);
        assert_eq!(fuzz_seconds(&["30"]).expect("bare"), 30);
        assert_eq!(fuzz_seconds(&["--seconds", "31"]).expect("flag"), 31);
        assert_eq!(fuzz_seconds(&["--seconds=32"]).expect("joined"), 32);
        assert!(fuzz_seconds(&["soon"]).is_err());
        assert!(fuzz_seconds(&["1", "2", "3"]).is_err());
    }

    #[test]
    fn unknown_commands_fail_with_usage() {
        let err = run(vec!["deploy".to_owned()]).expect_err("unknown command");
        assert!(format!("{err}").contains("usage: cargo xtask"), "{err}");
    }
}
