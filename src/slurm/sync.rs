//! Bringing the records of Slurm runs up to date on the submitting side: the node's own
//! record of its run (its node file, in the run directory), the job's state, why it waits
//! and where it runs from squeue, and from sacct the end of jobs whose node could not record
//! it, or why Slurm ended them. Idempotent: two syncs at once, or one twice, change nothing
//! more than one.

use super::client;
use super::node::{self, NodeState};
use super::states::{Fate, QueueRow, SacctRow, fate};
use crate::clock::now_ms;
use crate::outcome::SLURM_ENDED;
use crate::record::lifecycle;
use crate::record::{RunRecord, Status};
use crate::store::{Store, StoreError};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::sync::Mutex;

/// Why the last sync of this process could not ask Slurm (its states are the last known).
static STALE: Mutex<Option<String>> = Mutex::new(None);

/// When the last sync could not reach Slurm: why (the states shown are the last known).
pub fn stale() -> Option<String> {
    STALE.lock().ok().and_then(|s| s.clone())
}

/// Runs handed to Slurm that are active, and ended ones whose job state was last seen as
/// not final (their node may still write, and `list` ends up showing COMPLETED, TIMEOUT...).
fn watched(rec: &RunRecord) -> bool {
    let Some(job) = &rec.slurm else { return false };
    if job.job_id.is_empty() {
        return false;
    }
    rec.status().is_active()
        || job
            .state
            .as_deref()
            .is_some_and(|s| fate(s, true) == Fate::Stays)
}

/// Updates the Slurm runs among `all`; returns whether it changed the store. A cluster that
/// cannot be reached leaves the states as they were (see [`stale`]) and warns once.
pub fn sync_records(store: &Store, all: &[&RunRecord]) -> Result<bool, StoreError> {
    let records: Vec<&RunRecord> = all.iter().copied().filter(|r| watched(r)).collect();
    if records.is_empty() {
        return Ok(false);
    }
    let ids: Vec<String> = records
        .iter()
        .filter_map(|r| r.slurm.as_ref().map(|s| s.job_id.clone()))
        .collect();
    let answer = ask_slurm(&ids);
    if let Err(why) = &answer {
        let first = STALE.lock().map(|mut s| s.replace(why.clone()).is_none());
        if first.unwrap_or(true) {
            crate::ui::warn(&format!(
                "{why}; Slurm states shown are the last known (stale)"
            ));
        }
    }
    let (queued, ended) = answer.unwrap_or_default();
    let answered = !queued.is_empty() || !ended.is_empty() || stale().is_none();
    let changed = store.update(|ex| {
        let mut changed = false;
        for old in &records {
            let Ok(rec) = ex.record(&old.id) else {
                continue;
            };
            if !watched(&rec) {
                continue; // resumed elsewhere meanwhile
            }
            let run_dir = store.run_dir(&rec.id);
            let node_state = node::read_node_state(&run_dir);
            let now = now_ms();
            let new = update(rec.clone(), node_state, &queued, &ended, answered, now);
            if new != rec {
                ex.put(&new);
                changed = true;
            }
        }
        changed
    })?;
    Ok(changed)
}

/// After the store was started anew (damaged, removed): runs whose only record is in their
/// run directory (a Slurm run's node file, or its submission) are put back; then the sync
/// brings them up to date. Returns how many were put back.
pub fn recover_from_run_dirs(store: &Store) -> Result<usize, StoreError> {
    if !store.take_run_dir_check()? {
        return Ok(0);
    }
    let found: Vec<RunRecord> = std::fs::read_dir(store.home().join("runs"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|entry| node::record_in_run_dir(&entry.path()))
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        return Ok(0);
    }
    let put = store.update(|ex| {
        let missing: Vec<&RunRecord> = found
            .iter()
            .filter(|r| !ex.contains(r.id.as_str()))
            .collect();
        for rec in &missing {
            ex.put(rec);
        }
        missing.len()
    })?;
    if put > 0 {
        crate::ui::warn(&format!(
            "the store was started anew; took back {put} Slurm run(s) from their run directories"
        ));
    }
    Ok(put)
}

