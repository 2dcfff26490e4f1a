//! A line chart as a PNG or SVG file, drawn with plotters.
//!
//! Text is rendered with DejaVu Sans embedded in the binary (`assets/fonts/`), registered with
//! plotters' `ab_glyph` font table, so no system font is needed. SVG files carry text as
//! `<text>` elements that the viewer renders.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::data::{Series, extent, monotonic_runs};
use super::{PlotError, YScale};

/// Size of the picture, in pixels.
pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 600;

/// Line colours, one a series (cycled), the same order as the terminal's ANSI colours.
pub(crate) const PALETTE: &[RGBColor] = &[
    RGBColor(31, 119, 180),  // blue
    RGBColor(255, 127, 14),  // orange
    RGBColor(44, 160, 44),   // green
    RGBColor(214, 39, 40),   // red
    RGBColor(148, 103, 189), // purple
    RGBColor(23, 190, 207),  // cyan
    RGBColor(227, 119, 194), // pink
    RGBColor(188, 189, 34),  // olive
    RGBColor(140, 86, 75),   // brown
    RGBColor(127, 127, 127), // grey
];

/// More points than this in one line (about one a pixel of the plot's width) draw thin.
const DENSE_POINTS: usize = 800;

/// Points kept per pixel-wide bin of a long series (first, min, max, last).
const BINS: usize = WIDTH as usize;

static FONT_DATA: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font as plotters' "sans-serif" (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| register_font("sans-serif", style, FONT_DATA).is_ok())
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// Draws `series` as one chart of `metric` by step into `out`, a `.png` or `.svg` file (by its
/// extension, in any case), 1000×600 pixels: one coloured line a series, a legend to the right
/// of the plot area (so it never covers a line), and dashed vertical lines in the series'
/// colour at steps where an attempt restarted. On a log scale only positive values are drawn.
///
/// Series without a value to draw are left out; when none has one, nothing is written and the
/// error says so.
pub fn render_file(
    series: &[Series],
    metric: &str,
    out: &Path,
    scale: YScale,
) -> Result<(), PlotError> {
    let format = match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Format::Png,
        Some("svg") => Format::Svg,
        _ => {
            return Err(PlotError::UnsupportedFormat {
                path: out.to_path_buf(),
            });
        }
    };
    if series.is_empty() {
        return Err(PlotError::NoSeries);
    }
    let drawable: Vec<Series> = series.iter().map(|s| scale.drawable(s)).collect();
    let plotted: Vec<&Series> = drawable.iter().filter(|s| s.has_finite_points()).collect();
    let (Some(x_range), Some(y_range)) = (extent(&plotted, |p| p.0), extent(&plotted, |p| p.1))
    else {
        return Err(PlotError::NoData {
            metric: metric.to_string(),
            runs: series
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            values: scale.drawable_values(),
        });
    };
    ensure_font()?;
    let chart = Chart {
        series: &plotted,
        metric,
        x_range: pad(x_range, 0.0),
        y_range: match scale {
            YScale::Linear => pad(y_range, 0.05),
            YScale::Log => pad_log(y_range, 0.05),
        },
        scale,
    };
    let write_error = |source| PlotError::Write {
        path: out.to_path_buf(),
        source,
    };
    match format {
        Format::Png => {
            let mut pixels = vec![255u8; WIDTH as usize * HEIGHT as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
                chart.draw(&root)?;
            }
            write_png(out, &pixels).map_err(write_error)
        }
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
                chart.draw(&root)?;
            }
            std::fs::write(out, text).map_err(write_error)
        }
    }
}

enum Format {
    Png,
    Svg,
}

/// Widens `(lo, hi)` by `fraction` of its span on both sides; a zero span gets a margin of its
/// own so that a single value sits in the middle.
fn pad((lo, hi): (f64, f64), fraction: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 {
        (lo - span * fraction, hi + span * fraction)
    } else {
        let margin = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - margin, hi + margin)
    }
}

