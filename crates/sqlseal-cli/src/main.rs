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
mod examples;
mod keys;
mod man;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use serde::Serialize;
use sqlseal_engine::{CancelFlag, CheckLevel, EngineError};
use sqlseal_source::Method;
use sqlseal_store::Location;

/// Consistent, compressed, encrypted backups of live SQLite databases.
#[derive(Parser, Debug)]
#[command(name = "sqlseal", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How the configuration file is read.
#[derive(Args, Debug, Clone, Copy)]
struct ConfigReading {
    /// Read the configuration file as written: no ${VAR} or ${VAR:-default}
    /// expansion from the environment.
    #[arg(long)]
    no_expand_env: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a new P-256 private key (PKCS#8 PEM, mode 0600); print its key id and public key.
    #[command(after_long_help = examples::KEYGEN)]
    Keygen {
        /// Where to write the private key; never overwritten.
        #[arg(short = 'o', long = "output", value_name = "KEYFILE")]
        output: PathBuf,
        /// Print a JSON object (path, key_id, public_key).
        #[arg(long)]
        json: bool,
    },
    /// Inspect key files.
    #[command(subcommand, after_long_help = examples::KEY)]
    Key(KeyCommand),
    /// Create, list, inspect, verify and restore backups.
    #[command(subcommand, after_long_help = examples::BACKUP)]
    Backup(BackupCommand),
    /// Run the daemon: restore missing databases, then back up on schedule until SIGTERM/SIGINT.
    #[command(after_long_help = examples::RUN)]
    Run {
        /// The YAML configuration file (see docs/parameters.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Log format (overrides Log.Format).
        #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
        log_format: Option<String>,
        /// JSON logs on stderr: the same as --log-format json.
        #[arg(long, conflicts_with = "log_format")]
        json: bool,
        #[command(flatten)]
        reading: ConfigReading,
    },
    /// Check or show the configuration.
    #[command(subcommand, after_long_help = examples::CONFIG)]
    Config(ConfigCommand),
    /// Print the daemon's status file.
    #[command(after_long_help = examples::STATUS)]
    Status {
        /// The YAML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reading: ConfigReading,
    },
    /// Run a real backup of a demo database while a writer keeps committing,
    /// then list, verify and restore it, and print a summary.
    #[command(after_long_help = examples::DEMO)]
    Demo {
        /// Directory for the demo files (default: a new temporary directory).
        dir: Option<PathBuf>,
        /// Size of the demo database in MiB.
        #[arg(long, default_value_t = 32, value_name = "MIB")]
        size_mib: u64,
    },
    /// Print a shell completion script.
    #[command(after_long_help = examples::COMPLETIONS)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (sqlseal.1 and one per subcommand) into a directory.
    #[command(hide = true)]
    Man {
        /// The directory to write the pages into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

impl Command {
    /// Whether the command was asked for `--json`: then a failure prints
    /// a JSON failure object on stdout as well as the `error:` line.
    fn json(&self) -> bool {
        match self {
            Command::Keygen { json, .. }
            | Command::Run { json, .. }
            | Command::Status { json, .. } => *json,
            Command::Key(KeyCommand::Public { json, .. } | KeyCommand::Id { json, .. }) => *json,
            Command::Config(
                ConfigCommand::Check { json, .. } | ConfigCommand::Show { json, .. },
            ) => *json,
            Command::Backup(cmd) => match cmd {
                BackupCommand::Create { json, .. }
                | BackupCommand::List { json, .. }
                | BackupCommand::Info { json, .. }
                | BackupCommand::Verify { json, .. }
                | BackupCommand::Restore { json, .. }
                | BackupCommand::Prune { json, .. } => *json,
            },
            Command::Demo { .. } | Command::Completions { .. } | Command::Man { .. } => false,
        }
    }
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate a configuration as `run` does at start-up, without running.
    #[command(after_long_help = examples::CONFIG_CHECK)]
    Check {
        /// The YAML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reading: ConfigReading,
    },
    /// Print every parameter's effective value and its source (default, file, env).
    #[command(after_long_help = examples::CONFIG_SHOW)]
    Show {
        /// The YAML configuration file (defaults and environment only without it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print a JSON array (name, env, source, value).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reading: ConfigReading,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Print the public key (SPKI PEM) of a private key file.
    #[command(after_long_help = examples::KEY_PUBLIC)]
    Public {
        /// A private key file.
        keyfile: PathBuf,
        /// Print a JSON object (key_id, public_key).
        #[arg(long)]
        json: bool,
    },
    /// Print the key id of a private or public key file.
    #[command(after_long_help = examples::KEY_ID)]
    Id {
        /// A private or public key file.
        keyfile: PathBuf,
        /// Print a JSON object (key_id).
        #[arg(long)]
        json: bool,
    },
}

/// `--dir`: a directory, or `s3://BUCKET/PREFIX`; any other scheme is
/// refused as clap reads the value (reported by `invalid_location` as one
/// line, exit 1). A path that is not UTF-8 is a directory.
fn location_parser() -> impl clap::builder::TypedValueParser<Value = Location> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|text| Location::parse(PathBuf::from(text)))
}

/// `--key` and `--trust` where a key is needed: to open a backup, or to
/// authenticate the headers that decide what a command deletes.
#[derive(Args, Debug)]
struct RequiredKeys {
    /// A private key file: its public half is a trusted signer (and verify
    /// and restore open backups encrypted to it). Repeat for more keys.
    #[arg(long = "key", value_name = "KEYFILE", required = true)]
    keys: Vec<PathBuf>,
    /// An extra trusted signer public key. Repeat for more.
    #[arg(long = "trust", value_name = "PUBFILE")]
    trust: Vec<PathBuf>,
}

/// `--key` and `--trust` where a key is optional: with one, each header is
/// authenticated (and `--latest` picks the newest that verifies).
#[derive(Args, Debug)]
struct OptionalKeys {
    /// A private key file to authenticate each header with; its public
    /// half is a trusted signer. Repeat for more keys.
    #[arg(long = "key", value_name = "KEYFILE")]
    keys: Vec<PathBuf>,
    /// An extra trusted signer public key (with --key). Repeat for more.
    #[arg(long = "trust", value_name = "PUBFILE", requires = "keys")]
    trust: Vec<PathBuf>,
}

impl RequiredKeys {
    /// The keyring of these keys and trusted signers.
    fn keyring(&self) -> anyhow::Result<sqlseal_crypto::Keyring> {
        keys::keyring(&self.keys, &self.trust)
    }
}

impl OptionalKeys {
    /// The keyring, or `None` when no key was named.
    fn keyring(&self) -> anyhow::Result<Option<sqlseal_crypto::Keyring>> {
        keys::optional_keyring(&self.keys, &self.trust)
    }
}

/// Which backup a command works on: a file, the newest in a directory, or
/// the newest at or before a time.
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
struct BackupSelector {
    /// The backup file, or s3://BUCKET/PREFIX/NAME.sqlseal.
    #[arg(value_name = "BACKUP", conflicts_with_all = ["dir", "latest", "at"])]
    backup: Option<PathBuf>,
    /// The backup directory, or s3://BUCKET/PREFIX (with --latest or --at).
    #[arg(long, value_name = "DIR", value_parser = location_parser())]
    dir: Option<Location>,
    /// Use the newest point in --dir: the newest backup, or the newest
    /// increment of the newest chain.
    #[arg(long, requires = "dir", conflicts_with = "at")]
    latest: bool,
    /// Use the newest point in --dir at or before TIME: RFC 3339
    /// (2026-12-01T09:30:00Z) or a time ago (-15m, -2h, -1h30m). Needs --key.
    #[arg(
        long,
        value_name = "TIME",
        requires = "dir",
        allow_hyphen_values = true,
        value_parser = backup::parse_point_in_time
    )]
    at: Option<backup::PointInTime>,
}

