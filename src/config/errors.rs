//! Config errors: one line each, naming the key, the value, what was expected and the source.

use std::path::PathBuf;

use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use thiserror::Error;

use super::model::{KEYS, SECTIONS, expected_of, spec_of};

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A value of the wrong type, out of range, or inconsistent with another key.
    #[error("invalid config: {key} = {value} (from {origin}): expected {expected}")]
    Invalid {
        key: String,
        value: String,
        origin: String,
        expected: String,
    },
    /// A key the config does not have.
    #[error("unknown config key \"{key}\" in {origin} (value {value}): {advice}")]
    UnknownKey {
        key: String,
        value: String,
        origin: String,
        advice: String,
    },
    /// A `BACKPROP_*` variable that is neither a config key nor one the tool itself uses.
    #[error("unknown environment variable {name}: not a config key{}", did_you_mean(.suggestion))]
    UnknownEnv {
        name: String,
        suggestion: Option<String>,
    },
    #[error("config file {} does not exist", .path.display())]
    MissingFile { path: PathBuf },
    #[error("cannot read config file {}: {reason}", .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("config file {file} is not valid JSON: {reason} at line {line}, column {column}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("config file {file} must hold a JSON object of config keys, not {found}")]
    NotAnObject { file: String, found: String },
    #[error("invalid config: {0}")]
    Other(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

impl ConfigError {
    /// Short advice to show under the error.
    pub fn hint(&self) -> &'static str {
        match self {
            ConfigError::Invalid { .. }
            | ConfigError::UnknownKey { .. }
            | ConfigError::NotAnObject { .. } => {
                "see backprop.config.example.json for every key with a valid value"
            }
            ConfigError::UnknownEnv { .. } => {
                "BACKPROP_* variables set config keys (e.g. BACKPROP_MAX_RUN_MINUTES); unset or rename this one"
            }
            ConfigError::MissingFile { .. } => {
                "check the --config path, or leave it out to use ./backprop.config.json"
            }
            ConfigError::Unreadable { .. } => "check the file's permissions",
            ConfigError::Syntax { .. } => {
                "JSON has no comments and no trailing commas; keys and strings need double quotes"
            }
            ConfigError::Other(_) => "see backprop.config.example.json",
        }
    }

    /// The dotted config key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } | ConfigError::UnknownKey { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The name of a value's source: `default`, the file, `environment variable X` or `flag --x`.
pub(crate) fn describe(metadata: Option<&Metadata>) -> String {
    match metadata {
        Some(md) => match &md.source {
            Some(Source::File(_)) | Some(Source::Custom(_)) => md.name.to_string(),
            _ => "default".into(),
        },
        None => "default".into(),
    }
}

/// The merged value at `path` (segments, array indices as numbers), read without
/// interpreting dots inside a segment.
pub(crate) fn value_at(figment: &Figment, path: &[String]) -> Option<Value> {
    let data = figment.data().ok()?;
    let dict: &Dict = data.get(&Profile::Default)?;
    let (first, rest) = path.split_first()?;
    let mut value = dict.get(first)?;
    for segment in rest {
        value = match value {
            Value::Dict(_, d) => d.get(segment)?,
            Value::Array(_, items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value.clone())
}

/// A value as one line of JSON (`"hot"`, `5`, `null`), shortened when long.
pub(crate) fn show(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(none)".into();
    };
    let text = value
        .deserialize::<serde_json::Value>()
        .map(|v| v.to_string())
        .unwrap_or_else(|_| format!("{value:?}"));
    const MAX: usize = 120;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn path_of(key: &str) -> Vec<String> {
    key.split('.').map(String::from).collect()
}

/// The error for `key`'s current value (validation after extraction).
pub(crate) fn invalid(figment: &Figment, key: &str, expected: impl Into<String>) -> ConfigError {
    let value = value_at(figment, &path_of(key));
    let origin = describe(value.as_ref().and_then(|v| figment.get_metadata(v.tag())));
    ConfigError::Invalid {
        key: key.into(),
        value: show(value.as_ref()),
        origin,
        expected: expected.into(),
    }
}

/// Translates figment's extraction error into ours, with our own phrase for each key.
pub(crate) fn from_figment(error: figment::Error, figment: &Figment) -> ConfigError {
    let path = error.path.clone();
    let key = path.join(".");
    let value = value_at(figment, &path);
    let metadata = value
        .as_ref()
        .and_then(|v| figment.get_metadata(v.tag()))
        .or(error.metadata.as_ref());
    let origin = describe(metadata);
    match &error.kind {
        figment::error::Kind::UnknownField(..) => ConfigError::UnknownKey {
            advice: unknown_key_advice(&path),
            key,
            value: show(value.as_ref()),
            origin,
        },
        _ if path.is_empty() => ConfigError::Other(format!("{} (from {origin})", error.kind)),
        _ => ConfigError::Invalid {
            expected: expected_of(&key).into(),
            key,
            value: show(value.as_ref()),
            origin,
        },
    }
}

fn unknown_key_advice(path: &[String]) -> String {
    if let [single] = path
        && let Some((section, leaf)) = single.split_once('.')
        && spec_of(single).is_some()
    {
        return format!("nest it as {{\"{section}\": {{\"{leaf}\": …}}}}");
    }
    let key = path.join(".");
    let mut candidates: Vec<&str> = KEYS.iter().map(|s| s.key).collect();
    candidates.extend(SECTIONS.iter().map(|(name, _)| *name));
    match closest(&key, &candidates) {
        Some(found) => format!("did you mean \"{found}\"?"),
        None => "not a config key".into(),
    }
}

/// The candidate closest to `unknown` (case-insensitive; a matching last segment in another
/// section counts too, so `maxTempC` finds `gpu.maxTempC`), when it is reasonably close.
pub(crate) fn closest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = unknown.to_lowercase();
    let leaf = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    let unknown_leaf = leaf(&lower);
    let len = lower.chars().count();
    let limit = (len / 3).max(2).min(len.saturating_sub(1));
    candidates
        .iter()
        .map(|c| {
            let c_lower = c.to_lowercase();
            let whole = strsim::levenshtein(&lower, &c_lower);
            let by_leaf = strsim::levenshtein(&unknown_leaf, &leaf(&c_lower)) + 1;
            (whole.min(by_leaf), *c)
        })
        .filter(|(score, _)| *score <= limit)
        .min_by_key(|(score, _)| *score)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_or_absent() {
        let keys = super::super::all_keys();
        assert_eq!(closest("maxRunMinuts", &keys), Some("maxRunMinutes"));
        assert_eq!(closest("gpu.maxTmp", &keys), Some("gpu.maxTempC"));
        assert_eq!(closest("maxTempC", &keys), Some("gpu.maxTempC"));
        assert_eq!(closest("MAXPARALLEL", &keys), Some("maxParallel"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(closest("x", &keys), None);
    }
}
