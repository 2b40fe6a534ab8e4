//! Conversions between parameter values and their file, environment and
//! display forms. The generated code calls these; nothing here knows a
//! particular parameter.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_norway::Value;

use crate::{ByteSize, Duration, ParseDurationError, ParseSizeError};

/// A value that does not fit its parameter.
///
/// The message is self-contained; [`ParamsError`](crate::ParamsError) adds
/// the parameter's name or environment variable in front.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a Go-style duration.
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
        reason: std::num::ParseIntError,
    },
    /// A number outside the parameter's bounds.
    #[error("{value} is out of range; use {}", range_text(*min, *max))]
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
    /// A config-file value of the wrong shape (a list for a string, ...).
    #[error("{0}")]
    Yaml(serde_norway::Error),
}

fn range_text(min: Option<i128>, max: Option<i128>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("{min} to {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "any value".to_owned(),
    }
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
    /// Reads the config-file form (used by the derived `Deserialize` too).
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;

    /// Reads a config-file value, keeping typed errors where there are any.
    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        Self::deserialize_param(value).map_err(ValueError::Yaml)
    }

    /// Reads the environment form.
    fn from_text(text: &str) -> Result<Self, ValueError>;

    /// The display form; [`from_text`](Self::from_text) reads it back.
    fn to_text(&self) -> String;
}

/// `deserialize_with` target for every generated field.
pub(crate) fn deserialize_param<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: ParamValue,
{
    T::deserialize_param(deserializer)
}

/// `deserialize_with` body for fields with choices or bounds.
pub(crate) fn deserialize_checked<'de, D, T>(
    deserializer: D,
    check: impl Fn(&T) -> Result<(), ValueError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: ParamValue,
{
    let value = T::deserialize_param(deserializer)?;
    check(&value).map_err(de::Error::custom)?;
    Ok(value)
}

/// Parses `input`, checks it, and only then stores it in `slot`.
pub(crate) fn set_param<T: ParamValue>(
    slot: &mut T,
    input: Input<'_>,
    check: impl Fn(&T) -> Result<(), ValueError>,
) -> Result<(), ValueError> {
    let value = match input {
        Input::Text(text) => T::from_text(text)?,
        Input::Yaml(value) => T::from_yaml(value)?,
    };
    check(&value)?;
    *slot = value;
    Ok(())
}

/// The display form of a value.
pub(crate) fn to_text<T: ParamValue>(value: &T) -> String {
    value.to_text()
}

/// The check of parameters without choices or bounds.
pub(crate) fn no_check<T>(_: &T) -> Result<(), ValueError> {
    Ok(())
}

pub(crate) fn check_choice(
    value: &str,
    choices: &'static [&'static str],
) -> Result<(), ValueError> {
    if choices.contains(&value) {
        Ok(())
    } else {
        Err(ValueError::NotAChoice {
            value: value.to_owned(),
            choices,
        })
    }
}

pub(crate) fn check_range<T: Copy + Into<i128>>(
    value: &T,
    min: Option<i128>,
    max: Option<i128>,
) -> Result<(), ValueError> {
    let value: i128 = (*value).into();
    if min.is_some_and(|min| value < min) || max.is_some_and(|max| value > max) {
        Err(ValueError::OutOfRange { value, min, max })
    } else {
        Ok(())
    }
}

/// Accepts any scalar as text, as the YAML text reader does for string
/// fields: `Location: 2024` is the directory "2024".
struct TextVisitor;

/// A config-file scalar as text; `serde_norway::Value` has already typed
/// `2024` as a number, which its `deserialize_string` would refuse.
fn scalar_text(value: Value) -> Result<String, ValueError> {
    match value {
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => other
            .deserialize_string(TextVisitor)
            .map_err(ValueError::Yaml),
    }
}

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

impl ParamValue for String {
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(TextVisitor)
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        scalar_text(value)
    }

    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(text.to_owned())
    }

    fn to_text(&self) -> String {
        self.clone()
    }
}

impl ParamValue for PathBuf {
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_string(TextVisitor)
            .map(PathBuf::from)
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        scalar_text(value).map(PathBuf::from)
    }

    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(PathBuf::from(text))
    }

    fn to_text(&self) -> String {
        self.display().to_string()
    }
}

impl ParamValue for bool {
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bool::deserialize(deserializer)
    }

    fn from_text(text: &str) -> Result<Self, ValueError> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ValueError::Bool(text.to_owned())),
        }
    }

    fn to_text(&self) -> String {
        self.to_string()
    }
}

