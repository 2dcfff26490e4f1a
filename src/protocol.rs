//! Parsing of one line of a training script's stdout (the protocol in the README, "For script
//! authors").
//!
//! A line is a protocol line only when it is valid UTF-8, at most [`MAX_LINE_BYTES`] long, and
//! (after trimming ASCII whitespace) one JSON object. Everything else is [`Parsed::Output`] and
//! passes through untouched; nothing here is ever an error.
//!
//! The parser is a small hand-written, borrowing JSON reader rather than `serde_json`: it accepts
//! the bare `NaN`, `Infinity` and `-Infinity` tokens that Python's `json.dumps` writes (wherever a
//! number may stand, never inside strings) without rewriting the line, it only decodes the strings
//! it needs (keys, `event`, `path`), and it allocates nothing but the [`Message`] it returns.
//! Nested values are validated (to depth 128, as `serde_json` does) and skipped.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest line (without its `\n`, and without a trailing `\r`) that can be a protocol line.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Deepest nesting of arrays/objects accepted (the top-level object counts as one level).
const MAX_DEPTH: usize = 128;

/// What one stdout line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Not a protocol line: pass it through untouched.
    Output,
    /// A JSON object: a protocol message.
    Message(Message),
}

/// A protocol line. At least one of the three fields is always set: an object that carries no
/// progress, no checkpoint and no `event` string is an event named `"message"`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// Set when the object has a usable `step`, a numeric `loss` or any other numeric field.
    pub progress: Option<Progress>,
    /// `path` of a `{"event": "checkpoint_saved", "path": "..."}` line (non-empty, as written).
    pub checkpoint: Option<String>,
    /// The `event` string when it is not `"checkpoint_saved"`; `"message"` for an object without
    /// progress, checkpoint or event.
    pub event: Option<String>,
}

/// Training progress reported by one line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    /// `step` when it is a non-negative integral number that fits a `u64` (`1200`, `1200.0`,
    /// `1.2e3`). Any other numeric `step` is kept as the metric `"step"` instead.
    pub step: Option<u64>,
    /// `loss` when it is a number, NaN and infinities included.
    pub loss: Option<f64>,
    /// Every other top-level field whose value is a number (NaN and infinities included).
    pub metrics: BTreeMap<String, f64>,
}

impl Progress {
    /// Folds a later progress line into this one: newer values win, absent ones are kept.
    pub fn merge(&mut self, later: Progress) {
        if later.step.is_some() {
            self.step = later.step;
        }
        if later.loss.is_some() {
            self.loss = later.loss;
        }
        self.metrics.extend(later.metrics);
    }
}

/// Classifies one stdout line, given without its trailing `\n`; a trailing `\r` (CRLF) and
/// surrounding ASCII whitespace are tolerated.
pub fn parse_line(line: &[u8]) -> Parsed {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return Parsed::Output;
    }
    let body = line.trim_ascii();
    // Cheap rejection of plain text before UTF-8 validation.
    if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
        return Parsed::Output;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Parsed::Output;
    };
    match parse_object(text) {
        Some(message) => Parsed::Message(message),
        None => Parsed::Output,
    }
}

/// A JSON number as read.
#[derive(Debug, Clone, Copy)]
enum Num {
    /// A non-negative integer literal (no fraction, no exponent) that fits a `u64`.
    Int(u64),
    /// Anything else, NaN and infinities included.
    Float(f64),
}

impl Num {
    fn to_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(f) => f,
        }
    }

    /// The value as a step: a non-negative integral number that fits a `u64`.
    fn as_step(self) -> Option<u64> {
        match self {
            Num::Int(v) => Some(v),
            // 2^64 is exactly representable; every integral f64 below it fits a u64.
            Num::Float(f)
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) && f.fract() == 0.0 =>
            {
                Some(f as u64)
            }
            Num::Float(_) => None,
        }
    }
}

/// A top-level value, read only as far as classification needs.
enum Val<'a> {
    Num(Num),
    Str(Cow<'a, str>),
    /// A string we did not need to decode, a literal, an array or an object.
    Other,
}

/// Collects the fields of the top-level object ("last one wins" for duplicate keys).
#[derive(Default)]
struct Fields<'a> {
    step: Option<u64>,
    loss: Option<f64>,
    event: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    metrics: BTreeMap<String, f64>,
}

