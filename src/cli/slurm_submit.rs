//! Handing runs to Slurm: the batch script, `sbatch`, and the records that say so. A refused
//! submission leaves nothing recorded as running (new runs are removed again).

use super::common::CliError;
use crate::config::Config;
use crate::record::{RunRecord, SlurmJob, Status};
use crate::slurm::{self, JobScript};
use crate::store::Store;
use std::time::Duration;

/// One run to submit, with what its node-side attempt needs.
pub struct Submission {
    pub run_id: String,
    pub resume_from: Option<String>,
    pub max_run: Duration,
}

/// What to do with the records if `sbatch` refuses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// New records: remove them (no run claims to have been submitted).
    Remove,
    /// A resumed run: back to how it ended.
    Restore(Status),
}

/// Submits `runs` as one job (one run) or one job array throttled to `parallel`, and marks
/// their records queued on Slurm. Returns the job id.
pub fn submit(
    store: &Store,
    config: &Config,
    runs: &[Submission],
    gpus: Option<u32>,
    parallel: u32,
    cwd: &str,
    on_refusal: OnRefusal,
) -> Result<String, CliError> {
    let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    let (log_dir, job_name) = if ids.len() == 1 {
        (
            store.ensure_run_dir(&ids[0])?,
            format!("backprop-{}", ids[0]),
        )
    } else {
        let dir = store.home().join("batches").join(&ids[0]);
        crate::store::ensure_private_dir(&dir)
            .map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
        (dir, format!("backprop-batch-{}", ids.len()))
    };
    let longest = runs.iter().map(|r| r.max_run).max().unwrap_or_default();
    let time_minutes = slurm::time_limit_minutes(
        longest,
        config.grace_period.duration(),
        config.slurm.time_margin.duration(),
    );
    let backprop = std::env::current_exe()
        .map_err(|e| CliError::usage(format!("cannot find the backprop binary: {e}")))?;
    let text = JobScript {
        job_name: &job_name,
        log_dir: &log_dir,
        time_minutes,
        gpus,
        slurm: &config.slurm,
        run_ids: &ids,
        parallel,
        home: store.home(),
        cwd,
        backprop: &backprop,
    }
    .render();
    let script = log_dir.join("slurm-job.sh");
    std::fs::write(&script, text)
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", script.display())))?;
    let job_id = match slurm::submit(&script) {
        Ok(id) => id,
        Err(e) => {
            undo(store, &ids, on_refusal);
            return Err(CliError::usage(e.to_string()));
        }
    };
    let array = ids.len() > 1;
    store.update(|ex| {
        for (index, run) in runs.iter().enumerate() {
            let Ok(mut rec) = ex.record(&run.run_id) else {
                continue;
            };
            let task = if array {
                format!("{job_id}_{index}")
            } else {
                job_id.clone()
            };
            rec.status = Status::Queued;
            rec.supervisor = None;
            rec.end_time = None;
            rec.reason = Some(format!("submitted to Slurm as job {task}"));
            rec.slurm = Some(SlurmJob {
                job_id: task,
                state: Some("PENDING".into()),
                resume_from: run.resume_from.clone(),
                max_run_seconds: Some(run.max_run.as_secs_f64()),
            });
            ex.put(&rec);
        }
    })?;
    Ok(job_id)
}

fn undo(store: &Store, ids: &[String], on_refusal: OnRefusal) {
    let _ = store.update(|ex| {
        for id in ids {
            match on_refusal {
                OnRefusal::Remove => {
                    ex.remove(id);
                }
                OnRefusal::Restore(status) => {
                    if let Ok(mut rec) = ex.record(id) {
                        rec.status = status;
                        rec.supervisor = None;
                        ex.put(&rec);
                    }
                }
            }
        }
    });
    if on_refusal == OnRefusal::Remove {
        for id in ids {
            let _ = std::fs::remove_dir_all(store.run_dir(id));
        }
    }
}

/// On the node: takes over a run that was submitted to Slurm and is waiting for this job.
/// Returns the record as it was claimed, or None when it is not a submitted run.
pub fn adopt(store: &Store, id: &str) -> Result<Option<RunRecord>, CliError> {
    let me = crate::proc_info::me();
    let host = me.host.clone();
    Ok(store.update(|ex| {
        let mut rec = ex.record(id).ok()?;
        let unclaimed = rec.supervisor.as_ref().is_none_or(|s| {
            crate::proc_info::liveness(s, &host) == crate::proc_info::Liveness::Dead
        });
        if rec.status != Status::Queued || rec.slurm.is_none() || !unclaimed {
            return None;
        }
        rec.supervisor = Some(me.clone());
        if let Some(slurm) = rec.slurm.as_mut() {
            slurm.state = Some("RUNNING".into());
        }
        ex.put(&rec);
        Some(rec)
    })?)
}
