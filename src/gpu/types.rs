//! What a GPU probe reports, and how it fails.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Names used in [`GpuInfo::unreadable`] (the same for every probe).
pub mod field {
    pub const MEMORY_TOTAL: &str = "memory.total";
    pub const MEMORY_USED: &str = "memory.used";
    pub const MEMORY_FREE: &str = "memory.free";
    pub const TEMPERATURE: &str = "temperature";
    pub const UTILIZATION: &str = "utilization";
    /// NVML only: the GPU's uuid could not be read (the uuid is then empty).
    pub const UUID: &str = "uuid";
    /// NVML only: the GPU's name could not be read (the name is then empty).
    pub const NAME: &str = "name";
    /// NVML only: this GPU's compute processes could not be listed, so
    /// [`super::GpuReading::processes`] may miss some of them.
    pub const PROCESSES: &str = "processes";
}

/// One GPU as a probe saw it. Sizes in MiB (what nvidia-smi calls "MiB").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuInfo {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub memory_total_mb: Option<u64>,
    pub memory_used_mb: Option<u64>,
    pub memory_free_mb: Option<u64>,
    pub temperature_c: Option<f64>,
    pub utilization_pct: Option<f64>,
    /// Fields that were [N/A] or unreadable, by name ("temperature", "memory.free", ...;
    /// see [`field`]).
    #[serde(default)]
    pub unreadable: Vec<String>,
}

/// A compute process using a GPU.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuProcess {
    pub pid: u32,
    pub gpu_uuid: String,
    /// None when the driver does not say (e.g. `[N/A]` in containers or under WDDM).
    pub used_mb: Option<u64>,
}

/// Everything one probe read returns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GpuReading {
    pub gpus: Vec<GpuInfo>,
    pub processes: Vec<GpuProcess>,
}

/// Which probe is in use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    Nvml,
    NvidiaSmi,
    None,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Nvml => "nvml",
            ProbeKind::NvidiaSmi => "nvidia-smi",
            ProbeKind::None => "none",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe could not be opened or read. Every message is one line that says
/// what failed and what to do.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The nvidia-smi program does not exist (the `auto` selection relies on telling
    /// this apart from the other failures).
    #[error(
        "{program} not found{}; install the NVIDIA driver utilities or set gpu.probe to none",
        if .program.contains('/') { "" } else { " on PATH" }
    )]
    NotFound { program: String },

    #[error(
        "could not start {program}: {reason}; check that it is executable or set gpu.probe to none"
    )]
    Spawn { program: String, reason: String },

    #[error(
        "{program} did not answer within {} (killed); check the driver or set gpu.probe to none",
        fmt_duration(*.timeout)
    )]
    Timeout { program: String, timeout: Duration },

    /// Non-zero exit. `message` is the first line it printed (stdout first, then stderr).
    #[error("{program} failed ({status}): {message}; check the driver or set gpu.probe to none")]
    Failed {
        program: String,
        status: String,
        message: String,
    },

    /// Output that is not what the query asks for. `line` is the offending line,
    /// sanitised and truncated to about 80 characters.
    #[error(
        "unexpected nvidia-smi {query} output ({reason}): \"{line}\"; check the driver version or set gpu.probe to none"
    )]
    Parse {
        query: String,
        reason: String,
        line: String,
    },

    #[error(
        "NVML could not be loaded: {0}; install the NVIDIA driver or set gpu.probe to nvidia-smi or none"
    )]
    NvmlUnavailable(String),

    #[error("NVML query failed: {0}; check the driver or set gpu.probe to nvidia-smi or none")]
    Nvml(String),
}

impl ProbeError {
    /// The probe's program is missing (as opposed to present but failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProbeError::NotFound { .. })
    }
}

/// "5s", "1.5s", "250ms".
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.2}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// A source of GPU readings. Construct once, read many times.
pub trait GpuProbe: Send {
    fn kind(&self) -> ProbeKind;
    fn read(&mut self) -> Result<GpuReading, ProbeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_serialises_like_the_config_values() {
        assert_eq!(serde_json::to_string(&ProbeKind::Nvml).unwrap(), "\"nvml\"");
        assert_eq!(
            serde_json::to_string(&ProbeKind::NvidiaSmi).unwrap(),
            "\"nvidia-smi\""
        );
        assert_eq!(serde_json::to_string(&ProbeKind::None).unwrap(), "\"none\"");
        let k: ProbeKind = serde_json::from_str("\"nvidia-smi\"").unwrap();
        assert_eq!(k, ProbeKind::NvidiaSmi);
        assert_eq!(ProbeKind::NvidiaSmi.to_string(), "nvidia-smi");
    }

    #[test]
    fn gpu_info_is_camel_case_and_round_trips() {
        let g = GpuInfo {
            index: 1,
            uuid: "GPU-1".into(),
            name: "Tesla T4".into(),
            memory_total_mb: Some(15360),
            memory_used_mb: None,
            memory_free_mb: Some(15000),
            temperature_c: Some(41.0),
            utilization_pct: None,
            unreadable: vec!["memory.used".into(), "utilization".into()],
        };
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["memoryTotalMb"], 15360);
        assert!(v["memoryUsedMb"].is_null());
        assert_eq!(v["temperatureC"], 41.0);
        assert_eq!(v["unreadable"][1], "utilization");
        let back: GpuInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, g);

        let p = GpuProcess {
            pid: 7,
            gpu_uuid: "GPU-1".into(),
            used_mb: None,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["gpuUuid"], "GPU-1");
        assert!(v["usedMb"].is_null());
    }

    #[test]
    fn messages_are_one_line_and_say_what_to_do() {
        let e = ProbeError::Timeout {
            program: "nvidia-smi".into(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            e.to_string(),
            "nvidia-smi did not answer within 5s (killed); check the driver or set gpu.probe to none"
        );
        let e = ProbeError::NotFound {
            program: "nvidia-smi".into(),
        };
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("nvidia-smi not found on PATH;"));
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
    }
}