/// Which backups `verify` checks: a file, the newest in a directory, or all of them.
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
struct VerifySelector {
    /// The backup file, or s3://BUCKET/PREFIX/NAME.sqlseal.
    #[arg(value_name = "BACKUP", conflicts_with_all = ["dir", "latest", "all"])]
    backup: Option<PathBuf>,
    /// The backup directory, or s3://BUCKET/PREFIX (with --latest or --all).
    #[arg(long, value_name = "DIR", value_parser = location_parser())]
    dir: Option<Location>,
    /// Verify the newest backup in --dir.
    #[arg(long, requires = "dir", conflicts_with = "all")]
    latest: bool,
    /// Verify every backup in --dir: one line each, exit 3 if any fails.
    #[arg(long, requires = "dir")]
    all: bool,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Snapshot a database and write a sealed backup into a directory.
    #[command(after_long_help = examples::BACKUP_CREATE)]
    Create {
        /// The SQLite database to back up (it may be in use).
        #[arg(long, value_name = "DB")]
        db: PathBuf,
        /// The backup directory (created 0700 if missing), or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR", value_parser = location_parser())]
        dir: Location,
        /// A private key file: the backup is encrypted to each and signed
        /// with the first. Repeat for more keys.
        #[arg(long = "key", value_name = "KEYFILE", required = true)]
        keys: Vec<PathBuf>,
        /// An extra recipient by public key (e.g. an offline recovery key).
        /// Repeat for more.
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
        /// The integrity check run on the snapshot, beside the stream, and
        /// recorded in the signed seal: full (PRAGMA integrity_check, about
        /// 4-15 s per GiB of one core, split by table over the cores),
        /// quick (PRAGMA quick_check, about a tenth of that), or none. A
        /// database that fails it is not backed up; --check none backs it
        /// up as it is.
        #[arg(long, value_enum, default_value = "full", value_name = "CHECK")]
        check: CheckArg,
        /// Write an increment: only the pages changed since the newest point
        /// of this database's chain in DIR (its state is kept beside the
        /// database, as the daemon keeps it). Without a chain to continue, a
        /// full backup that starts one; with nothing changed, nothing.
        #[arg(long)]
        increment: bool,
        /// Print a JSON object instead of the path.
        #[arg(long)]
        json: bool,
    },
    /// List the backups in a directory, newest first by stated time; with
    /// --key, each header is authenticated and marked verified or refused.
    ///
    /// One line per backup, fields separated by a tab: path, created, size
    /// in bytes and, with --key, `verified` or `refused: REASON`. Use
    /// `cut -f1` for the paths, or --json.
    #[command(after_long_help = examples::BACKUP_LIST)]
    List {
        /// The backup directory, or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR", value_parser = location_parser())]
        dir: Location,
        #[command(flatten)]
        auth: OptionalKeys,
        /// One line per chain instead (a full backup and its increments):
        /// full backup path, increments, first point, last point, bytes in
        /// all. With --key, only backups whose header verifies count.
        #[arg(long)]
        chains: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Delete old backups by retention rules: `--max-count` and the
    /// grandfather-father-son `--keep-*` rules of `Backup.MaxCount` and
    /// `Backup.Keep*` (restic's forget semantics, UTC periods).
    ///
    /// Only backups whose header verifies with --key count and can be
    /// deleted; the others are listed as skipped and never touched, and the
    /// newest verified backup is always kept. `--dry-run` shows the plan,
    /// `--yes` carries it out. One line per backup, tab-separated: `keep`,
    /// `delete`, `deleted` or `skip`, the path, the created time, and the
    /// rules that keep it (or why it was skipped).
    #[command(after_long_help = examples::BACKUP_PRUNE)]
    Prune {
        /// The backup directory, or s3://BUCKET/PREFIX.
        #[arg(long, value_name = "DIR", value_parser = location_parser())]
        dir: Location,
        #[command(flatten)]
        auth: RequiredKeys,
        #[command(flatten)]
        rules: sqlseal_schedule::RetentionPolicy,
        /// Show what would be deleted; delete nothing.
        #[arg(long, conflicts_with = "yes", required_unless_present = "yes")]
        dry_run: bool,
        /// Delete what the rules do not keep.
        #[arg(long)]
        yes: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show a backup's header (no key needed; nothing is authenticated).
    ///
    /// With --dir DIR --latest and no key, the newest backup is chosen by
    /// the time its header states, which is not authenticated; with --key,
    /// it is the newest backup whose header verifies, as for verify and
    /// restore.
    #[command(
        override_usage = "sqlseal backup info [OPTIONS] <BACKUP | --dir DIR --latest>",
        after_long_help = examples::BACKUP_INFO
    )]
    Info {
        #[command(flatten)]
        which: BackupSelector,
        #[command(flatten)]
        auth: OptionalKeys,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check everything: signer, every chunk, trailer hash, seal, and integrity_check (not
    /// re-run when the seal records a full check made at backup time).
    ///
    /// With --dir DIR --all, every backup in DIR is checked: one line each,
    /// fields separated by a tab (path, then `ok` or `failed: REASON`); the
    /// exit code is 3 if any fails, 0 if all pass.
    #[command(
        override_usage = "sqlseal backup verify [OPTIONS] --key <KEYFILE> <BACKUP | --dir DIR --latest | --dir DIR --all>",
        after_long_help = examples::BACKUP_VERIFY
    )]
    Verify {
        #[command(flatten)]
        which: VerifySelector,
        #[command(flatten)]
        auth: RequiredKeys,
        /// Directory for the private temporary copy of the image that
        /// `PRAGMA integrity_check` reads (default: the system's temporary
        /// directory); it needs room for the whole database.
        #[arg(long, value_name = "DIR")]
        temp_dir: Option<PathBuf>,
        /// The integrity check to run on the image. Default: none when the
        /// backup's signed seal records a full check made at backup time
        /// (the image read is bit-identical to the one checked), else full
        /// (a recorded quick check included).
        #[arg(long, value_enum, value_name = "CHECK")]
        check: Option<CheckArg>,
        /// Print a JSON object (with --all, a JSON array of them).
        #[arg(long)]
        json: bool,
    },
    /// Verify a backup and install it as a database file (mode 0600; with --force, the mode and,
    /// when permitted, the owner of the file it replaces).
    #[command(
        override_usage = "sqlseal backup restore [OPTIONS] --key <KEYFILE> --db <TARGET> <BACKUP | --dir DIR --latest | --dir DIR --at TIME>",
        after_long_help = examples::BACKUP_RESTORE
    )]
    Restore {
        #[command(flatten)]
        which: BackupSelector,
        #[command(flatten)]
        auth: RequiredKeys,
        /// Where to restore the database.
        #[arg(long, value_name = "TARGET")]
        db: PathBuf,
        /// Restore over an existing database, moving its files aside first; the restored file keeps
        /// its mode, and its owner and group when this process may set them (root).
        #[arg(long)]
        force: bool,
        /// The integrity check to run on the restored image before it is
        /// installed. Default: none when the backup's signed seal records a
        /// full check made at backup time (the image restored is
        /// bit-identical to the one checked), else full (a recorded quick
        /// check included).
        #[arg(long, value_enum, value_name = "CHECK")]
        check: Option<CheckArg>,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `--check`: which SQLite integrity check runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckArg {
    /// PRAGMA integrity_check: everything, including that indexes match their tables.
    Full,
    /// PRAGMA quick_check: page and b-tree structure, about a tenth of the time.
    Quick,
    /// No check.
    None,
}

impl From<CheckArg> for CheckLevel {
    fn from(c: CheckArg) -> Self {
        match c {
            CheckArg::Full => CheckLevel::Full,
            CheckArg::Quick => CheckLevel::Quick,
            CheckArg::None => CheckLevel::None,
        }
    }
}

fn parse_method(s: &str) -> Result<Method, sqlseal_source::ParseMethodError> {
    s.parse()
}

/// How long a command may take to stop after Ctrl-C or SIGTERM before it
/// exits anyway: within the 5 s a service manager or an operator allows.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(4500);

/// Raises the returned flag on Ctrl-C or SIGTERM so that a running
/// operation stops at the next chunk and cleans up after itself. A command
/// still running [`STOP_GRACE`] after the signal (waiting on a server that
/// stopped answering, say, where nothing looks at the flag) exits then,
/// with exit code 1.
fn cancel_on_interrupt() -> CancelFlag {
    let flag = CancelFlag::new();
    let raised = flag.clone();
    // If a handler cannot be installed the default behaviour (exit) stays.
    let _ = ctrlc::set_handler(move || {
        if raised.is_cancelled() {
            return;
        }
        raised.cancel();
        std::thread::spawn(|| {
            std::thread::sleep(STOP_GRACE);
            eprintln!(
                "error: still running {:.1} s after the signal (waiting on a store?); exiting",
                STOP_GRACE.as_secs_f64()
            );
            std::process::exit(1);
        });
    });
    flag
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // The daemon handles its signals itself, through tokio.
    if let Command::Run {
        config,
        log_format,
        json,
        reading,
    } = &cli.command
    {
        let format = if *json {
            Some("json")
        } else {
            log_format.as_deref()
        };
        return daemon::run(config, format, !reading.no_expand_env);
    }
    let cancel = cancel_on_interrupt();
    match cli.command {
        Command::Run { .. } => Ok(()),
        Command::Config(ConfigCommand::Check {
            config,
            json,
            reading,
        }) => daemon::check(&config, json, !reading.no_expand_env),
        Command::Config(ConfigCommand::Show {
            config,
            json,
            reading,
        }) => daemon::show(config.as_deref(), json, !reading.no_expand_env),
        Command::Status {
            config,
            json,
            reading,
        } => daemon::status(&config, json, !reading.no_expand_env),
        Command::Keygen { output, json } => keys::keygen(&output, json),
        Command::Key(KeyCommand::Public { keyfile, json }) => keys::public(&keyfile, json),
        Command::Key(KeyCommand::Id { keyfile, json }) => keys::id(&keyfile, json),
        Command::Backup(cmd) => backup::run(cmd, &cancel),
        Command::Demo { dir, size_mib } => demo::run(dir, size_mib, &cancel),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "sqlseal",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { out } => man::write_pages(Cli::command(), &out),
    }
}

/// What `main` needs to know of a failure beyond its message, carried as
/// an error's context: the backup it concerns (a `path` field in the
/// `--json` failure object), an exit code that overrides the usual one,
/// or that the command already printed its own `--json` result. It
/// displays as nothing, so the one-line message stays as it was.
#[derive(Debug, Default)]
pub(crate) struct Failure {
    pub path: Option<PathBuf>,
    pub exit_code: Option<u8>,
    pub printed: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// One line: each cause in the chain that the previous messages do not already say.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// 3 for a backup that failed authentication or integrity checks, else 1
/// (unless the command set another through [`Failure`]).
fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(code) = err.downcast_ref::<Failure>().and_then(|f| f.exit_code) {
        return code;
    }
    integrity_exit_code(err)
}

/// 3 if any cause is an engine error that means a backup failed its checks, else 1.
pub(crate) fn integrity_exit_code(err: &anyhow::Error) -> u8 {
    let integrity = err
        .chain()
        .filter_map(|c| c.downcast_ref::<EngineError>())
        .any(EngineError::is_integrity_failure);
    if integrity { 3 } else { 1 }
}

/// The object every `--json` command prints on stdout when it fails:
/// `{"ok": false, "error": "...", "exit_code": N}`, with `path` where the
/// failure concerns one backup.
#[derive(Serialize)]
pub(crate) struct JsonFailure<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a Path>,
    error: String,
    exit_code: u8,
}

