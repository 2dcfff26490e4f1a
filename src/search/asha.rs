//! Asynchronous successive halving: which run to promote, start or prune next.
//!
//! Runs are named by their position in start order (`0..n`). The state changes only through
//! [`AshaState::apply`] (the supervisor acted on an [`Action`]) and the run events
//! ([`AshaState::rung_reached`], [`AshaState::failed`], [`AshaState::ended_before_budget`]);
//! [`AshaState::next_action`] only reads it, so a state rebuilt from the stored form answers
//! the same.

use std::cmp::Ordering;
use std::time::Duration;

use super::spec::{Budget, Mode, SearchSpec, SpecError};
use super::stored::{RungResult, SearchEnd, StoredRun};

/// What the supervisor should do with a free slot (or at the end of the search).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Continue `run` from its latest checkpoint until the budget of `to_rung`.
    Promote { run: usize, to_rung: usize },
    /// Start configuration `run` (its first attempt), heading for rung 0.
    StartNew { run: usize },
    /// Nothing to start now; ask again after the next event of a run in flight.
    Wait,
    /// The search is over: these runs, stopped at a rung and never promoted, end `pruned`.
    Prune { runs: Vec<usize> },
    /// Every run has ended; nothing is left to do.
    Done,
}

impl Action {
    /// Whether acting on it puts a run in flight (it needs a free slot).
    pub fn takes_slot(&self) -> bool {
        matches!(self, Action::Promote { .. } | Action::StartNew { .. })
    }
}

/// A run's place in the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet.
    New,
    /// In flight: training (or queued, or to be continued after a timebox or a restart of the
    /// supervisor) until the budget of `rung`.
    Training { rung: usize },
    /// Stopped with a result at `rung`, waiting for a promotion.
    AtRung { rung: usize },
    /// Reached maxBudget, or its script ended on its own.
    Completed,
    /// Failed on its way to a rung: ranks nowhere, never promoted.
    Failed,
    /// Stopped at a rung and never promoted, when the search ended.
    Pruned,
}

/// What [`AshaState::rung_reached`] made of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Reached {
    pub rung: usize,
    /// It reached maxBudget: the run is `completed`. Else it waits, stopped, for a promotion.
    pub completed: bool,
    /// Set when the metric was missing or NaN: the run ranks last at this rung.
    pub warning: Option<String>,
}

/// A mistake of the caller: an event or action that does not fit the run's phase (a stale
/// action, a run out of range, a damaged stored form).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("search run #{run}: {message}")]
pub struct StateError {
    pub run: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
struct RunState {
    phase: Phase,
    /// `results[k]` is the result at rung `k`.
    results: Vec<RungResult>,
}

/// The search over one batch's configurations.
#[derive(Clone, Debug, PartialEq)]
pub struct AshaState {
    spec: SearchSpec,
    rungs: Vec<Budget>,
    runs: Vec<RunState>,
}

impl AshaState {
    /// A search over `configurations` runs, none started. Refuses an invalid spec.
    pub fn new(spec: SearchSpec, configurations: usize) -> Result<AshaState, SpecError> {
        spec.validate()?;
        let fresh = RunState {
            phase: Phase::New,
            results: Vec::new(),
        };
        Ok(AshaState {
            rungs: spec.rungs(),
            spec,
            runs: vec![fresh; configurations],
        })
    }

    pub fn spec(&self) -> &SearchSpec {
        &self.spec
    }

