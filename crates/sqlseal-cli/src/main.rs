//! The `sqlseal` binary: parses the command line, runs the engine, prints
//! results, and maps errors to exit codes. It is not a library; the crates
//! it composes are.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 3 a backup failed
//! authentication or integrity checks.
#![forbid(unsafe_code)]

mod backup;
mod daemon;
mod demo;
mod keys;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sqlseal_engine::{CancelFlag, EngineError};
use sqlseal_source::Method;

/// Consistent, compressed, encrypted backups of live SQLite databases.
#[derive(Parser, Debug)]
#[command(name = "sqlseal", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a new P-256 private key (PKCS#8 PEM, mode 0600); print its key id and public key.
    Keygen {
        /// Where to write the private key; never overwritten.
        #[arg(short = 'o', long = "output", value_name = "KEYFILE")]
        output: PathBuf,
    },
    /// Inspect key files.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create, list, inspect, verify and restore backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Run the daemon: restore missing databases, then back up on schedule until SIGTERM/SIGINT.
    Run {
        /// The YAML configuration file (see docs/parameters.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Log format (overrides Log.Format).
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the daemon's status file.
    Status {
        /// The YAML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a real backup of a demo database while a writer keeps committing,
    /// then list, verify and restore it, and print a summary.
    Demo {
        /// Directory for the demo files (default: a new temporary directory).
        dir: Option<PathBuf>,
        /// Size of the demo database in MiB.
        #[arg(long, default_value_t = 32, value_name = "MIB")]
        size_mib: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate a configuration as `run` does at start-up, without running.
    Check {
        /// The YAML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print every parameter's effective value and its source (default, file, env).
    Show {
        /// The YAML configuration file (defaults and environment only without it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Print the public key (SPKI PEM) of a private key file.
    Public {
        /// A private key file.
        keyfile: PathBuf,
    },
    /// Print the key id of a private or public key file.
    Id {
        /// A private or public key file.
        keyfile: PathBuf,
    },
}

/// Which backup a command works on: a file, or the newest in a directory.
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
struct BackupSelector {
    /// The backup file.
    #[arg(value_name = "BACKUP", conflicts_with_all = ["dir", "latest"])]
    backup: Option<PathBuf>,
    /// The backup directory, or s3://BUCKET/PREFIX (with --latest).
    #[arg(long, value_name = "DIR", requires = "latest")]
    dir: Option<PathBuf>,
    /// Use the newest backup in --dir.
    #[arg(long, requires = "dir")]
    latest: bool,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Snapshot a database and write a sealed backup into a directory.
    Create {
        /// The SQLite database to back up (it may be in use).
        #[arg(long, value_name = "DB")]
        db: PathBuf,
        /// The backup directory (created 0700 if missing), or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Private key files: the backup is encrypted to each and signed with the first.
        #[arg(long = "key", value_name = "KEYFILE", required = true)]
        keys: Vec<PathBuf>,
        /// Extra recipients by public key (e.g. an offline recovery key).
        #[arg(long = "recipient", value_name = "PUBFILE")]
        recipients: Vec<PathBuf>,
        /// How to take the snapshot.
        #[arg(long, default_value = "dbpage", value_parser = parse_method)]
        method: Method,
        /// Plaintext bytes per chunk: bytes or a binary size (65536, 64KiB, 1MiB, 4 MiB), 4KiB to 16MiB.
        #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = backup::parse_chunk_size)]
        chunk_size: u32,
        /// Directory for the temporary copy of backup-api and vacuum (default: a private directory beside the database).
        #[arg(long, value_name = "DIR")]
        temp_dir: Option<PathBuf>,
        /// Print a JSON object instead of the path.
        #[arg(long)]
        json: bool,
    },
    /// List the backups in a directory, newest first by stated time; with
    /// --key, each header is authenticated and marked verified or refused.
    List {
        /// The backup directory, or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Private key files to authenticate each header with; their public halves are trusted signers.
        #[arg(long = "key", value_name = "KEYFILE")]
        keys: Vec<PathBuf>,
        /// Extra trusted signer public keys (with --key).
        #[arg(long = "trust", value_name = "PUBFILE", requires = "keys")]
        trust: Vec<PathBuf>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show a backup's header (no key needed; nothing is authenticated).
    Info {
        /// The backup file.
        backup: PathBuf,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check everything: signer, every chunk, trailer hash, integrity_check.
    Verify {
        #[command(flatten)]
        which: BackupSelector,
        /// Private key files that can open the backup; their public halves are trusted signers.
        #[arg(long = "key", value_name = "KEYFILE", required = true)]
        keys: Vec<PathBuf>,
        /// Extra trusted signer public keys.
        #[arg(long = "trust", value_name = "PUBFILE")]
        trust: Vec<PathBuf>,
        /// Directory for the private temporary copy of the image that
        /// `PRAGMA integrity_check` reads (default: the system's temporary
        /// directory); it needs room for the whole database.
        #[arg(long, value_name = "DIR")]
        temp_dir: Option<PathBuf>,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Verify a backup and install it as a database file (mode 0600; with --force, the mode and,
    /// when permitted, the owner of the file it replaces).
    Restore {
        #[command(flatten)]
        which: BackupSelector,
        /// Private key files that can open the backup; their public halves are trusted signers.
        #[arg(long = "key", value_name = "KEYFILE", required = true)]
        keys: Vec<PathBuf>,
        /// Where to restore the database.
        #[arg(long, value_name = "TARGET")]
        db: PathBuf,
        /// Restore over an existing database, moving its files aside first; the restored file keeps
        /// its mode, and its owner and group when this process may set them (root).
        #[arg(long)]
        force: bool,
        /// Extra trusted signer public keys.
        #[arg(long = "trust", value_name = "PUBFILE")]
        trust: Vec<PathBuf>,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_method(s: &str) -> Result<Method, String> {
    s.parse()
}

/// Raises the returned flag on Ctrl-C or SIGTERM so that a running
/// operation stops at the next chunk and cleans up after itself.
fn cancel_on_interrupt() -> CancelFlag {
    let flag = CancelFlag::new();
    let raised = flag.clone();
    // If a handler cannot be installed the default behaviour (exit) stays.
    let _ = ctrlc::set_handler(move || raised.cancel());
    flag
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // The daemon handles its signals itself, through tokio.
    if let Command::Run { config, log_format } = &cli.command {
        return daemon::run(config, log_format.as_deref());
    }
    let cancel = cancel_on_interrupt();
    match cli.command {
        Command::Run { .. } => Ok(()),
        Command::Config(ConfigCommand::Check { config }) => daemon::check(&config),
        Command::Config(ConfigCommand::Show { config }) => daemon::show(config.as_deref()),
        Command::Status { config, json } => daemon::status(&config, json),
        Command::Keygen { output } => keys::keygen(&output),
        Command::Key(KeyCommand::Public { keyfile }) => keys::public(&keyfile),
        Command::Key(KeyCommand::Id { keyfile }) => keys::id(&keyfile),
        Command::Backup(cmd) => backup::run(cmd, &cancel),
        Command::Demo { dir, size_mib } => demo::run(dir, size_mib, &cancel),
    }
}

/// One line: each cause in the chain that the previous messages do not already say.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn exit_code(err: &anyhow::Error) -> u8 {
    let integrity = err
        .chain()
        .filter_map(|c| c.downcast_ref::<EngineError>())
        .any(EngineError::is_integrity_failure);
    if integrity { 3 } else { 1 }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn one_line_drops_repeated_causes() {
        let inner = std::io::Error::other("disk full");
        let err = anyhow::Error::new(inner).context("writing x: disk full");
        assert_eq!(one_line(&err), "writing x: disk full");
        let err = anyhow::anyhow!("root").context("outer");
        assert_eq!(one_line(&err), "outer: root");
    }
}
