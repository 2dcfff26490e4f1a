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

/// The candidate closest to `unknown` (case-insensitive), when it is reasonably close.
pub(crate) fn closest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = unknown.to_lowercase();
    let len = lower.chars().count();
    let limit = (len / 3).max(2).min(len.saturating_sub(1));
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
        .filter(|(score, _)| *score <= limit)
        .min_by_key(|(score, _)| *score)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}