    /// The rung budgets, smallest first; the last is maxBudget.
    pub fn rungs(&self) -> &[Budget] {
        &self.rungs
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn phase(&self, run: usize) -> Option<Phase> {
        self.runs.get(run).map(|r| r.phase)
    }

    /// The results of `run` at the rungs it finished, rung 0 first.
    pub fn results(&self, run: usize) -> &[RungResult] {
        self.runs.get(run).map_or(&[], |r| &r.results)
    }

    /// The budget of the rung `run` is heading for, while it is in flight: stop it gracefully
    /// once [`Budget::is_reached`] by its progress, then call [`AshaState::rung_reached`].
    pub fn budget_for(&self, run: usize) -> Option<Budget> {
        match self.runs.get(run)?.phase {
            Phase::Training { rung } => Some(self.rungs[rung]),
            _ => None,
        }
    }

    /// The runs in flight (training, queued, or to be continued), in start order. A free slot
    /// is one of `maxParallel` not taken by these.
    pub fn in_flight(&self) -> Vec<usize> {
        self.runs_where(|p| matches!(p, Phase::Training { .. }))
    }

    /// No run is left to start, train or prune.
    pub fn is_done(&self) -> bool {
        self.runs
            .iter()
            .all(|r| matches!(r.phase, Phase::Completed | Phase::Failed | Phase::Pruned))
    }

    /// What to do with a free slot: promote the best promotable run of the highest rung,
    /// else start the next configuration, else wait for the runs in flight; once nothing is
    /// in flight, prune the runs stopped at a rung, then `Done`.
    pub fn next_action(&self) -> Action {
        if let Some((run, rung)) = self.promotable() {
            return Action::Promote {
                run,
                to_rung: rung + 1,
            };
        }
        if let Some(run) = self.runs.iter().position(|r| r.phase == Phase::New) {
            return Action::StartNew { run };
        }
        if !self.in_flight().is_empty() {
            return Action::Wait;
        }
        if let Some((run, rung)) = self.leader_to_finish() {
            return Action::Promote {
                run,
                to_rung: rung + 1,
            };
        }
        let waiting = self.runs_where(|p| matches!(p, Phase::AtRung { .. }));
        if waiting.is_empty() {
            Action::Done
        } else {
            Action::Prune { runs: waiting }
        }
    }

    /// The end game of a small search: with few runs ⌊n/η⌋ can be 0 at the upper rungs, so
    /// the rule alone may end a search with no run trained to maxBudget. Then the best run of
    /// the highest rung reached (with a reported metric) goes on, rung by rung, so the search
    /// ends with its winner trained in full.
    fn leader_to_finish(&self) -> Option<(usize, usize)> {
        let top = self.rungs.len() - 1;
        if self.runs.iter().any(|r| r.results.len() > top) {
            return None;
        }
        (0..top).rev().find_map(|rung| {
            let leader = *self.ranking(rung).first()?;
            let run = &self.runs[leader];
            let reported = run.results.get(rung).is_some_and(|r| r.metric.is_some());
            (run.phase == Phase::AtRung { rung } && reported).then_some((leader, rung))
        })
    }

    /// Records that the supervisor acted on `action` (from [`AshaState::next_action`]).
    /// `Wait` and `Done` change nothing.
    pub fn apply(&mut self, action: &Action) -> Result<(), StateError> {
        match action {
            Action::StartNew { run } => {
                self.expect(*run, Phase::New, "start it")?;
                self.runs[*run].phase = Phase::Training { rung: 0 };
            }
            Action::Promote { run, to_rung } => {
                let from = to_rung.checked_sub(1).ok_or_else(|| StateError {
                    run: *run,
                    message: "cannot be promoted to rung 0".into(),
                })?;
                self.expect(*run, Phase::AtRung { rung: from }, "promote it")?;
                self.runs[*run].phase = Phase::Training { rung: *to_rung };
            }
            Action::Prune { runs } => {
                for &run in runs {
                    match self.phase(run) {
                        Some(Phase::AtRung { .. }) => {}
                        Some(phase) => {
                            return Err(StateError {
                                run,
                                message: format!(
                                    "cannot prune it: it is {phase:?}, not stopped at a rung"
                                ),
                            });
                        }
                        None => return Err(self.out_of_range(run)),
                    }
                }
                for run in runs {
                    self.runs[*run].phase = Phase::Pruned;
                }
            }
            Action::Wait | Action::Done => {}
        }
        Ok(())
    }

    /// `run` reached the budget of the rung it was heading for (see
    /// [`AshaState::budget_for`]); `metric` is the last value it reported, `step` its last
    /// reported step, `active` its active time over all attempts. At maxBudget the run is
    /// completed; below, it is to be stopped gracefully and waits for a promotion.
    pub fn rung_reached(
        &mut self,
        run: usize,
        metric: Option<f64>,
        step: Option<u64>,
        active: Duration,
    ) -> Result<Reached, StateError> {
        let rung = self.training_rung(run, "record a rung result")?;
        let warning = self.record(run, rung, metric, step, active);
        let completed = rung + 1 == self.rungs.len();
        self.runs[run].phase = if completed {
            Phase::Completed
        } else {
            Phase::AtRung { rung }
        };
        Ok(Reached {
            rung,
            completed,
            warning,
        })
    }

    /// `run`'s script ended on its own (exit 0) before the budget of its rung: its last values
    /// are its result at that rung, and it is completed (it cannot be promoted: there is no
    /// more training to continue).
    pub fn ended_before_budget(
        &mut self,
        run: usize,
        metric: Option<f64>,
        step: Option<u64>,
        active: Duration,
    ) -> Result<Reached, StateError> {
        let rung = self.training_rung(run, "record its end")?;
        let warning = self.record(run, rung, metric, step, active);
        self.runs[run].phase = Phase::Completed;
        Ok(Reached {
            rung,
            completed: true,
            warning,
        })
    }

    /// `run` failed on its way to a rung (after any restarts): it is out of the search, in no
    /// rung's ranking, and its slot is free.
    pub fn failed(&mut self, run: usize) -> Result<(), StateError> {
        self.training_rung(run, "record a failure")?;
        self.runs[run].phase = Phase::Failed;
        Ok(())
    }

    /// An attempt of `run` hit its timebox (or was stopped or lost) before its rung budget.
    /// Nothing changes: the run is still heading for the same rung and stays in flight; the
    /// supervisor continues it from its checkpoint (as `untilDone` does), and the active time
    /// and steps of the next attempts count toward the same budget.
    pub fn timeboxed_before_budget(&self, run: usize) -> Result<(), StateError> {
        self.training_rung(run, "continue it").map(|_| ())
    }

    /// The best run at the highest rung any run reached (the search's winner so far).
    pub fn best(&self) -> Option<usize> {
        (0..self.rungs.len())
            .rev()
            .find_map(|rung| self.ranking(rung).first().copied())
    }

    /// The runs that finished `rung` and are not failed, best first: finite metrics in the
    /// mode's order, then missing or NaN ones; ties by start order.
    pub fn ranking(&self, rung: usize) -> Vec<usize> {
        let mut ranked: Vec<(usize, Option<f64>)> = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.phase != Phase::Failed)
            .filter_map(|(i, r)| r.results.get(rung).map(|res| (i, res.metric)))
            .collect();
        let mode = self.spec.mode;
        ranked.sort_by(|(ia, a), (ib, b)| better_first(mode, *a, *b).then(ia.cmp(ib)));
        ranked.into_iter().map(|(i, _)| i).collect()
    }

