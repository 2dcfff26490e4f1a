//! `backprop resume <run-id> [-m MIN]`, and the part of running that `run` shares with it.

use super::Global;
use super::common::{CliError, find_run, load_config, open_store, output, report_outcome};
use super::flags::{check_minutes, number_or_string};
use crate::config::{Executor, FlagValue};
use crate::continuation::Plan;
use crate::executor::{self, Job, Launch, OnRefusal, Started};
use crate::outcome::EXIT_NOT_FOUND;
use crate::record::lifecycle;
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::store::Store;
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop resume train-20261123-162900-1a2b -m 5")]
pub struct ResumeArgs {
    /// The run to continue, or a batch (its search, or its unfinished runs)
    pub run_id: RunId,
    /// Timebox of this attempt in minutes or as a duration (default: the run's own)
    #[arg(short = 'm', long, value_name = "MIN", allow_hyphen_values = true)]
    pub max_run_minutes: Option<String>,
    /// Refuse at once (exit 75) instead of waiting for resources
    #[arg(long)]
    pub no_wait: bool,
    /// local | slurm [default: where the run ran before, else the config's executor]
    #[arg(long)]
    pub executor: Option<Executor>,
    /// Resume a run that completed (a new attempt from its latest checkpoint)
    #[arg(long)]
    pub force: bool,
}

pub fn execute(global: &Global, args: ResumeArgs) -> Result<i32, CliError> {
    if let Some(text) = &args.max_run_minutes {
        check_minutes("--max-run-minutes", text)?;
    }
    let flags: Vec<FlagValue> = args
        .max_run_minutes
        .iter()
        .map(|m| FlagValue {
            flag: "--max-run-minutes".into(),
            key: "maxRunMinutes".into(),
            value: number_or_string(m),
        })
        .collect();
    let loaded = load_config(global, flags)?;
    let config = &loaded.config;
    let store = open_store()?;
    let rec = match find_run(&store, &args.run_id) {
        Ok(rec) => rec,
        Err(e) => {
            // Not a run: maybe a batch.
            if !super::resume_batch::records(&store, &args.run_id)?.is_empty() {
                return super::resume_batch::execute(global, &args, config, &store, &args.run_id);
            }
            return Err(e);
        }
    };
    if rec.status().is_active() {
        return Err(CliError::usage(format!(
            "run {} is still {}; stop it first with `backprop stop {}`",
            rec.id,
            rec.status(),
            rec.id
        )));
    }
    if rec.status() == Status::Completed && !args.force {
        return Err(CliError::usage(format!(
            "run {} already completed; to run it again from its latest checkpoint as a new attempt, pass --force",
            rec.id
        )));
    }
    // The program must still be there: a missing one is exit 127 and changes nothing.
    crate::launch::command_line(&rec.spec, None, None)
        .map_err(|e| CliError::with_code(EXIT_NOT_FOUND, e.to_string()))?;
    if !Path::new(&rec.spec.program).exists() && rec.spec.program.contains('/') {
        return Err(CliError::with_code(
            EXIT_NOT_FOUND,
            format!("the run's script {} no longer exists", rec.spec.program),
        ));
    }
    let (checkpoint, missing) =
        latest_existing_checkpoint(&rec.checkpoints, |p| Path::new(p).exists());
    for path in &missing {
        crate::ui::warn(&format!(
            "checkpoint {path} no longer exists; falling back to an older one"
        ));
    }
    match &checkpoint {
        Some(path) if !global.quiet => crate::ui::info(&format!("resuming {} from {path}", rec.id)),
        None if !rec.checkpoints.is_empty() => crate::ui::warn(&format!(
            "no checkpoint of run {} exists any more; starting from scratch",
            rec.id
        )),
        None if !global.quiet => crate::ui::info(&format!(
            "run {} has no checkpoint; starting from scratch",
            rec.id
        )),
        _ => {}
    }
    let timebox = args
        .max_run_minutes
        .is_some()
        .then(|| config.max_run_minutes.duration());
    let executor = executor::choose(args.executor, Some(&rec), config);
    if executor == Executor::Local {
        claim(&store, &rec)?;
    }
    let plan = Plan::once(rec.spec.options.max_restarts);
    let mut job = Job::next_attempt(&rec, checkpoint, timebox, plan).no_wait(args.no_wait);
    // Admission follows this process's config, not the one of the original run.
    job.spec.options.max_parallel = config.max_parallel;
    let launch = Launch {
        store: &store,
        config,
        output: output(global),
        on_refusal: OnRefusal::Restore(rec.status()),
    };
    match executor::start(vec![job], executor, &launch)? {
        Started::Ran(results) => Ok(report_outcome(global, &store, &rec.id, results)),
        Started::Submitted { job_id } => {
            if !global.quiet {
                crate::ui::info(&format!(
                    "attempt {} of {} submitted to Slurm as job {job_id}",
                    rec.attempts.len() + 1,
                    rec.id
                ));
            }
            Ok(0)
        }
    }
}

/// Claims the ended run for this process's next attempt; another backprop may have resumed
/// it between our read and this write.
pub(super) fn claim(store: &Store, rec: &RunRecord) -> Result<(), CliError> {
    let me = crate::proc_info::me();
    let seq = crate::clock::queue_seq();
    store
        .update_record(&rec.id, |r| {
            lifecycle::reclaim(r, me.clone(), seq)?;
            // Run here: no Slurm job is this attempt's.
            r.slurm = None;
            Ok::<(), lifecycle::Refused>(())
        })?
        .map_err(|_| {
            CliError::usage(format!(
                "run {} was just resumed by another backprop",
                rec.id
            ))
        })
}

/// The newest checkpoint that still exists, and the newer ones that are gone.
pub fn latest_existing_checkpoint(
    checkpoints: &[String],
    exists: impl Fn(&str) -> bool,
) -> (Option<String>, Vec<String>) {
    let mut missing = Vec::new();
    for path in checkpoints.iter().rev() {
        if exists(path) {
            return (Some(path.clone()), missing);
        }
        missing.push(path.clone());
    }
    (None, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_newest_checkpoint_still_on_disk() {
        let list: Vec<String> = ["c1", "c2", "c3"].map(String::from).to_vec();
        let (found, missing) = latest_existing_checkpoint(&list, |p| p != "c3");
        assert_eq!(found.as_deref(), Some("c2"));
        assert_eq!(missing, vec!["c3"]);
        let (found, missing) = latest_existing_checkpoint(&list, |_| false);
        assert_eq!((found, missing.len()), (None, 3));
    }
}