impl<'a> Fields<'a> {
    fn add(&mut self, key: Cow<'a, str>, value: Val<'a>) {
        match &*key {
            "step" => {
                self.step = None;
                self.metrics.remove("step");
                if let Val::Num(n) = value {
                    match n.as_step() {
                        Some(step) => self.step = Some(step),
                        None => {
                            self.metrics.insert(key.into_owned(), n.to_f64());
                        }
                    }
                }
            }
            "loss" => {
                self.loss = match value {
                    Val::Num(n) => Some(n.to_f64()),
                    _ => None,
                }
            }
            "event" => Self::string_field(&mut self.event, &mut self.metrics, key, value),
            "path" => Self::string_field(&mut self.path, &mut self.metrics, key, value),
            _ => match value {
                Val::Num(n) => {
                    self.metrics.insert(key.into_owned(), n.to_f64());
                }
                _ => {
                    if !self.metrics.is_empty() {
                        self.metrics.remove(&*key);
                    }
                }
            },
        }
    }

    /// `event` and `path`: a string is kept; a number is (still) a metric.
    fn string_field(
        slot: &mut Option<Cow<'a, str>>,
        metrics: &mut BTreeMap<String, f64>,
        key: Cow<'a, str>,
        value: Val<'a>,
    ) {
        *slot = None;
        metrics.remove(&*key);
        match value {
            Val::Str(s) => *slot = Some(s),
            Val::Num(n) => {
                metrics.insert(key.into_owned(), n.to_f64());
            }
            Val::Other => {}
        }
    }

    fn finish(self) -> Message {
        let is_checkpoint = self.event.as_deref() == Some("checkpoint_saved");
        let checkpoint = match self.path {
            Some(path) if is_checkpoint && !path.is_empty() => Some(path.into_owned()),
            _ => None,
        };
        let event = if is_checkpoint {
            None
        } else {
            self.event.map(Cow::into_owned)
        };
        // Metrics on their own (an eval line) update the run's latest metrics too.
        let progress = (self.step.is_some() || self.loss.is_some() || !self.metrics.is_empty())
            .then_some(Progress {
                step: self.step,
                loss: self.loss,
                metrics: self.metrics,
            });
        let has_progress = progress
            .as_ref()
            .is_some_and(|p| p.step.is_some() || p.loss.is_some());
        let event = if !has_progress && checkpoint.is_none() && event.is_none() {
            Some("message".to_owned())
        } else {
            event
        };
        Message {
            progress,
            checkpoint,
            event,
        }
    }
}

/// Parses `text`, which must be exactly one JSON object (NaN/Infinity tokens allowed).
fn parse_object(text: &str) -> Option<Message> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut fields = Fields::default();
    p.eat(b'{')?;
    p.ws();
    if p.eat(b'}').is_none() {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            let want_str = matches!(&*key, "event" | "path");
            let value = p.top_value(want_str)?;
            fields.add(key, value);
            p.ws();
            match p.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    Some(fields.finish())
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn eat_lit(&mut self, lit: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// Skips JSON whitespace.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Validates a string starting at its opening quote and moves past it. Returns the byte
    /// range of its raw contents and whether it contains escapes.
    fn scan_string(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// Reads a string, decoding escapes only when there are any.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let (start, end, escaped) = self.scan_string()?;
        // `start` and `end` sit right after/at an ASCII quote, so they are char boundaries.
        let raw = &self.s[start..end];
        Some(if escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// Reads a number, including Python's `NaN`, `Infinity` and `-Infinity`.
    fn number(&mut self) -> Option<Num> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let mut int: u64 = 0;
        let mut int_fits = true;
        match self.next()? {
            b'I' => {
                self.eat_lit(b"nfinity")?;
                return Some(Num::Float(if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }));
            }
            b'N' if !negative => {
                self.eat_lit(b"aN")?;
                return Some(Num::Float(f64::NAN));
            }
            b'0' => {}
            c @ b'1'..=b'9' => {
                int = u64::from(c - b'0');
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    self.i += 1;
                    match int
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    {
                        Some(v) => int = v,
                        None => int_fits = false,
                    }
                }
            }
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integer = false;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits()?;
        }
        if integer && int_fits {
            return Some(if negative {
                Num::Float(-(int as f64))
            } else {
                Num::Int(int)
            });
        }
        // The grammar checked above is a subset of what `f64::from_str` accepts; values beyond
        // the f64 range become infinities (as in Python).
        self.s[start..self.i].parse().ok().map(Num::Float)
    }

    /// One or more ASCII digits.
    #[inline]
    fn digits(&mut self) -> Option<()> {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    /// A value of the top-level object. Strings are decoded only when `want_str`.
    fn top_value(&mut self, want_str: bool) -> Option<Val<'a>> {
        match self.peek()? {
            b'"' if want_str => self.string().map(Val::Str),
            b'-' | b'0'..=b'9' | b'N' | b'I' => self.number().map(Val::Num),
            _ => self.skip_value(2).map(|()| Val::Other),
        }
    }

    /// Validates and skips any value; `depth` is the nesting level a container here would have.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.scan_string().map(drop),
            b'-' | b'0'..=b'9' | b'N' | b'I' => self.number().map(drop),
            b't' => self.eat_lit(b"true"),
            b'f' => self.eat_lit(b"false"),
            b'n' => self.eat_lit(b"null"),
            b'{' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.scan_string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// Decodes the escapes of an already validated string body. Unpaired surrogates (which Python
/// can write) become U+FFFD instead of rejecting the line.
fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut run = 0; // start of the current run of plain text
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[run..i]);
        let c = match b[i + 1] {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                // b'u', validated: four hex digits follow.
                let hi = hex4(&b[i + 2..i + 6]);
                i += 6;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    match b.get(i..i + 6) {
                        Some([b'\\', b'u', rest @ ..])
                            if (0xDC00..0xE000).contains(&hex4(rest)) =>
                        {
                            let lo = hex4(rest);
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
                run = i;
                continue;
            }
        };
        out.push(c);
        i += 2;
        run = i;
    }
    out.push_str(&raw[run..]);
    out
}

