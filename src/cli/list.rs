//! `backprop list`: runs, newest first.

use super::Global;
use super::common::{
    CliError, duration_text, loss_text, open_store_for_reading, print_json, time_text,
};
use super::table;
use crate::record::RunRecord;
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop list\n  backprop list --json | python3 -m json.tool")]
pub struct ListArgs {}

pub fn execute(global: &Global, _args: ListArgs) -> Result<i32, CliError> {
    let store = open_store_for_reading()?;
    let mut records = Vec::new();
    for rec in store.read()?.records() {
        match rec {
            Ok(rec) => records.push(rec),
            Err(e) => crate::ui::warn(&e.to_string()),
        }
    }
    sort_newest_first(&mut records);
    if global.json {
        print_json(&records);
        return Ok(0);
    }
    if records.is_empty() {
        println!("no runs yet; start one with: backprop run examples/train.py");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = records.iter().map(row).collect();
    println!(
        "{}",
        table::render(
            &[
                "ID", "NAME", "STATUS", "ACTIVE", "STEP", "LOSS", "CKPTS", "STARTED"
            ],
            &rows
        )
    );
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
