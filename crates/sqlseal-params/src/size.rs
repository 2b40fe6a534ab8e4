//! Sizes in bytes, written plainly or with a binary unit: `1048576`,
//! `64KiB`, `1MiB`, `4 MiB`.

use std::fmt;
use std::str::FromStr;

/// A size in bytes.
///
/// Written as a whole number of bytes (`1048576`), optionally followed by a
/// unit, with or without a space between: `B`, `KiB` (1024), `MiB`
/// (1024²), `GiB` (1024³) or `TiB` (1024⁴), in any letter case. Decimal
/// or ambiguous units (`k`, `K`, `KB`, `M`, `MB`, `G`, `GB`, ...) are
/// refused with a message naming the accepted forms, as are fractions.
/// [`Display`](fmt::Display) writes the largest unit that divides the
/// size exactly (`1MiB`, `1536KiB`, `4097`), which parses back to the same
/// size.
///
/// ```
/// use sqlseal_params::ByteSize;
///
/// assert_eq!(ByteSize::parse("1MiB")?.bytes(), 1 << 20);
/// assert_eq!(ByteSize::parse("4 MiB")?.bytes(), 4 << 20);
/// assert_eq!(ByteSize::parse("65536")?.to_string(), "64KiB");
/// assert!(ByteSize::parse("1MB").unwrap_err().to_string().contains("KiB, MiB"));
/// # Ok::<(), sqlseal_params::ParseSizeError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// The accepted forms, for error messages and help texts.
pub const SIZE_FORMS: &str =
    "write bytes (1048576) or a whole number with B, KiB, MiB, GiB or TiB (64KiB, 1MiB, 4 MiB)";

const UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        ByteSize(bytes)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size such as `1048576`, `64KiB` or `4 MiB`.
    ///
    /// # Errors
    ///
    /// [`ParseSizeError`] naming the text and the accepted forms.
    pub fn parse(text: &str) -> Result<Self, ParseSizeError> {
        let error = |reason| ParseSizeError {
            input: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error(Reason::Empty));
        }
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, rest) = trimmed.split_at(digits_end);
        if digits.is_empty() {
            return Err(error(if trimmed.starts_with('-') {
                Reason::Negative
            } else {
                Reason::ExpectedNumber
            }));
        }
        if rest.starts_with(['.', ',']) {
            return Err(error(Reason::Fraction));
        }
        let number: u64 = digits.parse().map_err(|_| error(Reason::TooLarge))?;
        let unit = rest.trim_start();
        let factor = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, factor)| *factor)
                .ok_or_else(|| error(Reason::UnknownUnit(unit.to_owned())))?
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| error(Reason::TooLarge))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Empty,
    Negative,
    ExpectedNumber,
    Fraction,
    UnknownUnit(String),
    TooLarge,
}

/// A string that is not a valid [`ByteSize`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {}; {SIZE_FORMS}", self.explain())]
pub struct ParseSizeError {
    input: String,
    reason: Reason,
}

impl ParseSizeError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    fn explain(&self) -> String {
        match &self.reason {
            Reason::Empty => "it is empty".to_owned(),
            Reason::Negative => "sizes cannot be negative".to_owned(),
            Reason::ExpectedNumber => "it does not start with a number".to_owned(),
            Reason::Fraction => "fractions are not allowed".to_owned(),
            Reason::UnknownUnit(unit) => {
                let decimal = ["k", "kb", "m", "mb", "g", "gb", "t", "tb"];
                if decimal.iter().any(|d| d.eq_ignore_ascii_case(unit)) {
                    format!("unit {unit:?} is ambiguous (1000 or 1024?)")
                } else {
                    format!("unknown unit {unit:?}")
                }
            }
            Reason::TooLarge => "too large".to_owned(),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match UNITS
            .iter()
            .find(|(_, factor)| *factor > 1 && self.0 != 0 && self.0.is_multiple_of(*factor))
        {
            Some((name, factor)) => format!("{}{name}", self.0 / factor),
            None => self.0.to_string(),
        };
        f.pad(&text)
    }
}

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ByteSize::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(text: &str) -> u64 {
        ByteSize::parse(text)
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
            .bytes()
    }

    fn error(text: &str) -> String {
        match ByteSize::parse(text) {
            Ok(size) => panic!("{text:?} should not parse, got {size}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_bytes_and_binary_units() {
        assert_eq!(bytes("1048576"), 1 << 20);
        assert_eq!(bytes("0"), 0);
        assert_eq!(bytes("4096B"), 4096);
        assert_eq!(bytes("64KiB"), 64 << 10);
        assert_eq!(bytes("1MiB"), 1 << 20);
        assert_eq!(bytes("4 MiB"), 4 << 20);
        assert_eq!(bytes(" 16mib "), 16 << 20);
        assert_eq!(bytes("2GiB"), 2 << 30);
        assert_eq!(bytes("1TiB"), 1 << 40);
    }

    #[test]
    fn refuses_ambiguous_units_fractions_and_garbage_naming_the_forms() {
        assert_eq!(
            error("1MB"),
            "invalid size \"1MB\": unit \"MB\" is ambiguous (1000 or 1024?); write bytes (1048576) or a whole number with B, KiB, MiB, GiB or TiB (64KiB, 1MiB, 4 MiB)"
        );
        for text in ["64k", "64K", "64KB", "1M", "1G", "1gb"] {
            assert!(error(text).contains("is ambiguous"), "{text}");
        }
        assert!(error("1.5MiB").contains("fractions are not allowed"));
        assert!(error("-1").contains("cannot be negative"));
        assert!(error("").contains("it is empty"));
        assert!(error("MiB").contains("does not start with a number"));
        assert!(error("3 parsecs").contains("unknown unit \"parsecs\""));
        assert!(error("99999999999999999999").contains("too large"));
        assert!(error("16777216TiB").contains("too large"));
    }

    #[test]
    fn displays_the_largest_exact_unit() {
        assert_eq!(ByteSize::new(0).to_string(), "0");
        assert_eq!(ByteSize::new(4097).to_string(), "4097");
        assert_eq!(ByteSize::new(1 << 20).to_string(), "1MiB");
        assert_eq!(ByteSize::new(3 << 19).to_string(), "1536KiB");
        assert_eq!(ByteSize::new(u64::MAX).to_string(), u64::MAX.to_string());
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(n in any::<u64>()) {
            let size = ByteSize::new(n);
            prop_assert_eq!(ByteSize::parse(&size.to_string()), Ok(size));
        }

        #[test]
        fn unit_multiples_round_trip(n in 0u64..1_000_000, unit in 0usize..UNITS.len(), space in any::<bool>()) {
            let (name, factor) = UNITS[unit];
            let text = format!("{n}{}{name}", if space { " " } else { "" });
            let size = ByteSize::parse(&text).expect("generated text is valid");
            prop_assert_eq!(size.bytes(), n * factor);
            prop_assert_eq!(ByteSize::parse(&size.to_string()), Ok(size));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,12}") {
            let _ = ByteSize::parse(&text);
        }
    }
}
