//! The typed config and its built-in defaults, plus the table of every key.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::values::{
    Executor, Framework, GpuProbeKind, MemoryLimit, MemoryLimitAction, Minutes, ScriptArgs,
    Seconds, SignalName,
};

/// The whole config, after layering. `Config::default()` is the built-in defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// The timebox of a run (active time).
    pub max_run_minutes: Minutes,
    /// Running + paused runs across every backprop process sharing the home.
    pub max_parallel: u32,
    pub gpu_memory_limit: Option<MemoryLimit>,
    pub framework: Framework,
    pub checkpoint_every_minutes: Option<Minutes>,
    pub checkpoint_signal: Option<SignalName>,
    #[serde(rename = "minFreeRamGB")]
    pub min_free_ram_gb: f64,
    /// Load average per core.
    pub max_cpu_load: f64,
    pub grace_period: Seconds,
    pub stop_signal: SignalName,
    pub poll_interval: Seconds,
    pub interpreter: String,
    /// The flag appended with the checkpoint path when resuming; empty = env only.
    pub resume_arg: String,
    /// `legacy`: scripts also get the original tool's arguments (`--run-id`, `--max-minutes`).
    pub script_args: ScriptArgs,
    /// Make `import backprop_helper` work in every run (the helper module on PYTHONPATH).
    pub python_helper: bool,
    pub max_restarts: u32,
    /// GPUs per run; `None` = 1 where GPUs exist, 0 otherwise.
    pub gpus_per_run: Option<u32>,
    pub executor: Executor,
    /// Keep `experiments.json` in the home as an export of the store.
    pub export_json: bool,
    pub gpu: GpuConfig,
    pub slurm: SlurmConfig,
    /// The config file's batch, validated by the batch module.
    pub experiments: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GpuConfig {
    pub probe: GpuProbeKind,
    #[serde(rename = "minFreeVramMB")]
    pub min_free_vram_mb: u64,
    /// `None` = each GPU's slowdown threshold − 5 °C where reported, else 85 °C.
    pub max_temp_c: Option<f64>,
    /// `None` = 5 °C below the GPU's limit.
    pub resume_temp_c: Option<f64>,
    pub memory_limit_action: MemoryLimitAction,
    /// How long one probe (e.g. `nvidia-smi`) may take.
    pub probe_timeout: Seconds,
    /// A GPU whose free VRAM or temperature cannot be read (`[N/A]`) is not used when true;
    /// when false, an unknown temperature is accepted (and shown by `status`).
    pub require_readings: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Extra `sbatch` arguments, e.g. `["--mem=32G"]`.
    pub extra_args: Vec<String>,
    /// Added to the timebox + grace for the job's `--time`.
    pub time_margin: Seconds,
    /// The early-warning signal Slurm sends backprop before the time limit or a preemption
    /// (`--signal=B:<signal>@<signalBefore>`); it stops the run gracefully with a checkpoint.
    pub signal: SignalName,
    pub signal_before: Seconds,
    /// A job stopped by the warning (or preempted) is requeued and resumes from its latest
    /// checkpoint as a new attempt, at most `maxRequeues` times.
    pub requeue: bool,
    pub max_requeues: u32,
    /// Nodes per job; with more than one (or `ntasksPerNode`), the script is launched with
    /// `srun` so that every task gets the stop signal.
    pub nodes: u32,
    pub ntasks_per_node: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_run_minutes: Minutes(Duration::from_secs(10 * 60)),
            max_parallel: 4,
            gpu_memory_limit: None,
            framework: Framework::Auto,
            checkpoint_every_minutes: None,
            checkpoint_signal: None,
            min_free_ram_gb: 4.0,
            max_cpu_load: 2.0,
            grace_period: Seconds::from_secs(30),
            stop_signal: SignalName(Signal::SIGINT),
            poll_interval: Seconds::from_secs(5),
            interpreter: "python3".into(),
            resume_arg: "--resume-from".into(),
            script_args: ScriptArgs::None,
            python_helper: true,
            max_restarts: 0,
            gpus_per_run: None,
            executor: Executor::Local,
            export_json: true,
            gpu: GpuConfig::default(),
            slurm: SlurmConfig::default(),
            experiments: Vec::new(),
        }
    }
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            probe: GpuProbeKind::Auto,
            min_free_vram_mb: 2500,
            max_temp_c: None,
            resume_temp_c: None,
            memory_limit_action: MemoryLimitAction::Warn,
            probe_timeout: Seconds::from_secs(5),
            require_readings: true,
        }
    }
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            extra_args: Vec::new(),
            time_margin: Seconds::from_secs(5 * 60),
            signal: SignalName(Signal::SIGUSR1),
            signal_before: Seconds::from_secs(90),
            requeue: true,
            max_requeues: 3,
            nodes: 1,
            ntasks_per_node: None,
        }
    }
}

impl GpuConfig {
    /// The thermal limits, per GPU where they are not set.
    pub fn thermal(&self) -> crate::thermal::Limits {
        crate::thermal::Limits {
            max_c: self.max_temp_c,
            resume_c: self.resume_temp_c,
        }
    }
}

/// How a key's value is read from an environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EnvForm {
    /// JSON when it parses (numbers, bools, arrays, null), else the raw string.
    Json,
    /// Always the raw string (names and paths, where `"123"` is still text).
    Text,
}

