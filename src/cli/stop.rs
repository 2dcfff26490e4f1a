//! `backprop stop <run-id | batch-id> | --all`: ask the supervising backprop (maybe in
//! another terminal) to stop runs gracefully, or to drop them from its queue, and wait for
//! them to end.

use super::Global;
use super::common::{CliError, open_store};
use crate::record::RunRecord;
use crate::runid::RunId;
use crate::store::Store;
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop stop train-20261123-162900-1a2b\n  backprop stop batch-20261123-170000-9f3e\n  backprop stop --all"
)]
pub struct StopArgs {
    /// A run id, or a batch id (stops every run of the batch)
    #[arg(required_unless_present = "all")]
    pub id: Option<RunId>,
    /// Stop every active run of this home
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Return at once instead of waiting for the runs to end
    #[arg(long)]
    pub no_wait: bool,
}

pub fn execute(global: &Global, args: StopArgs) -> Result<i32, CliError> {
    let store = open_store()?;
    let targets = targets(&store, args.id.as_ref())?;
    let active: Vec<&RunRecord> = targets.iter().filter(|r| r.status().is_active()).collect();
    if active.is_empty() {
        if !global.quiet {
            match (&args.id, targets.as_slice()) {
                (Some(_), [rec]) if rec.batch_id.as_ref() != args.id.as_ref() => crate::ui::info(
                    &format!("run {} is not active (status {})", rec.id, rec.status()),
                ),
                (Some(batch), _) => crate::ui::info(&format!("batch {batch} has no active runs")),
                (None, _) => crate::ui::info("no active runs"),
            }
        }
        return Ok(0);
    }
    let ids = crate::stopping::request(&store, &active).map_err(|e| match e {
        crate::stopping::StopError::Store(e) => CliError::from(e),
        crate::stopping::StopError::Slurm(message) => CliError::with_code(1, message),
    })?;
    if args.no_wait {
        return Ok(0);
    }
    // Each supervisor sends the stop signal, waits the grace period, then kills.
    let grace = active
        .iter()
        .map(|r| r.spec.options.grace)
        .max()
        .unwrap_or_default();
    let limit = grace + Duration::from_secs(15);
    let started = Instant::now();
    let mut left = ids.clone();
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(200));
        crate::reaper::refresh(&store)?;
        left.retain(|id| store.get(id).is_ok_and(|r| r.status().is_active()));
        if left.is_empty() {
            if !global.quiet {
                for id in &ids {
                    let status = store
                        .get(id)
                        .map(|r| r.status().to_string())
                        .unwrap_or_default();
                    crate::ui::info(&format!("run {id} {status}"));
                }
            }
            return Ok(0);
        }
    }
    Err(CliError::with_code(
        1,
        format!(
            "{} has not ended after {}s; its supervisor may be stuck",
            left.join(", "),
            limit.as_secs()
        ),
    ))
}

/// The runs named: one run, every run of a batch, or (no id) every active run.
fn targets(store: &Store, id: Option<&RunId>) -> Result<Vec<RunRecord>, CliError> {
    Ok(crate::stopping::targets(store, id)?)
}
