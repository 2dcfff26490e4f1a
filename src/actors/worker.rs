//! A Worker supervises one attempt: one child process group, its output pumps, its
//! timebox, the graceful stop sequence (stop signal, grace, SIGKILL to the group), and the
//! watch over its GPUs. The decisions are pure functions (`outcome`, `gpu_watch`,
//! `active_clock`); files are written on a writer thread, never on the actor thread.

use super::governor::{Governor, Sampled, Watch};
use super::store::{ProgressUpdate, StoreActor, Update};
use crate::active_clock::ActiveClock;
use crate::clock::now_ms;
use crate::file_writer::{AppendFile, FileWriter, open_for_lines};
use crate::gpu_watch::{self, Action, GpuWatch, Reading, WatchState};
use crate::guard::Guard;
use crate::launch::{self, AttemptEnv, LegacyArgs};
use crate::legacy_hint;
use crate::outcome::{self, ExitInfo, Outcome, StopCause};
use crate::policy::Placement;
use crate::process::{self, Launch, signal_group};
use crate::pump::{self, Batch, PumpOptions, StderrNotice};
use crate::record::lifecycle;
use crate::record::{AttemptEvent, RunSpec};
use crate::resources::Snapshot;
use crate::runid::RunId;
use crate::view::{LineState, RunLine, View};
use actix::prelude::*;
use nix::sys::signal::Signal;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait for the output pipes to close after the child exited and its group was
/// killed (a daemon that left the group may hold them open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// Steps per second are measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Progress reaches the store and the live line at most this often.
const SHOW_EVERY: Duration = Duration::from_millis(200);

/// Everything a Worker needs to run one attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub run_id: RunId,
    pub number: u32,
    pub spec: RunSpec,
    pub resume_from: Option<String>,
    pub timebox: Duration,
    pub run_dir: PathBuf,
    pub placement: Placement,
    pub echo_protocol: bool,
    pub quiet: bool,
    /// Send the script's stdout to our stderr (when our stdout carries `--json` data).
    pub stdout_to_stderr: bool,
    /// Set for runs placed on GPUs: watched on every governor sample.
    pub gpu_watch: Option<GpuWatch>,
    /// Where to write `backprop_helper.py` for the script (`pythonHelper`), if anywhere.
    pub python_helper_dir: Option<PathBuf>,
    /// What the script's command runs under (`srun` for a multi-task Slurm job).
    pub launcher: launch::Launcher,
    /// A search run: stopped gracefully (reason `rung`) once this budget is used.
    pub rung: Option<crate::search::RungTarget>,
}

/// How the attempt went, for the supervisor to record with what comes next.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    pub exit: ExitInfo,
    /// The final progress (written with the outcome).
    pub progress: ProgressUpdate,
    /// Checkpoints announced during this attempt (absolute paths, oldest first).
    pub checkpoints: Vec<String>,
    /// Active time of this attempt.
    pub active: Duration,
    /// A search run: its progress at the moment it reached its rung's budget (the script
    /// may report a step or two more while it stops).
    pub at_rung: Option<ProgressUpdate>,
}

impl Report {
    /// How the attempt ended, as its record keeps it.
    pub fn attempt_end(&self) -> crate::record::lifecycle::AttemptEnd {
        crate::record::lifecycle::AttemptEnd {
            status: self.outcome.status,
            reason: self.outcome.reason.clone(),
            exit_code: self.exit.code,
            signal: self.exit.signal,
        }
    }
}

/// Sent to the supervisor when the attempt is over (or could not start).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct WorkerExited {
    pub run_id: RunId,
    pub report: Result<Report, String>,
}

/// Stop the attempt: gracefully (stop signal, then SIGKILL after the grace period) or at once.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Stop {
    pub cause: StopCause,
    pub force: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct StdoutBatch(Batch);

#[derive(Message)]
#[rtype(result = "()")]
struct Noticed(StderrNotice);

#[derive(Message)]
#[rtype(result = "()")]
struct PumpClosed;

