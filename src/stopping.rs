//! Asking runs to stop gracefully, from any process: what `backprop stop` and the dashboard's
//! stop actions share. The supervising backprop does the stopping; this only marks the
//! request in the store and wakes it (or, for a Slurm job no local process supervises, tells
//! Slurm).

use crate::proc_info::{self, Liveness};
use crate::record::lifecycle;
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::store::{Store, StoreError};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// scancel failed (the message says why).
    #[error("{0}")]
    Slurm(String),
}

/// The runs an id names: that run, or every run of the batch with that id; with no id,
/// every active run. A name that is neither is [`StoreError::NotFound`].
pub fn targets(store: &Store, id: Option<&RunId>) -> Result<Vec<RunRecord>, StoreError> {
    let Some(id) = id else {
        return store.active();
    };
    match store.get(id) {
        Ok(rec) => return Ok(vec![rec]),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let batch = crate::store::query::batch(store.connect()?.conn(), id)?;
    if batch.is_empty() {
        return Err(StoreError::NotFound(id.to_string()));
    }
    Ok(batch)
}

/// Requests a graceful stop of `active` runs and returns at once: each record is marked
/// (through the lifecycle), each live supervisor gets SIGUSR2, and Slurm jobs are cancelled
/// (a waiting one) or signalled (a running one). Returns the ids asked to stop.
pub fn request(store: &Store, active: &[&RunRecord]) -> Result<Vec<RunId>, StopError> {
    let ids: Vec<RunId> = active.iter().map(|r| r.id.clone()).collect();
    store.update(|tx| {
        for id in &ids {
            if let Ok(mut rec) = tx.record(id)
                && lifecycle::request_stop(&mut rec).is_ok()
            {
                tx.put(&rec);
            }
        }
    })?;
    let host = proc_info::hostname();
    let supervisors: BTreeSet<u32> = active
        .iter()
        .filter_map(|r| r.supervisor.as_ref())
        .filter(|s| proc_info::liveness(s, &host) == Liveness::Alive)
        .map(|s| s.pid)
        .collect();
    for pid in supervisors {
        crate::process::signal_pid(pid, Signal::SIGUSR2);
    }
    stop_on_slurm(store, active, &host)?;
    Ok(ids)
}

/// Slurm runs no local process supervises: a waiting job is cancelled (and the run ends
/// `stopped`); a running one gets SIGTERM in its batch step, which is backprop on the node,
/// so it takes the graceful path.
fn stop_on_slurm(store: &Store, active: &[&RunRecord], host: &str) -> Result<(), StopError> {
    for rec in active {
        let Some(job) = &rec.slurm else { continue };
        let local = rec
            .supervisor
            .as_ref()
            .is_some_and(|s| proc_info::liveness(s, host) == Liveness::Alive);
        if local {
            continue;
        }
        if rec.status() == Status::Queued {
            crate::slurm::cancel(&job.job_id, None).map_err(|e| StopError::Slurm(e.to_string()))?;
            store.update_record(&rec.id, |r| {
                let _ =
                    lifecycle::end_unstarted(r, Status::Stopped, "user", crate::clock::now_ms());
            })?;
        } else {
            crate::slurm::cancel(&job.job_id, Some("TERM"))
                .map_err(|e| StopError::Slurm(e.to_string()))?;
        }
    }
    Ok(())
}
