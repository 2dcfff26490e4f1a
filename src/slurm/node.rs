//! backprop on a Slurm node. The allocation is the admission: no local gates, no home-wide
//! queue, exactly the GPUs Slurm gave. The run's state never goes to the store's database
//! (no locks across nodes): the node writes its run's record to a file in the run directory
//! (it is the only writer of that file), and the submitting side takes it into the store when
//! it syncs. What the node runs comes from a file the submitting side wrote at submission:
//! the record and the whole effective config, so `--config` and every value travel with the
//! job.

use crate::clock::now_ms;
use crate::config::Config;
use crate::outcome::StopCause;
use crate::record::lifecycle::{self, AttemptEnd};
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Written by the submitting side before `sbatch`.
pub const SUBMITTED_FILE: &str = "slurm-submitted.json";
/// Written by backprop on the node, at every change of the run.
pub const NODE_FILE: &str = "slurm-node.json";
/// Written by `backprop stop` before it signals the job: the stop is the user's.
pub const STOP_FILE: &str = "slurm-stop";

/// What the node needs to run the submitted attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    pub record: RunRecord,
    pub config: Config,
    pub resume_from: Option<String>,
    /// This submission's timebox (a resume with `-m`, or the run's own).
    pub timebox_secs: f64,
    /// What the attempt runs (the record's spec with this submission's settings).
    pub spec: crate::record::RunSpec,
}

/// The run as the node sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub record: RunRecord,
    /// The Slurm job (`123` or `123_4`) this state belongs to.
    pub job_id: String,
    /// When the node last wrote it (epoch ms).
    pub updated_ms: u64,
    /// Times this job was requeued so far.
    pub requeues: u32,
}

pub fn submitted_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SUBMITTED_FILE)
}

pub fn node_path(run_dir: &Path) -> PathBuf {
    run_dir.join(NODE_FILE)
}

/// The job this process runs in (`123`, or `123_4` for task 4 of array 123), if any.
pub fn this_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(array), Some(task)) => Some(format!("{array}_{task}")),
        _ => var("SLURM_JOB_ID"),
    }
}

pub fn write_submitted(run_dir: &Path, submitted: &Submitted) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(submitted).map_err(std::io::Error::other)?;
    crate::file_writer::replace(&submitted_path(run_dir), &bytes)
}

