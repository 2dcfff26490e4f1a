//! Run options given on the command line, as config values (the top layer of the config).

use crate::config::FlagValue;
use clap::Args;
use serde_json::Value;

/// The options of `run` that set config keys (also accepted by `config`, to show their effect).
#[derive(Args, Debug, Default, Clone)]
pub struct ConfigFlags {
    /// Timebox in minutes (a number) or a duration like 90s, 2h [default: 10]
    #[arg(short = 'm', long, value_name = "MIN")]
    pub max_run_minutes: Option<String>,
    /// pytorch | tensorflow | jax | auto
    #[arg(short = 'f', long)]
    pub framework: Option<String>,
    /// Tell the script to checkpoint every N minutes (BACKPROP_CHECKPOINT_EVERY_SECONDS)
    #[arg(short = 'c', long, value_name = "MIN")]
    pub checkpoint_every_minutes: Option<String>,
    /// GPU memory limit: 80% of the GPU, or 8 (GB)
    #[arg(short = 'g', long, value_name = "LIMIT")]
    pub gpu_memory_limit: Option<String>,
    /// How many runs may be active at once across this home
    #[arg(short = 'p', long, value_name = "N")]
    pub max_parallel: Option<u32>,
    /// Minimum free RAM to start, in GB [default: 4]
    #[arg(long, value_name = "GB")]
    pub min_free_ram: Option<f64>,
    /// auto | nvml | nvidia-smi | none
    #[arg(long, value_name = "PROBE")]
    pub gpu_probe: Option<String>,
    /// Minimum free VRAM on a GPU to start, in MB [default: 2500]
    #[arg(long, value_name = "MB")]
    pub gpu_min_vram: Option<u64>,
    /// Maximum GPU temperature in °C [default: 85]
    #[arg(long, value_name = "C")]
    pub gpu_max_temp: Option<f64>,
    /// GPUs per run (0 = CPU only)
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    /// Time between the stop signal and SIGKILL, e.g. 30s [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// Interpreter for .py scripts [default: python3]
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Restart a failed attempt from its latest checkpoint up to N times
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// local | slurm
    #[arg(long)]
    pub executor: Option<String>,
}

impl ConfigFlags {
    /// The flags the user gave, as the top layer of the config.
    pub fn flags(&self) -> Vec<FlagValue> {
        let mut f = Flags::default();
        f.add_text(
            "--max-run-minutes",
            "maxRunMinutes",
            self.max_run_minutes.as_ref(),
        );
        f.add(
            "--framework",
            "framework",
            self.framework.clone().map(Value::from),
        );
        f.add_text(
            "--checkpoint-every-minutes",
            "checkpointEveryMinutes",
            self.checkpoint_every_minutes.as_ref(),
        );
        f.add_text(
            "--gpu-memory-limit",
            "gpuMemoryLimit",
            self.gpu_memory_limit.as_ref(),
        );
        f.add(
            "--max-parallel",
            "maxParallel",
            self.max_parallel.map(Value::from),
        );
        f.add(
            "--min-free-ram",
            "minFreeRamGB",
            self.min_free_ram.map(Value::from),
        );
        f.add(
            "--gpu-probe",
            "gpu.probe",
            self.gpu_probe.clone().map(Value::from),
        );
        f.add(
            "--gpu-min-vram",
            "gpu.minFreeVramMB",
            self.gpu_min_vram.map(Value::from),
        );
        f.add(
            "--gpu-max-temp",
            "gpu.maxTempC",
            self.gpu_max_temp.map(Value::from),
        );
        f.add("--gpus", "gpusPerRun", self.gpus.map(Value::from));
        f.add_text("--grace", "gracePeriod", self.grace.as_ref());
        f.add(
            "--interpreter",
            "interpreter",
            self.interpreter.clone().map(Value::from),
        );
        f.add(
            "--max-restarts",
            "maxRestarts",
            self.max_restarts.map(Value::from),
        );
        f.add(
            "--executor",
            "executor",
            self.executor.clone().map(Value::from),
        );
        f.into_vec()
    }
}

/// Collects flag values; only flags the user actually gave are layered over the config.
#[derive(Default)]
pub struct Flags(Vec<FlagValue>);

impl Flags {
    pub fn add(&mut self, flag: &str, key: &str, value: Option<Value>) {
        if let Some(value) = value {
            self.0.push(FlagValue {
                flag: flag.to_string(),
                key: key.to_string(),
                value,
            });
        }
    }

    /// A value that is a number when it looks like one ("0.1", "8"), else a string ("90s", "80%").
    pub fn add_text(&mut self, flag: &str, key: &str, value: Option<&String>) {
        self.add(flag, key, value.map(|v| number_or_string(v)));
    }

    pub fn into_vec(self) -> Vec<FlagValue> {
        self.0
    }
}

pub fn number_or_string(text: &str) -> Value {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(text)),
        _ => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_numbers_and_durations_stay_text() {
        assert_eq!(number_or_string("0.1"), serde_json::json!(0.1));
        assert_eq!(number_or_string("90s"), serde_json::json!("90s"));
        assert_eq!(number_or_string("80%"), serde_json::json!("80%"));
    }
}
