//! The Supervisor: this process's runs from queue to end. It asks for a start of each waiting
//! run in order (the policy lets a later run start past one that waits for GPUs), starts a
//! Worker per attempt, records how each attempt ended together with what follows (done, a
//! restart, the next round), wakes when another process frees a slot or a GPU, and turns
//! Ctrl-C, SIGTERM and `backprop stop` into graceful stops.

mod search;

pub use search::{Member, RunSearch, SearchRun};

use super::governor::Governor;
use super::gpu_allocator::{GpuAllocator, Release, Reserve};
use super::store::{Flush, StoreActor, Update, apply_progress};
use super::worker::{self, Report, Stop, Worker, WorkerExited};
use crate::admission::Answer;
use crate::clock::now_ms;
use crate::continuation::{self, Next};
use crate::executor::{Job, Results};
use crate::gpu_watch::GpuWatch;
use crate::outcome::{EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_STOPPED, EXIT_USAGE, Outcome, StopCause};
use crate::policy::{Placement, Request, WaitOn};
use crate::record::lifecycle::{self, AttemptEnd};
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::store::Store;
use crate::view::{LineState, RunLine, View};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

pub struct Settings {
    pub poll_interval: Duration,
    pub echo_protocol: bool,
    pub quiet: bool,
    /// Scripts' stdout goes to stderr, leaving stdout to `--json` data.
    pub stdout_to_stderr: bool,
    pub view: Arc<View>,
    pub thermal: crate::thermal::Limits,
    /// `gpu.memoryLimitAction` is `stop`.
    pub stop_over_memory_limit: bool,
    /// Inside a Slurm job: the run is this job's, Slurm's signals stop it, `backprop stop`
    /// comes as a file in the run directory, and nothing waits on other processes.
    pub node: Option<crate::slurm::node::NodeRole>,
    /// What the script's command runs under (`srun` for a multi-task Slurm job).
    pub launcher: crate::launch::Launcher,
}

/// One pass over the waiting runs, asking for each in order.
#[derive(Default)]
struct Round {
    /// The next run to ask for (an index into the queue).
    next: usize,
    /// Requests that waited for GPUs in this pass: the same request further back would too.
    blocked: Vec<Request>,
    /// A run waits for the first GPU reading, which comes within moments: ask again soon.
    soon: bool,
}

pub struct Supervisor {
    settings: Settings,
    store: Store,
    store_actor: Addr<StoreActor>,
    governor: Addr<Governor>,
    allocator: Addr<GpuAllocator>,
    /// Runs waiting for a start, in arrival order.
    queue: Vec<Job>,
    waiting_reason: HashMap<RunId, String>,
    active: HashMap<RunId, (Addr<Worker>, Job)>,
    results: Results,
    round: Option<Round>,
    /// Something changed while a round was under way: another round follows.
    again: bool,
    /// The fallback re-check while runs wait.
    retry: Option<SpawnHandle>,
    wake: Option<crate::wake::WakeWatch>,
    /// Runs waiting out a restart backoff (not in the queue yet).
    pending: usize,
    interrupts: u32,
    done: Option<oneshot::Sender<Results>>,
    /// The adaptive search this process runs, if any (see `search`).
    search: Option<SearchRun>,
}