pub fn read_submitted(run_dir: &Path) -> Option<Submitted> {
    let bytes = std::fs::read(submitted_path(run_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The latest record of the run kept in its run directory: the node's, else the one
/// submitted; with the Slurm job id it belongs to.
pub fn record_in_run_dir(run_dir: &Path) -> Option<RunRecord> {
    if let Some(state) = read_node_state(run_dir) {
        let mut record = state.record;
        if let Some(job) = record.slurm.as_mut()
            && job.job_id.is_empty()
        {
            job.job_id = state.job_id;
        }
        return Some(record);
    }
    read_submitted(run_dir).map(|s| s.record)
}

pub fn read_node_state(run_dir: &Path) -> Option<NodeState> {
    let bytes = std::fs::read(node_path(run_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What the node starts: the record as it is now (queued for its next attempt), the
/// submitted config, and this attempt's timebox and checkpoint.
pub struct Takeover {
    pub record: RunRecord,
    pub spec: crate::record::RunSpec,
    pub config: Config,
    pub resume_from: Option<String>,
    pub timebox: Duration,
    pub job_id: String,
    pub requeues: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error("the run was submitted to Slurm job {expected}, not this job ({this}); not started")]
    OtherJob { expected: String, this: String },
    #[error("{what}: {source}")]
    Read {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "this requeued job has used its {max} requeue(s) (slurm.maxRequeues); continue the run with `backprop resume`"
    )]
    RequeuesUsed {
        max: u32,
        /// The run as the last job left it, to be ended.
        record: Box<RunRecord>,
        requeues: u32,
    },
}

/// On the node, inside job `this_job`: the run submitted to it, or None when this run was
/// not submitted to Slurm (a plain `backprop run --run-id` inside some allocation).
pub fn take_over(
    run_dir: &Path,
    id: &RunId,
    this_job: &str,
) -> Result<Option<Takeover>, TakeoverError> {
    let path = submitted_path(run_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TakeoverError::Read {
                what: path.display().to_string(),
                source,
            });
        }
    };
    let submitted: Submitted = serde_json::from_slice(&bytes).map_err(|e| TakeoverError::Read {
        what: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    if submitted.record.id != *id {
        return Ok(None);
    }
    let expected = submitted
        .record
        .slurm
        .as_ref()
        .map(|j| j.job_id.clone())
        .unwrap_or_default();
    // The submitted record learns its job id after sbatch answers; the file is written
    // before, so an unknown id matches any job.
    if !expected.is_empty() && expected != this_job {
        return Err(TakeoverError::OtherJob {
            expected,
            this: this_job.to_string(),
        });
    }
    let total = Duration::from_secs_f64(submitted.timebox_secs.max(0.0));
    let earlier = read_node_state(run_dir).filter(|s| s.job_id == this_job);
    let Some(earlier) = earlier else {
        return Ok(Some(Takeover {
            spec: submitted.spec,
            record: submitted.record,
            config: submitted.config,
            resume_from: submitted.resume_from,
            timebox: total,
            job_id: this_job.to_string(),
            requeues: 0,
        }));
    };
    // This job ran before and was requeued (by its own warning signal, a preemption, or an
    // administrator): the next attempt resumes from the latest checkpoint with the time left.
    let requeues = earlier.requeues + 1;
    let max = submitted.config.slurm.max_requeues;
    let mut record = earlier.record;
    if requeues > max {
        return Err(TakeoverError::RequeuesUsed {
            max,
            record: Box::new(record),
            requeues: earlier.requeues,
        });
    }
    let used: u64 = record
        .attempts
        .iter()
        .filter(|a| a.host.is_some() && submitted_attempt(a.number, &submitted.record))
        .map(|a| a.active_ms)
        .sum();
    let timebox = total.saturating_sub(Duration::from_millis(used));
    requeued(&mut record, now_ms());
    let resume_from = record
        .checkpoints
        .iter()
        .rev()
        .find(|p| Path::new(p).exists())
        .cloned()
        .or(submitted.resume_from);
    Ok(Some(Takeover {
        record,
        spec: submitted.spec,
        config: submitted.config,
        resume_from,
        timebox,
        job_id: this_job.to_string(),
        requeues,
    }))
}

/// Attempts made under this submission (after the ones the submitted record already had).
fn submitted_attempt(number: u32, submitted: &RunRecord) -> bool {
    number > submitted.attempts.len() as u32
}

/// A record whose job was requeued: an attempt the job's death left open ends, and the run
/// is queued again for its next attempt, supervised by this process.
fn requeued(record: &mut RunRecord, now: u64) {
    let me = crate::proc_info::me();
    let end = AttemptEnd {
        status: Status::Stopped,
        reason: "slurm: requeued".into(),
        exit_code: None,
        signal: None,
    };
    if record.status().is_active() {
        if matches!(record.status(), Status::Running | Status::Paused) {
            lifecycle::or_log(lifecycle::requeue(
                record,
                &end,
                "slurm: requeued",
                false,
                now,
            ));
        }
    } else {
        // Ended as "slurm: job ended" (Slurm's signal, not backprop's): that was the requeue.
        if let Some(last) = record.attempts.last_mut()
            && last.reason.as_deref() == Some(crate::outcome::SLURM_ENDED)
        {
            last.reason = Some("slurm: requeued".into());
        }
        lifecycle::or_log(lifecycle::reclaim(
            record,
            me.clone(),
            crate::clock::queue_seq(),
        ));
    }
    record.supervisor = Some(me);
}

/// The node's record of its run, kept in the run directory (one writer: this process).
#[derive(Clone, Debug)]
pub struct NodeFile {
    run_dir: PathBuf,
    job_id: String,
    requeues: u32,
}

impl NodeFile {
    pub fn new(run_dir: PathBuf, job_id: String, requeues: u32) -> NodeFile {
        NodeFile {
            run_dir,
            job_id,
            requeues,
        }
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn path(&self) -> PathBuf {
        node_path(&self.run_dir)
    }

    /// Writes `record` as the node's state, atomically.
    pub fn write(&self, record: &RunRecord) -> std::io::Result<()> {
        let state = NodeState {
            record: record.clone(),
            job_id: self.job_id.clone(),
            updated_ms: now_ms(),
            requeues: self.requeues,
        };
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        crate::file_writer::replace(&node_path(&self.run_dir), &bytes)
    }
}

/// What the supervisor on a node needs to know about its job.
#[derive(Clone, Debug)]
pub struct NodeRole {
    pub job_id: String,
    pub run_dir: PathBuf,
    /// `slurm.signal`: the early warning.
    pub warning: nix::sys::signal::Signal,
    pub signal_before: Duration,
}

/// Why the early warning came: the time limit when the job has about `signal_before` left
/// (Slurm may send it up to a minute early), else a preemption. None when the controller
/// does not say.
pub fn warning_cause(job_id: &str, signal_before: Duration) -> Option<StopCause> {
    let left = super::client::time_left(job_id)?;
    Some(cause_of_warning(left, signal_before))
}

pub fn cause_of_warning(left: Duration, signal_before: Duration) -> StopCause {
    let slack = Duration::from_secs(90);
    if left <= signal_before + slack {
        StopCause::SlurmTimeLimit
    } else {
        StopCause::SlurmPreempted
    }
}

/// Whether `backprop stop` asked for this run to stop (rather than Slurm ending the job).
pub fn stop_requested(run_dir: &Path) -> bool {
    run_dir.join(STOP_FILE).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::lifecycle::AttemptStart;
    use crate::record::{RunSpec, SlurmJob};

    fn submitted(dir: &Path, job: &str) -> Submitted {
        let mut record = RunRecord::new(
            RunId::parse("r").unwrap(),
            "r".into(),
            RunSpec::default(),
            1,
        );
        record.slurm = Some(SlurmJob {
            job_id: job.into(),
            ..Default::default()
        });
        let s = Submitted {
            spec: record.spec.clone(),
            record,
            config: Config::default(),
            resume_from: None,
            timebox_secs: 600.0,
        };
        write_submitted(dir, &s).unwrap();
        s
    }

    #[test]
    fn the_first_start_takes_the_submitted_record_and_a_requeue_the_time_left() {
        let dir = tempfile::tempdir().unwrap();
        let id = RunId::parse("r").unwrap();
        submitted(dir.path(), "77");
        let first = take_over(dir.path(), &id, "77").unwrap().unwrap();
        assert_eq!(
            (first.requeues, first.timebox),
            (0, Duration::from_secs(600))
        );
        // The node ran 100 s of an attempt, then the job was requeued.
        let mut rec = first.record;
        let start = AttemptStart {
            number: 1,
            host: "node1".into(),
            ..Default::default()
        };
        lifecycle::admit(&mut rec, start, 5).unwrap();
        rec.attempts[0].active_ms = 100_000;
        rec.checkpoints
            .push(dir.path().join("ckpt").display().to_string());
        std::fs::write(dir.path().join("ckpt"), b"x").unwrap();
        NodeFile::new(dir.path().to_path_buf(), "77".into(), 0)
            .write(&rec)
            .unwrap();
        let again = take_over(dir.path(), &id, "77").unwrap().unwrap();
        assert_eq!(again.requeues, 1);
        assert_eq!(again.timebox, Duration::from_secs(500));
        assert_eq!(again.record.status(), Status::Queued);
        assert_eq!(
            again.record.attempts[0].reason.as_deref(),
            Some("slurm: requeued")
        );
        assert_eq!(
            again.resume_from.as_deref(),
            Some(rec.checkpoints[0].as_str())
        );
    }

    #[test]
    fn another_job_or_too_many_requeues_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let id = RunId::parse("r").unwrap();
        let s = submitted(dir.path(), "77");
        assert!(matches!(
            take_over(dir.path(), &id, "78"),
            Err(TakeoverError::OtherJob { .. })
        ));
        let node = NodeFile::new(dir.path().to_path_buf(), "77".into(), 3);
        node.write(&s.record).unwrap();
        assert!(matches!(
            take_over(dir.path(), &id, "77"),
            Err(TakeoverError::RequeuesUsed { max: 3, .. })
        ));
        assert!(
            take_over(dir.path(), &RunId::parse("other").unwrap(), "77")
                .unwrap()
                .is_none()
        );
    }
}
