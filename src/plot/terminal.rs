//! A line chart drawn with characters, for a terminal.
//!
//! Data is binned per sub-column of the canvas (min and max of each bin drawn as a vertical run,
//! consecutive bins joined by a line), so the cost is linear in the number of points and the
//! picture of 100k points is the same envelope a pixel plot would show.
//!
//! Two ways of drawing, chosen by what can tell series apart:
//! - braille (U+2800 block, 2×4 dots a cell) for a single series, or for any number of series
//!   when colour is on: each series has its own ANSI colour (where two series share a cell its
//!   dots merge and the series drawn last gives the colour);
//! - one marker character a series (`*`, `+`, `x`, `o`, ...) at cell resolution when colour is
//!   off and there are several series, since braille dots cannot carry a marker.
//!
//! The legend names each series with its colour or marker, and a `┴` on the x axis marks a step
//! where an attempt restarted. On a log scale the values are drawn as their logarithms and
//! every number shown (labels, legend) is the value itself.

use std::fmt::Write as _;

use super::YScale;
use super::data::{Series, extent, format_step, format_value};

/// Marker characters for series drawn without colour.
const MARKERS: &[char] = &[
    '*', '+', 'x', 'o', '#', '@', '%', '&', '=', '~', '$', '^', 'A', 'B', 'C', 'D', 'E', 'F', 'G',
    'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z',
];

/// ANSI SGR foreground colours, in the order of the image palette.
const COLORS: &[u8] = &[34, 33, 32, 31, 35, 36, 94, 93, 92, 91, 95, 96];

/// Braille dot bits by (row within the cell, column within the cell).
const BRAILLE_BITS: [[u8; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];

const RESET: &str = "\x1b[0m";

/// Fewest data columns and rows drawn, whatever `width` and `height` say.
const MIN_COLS: usize = 10;
const MIN_ROWS: usize = 3;

/// Draws `series` as one chart of `metric` by step.
///
/// `width` is the width of the chart in columns (y labels included); `height` is its height in
/// rows, title and x axis included. Below the chart comes one legend line per series, then one
/// `no <metric> values for <label>` line per series without a value `scale` can draw (only
/// those lines when no series has one). With `color` false the text has no escape sequences.
pub fn render_terminal(
    series: &[Series],
    metric: &str,
    width: usize,
    height: usize,
    color: bool,
    scale: YScale,
) -> String {
    let on_axis: Vec<Series> = series
        .iter()
        .map(|s| {
            let mut s = scale.drawable(s);
            if scale == YScale::Log {
                s.points.iter_mut().for_each(|p| p.1 = p.1.log10());
            }
            s
        })
        .collect();
    let plotted: Vec<&Series> = on_axis.iter().filter(|s| s.has_finite_points()).collect();
    let mut out = String::new();
    if let (Some(xr), Some(yr)) = (extent(&plotted, |p| p.0), extent(&plotted, |p| p.1)) {
        let title = match scale {
            YScale::Linear => format!("{metric} by step"),
            YScale::Log => format!("{metric} by step (log scale)"),
        };
        let chart = Layout {
            title: &title,
            width,
            height,
            color,
            scale,
        };
        draw_chart(&mut out, &plotted, &chart, xr, yr);
    }
    for s in on_axis.iter().filter(|s| !s.has_finite_points()) {
        match scale {
            YScale::Linear => {
                let _ = writeln!(out, "no {metric} values for {}", s.label);
            }
            YScale::Log => {
                let _ = writeln!(out, "no positive {metric} values for {}", s.label);
            }
        }
    }
    out
}

/// What a chart looks like apart from its data.
struct Layout<'a> {
    title: &'a str,
    width: usize,
    height: usize,
    color: bool,
    scale: YScale,
}

impl Layout<'_> {
    /// A value on the y axis as the metric's own value.
    fn value(&self, on_axis: f64) -> f64 {
        match self.scale {
            YScale::Linear => on_axis,
            YScale::Log => 10f64.powf(on_axis),
        }
    }
}

