//! One entry point for starting runs: `run`, `resume` and `queue` build [`Job`]s and hand
//! them to [`start`]; the local executor runs them under this process's actors, the Slurm
//! executor submits them as Slurm jobs whose node-side backprop runs them.

pub mod local;
pub mod new_runs;
pub mod on_node;
pub mod search_run;

use crate::config::{Config, Executor};
use crate::continuation::Plan;
use crate::outcome::Outcome;
use crate::record::{RunRecord, RunSpec, Status};
use crate::runid::RunId;
use crate::store::Store;
use std::time::Duration;

/// One attempt of a run, to start.
#[derive(Clone, Debug)]
pub struct Job {
    pub run_id: RunId,
    pub spec: RunSpec,
    pub attempt: u32,
    pub resume_from: Option<String>,
    /// This attempt's timebox (active time).
    pub timebox: Duration,
    /// Refuse at once rather than wait for a start.
    pub no_wait: bool,
    /// Restarts and rounds left to this run.
    pub plan: Plan,
    /// A search run: stop gracefully at this rung's budget.
    pub rung: Option<crate::search::RungTarget>,
}

impl Job {
    /// The first attempt of a new run.
    pub fn first(run_id: RunId, spec: RunSpec, resume_from: Option<String>, plan: Plan) -> Job {
        Job {
            run_id,
            timebox: spec.options.max_run,
            spec,
            attempt: 1,
            resume_from,
            no_wait: false,
            plan,
            rung: None,
        }
    }

    /// The next attempt of a run that exists: its timebox is `timebox` when one is given for
    /// this attempt (`resume -m`, what is left after a Slurm requeue), else the spec's.
    pub fn next_attempt(
        rec: &RunRecord,
        resume_from: Option<String>,
        timebox: Option<Duration>,
        plan: Plan,
    ) -> Job {
        Job {
            run_id: rec.id.clone(),
            timebox: timebox.unwrap_or(rec.spec.options.max_run),
            spec: rec.spec.clone(),
            attempt: rec.attempts.len() as u32 + 1,
            resume_from,
            no_wait: false,
            plan,
            rung: None,
        }
    }

    pub fn no_wait(mut self, no_wait: bool) -> Job {
        self.no_wait = no_wait;
        self
    }
}

/// How every run of this process ended.
pub type Results = Vec<(RunId, Outcome)>;

/// How the runs' output is shown.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Echo the script's protocol lines (`-v`).
    pub echo_protocol: bool,
    pub quiet: bool,
    /// `--json`: stdout carries data, so the scripts' stdout goes to stderr.
    pub json: bool,
}

/// What to do with the records when Slurm refuses a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefusal {
    /// New records: remove them (no run claims to have been submitted).
    Remove,
    /// A resumed run: back to how it ended.
    Restore(Status),
}

/// Everything [`start`] needs besides the jobs.
pub struct Launch<'a> {
    pub store: &'a Store,
    /// The effective config (a batch's own keys included).
    pub config: &'a Config,
    pub output: Output,
    pub on_refusal: OnRefusal,
}

/// What became of the jobs.
pub enum Started {
    /// Run here to their end.
    Ran(Results),
    /// Handed to Slurm as this job (or job array).
    Submitted { job_id: String },
}

/// Where a run goes: the flag, else where it ran before, else the config.
pub fn choose(flag: Option<Executor>, previous: Option<&RunRecord>, config: &Config) -> Executor {
    flag.unwrap_or(match previous {
        Some(rec) if rec.slurm.is_some() => Executor::Slurm,
        _ => config.executor,
    })
}

/// Starts `jobs` on `executor`.
pub fn start(
    jobs: Vec<Job>,
    executor: Executor,
    launch: &Launch,
) -> Result<Started, crate::slurm::SubmitError> {
    match executor {
        Executor::Local => Ok(Started::Ran(local::run(
            launch.store,
            launch.config,
            launch.output,
            jobs,
        ))),
        Executor::Slurm => {
            crate::slurm::submit_jobs(launch.store, launch.config, &jobs, launch.on_refusal)
                .map(|job_id| Started::Submitted { job_id })
        }
    }
}
