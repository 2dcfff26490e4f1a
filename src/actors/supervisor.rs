//! The Supervisor: this process's queue of runs and their lifecycle. It asks the Governor
//! and the GpuAllocator before each start, starts a Worker per attempt, records every
//! status change, and turns Ctrl-C, SIGTERM and `backprop stop` into graceful stops.

use super::governor::{CanStart, Governor};
use super::gpu_allocator::{GpuAllocator, Lease, NoFit, Reserve};
use super::store::{StoreActor, Update};
use super::worker::{self, GpuWatch, Stop, Worker, WorkerExited};
use crate::clock::now_ms;
use crate::continuation::{self, Next, Plan};
use crate::outcome::{EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_STOPPED, Outcome, StopCause};
use crate::record::{Attempt, RunSpec, Status};
use crate::resources::Verdict;
use crate::store::Store;
use crate::view::{LineState, RunLine, View};
use actix::prelude::*;
use nix::sys::signal::Signal;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// One attempt waiting to start.
#[derive(Clone, Debug)]
pub struct Job {
    pub run_id: String,
    pub spec: RunSpec,
    pub attempt: u32,
    pub resume_from: Option<String>,
    pub max_run: Duration,
    pub no_wait: bool,
    /// Restarts and rounds left to this run.
    pub plan: Plan,
}

/// How every run of this process ended.
pub type Results = Vec<(String, Outcome)>;

pub struct Settings {
    pub poll_interval: Duration,
    pub echo_protocol: bool,
    pub quiet: bool,
    /// Scripts' stdout goes to stderr, leaving stdout to `--json` data.
    pub stdout_to_stderr: bool,
    pub view: Arc<View>,
    pub max_temp_c: f64,
    pub resume_temp_c: f64,
    /// `gpu.memoryLimitAction` is `stop`.
    pub stop_over_memory_limit: bool,
    /// `gpu.minFreeVramMB`: what a GPU run reserves without a memory limit.
    pub default_reservation_mb: u64,
}

pub struct Supervisor {
    settings: Settings,
    store: Store,
    store_actor: Addr<StoreActor>,
    governor: Addr<Governor>,
    allocator: Addr<GpuAllocator>,
    queue: VecDeque<Job>,
    waiting_reason: HashMap<String, String>,
    active: HashMap<String, (Addr<Worker>, Job)>,
    results: Results,
    /// The head of the queue is being checked (governor / allocator answer pending).
    deciding: bool,
    /// Runs waiting out a restart backoff (not in the queue yet).
    pending: usize,
    /// `advance` was called while a decision was in flight.
    advance_again: bool,
    interrupts: u32,
    done: Option<oneshot::Sender<Results>>,
}

impl Supervisor {
    pub fn new(
        settings: Settings,
        store: Store,
        store_actor: Addr<StoreActor>,
        governor: Addr<Governor>,
        allocator: Addr<GpuAllocator>,
        done: oneshot::Sender<Results>,
    ) -> Supervisor {
        Supervisor {
            settings,
            store,
            store_actor,
            governor,
            allocator,
            queue: VecDeque::new(),
            waiting_reason: HashMap::new(),
            active: HashMap::new(),
            results: Vec::new(),
            deciding: false,
            pending: 0,
            advance_again: false,
            interrupts: 0,
            done: Some(done),
        }
    }

    fn update(&self, id: &str, change: impl Fn(&mut crate::record::RunRecord) + Send + 'static) {
        self.store_actor.do_send(Update {
            id: id.to_string(),
            change: Box::new(change),
        });
    }

