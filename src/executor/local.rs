//! The local executor: the jobs run under this process's actors, to their end.

use super::{Job, Output, Results};
use crate::actors::supervisor::Settings;
use crate::actors::{SystemConfig, Work, run_jobs, run_work};
use crate::config::{Config, MemoryLimitAction};
use crate::policy::{self, Visible};
use crate::resources::Thresholds;
use crate::store::Store;
use crate::view::{Mode, View};

/// Runs `jobs` here and returns how each ended; everything is on disk when this returns.
pub fn run(store: &Store, config: &Config, output: Output, jobs: Vec<Job>) -> Results {
    run_jobs(store.clone(), system_config(config, output), jobs)
}

/// Runs an adaptive search here to its end (or until stopped); see [`crate::search`].
pub fn run_search(
    store: &Store,
    config: &Config,
    output: Output,
    search: crate::actors::supervisor::SearchRun,
) -> Results {
    run_work(
        store.clone(),
        system_config(config, output),
        Work::Search(search),
    )
}

/// The actor system's settings from the effective config.
pub fn system_config(config: &Config, output: Output) -> SystemConfig {
    SystemConfig {
        settings: Settings {
            poll_interval: config.poll_interval.duration(),
            echo_protocol: output.echo_protocol,
            quiet: output.quiet,
            stdout_to_stderr: output.json,
            view: View::new(Mode::detect(output.quiet)),
            thermal: config.gpu.thermal(),
            stop_over_memory_limit: config.gpu.memory_limit_action == MemoryLimitAction::Stop,
            node: None,
            launcher: Default::default(),
        },
        gpu_probe: config.gpu.probe,
        probe_timeout: config.gpu.probe_timeout.duration(),
        policy: policy_settings(config),
        node: None,
    }
}

/// The policy's settings: this process's config and inherited environment.
pub fn policy_settings(config: &Config) -> policy::Settings {
    policy::Settings {
        gates: Thresholds {
            min_free_ram_gb: config.min_free_ram_gb,
            max_cpu_load: config.max_cpu_load,
        },
        min_free_vram_mb: config.gpu.min_free_vram_mb,
        thermal: config.gpu.thermal(),
        require_readings: config.gpu.require_readings,
        visible: std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .map(|v| Visible::parse(&v)),
        inside_allocation: false,
    }
}
