//! Asking runs to stop gracefully, from any process: what `backprop stop` and the dashboard's
//! stop actions share. The supervising backprop does the stopping; this only marks the
//! request in the store and wakes it (or, for a Slurm job no local process supervises, tells
//! Slurm).

use crate::proc_info::{self, Liveness};
use crate::record::RunRecord;
use crate::record::lifecycle;
use crate::runid::RunId;
use crate::store::{Store, StoreError};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Slurm could not be told (the message says why).
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

/// Requests a graceful stop of `active` runs and returns at once: each locally supervised
/// record is marked (through the lifecycle) and its live supervisor gets SIGUSR2; runs
/// handed to Slurm are stopped through Slurm (their node reads no store). Returns the ids
/// asked to stop.
pub fn request(store: &Store, active: &[&RunRecord]) -> Result<Vec<RunId>, StopError> {
    let ids: Vec<RunId> = active.iter().map(|r| r.id.clone()).collect();
    let (on_slurm, here): (Vec<&RunRecord>, Vec<&RunRecord>) =
        active.iter().copied().partition(|r| r.slurm.is_some());
    store.update(|tx| {
        for rec in &here {
            if let Ok(mut rec) = tx.record(&rec.id)
                && lifecycle::request_stop(&mut rec).is_ok()
            {
                tx.put(&rec);
            }
        }
    })?;
    let host = proc_info::hostname();
    let supervisors: BTreeSet<u32> = here
        .iter()
        .filter_map(|r| r.supervisor.as_ref())
        .filter(|s| proc_info::liveness(s, &host) == Liveness::Alive)
        .map(|s| s.pid)
        .collect();
    for pid in supervisors {
        crate::process::signal_pid(pid, Signal::SIGUSR2);
    }
    if !on_slurm.is_empty() {
        crate::slurm::stop::stop(store, &on_slurm).map_err(StopError::Slurm)?;
    }
    Ok(ids)
}
