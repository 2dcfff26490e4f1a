//! The API's query strings, parsed into typed requests. Anything malformed is refused with a
//! message that says what is wrong and what would be right (a 400), never guessed at.

use crate::record::Status;

/// `?key=value&...`, percent-decoded (`+` is a space). A key given twice is refused.
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(key).ok_or_else(|| format!("{key:?} is not a valid query key"))?;
        let value = decode(value)
            .ok_or_else(|| format!("the value of {key} is not valid percent-encoded UTF-8"))?;
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("{key} is given twice; give it once"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Percent-decoding as in a form: None for a bad escape or bytes that are not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Refuses keys other than `allowed` (and `token`, which any call may carry).
fn only(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), String> {
    match pairs
        .iter()
        .find(|(k, _)| k != "token" && !allowed.contains(&k.as_str()))
    {
        Some((key, _)) if allowed.is_empty() => Err(format!(
            "unknown query parameter {key:?}; this call takes none"
        )),
        Some((key, _)) => Err(format!(
            "unknown query parameter {key:?}; this call takes {}",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A whole number in `1..=max`, named `key` in the message.
fn count(key: &str, text: &str, max: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{key}={text:?} is not a count; give a whole number from 1 to {max}"
        )),
    }
}

/// Accepts `none` (only `token`).
pub fn no_params(query: &str) -> Result<(), String> {
    only(&pairs(query)?, &[])
}

pub const STATUSES: &str =
    "queued, running, paused, completed, failed, timeboxed, stopped, rejected, lost";

/// `GET /api/runs`: which runs, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RunsParams {
    pub status: Option<Status>,
    pub batch: Option<String>,
    /// A glob on the name or the id.
    pub name: Option<String>,
    pub limit: usize,
}

/// The first page of the dashboard, and any call without `limit`.
pub const DEFAULT_RUNS: usize = 100;
pub const MAX_RUNS: usize = 100_000;

pub fn runs(query: &str) -> Result<RunsParams, String> {
    let pairs = pairs(query)?;
    only(&pairs, &["status", "batch", "name", "limit"])?;
    let status = value(&pairs, "status")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Status>()
                .map_err(|_| format!("status={s:?} is not a status; use one of {STATUSES}"))
        })
        .transpose()?;
    let name = value(&pairs, "name").filter(|s| !s.is_empty());
    if let Some(glob) = name {
        glob::Pattern::new(glob).map_err(|e| format!("name={glob:?} is not a valid glob: {e}"))?;
    }
    Ok(RunsParams {
        status,
        batch: value(&pairs, "batch")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        name: name.map(str::to_string),
        limit: value(&pairs, "limit")
            .map(|n| count("limit", n, MAX_RUNS))
            .transpose()?
            .unwrap_or(DEFAULT_RUNS),
    })
}

/// `GET /api/runs/<id>/metrics`: one metric's points from a byte offset of `metrics.jsonl`,
/// or (no name) the names of the metrics the run reported.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsParams {
    pub name: Option<String>,
    pub offset: u64,
}

pub fn metrics(query: &str) -> Result<MetricsParams, String> {
    let pairs = pairs(query)?;
    only(&pairs, &["name", "offset"])?;
    let name = value(&pairs, "name").map(str::to_string);
    if name.as_deref() == Some("") {
        return Err("name= is empty; give a metric's name, e.g. name=loss".into());
    }
    let offset = match value(&pairs, "offset") {
        None => 0,
        Some(text) => text.parse::<u64>().map_err(|_| {
            format!("offset={text:?} is not a byte offset; give a whole number from 0 (the nextOffset of the last answer)")
        })?,
    };
    Ok(MetricsParams { name, offset })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn file_name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout.log",
            Stream::Stderr => "stderr.log",
        }
    }
}

/// `GET /api/runs/<id>/logs`: the last lines of one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct LogsParams {
    pub stream: Stream,
    pub tail: usize,
}

pub const DEFAULT_TAIL: usize = 200;
pub const MAX_TAIL: usize = 10_000;