#[derive(Message)]
#[rtype(result = "()")]
struct ChildExited(ExitInfo);

pub struct Worker {
    attempt: Attempt,
    store: Addr<StoreActor>,
    governor: Addr<Governor>,
    supervisor: Recipient<WorkerExited>,
    files: Option<FileWriter>,
    watch: WatchState,
    /// Why the run is paused (SIGSTOP sent), while it is.
    pause_reason: Option<String>,
    checkpoints: Vec<String>,
    pid: u32,
    guard: Option<Guard>,
    clock: ActiveClock,
    /// Wall time the attempt started, and paused time so far (for the timebox file).
    started_ms: u64,
    paused_ms: u64,
    paused_since_ms: Option<u64>,
    timebox: Option<SpawnHandle>,
    kill_timer: Option<SpawnHandle>,
    stop_cause: Option<StopCause>,
    exit: Option<ExitInfo>,
    open_pumps: u8,
    drain_expired: bool,
    cuda_oom: bool,
    /// stderr named the original tool's arguments (`--run-id`, `--max-minutes`).
    legacy_args_named: bool,
    progress: ProgressUpdate,
    view: Arc<View>,
    rate_samples: Vec<(Instant, u64)>,
    last_shown: Option<Instant>,
    /// Progress merged since the last publish (a quiet script's last line still gets out).
    progress_unsent: bool,
    clock_origin: Instant,
    finished: bool,
    /// The progress when a search run reached its rung's budget.
    at_rung: Option<ProgressUpdate>,
}

impl Worker {
    pub fn new(
        attempt: Attempt,
        store: Addr<StoreActor>,
        governor: Addr<Governor>,
        supervisor: Recipient<WorkerExited>,
        view: Arc<View>,
    ) -> Worker {
        let progress = ProgressUpdate::new(attempt.run_id.clone());
        Worker {
            attempt,
            store,
            governor,
            supervisor,
            files: None,
            watch: WatchState::default(),
            pause_reason: None,
            checkpoints: Vec::new(),
            pid: 0,
            guard: None,
            clock: ActiveClock::started_at(Instant::now()),
            started_ms: now_ms(),
            paused_ms: 0,
            paused_since_ms: None,
            timebox: None,
            kill_timer: None,
            stop_cause: None,
            exit: None,
            open_pumps: 0,
            drain_expired: false,
            cuda_oom: false,
            legacy_args_named: false,
            progress,
            view,
            rate_samples: Vec::new(),
            last_shown: None,
            progress_unsent: false,
            clock_origin: Instant::now(),
            finished: false,
            at_rung: None,
        }
    }

    /// The run directory as the script sees it in BACKPROP_RUN_DIR.
    fn run_dir_text(&self) -> String {
        self.attempt.run_dir.display().to_string()
    }

    fn timebox_file(&self) -> PathBuf {
        self.attempt.run_dir.join("timebox.json")
    }

    fn launch(&self) -> Result<Launch, String> {
        let a = &self.attempt;
        let legacy = LegacyArgs {
            run_id: &a.run_id,
            timebox: a.timebox,
        };
        let (program, args) = launch::command_line(&a.spec, a.resume_from.as_deref(), Some(legacy))
            .map_err(|e| e.to_string())?;
        let (program, args) = launch::with_launcher(&a.launcher.prefix, program, args);
        let framework = launch::framework_for(&a.spec);
        let gpu_env = a.placement.env(framework);
        let timebox_file = self.timebox_file();
        let inherited_pythonpath = std::env::var_os("PYTHONPATH").map(|v| v.into_string());
        let python_helper_dir = a
            .python_helper_dir
            .as_deref()
            .filter(|dir| helper_installed(dir, inherited_pythonpath.as_ref()));
        let env = launch::script_env(
            &a.spec,
            &AttemptEnv {
                run_id: &a.run_id,
                run_dir: &a.run_dir,
                attempt: a.number,
                timebox: a.timebox,
                resume_from: a.resume_from.as_deref(),
                framework,
                timebox_file: Some(&timebox_file),
                gpu_env: &gpu_env,
                python_helper_dir,
                inherited_pythonpath: inherited_pythonpath
                    .as_ref()
                    .and_then(|v| v.as_deref().ok()),
            },
            |key| std::env::var_os(key).is_some(),
        );
        Ok(Launch {
            program,
            args,
            cwd: a.spec.cwd.clone(),
            env,
        })
    }

