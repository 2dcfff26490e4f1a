//! What a run executes and with which options, as kept in its record (`spec`), so `resume`
//! re-runs exactly this. The options stay typed from the flag to the child; on disk they are
//! the same numbers and strings as always (`maxRunSeconds: 600.0`, `stopSignal: "SIGINT"`,
//! `gpuMemoryLimit: "80%"`), so stores written by earlier versions load unchanged.

use crate::config::{Config, Framework, MemoryLimit, SignalName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything needed to run the script again.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RunSpec {
    /// What to execute: an absolute path to a script or executable, or a command found on PATH.
    pub program: String,
    /// Arguments given after the program (the script's own args).
    pub args: Vec<String>,
    /// Set for `.py` scripts: the interpreter that runs `program`.
    pub interpreter: Option<String>,
    pub cwd: String,
    /// Variables given with `--env K=V`; the rest of the environment is inherited at start.
    pub env: BTreeMap<String, String>,
    pub options: RunOptions,
}

/// The resolved run options (config + flags) at the time the run was created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RunOptions {
    /// The timebox of one attempt (active time).
    #[serde(rename = "maxRunSeconds", with = "seconds")]
    pub max_run: Duration,
    /// Between the stop signal and SIGKILL.
    #[serde(rename = "graceSeconds", with = "seconds")]
    pub grace: Duration,
    pub stop_signal: SignalName,
    #[serde(rename = "checkpointEverySeconds", with = "optional_seconds")]
    pub checkpoint_every: Option<Duration>,
    pub checkpoint_signal: Option<SignalName>,
    pub framework: Framework,
    pub resume_arg: String,
    /// GPUs per run; None = 1 where GPUs exist, else 0.
    pub gpus: Option<u32>,
    #[serde(with = "memory_limit_text")]
    pub gpu_memory_limit: Option<MemoryLimit>,
    pub max_restarts: u32,
    pub max_parallel: u32,
    /// `scriptArgs: "legacy"`: the script also gets the original tool's arguments.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_args: bool,
    /// `pythonHelper`: `import backprop_helper` works in the script. Written only when off,
    /// so records stay as they were; records of older versions get the helper.
    #[serde(skip_serializing_if = "is_yes")]
    pub python_helper: bool,
}

fn is_yes(value: &bool) -> bool {
    *value
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions::from_config(&Config::default())
    }
}

impl RunOptions {
    /// The options a new run keeps from the effective config.
    pub fn from_config(config: &Config) -> RunOptions {
        RunOptions {
            max_run: config.max_run_minutes.duration(),
            grace: config.grace_period.duration(),
            stop_signal: config.stop_signal,
            checkpoint_every: config.checkpoint_every_minutes.map(|m| m.duration()),
            checkpoint_signal: config.checkpoint_signal,
            framework: config.framework,
            resume_arg: config.resume_arg.clone(),
            gpus: config.gpus_per_run,
            gpu_memory_limit: config.gpu_memory_limit,
            max_restarts: config.max_restarts,
            max_parallel: config.max_parallel,
            legacy_args: config.script_args == crate::config::ScriptArgs::Legacy,
            python_helper: config.python_helper,
        }
    }
}

/// A duration kept as fractional seconds (`600.0`).
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs.max(0.0)).map_err(serde::de::Error::custom)
    }
}

mod optional_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| {
                Duration::try_from_secs_f64(secs.max(0.0)).map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// A memory limit kept as the text a user types (`"80%"`, `"8GB"`).
mod memory_limit_text {
    use crate::config::MemoryLimit;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(l: &Option<MemoryLimit>, s: S) -> Result<S::Ok, S::Error> {
        match l {
            Some(l) => s.collect_str(l),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MemoryLimit>, D::Error> {
        Option::<MemoryLimit>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use serde_json::json;

    #[test]
    fn options_are_stored_as_the_numbers_and_strings_of_earlier_versions() {
        let stored = json!({"maxRunSeconds": 90.0, "graceSeconds": 5.0, "stopSignal": "SIGTERM",
            "checkpointEverySeconds": 30.0, "checkpointSignal": "SIGUSR1", "framework": "pytorch",
            "resumeArg": "--resume-from", "gpus": 0, "gpuMemoryLimit": "80%", "maxRestarts": 1,
            "maxParallel": 4});
        let options: RunOptions = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(options.max_run, Duration::from_secs(90));
        assert_eq!(options.stop_signal.signal(), Signal::SIGTERM);
        assert_eq!(options.checkpoint_every, Some(Duration::from_secs(30)));
        assert_eq!(options.gpu_memory_limit, Some(MemoryLimit::Percent(80.0)));
        assert!(options.python_helper, "older records get the helper");
        assert_eq!(serde_json::to_value(&options).unwrap(), stored);
        let off: RunOptions = serde_json::from_value(json!({"pythonHelper": false})).unwrap();
        assert!(!off.python_helper);
        assert_eq!(serde_json::to_value(&off).unwrap()["pythonHelper"], false);
    }

    #[test]
    fn a_limit_in_gigabytes_keeps_its_text_form() {
        let options: RunOptions = serde_json::from_value(json!({"gpuMemoryLimit": "8GB"})).unwrap();
        assert_eq!(options.gpu_memory_limit, Some(MemoryLimit::Gigabytes(8.0)));
        let back = serde_json::to_value(&options).unwrap();
        assert_eq!(back["gpuMemoryLimit"], "8GB");
    }
}
