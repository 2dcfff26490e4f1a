//! The supervisor's side of an adaptive search (see [`crate::search`]): it fills the batch's
//! slots with the search's next actions, has each run stopped at its rung's budget (the
//! Worker stops it, reason `rung`), records the rung's result, and keeps every change of the
//! search on the run's record in the same write as its status, so `resume <batch-id>` finds
//! the search as it was.

use super::{Supervisor, latest_existing};
use crate::actors::store::{ProgressUpdate, apply_progress};
use crate::actors::worker::Report;
use crate::clock::now_ms;
use crate::continuation::{self, Next};
use crate::executor::Job;
use crate::outcome::{EXIT_STOPPED, Outcome};
use crate::record::Status;
use crate::record::lifecycle::{self, AttemptEnd};
use crate::runid::RunId;
use crate::search::{Action, AshaState, Phase, RungTarget, record};
use actix::prelude::*;
use std::time::Duration;

/// One configuration of the search, by its position in start order.
pub struct Member {
    pub id: RunId,
    /// Its next attempt: spec and plan, the attempt number and checkpoint kept current.
    pub job: Job,
    /// Active time over all its attempts.
    pub active: Duration,
    /// Its last reported step and value of the search's metric, over all attempts.
    pub step: Option<u64>,
    pub metric: Option<f64>,
}

/// A search this supervisor runs.
pub struct SearchRun {
    pub state: AshaState,
    pub members: Vec<Member>,
    /// How many runs train at once (the batch's `maxParallel`).
    pub max_parallel: usize,
}

impl SearchRun {
    pub fn position(&self, id: &RunId) -> Option<usize> {
        self.members.iter().position(|m| &m.id == id)
    }
}

/// Run this search (its records are in the store, held until their turn).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunSearch(pub SearchRun);

impl Handler<RunSearch> for Supervisor {
    type Result = ();
    fn handle(&mut self, RunSearch(search): RunSearch, ctx: &mut Context<Self>) {
        // A resumed search: the runs that were training continue first.
        let in_flight = search.state.in_flight();
        self.search = Some(search);
        for position in in_flight {
            self.queue_search_attempt(position);
        }
        self.fill_search();
        self.advance(ctx);
    }
}