type Answer = (HashMap<String, QueueRow>, HashMap<String, SacctRow>);

/// squeue for every job, sacct for the ones squeue no longer lists.
fn ask_slurm(ids: &[String]) -> Result<Answer, String> {
    let queued = client::squeue(ids).map_err(|e| e.to_string())?;
    let gone: Vec<String> = ids
        .iter()
        .filter(|id| !queued.contains_key(*id))
        .cloned()
        .collect();
    let ended = if gone.is_empty() {
        HashMap::new()
    } else {
        client::sacct(&gone).map_err(|e| e.to_string())?
    };
    if let Ok(mut stale) = STALE.lock() {
        *stale = None;
    }
    Ok((queued, ended))
}

/// The record after a sync: the node's newer state taken in, then what Slurm says.
pub fn update(
    mut rec: RunRecord,
    node_state: Option<NodeState>,
    queued: &HashMap<String, QueueRow>,
    ended: &HashMap<String, SacctRow>,
    answered: bool,
    now: u64,
) -> RunRecord {
    let Some(mut job) = rec.slurm.clone() else {
        return rec;
    };
    if let Some(state) = node_state
        .filter(|s| s.job_id == job.job_id && s.updated_ms > job.node_updated_ms.unwrap_or(0))
    {
        // The node is the one writer of its run: its record counts, under this job.
        job.node_updated_ms = Some(state.updated_ms);
        rec = state.record;
    }
    let started = job.node_updated_ms.is_some() || rec.status() != Status::Queued;
    if let Some(row) = queued.get(&job.job_id) {
        if row.state == "PENDING"
            && !rec.status().is_active()
            && rec.reason.as_deref() == Some(SLURM_ENDED)
        {
            // Slurm ended the job and queued it again (an administrator's requeue, a node
            // failure): the run waits for its next start, which resumes it.
            lifecycle::or_log(lifecycle::submit_to_slurm(
                &mut rec,
                job.clone(),
                "slurm: requeued; resumes from its latest checkpoint when the job starts again",
            ));
        }
        job.state = Some(row.state.clone());
        job.pending_reason = row.reason.clone().filter(|_| row.state == "PENDING");
        job.nodes = row.nodes.clone();
        job.checked_ms = Some(now);
    } else if let Some(row) = ended.get(&job.job_id) {
        job.state = Some(row.state.clone());
        job.pending_reason = None;
        job.checked_ms = Some(now);
        if rec.status().is_active() {
            if let Fate::End { status, reason } = fate(&row.state, started) {
                let reason = slurm_reason(row).unwrap_or(reason);
                lifecycle::or_log(lifecycle::slurm_ended(&mut rec, status, &reason, now));
            }
        } else if let Some(reason) = slurm_reason(row) {
            if rec.reason.as_deref() == Some(SLURM_ENDED) {
                refine_reason(&mut rec, &reason);
            } else if killed_by_a_stop_signal(&rec) {
                // Slurm's SIGTERM reached the script before it reached backprop.
                lifecycle::or_log(lifecycle::blame_slurm(&mut rec, &reason));
            }
        }
    } else if answered {
        job.pending_reason = None;
    }
    rec.slurm = Some(job);
    rec
}

/// Why Slurm ended a job, in the words of the record: `slurm: timeout`, `slurm: preempted`,
/// `slurm: node_fail`, `slurm: cancelled by <user>`.
fn slurm_reason(row: &SacctRow) -> Option<String> {
    let reason = match row.state.as_str() {
        "TIMEOUT" => "slurm: timeout".to_string(),
        "PREEMPTED" => "slurm: preempted".to_string(),
        "NODE_FAIL" => "slurm: node_fail".to_string(),
        "CANCELLED" => match &row.by {
            Some(uid) => format!("slurm: cancelled by {}", user_name(uid)),
            None => "slurm: cancelled".to_string(),
        },
        _ => return None,
    };
    Some(reason)
}

