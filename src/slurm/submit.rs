//! Handing jobs to Slurm: the batch script, `sbatch`, and the records that say so. A refused
//! submission leaves nothing recorded as submitted (new runs are removed again, resumed ones
//! go back to how they ended) and no job script behind.

use super::{JobScript, SlurmError, time_limit_minutes};
use crate::config::Config;
use crate::executor::{Job, OnRefusal};
use crate::record::SlurmJob;
use crate::record::lifecycle;
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
    check_partition_limit(config, time_minutes)?;
    write_submitted(store, config, jobs)?;
    let script = log_dir.join("slurm-job.sh");
    std::fs::write(&script, text).map_err(io("write", &script))?;
    let submitted = super::submit(&script);
    if submitted.is_err() {
        let _ = std::fs::remove_file(&script);
    }
    Ok(submitted?)
}

/// A job whose `--time` exceeds its partition's limit would pend for ever: refused here,
/// with both numbers (best effort: when sinfo does not answer, Slurm judges).
fn check_partition_limit(config: &Config, time_minutes: u64) -> Result<(), SlurmError> {
    let extra = |flag: &str| {
        config.slurm.extra_args.iter().rev().find_map(|a| {
            a.strip_prefix(flag)
                .and_then(|v| v.strip_prefix('='))
                .map(str::to_string)
        })
    };
    let partition = extra("--partition").or_else(|| config.slurm.partition.clone());
    let asked = match extra("--time") {
        Some(time) => match super::parse_time(&time) {
            Some(Some(limit)) => limit.as_secs().div_ceil(60),
            _ => return Ok(()),
        },
        None => time_minutes,
    };
    let Some((name, Some(limit))) = super::client::partition_limit(partition.as_deref()) else {
        return Ok(());
    };
    let limit_minutes = limit.as_secs() / 60;
    if asked > limit_minutes {
        return Err(SlurmError::Refused {
            command: "sbatch",
            message: format!(
                "the job needs --time={asked} minutes (timebox + grace period + slurm.timeMargin) but partition {name} allows at most {limit_minutes}; shorten the run (-m) or slurm.timeMargin, or choose another partition (slurm.partition)"
            ),
        });
    }
    Ok(())
}

/// What each run's node needs, in its run directory before the job can start: the record
/// as submitted and the whole effective config (`--config` included), so nothing is read
/// again on the node. A stop file left by an earlier stop no longer applies.
fn write_submitted(store: &Store, config: &Config, jobs: &[Job]) -> Result<(), SubmitError> {
    for job in jobs {
        let run_dir = store.ensure_run_dir(&job.run_id)?;
        let _ = std::fs::remove_file(run_dir.join(super::node::STOP_FILE));
        let mut record = store.get(&job.run_id)?;
        let slurm = SlurmJob {
            resume_from: job.resume_from.clone(),
            max_run_seconds: Some(job.timebox.as_secs_f64()),
            ..SlurmJob::default()
        };
        lifecycle::or_log(lifecycle::submit_to_slurm(
            &mut record,
            slurm,
            "submitted to Slurm",
        ));
        let submitted = super::node::Submitted {
            record,
            config: config.clone(),
            resume_from: job.resume_from.clone(),
            timebox_secs: job.timebox.as_secs_f64(),
            spec: job.spec.clone(),
        };
        let path = super::node::submitted_path(&run_dir);
        super::node::write_submitted(&run_dir, &submitted).map_err(io("write", &path))?;
    }
    Ok(())
}

fn record_submission(store: &Store, jobs: &[Job], job_id: &str) -> Result<(), StoreError> {
    let array = jobs.len() > 1;
    let submitted = store.update(|ex| {
        let mut submitted = Vec::new();
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
                ..SlurmJob::default()
            };
            lifecycle::or_log(lifecycle::submit_to_slurm(&mut rec, slurm, &why));
            ex.put(&rec);
            submitted.push(rec);
        }
        submitted
    })?;
    // The run directory then holds the record as the store has it, job id included, so a
    // store lost before the job starts can take the run back from there.
    for rec in submitted {
        let run_dir = store.run_dir(&rec.id);
        if let Some(mut file) = super::node::read_submitted(&run_dir) {
            file.record = rec;
            if let Err(e) = super::node::write_submitted(&run_dir, &file) {
                tracing::info!("cannot note the job id in {}: {e}", run_dir.display());
            }
        }
    }
    Ok(())
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
    for id in ids {
        let _ = std::fs::remove_file(super::node::submitted_path(&store.run_dir(id)));
    }
    if on_refusal == OnRefusal::Remove {
        for id in ids {
            let _ = std::fs::remove_dir_all(store.run_dir(id));
        }
        if ids.len() > 1 {
            let _ = std::fs::remove_dir_all(store.home().join("batches").join(&ids[0]));
        }
    }
}
