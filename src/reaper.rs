//! Noticing runs whose supervising backprop process died (status `lost`): any command
//! that reads the store calls `reap`, which marks them and kills what is left of their
//! process group.

use crate::clock::now_ms;
use crate::proc_info::{self, Liveness};
use crate::record::RunRecord;
use crate::record::lifecycle;
use crate::store::{Store, StoreError};

/// Whether `rec` is active but its supervisor is dead (judged from this host).
pub fn is_orphaned(rec: &RunRecord, host: &str) -> bool {
    // Slurm runs: their node file, squeue and sacct tell their fate (see `slurm::sync`).
    if !rec.status().is_active() || rec.slurm.is_some() {
        return false;
    }
    match &rec.supervisor {
        Some(sup) => proc_info::liveness(sup, host) == Liveness::Dead,
        // An active record nobody claimed (a crash between create and claim).
        None => true,
    }
}

/// Marks a run lost and kills any process left in its group.
pub fn mark_lost(store: &Store, rec: &mut RunRecord, now: u64) {
    if let Some(attempt) = rec.attempts.last()
        && attempt.end_time.is_none()
        && let Some(pid) = attempt.pid
    {
        let run_dir = store.run_dir(&rec.id).display().to_string();
        crate::guard::kill_run(pid, &run_dir, attempt.number);
    }
    lifecycle::or_log(lifecycle::mark_lost(rec, now));
}

/// Finds and marks every orphaned run; returns their ids.
pub fn reap(store: &Store) -> Result<Vec<String>, StoreError> {
    let records: Vec<RunRecord> = store.active()?;
    reap_records(store, &records.iter().collect::<Vec<_>>())
}

/// Like `reap`, from records already read: the common case (nothing to reap) costs nothing.
pub fn reap_records(store: &Store, records: &[&RunRecord]) -> Result<Vec<String>, StoreError> {
    let host = proc_info::hostname();
    let suspects: Vec<&str> = records
        .iter()
        .filter(|rec| is_orphaned(rec, &host))
        .map(|rec| rec.id.as_str())
        .collect();
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    store.update(|ex| {
        let now = now_ms();
        let mut reaped = Vec::new();
        for id in &suspects {
            // Re-check under the lock: it may have finished or been resumed meanwhile.
            if let Ok(mut rec) = ex.record(id)
                && is_orphaned(&rec, &host)
            {
                mark_lost(store, &mut rec, now);
                ex.put(&rec);
                reaped.push(id.to_string());
            }
        }
        reaped
    })
}

/// Before a command reads or writes: lost runs marked and Slurm runs brought up to date,
/// parsing only the records that can need it (active ones, and Slurm jobs not yet final).
pub fn refresh(store: &Store) -> Result<(), StoreError> {
    crate::slurm::recover_from_run_dirs(store)?;
    let interesting = crate::store::query::needing_refresh(store.connect()?.conn())?;
    let parsed: Vec<&RunRecord> = interesting.iter().collect();
    reap_records(store, &parsed)?;
    crate::slurm::sync_records(store, &parsed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::lifecycle::{AttemptEnd, AttemptStart};
    use crate::record::{RunSpec, Status, SupervisorRef};
    use crate::runid::RunId;

    #[test]
    fn a_run_of_a_dead_supervisor_is_marked_lost_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = proc_info::me();
        let dead = SupervisorRef {
            pid: u32::MAX - 7,
            ..me.clone()
        };
        let running = |id: &str, supervisor: SupervisorRef| {
            let mut rec =
                RunRecord::new(RunId::parse(id).unwrap(), id.into(), RunSpec::default(), 1);
            rec.supervisor = Some(supervisor);
            lifecycle::admit(&mut rec, AttemptStart::default(), 2).unwrap();
            rec
        };
        let alive = running("alive", me.clone());
        let orphan = running("orphan", dead.clone());
        let mut done = running("done", dead);
        let end = AttemptEnd {
            status: Status::Completed,
            reason: "exit".into(),
            exit_code: Some(0),
            signal: None,
        };
        lifecycle::finish(&mut done, &end, 3).unwrap();
        store
            .update(|ex| {
                ex.put(&alive);
                ex.put(&orphan);
                ex.put(&done);
            })
            .unwrap();
        assert_eq!(reap(&store).unwrap(), vec!["orphan".to_string()]);
        assert_eq!(store.get("orphan").unwrap().status(), Status::Lost);
        assert_eq!(store.get("alive").unwrap().status(), Status::Running);
        assert_eq!(store.get("done").unwrap().status(), Status::Completed);
        assert!(reap(&store).unwrap().is_empty());
    }
}