/// A uid as a user name, when this host knows it.
fn user_name(uid: &str) -> String {
    uid.parse::<u32>()
        .ok()
        .and_then(|n| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(n)).ok())
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The attempt failed by SIGTERM or SIGKILL: what Slurm sends when it ends a job.
fn killed_by_a_stop_signal(rec: &RunRecord) -> bool {
    rec.status() == Status::Failed
        && rec
            .attempts
            .last()
            .and_then(|a| a.signal)
            .is_some_and(|s| [Signal::SIGTERM as i32, Signal::SIGKILL as i32].contains(&s))
}

/// The node only knew Slurm ended the job; accounting says why.
fn refine_reason(rec: &mut RunRecord, reason: &str) {
    rec.reason = Some(reason.to_string());
    if let Some(attempt) = rec.attempts.last_mut()
        && attempt.reason.as_deref() == Some(SLURM_ENDED)
    {
        attempt.reason = Some(reason.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::lifecycle::{AttemptEnd, AttemptStart};
    use crate::record::{RunSpec, SlurmJob};
    use crate::runid::RunId;

    fn submitted(job: &str) -> RunRecord {
        let mut rec = RunRecord::new(
            RunId::parse("r").unwrap(),
            "r".into(),
            RunSpec::default(),
            1,
        );
        lifecycle::submit_to_slurm(
            &mut rec,
            SlurmJob {
                job_id: job.into(),
                state: Some("PENDING".into()),
                ..Default::default()
            },
            "submitted",
        )
        .unwrap();
        rec
    }

    fn node(rec: &RunRecord, job: &str, at: u64) -> NodeState {
        NodeState {
            record: rec.clone(),
            job_id: job.into(),
            updated_ms: at,
            requeues: 0,
        }
    }

    fn row(state: &str, reason: Option<&str>) -> HashMap<String, QueueRow> {
        HashMap::from([(
            "7".to_string(),
            QueueRow {
                state: state.into(),
                reason: reason.map(str::to_string),
                nodes: (state == "RUNNING").then(|| "n1".into()),
            },
        )])
    }

    fn running(mut rec: RunRecord) -> RunRecord {
        lifecycle::admit(&mut rec, AttemptStart::default(), 5).unwrap();
        rec
    }

    #[test]
    fn a_pending_job_shows_why_and_a_running_one_where() {
        let rec = submitted("7");
        let none = HashMap::new();
        let pending = update(
            rec.clone(),
            None,
            &row("PENDING", Some("PartitionTimeLimit")),
            &none,
            true,
            9,
        );
        let job = pending.slurm.unwrap();
        assert_eq!(job.pending_reason.as_deref(), Some("PartitionTimeLimit"));
        assert_eq!(job.checked_ms, Some(9));
        let on_node = running(rec.clone());
        let now = update(
            rec,
            Some(node(&on_node, "7", 100)),
            &row("RUNNING", None),
            &none,
            true,
            9,
        );
        assert_eq!(now.status(), Status::Running);
        assert_eq!(now.slurm.as_ref().unwrap().nodes.as_deref(), Some("n1"));
        assert_eq!(now.slurm.unwrap().node_updated_ms, Some(100));
    }

    #[test]
    fn a_job_pending_again_after_slurm_ended_it_waits_to_resume() {
        let mut rec = running(submitted("7"));
        let end = AttemptEnd {
            status: Status::Stopped,
            reason: SLURM_ENDED.into(),
            exit_code: None,
            signal: None,
        };
        lifecycle::finish(&mut rec, &end, 20).unwrap();
        let none = HashMap::new();
        let now = update(
            rec.clone(),
            None,
            &row("PENDING", Some("BeginTime")),
            &none,
            true,
            30,
        );
        assert_eq!(now.status(), Status::Queued);
        assert!(
            now.reason.as_deref().unwrap().contains("requeued"),
            "{now:?}"
        );
        assert_eq!(
            now.slurm.unwrap().pending_reason.as_deref(),
            Some("BeginTime")
        );
        // Stopped by the user instead: pending again means nothing of the kind.
        let mut stopped = rec;
        stopped.reason = Some("user".into());
        let now = update(stopped, None, &row("PENDING", None), &none, true, 30);
        assert_eq!(now.status(), Status::Stopped);
    }

    #[test]
    fn the_node_state_counts_only_when_newer_and_of_this_job() {
        let rec = submitted("7");
        let on_node = running(rec.clone());
        let none = HashMap::new();
        let ended = HashMap::new();
        let other_job = update(
            rec.clone(),
            Some(node(&on_node, "6", 100)),
            &none,
            &ended,
            false,
            9,
        );
        assert_eq!(other_job.status(), Status::Queued);
        let taken = update(rec, Some(node(&on_node, "7", 100)), &none, &ended, false, 9);
        // Syncing again with the same (or an older) state changes nothing.
        let again = update(
            taken.clone(),
            Some(node(&rec_queued(), "7", 100)),
            &none,
            &ended,
            false,
            9,
        );
        assert_eq!(again, taken);
    }

    fn rec_queued() -> RunRecord {
        submitted("7")
    }

    #[test]
    fn a_job_slurm_ended_gets_the_reason_from_accounting() {
        let mut on_node = running(submitted("7"));
        let end = AttemptEnd {
            status: Status::Stopped,
            reason: SLURM_ENDED.into(),
            exit_code: None,
            signal: None,
        };
        lifecycle::finish(&mut on_node, &end, 20).unwrap();
        let ended = HashMap::from([(
            "7".to_string(),
            SacctRow {
                state: "CANCELLED".into(),
                by: Some("0".into()),
                exit_code: Some(0),
                signal: Some(15),
            },
        )]);
        let mut rec = submitted("7");
        rec.slurm.as_mut().unwrap().state = Some("RUNNING".into());
        let now = update(
            rec,
            Some(node(&on_node, "7", 30)),
            &HashMap::new(),
            &ended,
            true,
            40,
        );
        assert_eq!(now.reason.as_deref(), Some("slurm: cancelled by root"));
        assert_eq!(
            now.attempts[0].reason.as_deref(),
            Some("slurm: cancelled by root")
        );
        assert_eq!(now.status(), Status::Stopped);
    }

    #[test]
    fn a_script_killed_by_slurms_signal_was_stopped_by_slurm_not_failed() {
        let mut on_node = running(submitted("7"));
        let end = AttemptEnd {
            status: Status::Failed,
            reason: "signal".into(),
            exit_code: None,
            signal: Some(15),
        };
        lifecycle::finish(&mut on_node, &end, 20).unwrap();
        let cancelled = |by: Option<&str>| {
            HashMap::from([(
                "7".to_string(),
                SacctRow {
                    state: "CANCELLED".into(),
                    by: by.map(str::to_string),
                    exit_code: Some(0),
                    signal: Some(15),
                },
            )])
        };
        let mut rec = submitted("7");
        rec.slurm.as_mut().unwrap().state = Some("RUNNING".into());
        let now = update(
            rec.clone(),
            Some(node(&on_node, "7", 30)),
            &HashMap::new(),
            &cancelled(Some("0")),
            true,
            40,
        );
        assert_eq!(now.status(), Status::Stopped);
        assert_eq!(now.reason.as_deref(), Some("slurm: cancelled by root"));
        assert_eq!(now.attempts[0].status(), Some(Status::Stopped));
        // A failure of its own (exit 1) stays a failure whatever happened to the job.
        let mut failed = running(submitted("7"));
        let end = AttemptEnd {
            status: Status::Failed,
            reason: "exit 1".into(),
            exit_code: Some(1),
            signal: None,
        };
        lifecycle::finish(&mut failed, &end, 20).unwrap();
        let now = update(
            rec,
            Some(node(&failed, "7", 30)),
            &HashMap::new(),
            &cancelled(None),
            true,
            40,
        );
        assert_eq!(now.status(), Status::Failed);
    }

    #[test]
    fn a_job_that_died_with_its_run_is_lost_with_slurms_reason() {
        let rec = running(submitted("7"));
        let ended = HashMap::from([(
            "7".to_string(),
            SacctRow {
                state: "TIMEOUT".into(),
                by: None,
                exit_code: Some(0),
                signal: Some(9),
            },
        )]);
        let now = update(rec, None, &HashMap::new(), &ended, true, 40);
        assert_eq!(now.status(), Status::Lost);
        assert_eq!(now.reason.as_deref(), Some("slurm: timeout"));
    }
}
