//! `backprop resume <run-id> [-m MIN]`, and the part of running that `run` shares with it.

use super::Global;
use super::common::{CliError, duration_text, find_run, load_config, loss_text, open_store};
use super::flags::number_or_string;
use super::slurm_submit::{self, OnRefusal, Submission};
use crate::actors::gpu_allocator::Policy;
use crate::actors::supervisor::{Job, Settings};
use crate::actors::{SystemConfig, run_jobs};
use crate::config::{Config, Executor, FlagValue, LoadedConfig, MemoryLimitAction};
use crate::continuation::Plan;
use crate::outcome::EXIT_NOT_FOUND;
use crate::record::{RunOptions, Status};
use crate::resources::Thresholds;
use crate::store::Store;
use crate::view::{Mode, View};
use clap::Args;
use std::path::Path;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop resume train-20261123-162900-1a2b -m 5")]
pub struct ResumeArgs {
    /// The run to continue
    pub run_id: String,
    /// Timebox of this attempt in minutes or as a duration (default: the run's own)
    #[arg(short = 'm', long, value_name = "MIN")]
    pub max_run_minutes: Option<String>,
    /// Refuse at once (exit 75) instead of waiting for resources
    #[arg(long)]
    pub no_wait: bool,
    /// local | slurm [default: where the run ran before, else the config's executor]
    #[arg(long)]
    pub executor: Option<String>,
}

pub fn execute(global: &Global, args: ResumeArgs) -> Result<i32, CliError> {
    let flags: Vec<FlagValue> = args
        .max_run_minutes
        .iter()
        .map(|m| FlagValue {
            flag: "--max-run-minutes".into(),
            key: "maxRunMinutes".into(),
            value: number_or_string(m),
        })
        .collect();
    let loaded = load_config(global, flags)?;
    let store = open_store()?;
    let rec = find_run(&store, &args.run_id)?;
    if rec.status.is_active() {
        return Err(CliError::usage(format!(
            "run {} is still {}; stop it first with `backprop stop {}`",
            rec.id, rec.status, rec.id
        )));
    }
    // The program must still be there: a missing one is exit 127 and changes nothing.
    crate::launch::command_line(&rec.spec, None)
        .map_err(|e| CliError::with_code(EXIT_NOT_FOUND, e.to_string()))?;
    if !Path::new(&rec.spec.program).exists() && rec.spec.program.contains('/') {
        return Err(CliError::with_code(
            EXIT_NOT_FOUND,
            format!("the run's script {} no longer exists", rec.spec.program),
        ));
    }
    let (checkpoint, missing) =
        latest_existing_checkpoint(&rec.checkpoints, |p| Path::new(p).exists());
    for path in &missing {
        crate::ui::warn(&format!(
            "checkpoint {path} no longer exists; falling back to an older one"
        ));
    }
    match &checkpoint {
        Some(path) if !global.quiet => crate::ui::info(&format!("resuming {} from {path}", rec.id)),
        None if !rec.checkpoints.is_empty() => crate::ui::warn(&format!(
            "no checkpoint of run {} exists any more; starting from scratch",
            rec.id
        )),
        None if !global.quiet => crate::ui::info(&format!(
            "run {} has no checkpoint; starting from scratch",
            rec.id
        )),
        _ => {}
    }
    let max_run = match args.max_run_minutes {
        Some(_) => loaded.config.max_run_minutes.duration(),
        None => Duration::from_secs_f64(rec.spec.options.max_run_seconds),
    };
    let on_slurm = match args.executor.as_deref() {
        Some("slurm") => true,
        Some("local") => false,
        Some(other) => {
            return Err(CliError::usage(format!(
                "--executor {other:?}: use local or slurm"
            )));
        }
        None => rec.slurm.is_some() || loaded.config.executor == Executor::Slurm,
    };
    if on_slurm {
        let submission = Submission {
            run_id: rec.id.clone(),
            resume_from: checkpoint,
            max_run,
        };
        let gpus = rec.spec.options.gpus;
        let job = slurm_submit::submit(
            &store,
            &loaded.config,
            &[submission],
            gpus,
            1,
            &rec.spec.cwd,
            OnRefusal::Restore(rec.status),
        )?;
        if !global.quiet {
            crate::ui::info(&format!(
                "attempt {} of {} submitted to Slurm as job {job}",
                rec.attempts.len() + 1,
                rec.id
            ));
        }
        return Ok(0);
    }
    let me = crate::proc_info::me();
    let claimed = store.update_record(&rec.id, |r| {
        // Someone may have resumed it between our read and this lock.
        if r.status.is_active() {
            return false;
        }
        r.status = Status::Queued;
        r.queue_seq = crate::admission::next_seq();
        r.reason = None;
        r.end_time = None;
        r.stop_requested = false;
        r.supervisor = Some(me.clone());
        true
    })?;
    if !claimed {
        return Err(CliError::usage(format!(
            "run {} was just resumed by another backprop",
            rec.id
        )));
    }
    let mut spec = rec.spec.clone();
    // Admission follows this process's config, not the one of the original run.
    spec.options.max_parallel = loaded.config.max_parallel;
    let max_restarts = spec.options.max_restarts;
    let job = Job {
        run_id: rec.id.clone(),
        spec,
        attempt: rec.attempts.len() as u32 + 1,
        resume_from: checkpoint,
        max_run,
        no_wait: args.no_wait,
        plan: Plan::once(max_restarts),
    };
    Ok(run_and_report(global, &loaded, store, job))
}