    /// Starts the child, its pumps, its waiter and its guard.
    fn start_child(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        let launch = self.launch()?;
        let logs = open_logs(&self.attempt.run_dir)
            .map_err(|e| format!("cannot open the run's log files: {e}"))?;
        // Where this attempt's output starts, so `logs` can mark the attempts apart.
        let (number, stdout_at, stderr_at) = (self.attempt.number, logs[0].len(), logs[1].len());
        self.update(move |rec| rec.set_log_offsets(number, stdout_at, stderr_at));
        self.files = Some(
            FileWriter::start("run-files").map_err(|e| format!("cannot start a thread: {e}"))?,
        );
        self.write_timebox_file();
        let mut child =
            process::spawn(&launch).map_err(|e| format!("cannot start {}: {e}", launch.program))?;
        self.pid = child.id();
        self.clock = ActiveClock::started_at(Instant::now());
        match Guard::start(self.pid, &self.run_dir_text(), self.attempt.number) {
            Ok(guard) => self.guard = Some(guard),
            Err(e) => tracing::warn!("no guard process for run {}: {e}", self.attempt.run_id),
        }

        let addr = ctx.address();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let options = PumpOptions {
            echo_protocol: self.attempt.echo_protocol,
            attempt: self.attempt.number,
        };
        let [stdout_log, stderr_log, metrics] = logs;
        let out_addr = addr.clone();
        let passthrough = if self.attempt.stdout_to_stderr {
            crate::stdio::stderr()
        } else {
            crate::stdio::stdout()
        };
        spawn_named("stdout-pump", move || {
            let result = pump::pump_stdout(
                stdout,
                BufWriter::new(passthrough),
                BufWriter::new(stdout_log),
                BufWriter::new(metrics),
                &options,
                now_ms,
                |batch| out_addr.do_send(StdoutBatch(batch)),
            );
            if let Err(e) = result {
                tracing::warn!("stdout capture: {e}");
            }
            out_addr.do_send(PumpClosed);
        });
        let err_addr = addr.clone();
        spawn_named("stderr-pump", move || {
            let notice_addr = err_addr.clone();
            let result = pump::pump_stderr(
                stderr,
                BufWriter::new(crate::stdio::stderr()),
                BufWriter::new(stderr_log),
                |notice| notice_addr.do_send(Noticed(notice)),
            );
            if let Err(e) = result {
                tracing::warn!("stderr capture: {e}");
            }
            err_addr.do_send(PumpClosed);
        });
        self.open_pumps = 2;
        spawn_named("child-waiter", move || {
            let status = child.wait();
            let info = match status {
                Ok(status) => ExitInfo::from(status),
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                },
            };
            addr.do_send(ChildExited(info));
        });
        Ok(())
    }

    /// The attempt's active-time state, for `backprop_helper.time_left()` in the script.
    fn write_timebox_file(&self) {
        let Some(files) = &self.files else { return };
        let state = serde_json::json!({
            "attempt": self.attempt.number,
            "startedMs": self.started_ms,
            "pausedMs": self.paused_ms,
            "pausedSinceMs": self.paused_since_ms,
            "maxRunSeconds": self.attempt.timebox.as_secs_f64(),
        });
        files.replace(self.timebox_file(), state.to_string().into_bytes());
    }

    fn arm_timebox(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.timebox.take() {
            ctx.cancel_future(handle);
        }
        let left = self.clock.remaining(self.attempt.timebox);
        self.timebox = Some(ctx.run_later(left, |act, ctx| {
            act.timebox = None;
            act.stop(
                ctx,
                Stop {
                    cause: StopCause::Timebox,
                    force: false,
                },
            );
        }));
    }

    fn stop(&mut self, ctx: &mut Context<Self>, msg: Stop) {
        if self.exit.is_some() {
            return;
        }
        if self.stop_cause.is_none() {
            self.stop_cause = Some(msg.cause);
        }
        if let Some(handle) = self.timebox.take() {
            ctx.cancel_future(handle);
        }
        if self.clock.is_paused() {
            // A stopped (SIGSTOP) group must run again to handle the stop signal.
            signal_group(self.pid, Signal::SIGCONT);
            self.clock.resume_at(Instant::now());
            self.pause_reason = None;
        }
        if msg.force {
            signal_group(self.pid, Signal::SIGKILL);
            return;
        }
        if self.kill_timer.is_some() {
            return; // already in the grace period
        }
        self.deliver_stop_signal();
        self.kill_timer = Some(ctx.run_later(self.attempt.spec.options.grace, |act, _| {
            if act.exit.is_none() {
                tracing::info!("grace period over for run {}: SIGKILL", act.attempt.run_id);
                signal_group(act.pid, Signal::SIGKILL);
            }
        }));
    }

    /// A search run that has used its rung's budget stops gracefully (once).
    fn stop_at_rung(&mut self, ctx: &mut Context<Self>) {
        let Some(target) = self.attempt.rung else {
            return;
        };
        if self.stop_cause.is_none() && target.reached(self.progress.step, self.clock.elapsed()) {
            self.at_rung = Some(self.progress.clone());
            self.stop(
                ctx,
                Stop {
                    cause: StopCause::Rung,
                    force: false,
                },
            );
        }
    }

    /// The graceful stop signal to the script's process group, or through Slurm to the
    /// tasks of the srun it runs under (the group's own signal when that fails).
    fn deliver_stop_signal(&self) {
        let signal = self.attempt.spec.options.stop_signal.signal();
        let pid = self.pid;
        match self.attempt.launcher.slurm_job.clone() {
            None => signal_group(pid, signal),
            Some(job) => {
                std::thread::spawn(move || match crate::slurm::signal_steps(&job, signal) {
                    Ok(n) if n > 0 => {}
                    answer => {
                        tracing::info!("no srun step signalled ({answer:?}); signalling the group");
                        signal_group(pid, signal);
                    }
                });
            }
        }
    }

    fn update(&self, change: impl Fn(&mut crate::record::RunRecord) + Send + 'static) {
        self.store.do_send(Update {
            id: self.attempt.run_id.clone(),
            change: Box::new(change),
        });
    }

    /// Records an event on the attempt.
    fn note(&self, kind: &str, detail: String) {
        let event = AttemptEvent {
            time: now_ms(),
            kind: kind.to_string(),
            detail: Some(detail),
        };
        self.update(move |rec| lifecycle::note(rec, event.clone()));
    }

    fn pause(&mut self, ctx: &mut Context<Self>, why: String) {
        signal_group(self.pid, Signal::SIGSTOP);
        self.clock.pause_at(Instant::now());
        self.paused_since_ms = Some(now_ms());
        if let Some(handle) = self.timebox.take() {
            ctx.cancel_future(handle);
        }
        if !self.attempt.quiet {
            crate::ui::info(&format!("{} paused: {why}", self.attempt.run_id));
        }
        let (reason, now) = (why.clone(), now_ms());
        self.update(move |rec| lifecycle::or_log(lifecycle::pause(rec, &reason, now)));
        self.pause_reason = Some(why);
        self.write_timebox_file();
        self.show();
    }

    fn resume(&mut self, ctx: &mut Context<Self>, why: String) {
        signal_group(self.pid, Signal::SIGCONT);
        self.clock.resume_at(Instant::now());
        if let Some(since) = self.paused_since_ms.take() {
            self.paused_ms += now_ms().saturating_sub(since);
        }
        self.pause_reason = None;
        self.arm_timebox(ctx);
        if !self.attempt.quiet {
            crate::ui::info(&format!("{} resumed: {why}", self.attempt.run_id));
        }
        let now = now_ms();
        self.update(move |rec| lifecycle::or_log(lifecycle::unpause(rec, &why, now)));
        self.write_timebox_file();
        self.show();
    }

    /// The run's GPUs in a fresh snapshot: thermal pause/resume, memory limit, memory taken
    /// by others, and a sample kept in `runs/<id>/resources.jsonl`.
    fn watch_gpus(&mut self, ctx: &mut Context<Self>, snapshot: &Snapshot) {
        let Some(watch) = self.attempt.gpu_watch.clone() else {
            return;
        };
        if self.exit.is_some() || self.stop_cause.is_some() {
            return;
        }
        let mine: Vec<&crate::gpu::GpuInfo> = snapshot
            .gpu
            .gpus
            .iter()
            .filter(|g| self.attempt.placement.uuids.contains(&g.uuid))
            .collect();
        let run_used_mb = self.used_mb(snapshot);
        if let Some(files) = &self.files {
            let line = serde_json::json!({
                "time": snapshot.taken_ms, "runUsedMb": run_used_mb, "gpus": mine,
            });
            files.append_line(
                self.attempt.run_dir.join("resources.jsonl"),
                line.to_string(),
            );
        }
        let reading = Reading {
            gpus: &mine,
            held: self.attempt.placement.uuids.len(),
            now_ms: now_ms(),
            run_used_mb,
        };
        for action in gpu_watch::watch(&mut self.watch, &watch, &reading) {
            match action {
                Action::Pause(why) => self.pause(ctx, why),
                Action::Resume(why) => self.resume(ctx, why),
                Action::OverLimit { why, stop } => {
                    crate::ui::warn(&format!("{}: {why}", self.attempt.run_id));
                    self.note("gpu_memory_limit", why);
                    if stop {
                        self.stop(
                            ctx,
                            Stop {
                                cause: StopCause::GpuMemoryLimit,
                                force: false,
                            },
                        );
                    }
                }
                Action::LimitUnenforceable(why) => {
                    crate::ui::warn(&format!("{}: {why}", self.attempt.run_id));
                    self.note("gpu_memory_unknown", why);
                }
                Action::MemoryTaken(why) => {
                    crate::ui::warn(&format!("{}: {why}", self.attempt.run_id));
                    self.note("gpu_memory_taken", why);
                }
                Action::GpuLost(why) => {
                    crate::ui::warn(&format!("{}: {why}; stopping it", self.attempt.run_id));
                    self.note("gpu_lost", why);
                    self.stop(
                        ctx,
                        Stop {
                            cause: StopCause::GpuLost,
                            force: false,
                        },
                    );
                }
            }
        }
    }

    /// What the run's processes use on its GPUs, if that can be read here.
    fn used_mb(&self, snapshot: &Snapshot) -> Option<u64> {
        let me = crate::usage::LiveAttempt {
            id: &self.attempt.run_id,
            pgid: self.pid,
            run_dir: self.run_dir_text(),
            uuids: self.attempt.placement.uuids.clone(),
        };
        let usage = crate::usage::attribute(&snapshot.gpu.gpus, &snapshot.gpu.processes, &[me]);
        let mut total = 0;
        for uuid in &self.attempt.placement.uuids {
            let gpu = usage.get(uuid)?;
            if !gpu.attributable || gpu.runs_unknown.contains(&self.attempt.run_id) {
                return None;
            }
            total += gpu.runs.get(&self.attempt.run_id).copied().unwrap_or(0);
        }
        Some(total)
    }

    /// Sends the latest progress to the store and the live line.
    fn publish_progress(&mut self) {
        self.last_shown = Some(Instant::now());
        self.progress_unsent = false;
        self.progress.active_ms = self.clock.elapsed().as_millis() as u64;
        self.store.do_send(self.progress.clone());
        self.show();
    }

    /// Shows the run's live line (the view throttles plain output itself).
    fn show(&mut self) {
        let now = Instant::now();
        if let Some(step) = self.progress.step
            && self
                .rate_samples
                .last()
                .is_none_or(|(t, s)| *s != step && now.duration_since(*t) >= SHOW_EVERY)
        {
            self.rate_samples.push((now, step));
        }
        // Steps per second over the last ~10 s (at most 50 samples, one per 200 ms).
        self.rate_samples
            .retain(|(t, _)| now.duration_since(*t) <= RATE_WINDOW);
        let samples: Vec<(f64, u64)> = self
            .rate_samples
            .iter()
            .map(|(t, s)| (t.duration_since(self.clock_origin).as_secs_f64(), *s))
            .collect();
        let total = ["total_steps", "total"]
            .iter()
            .find_map(|k| self.progress.metrics.get(*k))
            .filter(|t| t.is_finite() && **t > 0.0)
            .map(|t| *t as u64);
        let state = match &self.pause_reason {
            Some(why) => LineState::Paused(why.clone()),
            None => LineState::Running,
        };
        self.view.update(&RunLine {
            run_id: self.attempt.run_id.to_string(),
            state,
            step: self.progress.step,
            loss: self.progress.loss,
            total,
            steps_per_sec: crate::view::rate(&samples),
            active: self.clock.elapsed(),
            limit: self.attempt.timebox,
            gpus: self.attempt.placement.gpus.clone(),
        });
    }

    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        let Some(exit) = self.exit else { return };
        if self.open_pumps > 0 && !self.drain_expired {
            return;
        }
        self.finished = true;
        let outcome = outcome::decide(exit, self.stop_cause, self.cuda_oom);
        self.progress.active_ms = self.clock.elapsed().as_millis() as u64;
        if legacy_hint::applies(
            &outcome,
            self.clock.elapsed(),
            self.legacy_args_named,
            self.attempt.spec.options.legacy_args,
        ) {
            self.note(legacy_hint::EVENT, legacy_hint::HINT.to_string());
        }
        if let Some(guard) = self.guard.take() {
            guard.release();
        }
        self.view.finish(&self.attempt.run_id);
        self.supervisor.do_send(WorkerExited {
            run_id: self.attempt.run_id.clone(),
            report: Ok(Report {
                outcome,
                exit,
                progress: self.progress.clone(),
                checkpoints: std::mem::take(&mut self.checkpoints),
                active: self.clock.elapsed(),
                at_rung: self.at_rung.take(),
            }),
        });
        ctx.stop();
    }

    fn fail_to_start(&mut self, ctx: &mut Context<Self>, why: String) {
        self.finished = true;
        self.supervisor.do_send(WorkerExited {
            run_id: self.attempt.run_id.clone(),
            report: Err(why),
        });
        ctx.stop();
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(why) = self.start_child(ctx) {
            self.fail_to_start(ctx, why);
            return;
        }
        let (pid, number) = (self.pid, self.attempt.number);
        self.update(move |rec| lifecycle::or_log(lifecycle::record_pid(rec, number, pid)));
        self.arm_timebox(ctx);
        self.show();
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if act.exit.is_some() {
                return;
            }
            // A minutes budget is reached by time alone.
            act.stop_at_rung(ctx);
            if act.progress_unsent {
                act.publish_progress();
            } else {
                act.show();
            }
        });
        if self.attempt.gpu_watch.is_some() {
            self.governor.do_send(Watch(ctx.address().recipient()));
        }
        let options = &self.attempt.spec.options;
        if let (Some(signal), Some(every)) = (options.checkpoint_signal, options.checkpoint_every)
            && !every.is_zero()
        {
            ctx.run_interval(every, move |act, _| {
                if act.exit.is_none() && !act.clock.is_paused() {
                    process::signal_pid(act.pid, signal.signal());
                }
            });
        }
    }
}

