//! Reading one metric of one run out of its `metrics.jsonl` into a [`Series`].

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use crate::protocol::{Parsed, Progress, parse_line};

/// One metric of one run, ready to plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// What the legend calls it: the run id, or a name.
    pub label: String,
    /// `(step, value)` in file order; only finite values. A resumed attempt may repeat steps an
    /// earlier attempt already reported, so `step` can go backwards at an attempt boundary.
    pub points: Vec<(f64, f64)>,
    /// The steps at which attempts 2, 3, ... begin (the first step each of them reported).
    pub attempt_starts: Vec<f64>,
    /// Drawn pale, behind the others (a search's pruned runs).
    pub faded: bool,
}

impl Series {
    /// The points whose step and value are both finite (renderers skip everything else).
    pub(crate) fn finite_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    pub(crate) fn has_finite_points(&self) -> bool {
        self.finite_points().next().is_some()
    }
}

/// Reads `metric` (`"loss"`, or any other numeric field a protocol line carries, e.g.
/// `"accuracy"`) out of a run's `metrics.jsonl`.
///
/// - x is the line's `step`. A line without a step takes the last step any earlier line
///   reported (an eval line printed after a training step belongs to that step); before any
///   step was seen, x is a running index of the metric's lines (0, 1, 2, ...), so metrics of a
///   script that never reports steps still plot.
/// - Lines that are not protocol lines are skipped, and so are `checkpoint_saved` lines (they
///   repeat the loss of a step already reported). NaN and infinite values are left out (they
///   still advance the running index).
/// - `attempt_starts` gets the first step of every attempt after the first one (from the
///   `"attempt"` field spliced into each line).
pub fn load_series(metrics_path: &Path, metric: &str, label: &str) -> io::Result<Series> {
    let file = File::open(metrics_path)?;
    read_series(BufReader::with_capacity(1 << 16, file), metric, label)
}

/// [`load_series`] on any reader.
pub(crate) fn read_series(
    mut reader: impl BufRead,
    metric: &str,
    label: &str,
) -> io::Result<Series> {
    let mut series = Series {
        label: label.to_string(),
        ..Series::default()
    };
    let mut line = Vec::with_capacity(256);
    let mut last_step: Option<f64> = None;
    let mut running_index: u64 = 0;
    // The file may start at any attempt; anything above the first attempt is a restart.
    let mut attempt: Option<u64> = None;
    let mut attempt_pending = false;

    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let Parsed::Message(message) = parse_line(&line) else {
            continue;
        };
        let Some(progress) = message.progress else {
            continue;
        };
        if let Some(a) = progress
            .metrics
            .get("attempt")
            .copied()
            .and_then(attempt_number)
        {
            match attempt {
                Some(current) if a > current => attempt_pending = true,
                None if a > 1 => attempt_pending = true,
                _ => {}
            }
            attempt = Some(attempt.map_or(a, |c| c.max(a)));
        }
        let step = progress.step.map(|s| s as f64);
        let checkpoint =
            message.checkpoint.is_some() || message.event.as_deref() == Some("checkpoint_saved");
        let value = if checkpoint {
            None
        } else {
            metric_value(&progress, metric)
        };
        let x = match (step, value) {
            (Some(step), _) => Some(step),
            (None, Some(_)) => Some(last_step.unwrap_or(running_index as f64)),
            (None, None) => None,
        };
        if let Some(x) = x
            && attempt_pending
        {
            series.attempt_starts.push(x);
            attempt_pending = false;
        }
        if step.is_some() {
            last_step = step;
        }
        if let Some(value) = value {
            running_index += 1;
            if let Some(x) = x
                && value.is_finite()
            {
                series.points.push((x, value));
            }
        }
    }
    Ok(series)
}

/// The metrics a run reported in its `metrics.jsonl`: `loss` and every other numeric field of a
/// progress line (not the `time` and `attempt` backprop adds, nor `step`, the x axis).
pub fn metric_names(metrics_path: &Path) -> io::Result<BTreeSet<String>> {
    let file = File::open(metrics_path)?;
    read_metric_names(BufReader::with_capacity(1 << 16, file))
}

