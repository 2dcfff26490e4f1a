//! Adaptive search: a sweep that stops its losers early, by asynchronous successive halving
//! (ASHA, Li et al., "A System for Massively Parallel Hyperparameter Tuning"). Pure and in
//! memory: the supervisor feeds it the events of the batch's runs and acts on its answers.
//!
//! ```json
//! "search": {"method": "asha", "metric": "val_loss", "mode": "min",
//!            "minBudget": {"steps": 100}, "maxBudget": {"steps": 2700},
//!            "reductionFactor": 3, "seed": 7}
//! ```
//!
//! Rungs are at minBudget × η^k below maxBudget, then maxBudget itself (100, 300, 900, 2700).
//! Budgets count from a run's very start over all its attempts: reported steps (the first
//! reported step at or past the budget), or minutes of active time. A run trains until its
//! rung's budget, is stopped gracefully, and its last reported metric is its result there.
//! When a slot is free, the best run of the highest rung that is in the top ⌊n/η⌋ of the n
//! runs that finished that rung and is not promoted yet goes on to the next rung; if none
//! qualifies, the next configuration starts; runs reaching maxBudget complete. When nothing is
//! left to start or promote and nothing is in flight, the runs stopped at a rung end `pruned`.
//! Ranking: finite metrics in the mode's order, then runs without the metric (or NaN), ties by
//! start order; failed runs rank nowhere.
//!
//! # Driving it
//!
//! Runs are named by their position in start order ([`start_order`] maps it to the sweep's
//! configurations: `order[position]` is the index in `Batch::runs`).
//!
//! 1. `let mut state = AshaState::new(spec, n)?` (or [`AshaState::from_stored`] on resume).
//! 2. Fill the slots: while `state.in_flight().len() < maxParallel`, take
//!    `state.next_action()`:
//!    - `StartNew { run }`: queue the run's first attempt;
//!    - `Promote { run, to_rung }`: resume the run from its latest checkpoint;
//!    - `Wait`: stop filling; ask again after the next event;
//!    - `Prune { runs }`: end those runs `pruned` (they are stopped, with checkpoints);
//!    - `Done`: the batch is over.
//!
//!    and call `state.apply(&action)` once it is acted on; store the runs it names.
//! 3. On each progress report of a run in flight: if `state.budget_for(run)` is reached
//!    ([`Budget::is_reached`] with its last step and total active time), stop it gracefully
//!    and call `state.rung_reached(run, metric, step, active)` with the values at that
//!    moment (`metric`: the last reported value of `spec.metric`). It returns whether the run
//!    completed (maxBudget) or now waits at the rung, and a warning to show when the metric
//!    was missing. Then fill the slots again (2).
//! 4. When an attempt ends without reaching its budget:
//!    - timeboxed, stopped, lost: `timeboxed_before_budget(run)` (checks only); continue
//!      the run from its checkpoint as `untilDone` would; it stays in flight, and keeps its
//!      slot in the count of step 2;
//!    - failed (after any restarts): `failed(run)`, then fill the slots;
//!    - exited 0 on its own: `ended_before_budget(run, metric, step, active)`: its result at
//!      the rung, and it completes; then fill the slots.
//!
//! # What to store
//!
//! - Per run, after every action and event naming it: `state.stored_run(run)`
//!   ([`StoredRun`]: position, started, rung results, promotedTo, end).
//! - Per batch (or on every run record of the batch): the [`SearchSpec`] (serde gives the
//!   sweep file's camelCase form) and the configuration each position holds.
//!
//! On `resume <batch-id>`: `AshaState::from_stored(spec, &stored_runs)` gives the same state,
//! so the same next action; the runs it lists in `in_flight()` are continued from their
//! checkpoints before the slots are filled.

mod asha;
mod order;
pub mod record;
mod spec;
mod stored;
mod target;

#[cfg(test)]
mod tests;

pub use asha::{Action, AshaState, Phase, Reached, StateError};
pub use order::start_order;
pub use record::SearchRecord;
pub use spec::{Budget, DEFAULT_REDUCTION_FACTOR, Method, Mode, SearchSpec, SpecError};
pub use stored::{RungResult, SearchEnd, StoredRun};
pub use target::RungTarget;
