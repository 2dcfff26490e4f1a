//! JSON values that keep the order their object keys are written in (serde_json's `Map`
//! sorts them unless its `preserve_order` feature is on), so a grid varies in the order
//! the file lists its params, and typed reads that fail with a located error.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::errors::{Ctx, SweepError, quote};

/// Named values in order (params of a run, entries of an object).
pub(crate) type Params = Vec<(String, Json)>;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    /// In the order written; a key given twice is kept twice (reported by [`object`]).
    Object(Params),
}

impl Json {
    pub fn from_value(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(n.clone()),
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(items) => {
                Json::Array(items.iter().map(Json::from_value).collect())
            }
            serde_json::Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::String(s) => serde_json::Value::String(s.clone()),
            Json::Array(items) => {
                serde_json::Value::Array(items.iter().map(Json::to_value).collect())
            }
            Json::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// `a string`, `a number`, ... for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "a list",
            Json::Object(_) => "an object",
        }
    }

    /// A string, number or boolean: what a param may hold.
    pub fn is_scalar(&self) -> bool {
        matches!(self, Json::Bool(_) | Json::Number(_) | Json::String(_))
    }

    /// The value as one line, shortened when long, for messages.
    pub fn short(&self) -> String {
        const MAX: usize = 80;
        let text = self.to_string();
        if text.chars().count() > MAX {
            let cut: String = text.chars().take(MAX).collect();
            format!("{cut}…")
        } else {
            text
        }
    }

    /// `got 5 (a number)` for type errors.
    pub fn got(&self) -> String {
        match self {
            Json::Null => "got null".into(),
            _ => format!("got {} ({})", self.short(), self.kind()),
        }
    }
}

/// One line, with `, ` and `: ` between items (`[0, 1]`, `{"a": 1}`).
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => write!(f, "{n}"),
            Json::String(s) => f.write_str(&quote(s)),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Object(entries) => {
                f.write_str("{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {value}", quote(key))?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// Parses a file's text; a syntax error says where (line and column).
pub(crate) fn from_text(text: &str, origin: &str) -> Result<Json, SweepError> {
    serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        SweepError::Syntax {
            origin: origin.to_string(),
            line: e.line(),
            column: e.column(),
            reason: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
        }
    })
}

/// The entries of an object; `example` shows what one looks like. A key given twice is an error.
pub(crate) fn object<'j>(
    ctx: Ctx,
    value: &'j Json,
    at: &str,
    example: &str,
) -> Result<&'j [(String, Json)], SweepError> {
    let Json::Object(entries) = value else {
        return Err(ctx.err(
            at,
            format!("expected an object like {example}, {}", value.got()),
        ));
    };
    for (i, (key, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(ctx.err(at, format!("{} is given twice; keep one", quote(key))));
        }
    }
    Ok(entries)
}

/// The items of a list; `example` shows what one looks like.
pub(crate) fn list<'j>(
    ctx: Ctx,
    value: &'j Json,
    at: &str,
    example: &str,
) -> Result<&'j [Json], SweepError> {
    match value {
        Json::Array(items) => Ok(items),
        _ => Err(ctx.err(
            at,
            format!("expected a list like {example}, {}", value.got()),
        )),
    }
}

/// A string; numbers and booleans are told to be quoted.
pub(crate) fn string<'j>(ctx: Ctx, value: &'j Json, at: &str) -> Result<&'j str, SweepError> {
    match value {
        Json::String(s) => Ok(s),
        Json::Number(_) | Json::Bool(_) => Err(ctx.err(
            at,
            format!(
                "expected a string, {}; quote it: {}",
                value.got(),
                quote(&value.to_string())
            ),
        )),
        _ => Err(ctx.err(at, format!("expected a string, {}", value.got()))),
    }
}

/// A string, number or boolean.
pub(crate) fn scalar(ctx: Ctx, value: &Json, at: &str) -> Result<(), SweepError> {
    if value.is_scalar() {
        Ok(())
    } else {
        Err(ctx.err(
            at,
            format!("expected a string, number or boolean, {}", value.got()),
        ))
    }
}

/// A whole number from `min` to `max`; `what` says what it counts.
pub(crate) fn whole(
    ctx: Ctx,
    value: &Json,
    at: &str,
    min: u64,
    max: u64,
    what: &str,
) -> Result<u64, SweepError> {
    if let Json::Number(n) = value
        && let Some(v) = n.as_u64()
        && (min..=max).contains(&v)
    {
        return Ok(v);
    }
    Err(ctx.err(
        at,
        format!(
            "expected {what}, a whole number from {min} to {max}, {}",
            value.got()
        ),
    ))
}
