//! Go-style durations: `0`, `500ms`, `90s`, `15m`, `24h`, `1h30m`, `1.5h`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// The largest number of nanoseconds a `std::time::Duration` holds.
const MAX_NANOS: u128 = (u64::MAX as u128) * NANOS_PER_SEC + (NANOS_PER_SEC - 1);
/// Fraction digits beyond this many are ignored (they are below a nanosecond
/// for every unit, and keep the arithmetic far from overflow).
const MAX_FRACTION_DIGITS: u32 = 19;

/// A non-negative span of time, written the way Go's `time.ParseDuration`
/// reads it: a sequence of decimal numbers, each with an optional fraction
/// and a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), such as `90s`,
/// `1h30m` or `1.5h`. A bare `0` is zero. Negative durations are rejected.
///
/// [`Display`](fmt::Display) writes the shortest exact form made of whole
/// units (`1h30m`, `500ms`, `1m30s`, `0s`), which parses back to the same
/// value.
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
pub struct Duration(std::time::Duration);

impl Duration {
    /// No time at all; for `Backup.Frequency` it means "never".
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// Wraps a standard duration.
    pub const fn from_std(duration: std::time::Duration) -> Self {
        Duration(duration)
    }

    /// The standard duration, for timers and arithmetic.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parses a Go-style duration.
    ///
    /// # Errors
    ///
    /// [`ParseDurationError`], naming the input and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, ParseDurationError> {
        parse_nanos(text.as_bytes())
            .map(from_nanos)
            .map_err(|reason| ParseDurationError {
                input: text.to_owned(),
                reason,
            })
    }

    /// Parses a duration literal at compile time, as generated defaults do:
    /// `const { Duration::from_literal("24h") }`.
    ///
    /// # Panics
    ///
    /// If `text` is not a valid duration. In a `const` context that panic is a
    /// compile error, so use it only with literals there.
    pub const fn from_literal(text: &'static str) -> Self {
        match parse_nanos(text.as_bytes()) {
            Ok(nanos) => from_nanos(nanos),
            Err(_) => panic!("invalid duration literal"),
        }
    }
}

/// `nanos` is at most [`MAX_NANOS`], so the seconds fit in a `u64` and the
/// remainder in a `u32`.
const fn from_nanos(nanos: u128) -> Duration {
    Duration(std::time::Duration::new(
        (nanos / NANOS_PER_SEC) as u64,
        (nanos % NANOS_PER_SEC) as u32,
    ))
}

/// What is wrong with a duration; byte offsets point into the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Empty,
    Negative,
    /// No digits where a number must start.
    ExpectedNumber {
        at: usize,
    },
    /// A number `start..end` with nothing after it.
    MissingUnit {
        start: usize,
        end: usize,
    },
    /// Unit text `start..end` that is not a known unit.
    UnknownUnit {
        start: usize,
        end: usize,
    },
    TooLarge,
}

/// A string that is not a valid duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {}", self.explain())]
pub struct ParseDurationError {
    input: String,
    reason: Reason,
}

impl ParseDurationError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    fn explain(&self) -> String {
        const EXAMPLES: &str = "write e.g. 0, 500ms, 90s, 15m, 24h or 1h30m";
        const UNITS: &str = "use ns, us, ms, s, m or h";
        let slice = |start: usize, end: usize| self.input.get(start..end).unwrap_or_default();
        match self.reason {
            Reason::Empty => format!("it is empty; {EXAMPLES}"),
            Reason::Negative => "negative durations are not allowed".to_owned(),
            Reason::ExpectedNumber { at } => {
                let rest = self.input.get(at..).unwrap_or_default();
                if rest.is_empty() {
                    format!("expected a number at the end; {EXAMPLES}")
                } else {
                    format!("expected a number at {rest:?}; {EXAMPLES}")
                }
            }
            Reason::MissingUnit { start, end } => format!(
                "missing unit after {:?} (only 0 may omit it); {UNITS}",
                slice(start, end)
            ),
            Reason::UnknownUnit { start, end } => {
                format!("unknown unit {:?}; {UNITS}", slice(start, end))
            }
            Reason::TooLarge => "too large".to_owned(),
        }
    }
}

