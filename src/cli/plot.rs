//! `backprop plot <run-id>... [--metric NAME] [--out FILE.svg|FILE.png]`: a metric over steps,
//! drawn in the terminal or written to an image; several runs overlay.

use super::Global;
use super::common::{CliError, find_in, open_store_for_reading};
use super::table;
use crate::plot::{self, Series};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop plot <run-id>\n  backprop plot <id-a> <id-b> <id-c> --metric val_loss\n  backprop plot <run-id> --out loss.png"
)]
pub struct PlotArgs {
    /// One or more runs; they are drawn together
    #[arg(required = true)]
    pub run_ids: Vec<crate::runid::RunId>,
    /// The metric to plot
    #[arg(long, default_value = "loss")]
    pub metric: String,
    /// Write an image instead (.png or .svg)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn execute(_global: &Global, args: PlotArgs) -> Result<i32, CliError> {
    let (store, all) = open_store_for_reading()?;
    let records = args
        .run_ids
        .iter()
        .map(|id| find_in(&all, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut series = Vec::new();
    for rec in &records {
        // A run's name labels it unless two runs share the name.
        let shared = records.iter().filter(|r| r.name == rec.name).count() > 1;
        let label = if shared || rec.name.is_empty() {
            rec.id.to_string()
        } else {
            rec.name.clone()
        };
        let path = store.run_dir(&rec.id).join("metrics.jsonl");
        let loaded = plot::load_series(&path, &args.metric, &label).unwrap_or_else(|_| Series {
            label: label.clone(),
            ..Series::default()
        });
        series.push(loaded);
    }
    match &args.out {
        Some(out) => {
            plot::render_file(&series, &args.metric, out)
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
            ));
        }
    }
    Ok(0)
}
