//! `backprop plot <run-id>... [--metric NAME] [--log-y] [--out FILE.svg|FILE.png]`: a metric
//! over steps, drawn in the terminal or written to an image; several runs overlay.

use super::Global;
use super::common::{CliError, find_run, open_store_refreshed};
use super::table;
use crate::plot::{self, Series, YScale};
use crate::record::Status;
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop plot <run-id>\n  backprop plot <id-a> <id-b> <id-c> --metric val_loss\n  backprop plot <run-id> --log-y --out loss.png\n  backprop plot <batch-id> --metric val_loss"
)]
pub struct PlotArgs {
    /// One or more runs, or a batch (its runs; a search's pruned runs faded); drawn together
    #[arg(required = true)]
    pub run_ids: Vec<crate::runid::RunId>,
    /// The metric to plot
    #[arg(long, default_value = "loss")]
    pub metric: String,
    /// A logarithmic y axis (only positive values are drawn)
    #[arg(long)]
    pub log_y: bool,
    /// Write an image instead (.png or .svg)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn execute(_global: &Global, args: PlotArgs) -> Result<i32, CliError> {
    let store = open_store_refreshed()?;
    let mut records = Vec::new();
    for id in &args.run_ids {
        match find_run(&store, id) {
            Ok(rec) => records.push(rec),
            Err(e) => {
                // A batch id: all its runs.
                let mut batch = super::resume_batch::records(&store, id)?;
                if batch.is_empty() {
                    return Err(e);
                }
                batch.sort_by_key(|r| r.queue_seq);
                records.extend(batch);
            }
        }
    }
    // Pruned runs first, so the others are drawn over them.
    records.sort_by_key(|r| r.status() != Status::Pruned);
    let metrics_files: Vec<PathBuf> = records
        .iter()
        .map(|rec| store.run_dir(&rec.id).join("metrics.jsonl"))
        .collect();
    let reported: BTreeSet<String> = metrics_files
        .iter()
        .filter_map(|path| plot::metric_names(path).ok())
        .flatten()
        .collect();
    if let Some(message) = unknown_metric(&args.metric, &reported) {
        return Err(CliError::usage(message));
    }
    let mut series = Vec::new();
    for (rec, path) in records.iter().zip(&metrics_files) {
        // A run's name labels it unless two runs share the name.
        let shared = records.iter().filter(|r| r.name == rec.name).count() > 1;
        let label = if shared || rec.name.is_empty() {
            rec.id.to_string()
        } else {
            rec.name.clone()
        };
        let pruned = rec.status() == Status::Pruned;
        let label = if pruned {
            format!("{label} (pruned)")
        } else {
            label
        };
        let mut loaded = plot::load_series(path, &args.metric, &label).unwrap_or_else(|_| Series {
            label: label.clone(),
            ..Series::default()
        });
        loaded.faded = pruned;
        series.push(loaded);
    }
    let scale = if args.log_y {
        YScale::Log
    } else {
        YScale::Linear
    };
    match &args.out {
        Some(out) => {
            plot::render_file(&series, &args.metric, out, scale)
                .map_err(|e| CliError::usage(e.to_string()))?;
            crate::ui::info(&format!("wrote {}", out.display()));
        }
        None => {
            let (rows, columns) = console::Term::stdout().size_checked().unwrap_or((24, 100));
            let width = (columns as usize).clamp(40, 200);
            let height = (rows as usize)
                .saturating_sub(4 + series.len())
                .clamp(8, 40);
            super::out::print(&plot::render_terminal(
                &series,
                &args.metric,
                width,
                height,
                table::colour(),
                scale,
            ));
        }
    }
    Ok(0)
}

/// Why `metric` cannot be plotted when the runs reported metrics but never this one (a typo,
/// most likely); runs that reported nothing yet are left to say so themselves.
fn unknown_metric(metric: &str, reported: &BTreeSet<String>) -> Option<String> {
    if reported.is_empty() || reported.contains(metric) {
        return None;
    }
    let names: Vec<&str> = reported.iter().map(String::as_str).collect();
    let suggestion = crate::config::closest(metric, &names)
        .map(|name| format!(" (did you mean {name}?)"))
        .unwrap_or_default();
    Some(format!(
        "no run reported a metric {metric:?}{suggestion}; the runs have: {}; pick one with --metric",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_metric_lists_the_reported_ones() {
        let reported: BTreeSet<String> = ["accuracy", "loss", "val_loss"].map(String::from).into();
        assert_eq!(unknown_metric("loss", &reported), None);
        assert_eq!(unknown_metric("nosuch", &BTreeSet::new()), None);
        assert_eq!(
            unknown_metric("nosuch", &reported).unwrap(),
            "no run reported a metric \"nosuch\"; the runs have: accuracy, loss, val_loss; pick one with --metric"
        );
        assert!(
            unknown_metric("val_los", &reported)
                .unwrap()
                .contains("(did you mean val_loss?)")
        );
    }
}