/// Parses into nanoseconds; `const` so that defaults can be checked when
/// the crate compiles.
const fn parse_nanos(b: &[u8]) -> Result<u128, Reason> {
    let len = b.len();
    if len == 0 {
        return Err(Reason::Empty);
    }
    let mut i = 0;
    if b[0] == b'-' {
        return Err(Reason::Negative);
    }
    if b[0] == b'+' {
        i = 1;
    }
    if i + 1 == len && b[i] == b'0' {
        return Ok(0);
    }
    if i == len {
        return Err(Reason::ExpectedNumber { at: i });
    }
    let mut total: u128 = 0;
    while i < len {
        let start = i;
        let mut whole: u128 = 0;
        let mut whole_digits = 0u32;
        while i < len && b[i].is_ascii_digit() {
            whole = match whole.checked_mul(10) {
                Some(v) => v + (b[i] - b'0') as u128,
                None => return Err(Reason::TooLarge),
            };
            // No u128 overflow before this: MAX_NANOS has 29 digits.
            if whole > MAX_NANOS {
                return Err(Reason::TooLarge);
            }
            whole_digits += 1;
            i += 1;
        }
        let mut fraction: u128 = 0;
        let mut scale: u128 = 1;
        let mut fraction_digits = 0u32;
        if i < len && b[i] == b'.' {
            i += 1;
            while i < len && b[i].is_ascii_digit() {
                if fraction_digits < MAX_FRACTION_DIGITS {
                    fraction = fraction * 10 + (b[i] - b'0') as u128;
                    scale *= 10;
                }
                fraction_digits += 1;
                i += 1;
            }
        }
        if whole_digits == 0 && fraction_digits == 0 {
            return Err(Reason::ExpectedNumber { at: start });
        }
        let number_end = i;
        while i < len && b[i] != b'.' && !b[i].is_ascii_digit() {
            i += 1;
        }
        if number_end == i {
            return Err(Reason::MissingUnit {
                start,
                end: number_end,
            });
        }
        let unit = match unit_nanos(b, number_end, i) {
            Some(unit) => unit,
            None => {
                return Err(Reason::UnknownUnit {
                    start: number_end,
                    end: i,
                });
            }
        };
        // fraction < 10^19 and unit <= 3.6 * 10^12: the product fits in u128.
        let part = match whole.checked_mul(unit) {
            Some(v) => v + fraction * unit / scale,
            None => return Err(Reason::TooLarge),
        };
        total = match total.checked_add(part) {
            Some(v) => v,
            None => return Err(Reason::TooLarge),
        };
        if total > MAX_NANOS {
            return Err(Reason::TooLarge);
        }
    }
    Ok(total)
}

