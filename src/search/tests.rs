//! Tests of the search: rungs, validation, the promotion rule, the end of a search, and
//! rebuilding a search from its stored form.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;

use super::*;

fn spec(min: u64, max: u64, eta: u32) -> SearchSpec {
    SearchSpec {
        method: Method::Asha,
        metric: "val_loss".into(),
        mode: Mode::Min,
        min_budget: Budget::Steps(min),
        max_budget: Budget::Steps(max),
        reduction_factor: eta,
        seed: None,
    }
}

fn minutes(m: f64) -> Budget {
    Budget::minutes(m).unwrap()
}

/// The supervisor, in memory: `slots` runs in flight at most; the run started (or promoted)
/// first reaches its rung first; `metric(run, rung)` is what it reports there.
struct Sim<F: Fn(usize, usize) -> Option<f64>> {
    state: AshaState,
    slots: usize,
    flight: VecDeque<usize>,
    metric: F,
    promotions: Vec<(usize, usize)>,
    pruned: Vec<usize>,
}

impl<F: Fn(usize, usize) -> Option<f64>> Sim<F> {
    fn new(spec: SearchSpec, n: usize, slots: usize, metric: F) -> Self {
        Sim {
            state: AshaState::new(spec, n).unwrap(),
            slots,
            flight: VecDeque::new(),
            metric,
            promotions: Vec::new(),
            pruned: Vec::new(),
        }
    }

    /// Step 2 of the module docs: act until the slots are full or there is nothing to do.
    fn fill(&mut self) {
        while self.state.in_flight().len() < self.slots {
            let action = self.state.next_action();
            assert_rebuilds(&self.state);
            match &action {
                Action::StartNew { run } => self.flight.push_back(*run),
                Action::Promote { run, to_rung } => {
                    self.promotions.push((*run, *to_rung));
                    self.flight.push_back(*run);
                }
                Action::Prune { runs } => self.pruned.extend(runs),
                Action::Wait | Action::Done => return,
            }
            self.state.apply(&action).unwrap();
            if matches!(action, Action::Prune { .. }) {
                return;
            }
        }
    }

    /// The oldest run in flight reaches its rung.
    fn finish_one(&mut self) -> Reached {
        let run = self.flight.pop_front().expect("a run in flight");
        let rung = match self.state.phase(run) {
            Some(Phase::Training { rung }) => rung,
            other => panic!("run {run} is {other:?}"),
        };
        let Budget::Steps(budget) = self.state.budget_for(run).unwrap() else {
            panic!("steps budgets only")
        };
        let active = Duration::from_millis(budget * 10);
        self.state
            .rung_reached(run, (self.metric)(run, rung), Some(budget), active)
            .unwrap()
    }

    fn run_to_end(&mut self) {
        self.fill();
        while !self.flight.is_empty() {
            self.finish_one();
            assert_rebuilds(&self.state);
            self.fill();
        }
        assert!(self.state.is_done(), "{:?}", self.state.next_action());
        assert_eq!(self.state.next_action(), Action::Done);
    }

    /// Like [`Sim::run_to_end`], but the slots are filled only once every run in flight has
    /// reached its rung: synchronous successive halving.
    fn run_in_waves(&mut self) {
        self.fill();
        while !self.flight.is_empty() {
            while !self.flight.is_empty() {
                self.finish_one();
            }
            assert_rebuilds(&self.state);
            self.fill();
        }
        assert!(self.state.is_done());
    }

    fn promoted_to(&self, rung: usize) -> Vec<usize> {
        let mut runs: Vec<usize> = self
            .promotions
            .iter()
            .filter(|(_, r)| *r == rung)
            .map(|(run, _)| *run)
            .collect();
        runs.sort();
        runs
    }
}