fn draw_chart(
    out: &mut String,
    plotted: &[&Series],
    layout: &Layout,
    (x_min, x_max): (f64, f64),
    (y_lo, y_hi): (f64, f64),
) {
    let (width, height, color) = (layout.width, layout.height, layout.color);
    let (y_lo, y_hi) = pad_range(y_lo, y_hi);
    let y_span = y_hi - y_lo;
    // The range the shown numbers must tell apart, in the metric's own units.
    let value_span = layout.value(y_hi) - layout.value(y_lo);
    let show = |on_axis: f64| format_value(layout.value(on_axis), value_span);
    let braille = color || plotted.len() == 1;
    let rows = height.saturating_sub(3).max(MIN_ROWS);
    let (sub_w_per_cell, sub_h_per_cell) = if braille { (2, 4) } else { (1, 1) };
    let sub_h = rows * sub_h_per_cell;

    let y_map = YAxis {
        hi: y_hi,
        span: y_span,
        sub_h,
    };
    // Y labels: top, bottom, and the middle value on the row where it is drawn.
    let mid_value = y_lo + y_span / 2.0;
    let labels = [
        (0, show(y_hi)),
        (y_map.to_sub(mid_value) / sub_h_per_cell, show(mid_value)),
        (rows - 1, show(y_lo)),
    ];
    let label_w = labels
        .iter()
        .map(|(_, l)| l.chars().count())
        .max()
        .unwrap_or(0);
    let cols = width.saturating_sub(label_w + 2).max(MIN_COLS);

    let mut canvas = Canvas::new(cols, rows, braille);
    canvas.faded = plotted.iter().map(|s| s.faded).collect();
    let x_map = Axis::new(x_min, x_max, cols * sub_w_per_cell);
    for (index, s) in plotted.iter().enumerate() {
        draw_series(&mut canvas, s, index, &x_map, &y_map);
    }

    // Title, then the rows with their y labels.
    let _ = writeln!(out, "{}", layout.title);
    for row in 0..rows {
        let label = labels
            .iter()
            .rev()
            .find(|(r, _)| *r == row)
            .map(|(_, l)| l.as_str());
        let axis = if label.is_some() { '┤' } else { '│' };
        let _ = write!(out, "{:>label_w$} {axis}", label.unwrap_or(""));
        canvas.write_row(out, row, color);
        out.truncate(out.trim_end_matches(' ').len());
        out.push('\n');
    }

    // X axis, with a ┴ where an attempt restarted.
    let mut axis_line: Vec<char> = vec!['─'; cols];
    let mut any_restart = false;
    for s in plotted {
        for &start in &s.attempt_starts {
            if start.is_finite() && start >= x_min && start <= x_max {
                axis_line[x_map.to_sub(start) / sub_w_per_cell] = '┴';
                any_restart = true;
            }
        }
    }
    let _ = writeln!(
        out,
        "{:label_w$} └{}",
        "",
        axis_line.into_iter().collect::<String>()
    );
    let _ = writeln!(
        out,
        "{:label_w$}  {}",
        "",
        x_labels(x_min, x_max, cols).trim_end()
    );

    // Legend.
    for (index, s) in plotted.iter().enumerate() {
        let symbol = if braille { '⣿' } else { marker(index) };
        out.push_str("  ");
        if color {
            let code = series_code(index, s.faded);
            let _ = write!(out, "\x1b[{code}m{symbol}{RESET}");
        } else {
            out.push(symbol);
        }
        let _ = writeln!(out, " {}", summary(s, &show));
    }
    if any_restart {
        out.push_str("  ┴ an attempt restarted at this step\n");
    }
}

/// `label: N points, last V at step S, min M[, restarts at step A, B]`, values through `show`.
fn summary(s: &Series, show: &impl Fn(f64) -> String) -> String {
    let mut count = 0usize;
    let mut last = (0.0, 0.0);
    let mut min = f64::INFINITY;
    for p in s.finite_points() {
        count += 1;
        last = p;
        min = min.min(p.1);
    }
    let mut text = format!(
        "{}: {count} point{}, last {} at step {}, min {}",
        s.label,
        if count == 1 { "" } else { "s" },
        show(last.1),
        format_step(last.0),
        show(min),
    );
    if !s.attempt_starts.is_empty() {
        let steps: Vec<String> = s.attempt_starts.iter().map(|&x| format_step(x)).collect();
        let _ = write!(text, ", restarts at step {}", steps.join(", "));
    }
    text
}

