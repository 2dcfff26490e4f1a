//! `backprop resume <batch-id>`: continue a batch whose supervising backprop stopped (Ctrl-C,
//! `stop`) or died (kill -9). A search continues from what its records say (rung results,
//! promotions, the runs in flight); an ordinary batch continues its unfinished runs (stopped,
//! timeboxed, lost) with the batch's parallel limit and rounds.

use super::Global;
use super::common::{CliError, output};
use super::queue::{exit_code, print_summary};
use super::resume::{ResumeArgs, latest_existing_checkpoint};
use crate::config::{Config, Executor};
use crate::continuation::{BatchRounds, Plan};
use crate::executor::{self, Job, Launch, OnRefusal, Started, search_run};
use crate::record::lifecycle;
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::search::Phase;
use crate::store::Store;
use std::path::Path;
use std::time::Duration;

/// The runs of `batch_id`, or none when no run belongs to it.
pub fn records(store: &Store, batch_id: &RunId) -> Result<Vec<RunRecord>, CliError> {
    let db = store.connect()?;
    Ok(crate::store::query::batch(db.conn(), batch_id.as_str())?)
}

pub fn execute(
    global: &Global,
    args: &ResumeArgs,
    config: &Config,
    store: &Store,
    batch_id: &RunId,
) -> Result<i32, CliError> {
    // Runs of a supervisor that died are marked lost first: they are resumable.
    crate::reaper::refresh(store)?;
    let records = records(store, batch_id)?;
    if let Some(busy) = records.iter().find(|r| r.status().is_active()) {
        return Err(CliError::usage(format!(
            "batch {batch_id} is still running (run {} is {}); stop it first with `backprop stop {batch_id}`",
            busy.id,
            busy.status()
        )));
    }
    // `-m` sets the timebox of every attempt this resume starts.
    let timebox = args
        .max_run_minutes
        .is_some()
        .then(|| config.max_run_minutes.duration());
    if search_run::parts(&records).is_some() {
        resume_search(global, args, config, store, batch_id, records, timebox)
    } else {
        resume_runs(global, args, config, store, batch_id, records, timebox)
    }
}

fn resume_search(
    global: &Global,
    args: &ResumeArgs,
    config: &Config,
    store: &Store,
    batch_id: &RunId,
    records: Vec<RunRecord>,
    timebox: Option<Duration>,
) -> Result<i32, CliError> {
    if executor::choose(args.executor, None, config) == Executor::Slurm {
        return Err(CliError::usage(
            "a search runs locally only (each promotion depends on results as they come in); resume it with --executor local",
        ));
    }
    let search = search_run::from_records(&records)
        .map_err(|e| CliError::with_code(1, format!("batch {batch_id}: {e}")))?;
    if search.state.is_done() {
        if !global.quiet {
            crate::ui::info(&format!("batch {batch_id}: the search is already over"));
        }
        super::search_summary::print(global, batch_id, &records);
        return Ok(0);
    }
    // Every run still in the search is this process's again, held until its turn.
    let me = crate::proc_info::me();
    for (position, member) in search.members.iter().enumerate() {
        let why = match search.state.phase(position) {
            Some(Phase::New) => "waiting for its turn in the search".to_string(),
            Some(Phase::AtRung { rung }) => format!("rung {rung} done, waiting for promotion"),
            Some(Phase::Training { .. }) => "continues the search".to_string(),
            _ => continue,
        };
        let seq = crate::clock::queue_seq();
        store
            .update_record(&member.id, |r| {
                lifecycle::reclaim(r, me.clone(), seq)?;
                r.slurm = None;
                lifecycle::hold(r, &why)
            })?
            .map_err(|e| {
                CliError::usage(format!("{e}; was the batch resumed by another backprop?"))
            })?;
    }
    let records = records_again(store, &records)?;
    let mut search = search_run::from_records(&records)
        .map_err(|e| CliError::with_code(1, format!("batch {batch_id}: {e}")))?;
    if let Some(timebox) = timebox {
        for member in &mut search.members {
            member.job.timebox = timebox;
        }
    }
    if !global.quiet {
        crate::ui::info(&format!(
            "batch {batch_id}: resuming the search ({} in flight, at most {} at once)",
            search.state.in_flight().len(),
            search.max_parallel
        ));
    }
    let results = executor::local::run_search(store, config, output(global), search);
    let records = records_again(store, &records)?;
    super::search_summary::print(global, batch_id, &records);
    Ok(exit_code(&results))
}

fn resume_runs(
    global: &Global,
    args: &ResumeArgs,
    config: &Config,
    store: &Store,
    batch_id: &RunId,
    records: Vec<RunRecord>,
    timebox: Option<Duration>,
) -> Result<i32, CliError> {
    let unfinished: Vec<&RunRecord> = records
        .iter()
        .filter(|r| {
            matches!(
                r.status(),
                Status::Stopped | Status::Timeboxed | Status::Lost
            )
        })
        .collect();
    if unfinished.is_empty() {
        if !global.quiet {
            crate::ui::info(&format!(
                "batch {batch_id}: no run is stopped, timeboxed or lost; nothing to resume"
            ));
        }
        return Ok(0);
    }
    let executor = executor::choose(args.executor, unfinished.first().copied(), config);
    let mut jobs = Vec::new();
    for rec in &unfinished {
        if executor == Executor::Local {
            super::resume::claim(store, rec)?;
        }
        let (checkpoint, _) =
            latest_existing_checkpoint(&rec.checkpoints, |p| Path::new(p).exists());
        let rounds = BatchRounds::of(rec);
        let plan = Plan {
            rounds: rounds.rounds,
            max_total: rounds.max_total,
            ..Plan::once(rec.spec.options.max_restarts)
        };
        jobs.push(Job::next_attempt(rec, checkpoint, timebox, plan).no_wait(args.no_wait));
    }
    if !global.quiet {
        crate::ui::info(&format!(
            "batch {batch_id}: resuming {} of its {} runs",
            jobs.len(),
            records.len()
        ));
    }
    let launch = Launch {
        store,
        config,
        output: output(global),
        on_refusal: OnRefusal::Restore(Status::Stopped),
    };
    match executor::start(jobs, executor, &launch)? {
        Started::Ran(results) => {
            let records = records_again(store, &records)?;
            print_summary(global, batch_id, &records, &results);
            Ok(exit_code(&results))
        }
        Started::Submitted { job_id } => {
            if !global.quiet {
                crate::ui::info(&format!(
                    "batch {batch_id}: {} runs submitted to Slurm as job {job_id}",
                    unfinished.len()
                ));
            }
            Ok(0)
        }
    }
}

/// The same runs as they stand now.
fn records_again(store: &Store, records: &[RunRecord]) -> Result<Vec<RunRecord>, CliError> {
    Ok(records
        .iter()
        .map(|r| store.get(&r.id))
        .collect::<Result<_, _>>()?)
}
