//! Handing jobs to Slurm: the batch script, `sbatch`, and the records that say so. A refused
//! submission leaves nothing recorded as submitted (new runs are removed again, resumed ones
//! go back to how they ended) and no job script behind.

use super::{JobScript, SlurmError, time_limit_minutes};
use crate::config::Config;
use crate::executor::{Job, OnRefusal};
use crate::record::lifecycle;
use crate::record::{RunRecord, SlurmJob};
use crate::runid::RunId;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// Submits `jobs` as one job (one run) or one job array throttled to `maxParallel`, and marks
/// their records queued on Slurm. Returns the job id.
pub fn submit_jobs(
    store: &Store,
    config: &Config,
    jobs: &[Job],
    on_refusal: OnRefusal,
) -> Result<String, SubmitError> {
    let ids: Vec<RunId> = jobs.iter().map(|j| j.run_id.clone()).collect();
    match submit_script(store, config, jobs, &ids) {
        Ok(job_id) => {
            record_submission(store, jobs, &job_id)?;
            Ok(job_id)
        }
        Err(e) => {
            undo(store, &ids, on_refusal);
            Err(e)
        }
    }
}

fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SubmitError {
    let path = path.display().to_string();
    move |source| SubmitError::Io {
        action,
        path,
        source,
    }
}

/// Writes the batch script and hands it to `sbatch`.
fn submit_script(
    store: &Store,
    config: &Config,
    jobs: &[Job],
    ids: &[RunId],
) -> Result<String, SubmitError> {
    let (log_dir, job_name) = if ids.len() == 1 {
        (
            store.ensure_run_dir(&ids[0])?,
            format!("backprop-{}", ids[0]),
        )
    } else {
        let dir = store.home().join("batches").join(&ids[0]);
        crate::store::ensure_private_dir(&dir).map_err(io("create", &dir))?;
        (dir, format!("backprop-batch-{}", ids.len()))
    };
    let longest = jobs.iter().map(|j| j.timebox).max().unwrap_or_default();
    let time_minutes = time_limit_minutes(
        longest,
        config.grace_period.duration(),
        config.slurm.time_margin.duration(),
    );
    let backprop = std::env::current_exe().map_err(io("find", std::path::Path::new("backprop")))?;
    let run_ids: Vec<String> = ids.iter().map(RunId::to_string).collect();
    let text = JobScript {
        job_name: &job_name,
        log_dir: &log_dir,
        time_minutes,
        gpus: jobs.iter().filter_map(|j| j.spec.options.gpus).max(),
        slurm: &config.slurm,
        run_ids: &run_ids,
        parallel: config.max_parallel,
        home: store.home(),
        cwd: &jobs[0].spec.cwd,
        backprop: &backprop,
    }
    .render();
    let script = log_dir.join("slurm-job.sh");
    std::fs::write(&script, text).map_err(io("write", &script))?;
    let submitted = super::submit(&script);
    if submitted.is_err() {
        let _ = std::fs::remove_file(&script);
    }
    Ok(submitted?)
}

fn record_submission(store: &Store, jobs: &[Job], job_id: &str) -> Result<(), StoreError> {
    let array = jobs.len() > 1;
    store.update(|ex| {
        for (index, job) in jobs.iter().enumerate() {
            let Ok(mut rec) = ex.record(&job.run_id) else {
                continue;
            };
            let task = if array {
                format!("{job_id}_{index}")
            } else {
                job_id.to_string()
            };
            let why = format!("submitted to Slurm as job {task}");
            let slurm = SlurmJob {
                job_id: task,
                state: Some("PENDING".into()),
                resume_from: job.resume_from.clone(),
                max_run_seconds: Some(job.timebox.as_secs_f64()),
            };
            lifecycle::or_log(lifecycle::submit_to_slurm(&mut rec, slurm, &why));
            ex.put(&rec);
        }
    })
}

fn undo(store: &Store, ids: &[RunId], on_refusal: OnRefusal) {
    let _ = store.update(|ex| {
        for id in ids {
            match on_refusal {
                OnRefusal::Remove => {
                    ex.remove(id);
                }
                OnRefusal::Restore(status) => {
                    if let Ok(mut rec) = ex.record(id) {
                        lifecycle::or_log(lifecycle::unsubmit(&mut rec, status));
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
        if ids.len() > 1 {
            let _ = std::fs::remove_dir_all(store.home().join("batches").join(&ids[0]));
        }
    }
}

/// On the node: takes over a run that was submitted to Slurm and is waiting for this job.
/// Returns the record as it was claimed, or None when it is not a submitted run.
pub fn adopt(store: &Store, id: &RunId) -> Result<Option<RunRecord>, StoreError> {
    let me = crate::proc_info::me();
    let host = me.host.clone();
    store.update(|ex| {
        let mut rec = ex.record(id).ok()?;
        let unclaimed = rec.supervisor.as_ref().is_none_or(|s| {
            crate::proc_info::liveness(s, &host) == crate::proc_info::Liveness::Dead
        });
        if rec.slurm.is_none() || !unclaimed {
            return None;
        }
        lifecycle::adopt(&mut rec, me.clone()).ok()?;
        ex.put(&rec);
        Some(rec)
    })
}