impl Supervisor {
    /// The ids of the search's runs (waiting ones included).
    pub(super) fn search_ids(&self) -> Vec<RunId> {
        self.search
            .as_ref()
            .map(|s| s.members.iter().map(|m| m.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The search has nothing left to do here: over, or being stopped.
    pub(super) fn search_settled(&self) -> bool {
        self.search
            .as_ref()
            .is_none_or(|s| s.state.is_done() || self.interrupts > 0)
    }

    /// Acts on the search's next actions while slots are free.
    pub(super) fn fill_search(&mut self) {
        loop {
            if self.interrupts > 0 {
                return;
            }
            let Some(search) = self.search.as_mut() else {
                return;
            };
            let action = search.state.next_action();
            if action.takes_slot() && search.state.in_flight().len() >= search.max_parallel {
                return;
            }
            if let Err(e) = search.state.apply(&action) {
                crate::ui::error(&format!("search: {e}"));
                return;
            }
            match action {
                Action::StartNew { run } => self.queue_search_attempt(run),
                Action::Promote { run, to_rung } => {
                    if !self.settings.quiet {
                        crate::ui::info(&format!(
                            "{}: promoted to rung {to_rung} ({})",
                            search.members[run].id,
                            search.state.rungs()[to_rung]
                        ));
                    }
                    self.queue_search_attempt(run);
                }
                Action::Prune { runs } => self.prune(&runs),
                Action::Wait | Action::Done => return,
            }
        }
    }

    /// Puts the next attempt of the run at `position` (in flight) in the queue, toward its
    /// rung's budget.
    fn queue_search_attempt(&mut self, position: usize) {
        let search = self.search.as_ref().expect("a search");
        let Some(Phase::Training { rung }) = search.state.phase(position) else {
            return;
        };
        let member = &search.members[position];
        let mut job = member.job.clone();
        job.rung = Some(RungTarget {
            rung,
            budget: search.state.rungs()[rung],
            active_before: member.active,
        });
        let stored = search.state.stored_run(position);
        let seq = crate::clock::queue_seq();
        self.update(&job.run_id, move |rec| {
            record::write_run(&mut rec.extra, &stored);
            if rec.held {
                lifecycle::or_log(lifecycle::release(rec, seq));
            }
        });
        self.queue.push(job);
    }

    /// The search is over: the runs waiting at a rung end `pruned`.
    fn prune(&mut self, positions: &[usize]) {
        let search = self.search.as_ref().expect("a search");
        let now = now_ms();
        let mut ended = Vec::new();
        for &position in positions {
            let id = search.members[position].id.clone();
            let stored = search.state.stored_run(position);
            let rung = stored.rungs.len().saturating_sub(1);
            let why = format!("search over; stopped at rung {rung}, not promoted");
            let recorded = why.clone();
            self.update(&id, move |rec| {
                record::write_run(&mut rec.extra, &stored);
                lifecycle::or_log(lifecycle::prune(rec, &recorded, now));
            });
            ended.push((
                id,
                Outcome {
                    status: Status::Pruned,
                    reason: why,
                    exit_code: 0,
                },
            ));
        }
        self.results.extend(ended);
    }

    /// An attempt of a search run ended: its rung result, a restart, another attempt toward
    /// the same rung, or its end; then the slots are filled again.
    pub(super) fn search_attempt_ended(
        &mut self,
        position: usize,
        mut job: Job,
        report: Report,
        ctx: &mut Context<Self>,
    ) {
        job.plan.attempts_made += 1;
        job.plan.active_total += report.active;
        let interrupted = self.interrupts > 0;
        let latest = latest_existing(&report.checkpoints, job.resume_from.as_deref());
        let search = self.search.as_mut().expect("a search");
        let metric_name = search.state.spec().metric.clone();
        let member = &mut search.members[position];
        let previous = (member.step, member.metric);
        member.active += report.active;
        member.step = report.progress.step.or(member.step);
        member.metric = metric_of(&report.progress, &metric_name).or(member.metric);
        // At a rung, the values when the budget was reached count, not those of the steps
        // the script took while it stopped.
        let (step, metric) = match &report.at_rung {
            Some(at) => (
                at.step.or(previous.0),
                metric_of(at, &metric_name).or(previous.1),
            ),
            None => (member.step, member.metric),
        };
        member.job.attempt = job.attempt + 1;
        member.job.resume_from = latest.clone().or(member.job.resume_from.take());
        member.job.plan = job.plan.clone();
        let active = member.active;
        let outcome = report.outcome.clone();
        let end = report.attempt_end();
        let progress = report.progress;
        let id = job.run_id.clone();
        let at_rung = outcome.status == Status::Stopped && outcome.reason == "rung";

        if at_rung || outcome.status == Status::Completed {
            let reached = if at_rung {
                search.state.rung_reached(position, metric, step, active)
            } else {
                search
                    .state
                    .ended_before_budget(position, metric, step, active)
            };
            let reached = match reached {
                Ok(reached) => reached,
                Err(e) => {
                    crate::ui::error(&format!("search: {e}"));
                    return;
                }
            };
            if let Some(warning) = &reached.warning {
                crate::ui::warn(&format!("{id}: {warning}"));
            }
            let stored = search.state.stored_run(position);
            if reached.completed {
                // maxBudget reached (or the script ended on its own): the run is complete.
                let end = AttemptEnd {
                    status: Status::Completed,
                    ..end
                };
                self.update(&id, move |rec| {
                    apply_progress(rec, &progress);
                    record::write_run(&mut rec.extra, &stored);
                    lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()));
                });
                let outcome = Outcome {
                    status: Status::Completed,
                    exit_code: 0,
                    ..outcome
                };
                self.results.push((id, outcome));
            } else if interrupted {
                // The result counts; the run ends stopped with the search and waits there
                // for `resume <batch-id>`.
                self.update(&id, move |rec| {
                    apply_progress(rec, &progress);
                    record::write_run(&mut rec.extra, &stored);
                    lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()));
                });
                self.results.push((id, outcome));
            } else {
                let why = format!("rung {} done, waiting for promotion", reached.rung);
                if !self.settings.quiet {
                    let value = metric.map_or("none".to_string(), |m| format!("{m:.6}"));
                    crate::ui::info(&format!(
                        "{id}: rung {} done ({metric_name} {value})",
                        reached.rung
                    ));
                }
                self.update(&id, move |rec| {
                    apply_progress(rec, &progress);
                    record::write_run(&mut rec.extra, &stored);
                    lifecycle::or_log(lifecycle::requeue(rec, &end, &why, true, now_ms()));
                });
            }
            self.fill_search();
            return;
        }