    /// Considers the head of the queue: governor first, then the allocator, then a Worker.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        if self.interrupts > 0 {
            self.finish_if_idle();
            return;
        }
        if self.deciding {
            // Looked at again when the answer in flight arrives.
            self.advance_again = true;
            return;
        }
        let Some(job) = self.queue.front().cloned() else {
            self.finish_if_idle();
            return;
        };
        self.deciding = true;
        let governor = self.governor.clone();
        let allocator = self.allocator.clone();
        let reserve = Reserve {
            run_id: job.run_id.clone(),
            gpus: job.spec.options.gpus,
            memory_limit: job
                .spec
                .options
                .gpu_memory_limit
                .as_deref()
                .and_then(|l| l.parse().ok()),
            framework: crate::launch::framework_for(&job.spec),
            max_parallel: job.spec.options.max_parallel.max(1),
            default_reservation_mb: self.settings.default_reservation_mb,
        };
        let decision = async move {
            match governor.send(CanStart).await {
                Ok(Verdict::Go) => {}
                Ok(Verdict::Wait(why)) => {
                    return Err(NoFit {
                        reason: why,
                        permanent: false,
                    });
                }
                Err(e) => {
                    return Err(NoFit {
                        reason: format!("governor unavailable: {e}"),
                        permanent: false,
                    });
                }
            }
            allocator.send(reserve).await.unwrap_or_else(|e| {
                Err(NoFit {
                    reason: format!("GPU allocator unavailable: {e}"),
                    permanent: false,
                })
            })
        };
        ctx.spawn(decision.into_actor(self).map(move |decision, act, ctx| {
            act.deciding = false;
            if std::mem::take(&mut act.advance_again) && decision.is_err() && !job.no_wait {
                // Something changed while we asked (a run ended): ask again at once.
                act.advance(ctx);
                return;
            }
            if act.interrupts > 0 || act.queue.front().map(|j| &j.run_id) != Some(&job.run_id) {
                // Stopped or removed while we were asking.
                act.advance(ctx);
                return;
            }
            match decision {
                Ok(lease) => {
                    act.queue.pop_front();
                    act.start(job, lease, ctx);
                    act.advance(ctx);
                }
                Err(no_fit) if job.no_wait || no_fit.permanent => {
                    act.queue.pop_front();
                    act.reject(&job.run_id, &no_fit.reason);
                    act.advance(ctx);
                }
                Err(no_fit) => {
                    act.wait(&job.run_id, no_fit.reason);
                    // A freed slot should be taken quickly even with a long pollInterval.
                    let retry = act.settings.poll_interval.min(Duration::from_secs(1));
                    ctx.run_later(retry, |act, ctx| act.advance(ctx));
                }
            }
        }));
    }

    /// Records why a run waits (only when the reason changes) and shows it.
    fn wait(&mut self, run_id: &str, why: String) {
        if self.waiting_reason.get(run_id) == Some(&why) {
            return;
        }
        self.settings.view.update(&RunLine {
            run_id: run_id.to_string(),
            state: LineState::Waiting(why.clone()),
            step: None,
            loss: None,
            total: None,
            steps_per_sec: None,
            active: Duration::ZERO,
            limit: Duration::ZERO,
            gpus: Vec::new(),
        });
        let reason = why.clone();
        self.update(run_id, move |rec| {
            rec.status = Status::Queued;
            rec.reason = Some(reason.clone());
        });
        self.waiting_reason.insert(run_id.to_string(), why);
    }

    fn reject(&mut self, run_id: &str, why: &str) {
        crate::ui::error(&format!("{run_id} refused: {why}"));
        self.end_unstarted(run_id, Status::Rejected, why, EXIT_REFUSED);
    }

    /// Ends a run that did not (or could not) start this attempt: the record says so, and
    /// this process's result for it is kept.
    fn end_unstarted(&mut self, run_id: &str, status: Status, reason: &str, exit_code: i32) {
        self.settings.view.finish(run_id);
        let recorded = reason.to_string();
        self.update(run_id, move |rec| rec.finish(status, &recorded, now_ms()));
        self.results.push((
            run_id.to_string(),
            Outcome {
                status,
                reason: reason.to_string(),
                exit_code,
            },
        ));
    }

    fn start(&mut self, job: Job, lease: Lease, ctx: &mut Context<Self>) {
        self.waiting_reason.remove(&job.run_id);
        self.settings.view.finish(&job.run_id);
        let run_dir = match self.store.ensure_run_dir(&job.run_id) {
            Ok(dir) => dir,
            Err(e) => {
                self.fail_start(&job.run_id, e.to_string());
                return;
            }
        };
        let now = now_ms();
        let attempt_record = Attempt {
            number: job.attempt,
            start_time: Some(now),
            status: Some(Status::Running),
            gpus: lease.gpus.clone(),
            reserved_mb: lease.reserved_mb,
            resumed_from: job.resume_from.clone(),
            host: Some(crate::proc_info::hostname()),
            ..Default::default()
        };
        self.update(&job.run_id, move |rec| {
            rec.status = Status::Running;
            rec.reason = None;
            rec.end_time = None;
            rec.start_time.get_or_insert(now);
            rec.attempts.push(attempt_record.clone());
        });
        let options = &job.spec.options;
        let gpu_watch = (!lease.gpus.is_empty()).then(|| GpuWatch {
            max_temp_c: self.settings.max_temp_c,
            resume_temp_c: self.settings.resume_temp_c,
            memory_limit_mb: options
                .gpu_memory_limit
                .is_some()
                .then_some(lease.reserved_mb)
                .flatten(),
            stop_over_limit: self.settings.stop_over_memory_limit,
        });
        let attempt = worker::Attempt {
            gpu_watch,
            run_id: job.run_id.clone(),
            number: job.attempt,
            stop_signal: crate::process::parse_signal(&options.stop_signal)
                .unwrap_or(Signal::SIGINT),
            checkpoint_signal: options
                .checkpoint_signal
                .as_deref()
                .and_then(crate::process::parse_signal),
            grace: Duration::from_secs_f64(options.grace_seconds.max(0.0)),
            max_run: job.max_run,
            resume_from: job.resume_from.clone(),
            spec: job.spec.clone(),
            run_dir,
            lease,
            echo_protocol: self.settings.echo_protocol,
            quiet: self.settings.quiet,
            stdout_to_stderr: self.settings.stdout_to_stderr,
        };
        let worker = Worker::new(
            attempt,
            self.store_actor.clone(),
            self.governor.clone(),
            ctx.address().recipient(),
            self.settings.view.clone(),
        )
        .start();
        self.active.insert(job.run_id.clone(), (worker, job));
    }

    /// The attempt could not start at all (exec failed): recorded as failed, never as run.
    fn fail_start(&mut self, run_id: &str, why: String) {
        crate::ui::error(&format!("{run_id}: {why}"));
        self.end_unstarted(
            run_id,
            Status::Failed,
            &format!("not started: {why}"),
            EXIT_NOT_FOUND,
        );
    }

    /// Every queued run ends `stopped` without having started.
    fn drop_queue(&mut self) {
        for job in std::mem::take(&mut self.queue) {
            self.end_unstarted(&job.run_id, Status::Stopped, "user", EXIT_STOPPED);
        }
    }

    fn finish_if_idle(&mut self) {
        if self.queue.is_empty()
            && self.active.is_empty()
            && self.pending == 0
            && !self.deciding
            && let Some(done) = self.done.take()
        {
            let _ = done.send(std::mem::take(&mut self.results));
        }
    }

    fn interrupted(&mut self) {
        self.interrupts += 1;
        let force = self.interrupts > 1;
        if !self.settings.quiet {
            if force {
                crate::ui::info("killing the run(s) now");
            } else if !self.active.is_empty() {
                crate::ui::info("stopping gracefully (Ctrl-C again to kill at once)");
            }
        }
        self.drop_queue();
        for (worker, _) in self.active.values() {
            worker.do_send(Stop {
                cause: StopCause::User,
                force,
            });
        }
        self.finish_if_idle();
    }

    /// `backprop stop` from another terminal sets `stopRequested` and sends us SIGUSR2.
    fn check_stop_requests(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let ours: Vec<String> = self
            .active
            .keys()
            .cloned()
            .chain(self.queue.iter().map(|j| j.run_id.clone()))
            .collect();
        if ours.is_empty() {
            return;
        }
        let read = async move {
            tokio::task::spawn_blocking(move || {
                let ex = store.read().ok()?;
                Some(
                    ours.into_iter()
                        .filter(|id| ex.record(id).is_ok_and(|r| r.stop_requested))
                        .collect::<Vec<_>>(),
                )
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
        };
        ctx.spawn(read.into_actor(self).map(|requested, act, ctx| {
            for id in requested {
                if let Some((worker, _)) = act.active.get(&id) {
                    worker.do_send(Stop {
                        cause: StopCause::User,
                        force: false,
                    });
                } else if let Some(pos) = act.queue.iter().position(|j| j.run_id == id) {
                    act.queue.remove(pos);
                    act.end_unstarted(&id, Status::Stopped, "user", EXIT_STOPPED);
                }
            }
            act.advance(ctx);
        }));
    }
}

/// A signal delivered to backprop.
#[derive(Message)]
#[rtype(result = "()")]
enum Signalled {
    Interrupt,
    StopRequest,
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let addr = ctx.address();
        let listen = |kind: SignalKind, message: fn() -> Signalled, addr: Addr<Supervisor>| async move {
            let Ok(mut stream) = signal(kind) else { return };
            while stream.recv().await.is_some() {
                addr.do_send(message());
            }
        };
        for kind in [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ] {
            actix::spawn(listen(kind, || Signalled::Interrupt, addr.clone()));
        }
        actix::spawn(listen(
            SignalKind::user_defined2(),
            || Signalled::StopRequest,
            addr,
        ));
        // A fallback for a lost SIGUSR2 (e.g. sent while we were starting).
        let poll = self.settings.poll_interval;
        ctx.run_interval(poll, |act, ctx| act.check_stop_requests(ctx));
    }
}