impl<'a> JsonFailure<'a> {
    pub(crate) fn new(path: Option<&'a Path>, error: String, exit_code: u8) -> Self {
        JsonFailure {
            ok: false,
            path,
            error,
            exit_code,
        }
    }
}

/// Exits on a command-line error (or `--help`, `--version`) as clap does;
/// a usage error with `--json` on the line also prints the failure object.
fn usage_exit(e: clap::Error) -> ! {
    if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
        let text = e.to_string();
        // The message is the first paragraph, before the usage line.
        let message = text
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        if let Ok(text) = serde_json::to_string_pretty(&JsonFailure::new(None, message, 2)) {
            println!("{text}");
        }
    }
    e.exit()
}

/// A `--dir` that names no valid location: an error of the run (exit 1,
/// one line), as when the location is found wrong later, not a usage error.
fn invalid_location(e: &clap::Error) -> Option<anyhow::Error> {
    if e.kind() != clap::error::ErrorKind::ValueValidation {
        return None;
    }
    let source = std::error::Error::source(e)?;
    let invalid = source.downcast_ref::<sqlseal_store::StoreError>()?;
    Some(anyhow::anyhow!("{invalid}"))
}

/// A process past its file-size limit (`ulimit -f`, systemd's
/// `LimitFSIZE=`) gets SIGXFSZ, whose default action kills it in the middle
/// of a write, with no message and its temporary files left behind. With a
/// handler installed the write fails with EFBIG instead, as on a full disk,
/// and the command ends with its error after cleaning up.
fn fail_writes_past_the_file_size_limit() {
    // If the handler cannot be installed the default action stays.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
}

