//! One metric of a run as the dashboard charts it: every reported value with its step,
//! attempt and time, read from `metrics.jsonl` from a byte offset on, so a page that follows
//! a run reads only what was appended since its last call.

use crate::protocol::{Parsed, parse_line};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// At most this much of the file is read by one call; the page asks again from `nextOffset`.
pub const MAX_READ: u64 = 8 << 20;

/// One reported value. NaN and infinities are kept as points (written as null), so a
/// diverging run shows where it diverged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// The line's step; a line without one takes the last step read before it (None when
    /// this read has seen none yet: the page carries its own last step over).
    pub step: Option<u64>,
    pub value: Option<f64>,
    pub attempt: Option<u32>,
    /// Epoch ms, as backprop stamped the line.
    pub time: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    pub name: String,
    /// Where this read started: the offset asked for, or 0 when the file is shorter than that
    /// (it was replaced), and the page starts the series afresh.
    pub from: u64,
    pub points: Vec<Point>,
    /// Where the next read starts: after the last whole line read.
    pub next_offset: u64,
    /// More whole lines are there than one read takes.
    pub more: bool,
}

/// `name`'s points in `metrics_path` from `offset` (a missing file has none yet).
pub fn read(metrics_path: &Path, name: &str, offset: u64) -> io::Result<Chunk> {
    let mut file = match File::open(metrics_path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Chunk {
                name: name.to_string(),
                from: 0,
                points: Vec::new(),
                next_offset: 0,
                more: false,
            });
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let from = if offset > len { 0 } else { offset };
    file.seek(SeekFrom::Start(from))?;
    let mut chunk = read_points(BufReader::with_capacity(1 << 16, file.take(MAX_READ)), name)?;
    chunk.from = from;
    chunk.more = len - from > MAX_READ;
    if chunk.more && chunk.next_offset == 0 {
        // One line longer than a whole read: no protocol line is that long, skip its part.
        chunk.next_offset = MAX_READ;
    }
    chunk.next_offset += from;
    Ok(chunk)
}

/// The points of whole lines in `reader`; `next_offset` is relative to its start.
fn read_points(mut reader: impl BufRead, name: &str) -> io::Result<Chunk> {
    let mut chunk = Chunk {
        name: name.to_string(),
        from: 0,
        points: Vec::new(),
        next_offset: 0,
        more: false,
    };
    let mut line = Vec::with_capacity(256);
    let mut last_step: Option<u64> = None;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            // The end, or a line still being written: read again from its start next time.
            return Ok(chunk);
        }
        chunk.next_offset += read as u64;
        let Parsed::Message(message) = parse_line(&line) else {
            continue;
        };
        let Some(progress) = message.progress else {
            continue;
        };
        if progress.step.is_some() {
            last_step = progress.step;
        }
        // A checkpoint line repeats the loss of a step already reported.
        if message.checkpoint.is_some() || message.event.as_deref() == Some("checkpoint_saved") {
            continue;
        }
        let value = match name {
            "loss" => progress.loss,
            _ => progress.metrics.get(name).copied(),
        };
        let Some(value) = value else { continue };
        let whole = |v: f64| (v.is_finite() && v >= 0.0 && v.fract() == 0.0).then_some(v);
        chunk.points.push(Point {
            step: progress.step.or(last_step),
            value: value.is_finite().then_some(value),
            attempt: progress
                .metrics
                .get("attempt")
                .copied()
                .and_then(whole)
                .map(|a| a as u32),
            time: progress
                .metrics
                .get("time")
                .copied()
                .and_then(whole)
                .map(|t| t as u64),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = concat!(
        "plain text\n",
        "{\"step\": 1, \"loss\": 0.9, \"time\": 1000, \"attempt\": 1}\n",
        "{\"step\": 2, \"loss\": NaN, \"acc\": 0.5, \"time\": 1001, \"attempt\": 1}\n",
        "{\"event\": \"checkpoint_saved\", \"path\": \"c\", \"step\": 2, \"loss\": 0.8, \"attempt\": 1}\n",
        "{\"val_loss\": 0.7, \"attempt\": 1}\n",
        "{\"step\": 2, \"loss\": Infinity, \"time\": 1500, \"attempt\": 2}\n",
        "{\"step\": 3, \"loss\": 0.5, \"time\": 1501, \"attempt\": 2}\n",
    );

    #[test]
    fn every_value_keeps_its_step_attempt_and_time_and_non_finite_ones_are_null() {
        let chunk = read_points(LINES.as_bytes(), "loss").unwrap();
        let values: Vec<_> = chunk
            .points
            .iter()
            .map(|p| (p.step, p.value, p.attempt))
            .collect();
        assert_eq!(
            values,
            [
                (Some(1), Some(0.9), Some(1)),
                (Some(2), None, Some(1)),
                (Some(2), None, Some(2)),
                (Some(3), Some(0.5), Some(2)),
            ]
        );
        assert_eq!(chunk.points[0].time, Some(1000));
        assert_eq!(chunk.next_offset, LINES.len() as u64);
        let json = serde_json::to_string(&chunk.points[1]).unwrap();
        assert_eq!(json, r#"{"step":2,"value":null,"attempt":1,"time":1001}"#);
    }

    #[test]
    fn a_line_without_a_step_takes_the_last_one() {
        let chunk = read_points(LINES.as_bytes(), "val_loss").unwrap();
        assert_eq!(chunk.points.len(), 1);
        assert_eq!(chunk.points[0].step, Some(2));
        let chunk = read_points(&b"{\"val_loss\": 0.7}\n"[..], "val_loss").unwrap();
        assert_eq!(chunk.points[0].step, None);
    }

    #[test]
    fn reading_goes_on_from_the_offset_and_skips_a_half_written_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, format!("{LINES}{{\"step\": 4, \"lo")).unwrap();
        let first = read(&path, "loss", 0).unwrap();
        assert_eq!(first.points.len(), 4);
        assert_eq!(first.next_offset, LINES.len() as u64);
        assert!(!first.more);
        std::fs::write(&path, format!("{LINES}{{\"step\": 4, \"loss\": 0.25}}\n")).unwrap();
        let next = read(&path, "loss", first.next_offset).unwrap();
        assert_eq!(next.from, first.next_offset);
        assert_eq!(next.points.len(), 1);
        assert_eq!(next.points[0].value, Some(0.25));
        // A shorter file (replaced): from the start again.
        std::fs::write(&path, "{\"step\": 1, \"loss\": 1}\n").unwrap();
        let again = read(&path, "loss", next.next_offset).unwrap();
        assert_eq!((again.from, again.points.len()), (0, 1));
        // No file yet: no points.
        let none = read(&dir.path().join("missing"), "loss", 0).unwrap();
        assert!(none.points.is_empty());
    }
}