        let next = continuation::next(&job.plan, &outcome, latest.clone(), interrupted);
        match (outcome.status, next) {
            (Status::Failed, Next::Restart { after, from }) => {
                job.plan.restarts_used += 1;
                search.members[position].job.plan = job.plan.clone();
                if let Some(target) = job.rung.as_mut() {
                    target.active_before = active;
                }
                let restart = super::Restart {
                    failure: outcome.failure_text(),
                    end,
                    progress,
                    from,
                    after,
                };
                self.restart_after_failure(job, restart, ctx);
            }
            (Status::Failed, _) => {
                // Out of the search: it ranks nowhere and its slot is free.
                if let Err(e) = search.state.failed(position) {
                    crate::ui::error(&format!("search: {e}"));
                }
                let stored = search.state.stored_run(position);
                self.update(&id, move |rec| {
                    apply_progress(rec, &progress);
                    record::write_run(&mut rec.extra, &stored);
                    lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()));
                });
                self.results.push((id, outcome));
                self.fill_search();
            }
            _ if interrupted => {
                // Stopped with the search: on resume it continues toward the same rung.
                self.update(&id, move |rec| {
                    apply_progress(rec, &progress);
                    lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()));
                });
                self.results.push((id, outcome));
            }
            _ => {
                // Timeboxed (or stopped by a GPU watch) before its rung's budget: another
                // attempt in a later slot, like a round, toward the same rung.
                let rung = job.rung.map_or(0, |t| t.rung);
                let why = format!(
                    "attempt {} ended ({}) before rung {rung}'s budget; continues in a later slot",
                    job.attempt, outcome.reason
                );
                if !self.settings.quiet {
                    crate::ui::info(&format!("{id}: {why}"));
                }
                let seq = crate::clock::queue_seq();
                self.update(&id, {
                    let why = why.clone();
                    move |rec| {
                        apply_progress(rec, &progress);
                        lifecycle::or_log(lifecycle::requeue(rec, &end, &why, false, now_ms()));
                        rec.queue_seq = seq;
                    }
                });
                job.attempt += 1;
                job.resume_from = latest.or(job.resume_from);
                if let Some(target) = job.rung.as_mut() {
                    target.active_before = active;
                }
                self.queue.push(job);
            }
        }
    }

    /// A search run's attempt could not start at all (refused, its program gone): it is out
    /// of the search like a failed run, and its slot is free.
    pub(super) fn search_run_unstartable(&mut self, run_id: &RunId) {
        let Some(search) = self.search.as_mut() else {
            return;
        };
        let Some(position) = search.position(run_id) else {
            return;
        };
        if let Err(e) = search.state.failed(position) {
            crate::ui::error(&format!("search: {e}"));
            return;
        }
        let stored = search.state.stored_run(position);
        self.update(run_id, move |rec| {
            record::write_run(&mut rec.extra, &stored)
        });
        self.fill_search();
    }

    /// Ctrl-C or `stop`: the search's runs waiting for their turn or a promotion end
    /// `stopped`; the search stays on their records for `resume <batch-id>`.
    pub(super) fn stop_search(&mut self) {
        let Some(search) = self.search.as_ref() else {
            return;
        };
        let waiting: Vec<RunId> = (0..search.members.len())
            .filter(|&p| {
                matches!(
                    search.state.phase(p),
                    Some(Phase::New | Phase::AtRung { .. })
                )
            })
            .map(|p| search.members[p].id.clone())
            .collect();
        for id in waiting {
            self.end_unstarted(&id, Status::Stopped, "user", EXIT_STOPPED);
        }
    }
}

/// The value of `metric` in a run's progress (`loss` is also reported on its own).
fn metric_of(progress: &ProgressUpdate, metric: &str) -> Option<f64> {
    progress
        .metrics
        .get(metric)
        .copied()
        .or(progress.loss.filter(|_| metric == "loss"))
}
