//! Run options given on the command line, as config values (the top layer of the config).

use super::common::CliError;
use crate::config::{FlagValue, Minutes};
use clap::Args;
use serde_json::Value;

/// The options of `run` that set config keys (also accepted by `config`, to show their effect).
#[derive(Args, Debug, Default, Clone)]
pub struct ConfigFlags {
    /// Timebox in minutes (a number) or a duration like 90s, 2h [default: 10]
    #[arg(short = 'm', long, value_name = "MIN", allow_hyphen_values = true)]
    pub max_run_minutes: Option<String>,
    /// pytorch | tensorflow | jax | auto
    #[arg(short = 'f', long)]
    pub framework: Option<String>,
    /// Tell the script to checkpoint every N minutes (BACKPROP_CHECKPOINT_EVERY_SECONDS)
    #[arg(short = 'c', long, value_name = "MIN", allow_hyphen_values = true)]
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
    /// Maximum 1-minute CPU load per core to start [default: 2]
    #[arg(long, value_name = "LOAD")]
    pub max_cpu_load: Option<f64>,
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
    /// Slurm: nodes per job (the script is launched with srun on all of them)
    #[arg(long, value_name = "N")]
    pub nodes: Option<u32>,
    /// Slurm: tasks per node (the script is launched with srun, once per task)
    #[arg(long, value_name = "N")]
    pub ntasks_per_node: Option<u32>,
    /// Also pass the original backprop's --run-id ID --max-minutes N (scriptArgs: legacy)
    #[arg(long)]
    pub legacy_args: bool,
}

impl ConfigFlags {
    /// The flags the user gave, as the top layer of the config; a timebox or checkpoint
    /// interval that cannot be meant is refused here, naming the flag as typed.
    pub fn flags(&self) -> Result<Vec<FlagValue>, CliError> {
        for (flag, text) in [
            ("--max-run-minutes", &self.max_run_minutes),
            ("--checkpoint-every-minutes", &self.checkpoint_every_minutes),
        ] {
            if let Some(text) = text {
                check_minutes(flag, text)?;
            }
        }
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
            "--max-cpu-load",
            "maxCpuLoad",
            self.max_cpu_load.map(Value::from),
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
        f.add("--nodes", "slurm.nodes", self.nodes.map(Value::from));
        f.add(
            "--ntasks-per-node",
            "slurm.ntasksPerNode",
            self.ntasks_per_node.map(Value::from),
        );
        f.add(
            "--legacy-args",
            "scriptArgs",
            self.legacy_args.then(|| Value::from("legacy")),
        );
        Ok(f.into_vec())
    }
}

/// A duration in minutes as typed after `flag` (`-m`, `-c`): positive and at most a year,
/// else a usage error that names the flag and the value.
pub fn check_minutes(flag: &str, text: &str) -> Result<(), CliError> {
    let problem = match text.parse::<Minutes>() {
        Ok(minutes) => match minutes.out_of_range() {
            Some(problem) => problem,
            None => return Ok(()),
        },
        // Negative, NaN or infinite numbers parse as numbers but are no duration.
        Err(_) if text.trim().parse::<f64>().is_ok() => Minutes::NOT_POSITIVE.to_string(),
        Err(_) => "not a duration; give minutes (5, 0.5) or a duration like 90s or 2h".to_string(),
    };
    Err(CliError::usage(format!(
        "invalid {flag} {text:?}: {problem}"
    )))
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

    fn refusal(text: &str) -> String {
        check_minutes("--max-run-minutes", text)
            .unwrap_err()
            .message
    }

    #[test]
    fn minutes_flags_take_positive_durations_up_to_a_year() {
        for ok in ["5", "0.5", "90s", "2h", "525600", "365d"] {
            assert!(check_minutes("-m", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            refusal("-5"),
            "invalid --max-run-minutes \"-5\": must be a positive duration"
        );
        assert_eq!(
            refusal("0"),
            "invalid --max-run-minutes \"0\": must be a positive duration"
        );
        assert_eq!(
            refusal("1e9"),
            "invalid --max-run-minutes \"1e9\": at most 1 year (525600 minutes)"
        );
        assert!(
            refusal("soon").contains("not a duration"),
            "{}",
            refusal("soon")
        );
        assert!(refusal("400d").contains("at most 1 year"));
    }

    #[test]
    fn only_given_flags_become_config_values() {
        let flags = ConfigFlags {
            legacy_args: true,
            max_cpu_load: Some(3.5),
            ..ConfigFlags::default()
        };
        let keys: Vec<(String, Value)> = flags
            .flags()
            .unwrap()
            .into_iter()
            .map(|f| (f.key, f.value))
            .collect();
        assert_eq!(
            keys,
            [
                ("maxCpuLoad".to_string(), serde_json::json!(3.5)),
                ("scriptArgs".to_string(), serde_json::json!("legacy")),
            ]
        );
        let bad = ConfigFlags {
            checkpoint_every_minutes: Some("-1".into()),
            ..ConfigFlags::default()
        };
        assert!(
            bad.flags()
                .unwrap_err()
                .message
                .starts_with("invalid --checkpoint-every-minutes \"-1\"")
        );
    }

    #[test]
    fn numbers_stay_numbers_and_durations_stay_text() {
        assert_eq!(number_or_string("0.1"), serde_json::json!(0.1));
        assert_eq!(number_or_string("90s"), serde_json::json!("90s"));
        assert_eq!(number_or_string("80%"), serde_json::json!("80%"));
    }
}
