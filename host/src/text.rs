//! The one rule for text that comes from outside (API bodies, paths and queries, CLI flags,
//! plugin answers) and is stored or looked up.
//!
//! No such text holds NUL (U+0000). PostgreSQL's `text` cannot store it, so the statement
//! failed there (a 500 over HTTP) while SQLite stored it: the same call had two outcomes. No
//! identifier, address or message needs it.
//!
//! An identifier (a recipient id, an idempotency key, a signal's actor and name, a category or
//! notifier key, an address) is held to more: not blank, no control character, no white space
//! at either end, at most [`MAX_ID_BYTES`] bytes. What a caller typed and what is stored then
//! compare equal, and two keys that look alike (`''` and `'  '`) cannot both be in use.
//! Tenant names have a narrower rule of their own, [`crate::tenants::check_id`].

use std::fmt;

/// The longest identifier belfry takes, in bytes (UTF-8).
pub const MAX_ID_BYTES: usize = 255;

/// The longest idempotency key, in bytes: as long as any identifier, enough for a UUID, a
/// hash or a provider's own key with a prefix.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = MAX_ID_BYTES;

/// What is wrong with a piece of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// It holds U+0000.
    Nul,
    /// Empty, or only white space.
    Blank,
    /// A control character (a newline, a tab, an escape) in an identifier.
    Control(char),
    /// White space at the start or the end of an identifier.
    Padded,
    /// Longer than allowed.
    TooLong { max: usize, len: usize },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Nul => f.write_str("must not contain NUL (\\u0000)"),
            Problem::Blank => f.write_str("must not be empty or blank"),
            Problem::Control(c) => write!(
                f,
                "must not contain a control character ({})",
                c.escape_unicode()
            ),
            Problem::Padded => f.write_str("must not start or end with white space"),
            Problem::TooLong { max, len } => {
                write!(f, "must be at most {max} bytes long, got {len}")
            }
        }
    }
}

/// A value refused by this module's rule, with the field it was given as.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct TextError {
    pub field: String,
    pub problem: Problem,
}

fn refuse(field: &str, problem: Problem) -> TextError {
    TextError {
        field: field.to_string(),
        problem,
    }
}

/// Free text (a reason, a note, a description): anything but NUL.
pub fn free_text(field: &str, value: &str) -> Result<(), TextError> {
    if value.contains('\0') {
        return Err(refuse(field, Problem::Nul));
    }
    Ok(())
}

/// An identifier: not blank, no control character, no surrounding white space, at most
/// [`MAX_ID_BYTES`] bytes.
pub fn identifier(field: &str, value: &str) -> Result<(), TextError> {
    identifier_up_to(field, value, MAX_ID_BYTES)
}

/// An idempotency key: an identifier of at most [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes. A blank
/// or padded one would be a different key from the one the caller meant (`'  '` once made
/// unrelated triggers duplicates of each other).
pub fn idempotency_key(value: &str) -> Result<(), TextError> {
    identifier_up_to("idempotency_key", value, MAX_IDEMPOTENCY_KEY_BYTES)
}

fn identifier_up_to(field: &str, value: &str, max: usize) -> Result<(), TextError> {
    free_text(field, value)?;
    if value.trim().is_empty() {
        return Err(refuse(field, Problem::Blank));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(refuse(field, Problem::Control(c)));
    }
    if value.trim() != value {
        return Err(refuse(field, Problem::Padded));
    }
    if value.len() > max {
        return Err(refuse(
            field,
            Problem::TooLong {
                max,
                len: value.len(),
            },
        ));
    }
    Ok(())
}

/// No NUL in any string or key of a JSON value; the error names where (`payload.to[1]`).
pub fn json(field: &str, value: &serde_json::Value) -> Result<(), TextError> {
    match nul_in_json(value) {
        None => Ok(()),
        Some(path) => Err(refuse(&format!("{field}{path}"), Problem::Nul)),
    }
}

/// Where in `value` a NUL is (`.a[2]`, empty for the value itself), if anywhere.
fn nul_in_json(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in_json(v).map(|p| format!("[{i}]{p}"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(format!(".{}", k.escape_debug()));
            }
            nul_in_json(v).map(|p| format!(".{k}{p}"))
        }),
        _ => None,
    }
}

/// Whether the JSON text `raw` spells a NUL (`\u0000`) in any string, without parsing it:
/// for request bodies, which are then parsed once into their own types. An escaped
/// backslash (`\\u0000`) is text, not NUL. A raw NUL byte is not JSON at all and is left to
/// the parser to refuse.
pub fn json_text_has_nul(raw: &[u8]) -> bool {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            if raw[i + 1..].starts_with(b"u0000") {
                return true;
            }
            // Every escape is at least two bytes; a `\uXXXX` other than NUL is skipped over
            // by the plain bytes that follow.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The field a JSON body's NUL is in (`payload.to`), or `None` when it holds none or is not
/// JSON: for naming the field in an error once [`json_text_has_nul`] said there is one.
pub fn json_nul_field(raw: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    nul_in_json(&value).map(|p| p.trim_start_matches('.').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(identifier("actor", "u-1").is_ok());
        assert!(identifier("actor", "Jane Doe").is_ok());
        assert!(identifier("actor", &"x".repeat(MAX_ID_BYTES)).is_ok());
        let problem = |v: &str| identifier("actor", v).unwrap_err().problem;
        assert_eq!(problem(""), Problem::Blank);
        assert_eq!(problem("  "), Problem::Blank);
        assert_eq!(problem("a\0b"), Problem::Nul);
        assert_eq!(problem("a\nb"), Problem::Control('\n'));
        assert_eq!(problem(" acme "), Problem::Padded);
        assert_eq!(
            problem(&"é".repeat(128)),
            Problem::TooLong { max: 255, len: 256 }
        );
        let e = idempotency_key("  ").unwrap_err();
        assert_eq!(e.to_string(), "idempotency_key must not be empty or blank");
    }

    #[test]
    fn free_text_refuses_only_nul() {
        assert!(free_text("note", " line one\nline two ").is_ok());
        assert_eq!(
            free_text("note", "a\0").unwrap_err().to_string(),
            "note must not contain NUL (\\u0000)"
        );
    }

    #[test]
    fn nul_in_json_text_and_values() {
        for (raw, nul) in [
            (r#"{"a":"x\u0000"}"#, true),
            (r#"{"a\u0000":1}"#, true),
            (r#"{"a":"\\u0000"}"#, false),
            (r#"{"a":"\\\u0000"}"#, true),
            (r#"{"a":"\u00001"}"#, true),
            (r#"{"a":"\u0001"}"#, false),
            (r#"{"a":"\\"}"#, false),
            ("\\", false),
        ] {
            assert_eq!(json_text_has_nul(raw.as_bytes()), nul, "{raw}");
        }
        assert_eq!(
            json_nul_field(br#"{"payload":{"to":["a","b\u0000"]}}"#).as_deref(),
            Some("payload.to[1]")
        );
        let v = serde_json::json!({"to": ["a", "b\u{0}"]});
        assert_eq!(
            json("payload", &v).unwrap_err().field,
            "payload.to[1]".to_string()
        );
        assert!(json("payload", &serde_json::json!({"to": "a"})).is_ok());
    }
}
