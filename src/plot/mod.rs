//! Plots of a run's metrics over its steps: [`load_series`] reads one metric of one run out of
//! its `metrics.jsonl`, [`render_terminal`] draws series as characters for a terminal and
//! [`render_file`] as a PNG or SVG picture.

mod data;
mod image;
mod terminal;

use std::path::PathBuf;

pub use data::{Series, load_series, metric_names};
pub use image::{HEIGHT, WIDTH, render_file};
pub use terminal::render_terminal;

/// How the y axis maps values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum YScale {
    #[default]
    Linear,
    /// Powers of ten equally spaced; only positive values can be drawn.
    Log,
}

impl YScale {
    /// The points of `series` this scale can draw (on a log scale, the positive ones).
    pub(crate) fn drawable(self, series: &Series) -> Series {
        match self {
            YScale::Linear => series.clone(),
            YScale::Log => Series {
                points: series
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1 > 0.0)
                    .collect(),
                ..series.clone()
            },
        }
    }

    /// Which values can be drawn, for messages.
    pub(crate) fn drawable_values(self) -> &'static str {
        match self {
            YScale::Linear => "finite",
            YScale::Log => "positive",
        }
    }
}

/// Why a plot file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output file name ends in neither `.png` nor `.svg`.
    #[error(
        "cannot plot to {}: unsupported file type; name the output file with a .png or .svg extension",
        path.display()
    )]
    UnsupportedFormat { path: PathBuf },
    /// No series were given.
    #[error("nothing to plot: no runs were given; name at least one run")]
    NoSeries,
    /// None of the series has a finite value of the metric.
    #[error(
        "nothing to plot: no {values} {metric} values in {runs}; choose a metric the runs report, or wait until they have reported some"
    )]
    NoData {
        metric: String,
        runs: String,
        /// `finite`, or `positive` on a log scale.
        values: &'static str,
    },
    /// Writing the file failed.
    #[error(
        "cannot write plot to {}: {source}; check that its directory exists and is writable",
        path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// plotters failed while drawing.
    #[error("drawing the plot failed ({0}); please report this as a bug")]
    Draw(String),
    /// The font embedded in the binary could not be loaded.
    #[error("the font embedded in backprop could not be loaded; please report this as a bug")]
    Font,
}