/// One leaf key: its dotted name, what a valid value looks like, and how env gives it.
pub(crate) struct KeySpec {
    pub key: &'static str,
    pub expected: &'static str,
    pub env: EnvForm,
}

const MINUTES: &str = "a number of minutes above 0 or a duration like \"90s\" or \"2h\", at most 1 year (525600 minutes)";
const SECONDS: &str = "a number of seconds or a duration like \"30s\" or \"2m\"";
const SECONDS_ABOVE_ZERO: &str =
    "a number of seconds above 0 or a duration like \"5s\" or \"500ms\"";

/// Every leaf key, in the order of the config.
pub(crate) const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "maxRunMinutes",
        expected: MINUTES,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "maxParallel",
        expected: "a whole number of runs, at least 1",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpuMemoryLimit",
        expected: "a share of the GPU like \"80%\" (above 0, at most 100) or a size in GB like 8, \"8GB\" or \"8192MB\"",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "framework",
        expected: "one of \"auto\", \"pytorch\", \"tensorflow\", \"jax\", \"none\"",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "checkpointEveryMinutes",
        expected: MINUTES,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "checkpointSignal",
        expected: "a signal name like \"SIGUSR1\" or its number (not SIGKILL or SIGSTOP)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "minFreeRamGB",
        expected: "free RAM in GB (a number, at least 0)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "maxCpuLoad",
        expected: "a load average per core (a number above 0)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gracePeriod",
        expected: SECONDS,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "stopSignal",
        expected: "a signal name like \"SIGINT\" or \"SIGTERM\", or its number",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "pollInterval",
        expected: SECONDS_ABOVE_ZERO,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "interpreter",
        expected: "a program name or path like \"python3\" (not empty)",
        env: EnvForm::Text,
    },
    KeySpec {
        key: "resumeArg",
        expected: "a command-line flag like \"--resume-from\" (\"\" = environment only)",
        env: EnvForm::Text,
    },
    KeySpec {
        key: "scriptArgs",
        expected: "one of \"none\", \"legacy\" (the original tool's --run-id and --max-minutes)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "pythonHelper",
        expected: "true or false (put backprop_helper on the scripts' PYTHONPATH)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "maxRestarts",
        expected: "a whole number, at least 0",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpusPerRun",
        expected: "a whole number of GPUs, at least 0",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "executor",
        expected: "one of \"local\", \"slurm\"",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "exportJson",
        expected: "true or false",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.probe",
        expected: "one of \"auto\", \"nvml\", \"nvidia-smi\", \"none\"",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.minFreeVramMB",
        expected: "free VRAM in MB (a whole number, at least 0)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.maxTempC",
        expected: "a temperature in °C (a number)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.resumeTempC",
        expected: "a temperature in °C (a number) below gpu.maxTempC",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.memoryLimitAction",
        expected: "one of \"warn\", \"stop\"",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.probeTimeout",
        expected: SECONDS_ABOVE_ZERO,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "gpu.requireReadings",
        expected: "true or false",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.partition",
        expected: "a Slurm partition name (a string)",
        env: EnvForm::Text,
    },
    KeySpec {
        key: "slurm.account",
        expected: "a Slurm account name (a string)",
        env: EnvForm::Text,
    },
    KeySpec {
        key: "slurm.qos",
        expected: "a Slurm QOS name (a string)",
        env: EnvForm::Text,
    },
    KeySpec {
        key: "slurm.extraArgs",
        expected: "a list of sbatch arguments like [\"--mem=32G\"]",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.timeMargin",
        expected: SECONDS,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.signal",
        expected: "a signal name like \"SIGUSR1\" (sent before the time limit or a preemption)",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.signalBefore",
        expected: SECONDS,
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.requeue",
        expected: "true or false",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.maxRequeues",
        expected: "a whole number, at least 0",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.nodes",
        expected: "a whole number of nodes, at least 1",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "slurm.ntasksPerNode",
        expected: "a whole number of tasks per node, at least 1",
        env: EnvForm::Json,
    },
    KeySpec {
        key: "experiments",
        expected: "a list of experiment objects",
        env: EnvForm::Json,
    },
];

/// Keys that hold an object of further keys.
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    (
        "gpu",
        "an object like {\"maxTempC\": 85, \"minFreeVramMB\": 2500}",
    ),
    ("slurm", "an object like {\"partition\": \"gpu\"}"),
];

pub(crate) fn spec_of(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|s| s.key == key)
}

/// What a valid value of `path` looks like: the key's own phrase, or that of the nearest
/// enclosing key (an error inside `experiments.0` is described by `experiments`).
pub(crate) fn expected_of(path: &str) -> &'static str {
    let mut key = path;
    loop {
        if let Some(spec) = spec_of(key) {
            return spec.expected;
        }
        if let Some((_, phrase)) = SECTIONS.iter().find(|(name, _)| *name == key) {
            return phrase;
        }
        match key.rsplit_once('.') {
            Some((parent, _)) => key = parent,
            None => return "a value described in backprop.config.example.json",
        }
    }
}

/// Every leaf key of the config, dotted (`gpu.maxTempC`); `experiments` counts as a leaf.
pub fn all_keys() -> Vec<&'static str> {
    KEYS.iter().map(|s| s.key).collect()
}
