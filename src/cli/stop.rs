//! `backprop stop <run-id>`: ask the run's supervising backprop (maybe in another terminal)
//! to stop it gracefully, and wait for it to end.

use super::Global;
use super::common::{CliError, find_run, open_store};
use crate::proc_info::{self, Liveness};
use clap::Args;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop stop train-20261123-162900-1a2b")]
pub struct StopArgs {
    /// The run to stop
    pub run_id: String,
    /// Return at once instead of waiting for the run to end
    #[arg(long)]
    pub no_wait: bool,
}

pub fn execute(global: &Global, args: StopArgs) -> Result<i32, CliError> {
    let store = open_store()?;
    let rec = find_run(&store, &args.run_id)?;
    if !rec.status.is_active() {
        if !global.quiet {
            crate::ui::info(&format!(
                "run {} is not active (status {})",
                rec.id, rec.status
            ));
        }
        return Ok(0);
    }
    store.update_record(&rec.id, |r| r.stop_requested = true)?;
    if let Some(sup) = &rec.supervisor
        && proc_info::liveness(sup, &proc_info::hostname()) == Liveness::Alive
    {
        crate::process::signal_pid(sup.pid, Signal::SIGUSR2);
    }
    if args.no_wait {
        return Ok(0);
    }
    // The supervisor sends the stop signal, waits the grace period, then kills.
    let limit = Duration::from_secs_f64(rec.spec.options.grace_seconds) + Duration::from_secs(15);
    let started = Instant::now();
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(200));
        crate::reaper::reap(&store)?;
        let now = store.get(&rec.id)?;
        if !now.status.is_active() {
            if !global.quiet {
                crate::ui::info(&format!("run {} {}", rec.id, now.status));
            }
            return Ok(0);
        }
    }
    Err(CliError::with_code(
        1,
        format!(
            "run {} has not ended after {}s; its supervisor may be stuck",
            rec.id,
            limit.as_secs()
        ),
    ))
}
