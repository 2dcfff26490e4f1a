//! `queue --executor slurm` without `--no-wait`: follows the submitted batch through the
//! same sync `list` uses until every run has ended, so the summary is the local one.

use super::common::CliError;
use crate::executor::Results;
use crate::outcome::Outcome;
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::store::Store;
use std::time::Duration;

/// How often Slurm is asked: each sync is one squeue (and sacct for ended jobs).
const POLL: Duration = Duration::from_secs(3);

/// The batch's records once none is queued, running or paused; a progress line on stderr
/// whenever the counts change.
pub fn until_ended(store: &Store, ids: &[RunId], quiet: bool) -> Result<Vec<RunRecord>, CliError> {
    let mut last_counts = None;
    loop {
        if let Err(e) = crate::reaper::refresh(store) {
            crate::ui::warn(&format!("could not bring the Slurm states up to date: {e}"));
        }
        let records: Vec<RunRecord> = ids
            .iter()
            .map(|id| store.get(id))
            .collect::<Result<_, _>>()?;
        let counts = Counts::of(&records);
        if counts.active() == 0 {
            return Ok(records);
        }
        if !quiet && last_counts != Some(counts) {
            crate::ui::info(&counts.text());
        }
        last_counts = Some(counts);
        std::thread::sleep(POLL);
    }
}

/// Each run's outcome as its record holds it, for the summary and the exit code.
pub fn outcomes(records: &[RunRecord]) -> Results {
    records
        .iter()
        .map(|r| {
            let outcome = Outcome {
                status: r.status(),
                reason: r.reason.clone().unwrap_or_default(),
                exit_code: r.attempts.last().and_then(|a| a.exit_code).unwrap_or(0),
            };
            (r.id.clone(), outcome)
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Counts {
    pending: usize,
    running: usize,
    ended: usize,
}

impl Counts {
    fn of(records: &[RunRecord]) -> Counts {
        let mut counts = Counts {
            pending: 0,
            running: 0,
            ended: 0,
        };
        for r in records {
            match r.status() {
                Status::Queued => counts.pending += 1,
                Status::Running | Status::Paused => counts.running += 1,
                _ => counts.ended += 1,
            }
        }
        counts
    }

    fn active(self) -> usize {
        self.pending + self.running
    }

    fn text(self) -> String {
        format!(
            "{} running, {} waiting in Slurm, {} ended",
            self.running, self.pending, self.ended
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunSpec;
    use crate::record::lifecycle::{self, AttemptEnd, AttemptStart};

    fn rec(id: &str) -> RunRecord {
        RunRecord::new(RunId::parse(id).unwrap(), id.into(), RunSpec::default(), 1)
    }

    #[test]
    fn counts_and_outcomes_come_from_the_records() {
        let queued = rec("a");
        let mut running = rec("b");
        lifecycle::admit(&mut running, AttemptStart::default(), 2).unwrap();
        let mut failed = rec("c");
        lifecycle::admit(&mut failed, AttemptStart::default(), 2).unwrap();
        let end = AttemptEnd {
            status: Status::Failed,
            reason: "exit 3".into(),
            exit_code: Some(3),
            signal: None,
        };
        lifecycle::finish(&mut failed, &end, 5).unwrap();
        let all = [queued, running, failed];
        let counts = Counts::of(&all);
        assert_eq!((counts.pending, counts.running, counts.ended), (1, 1, 1));
        assert_eq!(counts.active(), 2);
        let results = outcomes(&all);
        assert_eq!(results[2].1.status, Status::Failed);
        assert_eq!(results[2].1.exit_code, 3);
        assert_eq!(results[2].1.reason, "exit 3");
    }
}