fn read_metric_names(mut reader: impl BufRead) -> io::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(names);
        }
        let Parsed::Message(message) = parse_line(&line) else {
            continue;
        };
        let Some(progress) = message.progress else {
            continue;
        };
        if progress.loss.is_some() {
            names.insert("loss".to_string());
        }
        for name in progress.metrics.keys() {
            if !matches!(name.as_str(), "time" | "attempt" | "step") && !names.contains(name) {
                names.insert(name.clone());
            }
        }
    }
}

/// The attempt number in a metrics line (a positive integer).
fn attempt_number(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 1.0 && value.fract() == 0.0).then_some(value as u64)
}

/// `metric` as reported by one line: `loss` and `step` have fields of their own, everything else
/// is in `metrics`.
fn metric_value(progress: &Progress, metric: &str) -> Option<f64> {
    match metric {
        "loss" => progress.loss,
        "step" => progress
            .step
            .map(|s| s as f64)
            .or_else(|| progress.metrics.get("step").copied()),
        _ => progress.metrics.get(metric).copied(),
    }
}

/// Splits points where the step goes backwards (a resumed attempt re-running steps), so that a
/// line is never drawn back across the chart.
pub(crate) fn monotonic_runs(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].0 < points[i - 1].0 {
            runs.push(&points[start..i]);
            start = i;
        }
    }
    if start < points.len() {
        runs.push(&points[start..]);
    }
    runs
}

/// Lowest and highest finite value of one coordinate over all series, or `None` when there is none.
pub(crate) fn extent(series: &[&Series], pick: impl Fn((f64, f64)) -> f64) -> Option<(f64, f64)> {
    let mut range: Option<(f64, f64)> = None;
    for s in series {
        for p in s.finite_points() {
            let v = pick(p);
            range = Some(match range {
                None => (v, v),
                Some((lo, hi)) => (lo.min(v), hi.max(v)),
            });
        }
    }
    range
}

/// A number for an axis label or a legend: about four significant digits, more when `span` (the
/// range the labels must tell apart) needs them, exponent form for very large or small values.
pub(crate) fn format_value(v: f64, span: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-4..1e7).contains(&a) {
        return format!("{v:.3e}");
    }
    let magnitude = a.log10().floor() as i32;
    let mut decimals = (3 - magnitude).max(0);
    if span.is_finite() && span > 0.0 {
        decimals = decimals.max((-(span / 100.0).log10()).ceil() as i32);
    }
    let decimals = decimals.clamp(0, 8) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A step for an axis label: an integer when it is one.
