//! Conversions between parameter values and their file, environment and
//! display forms. Nothing here knows a particular parameter.

use std::path::PathBuf;

use serde_norway::Value;

use crate::{ByteSize, Duration, ParseDurationError, ParseSizeError, Secret};

/// A value that does not fit its parameter.
///
/// The message is self-contained; [`ParamsError`](crate::ParamsError) adds
/// the parameter's name or environment variable in front.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a duration.
    #[error(transparent)]
    Duration(#[from] ParseDurationError),
    /// Not a size such as `1048576`, `64KiB` or `1MiB`.
    #[error(transparent)]
    Size(#[from] ParseSizeError),
    /// Not `true`, `false`, `1` or `0`.
    #[error("invalid boolean {0:?}; use true or false")]
    Bool(String),
    /// Not a whole number of the parameter's type.
    #[error("invalid integer {input:?}: {reason}")]
    Int {
        /// The text.
        input: String,
        /// Why it does not parse.
        #[source]
        reason: std::num::ParseIntError,
    },
    /// A number outside the parameter's bounds.
    #[error("{value} is out of range; use {}", match (min, max) {
        (Some(min), Some(max)) => format!("{min} to {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "any value".to_owned(),
    })]
    OutOfRange {
        /// The value.
        value: i128,
        /// Inclusive lower bound, if any.
        min: Option<i128>,
        /// Inclusive upper bound, if any.
        max: Option<i128>,
    },
    /// A string that is not one of the parameter's choices.
    #[error("{value:?} is not allowed; use one of {}", choices.join(", "))]
    NotAChoice {
        /// The value.
        value: String,
        /// The allowed values.
        choices: &'static [&'static str],
    },
    /// A config-file value that is not a list, for a list parameter.
    #[error("expected a list, found {0}")]
    NotAList(&'static str),
    /// A config-file value of the wrong type (a list for a string, ...).
    #[error("{0}")]
    Yaml(#[source] serde_norway::Error),
}

/// Where a value being set comes from.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// Environment text (lists comma-separated).
    Text(&'a str),
    /// A value from the config file.
    Yaml(Value),
}

/// The Rust type of a parameter, with its three representations.
pub(crate) trait ParamValue: Sized {
    /// Reads the environment form.
    fn from_text(text: &str) -> Result<Self, ValueError>;

    /// Reads a config-file value: by default any scalar as its text, as
    /// the YAML reader does for string fields (`Location: 2024`).
    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        let text = match value {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => serde_norway::from_value(other).map_err(ValueError::Yaml)?,
        };
        Self::from_text(&text)
    }

    /// The display form; [`from_text`](Self::from_text) reads it back.
    fn to_text(&self) -> String;

    /// The number that a parameter's `min` and `max` bound, if any.
    fn number(&self) -> Option<i128> {
        None
    }
}

/// A parameter's field, as the table of parameters reaches it.
pub(crate) trait Slot {
    /// Parses `input`, checks it against the bounds, and only then stores it.
    fn set(
        &mut self,
        input: Input<'_>,
        min: Option<i128>,
        max: Option<i128>,
    ) -> Result<(), ValueError>;

    /// The display form.
    fn text(&self) -> String;
}

impl<T: ParamValue> Slot for T {
    fn set(
        &mut self,
        input: Input<'_>,
        min: Option<i128>,
        max: Option<i128>,
    ) -> Result<(), ValueError> {
        let value = match input {
            Input::Text(text) => T::from_text(text)?,
            Input::Yaml(value) => T::from_yaml(value)?,
        };
        if let Some(number) = value.number()
            && (min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max))
        {
            return Err(ValueError::OutOfRange {
                value: number,
                min,
                max,
            });
        }
        *self = value;
        Ok(())
    }

    fn text(&self) -> String {
        self.to_text()
    }
}

impl ParamValue for String {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(text.to_owned())
    }

    fn to_text(&self) -> String {
        self.clone()
    }
}

impl ParamValue for Secret {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(Secret::from(text))
    }

    fn to_text(&self) -> String {
        self.expose().to_owned()
    }
}

impl ParamValue for PathBuf {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(PathBuf::from(text))
    }

    fn to_text(&self) -> String {
        self.display().to_string()
    }
}

impl ParamValue for bool {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ValueError::Bool(text.to_owned())),
        }
    }

    /// Only `true` and `false` (not `yes`, `1` or `"true"`) in the file.
    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        serde_norway::from_value(value).map_err(ValueError::Yaml)
    }

    fn to_text(&self) -> String {
        self.to_string()
    }
}

macro_rules! integer_param {
    ($($ty:ty),*) => {$(
        impl ParamValue for $ty {
            fn from_text(text: &str) -> Result<Self, ValueError> {
                text.parse().map_err(|reason| ValueError::Int {
                    input: text.to_owned(),
                    reason,
                })
            }

            fn from_yaml(value: Value) -> Result<Self, ValueError> {
                serde_norway::from_value(value).map_err(ValueError::Yaml)
            }

            fn to_text(&self) -> String {
                self.to_string()
            }

            fn number(&self) -> Option<i128> {
                Some(i128::from(*self))
            }
        }
    )*};
}

integer_param!(i64, u64);

impl ParamValue for ByteSize {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(ByteSize::parse(text)?)
    }

    fn to_text(&self) -> String {
        self.to_string()
    }

    fn number(&self) -> Option<i128> {
        Some(i128::from(self.bytes()))
    }
}

impl ParamValue for Duration {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(Duration::parse(text)?)
    }

    fn to_text(&self) -> String {
        self.to_string()
    }
}

/// Lists: a YAML sequence in the file (or a single value, taken as a list
/// of one: `Location: backups` and `Location: [backups, s3://b/p]` both
/// work), comma-separated in the environment (items are trimmed; empty
/// items are dropped, so an empty string is an empty list).
impl<T: ParamValue> ParamValue for Vec<T> {
    fn from_text(text: &str) -> Result<Self, ValueError> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(T::from_text)
            .collect()
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Sequence(items) => items.into_iter().map(T::from_yaml).collect(),
            Value::Mapping(_) | Value::Tagged(_) => {
                Err(ValueError::NotAList(crate::describe(&value)))
            }
            Value::Null => Ok(Vec::new()),
            scalar => Ok(vec![T::from_yaml(scalar)?]),
        }
    }

    fn to_text(&self) -> String {
        let items: Vec<String> = self.iter().map(ParamValue::to_text).collect();
        items.join(",")
    }
}

/// An enum of a parameter's `choices`, with `as_str`, `Display` and
/// `FromStr` (whose error lists the choices). The generated code uses it.
macro_rules! choices {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The choices, as written in a config file.
            pub const CHOICES: &[&str] = &[$($text),+];

            /// The choice as written in a config file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ValueError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::ValueError::NotAChoice {
                        value: text.to_owned(),
                        choices: Self::CHOICES,
                    }),
                }
            }
        }

        impl $crate::value::ParamValue for $name {
            fn from_text(text: &str) -> Result<Self, $crate::ValueError> {
                text.parse()
            }

            fn to_text(&self) -> String {
                self.as_str().to_owned()
            }
        }
    };
}

pub(crate) use choices;
