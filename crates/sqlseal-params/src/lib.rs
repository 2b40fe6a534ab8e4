//! sqlseal's configuration parameters.
//!
//! Owns: the parameter structs (generated), the one loader (file, then
//! environment, then defaults) and `${VAR}` expansion. Never: checks that
//! paths or keys exist (sqlseal-schedule's settings do).
//!
//! `docs/parameters.yaml` is the single list of parameters; `cargo xtask
//! codegen` turns it into the structs of this crate ([`Params`] with one
//! struct per group: [`Backup`], [`Database`], [`Restore`], [`Status`],
//! [`Log`], [`S3`]), their defaults, an enum for each parameter with fixed
//! choices ([`BackupMethod`], [`RestoreOnFailure`], [`LogFormat`]), and the
//! table [`PARAMS`] (one [`Param`] per parameter: its environment variable,
//! a setter from text and a getter to text). The loader here is the
//! hand-written part.
//!
//! Which item for which job:
//! - [`Params::load`]: the one loader. Defaults, then a YAML config file,
//!   then environment variables; returns [`Loaded`], which remembers where
//!   each value came from ([`Source`]) and lists everything for `config
//!   show` ([`Loaded::entries`]).
//! - [`Param`]: one parameter's name and variable, and setting it from text.
//! - [`Duration`]: durations (`0`, `90s`, `24h`, `1h30m`), over
//!   [`jiff::SignedDuration`].
//! - [`ByteSize`]: sizes in bytes or binary units (`1048576`, `64KiB`, `1MiB`).
//!
//! A config file uses the parameter names as keys, `Group:` then `Field:`.
//! Unknown groups and fields are errors, as are values of the wrong type,
//! not among a parameter's choices, or out of its range. Paths are returned
//! as written, not resolved. In the environment, list values are
//! comma-separated and booleans are `true`/`false` (or `1`/`0`).
//!
//! ```
//! use sqlseal_params::{LogFormat, Params, Source};
//!
//! let yaml = "
//! Backup:
//!   Frequency: 1h30m
//!   Keys: [primary.pem, standby.pem]
//! Database:
//!   Paths: [app.db]
//! ";
//! // Tests pass a closure; a program passes `sqlseal_params::process_env`.
//! let env = |name: &str| (name == "SQLSEAL_LOG_FORMAT").then(|| "json".to_owned());
//!
//! let loaded = Params::load(Some(yaml), env)?;
//! assert_eq!(loaded.params.backup.frequency.as_std().as_secs(), 90 * 60);
//! assert_eq!(loaded.params.backup.keys.len(), 2);
//! assert_eq!(loaded.params.log.format, LogFormat::Json);
//! assert_eq!(loaded.source("Backup.Frequency"), Some(Source::File));
//! assert_eq!(loaded.source("Log.Format"), Some(Source::Env));
//! assert_eq!(loaded.source("Backup.MaxCount"), Some(Source::Default));
//!
//! for entry in loaded.entries() {
//!     println!("{:<20} {:<30} {}", entry.param.name(), entry.value, entry.source);
//! }
//!
//! let err = Params::load(Some("Backup:\n  Colour: blue\n"), |_| None).expect_err("no such field");
//! assert_eq!(err.to_string(), "unknown field Colour in Backup");
//! # Ok::<(), sqlseal_params::ParamsError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde_norway::Value;

mod duration;
mod expand;
mod generated;
mod secret;
mod size;
mod value;

pub use duration::{Duration, ParseDurationError};
pub use expand::{ExpandError, expand_env};
pub use generated::*;
pub use secret::Secret;
pub use size::{ByteSize, ParseSizeError, SIZE_FORMS};
pub use value::ValueError;

use value::{Input, Slot};

/// One parameter: its name, environment variable, and how to set it from
/// text and show it as text. Its type, default and description are in the
/// docs of its field (and in `docs/parameters.md`).
#[derive(Debug)]
pub struct Param {
    name: &'static str,
    env: &'static str,
    secret: bool,
    min: Option<i128>,
    max: Option<i128>,
    get: fn(&Params) -> &dyn Slot,
    set: fn(&mut Params) -> &mut dyn Slot,
}