macro_rules! integer_param {
    ($($ty:ty),*) => {$(
        impl ParamValue for $ty {
            fn deserialize_param<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                <$ty>::deserialize(deserializer)
            }

            fn from_text(text: &str) -> Result<Self, ValueError> {
                text.parse().map_err(|reason| ValueError::Int {
                    input: text.to_owned(),
                    reason,
                })
            }

            fn to_text(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

integer_param!(i64, u64);

impl ParamValue for ByteSize {
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ByteSize::deserialize(deserializer)
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match &value {
            Value::String(text) => Ok(ByteSize::parse(text)?),
            Value::Number(number) => Ok(ByteSize::parse(&number.to_string())?),
            _ => Self::deserialize_param(value).map_err(ValueError::Yaml),
        }
    }

    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(ByteSize::parse(text)?)
    }

    fn to_text(&self) -> String {
        self.to_string()
    }
}

impl ParamValue for Duration {
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Duration::deserialize(deserializer)
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match &value {
            Value::String(text) => Ok(Duration::parse(text)?),
            Value::Number(number) => Ok(Duration::parse(&number.to_string())?),
            _ => Self::deserialize_param(value).map_err(ValueError::Yaml),
        }
    }

    fn from_text(text: &str) -> Result<Self, ValueError> {
        Ok(Duration::parse(text)?)
    }

    fn to_text(&self) -> String {
        self.to_string()
    }
}

/// Lists: a YAML sequence in the file, comma-separated in the environment
/// (items are trimmed; empty items are dropped, so an empty string is an
/// empty list).
impl<T: ParamValue> ParamValue for Vec<T> {
    fn deserialize_param<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Item<T>(PhantomData<T>);

        impl<'de, T: ParamValue> DeserializeSeed<'de> for Item<T> {
            type Value = T;

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
                T::deserialize_param(deserializer)
            }
        }

        struct ListVisitor<T>(PhantomData<T>);

        impl<'de, T: ParamValue> Visitor<'de> for ListVisitor<T> {
            type Value = Vec<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element_seed(Item(PhantomData))? {
                    items.push(item);
                }
                Ok(items)
            }
        }

        deserializer.deserialize_seq(ListVisitor(PhantomData))
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Sequence(items) => items.into_iter().map(T::from_yaml).collect(),
            other => Self::deserialize_param(other).map_err(ValueError::Yaml),
        }
    }

    fn from_text(text: &str) -> Result<Self, ValueError> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(T::from_text)
            .collect()
    }

    fn to_text(&self) -> String {
        self.iter()
            .map(ParamValue::to_text)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_from_text_are_trimmed_and_skip_empty_items() {
        let list = Vec::<PathBuf>::from_text(" a.pem, b.pem ,,").expect("list");
        assert_eq!(list, [PathBuf::from("a.pem"), PathBuf::from("b.pem")]);
        assert_eq!(list.to_text(), "a.pem,b.pem");
        assert!(Vec::<String>::from_text("").expect("empty").is_empty());
    }

    #[test]
    fn booleans_from_text() {
        for (text, value) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("0", false),
        ] {
            assert_eq!(bool::from_text(text).expect(text), value, "{text}");
        }
        let e = bool::from_text("yes please").expect_err("not a boolean");
        assert_eq!(
            e.to_string(),
            "invalid boolean \"yes please\"; use true or false"
        );
    }

    #[test]
    fn integers_from_text() {
        assert_eq!(u64::from_text("4096").expect("number"), 4096);
        let e = u64::from_text("-1").expect_err("negative");
        assert!(e.to_string().starts_with("invalid integer \"-1\": "), "{e}");
        assert_eq!(i64::from_text("-1").expect("signed"), -1);
    }

    #[test]
    fn checks_say_what_is_allowed() {
        let e = check_choice("gzip", &["dbpage", "vacuum"]).expect_err("not a choice");
        assert_eq!(
            e.to_string(),
            "\"gzip\" is not allowed; use one of dbpage, vacuum"
        );
        assert!(check_choice("vacuum", &["dbpage", "vacuum"]).is_ok());
        let e = check_range(&1u64, Some(4096), Some(8192)).expect_err("too small");
        assert_eq!(e.to_string(), "1 is out of range; use 4096 to 8192");
        let e = check_range(&9000u64, None, Some(8192)).expect_err("too big");
        assert_eq!(e.to_string(), "9000 is out of range; use at most 8192");
        assert!(check_range(&4096u64, Some(4096), Some(8192)).is_ok());
        assert!(check_range(&8192u64, Some(4096), Some(8192)).is_ok());
    }

    #[test]
    fn set_param_leaves_the_slot_alone_on_error() {
        let mut slot = 5u64;
        let err = set_param(&mut slot, Input::Text("7"), |v: &u64| {
            check_range(v, Some(6), Some(6))
        });
        assert!(err.is_err());
        assert_eq!(slot, 5);
        set_param(&mut slot, Input::Text("6"), |v: &u64| {
            check_range(v, Some(6), Some(6))
        })
        .expect("in range");
        assert_eq!(slot, 6);
    }

    #[test]
    fn string_fields_take_any_scalar_from_yaml() {
        let from = |yaml: &str| String::from_yaml(serde_norway::from_str(yaml).expect("yaml"));
        assert_eq!(from("2024").expect("number"), "2024");
        assert_eq!(from("true").expect("bool"), "true");
        assert!(from("[a]").is_err());
        let list = Vec::<PathBuf>::from_yaml(serde_norway::from_str("[2024, a]").expect("yaml"));
        assert_eq!(
            list.expect("numbers are names"),
            [PathBuf::from("2024"), PathBuf::from("a")]
        );
    }
}
