//! `backprop list`: runs, newest first.

use super::Global;
use super::common::{
    CliError, duration_text, loss_text, open_store_refreshed, print_json, time_text,
};
use super::{out, table};
use crate::record::{RunRecord, Status};
use clap::Args;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop list\n  backprop list --status running --limit 5\n  backprop list --name 'lr0.1-*'\n  backprop list --json | python3 -m json.tool"
)]
pub struct ListArgs {
    /// Only runs with this status (queued, running, paused, completed, failed, timeboxed, stopped, rejected, lost)
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// At most this many runs (the newest)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only runs whose name (or id) matches this glob, e.g. 'lr0.1-*'
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
}

pub fn execute(global: &Global, args: ListArgs) -> Result<i32, CliError> {
    let status: Option<Status> = match &args.status {
        Some(text) => Some(serde_json::from_value(serde_json::Value::from(text.to_ascii_lowercase())).map_err(|_| {
            CliError::usage(format!(
                "--status {text:?} is not a status; use one of queued, running, paused, completed, failed, timeboxed, stopped, rejected, lost"
            ))
        })?),
        None => None,
    };
    let pattern =
        match &args.name {
            Some(glob) => Some(glob::Pattern::new(glob).map_err(|e| {
                CliError::usage(format!("--name {glob:?} is not a valid glob: {e}"))
            })?),
            None => None,
        };
    let store = open_store_refreshed()?;
    let ex = store.read()?;
    // The table needs a few fields of each run: parse only those (cheap at 10,000 runs).
    let mut rows: Vec<ListRow> = Vec::new();
    for row in ex.parse_all::<ListRow>() {
        match row {
            Ok(row) => rows.push(row),
            Err(e) => crate::ui::warn(&e.to_string()),
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_time.max(r.start_time.unwrap_or(0))));
    rows.retain(|r| status.is_none_or(|s| r.status == s));
    rows.retain(|r| {
        pattern
            .as_ref()
            .is_none_or(|p| p.matches(&r.name) || p.matches(&r.id))
    });
    if let Some(limit) = args.limit {
        rows.truncate(limit);
    }
    if global.json {
        let records: Vec<RunRecord> = rows.iter().filter_map(|r| ex.record(&r.id).ok()).collect();
        print_json(&records);
        return Ok(0);
    }
    if rows.is_empty() {
        if args.status.is_some() || args.name.is_some() {
            out::line("no runs match");
        } else {
            out::line("no runs yet; start one with: backprop run examples/train.py");
        }
        return Ok(0);
    }
    let colour = table::colour();
    let mut headers = vec![
        "ID", "NAME", "STATUS", "ACTIVE", "STEP", "LOSS", "CKPTS", "STARTED",
    ];
    let on_slurm = rows.iter().any(|r| r.slurm.is_some());
    if on_slurm {
        headers.push("SLURM");
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells(on_slurm)).collect();
    out::line(&table::render_with_status(&headers, &cells, colour));
    Ok(0)
}

/// What a line of `list` shows of a record.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRow {
    id: String,
    #[serde(default)]
    name: String,
    status: Status,
    #[serde(default)]
    active_ms: u64,
    #[serde(default)]
    last_step: Option<u64>,
    #[serde(default)]
    last_loss: Option<f64>,
    #[serde(default)]
    checkpoints: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    start_time: Option<u64>,
    #[serde(default)]
    created_time: u64,
    #[serde(default)]
    slurm: Option<crate::record::SlurmJob>,
}

impl ListRow {
    fn cells(&self, with_slurm: bool) -> Vec<String> {
        let mut cells = vec![
            self.id.clone(),
            self.name.clone(),
            self.status.to_string(),
            duration_text(self.active_ms),
            self.last_step
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            loss_text(self.last_loss),
            self.checkpoints.len().to_string(),
            self.start_time.map(time_text).unwrap_or_else(|| "-".into()),
        ];
        if with_slurm {
            cells.push(slurm_text(self.slurm.as_ref()));
        }
        cells
    }
}

pub fn sort_newest_first(records: &mut [RunRecord]) {
    records.sort_by_key(|r| std::cmp::Reverse(r.created_time.max(r.start_time.unwrap_or(0))));
}

/// `1234 RUNNING` for a run handed to Slurm.
pub fn slurm_text(job: Option<&crate::record::SlurmJob>) -> String {
    match job {
        Some(job) => format!("{} {}", job.job_id, job.state.as_deref().unwrap_or("?")),
        None => "-".into(),
    }
}