impl Handler<StdoutBatch> for Worker {
    type Result = ();
    fn handle(&mut self, StdoutBatch(batch): StdoutBatch, ctx: &mut Context<Self>) {
        if let Some(progress) = batch.progress {
            if progress.step.is_some() {
                self.progress.step = progress.step;
            }
            if progress.loss.is_some() {
                self.progress.loss = progress.loss;
            }
            self.progress.metrics.extend(progress.metrics);
            self.stop_at_rung(ctx);
            // A script may print thousands of lines a second: the store (which writes at most
            // once a second anyway) and the live line hear of it at most every 200 ms; the
            // final progress is written with the outcome.
            self.progress_unsent = true;
            if self.last_shown.is_none_or(|t| t.elapsed() >= SHOW_EVERY) {
                self.publish_progress();
            }
        }
        for path in batch.checkpoints {
            let absolute = absolute_in(&self.attempt.spec.cwd, &path);
            self.checkpoints.push(absolute.clone());
            self.update(move |rec| rec.add_checkpoint(&absolute));
        }
    }
}

impl Handler<Sampled> for Worker {
    type Result = ();
    fn handle(&mut self, Sampled(snapshot): Sampled, ctx: &mut Context<Self>) {
        self.watch_gpus(ctx, &snapshot);
    }
}