    /// The stored form of every run, in start order (see [`StoredRun`]).
    pub fn stored(&self) -> Vec<StoredRun> {
        (0..self.runs.len()).map(|i| self.stored_run(i)).collect()
    }

    /// The stored form of one run (store it after each action and event that names it).
    pub fn stored_run(&self, run: usize) -> StoredRun {
        let state = &self.runs[run];
        let (started, promoted_to, end) = match state.phase {
            Phase::New => (false, None, None),
            Phase::Training { rung } => (true, (rung > 0).then_some(rung), None),
            Phase::AtRung { rung } => (true, (rung > 0).then_some(rung), None),
            Phase::Completed => (true, None, Some(SearchEnd::Completed)),
            Phase::Failed => (true, None, Some(SearchEnd::Failed)),
            Phase::Pruned => (true, None, Some(SearchEnd::Pruned)),
        };
        // An ended run keeps the rung it was last sent to: the furthest with a result, or the
        // one it failed on the way to.
        let promoted_to = promoted_to.or_else(|| match state.phase {
            Phase::Failed => self.failed_heading(run),
            Phase::Completed | Phase::Pruned => {
                state.results.len().checked_sub(1).filter(|r| *r > 0)
            }
            _ => None,
        });
        StoredRun {
            position: run,
            started,
            rungs: state.results.clone(),
            promoted_to,
            end,
        }
    }

    /// Rebuilds the state from the stored form of every run (any order; positions `0..n`):
    /// the same phases, so the same next action. Runs that were in flight are in flight
    /// again: the supervisor continues them.
    pub fn from_stored(spec: SearchSpec, stored: &[StoredRun]) -> Result<AshaState, StateError> {
        let mut state = AshaState::new(spec, stored.len()).map_err(|e| StateError {
            run: 0,
            message: format!("invalid search: {e}"),
        })?;
        let mut seen = vec![false; stored.len()];
        for run in stored {
            let i = run.position;
            if i >= stored.len() || seen[i] {
                return Err(StateError {
                    run: i,
                    message: format!(
                        "position {i} is out of range or given twice (positions are 0 to {})",
                        stored.len().saturating_sub(1)
                    ),
                });
            }
            seen[i] = true;
            state.runs[i] = state.rebuilt(run)?;
        }
        Ok(state)
    }