pub fn logs(query: &str) -> Result<LogsParams, String> {
    let pairs = pairs(query)?;
    only(&pairs, &["stream", "tail"])?;
    let stream = match value(&pairs, "stream") {
        None | Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(other) => {
            return Err(format!(
                "stream={other:?} is not a stream; use stdout or stderr"
            ));
        }
    };
    let tail = value(&pairs, "tail")
        .map(|n| count("tail", n, MAX_TAIL))
        .transpose()?
        .unwrap_or(DEFAULT_TAIL);
    Ok(LogsParams { stream, tail })
}

/// `POST /api/runs/<id>/resume`: `force=true` resumes a completed run too.
pub fn resume(query: &str) -> Result<bool, String> {
    let pairs = pairs(query)?;
    only(&pairs, &["force"])?;
    match value(&pairs, "force") {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(format!("force={other:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_decoded_and_not_repeated() {
        assert_eq!(
            pairs("a=1&b=x%20y+z&c&&d=%C3%A9").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "é".into()),
            ]
        );
        assert!(pairs("a=%zz").is_err());
        assert!(pairs("a=%4").is_err());
        assert!(pairs("a=%ff").is_err(), "not UTF-8");
        assert!(pairs("a=1&a=2").unwrap_err().contains("twice"));
        assert!(pairs("").unwrap().is_empty());
    }

    #[test]
    fn runs_defaults_to_the_newest_hundred() {
        let p = runs("").unwrap();
        assert_eq!(p.limit, DEFAULT_RUNS);
        assert_eq!((p.status, p.batch, p.name), (None, None, None));
        let p = runs("status=running&batch=b-1&name=lr*&limit=5&token=x").unwrap();
        assert_eq!(p.status, Some(Status::Running));
        assert_eq!(p.batch.as_deref(), Some("b-1"));
        assert_eq!(p.name.as_deref(), Some("lr*"));
        assert_eq!(p.limit, 5);
        assert_eq!(runs("status=&batch=").unwrap().status, None);
    }

    #[test]
    fn malformed_run_queries_say_what_is_wrong() {
        for (query, says) in [
            ("limit=abc", "limit=\"abc\" is not a count"),
            ("limit=0", "from 1 to 100000"),
            ("limit=-1", "is not a count"),
            ("limit=100001", "from 1 to 100000"),
            ("status=sleeping", "use one of queued"),
            ("name=[", "not a valid glob"),
            ("colour=red", "unknown query parameter \"colour\""),
        ] {
            let err = runs(query).unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
    }

    #[test]
    fn metrics_take_a_name_and_an_offset() {
        assert_eq!(
            metrics("name=val_loss&offset=120").unwrap(),
            MetricsParams {
                name: Some("val_loss".into()),
                offset: 120
            }
        );
        assert_eq!(metrics("").unwrap().name, None);
        assert!(metrics("name=").is_err());
        assert!(metrics("offset=-5").unwrap_err().contains("byte offset"));
        assert!(metrics("step=1").is_err());
    }

    #[test]
    fn logs_take_a_stream_and_a_tail() {
        assert_eq!(
            logs("").unwrap(),
            LogsParams {
                stream: Stream::Stdout,
                tail: DEFAULT_TAIL
            }
        );
        assert_eq!(logs("stream=stderr&tail=3").unwrap().stream, Stream::Stderr);
        assert!(logs("tail=-1").unwrap_err().contains("is not a count"));
        assert!(logs("tail=0").is_err());
        assert!(logs("tail=10001").is_err());
        assert!(
            logs("stream=stdin")
                .unwrap_err()
                .contains("stdout or stderr")
        );
    }

    #[test]
    fn other_calls_take_only_the_token() {
        assert!(no_params("token=abc").is_ok());
        assert!(no_params("x=1").unwrap_err().contains("takes none"));
        assert!(!resume("").unwrap());
        assert!(resume("force=true").unwrap());
        assert!(resume("force=maybe").is_err());
    }
}
