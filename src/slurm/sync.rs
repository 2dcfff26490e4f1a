//! Bringing the records of Slurm runs up to date with squeue and sacct: their job's state,
//! and an end for runs whose job ended before backprop on the node could record it.

use super::client;
use super::states::{Fate, fate};
use crate::clock::now_ms;
use crate::proc_info::{self, Liveness};
use crate::record::lifecycle;
use crate::record::{RunRecord, Status};
use crate::store::{Store, StoreError};

/// Runs handed to Slurm that no live local process supervises, and finished runs whose job
/// state was last seen as not final (so `list` ends up showing COMPLETED, TIMEOUT, ...).
fn watched(rec: &RunRecord, host: &str) -> bool {
    let Some(job) = &rec.slurm else { return false };
    if !rec.status().is_active() {
        return job
            .state
            .as_deref()
            .is_some_and(|s| fate(s, true) == Fate::Stays);
    }
    rec.supervisor
        .as_ref()
        .is_none_or(|s| proc_info::liveness(s, host) != Liveness::Alive)
}

/// Updates the Slurm states of `all` that need it (best effort: a cluster that cannot be
/// reached changes nothing); returns whether it changed the store.
pub fn sync_records(store: &Store, all: &[&RunRecord]) -> Result<bool, StoreError> {
    let host = proc_info::hostname();
    let records: Vec<&RunRecord> = all.iter().copied().filter(|r| watched(r, &host)).collect();
    if records.is_empty() {
        return Ok(false);
    }
    let ids: Vec<String> = records
        .iter()
        .filter_map(|r| r.slurm.as_ref().map(|s| s.job_id.clone()))
        .collect();
    let Ok(queued) = client::squeue(&ids) else {
        return Ok(false);
    };
    let gone: Vec<String> = ids
        .iter()
        .filter(|id| !queued.contains_key(*id))
        .cloned()
        .collect();
    let ended = if gone.is_empty() {
        Default::default()
    } else {
        client::sacct(&gone).unwrap_or_default()
    };
    store.update(|ex| {
        for old in &records {
            let Ok(mut rec) = ex.record(&old.id) else {
                continue;
            };
            if !watched(&rec, &host) {
                continue; // it finished (or was resumed) meanwhile
            }
            let Some(job) = rec.slurm.clone() else {
                continue;
            };
            let state = queued
                .get(&job.job_id)
                .cloned()
                .or_else(|| ended.get(&job.job_id).map(|row| row.state.clone()));
            let Some(state) = state else { continue };
            if let Some(slurm) = rec.slurm.as_mut() {
                slurm.state = Some(state.clone());
            }
            let started = rec.status() != Status::Queued;
            if rec.status().is_active()
                && let Fate::End { status, reason } = fate(&state, started)
            {
                lifecycle::or_log(lifecycle::slurm_ended(&mut rec, status, &reason, now_ms()));
            }
            ex.put(&rec);
        }
    })?;
    Ok(true)
}