/// [`pad`] for positive values on a log scale: by `fraction` of the span in decades.
fn pad_log((lo, hi): (f64, f64), fraction: f64) -> (f64, f64) {
    let (lo, hi) = (lo.log10(), hi.log10());
    let margin = if hi > lo { (hi - lo) * fraction } else { 0.5 };
    (10f64.powf(lo - margin), 10f64.powf(hi + margin))
}

fn write_png(path: &Path, rgb: &[u8]) -> std::io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    let mut encoder = png::Encoder::new(&mut file, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(rgb)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)?;
    file.flush()
}

struct Chart<'a> {
    series: &'a [&'a Series],
    metric: &'a str,
    x_range: (f64, f64),
    y_range: (f64, f64),
    scale: YScale,
}

/// One line of the legend.
struct LegendEntry {
    label: String,
    mark: LegendMark,
}

enum LegendMark {
    Line(RGBColor),
    /// The dashed marker of an attempt restart.
    Restart,
}

/// A series' line colour; faded ones (a search's pruned runs) are mixed three parts white.
fn series_color(index: usize, faded: bool) -> RGBColor {
    let RGBColor(r, g, b) = PALETTE[index % PALETTE.len()];
    if !faded {
        return RGBColor(r, g, b);
    }
    let pale = |c: u8| ((u16::from(c) + 3 * 255) / 4) as u8;
    RGBColor(pale(r), pale(g), pale(b))
}

/// Legend layout, in pixels: the mark, the gap before the text, a text character (at most).
const LEGEND_MARK: i32 = 22;
const LEGEND_PAD: i32 = 10;
const LEGEND_CHAR: i32 = 8;
const LEGEND_ROW: i32 = 24;
const LEGEND_MIN_WIDTH: i32 = 130;
const LEGEND_MAX_WIDTH: i32 = 320;

/// Width of the legend column beside the plot, from its longest label.
pub(crate) fn legend_width(labels: &[&str]) -> i32 {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as i32;
    (3 * LEGEND_PAD + LEGEND_MARK + LEGEND_CHAR * longest).clamp(LEGEND_MIN_WIDTH, LEGEND_MAX_WIDTH)
}

/// A label cut to fit a legend of `width` pixels.
fn fitted(label: &str, width: i32) -> String {
    let room = ((width - 3 * LEGEND_PAD - LEGEND_MARK) / LEGEND_CHAR).max(4) as usize;
    if label.chars().count() <= room {
        return label.to_string();
    }
    let cut: String = label.chars().take(room - 1).collect();
    format!("{cut}…")
}

impl Chart<'_> {
    fn legend(&self) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = self
            .series
            .iter()
            .enumerate()
            .map(|(index, s)| LegendEntry {
                label: s.label.clone(),
                mark: LegendMark::Line(series_color(index, s.faded)),
            })
            .collect();
        let (x0, x1) = self.x_range;
        let restarted = self.series.iter().any(|s| {
            s.attempt_starts
                .iter()
                .any(|x| x.is_finite() && (x0..=x1).contains(x))
        });
        if restarted {
            entries.push(LegendEntry {
                label: "attempt restart".to_string(),
                mark: LegendMark::Restart,
            });
        }
        entries
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE).map_err(draw_error)?;
        let title = match self.scale {
            YScale::Linear => format!("{} by step", self.metric),
            YScale::Log => format!("{} by step (log scale)", self.metric),
        };
        let body = root
            .titled(&title, ("sans-serif", 26))
            .map_err(draw_error)?;
        let entries = self.legend();
        let labels: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
        let width = legend_width(&labels);
        let (plot_area, legend_area) = body.split_horizontally(WIDTH as i32 - width);
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        let builder = || {
            let mut builder = ChartBuilder::on(&plot_area);
            builder
                .margin(18)
                .margin_right(0)
                .x_label_area_size(50)
                .y_label_area_size(80);
            builder
        };
        match self.scale {
            YScale::Linear => {
                let mut chart = builder()
                    .build_cartesian_2d(x0..x1, y0..y1)
                    .map_err(draw_error)?;
                self.plot(&mut chart)?;
            }
            YScale::Log => {
                let mut chart = builder()
                    .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                    .map_err(draw_error)?;
                self.plot(&mut chart)?;
            }
        }
        draw_legend(&legend_area, &entries, width)?;
        root.present().map_err(draw_error)
    }

    /// The mesh, the lines and the restart markers on a chart of either scale.
    fn plot<DB, Y>(
        &self,
        chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    ) -> Result<(), PlotError>
    where
        DB: DrawingBackend,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(self.metric)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(242, 242, 242))
            .bold_line_style(RGBColor(205, 205, 205))
            .x_label_formatter(&|x| format_tick(*x))
            .y_label_formatter(&|y| format_tick(*y))
            .draw()
            .map_err(draw_error)?;

        for (index, s) in self.series.iter().enumerate() {
            let color = series_color(index, s.faded);
            let style = color.stroke_width(2);
            let thin = color.stroke_width(1);
            for &start in &s.attempt_starts {
                if start.is_finite() && (x0..=x1).contains(&start) {
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(start, y0), (start, y1)],
                            8,
                            6,
                            color.mix(0.8).stroke_width(1),
                        ))
                        .map_err(draw_error)?;
                }
            }
            let points: Vec<(f64, f64)> = s.finite_points().collect();
            for run in monotonic_runs(&points) {
                let run = decimate(run, x0, x1 - x0, BINS);
                if run.len() == 1 {
                    chart
                        .draw_series(std::iter::once(Circle::new(run[0], 4, color.filled())))
                        .map_err(draw_error)?;
                } else {
                    // plotters draws wide strokes as polygons, which overshoot on the short,
                    // steep segments of a dense series: dense lines get a 1 px stroke.
                    let style = if run.len() > DENSE_POINTS {
                        thin
                    } else {
                        style
                    };
                    chart
                        .draw_series(LineSeries::new(run, style))
                        .map_err(draw_error)?;
                }
            }
        }
        Ok(())
    }
}

