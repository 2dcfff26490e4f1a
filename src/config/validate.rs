//! Checks after extraction: ranges and relations between keys.

use figment::Figment;
use nix::sys::signal::Signal;

use super::errors::{ConfigError, describe, invalid, show, value_at};
use super::model::{Config, expected_of};

pub(crate) fn validate(c: &Config, figment: &Figment) -> Result<(), ConfigError> {
    let fail = |key: &str| Err(invalid(figment, key, expected_of(key)));

    if c.max_run_minutes.out_of_range().is_some() {
        return fail("maxRunMinutes");
    }
    if c.max_parallel == 0 {
        return fail("maxParallel");
    }
    if let Some(limit) = &c.gpu_memory_limit
        && limit.check().is_err()
    {
        return fail("gpuMemoryLimit");
    }
    if c.checkpoint_every_minutes
        .is_some_and(|m| m.out_of_range().is_some())
    {
        return fail("checkpointEveryMinutes");
    }
    if c.checkpoint_signal
        .is_some_and(|s| matches!(s.signal(), Signal::SIGKILL | Signal::SIGSTOP))
    {
        return fail("checkpointSignal");
    }
    if matches!(c.stop_signal.signal(), Signal::SIGSTOP | Signal::SIGCONT) {
        return Err(invalid(
            figment,
            "stopSignal",
            "a signal that ends a run, like \"SIGINT\" or \"SIGTERM\" (not SIGSTOP or SIGCONT)",
        ));
    }
    if !(c.min_free_ram_gb.is_finite() && c.min_free_ram_gb >= 0.0) {
        return fail("minFreeRamGB");
    }
    if !(c.max_cpu_load.is_finite() && c.max_cpu_load > 0.0) {
        return fail("maxCpuLoad");
    }
    if c.poll_interval.duration().is_zero() {
        return fail("pollInterval");
    }
    if c.interpreter.trim().is_empty() {
        return fail("interpreter");
    }
    if c.gpu.max_temp_c.is_some_and(|t| !t.is_finite()) {
        return fail("gpu.maxTempC");
    }
    if c.gpu.resume_temp_c.is_some_and(|t| !t.is_finite()) {
        return fail("gpu.resumeTempC");
    }
    if let (Some(resume), Some(max)) = (c.gpu.resume_temp_c, c.gpu.max_temp_c)
        && resume >= max
    {
        let path = ["gpu".to_string(), "maxTempC".to_string()];
        let max = value_at(figment, &path);
        let max_origin = describe(max.as_ref().and_then(|v| figment.get_metadata(v.tag())));
        return Err(invalid(
            figment,
            "gpu.resumeTempC",
            format!(
                "a temperature in °C below gpu.maxTempC = {} (from {max_origin})",
                show(max.as_ref())
            ),
        ));
    }
    if c.gpu.probe_timeout.duration().is_zero() {
        return fail("gpu.probeTimeout");
    }
    if c.slurm.nodes == 0 {
        return fail("slurm.nodes");
    }
    if c.slurm.ntasks_per_node == Some(0) {
        return fail("slurm.ntasksPerNode");
    }
    if matches!(
        c.slurm.signal.signal(),
        Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCONT
    ) {
        return Err(invalid(
            figment,
            "slurm.signal",
            "a signal backprop can catch, like \"SIGUSR1\" (not SIGKILL, SIGSTOP or SIGCONT)",
        ));
    }
    if c.slurm.signal_before.duration().as_secs() > 65_535 {
        return fail("slurm.signalBefore");
    }
    Ok(())
}
