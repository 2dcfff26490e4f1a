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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunSpec;
    use crate::runid::RunId;
    use crate::search::{Budget, Method, Mode, Phase, RungResult, SearchSpec};

    fn spec(max: u64) -> SearchSpec {
        SearchSpec {
            method: Method::Asha,
            metric: "val_loss".into(),
            mode: Mode::Min,
            min_budget: Budget::Steps(10),
            max_budget: Budget::Steps(max),
            reduction_factor: 3,
            seed: None,
        }
    }

    fn run(name: &str, position: usize, rungs: usize, search: &SearchSpec) -> RunRecord {
        let mut rec = RunRecord::new(
            RunId::parse(name).unwrap(),
            name.into(),
            RunSpec::default(),
            1,
        );
        rec.active_ms = 1500;
        rec.last_step = Some(12);
        rec.metrics.insert("val_loss".into(), Some(0.25));
        let part = SearchRecord {
            spec: search.clone(),
            max_parallel: 2,
            run: StoredRun {
                position,
                started: position < 2,
                rungs: (0..rungs)
                    .map(|rung| RungResult {
                        rung,
                        metric: Some(0.5),
                        step: Some(10),
                        active_ms: 1000,
                    })
                    .collect(),
                promoted_to: None,
                end: None,
            },
        };
        record::write(&mut rec.extra, &part);
        rec
    }

    #[test]
    fn the_search_is_rebuilt_from_records_in_any_order() {
        let search = spec(90);
        // Stored out of start order: position 1 first.
        let records = vec![
            run("b", 1, 0, &search),
            run("a", 0, 1, &search),
            run("c", 2, 0, &search),
        ];
        let rebuilt = from_records(&records).unwrap();
        assert_eq!(rebuilt.max_parallel, 2);
        let ids: Vec<&str> = rebuilt.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(rebuilt.state.phase(0), Some(Phase::AtRung { rung: 0 }));
        assert_eq!(rebuilt.state.in_flight(), vec![1]);
        assert_eq!(rebuilt.state.phase(2), Some(Phase::New));
        let b = &rebuilt.members[1];
        assert_eq!(b.active, Duration::from_millis(1500));
        assert_eq!((b.step, b.metric), (Some(12), Some(0.25)));
        assert_eq!(b.job.attempt, 1);
    }

    #[test]
    fn records_that_do_not_make_one_search_are_refused_with_the_run() {
        let search = spec(90);
        assert!(
            parts(&[RunRecord::new(
                RunId::parse("x").unwrap(),
                "x".into(),
                RunSpec::default(),
                1
            )])
            .is_none()
        );
        let mut plain = run("b", 1, 0, &search);
        plain.extra.clear();
        let err = from_records(&[run("a", 0, 0, &search), plain])
            .err()
            .unwrap();
        assert!(err.contains("run b has no part"), "{err}");
        let other = run("b", 1, 0, &spec(270));
        let err = from_records(&[run("a", 0, 0, &search), other])
            .err()
            .unwrap();
        assert!(err.contains("run b has another search spec"), "{err}");
        let twice = run("b", 0, 0, &search);
        assert!(from_records(&[run("a", 0, 0, &search), twice]).is_err());
    }
}