impl Param {
    /// For the generated table: the parameter `name` (`Group.Field`), read
    /// from `env`, stored where `get` and `set` reach.
    const fn new(
        name: &'static str,
        env: &'static str,
        get: fn(&Params) -> &dyn Slot,
        set: fn(&mut Params) -> &mut dyn Slot,
    ) -> Self {
        Param {
            name,
            env,
            secret: false,
            min: None,
            max: None,
            get,
            set,
        }
    }

    /// Inclusive bounds on an int or size.
    const fn range(self, min: Option<i128>, max: Option<i128>) -> Self {
        Param { min, max, ..self }
    }

    /// Marks the value as secret.
    const fn secret(self) -> Self {
        Param {
            secret: true,
            ..self
        }
    }

    /// `Group.Field`, e.g. `Backup.Frequency`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The group, e.g. `Backup`.
    pub fn group(&self) -> &'static str {
        self.name
            .split_once('.')
            .map_or(self.name, |(group, _)| group)
    }

    /// The field within the group, e.g. `Frequency`.
    pub fn field(&self) -> &'static str {
        self.name
            .split_once('.')
            .map_or(self.name, |(_, field)| field)
    }

    /// The environment variable that overrides it, e.g. `SQLSEAL_BACKUP_FREQUENCY`.
    pub fn env(&self) -> &'static str {
        self.env
    }

    /// Whether the value is a secret that is never shown.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Its value in `params`, in the form [`set`](Self::set) reads (lists
    /// comma-separated).
    pub fn get(&self, params: &Params) -> String {
        (self.get)(params).text()
    }

    /// The value as `config show` prints it: secrets that are set are masked.
    pub fn display_value(&self, params: &Params) -> String {
        let value = self.get(params);
        if self.secret && !value.is_empty() {
            "********".to_owned()
        } else {
            value
        }
    }

    /// Sets it in `params` from text, as an environment variable would.
    /// On error `params` is unchanged.
    ///
    /// # Errors
    ///
    /// [`ValueError`] when `text` does not fit the parameter.
    pub fn set(&self, params: &mut Params, text: &str) -> Result<(), ValueError> {
        self.set_input(params, Input::Text(text))
    }

    fn set_input(&self, params: &mut Params, input: Input<'_>) -> Result<(), ValueError> {
        (self.set)(params).set(input, self.min, self.max)
    }
}

/// Reads a variable from the process environment, for [`Params::load`].
/// A variable whose value is not valid Unicode counts as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where a parameter's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The config file.
    File,
    /// An environment variable.
    Env,
}

/// `default`, `file` or `env`.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
        })
    }
}

/// Parameters together with where each value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The values.
    pub params: Params,
    /// The source of every parameter, by name (`Backup.Frequency`).
    pub sources: BTreeMap<&'static str, Source>,
}

/// One row of [`Loaded::entries`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// The parameter.
    pub param: &'static Param,
    /// Its value as text ([`Param::display_value`]: secrets masked).
    pub value: String,
    /// Where the value came from.
    pub source: Source,
}

impl Loaded {
    /// Where the parameter `name` got its value, or `None` for an unknown name.
    pub fn source(&self, name: &str) -> Option<Source> {
        self.sources.get(name).copied()
    }

    /// Every parameter with its value and source, in the order of
    /// `docs/parameters.yaml`.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        PARAMS.iter().map(|param| Entry {
            param,
            value: param.display_value(&self.params),
            source: self.source(param.name).unwrap_or(Source::Default),
        })
    }
}