impl Handler<Signalled> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Signalled, ctx: &mut Context<Self>) {
        match msg {
            Signalled::Interrupt => self.interrupted(),
            Signalled::StopRequest => self.check_stop_requests(ctx),
        }
    }
}

/// Queue a run.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit(pub Job);

impl Handler<Submit> for Supervisor {
    type Result = ();
    fn handle(&mut self, Submit(job): Submit, ctx: &mut Context<Self>) {
        self.queue.push_back(job);
        self.advance(ctx);
    }
}

impl Handler<WorkerExited> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: WorkerExited, ctx: &mut Context<Self>) {
        // The run's GPU lease ends with its record (`RunRecord::finish`).
        let Some((_, mut job)) = self.active.remove(&msg.run_id) else {
            return;
        };
        match msg.outcome {
            Ok(outcome) => {
                job.plan.attempts_made += 1;
                job.plan.active_total += msg.active;
                let latest = latest_existing(&msg.checkpoints, job.resume_from.as_deref());
                match continuation::next(&job.plan, &outcome, latest, self.interrupts > 0) {
                    Next::Done => self.results.push((msg.run_id, outcome)),
                    Next::Restart { after, from } => {
                        job.plan.restarts_used += 1;
                        let why = format!(
                            "attempt {} failed ({}, exit {}); restart {} of {} in {}s",
                            job.attempt,
                            outcome.reason,
                            outcome.exit_code,
                            job.plan.restarts_used,
                            job.plan.max_restarts,
                            after.as_secs()
                        );
                        self.again(job, from, why, after, ctx);
                    }
                    Next::NextRound { from } => {
                        let why = format!(
                            "round {} done; waiting for its next turn",
                            job.plan.attempts_made
                        );
                        self.again(job, Some(from), why, Duration::ZERO, ctx);
                    }
                }
            }
            Err(why) => self.fail_start(&msg.run_id, why),
        }
        // The run's end must be on disk before the next admission reads the store, or the
        // freed slot would look taken until the next retry.
        let flushed = self.store_actor.send(super::store::Flush);
        ctx.spawn(flushed.into_actor(self).map(|_, act, ctx| {
            act.advance(ctx);
            act.finish_if_idle();
        }));
    }
}

