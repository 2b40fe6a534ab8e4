//! Durations: a thin wrapper over [`jiff::SignedDuration`] that reads
//! `0` and the Go-style forms (`500ms`, `90s`, `15m`, `24h`, `1h30m`,
//! `1.5h`) and refuses negative spans.

use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use jiff::fmt::friendly::{Designator, Spacing, SpanParser, SpanPrinter};

const PARSER: SpanParser = SpanParser::new();
const PRINTER: SpanPrinter = SpanPrinter::new()
    .designator(Designator::HumanTime)
    .spacing(Spacing::None);

/// A non-negative span of time, such as `90s`, `1h30m` or `1.5h`.
///
/// Numbers each take a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`, or
/// the longer names jiff's friendly format knows, such as `2 hours`), from
/// the largest unit down; only the last may have a fraction. A bare `0` is
/// zero. [`Display`](fmt::Display) writes the shortest exact form made of
/// whole units (`1h30m`, `500ms`, `1m30s`, `0s`), which parses back to the
/// same value.
///
/// ```
/// use sqlseal_params::Duration;
///
/// let d: Duration = "1h30m".parse()?;
/// assert_eq!(d.as_std(), std::time::Duration::from_secs(90 * 60));
/// assert_eq!("90m".parse::<Duration>()?.to_string(), "1h30m");
/// assert!("soon".parse::<Duration>().is_err());
/// # Ok::<(), sqlseal_params::ParseDurationError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(SignedDuration);

impl Duration {
    /// No time at all; for `Backup.Frequency` it means "never".
    pub const ZERO: Duration = Duration(SignedDuration::ZERO);

    /// `secs` seconds and `nanos` nanoseconds, for generated defaults (which
    /// the code generator has checked are not negative).
    pub(crate) const fn new(secs: i64, nanos: i32) -> Self {
        Duration(SignedDuration::new(secs, nanos))
    }

    /// Wraps a standard duration (saturating at [`SignedDuration::MAX`]).
    pub fn from_std(duration: std::time::Duration) -> Self {
        Duration(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX))
    }

    /// The standard duration, for timers and arithmetic.
    pub fn as_std(self) -> std::time::Duration {
        // Never negative, so the absolute value is the value.
        self.0.unsigned_abs()
    }

    /// The jiff duration, for timestamp arithmetic.
    pub fn as_jiff(self) -> SignedDuration {
        self.0
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parses a duration such as `0`, `500ms`, `90s`, `24h` or `1h30m`.
    ///
    /// # Errors
    ///
    /// [`ParseDurationError`], naming the input and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, ParseDurationError> {
        let input = text.to_owned();
        if matches!(text, "0" | "+0") {
            return Ok(Duration::ZERO);
        }
        if text.starts_with('-') {
            return Err(ParseDurationError::Negative(input));
        }
        let number = text.trim_start_matches('+');
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(ParseDurationError::MissingUnit(input));
        }
        match PARSER.parse_duration(text) {
            Ok(d) if d.is_negative() => Err(ParseDurationError::Negative(input)),
            Ok(d) => Ok(Duration(d)),
            Err(source) => Err(ParseDurationError::Syntax { input, source }),
        }
    }
}

/// A string that is not a valid [`Duration`]; each variant holds the string.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDurationError {
    /// A negative span (`-5m`, `1h ago`).
    #[error("invalid duration {0:?}: negative durations are not allowed")]
    Negative(String),
    /// A number without a unit, other than `0`.
    #[error(
        "invalid duration {0:?}: missing unit after {0:?} (only 0 may omit it); use ns, us, ms, s, m or h"
    )]
    MissingUnit(String),
    /// Not a duration at all; jiff's error says where.
    #[error("invalid duration {input:?}: write e.g. 0, 500ms, 90s, 15m, 24h or 1h30m")]
    Syntax {
        /// The text.
        input: String,
        /// What jiff's parser found wrong.
        source: jiff::Error,
    },
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&PRINTER.duration_to_string(&self.0))
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Duration::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration as Std;

    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Std {
        Duration::parse(text)
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
            .as_std()
    }

    fn error(text: &str) -> String {
        match Duration::parse(text) {
            Ok(d) => panic!("{text:?} should not parse, got {d}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        for (text, expected) in [
            ("0", Std::ZERO),
            ("+0", Std::ZERO),
            ("0s", Std::ZERO),
            ("500ms", Std::from_millis(500)),
            ("90s", Std::from_secs(90)),
            ("15m", Std::from_secs(15 * 60)),
            ("24h", Std::from_secs(24 * 3600)),
            ("1h30m", Std::from_secs(5400)),
            ("1.5h", Std::from_secs(5400)),
            ("1h 30m", Std::from_secs(5400)),
            ("2us", Std::from_micros(2)),
            ("2\u{b5}s", Std::from_micros(2)),
            ("7ns", Std::from_nanos(7)),
        ] {
            assert_eq!(parse(text), expected, "{text}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_clear_message() {
        assert_eq!(
            error("soon"),
            "invalid duration \"soon\": write e.g. 0, 500ms, 90s, 15m, 24h or 1h30m"
        );
        for text in ["-5m", "1h ago", "-0s"] {
            assert_eq!(
                error(text),
                format!("invalid duration {text:?}: negative durations are not allowed")
            );
        }
        assert_eq!(
            error("90"),
            "invalid duration \"90\": missing unit after \"90\" (only 0 may omit it); use ns, us, ms, s, m or h"
        );
        for text in ["", "+", "3d", "1h30", "30m1h", "99999999999999999999h"] {
            assert!(error(text).ends_with("write e.g. 0, 500ms, 90s, 15m, 24h or 1h30m"));
        }
        let e = Duration::parse("3d").expect_err("days vary in length");
        let cause = std::error::Error::source(&e).expect("jiff's error is the cause");
        assert!(cause.to_string().contains("days"), "{cause}");
    }

    #[test]
    fn displays_whole_units() {
        let show = |text: &str| Duration::from_std(parse(text)).to_string();
        assert_eq!(show("0"), "0s");
        assert_eq!(show("90m"), "1h30m");
        assert_eq!(show("90s"), "1m30s");
        assert_eq!(show("1.5s"), "1s500ms");
        assert_eq!(show("36h"), "36h");
        assert_eq!(show("2us"), "2us");
        assert_eq!(format!("{:>6}", Duration::from_std(parse("15m"))), "   15m");
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(secs in 0..i64::MAX, nanos in 0..1_000_000_000i32) {
            let d = Duration::new(secs, nanos);
            let text = d.to_string();
            prop_assert_eq!(Duration::parse(&text).expect("display output parses"), d, "{}", text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,12}") {
            let _ = Duration::parse(&text);
        }
    }
}
