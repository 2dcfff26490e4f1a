//! The run record as it is kept in the store.
//!
//! Field names are camelCase and keep the original tool's names (`id`, `name`, `scriptPath`,
//! `status`, `startTime`, `endTime`, `lastStep`, `lastLoss`, `checkpoints`, `lastCheckpoint`)
//! so existing readers keep working. Unknown fields written by other versions are kept in
//! `extra` and written back untouched.
//!
//! A record's status (and its attempts' statuses) can only be changed by [`lifecycle`], whose
//! named transitions check where the run is before they move it.

pub mod lifecycle;
mod spec;

pub use spec::{RunOptions, RunSpec};

use crate::runid::RunId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a run is in its life: `queued` → `running` ⇄ `paused` → an end.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Paused,
    Completed,
    Failed,
    Timeboxed,
    Stopped,
    Rejected,
    Lost,
    /// Stopped at a rung of an adaptive search and never promoted (see `crate::search`).
    Pruned,
}

impl Status {
    /// Queued, running or paused: some backprop process is responsible for it.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Queued | Status::Running | Status::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Timeboxed => "timeboxed",
            Status::Stopped => "stopped",
            Status::Rejected => "rejected",
            Status::Lost => "lost",
            Status::Pruned => "pruned",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(text: &str) -> Result<Status, String> {
        serde_json::from_value(serde_json::Value::from(text.to_ascii_lowercase()))
            .map_err(|_| format!("{text:?} is not a status"))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The backprop process responsible for a live run. A run whose supervisor is gone is `lost`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorRef {
    pub pid: u32,
    /// Process start time in clock ticks since boot, so a recycled pid is not mistaken for us.
    pub start_ticks: u64,
    pub host: String,
}

/// GPUs held by a live run: the cross-process reservation ledger is the set of these on
/// active records whose supervisor is alive.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct GpuLease {
    pub gpus: Vec<u32>,
    pub uuids: Vec<String>,
    /// Reserved on each GPU until the run's processes allocate it.
    pub reserved_mb: u64,
}

/// A run handed to Slurm: the job that runs (or ran) its current attempt.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SlurmJob {
    /// `123`, or `123_4` for task 4 of array job 123.
    pub job_id: String,
    /// The last state Slurm reported (`PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`, ...).
    pub state: Option<String>,
    /// The checkpoint the node-side attempt resumes from.
    pub resume_from: Option<String>,
    /// Timebox of the submitted attempt, when it differs from the spec's.
    pub max_run_seconds: Option<f64>,
    /// Why the job is pending, as squeue says (`Resources`, `PartitionTimeLimit`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// Where the job runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    /// When the node last wrote the state this record took in (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_updated_ms: Option<u64>,
    /// When Slurm last answered about this job (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_ms: Option<u64>,
}

