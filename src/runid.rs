//! Run ids: `[A-Za-z0-9._-]`, 1–64 characters, not starting with `.`. A run id becomes a
//! directory name under `runs/`, so anything else is refused. [`RunId`] is checked once, where
//! it enters (a flag, a stored record), and trusted everywhere after.

use serde::{Deserialize, Deserializer, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A valid run id (or batch id: they share the form).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    pub fn parse(text: &str) -> Result<RunId, InvalidRunId> {
        validate(text).map(|_| RunId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh id for a run called `name` (see [`generate`]).
    pub fn generate(name: &str, salt: u32) -> RunId {
        RunId(generate(name, salt))
    }
}

impl std::str::FromStr for RunId {
    type Err = InvalidRunId;
    fn from_str(text: &str) -> Result<RunId, InvalidRunId> {
        RunId::parse(text)
    }
}

impl std::ops::Deref for RunId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for RunId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for RunId {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RunId, D::Error> {
        let text = String::deserialize(d)?;
        RunId::parse(&text).map_err(serde::de::Error::custom)
    }
}

pub const MAX_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid run id {shown:?}: {why}; use 1-64 characters from A-Z a-z 0-9 . _ - not starting with '.'"
)]
pub struct InvalidRunId {
    shown: String,
    why: &'static str,
}

pub fn validate(id: &str) -> Result<(), InvalidRunId> {
    let why = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_LEN {
        Some("it is longer than 64 characters")
    } else if id.starts_with('.') {
        Some("it starts with '.'")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("it contains a character outside A-Z a-z 0-9 . _ -")
    } else {
        None
    };
    match why {
        Some(why) => Err(InvalidRunId {
            shown: id.chars().take(80).collect(),
            why,
        }),
        None => Ok(()),
    }
}

/// A fresh id: `<name>-<yyyymmdd>-<hhmmss>-<4 hex>`, readable and sortable by time.
/// The store re-draws on the rare collision.
pub fn generate(name: &str, salt: u32) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    // "2026-11-23T16:29:00Z" -> "20261123-162900"
    let digits: String = stamp.chars().filter(|c| c.is_ascii_digit()).collect();
    let stamp = format!("{}-{}", &digits[..8], &digits[8..14]);
    let mut hash =
        now.subsec_nanos() ^ std::process::id().rotate_left(16) ^ salt.wrapping_mul(0x9E37_79B9);
    hash ^= hash >> 15;
    hash = hash.wrapping_mul(0x2C1B_3C6D);
    hash ^= hash >> 12;
    let stem = sanitize(name);
    let budget = MAX_LEN - stamp.len() - 6;
    let stem: String = stem.chars().take(budget).collect();
    format!("{stem}-{stamp}-{:04x}", hash & 0xffff)
}

/// Turns a free-form name into something usable as the start of a run id.
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches(['.', '-']).to_string();
    if trimmed.is_empty() {
        "run".to_string()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in [
            "a",
            "run-1",
            "exp_1700000000000",
            "A.b_c-9",
            &"x".repeat(64),
        ] {
            assert!(validate(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_traversal_and_odd_characters() {
        for id in [
            "",
            "../x",
            ".hidden",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "..",
            "a\0b",
        ] {
            let err = validate(id).unwrap_err().to_string();
            assert!(err.contains("invalid run id"), "{err}");
        }
    }

    #[test]
    fn generated_ids_are_valid_even_from_odd_names() {
        for name in [
            "train",
            "../../etc",
            "",
            "my model (v2)",
            &"long".repeat(40),
        ] {
            let id = generate(name, 7);
            validate(&id).unwrap();
        }
    }
}