impl Supervisor {
    /// Puts a run back at the end of the queue as its next attempt, after `delay`.
    fn again(
        &mut self,
        mut job: Job,
        from: Option<String>,
        why: String,
        delay: Duration,
        ctx: &mut Context<Self>,
    ) {
        if !self.settings.quiet {
            crate::ui::info(&format!("{}: {why}", job.run_id));
        }
        job.attempt += 1;
        job.resume_from = from;
        let me = crate::proc_info::me();
        let reason = why.clone();
        // Claimed again at once, so no other process marks it lost in between.
        self.update(&job.run_id, move |rec| {
            rec.status = Status::Queued;
            rec.reason = Some(reason.clone());
            rec.end_time = None;
            rec.supervisor = Some(me.clone());
        });
        self.pending += 1;
        ctx.run_later(delay, move |act, ctx| {
            act.pending -= 1;
            let seq = crate::admission::next_seq();
            act.update(&job.run_id, move |rec| rec.queue_seq = seq);
            if act.interrupts > 0 {
                act.end_unstarted(&job.run_id, Status::Stopped, "user", EXIT_STOPPED);
            } else {
                act.queue.push_back(job);
            }
            act.advance(ctx);
        });
    }
}

/// The newest checkpoint of the attempt that still exists, else the one it started from.
fn latest_existing(announced: &[String], started_from: Option<&str>) -> Option<String> {
    announced
        .iter()
        .rev()
        .map(String::as_str)
        .chain(started_from)
        .find(|path| std::path::Path::new(path).exists())
        .map(str::to_string)
}