impl Handler<Noticed> for Worker {
    type Result = ();
    fn handle(&mut self, Noticed(notice): Noticed, _: &mut Context<Self>) {
        match notice {
            StderrNotice::CudaOom => self.cuda_oom = true,
            StderrNotice::LegacyArgs => self.legacy_args_named = true,
        }
    }
}

impl Handler<PumpClosed> for Worker {
    type Result = ();
    fn handle(&mut self, _: PumpClosed, ctx: &mut Context<Self>) {
        self.open_pumps = self.open_pumps.saturating_sub(1);
        self.maybe_finish(ctx);
    }
}

impl Handler<ChildExited> for Worker {
    type Result = ();
    fn handle(&mut self, ChildExited(info): ChildExited, ctx: &mut Context<Self>) {
        self.exit = Some(info);
        self.clock.pause_at(Instant::now());
        for handle in [self.timebox.take(), self.kill_timer.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(handle);
        }
        // Nothing of the run may outlive it: stragglers left in the group are killed, which
        // also closes the pipes they inherited.
        crate::guard::kill_run(self.pid, &self.run_dir_text(), self.attempt.number);
        ctx.run_later(DRAIN_TIMEOUT, |act, ctx| {
            act.drain_expired = true;
            act.maybe_finish(ctx);
        });
        self.maybe_finish(ctx);
    }
}