/// Four validated hex digits.
fn hex4(h: &[u8]) -> u32 {
    h[..4].iter().fold(0, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (acc << 4) | u32::from(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(line: &str) -> Message {
        match parse_line(line.as_bytes()) {
            Parsed::Message(m) => m,
            Parsed::Output => panic!("expected a protocol message: {line:?}"),
        }
    }

    fn progress(line: &str) -> Progress {
        msg(line)
            .progress
            .unwrap_or_else(|| panic!("expected progress: {line:?}"))
    }

    fn is_output(line: &[u8]) -> bool {
        parse_line(line) == Parsed::Output
    }

    #[test]
    fn progress_line_with_metrics() {
        let m = msg(r#"{"step": 120, "loss": 0.5321, "lr": 0.01, "epoch": 1}"#);
        assert_eq!(m.checkpoint, None);
        assert_eq!(m.event, None);
        let p = m.progress.unwrap();
        assert_eq!(p.step, Some(120));
        assert_eq!(p.loss, Some(0.5321));
        assert_eq!(
            p.metrics,
            BTreeMap::from([("epoch".to_owned(), 1.0), ("lr".to_owned(), 0.01)])
        );
    }

    #[test]
    fn step_only_and_loss_only_are_progress() {
        let p = progress(r#"{"step":7}"#);
        assert_eq!((p.step, p.loss), (Some(7), None));
        let p = progress(r#"{"loss":-2.5e-3,"val_loss":3,"total_steps":1000}"#);
        assert_eq!((p.step, p.loss), (None, Some(-2.5e-3)));
        assert_eq!(p.metrics["val_loss"], 3.0);
        assert_eq!(p.metrics["total_steps"], 1000.0);
    }

    #[test]
    fn integral_float_steps() {
        assert_eq!(progress(r#"{"step": 1200.0}"#).step, Some(1200));
        assert_eq!(progress(r#"{"step": 1.2e3}"#).step, Some(1200));
        assert_eq!(progress(r#"{"step": 0}"#).step, Some(0));
        assert_eq!(
            progress(r#"{"step": 18446744073709551615}"#).step,
            Some(u64::MAX)
        );
    }

    #[test]
    fn unusable_step_is_a_metric() {
        for (line, value) in [
            (r#"{"step": -1, "loss": 1}"#, -1.0),
            (r#"{"step": 1.5, "loss": 1}"#, 1.5),
            (r#"{"step": 1e30, "loss": 1}"#, 1e30),
            (
                r#"{"step": 18446744073709551616, "loss": 1}"#,
                18446744073709551616.0,
            ),
        ] {
            let p = progress(line);
            assert_eq!(p.step, None, "{line}");
            assert_eq!(p.metrics["step"], value, "{line}");
        }
        let p = progress(r#"{"step": NaN, "loss": 1}"#);
        assert!(p.metrics["step"].is_nan());
        // Without a loss, an unusable step leaves no progress: a plain message.
        let m = msg(r#"{"step": "ten"}"#);
        assert_eq!(m.progress, None);
        assert_eq!(m.event.as_deref(), Some("message"));
    }

    #[test]
    fn non_numeric_fields_are_not_metrics() {
        let p = progress(
            r#"{"step": 3, "name": "bert", "ok": true, "none": null, "hist": [1, 2], "cfg": {"lr": 1}}"#,
        );
        assert!(p.metrics.is_empty(), "{:?}", p.metrics);
        // A non-numeric loss is neither loss nor metric.
        let p = progress(r#"{"step": 3, "loss": "high"}"#);
        assert_eq!(p.loss, None);
        assert!(p.metrics.is_empty());
    }

    #[test]
    fn nan_and_infinities() {
        let p = progress(r#"{"step": 5, "loss": NaN, "grad_norm": Infinity, "min": -Infinity}"#);
        assert!(p.loss.unwrap().is_nan());
        assert_eq!(p.metrics["grad_norm"], f64::INFINITY);
        assert_eq!(p.metrics["min"], f64::NEG_INFINITY);
        // Inside nested values too.
        assert!(
            progress(r#"{"loss": 1, "h": [NaN, -Infinity, {"x": Infinity}]}"#)
                .metrics
                .is_empty()
        );
        // Compact and odd spacing.
        assert_eq!(
            progress(r#"{"loss":Infinity,"x":-Infinity}"#).loss,
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn nan_words_inside_strings_are_untouched() {
        let m = msg(r#"{"event": "NaN here", "note": "Infinity and -Infinity"}"#);
        assert_eq!(m.event.as_deref(), Some("NaN here"));
        let m = msg(r#"{"event": "x\"NaN\" Infinity", "loss": NaN}"#);
        assert_eq!(m.event.as_deref(), Some("x\"NaN\" Infinity"));
        assert!(m.progress.unwrap().loss.unwrap().is_nan());
        let m = msg(r#"{"event": "NaN", "path": "-Infinity"}"#);
        assert_eq!(m.event.as_deref(), Some("NaN"));
        assert_eq!(m.progress, None);
        // Keys that look like tokens are just keys.
        assert_eq!(progress(r#"{"NaN": NaN, "loss": 0}"#).metrics.len(), 1);
    }

    #[test]
    fn malformed_nan_tokens_are_output() {
        for line in [
            r#"{"loss": nan}"#,
            r#"{"loss": -NaN}"#,
            r#"{"loss": Inf}"#,
            r#"{"loss": infinity}"#,
            r#"{"loss": NaNa}"#,
            r#"{"loss": +1}"#,
            r#"{"loss": Infinityx}"#,
        ] {
            assert!(is_output(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn checkpoints() {
        let m = msg(r#"{"event": "checkpoint_saved", "path": "ckpt/step_100.pt"}"#);
        assert_eq!(m.checkpoint.as_deref(), Some("ckpt/step_100.pt"));
        assert_eq!(m.event, None);
        assert_eq!(m.progress, None);

        // A checkpoint line may carry progress as well.
        let m = msg(r#"{"event":"checkpoint_saved","path":"/abs/c.pt","step":100,"loss":0.1}"#);
        assert_eq!(m.checkpoint.as_deref(), Some("/abs/c.pt"));
        assert_eq!(m.progress.unwrap().step, Some(100));

        // Escapes in the path are decoded.
        let m = msg(r#"{"path": "a\\b\u00e9\ud83d\ude00.pt", "event": "checkpoint_saved"}"#);
        assert_eq!(m.checkpoint.as_deref(), Some("a\\bé😀.pt"));

        // Without a usable path it is no checkpoint (and, with nothing else, a "message").
        for line in [
            r#"{"event": "checkpoint_saved"}"#,
            r#"{"event": "checkpoint_saved", "path": ""}"#,
            r#"{"event": "checkpoint_saved", "path": null}"#,
            r#"{"event": "checkpoint_saved", "path": ["a"]}"#,
        ] {
            let m = msg(line);
            assert_eq!(m.checkpoint, None, "{line}");
            assert_eq!(m.event.as_deref(), Some("message"), "{line}");
        }
        // A path without the event is only a field.
        let m = msg(r#"{"path": "x.pt"}"#);
        assert_eq!((m.checkpoint, m.event.as_deref()), (None, Some("message")));
    }

    #[test]
    fn events() {
        let m = msg(r#"{"event": "eval_done", "accuracy": 0.93}"#);
        assert_eq!(m.event.as_deref(), Some("eval_done"));
        // Metrics of an event update the run's latest metrics, without a step or loss.
        let p = m.progress.unwrap();
        assert_eq!((p.step, p.loss, p.metrics["accuracy"]), (None, None, 0.93));
        assert_eq!(msg(r#"{"event": "started", "note": "x"}"#).progress, None);
        let m = msg(r#"{"event": "epoch_end", "step": 10, "loss": 0.2}"#);
        assert_eq!(m.event.as_deref(), Some("epoch_end"));
        assert_eq!(m.progress.unwrap().step, Some(10));
        // Objects without progress/checkpoint/event string are "message" events.
        for line in [
            "{}",
            "{ }",
            r#"{"hello": "world"}"#,
            r#"{"event": 3}"#,
            r#"{"epoch": 1}"#,
        ] {
            assert_eq!(msg(line).event.as_deref(), Some("message"), "{line}");
        }
        // A numeric event is a metric like any other number.
        assert_eq!(progress(r#"{"event": 3, "loss": 1}"#).metrics["event"], 3.0);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p =
            progress(r#"{"lr": 1, "lr": "x", "step": 1, "step": 2, "loss": 1, "a": "x", "a": 2}"#);
        assert_eq!(p.step, Some(2));
        assert_eq!(p.metrics, BTreeMap::from([("a".to_owned(), 2.0)]));
        let p = progress(r#"{"step": -1, "step": 4}"#);
        assert_eq!(p.step, Some(4));
        assert!(p.metrics.is_empty());
    }

    #[test]
    fn escaped_keys() {
        let p = progress(r#"{"st\u0065p": 3, "val\/loss": 1, "tab\tkey": 2}"#);
        assert_eq!(p.step, Some(3));
        assert_eq!(p.metrics["val/loss"], 1.0);
        assert_eq!(p.metrics["tab\tkey"], 2.0);
        // A lone surrogate does not reject the line.
        let m = msg(r#"{"event": "a\ud800b\udc00"}"#);
        assert_eq!(m.event.as_deref(), Some("a\u{fffd}b\u{fffd}"));
    }

    #[test]
    fn non_objects_are_output() {
        for line in [
            "",
            "   ",
            "Epoch 1/10",
            "[1, 2, 3]",
            "42",
            "NaN",
            "\"a string\"",
            "null",
            "true",
            "{",
            "}",
            "{}}",
            "{} {}",
            "{}x",
            "x{}",
            "{\"a\": 1,}",
            "{\"a\" 1}",
            "{\"a\": }",
            "{a: 1}",
            "{'a': 1}",
            "{\"a\": 01}",
            "{\"a\": 1.}",
            "{\"a\": .5}",
            "{\"a\": 1e}",
            "{\"a\": -}",
            "{\"a\": [1,]}",
            "{\"a\": [1 2]}",
            "{\"a\": {\"b\"}}",
            "{\"a\": \"unterminated}",
            "{\"a\": \"bad \\x escape\"}",
            "{\"a\": \"bad \\u12 escape\"}",
            "{\"a\": \"raw\ttab\"}",
            "{\"a\": tru}",
            "{\"a\": nul}",
            "{\"a\": 1}\u{0}",
        ] {
            assert!(is_output(line.as_bytes()), "{line:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_output() {
        assert!(is_output(b"{\"loss\": 1, \"x\": \"\xff\"}"));
        assert!(is_output(b"{\"loss\": 1, \"x\": \"\xc3\"}"));
        assert!(is_output(b"\xff\xfe binary"));
        // Valid UTF-8 in strings is fine.
        assert_eq!(
            msg("{\"event\": \"époque ✓\"}").event.as_deref(),
            Some("époque ✓")
        );
    }

    #[test]
    fn crlf_and_whitespace() {
        assert_eq!(progress("{\"step\": 1}\r").step, Some(1));
        assert_eq!(progress("  \t{\"step\": 2}  \r").step, Some(2));
        assert_eq!(progress("{\"step\": 3}\r\n").step, Some(3));
        assert_eq!(progress("{\n\"step\"\r:\t4 }").step, Some(4));
    }

    #[test]
    fn size_limit() {
        let pad = |n: usize| {
            let mut s = String::from("{\"loss\": 1, \"pad\": \"");
            let fill = n - s.len() - 2;
            s.extend(std::iter::repeat_n('x', fill));
            s.push_str("\"}");
            assert_eq!(s.len(), n);
            s
        };
        assert!(!is_output(pad(MAX_LINE_BYTES).as_bytes()));
        assert!(!is_output(format!("{}\r", pad(MAX_LINE_BYTES)).as_bytes()));
        assert!(is_output(pad(MAX_LINE_BYTES + 1).as_bytes()));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let ok = format!(
            "{{\"loss\": 1, \"a\": {}{}}}",
            "[".repeat(127),
            "]".repeat(127)
        );
        assert!(!is_output(ok.as_bytes()));
        let deep = format!(
            "{{\"loss\": 1, \"a\": {}{}}}",
            "[".repeat(128),
            "]".repeat(128)
        );
        assert!(is_output(deep.as_bytes()));
        let huge = format!("{{\"a\": {}{}}}", "[".repeat(500_000), "]".repeat(500_000));
        assert!(is_output(huge.as_bytes()));
    }

    #[test]
    fn big_and_odd_numbers() {
        let p = progress(
            r#"{"loss": 1e400, "a": -1e400, "b": 1e-400, "c": -0, "d": 123456789012345678901234567890}"#,
        );
        assert_eq!(p.loss, Some(f64::INFINITY));
        assert_eq!(p.metrics["a"], f64::NEG_INFINITY);
        assert_eq!(p.metrics["b"], 0.0);
        assert_eq!(p.metrics["c"], 0.0);
        assert_eq!(p.metrics["d"], 1.2345678901234568e29);
        assert_eq!(progress(r#"{"step": -0, "loss": 0}"#).step, Some(0));
        assert_eq!(progress(r#"{"loss": 2E+2}"#).loss, Some(200.0));
    }

    /// Tiny deterministic generator for the differential test.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// Mutated JSON lines: our parser accepts exactly what serde_json accepts as an object (for
    /// lines without the NaN/Infinity extension), and reads the same numbers.
    #[test]
    fn agrees_with_serde_json() {
        let seeds = [
            r#"{"step": 120, "loss": 0.5321, "lr": 0.01, "epoch": 1}"#,
            r#"{"event": "checkpoint_saved", "path": "ckpt/a b.pt", "step": 3}"#,
            r#"{"a": [1, -2.5e3, {"b": [true, false, null]}], "c": "d\"e\\f\u00e9", "g": {}}"#,
            r#"{ "x" : -0.0 , "y" : 1E-7 , "z" : [ ] }"#,
            r#"{"k": "v", "n": 12345678901234567890, "m": 0.1e1}"#,
        ];
        let alphabet = b"{}[]\":,.-+eE0123456789 \\u\tabntrfl";
        let mut rng = Lcg(0x5eed);
        let mut checked = 0;
        for _ in 0..20_000 {
            let seed = seeds[(rng.next() % seeds.len() as u64) as usize];
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..1 + rng.next() % 3 {
                let pos = (rng.next() % (bytes.len() as u64 + 1)) as usize;
                let c = alphabet[(rng.next() % alphabet.len() as u64) as usize];
                match rng.next() % 3 {
                    0 if pos < bytes.len() => bytes[pos] = c,
                    1 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    _ => bytes.insert(pos, c),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("\\ud") || text.contains("\\uD") {
                continue; // lone surrogates: we read them as U+FFFD, serde_json rejects them
            }
            let ours = parse_line(&bytes);
            let theirs: Result<serde_json::Map<String, serde_json::Value>, _> =
                serde_json::from_slice(&bytes);
            if let Err(e) = &theirs
                && e.to_string().contains("out of range")
            {
                continue; // serde_json rejects 1e400; we read it as infinity like Python
            }
            match (&ours, &theirs) {
                (Parsed::Output, Err(_)) => {}
                (Parsed::Message(m), Ok(map)) => {
                    checked += 1;
                    let numbers: BTreeMap<&str, f64> = map
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?)))
                        .collect();
                    if let Some(p) = &m.progress {
                        for (k, v) in &p.metrics {
                            assert_eq!(numbers.get(k.as_str()), Some(v), "{text}");
                        }
                        if let Some(loss) = p.loss {
                            assert_eq!(numbers.get("loss"), Some(&loss), "{text}");
                        }
                        if let Some(step) = p.step {
                            assert_eq!(numbers.get("step"), Some(&(step as f64)), "{text}");
                        }
                    }
                }
                _ => panic!("disagreement on {text:?}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
        assert!(checked > 1000, "too few valid mutations: {checked}");
    }
}