/// The newest checkpoint that still exists, and the newer ones that are gone.
pub fn latest_existing_checkpoint(
    checkpoints: &[String],
    exists: impl Fn(&str) -> bool,
) -> (Option<String>, Vec<String>) {
    let mut missing = Vec::new();
    for path in checkpoints.iter().rev() {
        if exists(path) {
            return (Some(path.clone()), missing);
        }
        missing.push(path.clone());
    }
    (None, missing)
}

/// The run options a new run keeps in its spec.
pub fn options_from(config: &Config) -> RunOptions {
    RunOptions {
        max_run_seconds: config.max_run_minutes.duration().as_secs_f64(),
        grace_seconds: config.grace_period.duration().as_secs_f64(),
        stop_signal: config.stop_signal.to_string(),
        checkpoint_every_seconds: config
            .checkpoint_every_minutes
            .as_ref()
            .map(|m| m.duration().as_secs_f64()),
        checkpoint_signal: config.checkpoint_signal.as_ref().map(|s| s.to_string()),
        framework: config.framework.to_string(),
        resume_arg: config.resume_arg.clone(),
        gpus: config.gpus_per_run,
        gpu_memory_limit: config.gpu_memory_limit.as_ref().map(|l| l.to_string()),
        max_restarts: config.max_restarts,
        max_parallel: config.max_parallel,
    }
}

/// The actor system's settings from the effective config.
pub fn system_config(global: &Global, config: &Config) -> SystemConfig {
    SystemConfig {
        settings: Settings {
            poll_interval: config.poll_interval.duration(),
            echo_protocol: global.verbose > 0,
            quiet: global.quiet,
            stdout_to_stderr: global.json,
            view: View::new(Mode::detect(global.quiet)),
            max_temp_c: config.gpu.max_temp_c,
            resume_temp_c: config.gpu.resume_temp_c(),
            stop_over_memory_limit: config.gpu.memory_limit_action == MemoryLimitAction::Stop,
            default_reservation_mb: config.gpu.min_free_vram_mb,
        },
        limits: Thresholds {
            min_free_ram_gb: config.min_free_ram_gb,
            max_cpu_load: config.max_cpu_load,
        },
        gpu_probe: config.gpu.probe.to_string(),
        probe_timeout: config.gpu.probe_timeout.duration(),
        placement: Policy {
            min_free_mb: config.gpu.min_free_vram_mb,
            max_temp_c: config.gpu.max_temp_c,
            require_readings: config.gpu.require_readings,
            inherited_visible: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        },
    }
}

/// Runs one job to its end, prints how it ended, returns the exit code.
pub fn run_and_report(global: &Global, loaded: &LoadedConfig, store: Store, job: Job) -> i32 {
    let config = &loaded.config;
    let run_id = job.run_id.clone();
    let system = system_config(global, config);
    let results = run_jobs(store.clone(), system, vec![job]);
    let Some((_, outcome)) = results.into_iter().find(|(id, _)| *id == run_id) else {
        crate::ui::error(&format!("run {run_id} ended without an outcome"));
        return 1;
    };
    if !global.quiet
        && let Ok(rec) = store.get(&run_id)
    {
        let mut line = format!("{run_id} {}", outcome.status);
        if outcome.status == Status::Failed {
            line.push_str(&format!(
                " ({}, exit {})",
                outcome.reason, outcome.exit_code
            ));
        }
        line.push_str(&format!(
            " after {}",
            duration_text(rec.attempts.last().map_or(0, |a| a.active_ms))
        ));
        if let Some(step) = rec.last_step {
            line.push_str(&format!(
                " at step {step}, loss {}",
                loss_text(rec.last_loss)
            ));
        }
        if matches!(
            outcome.status,
            Status::Timeboxed | Status::Stopped | Status::Failed
        ) && rec.last_checkpoint.is_some()
        {
            line.push_str(&format!("; continue with: backprop resume {run_id}"));
        }
        crate::ui::info(&line);
    }
    outcome.exit_code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_newest_checkpoint_still_on_disk() {
        let list: Vec<String> = ["c1", "c2", "c3"].map(String::from).to_vec();
        let (found, missing) = latest_existing_checkpoint(&list, |p| p != "c3");
        assert_eq!(found.as_deref(), Some("c2"));
        assert_eq!(missing, vec!["c3"]);
        let (found, missing) = latest_existing_checkpoint(&list, |_| false);
        assert_eq!((found, missing.len()), (None, 3));
    }
}