fn main() -> ExitCode {
    fail_writes_past_the_file_size_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match invalid_location(&e) {
            Some(err) => return report(&err, std::env::args_os().any(|a| a == "--json")),
            None => usage_exit(e),
        },
    };
    if let Command::Backup(BackupCommand::Info { which, .. } | BackupCommand::Restore { which, .. }) =
        &cli.command
        && which.dir.is_some()
        && !which.latest
        && which.at.is_none()
    {
        let mut cli = Cli::command();
        cli.build();
        let message = "--dir needs --latest (the newest point) or --at TIME (the newest point at or before TIME)";
        usage_exit(cli.error(clap::error::ErrorKind::MissingRequiredArgument, message));
    }
    if let Command::Backup(BackupCommand::Verify { which, .. }) = &cli.command
        && which.dir.is_some()
        && !which.latest
        && !which.all
    {
        let mut cli = Cli::command();
        cli.build();
        let message = "--dir needs --latest (the newest backup) or --all (every backup)";
        let kind = clap::error::ErrorKind::MissingRequiredArgument;
        let error = match cli
            .find_subcommand_mut("backup")
            .and_then(|b| b.find_subcommand_mut("verify"))
        {
            Some(verify) => verify.error(kind, message),
            None => cli.error(kind, message),
        };
        usage_exit(error);
    }
    let json = cli.command.json();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err, json),
    }
}

/// Prints `err` as one line (and, with `--json`, a JSON failure object on
/// stdout unless the command printed its own) and returns its exit code.
fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let line = one_line(err);
    let code = exit_code(err);
    let failure = err.downcast_ref::<Failure>();
    if json && !failure.is_some_and(|f| f.printed) {
        let path = failure.and_then(|f| f.path.as_deref());
        if let Ok(text) = serde_json::to_string_pretty(&JsonFailure::new(path, line.clone(), code))
        {
            println!("{text}");
        }
    }
    eprintln!("error: {line}");
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

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