/// The line under the x axis: first step at the left, last at the right, "step" between.
fn x_labels(x_min: f64, x_max: f64, cols: usize) -> String {
    if x_min == x_max {
        let label = format!("step {}", format_step(x_min));
        let pad = (cols / 2).saturating_sub(label.chars().count() / 2);
        return format!("{:pad$}{label}", "");
    }
    let left = format_step(x_min);
    let right = format_step(x_max);
    let used = left.chars().count() + right.chars().count();
    if cols >= used + 8 {
        let gap = cols - used;
        let before = (gap - 4) / 2;
        let after = gap - 4 - before;
        format!("{left}{:before$}step{:after$}{right}", "", "")
    } else {
        let gap = cols.saturating_sub(used).max(1);
        format!("{left}{:gap$}{right}", "")
    }
}

/// Widens a zero-width value range so that equal values draw as a line in the middle.
fn pad_range(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        return (lo, hi);
    }
    let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - pad, hi + pad)
}

fn marker(index: usize) -> char {
    MARKERS[index % MARKERS.len()]
}

fn color_code(index: usize) -> u8 {
    COLORS[index % COLORS.len()]
}

/// A series' colour; faded ones (a search's pruned runs) are grey.
fn series_code(index: usize, faded: bool) -> u8 {
    if faded { FADED } else { color_code(index) }
}

/// Bright black: grey on most terminals.
const FADED: u8 = 90;

/// Maps steps to sub-columns `0..n`; a single step goes to the middle.
struct Axis {
    min: f64,
    span: f64,
    n: usize,
}

impl Axis {
    fn new(min: f64, max: f64, n: usize) -> Self {
        Axis {
            min,
            span: max - min,
            n,
        }
    }

    fn to_sub(&self, x: f64) -> usize {
        if self.span > 0.0 {
            let at = ((x - self.min) / self.span * (self.n - 1) as f64).round();
            (at.max(0.0) as usize).min(self.n - 1)
        } else {
            self.n / 2
        }
    }
}

/// Maps values to sub-rows, 0 at the top.
struct YAxis {
    hi: f64,
    span: f64,
    sub_h: usize,
}

impl YAxis {
    fn to_sub(&self, y: f64) -> usize {
        let at = ((self.hi - y) / self.span * (self.sub_h - 1) as f64).round();
        (at.max(0.0) as usize).min(self.sub_h - 1)
    }
}

/// The points of one series that fall in one sub-column.
#[derive(Clone, Copy)]
struct Bin {
    lo: f64,
    hi: f64,
    /// Value at the smallest step (the first such point in file order).
    entry: (f64, f64),
    /// Value at the largest step (the last such point in file order).
    exit: (f64, f64),
}

fn draw_series(canvas: &mut Canvas, s: &Series, owner: usize, x_map: &Axis, y_map: &YAxis) {
    let mut bins: Vec<Option<Bin>> = vec![None; x_map.n];
    for (x, y) in s.finite_points() {
        let slot = &mut bins[x_map.to_sub(x)];
        match slot {
            None => {
                *slot = Some(Bin {
                    lo: y,
                    hi: y,
                    entry: (x, y),
                    exit: (x, y),
                })
            }
            Some(bin) => {
                bin.lo = bin.lo.min(y);
                bin.hi = bin.hi.max(y);
                if x < bin.entry.0 {
                    bin.entry = (x, y);
                }
                if x >= bin.exit.0 {
                    bin.exit = (x, y);
                }
            }
        }
    }
    let mut previous: Option<(usize, usize)> = None;
    for (col, bin) in bins.iter().enumerate() {
        let Some(bin) = bin else { continue };
        for row in y_map.to_sub(bin.hi)..=y_map.to_sub(bin.lo) {
            canvas.set(col, row, owner);
        }
        if let Some(from) = previous {
            canvas.line(from, (col, y_map.to_sub(bin.entry.1)), owner);
        }
        previous = Some((col, y_map.to_sub(bin.exit.1)));
    }
}

#[derive(Clone, Copy, Default)]
struct Cell {
    /// Braille dots set, or 1 for a marker cell that is drawn.
    bits: u8,
    /// The series drawn last into this cell.
    owner: usize,
}

struct Canvas {
    cols: usize,
    braille: bool,
    /// Which series are drawn faded (grey), by index.
    faded: Vec<bool>,
    cells: Vec<Cell>,
}

impl Canvas {
    fn new(cols: usize, rows: usize, braille: bool) -> Self {
        Canvas {
            cols,
            braille,
            faded: Vec::new(),
            cells: vec![Cell::default(); cols * rows],
        }
    }