pub(crate) fn format_step(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format_value(x, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const METRICS: &str = r#"{"time":1795452600000,"attempt":1,"step": 0, "loss": 2.31, "accuracy": 0.1, "lr": 0.5, "epoch": 0}
{"time":1795452600100,"attempt":1,"step": 100, "loss": 1.2, "accuracy": 0.4, "lr": 0.49, "epoch": 100}
not json at all
{"time":1795452600150,"attempt":1,"step": 150, "loss": NaN, "accuracy": 0.41, "lr": 0.48, "epoch": 150}
{"time":1795452600200,"attempt":1,"event": "checkpoint_saved", "path": "/x/ckpt-200", "step": 200, "loss": 0.9}
{"time":1795452600210,"attempt":1,"step": 200, "loss": 0.9, "accuracy": 0.6, "lr": 0.45, "epoch": 200}
{"time":1795452600250,"attempt":1,"step": 250, "loss": Infinity, "accuracy": -Infinity, "lr": 0.44, "epoch": 250}
{"time":1795452600300,"attempt":1,"step": 300, "loss": 0.7, "accuracy": 0.7, "lr": 0.4, "epoch": 300}
{"time":1795452665000,"attempt":2,"event": "resumed", "path": "/x/ckpt-200"}
{"time":1795452665004,"attempt":2,"step": 200, "loss": 0.88, "accuracy": 0.61, "lr": 0.45, "epoch": 200}
{"time":1795452665005,"attempt":2,"val_acc": 0.65}
{"time":1795452665104,"attempt":2,"step": 300, "loss": 0.65, "accuracy": 0.72, "lr": 0.4, "epoch": 300}
{"time":1795452665200,"attempt":2,"step": 400, "loss": 0.5
{"time":1795452665300,"attempt":2,"step": 400, "loss": 0.5, "accuracy": 0.78, "lr": 0.37, "epoch": 400}
"#;

    fn write_metrics(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn loss_skips_nan_events_checkpoints_and_broken_lines() {
        let file = write_metrics(METRICS);
        let s = load_series(file.path(), "loss", "run-1").unwrap();
        assert_eq!(s.label, "run-1");
        assert_eq!(
            s.points,
            vec![
                (0.0, 2.31),
                (100.0, 1.2),
                (200.0, 0.9),
                (300.0, 0.7),
                (200.0, 0.88),
                (300.0, 0.65),
                (400.0, 0.5),
            ]
        );
        assert_eq!(s.attempt_starts, vec![200.0]);
    }

    #[test]
    fn custom_metric_and_stepless_lines() {
        let file = write_metrics(METRICS);
        let acc = load_series(file.path(), "accuracy", "r").unwrap();
        assert_eq!(acc.points.len(), 8, "{:?}", acc.points);
        assert_eq!(acc.points[2], (150.0, 0.41));
        assert_eq!(acc.attempt_starts, vec![200.0]);

        // Reported without a step: takes the step reported just before it.
        let val = load_series(file.path(), "val_acc", "r").unwrap();
        assert_eq!(val.points, vec![(200.0, 0.65)]);

        // A script that never reports steps: a running index.
        let file = write_metrics(
            "{\"time\":1,\"attempt\":1,\"score\": 3}\n{\"time\":2,\"attempt\":1,\"score\": NaN}\n\
             {\"time\":3,\"attempt\":1,\"score\": 5}\n",
        );
        let score = load_series(file.path(), "score", "r").unwrap();
        assert_eq!(score.points, vec![(0.0, 3.0), (2.0, 5.0)]);
        assert!(score.attempt_starts.is_empty());
    }

    #[test]
    fn missing_metric_and_missing_file() {
        let file = write_metrics(METRICS);
        let none = load_series(file.path(), "perplexity", "r").unwrap();
        assert!(none.points.is_empty());
        assert!(!none.has_finite_points());
        let err = load_series(Path::new("/nonexistent/metrics.jsonl"), "loss", "r").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn metric_names_are_what_the_script_reported() {
        let names = read_metric_names(METRICS.as_bytes()).unwrap();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(names, ["accuracy", "epoch", "loss", "lr", "val_acc"]);
        let names = read_metric_names(&b"plain output\n{\"event\": \"eval\"}\n"[..]).unwrap();
        assert!(names.is_empty());
    }

    #[test]
    fn three_attempts() {
        let file = write_metrics(
            "{\"time\":1,\"attempt\":1,\"step\": 1, \"loss\": 3}\n\
             {\"time\":1,\"attempt\":1,\"step\": 2, \"loss\": 2.8}\n\
             {\"time\":2,\"attempt\":2,\"step\": 1, \"loss\": 2.5}\n\
             {\"time\":3,\"attempt\":2,\"step\": 2, \"loss\": 2}\n\
             {\"time\":4,\"attempt\":3,\"step\": 2, \"loss\": 1.9}\n",
        );
        let s = load_series(file.path(), "loss", "r").unwrap();
        assert_eq!(s.attempt_starts, vec![1.0, 2.0]);
        assert_eq!(monotonic_runs(&s.points).len(), 2);
    }

    #[test]
    fn runs_split_where_steps_go_back() {
        let points = [(0.0, 1.0), (1.0, 1.0), (1.0, 2.0), (0.5, 1.0), (2.0, 0.0)];
        let runs = monotonic_runs(&points);
        assert_eq!(runs, vec![&points[..3], &points[3..]]);
        assert!(monotonic_runs(&[]).is_empty());
    }

    #[test]
    fn number_formatting() {
        assert_eq!(format_value(0.4401, 1.0), "0.4401");
        assert_eq!(format_value(2.5, 2.0), "2.5");
        assert_eq!(format_value(1234.5678, 1000.0), "1235");
        assert_eq!(format_value(0.44012, 0.00002), "0.44012");
        assert_eq!(format_value(1.5e-6, 1.0), "1.500e-6");
        assert_eq!(format_value(0.0, 1.0), "0");
        assert_eq!(format_step(670.0), "670");
        assert_eq!(format_step(0.5), "0.5");
    }
}