/// Why parameters could not be loaded. Each message names the group, field
/// or environment variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The config file is not YAML.
    #[error("config file is not valid YAML: {0}")]
    Syntax(#[source] serde_norway::Error),
    /// The config file is YAML but not a mapping of groups.
    #[error("config file must be a mapping of groups (Backup:, Database:, ...), found {found}")]
    NotAMapping {
        /// What was found instead, e.g. `a list`.
        found: &'static str,
    },
    /// A top-level key that is not a group.
    #[error("unknown group {group} in config file; groups are {}", GROUPS.join(", "))]
    UnknownGroup {
        /// The key.
        group: String,
    },
    /// A group whose value is not a mapping of fields.
    #[error("{group} must be a mapping of fields, found {found}")]
    GroupNotAMapping {
        /// The group.
        group: &'static str,
        /// What was found instead.
        found: &'static str,
    },
    /// A key in a group that is not one of its fields.
    #[error("unknown field {field} in {group}")]
    UnknownField {
        /// The group.
        group: &'static str,
        /// The key.
        field: String,
    },
    /// A config-file value that does not fit its parameter.
    #[error("{name}: {error}")]
    File {
        /// The parameter, e.g. `Backup.Frequency`.
        name: &'static str,
        /// What is wrong with the value.
        #[source]
        error: ValueError,
    },
    /// An environment variable whose value does not fit its parameter.
    #[error("{var} ({name}): {error}")]
    Env {
        /// The variable, e.g. `SQLSEAL_BACKUP_FREQUENCY`.
        var: &'static str,
        /// The parameter it sets.
        name: &'static str,
        /// What is wrong with the value.
        #[source]
        error: ValueError,
    },
}

impl Params {
    /// Loads parameters: the defaults, overridden by the config file `yaml`
    /// (if any), overridden by environment variables looked up with `env`
    /// (pass [`process_env`], or a closure in tests).
    ///
    /// # Errors
    ///
    /// [`ParamsError`] for invalid YAML, an unknown group or field, or a
    /// value that does not fit its parameter, in the file or the environment.
    pub fn load(
        yaml: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Loaded, ParamsError> {
        let mut params = Params::default();
        let mut sources: BTreeMap<&'static str, Source> = PARAMS
            .iter()
            .map(|param| (param.name, Source::Default))
            .collect();
        if let Some(text) = yaml {
            apply_file(&mut params, &mut sources, text)?;
        }
        for param in &PARAMS {
            if let Some(text) = env(param.env) {
                param
                    .set_input(&mut params, Input::Text(&text))
                    .map_err(|error| ParamsError::Env {
                        var: param.env,
                        name: param.name,
                        error,
                    })?;
                sources.insert(param.name, Source::Env);
            }
        }
        Ok(Loaded { params, sources })
    }
}

fn apply_file(
    params: &mut Params,
    sources: &mut BTreeMap<&'static str, Source>,
    text: &str,
) -> Result<(), ParamsError> {
    let groups = match serde_norway::from_str(text).map_err(ParamsError::Syntax)? {
        // An empty file, or one with only comments.
        Value::Null => return Ok(()),
        Value::Mapping(groups) => groups,
        other => {
            return Err(ParamsError::NotAMapping {
                found: describe(&other),
            });
        }
    };
    for (key, fields) in groups {
        let group = match GROUPS.iter().find(|group| key.as_str() == Some(group)) {
            Some(group) => *group,
            None => {
                return Err(ParamsError::UnknownGroup {
                    group: key_text(&key),
                });
            }
        };
        let fields = match fields {
            Value::Mapping(fields) => fields,
            other => {
                return Err(ParamsError::GroupNotAMapping {
                    group,
                    found: describe(&other),
                });
            }
        };
        for (key, value) in fields {
            let param = key
                .as_str()
                .and_then(|field| {
                    PARAMS
                        .iter()
                        .find(|param| param.group() == group && param.field() == field)
                })
                .ok_or_else(|| ParamsError::UnknownField {
                    group,
                    field: key_text(&key),
                })?;
            param
                .set_input(params, Input::Yaml(value))
                .map_err(|error| ParamsError::File {
                    name: param.name,
                    error,
                })?;
            sources.insert(param.name, Source::File);
        }
    }
    Ok(())
}

/// A mapping key as the user wrote it (keys are nearly always strings).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => serde_norway::to_string(other)
            .map(|text| text.trim_end().to_owned())
            .unwrap_or_else(|_| describe(other).to_owned()),
    }
}

pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn load(yaml: &str) -> Loaded {
        Params::load(Some(yaml), |_| None).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
    }

    /// Loads `yaml` with one environment variable set.
    fn load_with(yaml: &str, var: &str, value: &str) -> Result<Loaded, ParamsError> {
        Params::load(Some(yaml), |name| (name == var).then(|| value.to_owned()))
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let loaded = load_with("", "SQLSEAL_S3_SECRETACCESSKEY", "s3cr3t-v4lue").expect("load");
        assert_eq!(loaded.params.s3.secret_access_key.expose(), "s3cr3t-v4lue");
        let shown = format!("{:?}", loaded.params);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("secret_access_key: Secret(set)"), "{shown}");
        assert!(param("S3.SecretAccessKey").is_secret());
    }

    fn param(name: &str) -> &'static Param {
        let found = PARAMS.iter().find(|p| p.name() == name);
        found.unwrap_or_else(|| panic!("{name} exists"))
    }

    #[test]
    fn defaults_come_from_parameters_yaml() {
        let loaded = Params::load(None, |_| None).expect("defaults load");
        let p = &loaded.params;
        assert_eq!(*p, Params::default());
        assert_eq!(p.backup.location, vec![PathBuf::from("./backups")]);
        assert_eq!(p.backup.frequency.as_std().as_secs(), 24 * 3600);
        assert_eq!(p.backup.max_count, 10);
        assert!(p.backup.keys.is_empty() && p.database.paths.is_empty());
        assert_eq!(p.backup.method, BackupMethod::Dbpage);
        assert_eq!(p.backup.chunk_size.bytes(), 1 << 20);
        assert_eq!(p.backup.temp_dir, PathBuf::new());
        assert!(p.restore.auto && p.s3.path_style && !p.s3.allow_http);
        assert_eq!(p.restore.on_failure, RestoreOnFailure::Fail);
        assert_eq!(p.log.format, LogFormat::Text);
        assert_eq!(loaded.sources.len(), PARAMS.len());
        assert!(loaded.sources.values().all(|s| *s == Source::Default));
    }

    #[test]
    fn every_parameter_reads_back_its_own_text() {
        for param in PARAMS.iter() {
            let mut params = Params::default();
            let text = param.get(&params);
            let set = param.set(&mut params, &text);
            set.unwrap_or_else(|e| panic!("{}: {text:?}: {e}", param.name()));
            assert_eq!(params, Params::default(), "{}", param.name());
            let expected_env = format!("SQLSEAL_{}", param.name().to_uppercase().replace('.', "_"));
            assert_eq!(param.env(), expected_env);
            assert!(GROUPS.contains(&param.group()), "{}", param.name());
        }
    }

    /// Text forms, as the file or the environment gives them, and the text
    /// `config show` prints back.
    #[test]
    fn values_are_read_from_the_file_and_the_environment() {
        let cases = [
            ("Backup.Frequency", "1h30m", "1h30m"),
            ("Backup.Frequency", "90m", "1h30m"),
            ("Backup.Frequency", "0", "0s"),
            ("Backup.ChunkSize", "64KiB", "64KiB"),
            ("Backup.ChunkSize", "4 MiB", "4MiB"),
            ("Backup.ChunkSize", "65536", "64KiB"),
            ("Backup.MaxCount", "7", "7"),
            ("Backup.Method", "backup-api", "backup-api"),
            ("Restore.Auto", "false", "false"),
            ("Backup.Location", "2024", "2024"),
            ("Database.Paths", "[x.db, y.db]", "x.db,y.db"),
        ];
        for (name, text, shown) in cases {
            let (group, field) = name.split_once('.').expect("Group.Field");
            let loaded = load(&format!("{group}:\n  {field}: {text}\n"));
            assert_eq!(param(name).get(&loaded.params), shown, "{name}: {text}");
            assert_eq!(loaded.source(name), Some(Source::File));
        }
        #[rustfmt::skip]
        let env_cases = [
            ("Backup.ChunkSize", "4 MiB", "4MiB"),
            ("Database.Paths", " x.db, y.db ,,", "x.db,y.db"),
            ("Database.Paths", "", ""),
            ("Restore.Auto", "0", "false"),
            ("Restore.Auto", "TRUE", "true"),
            ("Log.Format", "json", "json"),
        ];
        for (name, text, shown) in env_cases {
            let loaded = load_with("", param(name).env(), text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(param(name).get(&loaded.params), shown, "{name}: {text}");
            assert_eq!(loaded.source(name), Some(Source::Env));
        }
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_the_defaults() {
        let yaml = "Backup:\n  Frequency: 5m\n  TempDir: /var/tmp\n  Method: vacuum\n\
                    Database:\n  Paths: [z.db]\n";
        let loaded = load_with(yaml, "SQLSEAL_BACKUP_TEMPDIR", "").expect("loads");
        let p = &loaded.params;
        assert_eq!(p.backup.frequency.as_std().as_secs(), 300);
        assert_eq!(p.backup.method, BackupMethod::Vacuum);
        assert_eq!(p.backup.temp_dir, PathBuf::new());
        assert_eq!(p.database.paths, [PathBuf::from("z.db")]);
        assert_eq!(loaded.source("Backup.TempDir"), Some(Source::Env));
        assert_eq!(loaded.source("Backup.Frequency"), Some(Source::File));
        assert_eq!(loaded.source("Log.Format"), Some(Source::Default));
        assert_eq!(loaded.source("No.Such"), None);
        let rows: Vec<Entry> = loaded.entries().collect();
        assert_eq!(rows.len(), PARAMS.len());
        assert_eq!(rows[0].param.name(), "Backup.Location");
        let freq = &rows[1];
        assert_eq!(
            (
                freq.param.name(),
                freq.value.as_str(),
                freq.source.to_string()
            ),
            ("Backup.Frequency", "5m", "file".to_owned())
        );
    }

    #[test]
    fn secrets_are_masked_when_set() {
        let loaded = load_with("", "SQLSEAL_S3_SECRETACCESSKEY", "hunter2").expect("loads");
        let row = loaded
            .entries()
            .find(|e| e.param.is_secret())
            .expect("a secret");
        assert_eq!(
            (row.param.name(), row.value.as_str()),
            ("S3.SecretAccessKey", "********")
        );
        let row = load("")
            .entries()
            .find(|e| e.param.is_secret())
            .expect("a secret");
        assert_eq!(row.value, "");
    }

    /// Each error names the group, field, parameter or variable at fault;
    /// `...` ends a message that continues with the YAML reader's words.
    #[test]
    fn errors_name_what_is_at_fault() {
        #[rustfmt::skip]
        let file_cases = [
            ("Backup:\n  Colour: blue\n", "unknown field Colour in Backup"),
            ("Database:\n  Location: x\n", "unknown field Location in Database"),
            ("Backup:\n  location: x\n", "unknown field location in Backup"),
            ("Backup:\n  1: x\n", "unknown field 1 in Backup"),
            ("Colour:\n  Hue: red\n", "unknown group Colour in config file; groups are Backup, Database, ..."),
            ("- Backup\n", "config file must be a mapping of groups (Backup:, Database:, ...), found a list"),
            ("Backup: [1]\n", "Backup must be a mapping of fields, found a list"),
            ("Backup:\n", "Backup must be a mapping of fields, found nothing"),
            ("Backup:\n  Location: a\n  Location: b\n", "config file is not valid YAML: Backup: duplicate entry with key \"Location\"..."),
            ("Backup:\n  Location: [\n", "config file is not valid YAML: ..."),
            ("Backup:\n  Frequency: soon\n", "Backup.Frequency: invalid duration \"soon\": write e.g. 0, 500ms, 90s, 15m, 24h or 1h30m"),
            ("Backup:\n  Frequency: 90\n", "Backup.Frequency: invalid duration \"90\": missing unit after \"90\" (only 0 may omit it); use ns, us, ms, s, m or h"),
            ("Backup:\n  Method: gzip\n", "Backup.Method: \"gzip\" is not allowed; use one of dbpage, backup-api, vacuum"),
            ("Backup:\n  ChunkSize: 100\n", "Backup.ChunkSize: 100 is out of range; use 4096 to 16777216"),
            ("Backup:\n  ChunkSize: 32MiB\n", "Backup.ChunkSize: 33554432 is out of range; use 4096 to 16777216"),
            ("Backup:\n  MaxCount: -1\n", "Backup.MaxCount: invalid value: integer `-1`..."),
            ("Backup:\n  Keys: {a: b}\n", "Backup.Keys: expected a list, found a mapping"),
            ("Restore:\n  Auto: yes\n", "Restore.Auto: invalid type: string \"yes\"..."),
            ("Status:\n  File:\n", "Status.File: invalid type: unit value..."),
        ];
        #[rustfmt::skip]
        let env_cases = [
            ("SQLSEAL_BACKUP_FREQUENCY", "-1h", "SQLSEAL_BACKUP_FREQUENCY (Backup.Frequency): invalid duration \"-1h\": negative durations are not allowed"),
            ("SQLSEAL_LOG_FORMAT", "xml", "SQLSEAL_LOG_FORMAT (Log.Format): \"xml\" is not allowed; use one of text, json"),
            ("SQLSEAL_BACKUP_MAXCOUNT", "ten", "SQLSEAL_BACKUP_MAXCOUNT (Backup.MaxCount): invalid integer \"ten\": ..."),
            ("SQLSEAL_RESTORE_AUTO", "maybe", "SQLSEAL_RESTORE_AUTO (Restore.Auto): invalid boolean \"maybe\"; use true or false"),
            ("SQLSEAL_BACKUP_CHUNKSIZE", "1MB", "SQLSEAL_BACKUP_CHUNKSIZE (Backup.ChunkSize): invalid size \"1MB\": unit \"MB\" is ambiguous (1000 or 1024?); write bytes (1048576) or a whole number with B, KiB, MiB, GiB or TiB (64KiB, 1MiB, 4 MiB)"),
        ];
        let errors = file_cases
            .map(|(yaml, expected)| (load_with(yaml, "", ""), expected))
            .into_iter()
            .chain(env_cases.map(|(var, value, expected)| (load_with("", var, value), expected)));
        for (result, expected) in errors {
            let message = match result {
                Ok(loaded) => panic!("{expected}: loaded {:?}", loaded.params),
                Err(e) => e.to_string(),
            };
            match expected.strip_suffix("...") {
                Some(start) => assert!(message.starts_with(start), "{message}"),
                None => assert_eq!(message, expected),
            }
        }
    }

    #[test]
    fn bounds_say_what_is_allowed() {
        let e = |min, max| ValueError::OutOfRange { value: 9, min, max }.to_string();
        assert_eq!(e(Some(10), None), "9 is out of range; use at least 10");
        assert_eq!(e(None, Some(8)), "9 is out of range; use at most 8");
    }

    #[test]
    fn empty_files_give_defaults() {
        for yaml in ["", "# only a comment\n", "---\n"] {
            assert_eq!(load(yaml).params, Params::default(), "{yaml:?}");
        }
    }

    /// The example in docs/parameters.md is a valid config file that sets
    /// every parameter to its default.
    #[test]
    fn documented_example_loads() {
        let doc = include_str!("../../../docs/parameters.md");
        let (_, example) = doc
            .split_once("```yaml\n")
            .expect("the doc has a YAML example");
        let (example, _) = example
            .split_once("```")
            .expect("the YAML example is closed");
        let loaded = load(example);
        assert_eq!(loaded.params, Params::default());
        assert!(loaded.sources.values().all(|s| *s == Source::File));
    }

    #[test]
    fn set_from_text_checks_before_storing() {
        let method = param("Backup.Method");
        assert_eq!(BackupMethod::CHOICES, ["dbpage", "backup-api", "vacuum"]);
        let mut params = Params::default();
        assert!(method.set(&mut params, "gzip").is_err());
        assert_eq!(params.backup.method, BackupMethod::Dbpage);
        method.set(&mut params, "backup-api").expect("a choice");
        assert_eq!(params.backup.method, BackupMethod::BackupApi);
        assert_eq!(method.get(&params), "backup-api");
    }
}