/// One execution of the run's spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Attempt {
    pub number: u32,
    pub start_time: Option<u64>,
    pub end_time: Option<u64>,
    status: Option<Status>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub gpus: Vec<u32>,
    pub resumed_from: Option<String>,
    /// Why it ended: `exit`, `signal`, `timebox`, `user`, `thermal`, `cuda_oom`, `lost`, ...
    pub reason: Option<String>,
    pub active_ms: u64,
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub last_step: Option<u64>,
    pub last_loss: Option<f64>,
    /// MB reserved on each of `gpus`.
    pub reserved_mb: Option<u64>,
    /// Pauses, resumes and warnings during the attempt.
    pub events: Vec<AttemptEvent>,
    /// Where this attempt's output starts in the run's `stdout.log` and `stderr.log` (their
    /// lengths when the attempt opened them for appending); 0 in stores of older versions.
    pub stdout_offset: u64,
    pub stderr_offset: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AttemptEvent {
    pub time: u64,
    pub kind: String,
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: RunId,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub script_path: String,
    status: Status,
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub end_time: Option<u64>,
    #[serde(default)]
    pub last_step: Option<u64>,
    #[serde(default)]
    pub last_loss: Option<f64>,
    #[serde(default)]
    pub checkpoints: Vec<String>,
    #[serde(default)]
    pub last_checkpoint: Option<String>,
    #[serde(default)]
    pub created_time: u64,
    /// Place in the admission queue (larger = arrived later); set each time it is queued.
    #[serde(default)]
    pub queue_seq: u64,
    /// Queued but not asking for a start yet (a restart's backoff, a search run between
    /// rungs): admission passes over it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// Why it waits (while queued) or why it ended.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub spec: RunSpec,
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    #[serde(default)]
    pub batch_id: Option<RunId>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The latest value of every metric the script reported.
    #[serde(default)]
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Active (not paused) time over all attempts.
    #[serde(default)]
    pub active_ms: u64,
    #[serde(default)]
    pub supervisor: Option<SupervisorRef>,
    #[serde(default)]
    pub stop_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_lease: Option<GpuLease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RunRecord {
    /// A new run, queued.
    pub fn new(id: RunId, name: String, spec: RunSpec, now_ms: u64) -> RunRecord {
        RunRecord {
            id,
            name,
            script_path: spec.program.clone(),
            status: Status::Queued,
            start_time: None,
            end_time: None,
            last_step: None,
            last_loss: None,
            checkpoints: Vec::new(),
            last_checkpoint: None,
            created_time: now_ms,
            queue_seq: crate::clock::queue_seq(),
            held: false,
            reason: None,
            spec,
            params: None,
            batch_id: None,
            attempts: Vec::new(),
            metrics: BTreeMap::new(),
            active_ms: 0,
            supervisor: None,
            stop_requested: false,
            gpu_lease: None,
            slurm: None,
            extra: Map::new(),
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The attempt under way or the last one.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn current_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// Where attempt `number`'s output starts in the run's log files.
    pub fn set_log_offsets(&mut self, number: u32, stdout: u64, stderr: u64) {
        if let Some(attempt) = self.attempts.iter_mut().find(|a| a.number == number) {
            attempt.stdout_offset = stdout;
            attempt.stderr_offset = stderr;
        }
    }

    /// Adds a checkpoint path once; it becomes the latest.
    pub fn add_checkpoint(&mut self, path: &str) {
        if !self.checkpoints.iter().any(|c| c == path) {
            self.checkpoints.push(path.to_string());
        }
        self.last_checkpoint = Some(path.to_string());
    }
}

impl Attempt {
    pub fn status(&self) -> Option<Status> {
        self.status
    }

    /// Still under way (started, not ended).
    pub fn is_open(&self) -> bool {
        self.end_time.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_record_of_the_original_tool_and_keeps_unknown_fields() {
        let old = r#"{"id":"exp_1","name":"mnist","scriptPath":"/tmp/train.py","status":"completed",
            "startTime":1700000000000,"endTime":1700000060000,"lastStep":100,"lastLoss":0.25,
            "checkpoints":["/tmp/c1.pt"],"lastCheckpoint":"/tmp/c1.pt","pid":1234,"gpuId":0}"#;
        let rec: RunRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.status, Status::Completed);
        assert_eq!(rec.last_step, Some(100));
        assert_eq!(rec.extra.get("gpuId"), Some(&Value::from(0)));
        let back = serde_json::to_value(&rec).unwrap();
        assert_eq!(back["pid"], Value::from(1234));
        assert_eq!(back["scriptPath"], Value::from("/tmp/train.py"));
        assert_eq!(back["lastCheckpoint"], Value::from("/tmp/c1.pt"));
    }

    #[test]
    fn nan_loss_is_written_as_null_and_read_back_as_none() {
        let mut rec = RunRecord::new(
            RunId::parse("a").unwrap(),
            "a".into(),
            RunSpec::default(),
            1,
        );
        rec.last_loss = Some(f64::NAN);
        let text = serde_json::to_string(&rec).unwrap();
        assert!(text.contains("\"lastLoss\":null"));
        let back: RunRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.last_loss, None);
    }

    #[test]
    fn checkpoints_are_kept_once_and_the_latest_is_last() {
        let mut rec = RunRecord::new(
            RunId::parse("a").unwrap(),
            "a".into(),
            RunSpec::default(),
            1,
        );
        rec.add_checkpoint("c1");
        rec.add_checkpoint("c2");
        rec.add_checkpoint("c1");
        assert_eq!(rec.checkpoints, vec!["c1", "c2"]);
        assert_eq!(rec.last_checkpoint.as_deref(), Some("c1"));
    }
}
