//! An adaptive search rebuilt from its batch's run records: the spec and each run's part of
//! the search (`search` on every record), its latest checkpoint, active time and last
//! values. `queue` builds it from the records it just wrote, `resume <batch-id>` from the
//! records a stopped or killed supervisor left.

use crate::actors::supervisor::{Member, SearchRun};
use crate::continuation::Plan;
use crate::executor::Job;
use crate::record::RunRecord;
use crate::search::{AshaState, SearchRecord, StoredRun, record};
use std::path::Path;
use std::time::Duration;

/// The search part of every record, or why it cannot be read; `None` when the batch is not
/// a search.
pub fn parts(records: &[RunRecord]) -> Option<Result<Vec<SearchRecord>, String>> {
    records.iter().find(|r| record::read(&r.extra).is_some())?;
    Some(
        records
            .iter()
            .map(|r| match record::read(&r.extra) {
                Some(Ok(part)) => Ok(part),
                Some(Err(e)) => Err(format!("run {}: {e}", r.id)),
                None => Err(format!("run {} has no part in the batch's search", r.id)),
            })
            .collect(),
    )
}

/// The search over `records` (the runs of one batch, any order) as they stand.
pub fn from_records(records: &[RunRecord]) -> Result<SearchRun, String> {
    let parts = parts(records).ok_or("the batch is not a search")??;
    let first = parts.first().ok_or("the batch has no runs")?;
    if let Some((rec, _)) = records
        .iter()
        .zip(&parts)
        .find(|(_, p)| p.spec != first.spec)
    {
        return Err(format!(
            "run {} has another search spec than the batch's other runs",
            rec.id
        ));
    }
    let stored: Vec<StoredRun> = parts.iter().map(|p| p.run.clone()).collect();
    let state = AshaState::from_stored(first.spec.clone(), &stored).map_err(|e| e.to_string())?;
    let mut members: Vec<Option<Member>> = (0..records.len()).map(|_| None).collect();
    for (rec, part) in records.iter().zip(&parts) {
        members[part.run.position] = Some(member(rec, &first.spec.metric));
    }
    Ok(SearchRun {
        state,
        members: members
            .into_iter()
            .map(|m| m.expect("from_stored checked every position"))
            .collect(),
        max_parallel: first.max_parallel.max(1) as usize,
    })
}

fn member(rec: &RunRecord, metric: &str) -> Member {
    let checkpoint = rec
        .checkpoints
        .iter()
        .rev()
        .find(|p| Path::new(p).exists())
        .cloned();
    let job = Job {
        run_id: rec.id.clone(),
        spec: rec.spec.clone(),
        attempt: rec.attempts.len() as u32 + 1,
        resume_from: checkpoint,
        timebox: rec.spec.options.max_run,
        no_wait: false,
        plan: Plan::once(rec.spec.options.max_restarts),
        rung: None,
    };
    let value = rec.metrics.get(metric).copied().flatten();
    Member {
        id: rec.id.clone(),
        job,
        active: Duration::from_millis(rec.active_ms),
        step: rec.last_step,
        metric: value.or(rec.last_loss.filter(|_| metric == "loss")),
    }
}
