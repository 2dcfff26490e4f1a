//! `backprop list`: runs, newest first.

use super::Global;
use super::common::{
    CliError, duration_text, loss_text, open_store_for_reading, print_json, time_text,
};
use super::table;
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
    let (_, mut records) = open_store_for_reading()?;
    sort_newest_first(&mut records);
    records.retain(|r| status.is_none_or(|s| r.status == s));
    records.retain(|r| {
        pattern
            .as_ref()
            .is_none_or(|p| p.matches(&r.name) || p.matches(&r.id))
    });
    if let Some(limit) = args.limit {
        records.truncate(limit);
    }
    if global.json {
        print_json(&records);
        return Ok(0);
    }
    if records.is_empty() {
        if args.status.is_some() || args.name.is_some() {
            println!("no runs match");
        } else {
            println!("no runs yet; start one with: backprop run examples/train.py");
        }
        return Ok(0);
    }
    let colour = table::colour();
    let mut headers = vec![
        "ID", "NAME", "STATUS", "ACTIVE", "STEP", "LOSS", "CKPTS", "STARTED",
    ];
    let on_slurm = records.iter().any(|r| r.slurm.is_some());
    if on_slurm {
        headers.push("SLURM");
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut cells = row(r);
            if on_slurm {
                cells.push(slurm_text(r));
            }
            cells
        })
        .collect();
    println!("{}", table::render_with_status(&headers, &rows, colour));
    Ok(0)
}

pub fn sort_newest_first(records: &mut [RunRecord]) {
    records.sort_by_key(|r| std::cmp::Reverse(r.created_time.max(r.start_time.unwrap_or(0))));
}

fn row(rec: &RunRecord) -> Vec<String> {
    vec![
        rec.id.clone(),
        rec.name.clone(),
        rec.status.to_string(),
        duration_text(rec.active_ms),
        rec.last_step
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        loss_text(rec.last_loss),
        rec.checkpoints.len().to_string(),
        rec.start_time.map(time_text).unwrap_or_else(|| "-".into()),
    ]
}

/// `1234 RUNNING` for a run handed to Slurm.
pub fn slurm_text(rec: &RunRecord) -> String {
    match &rec.slurm {
        Some(job) => format!("{} {}", job.job_id, job.state.as_deref().unwrap_or("?")),
        None => "-".into(),
    }
}