impl Handler<Stop> for Worker {
    type Result = ();
    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) {
        self.stop(ctx, msg);
    }
}

fn spawn_named(name: &str, body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .unwrap_or_else(|e| panic!("cannot spawn the {name} thread: {e}"));
}

/// stdout.log, stderr.log and metrics.jsonl of the run, opened for appending (0600), each
/// starting on a fresh line whatever an earlier attempt left.
fn open_logs(run_dir: &Path) -> std::io::Result<[AppendFile; 3]> {
    let open = |name: &str| open_for_lines(&run_dir.join(name));
    Ok([
        open("stdout.log")?,
        open("stderr.log")?,
        open("metrics.jsonl")?,
    ])
}

/// Writes the helper module for the script; false (with a warning) when it cannot be used:
/// not written, or an inherited PYTHONPATH that is not UTF-8 and could not be kept after it.
fn helper_installed(dir: &Path, inherited: Option<&Result<String, std::ffi::OsString>>) -> bool {
    if matches!(inherited, Some(Err(_))) {
        tracing::warn!("PYTHONPATH is not UTF-8: left as it is, without backprop_helper");
        return false;
    }
    match crate::python_helper::install(dir) {
        Ok(()) => true,
        Err(e) => {
            crate::ui::warn(&format!(
                "cannot write backprop_helper.py to {}: {e}; `import backprop_helper` will fail",
                dir.display()
            ));
            false
        }
    }
}

/// Checkpoint paths are relative to the run's working directory.
fn absolute_in(cwd: &str, path: &str) -> String {
    let p = Path::new(path);
    if p.is_absolute() {
        path.to_string()
    } else {
        Path::new(cwd).join(p).display().to_string()
    }
}
