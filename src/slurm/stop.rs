//! `backprop stop` for runs handed to Slurm, from any host that shares the home (a login
//! node included). Pending jobs are cancelled and running ones signalled, in separate calls:
//! scancel fails a whole call when one task is in a state it cannot signal, even though it
//! signalled the others, so its exit status is not the verdict; squeue is. A stop file in
//! the run directory, written first, makes the node stop the run even when no signal
//! arrives; it is taken back when the stop fails.

use super::client;
use super::node::STOP_FILE;
use crate::clock::now_ms;
use crate::record::lifecycle;
use crate::record::{RunRecord, Status};
use crate::store::Store;
use std::collections::HashMap;

/// States in which the batch step (backprop on the node) can take a signal.
fn is_running(state: &str) -> bool {
    matches!(state, "RUNNING" | "CONFIGURING" | "COMPLETING")
}

/// Stops `runs` (active, on Slurm). Pending ones end `stopped` at once; running ones are
/// signalled and end when their node has stopped them gracefully.
pub fn stop(store: &Store, runs: &[&RunRecord]) -> Result<(), String> {
    let jobs: HashMap<String, &RunRecord> = runs
        .iter()
        .filter_map(|r| Some((r.slurm.as_ref()?.job_id.clone(), *r)))
        .filter(|(job, _)| !job.is_empty())
        .collect();
    let stop_file = |rec: &RunRecord| store.run_dir(&rec.id).join(STOP_FILE);
    for rec in jobs.values() {
        if let Err(e) = std::fs::write(stop_file(rec), b"") {
            return Err(format!("cannot write the stop file of {}: {e}", rec.id));
        }
    }
    let take_back = |ids: &[String]| {
        for id in ids {
            let _ = std::fs::remove_file(stop_file(jobs[id]));
        }
    };
    let ids: Vec<String> = jobs.keys().cloned().collect();
    let queued = match client::squeue(&ids) {
        Ok(queued) => queued,
        Err(e) => {
            take_back(&ids);
            return Err(format!("cannot reach Slurm, so nothing was stopped: {e}"));
        }
    };
    let listed = queued.iter().filter(|(id, _)| jobs.contains_key(*id));
    let (running, pending): (Vec<_>, Vec<_>) = listed.partition(|(_, row)| is_running(&row.state));
    let running: Vec<String> = running.into_iter().map(|(id, _)| id.clone()).collect();
    let pending: Vec<String> = pending.into_iter().map(|(id, _)| id.clone()).collect();
    if !running.is_empty()
        && let Err(e) = client::cancel(&running, Some("TERM"))
    {
        // The stop file still stops them (the node checks it every poll interval).
        tracing::info!("scancel --signal answered {e}; the stop file stops the runs");
    }
    let mut left = pending.clone();
    for _ in 0..3 {
        if left.is_empty() {
            break;
        }
        let _ = client::cancel(&left, None);
        left = match client::squeue(&left) {
            Ok(still) => left
                .into_iter()
                .filter(|id| still.get(id).is_some_and(|row| row.state == "PENDING"))
                .collect(),
            Err(_) => left,
        };
    }
    let cancelled: Vec<&String> = pending.iter().filter(|id| !left.contains(id)).collect();
    store
        .update(|ex| {
            for id in &cancelled {
                let Ok(mut rec) = ex.record(&jobs[*id].id) else {
                    continue;
                };
                let now = now_ms();
                let ended = if rec.status() == Status::Queued {
                    lifecycle::end_unstarted(&mut rec, Status::Stopped, "user", now)
                } else {
                    lifecycle::slurm_ended(&mut rec, Status::Stopped, "user", now)
                };
                if ended.is_ok() {
                    ex.put(&rec);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    if !left.is_empty() {
        take_back(&left);
        let runs: Vec<String> = left.iter().map(|id| jobs[id].id.to_string()).collect();
        return Err(format!(
            "Slurm did not cancel the pending job(s) {} of {}; they are not stopped (try again, or scancel them)",
            left.join(", "),
            runs.join(", ")
        ));
    }
    Ok(())
}
