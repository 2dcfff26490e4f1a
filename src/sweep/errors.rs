//! Sweep errors: one line each, saying where (file, then the path inside it) and what to do.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SweepError {
    #[error("cannot read sweep file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{origin}: not valid JSON: {reason} at line {line}, column {column} (JSON has no comments or trailing commas; keys and strings need double quotes)"
    )]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        reason: String,
    },
    /// `at` is the path inside the file (`runs[1].args[2]`), empty for the file as a whole.
    #[error("{origin}: {}{message}", located(.at))]
    Invalid {
        origin: String,
        at: String,
        message: String,
    },
}

fn located(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    }
}

impl SweepError {
    /// The path inside the file the error is about (`grid.lr`), when there is one.
    pub fn at(&self) -> Option<&str> {
        match self {
            SweepError::Invalid { at, .. } if !at.is_empty() => Some(at),
            _ => None,
        }
    }
}

/// Where errors point: the file, and which list holds whole runs (`runs` or `experiments`).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub origin: &'a str,
    pub list: &'static str,
}

impl Ctx<'_> {
    pub fn err(&self, at: &str, message: impl Into<String>) -> SweepError {
        SweepError::Invalid {
            origin: self.origin.to_string(),
            at: at.to_string(),
            message: message.into(),
        }
    }
}

/// `at.key`, or `key` at the top.
pub(crate) fn key_at(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// `at[i]`.
pub(crate) fn index_at(at: &str, i: usize) -> String {
    format!("{at}[{i}]")
}

/// `s` as a JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// ` (did you mean "x"?)` when a candidate is close to `unknown`, else empty.
pub(crate) fn did_you_mean(unknown: &str, candidates: &[&str]) -> String {
    match closest(unknown, candidates) {
        Some(found) => format!(" (did you mean {}?)", quote(found)),
        None => String::new(),
    }
}

pub(crate) use crate::config::closest;