/// Nanoseconds per unit for the unit text `b[start..end]`.
const fn unit_nanos(b: &[u8], start: usize, end: usize) -> Option<u128> {
    const UNITS: [(&[u8], u128); 8] = [
        (b"ns", 1),
        (b"us", 1_000),
        ("\u{b5}s".as_bytes(), 1_000),
        ("\u{3bc}s".as_bytes(), 1_000),
        (b"ms", 1_000_000),
        (b"s", NANOS_PER_SEC),
        (b"m", 60 * NANOS_PER_SEC),
        (b"h", 3_600 * NANOS_PER_SEC),
    ];
    let mut u = 0;
    while u < UNITS.len() {
        let (name, nanos) = UNITS[u];
        if name.len() == end - start {
            let mut k = 0;
            while k < name.len() && name[k] == b[start + k] {
                k += 1;
            }
            if k == name.len() {
                return Some(nanos);
            }
        }
        u += 1;
    }
    None
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PARTS: [(u128, &str); 6] = [
            (3_600 * NANOS_PER_SEC, "h"),
            (60 * NANOS_PER_SEC, "m"),
            (NANOS_PER_SEC, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        let mut rest = self.0.as_nanos();
        if rest == 0 {
            return f.pad("0s");
        }
        let mut text = String::new();
        for (size, unit) in PARTS {
            let count = rest / size;
            if count > 0 {
                text.push_str(&count.to_string());
                text.push_str(unit);
            }
            rest %= size;
        }
        f.pad(&text)
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Duration::parse(text)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(duration: std::time::Duration) -> Self {
        Duration(duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

/// Reads a string, or a bare integer (YAML `Frequency: 0`), which must then
/// be `0` to be valid.
impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 90s, 15m or 24h")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Duration, E> {
                self.visit_str(&number.to_string())
            }

            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Duration, E> {
                self.visit_str(&number.to_string())
            }

            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Duration, E> {
                self.visit_str(&number.to_string())
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Writes the [`Display`](fmt::Display) form.
impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> std::time::Duration {
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
    fn parses_go_style_durations() {
        use std::time::Duration as Std;
        assert_eq!(parse("0"), Std::ZERO);
        assert_eq!(parse("+0"), Std::ZERO);
        assert_eq!(parse("0s"), Std::ZERO);
        assert_eq!(parse("500ms"), Std::from_millis(500));
        assert_eq!(parse("90s"), Std::from_secs(90));
        assert_eq!(parse("15m"), Std::from_secs(15 * 60));
        assert_eq!(parse("24h"), Std::from_secs(24 * 3600));
        assert_eq!(parse("1h30m"), Std::from_secs(5400));
        assert_eq!(parse("1.5h"), Std::from_secs(5400));
        assert_eq!(parse(".5s"), Std::from_millis(500));
        assert_eq!(parse("1.s"), Std::from_secs(1));
        assert_eq!(parse("2us"), Std::from_micros(2));
        assert_eq!(parse("2\u{b5}s"), Std::from_micros(2));
        assert_eq!(parse("2\u{3bc}s"), Std::from_micros(2));
        assert_eq!(parse("7ns"), Std::from_nanos(7));
        assert_eq!(parse("1m1m"), Std::from_secs(120));
        assert_eq!(parse("1.0000000001s"), Std::from_secs(1));
    }

    #[test]
    fn rejects_garbage_with_a_clear_message() {
        assert_eq!(
            error("soon"),
            "invalid duration \"soon\": expected a number at \"soon\"; write e.g. 0, 500ms, 90s, 15m, 24h or 1h30m"
        );
        assert_eq!(
            error("-5m"),
            "invalid duration \"-5m\": negative durations are not allowed"
        );
        assert_eq!(
            error("90"),
            "invalid duration \"90\": missing unit after \"90\" (only 0 may omit it); use ns, us, ms, s, m or h"
        );
        assert_eq!(
            error("3d"),
            "invalid duration \"3d\": unknown unit \"d\"; use ns, us, ms, s, m or h"
        );
        assert!(error("").contains("it is empty"));
        assert!(error("+").contains("expected a number at the end"));
        assert!(error("1h30").contains("missing unit after \"30\""));
        assert!(error(" 1h").contains("expected a number at \" 1h\""));
        assert!(error("1 h").contains("unknown unit \" h\""));
        assert!(error(".s").contains("expected a number"));
        assert!(error("1h.").contains("expected a number at \".\""));
        assert!(error("99999999999999999999999999999999h").contains("too large"));
        assert!(error("5124095576030432h").contains("too large"));
    }

    #[test]
    fn largest_duration_round_trips_and_one_more_nanosecond_does_not() {
        let max = Duration::from_std(std::time::Duration::MAX);
        let text = max.to_string();
        assert_eq!(Duration::parse(&text), Ok(max));
        let over = format!("{text}1ns");
        assert!(error(&over).contains("too large"), "{over}");
    }

    #[test]
    fn displays_whole_units() {
        let show = |text: &str| Duration::from_std(parse(text)).to_string();
        assert_eq!(show("0"), "0s");
        assert_eq!(show("90m"), "1h30m");
        assert_eq!(show("90s"), "1m30s");
        assert_eq!(show("1.5s"), "1s500ms");
        assert_eq!(show("36h"), "36h");
        assert_eq!(format!("{:>6}", Duration::from_std(parse("15m"))), "   15m");
    }

    #[test]
    fn const_literal_matches_parse() {
        const DAY: Duration = Duration::from_literal("24h");
        assert_eq!(DAY.as_std(), parse("24h"));
    }

    #[test]
    fn deserializes_strings_and_zero() {
        let d: Duration = serde_norway::from_str("1h30m").expect("string");
        assert_eq!(d.as_std().as_secs(), 5400);
        let d: Duration = serde_norway::from_str("0").expect("bare zero");
        assert!(d.is_zero());
        let e = serde_norway::from_str::<Duration>("90").expect_err("bare 90");
        assert!(e.to_string().contains("missing unit"), "{e}");
        let e = serde_norway::from_str::<Duration>("[1]").expect_err("a list");
        assert!(e.to_string().contains("a duration such as"), "{e}");
    }

    /// A duration written as arbitrary whole components in arbitrary order.
    fn components() -> impl Strategy<Value = (String, u128)> {
        let unit = prop::sample::select(vec![
            ("h", 3_600 * NANOS_PER_SEC),
            ("m", 60 * NANOS_PER_SEC),
            ("s", NANOS_PER_SEC),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ]);
        prop::collection::vec((0u32..100_000, unit), 1..6).prop_map(|parts| {
            let text = parts
                .iter()
                .map(|(n, (u, _))| format!("{n}{u}"))
                .collect::<String>();
            let nanos = parts
                .iter()
                .map(|(n, (_, size))| u128::from(*n) * size)
                .sum();
            (text, nanos)
        })
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration::from_std(std::time::Duration::new(secs, nanos));
            let text = d.to_string();
            prop_assert_eq!(Duration::parse(&text), Ok(d), "{}", text);
        }

        #[test]
        fn parse_then_display_is_canonical((text, nanos) in components()) {
            let d = Duration::parse(&text).expect("generated text is valid");
            prop_assert_eq!(d.as_std().as_nanos(), nanos);
            let canonical = d.to_string();
            let again = Duration::parse(&canonical).expect("display output parses");
            prop_assert_eq!(again, d);
            prop_assert_eq!(again.to_string(), canonical);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,12}") {
            let _ = Duration::parse(&text);
        }
    }
}
