//! backprop inside its Slurm job: the batch script runs `backprop run --executor local
//! --run-id <id>`, and when the run directory holds the submission for this job, the run
//! starts at once, under exactly what Slurm allocated (no gates, no home queue, only the
//! GPUs Slurm gave), with the config it was submitted with. Its state goes to its node file,
//! never to the store's database. Slurm's early warning stops it gracefully with a
//! checkpoint, and with `slurm.requeue` the job is requeued: the next start resumes from the
//! latest checkpoint with the timebox that is left.

use super::{Job, Output};
use crate::actors::{NodeRun, run_jobs};
use crate::clock::now_ms;
use crate::continuation::Plan;
use crate::outcome::{Outcome, StopCause};
use crate::record::lifecycle::{self, AttemptEnd};
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::slurm::node::{self, NodeFile, NodeRole, Takeover, TakeoverError};
use crate::store::Store;
use std::path::{Path, PathBuf};

/// What became of the attempt on the node.
pub struct NodeResult {
    pub outcome: Outcome,
    /// Backprop's exit status for Slurm: 0 for every end backprop chose (completed,
    /// timeboxed, stopped), so accounting says COMPLETED; the script's code when it failed.
    pub exit_code: i32,
}

/// The run `id` when this process runs inside the Slurm job it was submitted to; None when
/// it is not a submitted run (a plain `run --run-id` inside some allocation).
pub fn submitted_here(home: &Path, id: &RunId) -> Option<(String, PathBuf)> {
    let job = node::this_job()?;
    let run_dir = home.join("runs").join(id.as_str());
    node::submitted_path(&run_dir)
        .is_file()
        .then_some((job, run_dir))
}

/// Runs this job's attempt of `id` to its end.
pub fn run(home: &Path, id: &RunId, job_id: &str, run_dir: &Path, output: Output) -> NodeResult {
    match node::take_over(run_dir, id, job_id) {
        Ok(Some(takeover)) => run_takeover(home, takeover, run_dir, output),
        Ok(None) => refused(format!("run {id} was not submitted to this job")),
        Err(TakeoverError::RequeuesUsed {
            max,
            record,
            requeues,
        }) => {
            let why = format!("slurm: requeued more than slurm.maxRequeues ({max}) times");
            let file = NodeFile::new(run_dir.to_path_buf(), job_id.to_string(), requeues);
            end_without_running(&file, *record, &why, output)
        }
        Err(e) => refused(e.to_string()),
    }
}

fn refused(why: String) -> NodeResult {
    crate::ui::error(&why);
    NodeResult {
        outcome: Outcome {
            status: Status::Failed,
            reason: why,
            exit_code: 2,
        },
        exit_code: 2,
    }
}

/// The run ends here without an attempt (stopped before the job started, or out of
/// requeues); what the last job left open is closed.
fn end_without_running(
    file: &NodeFile,
    mut rec: RunRecord,
    why: &str,
    output: Output,
) -> NodeResult {
    let now = now_ms();
    let ended = match rec.status() {
        Status::Queued => lifecycle::end_unstarted(&mut rec, Status::Stopped, why, now),
        Status::Running | Status::Paused => {
            let end = AttemptEnd {
                status: Status::Stopped,
                reason: why.to_string(),
                exit_code: None,
                signal: None,
            };
            lifecycle::finish(&mut rec, &end, now)
        }
        _ => Ok(()),
    };
    lifecycle::or_log(ended);
    if let Err(e) = file.write(&rec) {
        crate::ui::error(&format!("cannot write {}: {e}", file.path().display()));
    }
    if !output.quiet {
        crate::ui::info(&format!("{} stopped: {why}", rec.id));
    }
    NodeResult {
        outcome: Outcome {
            status: Status::Stopped,
            reason: why.to_string(),
            exit_code: 0,
        },
        exit_code: 0,
    }
}

