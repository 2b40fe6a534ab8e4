//! sqlseal's configuration parameters.
//!
//! `docs/parameters.yaml` is the single list of parameters; `cargo xtask
//! codegen` turns it into the structs of this crate ([`Params`] with one
//! struct per group: [`Backup`], [`Database`], [`Restore`], [`Status`],
//! [`Log`], [`S3`]), their defaults, and a table of metadata ([`PARAMS`], one
//! [`Param`] per parameter) with the environment variable, a setter from text
//! and a getter to text. The loader here is the hand-written part.
//!
//! Which item for which job:
//! - [`Params::load`]: defaults, then a YAML config file, then environment
//!   variables; returns [`Loaded`], which remembers where each value came
//!   from ([`Source`]) and lists everything for `config show`
//!   ([`Loaded::entries`]).
//! - [`Param`] / [`find_param`]: one parameter's name, variable, type and
//!   description, and setting it from text (command-line overrides).
//! - [`Duration`]: Go-style durations (`90s`, `24h`, `1h30m`).
//! - [`ByteSize`]: sizes in bytes or binary units (`1048576`, `64KiB`, `1MiB`).
//!
//! A config file uses the parameter names as keys, `Group:` then `Field:`.
//! Unknown groups and fields are errors, as are values of the wrong type,
//! not among a parameter's choices, or out of its range. Paths are returned
//! as written, not resolved. In the environment, list values are
//! comma-separated and booleans are `true`/`false` (or `1`/`0`).
//!
//! ```
//! use sqlseal_params::{Params, Source};
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
//! assert_eq!(loaded.params.log.format, "json");
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
mod generated;
mod size;
mod value;

pub use duration::{Duration, ParseDurationError};
pub use generated::*;
pub use size::{ByteSize, ParseSizeError, SIZE_FORMS};
pub use value::ValueError;

use value::Input;

/// The type of a parameter, as named in `docs/parameters.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParamType {
    /// Text (`String`).
    String,
    /// `true` or `false`.
    Bool,
    /// A whole number (`u64` or `i64`).
    Int,
    /// A Go-style [`Duration`].
    Duration,
    /// A [`ByteSize`]: bytes, or a whole number with a binary unit (`1MiB`).
    Size,
    /// A path (`PathBuf`).
    Filename,
    /// A list of text.
    StringSlice,
    /// A list of paths.
    FilenameSlice,
}

impl ParamType {
    /// The name used in `docs/parameters.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Bool => "bool",
            ParamType::Int => "int",
            ParamType::Duration => "duration",
            ParamType::Size => "size",
            ParamType::Filename => "filename",
            ParamType::StringSlice => "stringSlice",
            ParamType::FilenameSlice => "filenameSlice",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One parameter: its name, environment variable, type, description, and
/// how to set it from text and show it as text.
pub struct Param {
    name: &'static str,
    env: &'static str,
    kind: ParamType,
    description: &'static str,
    choices: &'static [&'static str],
    secret: bool,
    set: fn(&mut Params, Input<'_>) -> Result<(), ValueError>,
    get: fn(&Params) -> String,
}

impl Param {
    /// `Group.Field`, e.g. `Backup.Frequency`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the value is a secret that is never shown.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// The value as `config show` prints it: secrets that are set are masked.
    pub fn display_value(&self, params: &Params) -> String {
        let value = (self.get)(params);
        if self.secret && !value.is_empty() {
            "********".to_owned()
        } else {
            value
        }
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

    /// Its type.
    pub fn kind(&self) -> ParamType {
        self.kind
    }

    /// What it does.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The allowed values, or empty when any value of its type is allowed.
    pub fn choices(&self) -> &'static [&'static str] {
        self.choices
    }

    /// Its value in `params`, in the form [`set`](Self::set) reads (lists
    /// comma-separated).
    pub fn get(&self, params: &Params) -> String {
        (self.get)(params)
    }

    /// Its default value, as text.
    pub fn default_value(&self) -> String {
        (self.get)(&Params::default())
    }