/// The legend in its own column: a mark and a label a row, from the top of the plot down;
/// what does not fit is summed up on the last row.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    width: i32,
) -> Result<(), PlotError> {
    let font = ("sans-serif", 14).into_font().color(&BLACK);
    let top = 30;
    let rows = ((HEIGHT as i32 - 2 * top) / LEGEND_ROW).max(1) as usize;
    let shown = if entries.len() > rows {
        rows - 1
    } else {
        entries.len()
    };
    let x = LEGEND_PAD;
    let text_x = x + LEGEND_MARK + LEGEND_PAD;
    for (row, entry) in entries.iter().take(shown).enumerate() {
        let y = top + row as i32 * LEGEND_ROW;
        match entry.mark {
            LegendMark::Line(color) => area.draw(&PathElement::new(
                vec![(x, y), (x + LEGEND_MARK, y)],
                color.stroke_width(3),
            )),
            LegendMark::Restart => {
                let dash = BLACK.mix(0.8).stroke_width(1);
                area.draw(&PathElement::new(vec![(x, y), (x + 7, y)], dash))
                    .and_then(|()| {
                        area.draw(&PathElement::new(
                            vec![(x + 13, y), (x + LEGEND_MARK, y)],
                            dash,
                        ))
                    })
            }
        }
        .map_err(draw_error)?;
        area.draw(&Text::new(
            fitted(&entry.label, width),
            (text_x, y - 8),
            font.clone(),
        ))
        .map_err(draw_error)?;
    }
    if shown < entries.len() {
        let y = top + shown as i32 * LEGEND_ROW;
        let more = format!("… and {} more", entries.len() - shown);
        area.draw(&Text::new(more, (text_x, y - 8), font))
            .map_err(draw_error)?;
    }
    Ok(())
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// A tick label: short, without float noise (0.30000000000000004 → 0.3).
fn format_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Keeps at most the first, lowest, highest and last point of each of `bins` equal step ranges
/// (in their original order), so a long series draws as the same envelope with few segments.
/// `points` must be sorted by step.
fn decimate(points: &[(f64, f64)], x0: f64, span: f64, bins: usize) -> Vec<(f64, f64)> {
    if points.len() <= bins * 4 || span <= 0.0 {
        return points.to_vec();
    }
    let bin_of = |x: f64| (((x - x0) / span * bins as f64).max(0.0) as usize).min(bins - 1);
    let mut out = Vec::with_capacity(bins * 4);
    let mut i = 0;
    while i < points.len() {
        let bin = bin_of(points[i].0);
        let first = i;
        let (mut low, mut high) = (i, i);
        while i < points.len() && bin_of(points[i].0) == bin {
            if points[i].1 < points[low].1 {
                low = i;
            }
            if points[i].1 > points[high].1 {
                high = i;
            }
            i += 1;
        }
        let mut keep = [first, low, high, i - 1];
        keep.sort_unstable();
        let mut previous = None;
        for k in keep {
            if previous != Some(k) {
                out.push(points[k]);
                previous = Some(k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn curve(label: &str, n: usize, scale: f64) -> Series {
        Series {
            label: label.to_string(),
            points: (0..n)
                .map(|i| {
                    (
                        i as f64,
                        scale * (-(i as f64) / (n as f64 / 4.0)).exp() + 0.2,
                    )
                })
                .collect(),
            attempt_starts: Vec::new(),
            faded: false,
        }
    }

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_has_two_line_colours() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("loss.PNG");
        let mut a = curve("run-a", 300, 2.0);
        a.attempt_starts = vec![150.0];
        let b = curve("run-b", 300, 1.0);
        render_file(&[a, b], "loss", &out, YScale::Linear).unwrap();

        let (w, h, pixels) = decode(&out);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
        for px in pixels.chunks_exact(3) {
            *counts.entry([px[0], px[1], px[2]]).or_default() += 1;
        }
        let background = counts.get(&[255, 255, 255]).copied().unwrap_or(0);
        assert!(background < pixels.len() / 3, "only background");
        for color in &PALETTE[..2] {
            let n = counts
                .get(&[color.0, color.1, color.2])
                .copied()
                .unwrap_or(0);
            assert!(n > 200, "colour {color:?} drawn on {n} pixels");
        }
        // Text was rendered (dark anti-aliased glyph pixels beyond the black axis lines).
        let greys = counts
            .keys()
            .filter(|[r, g, b]| r == g && g == b && *r > 0 && *r < 200)
            .count();
        assert!(greys > 5, "no text pixels: {greys}");
    }

    #[test]
    fn svg_has_legend_labels() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("acc.svg");
        let mut a = curve("sweep-lr-0.1", 50, 1.0);
        a.attempt_starts = vec![20.0];
        let one = Series {
            label: "single".to_string(),
            points: vec![(10.0, 0.5)],
            attempt_starts: Vec::new(),
            faded: false,
        };
        let empty = Series {
            label: "nothing".to_string(),
            ..Series::default()
        };
        render_file(&[a, one, empty], "accuracy", &out, YScale::Linear).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("<svg"));
        assert!(text.contains("accuracy by step"));
        assert!(text.contains("sweep-lr-0.1") && text.contains("single"));
        assert!(text.contains("attempt restart"));
        assert!(!text.contains("nothing"));
    }

    /// The x position of the SVG `<text>` element whose content is `label`.
    fn text_x(svg: &str, label: &str) -> i32 {
        svg.split("<text ")
            .skip(1)
            .find_map(|element| {
                let (attributes, rest) = element.split_once('>')?;
                let content = rest.split("</text>").next()?.trim();
                if content != label {
                    return None;
                }
                let x = attributes.split("x=\"").nth(1)?;
                x[..x.find('"')?].parse().ok()
            })
            .unwrap_or_else(|| panic!("no text {label}"))
    }

    #[test]
    fn the_legend_sits_beside_the_plot_not_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("legend.svg");
        // Lines that reach the upper right corner, where a legend inside would cover them.
        let rising = |label: &str, scale: f64| Series {
            label: label.to_string(),
            points: (0..100).map(|i| (i as f64, scale * i as f64)).collect(),
            attempt_starts: vec![50.0],
            faded: false,
        };
        render_file(
            &[rising("lr-0.1", 1.0), rising("lr-0.01", 0.9)],
            "loss",
            &out,
            YScale::Linear,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        let plot_right = WIDTH as i32 - legend_width(&["lr-0.1", "lr-0.01", "attempt restart"]);
        for label in ["lr-0.1", "lr-0.01", "attempt restart"] {
            assert!(
                text_x(&svg, label) > plot_right,
                "{label} inside the plot area"
            );
        }
        // The x ticks stay left of the legend column.
        assert!(text_x(&svg, "90") < plot_right);
        assert_eq!(
            fitted("a-very-long-run-name-indeed-it-is", 130)
                .chars()
                .count(),
            9
        );
    }

    #[test]
    fn a_log_scale_labels_decades_and_leaves_out_what_it_cannot_draw() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("log.svg");
        let decay = Series {
            label: "decay".to_string(),
            points: (0..=60)
                .map(|i| (i as f64, 100.0 * 10f64.powf(-i as f64 / 15.0)))
                .chain([(61.0, 0.0), (62.0, -1.0)])
                .collect(),
            attempt_starts: vec![],
            faded: false,
        };
        render_file(&[decay], "loss", &out, YScale::Log).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("loss by step (log scale)"));
        for tick in ["0.01", "0.1", "1", "10", "100"] {
            text_x(&svg, tick);
        }
        let only_negative = Series {
            label: "neg".to_string(),
            points: vec![(1.0, -2.0), (2.0, 0.0)],
            attempt_starts: vec![],
            faded: false,
        };
        let err = render_file(&[only_negative], "loss", &out, YScale::Log).unwrap_err();
        assert!(
            err.to_string().contains("no positive loss values in neg"),
            "{err}"
        );
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = curve("r", 10, 1.0);
        let err = render_file(
            std::slice::from_ref(&s),
            "loss",
            &dir.path().join("x.jpg"),
            YScale::Linear,
        )
        .unwrap_err();
        assert!(matches!(err, PlotError::UnsupportedFormat { .. }));
        assert!(err.to_string().contains(".png") && err.to_string().contains(".svg"));
        let err = render_file(
            std::slice::from_ref(&s),
            "loss",
            &dir.path().join("noext"),
            YScale::Linear,
        )
        .unwrap_err();
        assert!(matches!(err, PlotError::UnsupportedFormat { .. }));

        let err = render_file(&[], "loss", &dir.path().join("x.png"), YScale::Linear).unwrap_err();
        assert!(matches!(err, PlotError::NoSeries), "{err}");
        let empty = Series {
            label: "run-9".to_string(),
            points: vec![(1.0, f64::NAN)],
            attempt_starts: vec![],
            faded: false,
        };
        let err = render_file(
            &[empty],
            "val_loss",
            &dir.path().join("x.png"),
            YScale::Linear,
        )
        .unwrap_err();
        assert!(err.to_string().contains("val_loss") && err.to_string().contains("run-9"));
        assert!(!dir.path().join("x.png").exists());

        let err = render_file(
            &[s],
            "loss",
            &dir.path().join("missing/x.svg"),
            YScale::Linear,
        )
        .unwrap_err();
        assert!(matches!(err, PlotError::Write { .. }), "{err}");
    }

    #[test]
    fn large_series_are_decimated() {
        let points: Vec<(f64, f64)> = (0..100_000)
            .map(|i| (i as f64, ((i * 7919) % 1000) as f64))
            .collect();
        let kept = decimate(&points, 0.0, 99_999.0, 1000);
        assert!(kept.len() <= 4000 && kept.len() >= 1000, "{}", kept.len());
        assert_eq!(kept.first(), points.first());
        assert_eq!(kept.last(), points.last());
        assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0));
        let max = kept.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        assert_eq!(max, 999.0);

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("big.svg");
        let s = Series {
            label: "big".to_string(),
            points,
            attempt_starts: vec![],
            faded: false,
        };
        render_file(&[s], "loss", &out, YScale::Linear).unwrap();
        assert!(std::fs::metadata(&out).unwrap().len() < 2_000_000);
    }

    #[test]
    fn ticks() {
        assert_eq!(format_tick(0.30000000000000004), "0.3");
        assert_eq!(format_tick(1500.0), "1500");
        assert_eq!(format_tick(-0.00001), "-1.00e-5");
        assert_eq!(format_tick(0.0), "0");
    }
}