    fn rebuilt(&self, stored: &StoredRun) -> Result<RunState, StateError> {
        let run = stored.position;
        let bad = |message: String| StateError { run, message };
        for (k, result) in stored.rungs.iter().enumerate() {
            if result.rung != k {
                return Err(bad(format!("result {k} is for rung {}", result.rung)));
            }
        }
        let last = self.rungs.len() - 1;
        let done = stored.rungs.len();
        if done > self.rungs.len() {
            return Err(bad(format!("{done} rung results for {} rungs", last + 1)));
        }
        let heading = stored.promoted_to.unwrap_or(0);
        if heading > last {
            return Err(bad(format!(
                "promoted to rung {heading}; the last is {last}"
            )));
        }
        let phase = match (stored.end, stored.started) {
            (Some(SearchEnd::Completed), _) if done > 0 => Phase::Completed,
            (Some(SearchEnd::Failed), _) => Phase::Failed,
            (Some(SearchEnd::Pruned), _) if done > 0 && done <= last => Phase::Pruned,
            (Some(end), _) => {
                return Err(bad(format!("{end:?} with {done} rung results")));
            }
            (None, false) if done == 0 && stored.promoted_to.is_none() => Phase::New,
            (None, false) => return Err(bad("results or a promotion but not started".into())),
            (None, true) if done == heading => Phase::Training { rung: heading },
            (None, true) if done == heading + 1 && heading < last => {
                Phase::AtRung { rung: heading }
            }
            (None, true) => {
                return Err(bad(format!(
                    "heading for rung {heading} with {done} rung results"
                )));
            }
        };
        Ok(RunState {
            phase,
            results: stored.rungs.clone(),
        })
    }

    /// The best run of the highest rung that is in that rung's top ⌊n/η⌋ and still waits
    /// there, with its rung.
    fn promotable(&self) -> Option<(usize, usize)> {
        let eta = self.spec.reduction_factor as usize;
        (0..self.rungs.len() - 1).rev().find_map(|rung| {
            let ranking = self.ranking(rung);
            let top = ranking.len() / eta;
            ranking[..top]
                .iter()
                .find(|&&i| self.runs[i].phase == Phase::AtRung { rung })
                .map(|&i| (i, rung))
        })
    }

    fn runs_where(&self, wanted: impl Fn(Phase) -> bool) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&i| wanted(self.runs[i].phase))
            .collect()
    }

    /// The rung a failed run was heading for: one past its last result.
    fn failed_heading(&self, run: usize) -> Option<usize> {
        Some(self.runs[run].results.len()).filter(|r| *r > 0)
    }

    fn expect(&self, run: usize, wanted: Phase, doing: &str) -> Result<(), StateError> {
        match self.phase(run) {
            Some(phase) if phase == wanted => Ok(()),
            Some(phase) => Err(StateError {
                run,
                message: format!("cannot {doing}: it is {phase:?}, not {wanted:?}"),
            }),
            None => Err(self.out_of_range(run)),
        }
    }

    fn training_rung(&self, run: usize, doing: &str) -> Result<usize, StateError> {
        match self.phase(run) {
            Some(Phase::Training { rung }) => Ok(rung),
            Some(phase) => Err(StateError {
                run,
                message: format!("cannot {doing}: it is {phase:?}, not in flight"),
            }),
            None => Err(self.out_of_range(run)),
        }
    }

    fn out_of_range(&self, run: usize) -> StateError {
        StateError {
            run,
            message: format!("no such run; the search has {}", self.runs.len()),
        }
    }

    /// Stores the result at `rung`; a missing or NaN metric is kept as none, with a warning.
    fn record(
        &mut self,
        run: usize,
        rung: usize,
        metric: Option<f64>,
        step: Option<u64>,
        active: Duration,
    ) -> Option<String> {
        let metric = metric.filter(|m| !m.is_nan());
        let warning = metric.is_none().then(|| {
            format!(
                "reached rung {rung} ({}) without a value of {:?} (never reported, or NaN); it ranks last there",
                self.rungs[rung], self.spec.metric
            )
        });
        let results = &mut self.runs[run].results;
        results.truncate(rung);
        results.push(RungResult {
            rung,
            metric,
            step,
            active_ms: u64::try_from(active.as_millis()).unwrap_or(u64::MAX),
        });
        warning
    }
}

/// `Less` when `a` ranks before `b`: any value before none, then the mode's order.
fn better_first(mode: Mode, a: Option<f64>, b: Option<f64>) -> Ordering {
    let known = |x: Option<f64>| x.filter(|v| !v.is_nan());
    match (known(a), known(b)) {
        (Some(a), Some(b)) => match mode {
            Mode::Min => a.total_cmp(&b),
            Mode::Max => b.total_cmp(&a),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}