    /// Sets it in `params` from text, as an environment variable would.
    /// On error `params` is unchanged.
    ///
    /// # Errors
    ///
    /// [`ValueError`] when `text` does not fit the parameter.
    pub fn set(&self, params: &mut Params, text: &str) -> Result<(), ValueError> {
        (self.set)(params, Input::Text(text))
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.name)
            .field("env", &self.env)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The parameter called `name` (`Group.Field`, case-sensitive).
pub fn find_param(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|param| param.name == name)
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

impl Source {
    /// `default`, `file` or `env`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
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
    Syntax(serde_norway::Error),
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
                (param.set)(&mut params, Input::Text(&text)).map_err(|error| ParamsError::Env {
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
            (param.set)(params, Input::Yaml(value)).map_err(|error| ParamsError::File {
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

fn describe(value: &Value) -> &'static str {
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

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(yaml: &str) -> Loaded {
        Params::load(Some(yaml), no_env).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
    }

    fn load_err(yaml: &str) -> String {
        match Params::load(Some(yaml), no_env) {
            Ok(loaded) => panic!("{yaml}\nshould fail, got {:?}", loaded.params),
            Err(e) => e.to_string(),
        }
    }

    fn env_err(var: &'static str, value: &'static str) -> String {
        let env = |name: &str| (name == var).then(|| value.to_owned());
        match Params::load(None, env) {
            Ok(loaded) => panic!("{var}={value} should fail, got {:?}", loaded.params),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_come_from_parameters_yaml() {
        let loaded = Params::load(None, no_env).expect("defaults load");
        let p = &loaded.params;
        assert_eq!(*p, Params::default());
        assert_eq!(p.backup.location, PathBuf::from("./backups"));
        assert_eq!(
            p.backup.frequency.as_std(),
            std::time::Duration::from_secs(24 * 3600)
        );
        assert_eq!(p.backup.max_count, 10);
        assert!(p.backup.keys.is_empty() && p.backup.recipients.is_empty());
        assert!(p.backup.trust.is_empty() && p.database.paths.is_empty());
        assert_eq!(p.backup.method, "dbpage");
        assert_eq!(p.backup.chunk_size.bytes(), 1 << 20);
        assert_eq!(p.backup.temp_dir, PathBuf::new());
        assert!(p.restore.auto);
        assert_eq!(p.restore.on_failure, "fail");
        assert_eq!(p.status.file, PathBuf::new());
        assert_eq!(p.log.format, "text");
        assert_eq!(loaded.sources.len(), PARAMS.len());
        assert!(loaded.sources.values().all(|s| *s == Source::Default));
    }

    #[test]
    fn every_parameter_reads_back_its_own_text() {
        for param in &PARAMS {
            let mut params = Params::default();
            let text = param.default_value();
            param
                .set(&mut params, &text)
                .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", param.name()));
            assert_eq!(params, Params::default(), "{}", param.name());
            assert_eq!(find_param(param.name()).map(Param::env), Some(param.env()));
            let expected_env = format!("SQLSEAL_{}", param.name().to_uppercase().replace('.', "_"));
            assert_eq!(param.env(), expected_env);
            assert!(GROUPS.contains(&param.group()), "{}", param.name());
            assert!(!param.description().is_empty());
        }
        assert!(find_param("Backup.Colour").is_none());
    }

    #[test]
    fn sizes_take_binary_units_in_the_file_and_the_environment() {
        let loaded = load("Backup:\n  ChunkSize: 64KiB\n");
        assert_eq!(loaded.params.backup.chunk_size.bytes(), 64 << 10);
        let env = |name: &str| (name == "SQLSEAL_BACKUP_CHUNKSIZE").then(|| "4 MiB".to_owned());
        let loaded = Params::load(None, env).expect("4 MiB is a size");
        assert_eq!(loaded.params.backup.chunk_size.bytes(), 4 << 20);
        let shown = find_param("Backup.ChunkSize")
            .expect("ChunkSize exists")
            .get(&loaded.params);
        assert_eq!(shown, "4MiB");
        let env = |name: &str| (name == "SQLSEAL_BACKUP_CHUNKSIZE").then(|| "1MB".to_owned());
        let err = Params::load(None, env).expect_err("1MB is ambiguous");
        assert_eq!(
            err.to_string(),
            "SQLSEAL_BACKUP_CHUNKSIZE (Backup.ChunkSize): invalid size \"1MB\": unit \"MB\" is ambiguous (1000 or 1024?); write bytes (1048576) or a whole number with B, KiB, MiB, GiB or TiB (64KiB, 1MiB, 4 MiB)"
        );
        let err = Params::load(Some("Backup:\n  ChunkSize: 32MiB\n"), |_| None)
            .expect_err("above the maximum");
        assert_eq!(
            err.to_string(),
            "Backup.ChunkSize: 33554432 is out of range; use 4096 to 16777216"
        );
    }

    #[test]
    fn file_values_override_defaults_and_are_marked_file() {
        let loaded = load(
            "Backup:\n  Location: /srv/backups\n  Frequency: 15m\n  MaxCount: 0\n  \
             Keys: [a.pem, b.pem]\n  Method: vacuum\n  ChunkSize: 4096\n\
             Database:\n  Paths:\n    - one.db\n    - two.db\nRestore:\n  Auto: false\n",
        );
        let p = &loaded.params;
        assert_eq!(p.backup.location, PathBuf::from("/srv/backups"));
        assert_eq!(p.backup.frequency.as_std().as_secs(), 900);
        assert_eq!(p.backup.max_count, 0);
        assert_eq!(
            p.backup.keys,
            [PathBuf::from("a.pem"), PathBuf::from("b.pem")]
        );
        assert_eq!(p.backup.method, "vacuum");
        assert_eq!(p.backup.chunk_size.bytes(), 4096);
        assert_eq!(p.database.paths.len(), 2);
        assert!(!p.restore.auto);
        for name in [
            "Backup.Location",
            "Backup.Keys",
            "Database.Paths",
            "Restore.Auto",
        ] {
            assert_eq!(loaded.source(name), Some(Source::File), "{name}");
        }
        for name in ["Backup.Trust", "Log.Format", "Restore.OnFailure"] {
            assert_eq!(loaded.source(name), Some(Source::Default), "{name}");
        }
        assert_eq!(loaded.source("No.Such"), None);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |name: &str| match name {
            "SQLSEAL_BACKUP_FREQUENCY" => Some("1h30m".to_owned()),
            "SQLSEAL_DATABASE_PATHS" => Some("x.db, y.db".to_owned()),
            "SQLSEAL_RESTORE_AUTO" => Some("0".to_owned()),
            "SQLSEAL_BACKUP_TEMPDIR" => Some(String::new()),
            _ => None,
        };
        let yaml = "Backup:\n  Frequency: 5m\n  TempDir: /var/tmp\nDatabase:\n  Paths: [z.db]\n";
        let loaded = Params::load(Some(yaml), env).expect("loads");
        let p = &loaded.params;
        assert_eq!(p.backup.frequency.as_std().as_secs(), 5400);
        assert_eq!(
            p.database.paths,
            [PathBuf::from("x.db"), PathBuf::from("y.db")]
        );
        assert!(!p.restore.auto);
        assert_eq!(p.backup.temp_dir, PathBuf::new());
        for name in [
            "Backup.Frequency",
            "Database.Paths",
            "Restore.Auto",
            "Backup.TempDir",
        ] {
            assert_eq!(loaded.source(name), Some(Source::Env), "{name}");
        }
        let rows: Vec<Entry> = loaded.entries().collect();
        assert_eq!(rows.len(), PARAMS.len());
        assert_eq!(rows[0].param.name(), "Backup.Location");
        let paths = rows
            .iter()
            .find(|r| r.param.name() == "Database.Paths")
            .expect("listed");
        assert_eq!(
            (paths.value.as_str(), paths.source),
            ("x.db,y.db", Source::Env)
        );
        let freq = rows
            .iter()
            .find(|r| r.param.name() == "Backup.Frequency")
            .expect("listed");
        assert_eq!(
            (freq.value.as_str(), freq.source.as_str()),
            ("1h30m", "env")
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        assert_eq!(
            load_err("Backup:\n  Colour: blue\n"),
            "unknown field Colour in Backup"
        );
        assert_eq!(
            load_err("Database:\n  Location: x\n"),
            "unknown field Location in Database"
        );
        assert_eq!(
            load_err("Backup:\n  location: x\n"),
            "unknown field location in Backup"
        );
        assert_eq!(load_err("Backup:\n  1: x\n"), "unknown field 1 in Backup");
        assert_eq!(
            load_err("Colour:\n  Hue: red\n"),
            "unknown group Colour in config file; groups are Backup, Database, Restore, Status, Log, S3"
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = load_err("Backup:\n  Frequency: soon\n");
        assert!(
            e.starts_with("Backup.Frequency: invalid duration \"soon\": "),
            "{e}"
        );
        let e = load_err("Backup:\n  Frequency: 90\n");
        assert!(
            e.starts_with("Backup.Frequency: invalid duration \"90\": missing unit"),
            "{e}"
        );
        assert_eq!(
            load_err("Backup:\n  Method: gzip\n"),
            "Backup.Method: \"gzip\" is not allowed; use one of dbpage, backup-api, vacuum"
        );
        assert_eq!(
            load_err("Backup:\n  ChunkSize: 100\n"),
            "Backup.ChunkSize: 100 is out of range; use 4096 to 16777216"
        );
        let e = load_err("Backup:\n  MaxCount: -1\n");
        assert!(
            e.starts_with("Backup.MaxCount: invalid value: integer `-1`"),
            "{e}"
        );
        let e = load_err("Backup:\n  Keys: a.pem\n");
        assert!(
            e.starts_with("Backup.Keys: invalid type: string \"a.pem\", expected a list"),
            "{e}"
        );
        let e = load_err("Restore:\n  Auto: yes\n");
        assert!(
            e.starts_with("Restore.Auto: invalid type: string \"yes\""),
            "{e}"
        );
        let e = load_err("Status:\n  File:\n");
        assert!(
            e.starts_with("Status.File: invalid type: unit value"),
            "{e}"
        );
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let e = env_err("SQLSEAL_BACKUP_FREQUENCY", "-1h");
        assert_eq!(
            e,
            "SQLSEAL_BACKUP_FREQUENCY (Backup.Frequency): invalid duration \"-1h\": negative durations are not allowed"
        );
        let e = env_err("SQLSEAL_LOG_FORMAT", "xml");
        assert_eq!(
            e,
            "SQLSEAL_LOG_FORMAT (Log.Format): \"xml\" is not allowed; use one of text, json"
        );
        let e = env_err("SQLSEAL_BACKUP_MAXCOUNT", "ten");
        assert!(
            e.starts_with("SQLSEAL_BACKUP_MAXCOUNT (Backup.MaxCount): invalid integer \"ten\""),
            "{e}"
        );
        let e = env_err("SQLSEAL_RESTORE_AUTO", "maybe");
        assert_eq!(
            e,
            "SQLSEAL_RESTORE_AUTO (Restore.Auto): invalid boolean \"maybe\"; use true or false"
        );
    }

    #[test]
    fn file_shape_errors() {
        let e = load_err("- Backup\n");
        assert_eq!(
            e,
            "config file must be a mapping of groups (Backup:, Database:, ...), found a list"
        );
        assert_eq!(
            load_err("Backup: [1]\n"),
            "Backup must be a mapping of fields, found a list"
        );
        assert_eq!(
            load_err("Backup:\n"),
            "Backup must be a mapping of fields, found nothing"
        );
        let e = load_err("Backup:\n  Location: a\n  Location: b\n");
        assert!(e.starts_with("config file is not valid YAML: "), "{e}");
        assert!(e.contains("duplicate"), "{e}");
        let e = load_err("Backup:\n  Location: [\n");
        assert!(e.starts_with("config file is not valid YAML: "), "{e}");
    }

    #[test]
    fn empty_files_give_defaults() {
        for yaml in ["", "# only a comment\n", "---\n"] {
            assert_eq!(load(yaml).params, Params::default(), "{yaml:?}");
        }
    }

    #[test]
    fn scalars_in_string_fields_are_text() {
        let loaded = load("Backup:\n  Location: 2024\n  Frequency: 0\n");
        assert_eq!(loaded.params.backup.location, PathBuf::from("2024"));
        assert!(loaded.params.backup.frequency.is_zero());
    }

    /// The derived `Deserialize` and the loader read files the same way.
    #[test]
    fn derived_deserialize_agrees_with_the_loader() {
        let yaml = "Backup:\n  Frequency: 1h\n  Keys: [k.pem]\n  ChunkSize: 65536\n\
                    Log:\n  Format: json\n";
        let derived: Params = serde_norway::from_str(yaml).expect("derive reads it");
        assert_eq!(derived, load(yaml).params);

        let e = serde_norway::from_str::<Params>("Backup:\n  Colour: blue\n").expect_err("unknown");
        assert!(e.to_string().contains("unknown field `Colour`"), "{e}");
        let e = serde_norway::from_str::<Params>("Backup:\n  Method: gzip\n").expect_err("choice");
        assert!(e.to_string().contains("\"gzip\" is not allowed"), "{e}");
        let e = serde_norway::from_str::<Params>("Backup:\n  ChunkSize: 1\n").expect_err("range");
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = serde_norway::from_str::<Params>("Backup:\n  Frequency: soon\n").expect_err("dur");
        assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
    }

    /// The example in docs/parameters.md is a valid config file that sets
    /// every parameter to its default.
    #[test]
    fn documented_example_loads() {
        let doc = include_str!("../../../docs/parameters.md");
        let start = doc.find("```yaml\n").expect("the doc has a YAML example") + "```yaml\n".len();
        let len = doc[start..]
            .find("```")
            .expect("the YAML example is closed");
        let loaded = load(&doc[start..start + len]);
        assert_eq!(loaded.params, Params::default());
        assert!(loaded.sources.values().all(|s| *s == Source::File));
        let derived: Params = serde_norway::from_str(&doc[start..start + len]).expect("derive");
        assert_eq!(derived, Params::default());
    }

    #[test]
    fn set_from_text_checks_before_storing() {
        let method = find_param("Backup.Method").expect("exists");
        assert_eq!(method.kind(), ParamType::String);
        assert_eq!(method.choices(), ["dbpage", "backup-api", "vacuum"]);
        let mut params = Params::default();
        assert!(method.set(&mut params, "gzip").is_err());
        assert_eq!(params.backup.method, "dbpage");
        method.set(&mut params, "backup-api").expect("a choice");
        assert_eq!(method.get(&params), "backup-api");
    }
}