/// A failed attempt that restarts: what is recorded, and when and from where it goes on.
struct Restart {
    failure: String,
    end: AttemptEnd,
    progress: super::store::ProgressUpdate,
    from: Option<String>,
    after: Duration,
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
            queue: Vec::new(),
            waiting_reason: HashMap::new(),
            active: HashMap::new(),
            results: Vec::new(),
            round: None,
            again: false,
            retry: None,
            wake: None,
            pending: 0,
            interrupts: 0,
            done: Some(done),
            search: None,
        }
    }

    fn update(&self, id: &RunId, change: impl Fn(&mut RunRecord) + Send + 'static) {
        self.store_actor.do_send(Update {
            id: id.clone(),
            change: Box::new(change),
        });
    }

    /// Asks for a start of every waiting run, in order.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        if self.interrupts > 0 {
            self.finish_if_idle();
            return;
        }
        if self.round.is_some() {
            self.again = true;
            return;
        }
        if let Some(handle) = self.retry.take() {
            ctx.cancel_future(handle);
        }
        self.round = Some(Round::default());
        self.step(ctx);
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let queue = &self.queue;
        let next = (round.next..queue.len()).find(|i| {
            !round
                .blocked
                .contains(&Request::of(&queue[*i].spec.options))
        });
        let Some(index) = next else {
            self.end_round(ctx);
            return;
        };
        round.next = index;
        let job = self.queue[index].clone();
        let reserve = Reserve {
            run_id: job.run_id.clone(),
            attempt: job.attempt,
            resumed_from: job.resume_from.clone(),
        };
        let asked = self.allocator.send(reserve);
        ctx.spawn(asked.into_actor(self).map(move |answer, act, ctx| {
            let answer = answer.unwrap_or_else(|e| {
                Answer::Waiting(WaitOn::Machine, format!("GPU allocator unavailable: {e}"))
            });
            act.answered(job, answer, ctx);
        }));
    }

    fn answered(&mut self, job: Job, answer: Answer, ctx: &mut Context<Self>) {
        let Some(index) = self.queue.iter().position(|j| j.run_id == job.run_id) else {
            // Stopped while we asked: a start just recorded is ended at once.
            if let Answer::Started(_) = answer {
                self.end_admitted(&job.run_id, Status::Stopped, "user");
            }
            self.step(ctx);
            return;
        };
        match answer {
            Answer::Started(_) if self.interrupts > 0 => {
                self.queue.remove(index);
                self.end_admitted(&job.run_id, Status::Stopped, "user");
            }
            Answer::Started(placement) => {
                self.queue.remove(index);
                self.start(job, placement, ctx);
            }
            Answer::Waiting(on, why) if job.no_wait && on != WaitOn::Reading => {
                self.queue.remove(index);
                crate::ui::error(&format!("{} refused: {why}", job.run_id));
                self.end_unstarted(&job.run_id, Status::Rejected, &why, EXIT_REFUSED);
                self.search_run_unstartable(&job.run_id);
            }
            Answer::Waiting(on, why) => {
                self.wait(&job.run_id, why);
                let end = self.queue.len();
                let round = self.round.as_mut().expect("a round is under way");
                match on {
                    WaitOn::Gpus => {
                        round.blocked.push(Request::of(&job.spec.options));
                        round.next = index + 1;
                    }
                    // Everything behind it waits for the same machine or slot.
                    WaitOn::Machine | WaitOn::Probe | WaitOn::Slot => round.next = end,
                    WaitOn::Reading => {
                        round.next = end;
                        round.soon = true;
                    }
                }
            }
            Answer::Impossible(why) => {
                self.queue.remove(index);
                crate::ui::error(&format!("{} refused: {why}", job.run_id));
                self.end_unstarted(&job.run_id, Status::Rejected, &why, EXIT_USAGE);
                self.search_run_unstartable(&job.run_id);
            }
            Answer::Gone(why) => {
                self.queue.remove(index);
                crate::ui::error(&why);
                self.settings.view.finish(&job.run_id);
                self.results.push((
                    job.run_id.clone(),
                    Outcome {
                        status: Status::Failed,
                        reason: why,
                        exit_code: 1,
                    },
                ));
                self.search_run_unstartable(&job.run_id);
            }
        }
        self.step(ctx);
    }

    fn end_round(&mut self, ctx: &mut Context<Self>) {
        let soon = self.round.take().is_some_and(|r| r.soon);
        if std::mem::take(&mut self.again) {
            self.advance(ctx);
            return;
        }
        if !self.queue.is_empty() {
            self.watch_for_wakes(ctx);
            // The fallback when nothing touches the wake file (GPU memory freed by another
            // program, a cooler GPU, a lower load).
            let poll = if soon {
                Duration::from_millis(100)
            } else {
                self.settings.poll_interval
            };
            self.retry = Some(ctx.run_later(poll, |act, ctx| {
                act.retry = None;
                act.advance(ctx);
            }));
        } else {
            self.wake = None;
        }
        self.finish_if_idle();
    }

    /// Watches the home's wake file while runs wait (another process frees a slot or GPU).
    fn watch_for_wakes(&mut self, ctx: &mut Context<Self>) {
        if self.wake.is_some() || self.settings.node.is_some() {
            return;
        }
        let addr = ctx.address();
        match crate::wake::watch(self.store.home(), move || addr.do_send(Woken)) {
            Ok(watch) => self.wake = Some(watch),
            Err(e) => tracing::warn!("no wake-ups from other processes ({e}); polling"),
        }
    }

    /// Records why a run waits (only when the reason changes) and shows it.
    fn wait(&mut self, run_id: &RunId, why: String) {
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
        self.waiting_reason.insert(run_id.clone(), why);
    }

    /// Ends a run that did not (or could not) start this attempt: the record says so, and
    /// this process's result for it is kept.
    fn end_unstarted(&mut self, run_id: &RunId, status: Status, reason: &str, exit_code: i32) {
        self.settings.view.finish(run_id);
        self.waiting_reason.remove(run_id);
        let recorded = reason.to_string();
        self.update(run_id, move |rec| {
            lifecycle::or_log(lifecycle::end_unstarted(rec, status, &recorded, now_ms()))
        });
        self.results.push((
            run_id.clone(),
            Outcome {
                status,
                reason: reason.to_string(),
                exit_code,
            },
        ));
    }

    /// A start was recorded but the attempt will not run (stopped meanwhile): it ends now.
    fn end_admitted(&mut self, run_id: &RunId, status: Status, reason: &str) {
        self.settings.view.finish(run_id);
        let end = AttemptEnd {
            status,
            reason: reason.to_string(),
            exit_code: None,
            signal: None,
        };
        self.update(run_id, move |rec| {
            lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()))
        });
        self.allocator.do_send(Release(run_id.clone()));
        self.results.push((
            run_id.clone(),
            Outcome {
                status,
                reason: reason.to_string(),
                exit_code: EXIT_STOPPED,
            },
        ));
    }

    fn start(&mut self, job: Job, placement: Placement, ctx: &mut Context<Self>) {
        self.waiting_reason.remove(&job.run_id);
        self.settings.view.finish(&job.run_id);
        let run_dir = match self.store.ensure_run_dir(&job.run_id) {
            Ok(dir) => dir,
            Err(e) => {
                let outcome = self.not_started(&job.run_id, e.to_string());
                self.results.push((job.run_id.clone(), outcome));
                self.search_run_unstartable(&job.run_id);
                return;
            }
        };
        let gpu_watch = (!placement.uuids.is_empty()).then(|| GpuWatch {
            thermal: self.settings.thermal,
            memory_limit_mb: placement.limit.map(|(mb, _)| mb),
            stop_over_limit: self.settings.stop_over_memory_limit,
            reserved_mb: placement.reserved_mb.unwrap_or(0),
            lost_grace_ms: job.spec.options.grace.as_millis() as u64,
        });
        let attempt = worker::Attempt {
            gpu_watch,
            run_id: job.run_id.clone(),
            number: job.attempt,
            timebox: job.timebox,
            resume_from: job.resume_from.clone(),
            spec: job.spec.clone(),
            run_dir,
            placement,
            echo_protocol: self.settings.echo_protocol,
            quiet: self.settings.quiet,
            stdout_to_stderr: self.settings.stdout_to_stderr,
            launcher: self.settings.launcher.clone(),
            python_helper_dir: job
                .spec
                .options
                .python_helper
                .then(|| crate::python_helper::dir_in(self.store.home())),
            rung: job.rung,
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

    /// The attempt was recorded as started but could not start at all (exec failed): it
    /// fails with the reason, never claiming to have run.
    fn not_started(&mut self, run_id: &RunId, why: String) -> Outcome {
        crate::ui::error(&format!("{run_id}: {why}"));
        let reason = format!("not started: {why}");
        let end = AttemptEnd {
            status: Status::Failed,
            reason: reason.clone(),
            exit_code: None,
            signal: None,
        };
        self.update(run_id, move |rec| {
            lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()))
        });
        self.allocator.do_send(Release(run_id.clone()));
        Outcome {
            status: Status::Failed,
            reason,
            exit_code: EXIT_NOT_FOUND,
        }
    }

    /// Every queued run ends `stopped` without having started.
    fn drop_queue(&mut self, cause: StopCause) {
        for job in std::mem::take(&mut self.queue) {
            self.end_unstarted(&job.run_id, Status::Stopped, cause.reason(), EXIT_STOPPED);
        }
    }

    fn finish_if_idle(&mut self) {
        if self.queue.is_empty()
            && self.active.is_empty()
            && self.pending == 0
            && self.round.is_none()
            && self.search_settled()
            && let Some(done) = self.done.take()
        {
            let _ = done.send(std::mem::take(&mut self.results));
        }
    }

    /// SIGINT, SIGTERM or SIGHUP. On a Slurm node a SIGTERM without a `backprop stop` is
    /// Slurm ending the job.
    fn interrupted(&mut self) {
        let cause = match &self.settings.node {
            Some(node) if !crate::slurm::node::stop_requested(&node.run_dir) => {
                StopCause::SlurmEnded
            }
            _ => StopCause::User,
        };
        self.stop_all(cause);
    }

    /// Slurm's early warning: the time limit is near or the job is being preempted (told
    /// apart by the time the job has left); the run stops gracefully, with a checkpoint.
    fn warned(&mut self, ctx: &mut Context<Self>) {
        let Some(node) = self.settings.node.clone() else {
            return;
        };
        if !self.settings.quiet {
            crate::ui::info("Slurm's early warning: stopping gracefully with a checkpoint");
        }
        let ask = tokio::task::spawn_blocking(move || {
            crate::slurm::node::warning_cause(&node.job_id, node.signal_before)
        });
        ctx.spawn(ask.into_actor(self).map(|cause, act, _| {
            act.stop_all(cause.ok().flatten().unwrap_or(StopCause::SlurmTimeLimit));
        }));
    }

    fn stop_all(&mut self, cause: StopCause) {
        self.interrupts += 1;
        let force = self.interrupts > 1;
        if !self.settings.quiet {
            if force {
                crate::ui::info("killing the run(s) now");
            } else if !self.active.is_empty() {
                crate::ui::info("stopping gracefully (Ctrl-C again to kill at once)");
            }
        }
        self.drop_queue(cause);
        self.stop_search();
        for (worker, _) in self.active.values() {
            worker.do_send(Stop { cause, force });
        }
        self.finish_if_idle();
    }

    /// `backprop stop` from another terminal sets `stopRequested` and sends us SIGUSR2.
    fn check_stop_requests(&mut self, ctx: &mut Context<Self>) {
        if let Some(node) = &self.settings.node {
            // Written by `backprop stop` on the submitting side before it signals the job.
            if self.interrupts == 0 && crate::slurm::node::stop_requested(&node.run_dir) {
                self.stop_all(StopCause::User);
            }
            return;
        }
        let store = self.store.clone();
        let ours: Vec<RunId> = self
            .active
            .keys()
            .cloned()
            .chain(self.queue.iter().map(|j| j.run_id.clone()))
            .chain(self.search_ids())
            .collect();
        if ours.is_empty() {
            return;
        }
        let read = async move {
            tokio::task::spawn_blocking(move || {
                let db = store.connect().ok()?;
                let ids: Vec<&str> = ours.iter().map(RunId::as_str).collect();
                let requested = crate::store::query::stop_requested(db.conn(), &ids).ok()?;
                Some(
                    ours.into_iter()
                        .filter(|id| requested.iter().any(|r| r == id.as_str()))
                        .collect::<Vec<_>>(),
                )
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
        };
        ctx.spawn(read.into_actor(self).map(|requested, act, ctx| {
            // A search stops as a whole: one of its runs asked to stop stops them all.
            let search = act.search_ids();
            if act.interrupts == 0 && requested.iter().any(|id| search.contains(id)) {
                act.stop_all(StopCause::User);
                return;
            }
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

    /// How the attempt ended goes into the record together with what follows it.
    fn attempt_ended(&mut self, mut job: Job, report: Report, ctx: &mut Context<Self>) {
        if let Some(position) = self.search.as_ref().and_then(|s| s.position(&job.run_id)) {
            self.search_attempt_ended(position, job, report, ctx);
            return;
        }
        job.plan.attempts_made += 1;
        job.plan.active_total += report.active;
        let latest = latest_existing(&report.checkpoints, job.resume_from.as_deref());
        let outcome = report.outcome.clone();
        let end = report.attempt_end();
        let progress = report.progress;
        let run_id = job.run_id.clone();
        match continuation::next(&job.plan, &outcome, latest, self.interrupts > 0) {
            Next::Done => {
                self.update(&run_id, move |rec| {
                    apply_progress(rec, &progress);
                    lifecycle::or_log(lifecycle::finish(rec, &end, now_ms()));
                });
                self.results.push((run_id, outcome));
            }
            Next::Restart { after, from } => {
                job.plan.restarts_used += 1;
                let restart = Restart {
                    failure: outcome.failure_text(),
                    end,
                    progress,
                    from,
                    after,
                };
                self.restart_after_failure(job, restart, ctx);
            }
            Next::NextRound { from } => {
                let why = format!(
                    "round {} done; waiting for its next turn",
                    job.plan.attempts_made
                );
                let seq = crate::clock::queue_seq();
                self.update(&run_id, {
                    let why = why.clone();
                    move |rec| {
                        apply_progress(rec, &progress);
                        lifecycle::or_log(lifecycle::requeue(rec, &end, &why, false, now_ms()));
                        rec.queue_seq = seq;
                    }
                });
                if !self.settings.quiet {
                    crate::ui::info(&format!("{run_id}: {why}"));
                }
                job.attempt += 1;
                job.resume_from = Some(from);
                self.queue.push(job);
            }
        }
    }

    /// A failed attempt is recorded and the run restarts after its backoff (`--max-restarts`).
    fn restart_after_failure(&mut self, job: Job, restart: Restart, ctx: &mut Context<Self>) {
        let why = format!(
            "attempt {} failed ({}); restart {} of {} in {}s",
            job.attempt,
            restart.failure,
            job.plan.restarts_used,
            job.plan.max_restarts,
            restart.after.as_secs()
        );
        let Restart { end, progress, .. } = restart;
        self.update(&job.run_id, {
            let why = why.clone();
            move |rec| {
                apply_progress(rec, &progress);
                lifecycle::or_log(lifecycle::requeue(rec, &end, &why, true, now_ms()));
            }
        });
        self.again_after(job, restart.from, why, restart.after, ctx);
    }

    /// Puts a held run back at the end of the queue as its next attempt, after `delay`.
    fn again_after(
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
        self.pending += 1;
        ctx.run_later(delay, move |act, ctx| {
            act.pending -= 1;
            if act.interrupts > 0 {
                act.end_unstarted(&job.run_id, Status::Stopped, "user", EXIT_STOPPED);
            } else {
                let seq = crate::clock::queue_seq();
                act.update(&job.run_id, move |rec| {
                    lifecycle::or_log(lifecycle::release(rec, seq))
                });
                act.queue.push(job);
            }
            act.advance(ctx);
        });
    }
}

/// A signal delivered to backprop.
#[derive(Message)]
#[rtype(result = "()")]
enum Signalled {
    Interrupt,
    StopRequest,
    /// Slurm's early-warning signal (`slurm.signal`).
    SlurmWarning,
}

/// Another process freed a slot or a GPU.
#[derive(Message)]
#[rtype(result = "()")]
struct Woken;

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
        if let Some(node) = &self.settings.node {
            actix::spawn(listen(
                SignalKind::from_raw(node.warning as i32),
                || Signalled::SlurmWarning,
                addr.clone(),
            ));
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
            Signalled::SlurmWarning => self.warned(ctx),
        }
    }
}

impl Handler<Woken> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Woken, ctx: &mut Context<Self>) {
        if !self.queue.is_empty() {
            self.advance(ctx);
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
        self.queue.push(job);
        self.advance(ctx);
    }
}

impl Handler<WorkerExited> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: WorkerExited, ctx: &mut Context<Self>) {
        let Some((_, job)) = self.active.remove(&msg.run_id) else {
            return;
        };
        self.allocator.do_send(Release(msg.run_id.clone()));
        match msg.report {
            Ok(report) => self.attempt_ended(job, report, ctx),
            Err(why) => {
                let outcome = self.not_started(&msg.run_id, why);
                self.results.push((msg.run_id.clone(), outcome));
                self.search_run_unstartable(&msg.run_id);
            }
        }
        // The run's end must be in the store before the next admission reads it, or the
        // freed slot would look taken until the next retry.
        let flushed = self.store_actor.send(Flush);
        ctx.spawn(flushed.into_actor(self).map(|_, act, ctx| {
            act.advance(ctx);
            act.finish_if_idle();
        }));
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