    /// Sets one sub-cell point (a braille dot, or a whole cell for markers).
    fn set(&mut self, x: usize, y: usize, owner: usize) {
        let (cx, cy, bit) = if self.braille {
            (x / 2, y / 4, BRAILLE_BITS[y % 4][x % 2])
        } else {
            (x, y, 1)
        };
        let cell = &mut self.cells[cy * self.cols + cx];
        cell.bits |= bit;
        cell.owner = owner;
    }

    /// Bresenham line between two sub-cell points, both ends included.
    fn line(&mut self, (x0, y0): (usize, usize), (x1, y1): (usize, usize), owner: usize) {
        let (mut x, mut y) = (x0 as isize, y0 as isize);
        let (x1, y1) = (x1 as isize, y1 as isize);
        let dx = (x1 - x).abs();
        let dy = -(y1 - y).abs();
        let sx = if x < x1 { 1 } else { -1 };
        let sy = if y < y1 { 1 } else { -1 };
        let mut err = dx + dy;
        loop {
            self.set(x as usize, y as usize, owner);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn write_row(&self, out: &mut String, row: usize, color: bool) {
        let mut current: Option<usize> = None;
        for cell in &self.cells[row * self.cols..(row + 1) * self.cols] {
            if cell.bits == 0 {
                if current.take().is_some() {
                    out.push_str(RESET);
                }
                out.push(' ');
                continue;
            }
            if color && current != Some(cell.owner) {
                let faded = self.faded.get(cell.owner).copied().unwrap_or(false);
                let _ = write!(out, "\x1b[{}m", series_code(cell.owner, faded));
                current = Some(cell.owner);
            }
            out.push(if self.braille {
                char::from_u32(0x2800 + u32::from(cell.bits)).unwrap_or('?')
            } else {
                marker(cell.owner)
            });
        }
        if current.is_some() {
            out.push_str(RESET);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(label: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: label.to_string(),
            points,
            attempt_starts: Vec::new(),
            faded: false,
        }
    }

    fn curve(label: &str, n: usize, scale: f64) -> Series {
        series(
            label,
            (0..n)
                .map(|i| (i as f64 * 10.0, scale * (-(i as f64) / 30.0).exp() + 0.1))
                .collect(),
        )
    }

    fn chart_rows(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.contains('│') || l.contains('┤'))
            .collect()
    }

    fn has_braille(text: &str) -> bool {
        text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
    }

    #[test]
    fn single_series_without_color_has_no_escapes() {
        let mut s = curve("run-a", 100, 2.0);
        s.attempt_starts = vec![500.0];
        let text = render_terminal(&[s], "loss", 60, 15, false, YScale::Linear);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.starts_with("loss by step\n"), "{text}");
        assert!(has_braille(&chart_rows(&text).concat()), "{text}");
        assert_eq!(chart_rows(&text).len(), 12, "{text}");
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= 60 || l.contains("run-a"))
        );
        // y labels: max, middle, min; x range.
        assert!(text.contains("2.1 ┤"), "{text}");
        assert!(text.contains("0.1"), "{text}");
        assert!(text.contains("990"), "{text}");
        assert!(
            text.contains('┴') && text.contains("restarts at step 500"),
            "{text}"
        );
        assert!(text.contains("⣿ run-a: 100 points, last"), "{text}");
    }

    #[test]
    fn three_series_without_color_use_distinct_markers() {
        let all = [
            curve("lr=0.1", 200, 3.0),
            curve("lr=0.01", 200, 1.5),
            curve("lr=0.001", 200, 0.5),
        ];
        let text = render_terminal(&all, "loss", 70, 20, false, YScale::Linear);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(!has_braille(&text), "{text}");
        let body: String = chart_rows(&text).concat();
        for (index, label) in ["lr=0.1", "lr=0.01", "lr=0.001"].iter().enumerate() {
            let m = MARKERS[index];
            assert!(body.contains(m), "marker {m} missing:\n{text}");
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{m} {label}:"))),
                "legend for {label}:\n{text}"
            );
        }
    }

    #[test]
    fn three_series_with_color() {
        let all = [
            curve("a", 50, 3.0),
            curve("b", 50, 1.5),
            curve("c", 50, 0.5),
        ];
        let text = render_terminal(&all, "loss", 70, 20, true, YScale::Linear);
        assert!(has_braille(&text));
        for code in &COLORS[..3] {
            assert!(text.contains(&format!("\x1b[{code}m")), "{text:?}");
        }
        // Every colour is closed on its row.
        for line in text.lines().filter(|l| l.contains('\x1b')) {
            assert!(
                line.ends_with(RESET) || line.contains(&format!("{RESET} ")),
                "{line:?}"
            );
        }
    }

    #[test]
    fn one_point() {
        let text = render_terminal(
            &[series("r", vec![(5.0, 0.25)])],
            "loss",
            40,
            10,
            false,
            YScale::Linear,
        );
        let body = chart_rows(&text).concat();
        assert_eq!(
            body.chars().filter(|c| has_braille(&c.to_string())).count(),
            1,
            "{text}"
        );
        assert!(text.contains("step 5"), "{text}");
        assert!(text.contains("r: 1 point, last 0.25 at step 5"), "{text}");
    }

    #[test]
    fn all_equal_values_draw_a_flat_line_in_the_middle() {
        let s = series("flat", (0..50).map(|i| (i as f64, 0.5)).collect());
        let text = render_terminal(&[s], "accuracy", 50, 13, false, YScale::Linear);
        assert!(text.starts_with("accuracy by step\n"));
        let rows = chart_rows(&text);
        let drawn: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, l)| has_braille(l))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(drawn.len(), 1, "{text}");
        assert!(rows[drawn[0]].contains("0.5 ┤"), "{text}");
        assert!(text.contains("0.55 ┤") && text.contains("0.45 ┤"), "{text}");
    }

    #[test]
    fn empty_series() {
        let text = render_terminal(
            &[series("run-x", vec![])],
            "loss",
            60,
            15,
            true,
            YScale::Linear,
        );
        assert_eq!(text, "no loss values for run-x\n");
        let nan = series("run-y", vec![(1.0, f64::NAN)]);
        let text = render_terminal(
            &[curve("run-z", 10, 1.0), nan],
            "loss",
            60,
            15,
            false,
            YScale::Linear,
        );
        assert!(text.contains("run-z: 10 points"), "{text}");
        assert!(text.ends_with("no loss values for run-y\n"), "{text}");
        assert_eq!(
            render_terminal(&[], "loss", 60, 15, false, YScale::Linear),
            ""
        );
    }

    #[test]
    fn a_log_scale_spreads_the_decades_and_shows_the_values() {
        let decay = series(
            "decay",
            (0..=100)
                .map(|i| (i as f64, 1000.0 * 10f64.powf(-0.06 * i as f64)))
                .collect(),
        );
        let text = render_terminal(
            std::slice::from_ref(&decay),
            "loss",
            60,
            15,
            false,
            YScale::Log,
        );
        assert!(text.starts_with("loss by step (log scale)\n"), "{text}");
        // Top, middle and bottom labels are the values themselves: 1000, 1, 0.001.
        assert!(text.contains("1000 ┤"), "{text}");
        assert!(text.contains("    1 ┤"), "{text}");
        assert!(text.contains("0.001 ┤"), "{text}");
        assert!(
            text.contains("decay: 101 points, last 0.001 at step 100, min 0.001"),
            "{text}"
        );
        // Each decade gets about the same height: every row has some of the line.
        let rows = chart_rows(&text);
        assert!(rows.iter().all(|r| has_braille(r)), "{text}");
        let linear = render_terminal(&[decay], "loss", 60, 15, false, YScale::Linear);
        assert!(linear.contains("  500 ┤"), "{linear}");

        let nothing_positive = series("z", vec![(1.0, 0.0), (2.0, -1.0)]);
        let text = render_terminal(&[nothing_positive], "loss", 60, 15, false, YScale::Log);
        assert_eq!(text, "no positive loss values for z\n");
    }

    #[test]
    fn tiny_sizes_do_not_panic() {
        let all = [curve("a", 30, 1.0), curve("b", 30, 2.0)];
        for (w, h) in [(0, 0), (1, 1), (12, 4), (200, 3)] {
            let text = render_terminal(&all, "loss", w, h, false, YScale::Linear);
            assert!(text.contains("a: 30 points"));
        }
    }

    #[test]
    fn large_series_are_binned() {
        let big = curve("big", 100_000, 5.0);
        let text = render_terminal(&[big], "loss", 80, 24, false, YScale::Linear);
        assert!(text.contains("big: 100000 points"));
        assert!(chart_rows(&text).iter().all(|l| l.chars().count() <= 80));
    }
}
