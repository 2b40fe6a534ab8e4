//! A parameter value that is a secret (`S3.SecretAccessKey`): never shown
//! by `Debug`, wiped from memory when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string. `Debug` shows only whether it is set; the text is
/// zeroized when the value is dropped. Read it with [`Secret::expose`]
/// (whoever copies it out, such as the S3 client's settings, owns that copy).
///
/// ```
/// use sqlseal_params::Secret;
///
/// let secret = Secret::from("hunter2");
/// assert_eq!(secret.expose(), "hunter2");
/// assert_eq!(format!("{secret:?}"), "Secret(set)");
/// assert_eq!(format!("{:?}", Secret::new()), "Secret(empty)");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// An empty secret (not set).
    pub fn new() -> Secret {
        Secret::default()
    }

    /// The secret text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(Zeroizing::new(text))
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret::from(text.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_empty() { "empty" } else { "set" };
        write!(f, "Secret({state})")
    }
}