fn run_takeover(home: &Path, t: Takeover, run_dir: &Path, output: Output) -> NodeResult {
    let config = &t.config;
    // Slurm may send its warning up to a minute early, so on a short job even before the
    // supervisor listens for it; until then it must not kill backprop (its default action).
    // The supervisor's handler replaces this; the script starts with default dispositions.
    ignore_until_listened(config.slurm.signal.signal());
    let file = NodeFile::new(run_dir.to_path_buf(), t.job_id.clone(), t.requeues);
    if node::stop_requested(run_dir) {
        return end_without_running(&file, t.record, "user", output);
    }
    if let Err(e) = file.write(&t.record) {
        return refused(format!("cannot write {}: {e}", file.path().display()));
    }
    let mut job = Job::next_attempt(
        &t.record,
        t.resume_from.clone(),
        Some(t.timebox),
        Plan::once(t.spec.options.max_restarts),
    );
    job.spec = t.spec.clone();
    let multi_task = config.slurm.nodes > 1 || config.slurm.ntasks_per_node.is_some();
    let mut system = super::local::system_config(config, output);
    system.policy.inside_allocation = true;
    system.settings.node = Some(NodeRole {
        job_id: t.job_id.clone(),
        run_dir: run_dir.to_path_buf(),
        warning: config.slurm.signal.signal(),
        signal_before: config.slurm.signal_before.duration(),
    });
    if multi_task {
        system.settings.launcher = crate::launch::Launcher {
            prefix: vec!["srun".into(), "--kill-on-bad-exit=1".into()],
            slurm_job: std::env::var("SLURM_JOB_ID").ok(),
        };
    }
    system.node = Some(NodeRun {
        file: file.clone(),
        record: t.record.clone(),
    });
    let id = t.record.id.clone();
    let store = Store::open_for_reading(home);
    let results = run_jobs(store, system, vec![job]);
    let Some((_, outcome)) = results.into_iter().find(|(r, _)| *r == id) else {
        return refused(format!("run {id} ended without an outcome"));
    };
    let requeue_left = config.slurm.requeue && t.requeues < config.slurm.max_requeues;
    let warned = [StopCause::SlurmTimeLimit, StopCause::SlurmPreempted]
        .iter()
        .any(|c| c.reason() == outcome.reason);
    if warned && requeue_left {
        requeue(&file, &outcome, &t.job_id, output);
    }
    if !output.quiet {
        crate::ui::info(&format!("{id} {} ({})", outcome.status, outcome.reason));
    }
    let exit_code = match outcome.status {
        Status::Completed | Status::Timeboxed | Status::Stopped => 0,
        _ => outcome.exit_code,
    };
    NodeResult { outcome, exit_code }
}

/// Requeues this job after its early warning; the node file says so, so `list` shows the run
/// waiting for its next start rather than stopped.
fn requeue(file: &NodeFile, outcome: &Outcome, job_id: &str, output: Output) {
    let Some(mut rec) = node::read_node_state(file.run_dir()).map(|s| s.record) else {
        return;
    };
    let why = format!(
        "{}; requeued, resumes from its latest checkpoint when the job starts again",
        outcome.reason
    );
    if lifecycle::reclaim(&mut rec, crate::proc_info::me(), crate::clock::queue_seq()).is_err()
        || lifecycle::wait(&mut rec, &why).is_err()
    {
        return;
    }
    rec.supervisor = None;
    // Written before the requeue: Slurm ends this job as soon as it is requeued.
    if let Err(e) = file.write(&rec) {
        crate::ui::warn(&format!(
            "cannot write {}: {e}; not requeued",
            file.path().display()
        ));
        return;
    }
    match crate::slurm::requeue(job_id) {
        Ok(()) => {
            if !output.quiet {
                crate::ui::info(&format!("{}: {why}", rec.id));
            }
        }
        Err(e) => {
            crate::ui::warn(&format!("scontrol requeue {job_id} failed: {e}"));
            lifecycle::or_log(lifecycle::end_unstarted(
                &mut rec,
                Status::Stopped,
                &format!("{} (requeue refused: {e})", outcome.reason),
                now_ms(),
            ));
            let _ = file.write(&rec);
        }
    }
}

fn ignore_until_listened(signal: nix::sys::signal::Signal) {
    use nix::sys::signal::{SigHandler, signal as set_handler};
    // SAFETY: SIG_IGN installs no code of ours; nothing else handles this signal yet.
    if let Err(e) = unsafe { set_handler(signal, SigHandler::SigIgn) } {
        tracing::debug!("cannot ignore {signal} until the supervisor listens: {e}");
    }
}
