//! `${VAR}` and `${VAR:-default}` in a configuration file, replaced by the
//! environment before the YAML is read (as Litestream does), so that one
//! file serves several hosts. `$${` writes a literal `${`. A variable that
//! is not set and has no default is an error naming it, never an empty
//! string that would silently change a path.

/// A `${...}` that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// `${NAME}` with `NAME` unset and no default.
    #[error(
        "line {line}: ${{{name}}} is not set; set it, give a default as ${{{name}:-VALUE}}, or run with --no-expand-env"
    )]
    Unset {
        /// The variable.
        name: String,
        /// Its line in the file (from 1).
        line: usize,
    },
    /// `${` without a closing `}` or with a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error(
        "line {line}: `{text}` is not a variable reference; write ${{NAME}} or ${{NAME:-default}} (or $${{ for a literal ${{)"
    )]
    Malformed {
        /// What was found.
        text: String,
        /// Its line in the file (from 1).
        line: usize,
    },
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `${NAME}` and `${NAME:-default}` in `text` by
/// `lookup(NAME)` (or the default when it is unset or empty).
pub fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(ExpandError::Malformed {
                    text: tail.lines().next().unwrap_or(tail).to_owned(),
                    line,
                });
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_name(name) {
                return Err(ExpandError::Malformed {
                    text: format!("${{{inner}}}"),
                    line,
                });
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(ExpandError::Unset {
                        name: name.to_owned(),
                        line,
                    });
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BUCKET" => Some("backups-eu".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_and_defaults() {
        let text =
            "Location: s3://${BUCKET}/${HOST:-web1}\nKey: ${EMPTY:-k.pem} $5 $$ $${BUCKET}\n";
        assert_eq!(
            expand_env(text, env).expect("expands"),
            "Location: s3://backups-eu/web1\nKey: k.pem $5 $$ ${BUCKET}\n"
        );
    }

    #[test]
    fn unset_and_malformed_references_name_the_line() {
        assert_eq!(
            expand_env("a: 1\nb: ${NOPE}\n", env)
                .expect_err("unset")
                .to_string(),
            "line 2: ${NOPE} is not set; set it, give a default as ${NOPE:-VALUE}, or run with --no-expand-env"
        );
        for bad in ["x: ${BUCKET", "x: ${1X}", "x: ${}", "x: ${A B}"] {
            let e = expand_env(bad, env).expect_err(bad);
            assert!(
                matches!(e, ExpandError::Malformed { line: 1, .. }),
                "{bad}: {e}"
            );
        }
    }

    proptest! {
        /// Text without `${` comes back unchanged.
        #[test]
        fn text_without_references_is_unchanged(text in "[^{]*") {
            prop_assert_eq!(expand_env(&text, env).expect("no references"), text);
        }

        /// A default stands in for an unset variable, whatever it holds
        /// (bar a closing brace).
        #[test]
        fn defaults_are_inserted_verbatim(default in "[^}]*") {
            let text = format!("v: ${{UNSET:-{default}}}!");
            prop_assert_eq!(expand_env(&text, env).expect("expands"), format!("v: {default}!"));
        }
    }
}