/// The stored form, through JSON, gives back the same state and the same next action.
fn assert_rebuilds(state: &AshaState) {
    let text = serde_json::to_string(&state.stored()).unwrap();
    let mut stored: Vec<StoredRun> = serde_json::from_str(&text).unwrap();
    stored.reverse(); // any order
    let rebuilt = AshaState::from_stored(state.spec().clone(), &stored).unwrap();
    assert_eq!(&rebuilt, state);
    assert_eq!(rebuilt.next_action(), state.next_action());
}

#[test]
fn rungs_grow_by_eta_and_end_at_max_budget() {
    let steps = |rungs: Vec<Budget>| -> Vec<u64> {
        rungs
            .into_iter()
            .map(|b| match b {
                Budget::Steps(n) => n,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(steps(spec(100, 2700, 3).rungs()), [100, 300, 900, 2700]);
    assert_eq!(steps(spec(100, 1000, 3).rungs()), [100, 300, 900, 1000]);
    assert_eq!(steps(spec(100, 100, 3).rungs()), [100]);
    assert_eq!(steps(spec(1, 16, 2).rungs()), [1, 2, 4, 8, 16]);
    assert_eq!(steps(spec(1, u64::MAX, 2).rungs()).len(), 65, "no overflow");
    let mut by_time = spec(1, 1, 3);
    by_time.min_budget = minutes(2.0);
    by_time.max_budget = minutes(18.0);
    assert_eq!(by_time.rungs(), [minutes(2.0), minutes(6.0), minutes(18.0)]);
    assert_eq!(
        by_time.summary(),
        "asha on val_loss (min), rungs 2, 6, 18 min"
    );
    assert_eq!(
        spec(100, 2700, 3).summary(),
        "asha on val_loss (min), rungs 100, 300, 900, 2700 steps"
    );
}

#[test]
fn budgets_are_reached_by_steps_or_active_time() {
    let hundred = Budget::Steps(100);
    assert!(!hundred.is_reached(None, Duration::from_secs(999)));
    assert!(!hundred.is_reached(Some(99), Duration::ZERO));
    assert!(hundred.is_reached(Some(100), Duration::ZERO));
    assert!(hundred.is_reached(Some(125), Duration::ZERO));
    let two = minutes(2.0);
    assert!(!two.is_reached(Some(10_000), Duration::from_millis(119_999)));
    assert!(two.is_reached(None, Duration::from_secs(120)));
    assert_eq!(minutes(0.5).to_string(), "0.5 min");
    assert_eq!(Budget::Steps(1).to_string(), "1 step");
    assert_eq!(Budget::minutes(0.0), None);
    assert_eq!(Budget::minutes(f64::NAN), None);
}

#[test]
fn invalid_specs_say_which_key_and_why() {
    let error = |s: SearchSpec| s.validate().unwrap_err().to_string();
    let mut s = spec(100, 2700, 1);
    assert_eq!(
        error(s.clone()),
        "reductionFactor: must be at least 2, got 1"
    );
    s.reduction_factor = 3;
    s.metric = " ".into();
    assert!(error(s.clone()).starts_with("metric: empty"));
    assert_eq!(
        error(spec(300, 100, 3)),
        "minBudget: 300 steps is more than maxBudget (100 steps)"
    );
    let mut mixed = spec(100, 2700, 3);
    mixed.max_budget = minutes(5.0);
    assert_eq!(
        error(mixed),
        "maxBudget: is in minutes while minBudget is in steps; give both budgets in the same unit"
    );
    assert_eq!(
        error(spec(0, 100, 3)),
        "minBudget: must be above 0, got 0 steps"
    );
    assert!(spec(100, 100, 2).validate().is_ok());
    assert!(AshaState::new(spec(100, 2700, 1), 3).is_err());
}

#[test]
fn the_spec_reads_and_writes_the_sweep_files_form() {
    let value = json!({"method": "asha", "metric": "val_loss", "mode": "min",
        "minBudget": {"steps": 100}, "maxBudget": {"steps": 2700},
        "reductionFactor": 3, "seed": 7});
    let read: SearchSpec = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        read,
        SearchSpec {
            seed: Some(7),
            ..spec(100, 2700, 3)
        }
    );
    assert_eq!(serde_json::to_value(&read).unwrap(), value);
    let timed: SearchSpec = serde_json::from_value(json!({"method": "asha", "metric": "acc",
        "mode": "max", "minBudget": {"minutes": 0.5}, "maxBudget": {"minutes": 4.5}}))
    .unwrap();
    assert_eq!(timed.reduction_factor, DEFAULT_REDUCTION_FACTOR);
    assert_eq!(timed.min_budget, Budget::Active(Duration::from_secs(30)));
    assert_eq!(
        serde_json::to_value(timed.max_budget).unwrap(),
        json!({"minutes": 4.5})
    );
    for bad in [
        json!({"method": "hyperband", "metric": "m", "mode": "min",
            "minBudget": {"steps": 1}, "maxBudget": {"steps": 2}}),
        json!({"method": "asha", "metric": "m", "mode": "lowest",
            "minBudget": {"steps": 1}, "maxBudget": {"steps": 2}}),
        json!({"method": "asha", "metric": "m", "mode": "min",
            "minBudget": {"epochs": 1}, "maxBudget": {"steps": 2}}),
        json!({"method": "asha", "metric": "m", "mode": "min",
            "minBudget": {"steps": 0}, "maxBudget": {"steps": 2}}),
    ] {
        assert!(
            serde_json::from_value::<SearchSpec>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn nine_configurations_with_eta_3_promote_three_then_one() {
    // The paper's shape, all nine in flight at once (synchronous successive halving):
    // rung 0 keeps 3, rung 1 keeps 1, which completes at maxBudget.
    let mut sim = Sim::new(spec(1, 9, 3), 9, 9, |run, rung| {
        Some((9 - run) as f64 + rung as f64 / 10.0)
    });
    sim.run_in_waves();
    assert_eq!(sim.promoted_to(1), [6, 7, 8]);
    assert_eq!(sim.promoted_to(2), [8]);
    assert_eq!(sim.state.phase(8), Some(Phase::Completed));
    assert_eq!(sim.state.best(), Some(8));
    let mut pruned = sim.pruned.clone();
    pruned.sort();
    assert_eq!(pruned, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(sim.state.stored_run(7).end, Some(SearchEnd::Pruned));
    assert_eq!(sim.state.stored_run(7).promoted_to, Some(1));
    assert_eq!(sim.state.stored_run(0).promoted_to, None);
}

#[test]
fn a_run_is_promoted_before_its_rung_is_full() {
    // One slot: after 3 runs finished rung 0, the best of them goes on at once.
    let mut state = AshaState::new(spec(1, 9, 3), 9).unwrap();
    for (run, loss) in [(0, 0.5), (1, 0.2), (2, 0.9)] {
        assert_eq!(state.next_action(), Action::StartNew { run });
        state.apply(&Action::StartNew { run }).unwrap();
        assert_eq!(state.budget_for(run), Some(Budget::Steps(1)));
        let reached = state
            .rung_reached(run, Some(loss), Some(1), Duration::ZERO)
            .unwrap();
        assert_eq!((reached.rung, reached.completed), (0, false));
        assert_eq!(reached.warning, None);
    }
    let promote = Action::Promote { run: 1, to_rung: 1 };
    assert_eq!(state.next_action(), promote);
    state.apply(&promote).unwrap();
    assert_eq!(state.budget_for(1), Some(Budget::Steps(3)));
    assert_eq!(state.in_flight(), [1]);
    // The rung-1 slot taken, the next free slot starts a new configuration.
    assert_eq!(state.next_action(), Action::StartNew { run: 3 });
    // A stale action is refused.
    assert!(state.apply(&promote).is_err());
    assert!(state.apply(&Action::StartNew { run: 0 }).is_err());
    assert!(state.apply(&Action::StartNew { run: 99 }).is_err());
}

#[test]
fn one_slot_promotes_as_soon_as_a_rung_has_eta_results() {
    // Run 0 is best everywhere. It goes to rung 1 after 3 runs finished rung 0, waits there
    // alone (top ⌊1/3⌋ is empty) while new configurations start, and goes on to maxBudget
    // once 3 runs finished rung 1.
    let mut sim = Sim::new(spec(1, 9, 3), 9, 1, |run, _| Some(run as f64));
    sim.run_to_end();
    assert_eq!(sim.promotions, [(0, 1), (1, 1), (2, 1), (0, 2)]);
    assert_eq!(sim.state.phase(0), Some(Phase::Completed));
}

#[test]
fn the_highest_rung_is_promoted_first() {
    // 12 runs at rung 0 (top 4: runs 0 to 3); 0, 1 and 2 finished rung 1 (top 1: run 0).
    let mut state = AshaState::new(spec(1, 9, 3), 12).unwrap();
    for run in 0..12 {
        state.apply(&Action::StartNew { run }).unwrap();
        state
            .rung_reached(run, Some(run as f64), Some(1), Duration::ZERO)
            .unwrap();
    }
    for run in 0..3 {
        state.apply(&Action::Promote { run, to_rung: 1 }).unwrap();
        state
            .rung_reached(run, Some(run as f64), Some(3), Duration::ZERO)
            .unwrap();
    }
    assert_eq!(state.next_action(), Action::Promote { run: 0, to_rung: 2 });
    state
        .apply(&Action::Promote { run: 0, to_rung: 2 })
        .unwrap();
    assert_eq!(state.next_action(), Action::Promote { run: 3, to_rung: 1 });
}

#[test]
fn ties_go_to_the_earlier_start() {
    let mut state = AshaState::new(spec(1, 3, 3), 6).unwrap();
    for run in 0..6 {
        state.apply(&Action::StartNew { run }).unwrap();
    }
    for run in [5, 3, 1, 0, 2, 4] {
        state
            .rung_reached(run, Some(0.25), Some(1), Duration::ZERO)
            .unwrap();
    }
    assert_eq!(state.ranking(0), [0, 1, 2, 3, 4, 5]);
    assert_eq!(state.next_action(), Action::Promote { run: 0, to_rung: 1 });
    state
        .apply(&Action::Promote { run: 0, to_rung: 1 })
        .unwrap();
    assert_eq!(state.next_action(), Action::Promote { run: 1, to_rung: 1 });
}

#[test]
fn runs_without_the_metric_rank_last_with_a_warning() {
    let mut state = AshaState::new(spec(1, 3, 3), 3).unwrap();
    for run in 0..3 {
        state.apply(&Action::StartNew { run }).unwrap();
    }
    let missing = state
        .rung_reached(0, None, Some(1), Duration::ZERO)
        .unwrap();
    let warning = missing.warning.unwrap();
    assert!(
        warning.contains("\"val_loss\"") && warning.contains("ranks last"),
        "{warning}"
    );
    let nan = state
        .rung_reached(1, Some(f64::NAN), Some(1), Duration::ZERO)
        .unwrap();
    assert!(nan.warning.is_some());
    state
        .rung_reached(2, Some(99.0), Some(1), Duration::ZERO)
        .unwrap();
    assert_eq!(state.ranking(0), [2, 0, 1]);
    assert_eq!(state.results(1)[0].metric, None);
    assert_eq!(state.next_action(), Action::Promote { run: 2, to_rung: 1 });
    assert_rebuilds(&state);
}

#[test]
fn mode_max_ranks_the_highest_first() {
    let mut s = spec(1, 3, 3);
    s.mode = Mode::Max;
    s.metric = "val_acc".into();
    let mut sim = Sim::new(s, 9, 9, |run, _| {
        Some([0.1, 0.9, 0.5][run % 3] + run as f64 / 100.0)
    });
    sim.run_to_end();
    // 0.97 (run 7), 0.94 (run 4), 0.91 (run 1).
    assert_eq!(sim.promoted_to(1), [1, 4, 7]);
    assert_eq!(sim.state.ranking(1), [7, 4, 1]);
    assert_eq!(sim.state.best(), Some(7));
}

#[test]
fn a_failure_mid_rung_ranks_nowhere() {
    let mut state = AshaState::new(spec(1, 9, 3), 4).unwrap();
    for (run, loss) in [(0, 0.1), (1, 0.2), (2, 0.3)] {
        state.apply(&Action::StartNew { run }).unwrap();
        state
            .rung_reached(run, Some(loss), Some(1), Duration::ZERO)
            .unwrap();
    }
    state
        .apply(&Action::Promote { run: 0, to_rung: 1 })
        .unwrap();
    state.apply(&Action::StartNew { run: 3 }).unwrap();
    state.failed(3).unwrap();
    assert_eq!(state.phase(3), Some(Phase::Failed));
    // The promoted run fails on its way to rung 1: it leaves rung 0's ranking, whose top
    // ⌊2/3⌋ is now empty.
    state.failed(0).unwrap();
    assert_eq!(state.ranking(0), [1, 2]);
    assert!(state.failed(0).is_err(), "failed twice");
    assert!(state.in_flight().is_empty());
    assert_rebuilds(&state);
    // No run can reach maxBudget by the rule any more: the best left goes on alone.
    assert_eq!(state.next_action(), Action::Promote { run: 1, to_rung: 1 });
    state
        .apply(&Action::Promote { run: 1, to_rung: 1 })
        .unwrap();
    state
        .rung_reached(1, Some(0.15), Some(3), Duration::ZERO)
        .unwrap();
    assert_eq!(state.next_action(), Action::Promote { run: 1, to_rung: 2 });
    state
        .apply(&Action::Promote { run: 1, to_rung: 2 })
        .unwrap();
    let reached = state
        .rung_reached(1, Some(0.12), Some(9), Duration::ZERO)
        .unwrap();
    assert!(reached.completed);
    assert_eq!(state.next_action(), Action::Prune { runs: vec![2] });
    state.apply(&Action::Prune { runs: vec![2] }).unwrap();
    assert!(state.is_done());
    assert_eq!(state.best(), Some(1));
    assert_eq!(state.stored_run(0).end, Some(SearchEnd::Failed));
    assert_eq!(state.stored_run(0).promoted_to, Some(1));
    assert_rebuilds(&state);
}

#[test]
fn a_timeboxed_attempt_still_heads_for_its_rung() {
    let mut state = AshaState::new(spec(100, 300, 3), 3).unwrap();
    state.apply(&Action::StartNew { run: 0 }).unwrap();
    // Timeboxed at step 60: no result, still in flight, same budget.
    state.timeboxed_before_budget(0).unwrap();
    assert_eq!(state.in_flight(), [0]);
    assert_eq!(state.budget_for(0), Some(Budget::Steps(100)));
    assert!(state.results(0).is_empty());
    assert_rebuilds(&state);
    // The continued attempt reaches step 100 and counts for rung 0.
    let reached = state
        .rung_reached(0, Some(0.3), Some(100), Duration::from_secs(7))
        .unwrap();
    assert_eq!(reached.rung, 0);
    assert_eq!(state.results(0)[0].active_ms, 7000);
    assert!(state.timeboxed_before_budget(0).is_err(), "not in flight");
}

#[test]
fn a_script_that_ends_before_its_budget_completes_where_it_is() {
    let mut state = AshaState::new(spec(100, 2700, 3), 3).unwrap();
    state.apply(&Action::StartNew { run: 0 }).unwrap();
    let end = state
        .ended_before_budget(0, Some(0.4), Some(80), Duration::ZERO)
        .unwrap();
    assert_eq!((end.rung, end.completed), (0, true));
    assert_eq!(state.phase(0), Some(Phase::Completed));
    assert_eq!(state.ranking(0), [0]);
    assert_rebuilds(&state);
}

#[test]
fn minutes_budgets_work_like_steps() {
    let mut s = spec(1, 1, 2);
    s.min_budget = minutes(1.0);
    s.max_budget = minutes(4.0);
    let mut state = AshaState::new(s, 2).unwrap();
    for run in 0..2 {
        state.apply(&Action::StartNew { run }).unwrap();
        let budget = state.budget_for(run).unwrap();
        assert_eq!(budget, minutes(1.0));
        assert!(!budget.is_reached(Some(5000), Duration::from_secs(59)));
        assert!(budget.is_reached(None, Duration::from_secs(60)));
        state
            .rung_reached(run, Some(run as f64), None, Duration::from_secs(60))
            .unwrap();
    }
    assert_eq!(state.next_action(), Action::Promote { run: 0, to_rung: 1 });
    state
        .apply(&Action::Promote { run: 0, to_rung: 1 })
        .unwrap();
    assert_eq!(state.budget_for(0), Some(minutes(2.0)));
    assert_rebuilds(&state);
}

#[test]
fn a_single_rung_search_runs_everything_to_max_budget() {
    let mut sim = Sim::new(spec(500, 500, 3), 4, 2, |run, _| Some(run as f64));
    sim.run_to_end();
    assert!(sim.promotions.is_empty() && sim.pruned.is_empty());
    assert!((0..4).all(|run| sim.state.phase(run) == Some(Phase::Completed)));
    assert_eq!(sim.state.best(), Some(0));
}

#[test]
fn the_end_prunes_what_waits_at_a_rung_only_once_nothing_is_in_flight() {
    let mut state = AshaState::new(spec(1, 3, 3), 2).unwrap();
    state.apply(&Action::StartNew { run: 0 }).unwrap();
    state.apply(&Action::StartNew { run: 1 }).unwrap();
    state
        .rung_reached(0, Some(0.5), Some(1), Duration::ZERO)
        .unwrap();
    // Two configurations, η = 3: nobody can be promoted, but run 1 may still report.
    assert_eq!(state.next_action(), Action::Wait);
    assert!(!Action::Wait.takes_slot());
    state
        .rung_reached(1, Some(0.1), Some(1), Duration::ZERO)
        .unwrap();
    // Nobody by the rule, so the leader is trained on to maxBudget before the end.
    assert_eq!(state.next_action(), Action::Promote { run: 1, to_rung: 1 });
    state
        .apply(&Action::Promote { run: 1, to_rung: 1 })
        .unwrap();
    assert_eq!(state.next_action(), Action::Wait);
    state
        .rung_reached(1, Some(0.05), Some(3), Duration::ZERO)
        .unwrap();
    assert_eq!(state.phase(1), Some(Phase::Completed));
    assert_eq!(state.next_action(), Action::Prune { runs: vec![0] });
    assert!(!state.is_done());
    assert!(state.apply(&Action::Prune { runs: vec![0, 5] }).is_err());
    assert_eq!(
        state.phase(0),
        Some(Phase::AtRung { rung: 0 }),
        "nothing half done"
    );
    state.apply(&Action::Prune { runs: vec![0] }).unwrap();
    assert!(state.is_done());
    assert_eq!(state.next_action(), Action::Done);
    assert_eq!(state.best(), Some(1));
}

#[test]
fn an_empty_search_is_done() {
    let state = AshaState::new(spec(1, 3, 3), 0).unwrap();
    assert!(state.is_done() && state.is_empty());
    assert_eq!(state.next_action(), Action::Done);
}

#[test]
fn rebuilding_mid_search_gives_the_same_next_action() {
    // Every action and event of a 27-run search with 2 slots is checked by `assert_rebuilds`.
    let mut sim = Sim::new(spec(100, 2700, 3), 27, 2, |run, rung| {
        Some(((run * 7919) % 27) as f64 / (rung + 1) as f64)
    });
    sim.run_to_end();
    let completed = (0..27)
        .filter(|&r| sim.state.phase(r) == Some(Phase::Completed))
        .count();
    assert!(completed >= 1);
    assert!(sim.promoted_to(1).len() >= 9 && !sim.promoted_to(3).is_empty());
    // Stopped mid-search: the runs in flight are in flight again after a rebuild.
    let mut sim = Sim::new(spec(100, 2700, 3), 27, 2, |run, _| Some(run as f64));
    sim.fill();
    for _ in 0..10 {
        sim.finish_one();
        sim.fill();
    }
    let rebuilt = AshaState::from_stored(sim.state.spec().clone(), &sim.state.stored()).unwrap();
    assert_eq!(rebuilt.in_flight(), sim.state.in_flight());
    assert_eq!(rebuilt.in_flight().len(), 2);
}

#[test]
fn damaged_stored_forms_are_refused() {
    let run = |position, started, rungs: usize, promoted_to, end| StoredRun {
        position,
        started,
        rungs: (0..rungs)
            .map(|rung| RungResult {
                rung,
                metric: Some(1.0),
                step: Some(1),
                active_ms: 0,
            })
            .collect(),
        promoted_to,
        end,
    };
    let s = spec(1, 9, 3);
    let rebuild = |runs: &[StoredRun]| AshaState::from_stored(s.clone(), runs);
    assert!(rebuild(&[run(0, true, 1, None, None)]).is_ok());
    assert!(rebuild(&[run(1, true, 1, None, None)]).is_err(), "position");
    assert!(
        rebuild(&[run(0, false, 1, None, None)]).is_err(),
        "not started"
    );
    assert!(
        rebuild(&[run(0, true, 0, Some(2), None)]).is_err(),
        "skipped a rung"
    );
    assert!(
        rebuild(&[run(0, true, 3, Some(2), None)]).is_err(),
        "max without completing"
    );
    assert!(
        rebuild(&[run(0, true, 1, Some(5), None)]).is_err(),
        "no rung 5"
    );
    assert!(rebuild(&[run(0, true, 0, None, Some(SearchEnd::Pruned))]).is_err());
    let mut wrong_rung = run(0, true, 2, Some(1), None);
    wrong_rung.rungs[1].rung = 0;
    assert!(rebuild(&[wrong_rung]).is_err());
    assert!(
        rebuild(&[run(0, true, 1, None, None), run(0, true, 1, None, None)]).is_err(),
        "twice"
    );
}

#[test]
fn the_stored_form_is_camel_case_json() {
    let mut state = AshaState::new(spec(1, 3, 3), 1).unwrap();
    state.apply(&Action::StartNew { run: 0 }).unwrap();
    state
        .rung_reached(0, Some(0.5), Some(1), Duration::from_millis(1500))
        .unwrap();
    assert_eq!(
        serde_json::to_value(state.stored_run(0)).unwrap(),
        json!({"position": 0, "started": true,
            "rungs": [{"rung": 0, "metric": 0.5, "step": 1, "activeMs": 1500}],
            "promotedTo": null, "end": null})
    );
    let fresh: StoredRun = serde_json::from_value(json!({"position": 3})).unwrap();
    assert!(!fresh.started && fresh.rungs.is_empty() && fresh.end.is_none());
}

#[test]
fn a_seed_gives_one_shuffled_start_order() {
    assert_eq!(start_order(5, None), [0, 1, 2, 3, 4]);
    let order = start_order(27, Some(7));
    assert_eq!(order, start_order(27, Some(7)));
    assert_ne!(order, start_order(27, Some(8)));
    assert_ne!(order, start_order(27, None));
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..27).collect::<Vec<_>>());
    assert!(start_order(0, Some(1)).is_empty());
    assert_eq!(start_order(1, Some(1)), [0]);
}
