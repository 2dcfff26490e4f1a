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

/// NVML's compute mode of a GPU: may CUDA contexts be created on it, and how many.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum ComputeMode {
    /// Any number of processes may use the GPU at once.
    Default,
    /// One process at a time (a second CUDA context fails). The retired
    /// "exclusive thread" mode is reported as this too.
    ExclusiveProcess,
    /// No CUDA context may be created: the GPU is not usable for compute.
    Prohibited,
    /// Not read (unsupported, unreadable, or a reading from before this field existed).
    #[default]
    Unknown,
}

impl ComputeMode {
    /// nvidia-smi's `compute_mode` value ("Default", "Exclusive_Process", "Prohibited",
    /// the old "Exclusive_Thread"); anything else (markers included) is `Unknown`.
    pub fn from_nvidia_smi(value: &str) -> ComputeMode {
        match value.trim().to_ascii_lowercase().as_str() {
            "default" => ComputeMode::Default,
            "exclusive_process" | "exclusive_thread" => ComputeMode::ExclusiveProcess,
            "prohibited" => ComputeMode::Prohibited,
            _ => ComputeMode::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ComputeMode::Default => "default",
            ComputeMode::ExclusiveProcess => "exclusive_process",
            ComputeMode::Prohibited => "prohibited",
            ComputeMode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ComputeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a device cannot be used at all (as opposed to one field being unreadable).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The GPU has fallen off the bus ("GPU is lost"); it stays so until a reboot.
    Lost,
    /// The driver refuses this user (NVML `NoPermission`, `[Insufficient Permissions]`).
    NoPermission,
    /// The driver cannot read this device at all (every reading `NotSupported`).
    NotSupported,
    /// The read did not answer in time (gpu.probeTimeout), or the driver said it timed out.
    Timeout,
    /// MIG mode is on, so only MIG instances can run work, but none could be listed
    /// (no permission, or none created). Stays so until an administrator acts.
    MigNotEnumerable,
    /// Anything else; the message says what.
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Lost => "lost",
            FailureKind::NoPermission => "no_permission",
            FailureKind::NotSupported => "not_supported",
            FailureKind::Timeout => "timeout",
            FailureKind::MigNotEnumerable => "mig_not_enumerable",
            FailureKind::Other => "other",
        }
    }

    /// Whether waiting will not help: the device stays unusable until someone acts
    /// (reboot, permissions, MIG configuration). `timeout` and `other` may pass.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            FailureKind::Lost
                | FailureKind::NoPermission
                | FailureKind::NotSupported
                | FailureKind::MigNotEnumerable
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device that cannot be used, and why (one line).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GpuFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl GpuFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> GpuFailure {
        GpuFailure {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for GpuFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// First index of MIG instances: instance `m` of GPU `p` has index
/// `MIG_INDEX_BASE * (p + 1) + m` (GPU 0's instances are 1000, 1001, ...; GPU 1's 2000, ...),
/// so every device of a reading has its own index, and keeps it while the MIG layout
/// stays the same.
pub const MIG_INDEX_BASE: u32 = 1000;

/// The [`GpuInfo::index`] of MIG instance `mig_index` of GPU `parent_index`.
pub fn mig_device_index(parent_index: u32, mig_index: u32) -> u32 {
    MIG_INDEX_BASE
        .saturating_mul(parent_index.saturating_add(1))
        .saturating_add(mig_index)
}

/// One device a run can be placed on (a GPU, or a MIG instance of one), as a probe saw
/// it. Sizes in MiB (what nvidia-smi calls "MiB").
///
/// Every field added after the first version has a default, so older JSON still loads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GpuInfo {
    /// Unique within a reading. A plain GPU: its NVML / nvidia-smi index (the index
    /// `CUDA_DEVICE_ORDER=PCI_BUS_ID` gives it). A MIG instance:
    /// [`mig_device_index`]`(parent_index, mig_index)`.
    pub index: u32,
    /// `GPU-...` for a GPU, `MIG-...` for a MIG instance (empty when unreadable).
    pub uuid: String,
    pub name: String,
    /// None when not reported (e.g. unified-memory GPUs); see [`GpuInfo::memory_reported`].
    pub memory_total_mb: Option<u64>,
    pub memory_used_mb: Option<u64>,
    pub memory_free_mb: Option<u64>,
    /// A MIG instance reports its parent GPU's temperature.
    pub temperature_c: Option<f64>,
    /// A MIG instance reports its parent GPU's utilisation (None under MIG, where the
    /// driver does not give it).
    pub utilization_pct: Option<f64>,
    /// Fields that were [N/A] or unreadable, by name ("temperature", "memory.free", ...;
    /// see [`field`]).
    pub unreadable: Vec<String>,
    /// What `CUDA_VISIBLE_DEVICES` should hold to give a process this device: the index
    /// for a plain GPU ("0"), the uuid for a MIG instance ("MIG-..."). Empty in readings
    /// from before this field existed: use [`GpuInfo::cuda_device`].
    pub device_id: String,
    /// MIG instances only: the index of the GPU they are carved from.
    pub parent_index: Option<u32>,
    /// MIG instances only: the uuid of the GPU they are carved from (processes listed
    /// by nvidia-smi under MIG name this uuid).
    pub parent_uuid: Option<String>,
    /// MIG instances only: the instance's index on its GPU (nvidia-smi -L "Device N").
    pub mig_index: Option<u32>,
    /// Whether MIG mode is on (current mode): Some(true) for a MIG-enabled GPU and its
    /// instances, Some(false) for a MIG-capable GPU with MIG off, None where MIG is not
    /// supported or could not be read.
    pub mig_mode: Option<bool>,
    pub compute_mode: ComputeMode,
    /// Set when the device cannot be used at all; placement must skip it. The
    /// measurements may still be filled in (a MIG parent whose instances cannot be
    /// listed still has a temperature).
    pub failure: Option<GpuFailure>,
    /// The temperature at which the GPU starts to slow itself down (NVML slowdown
    /// threshold, nvidia-smi "GPU Slowdown Temp"); None when not reported. See
    /// [`super::default_max_temp_c`].
    pub slowdown_temp_c: Option<f64>,
}

impl GpuInfo {
    /// A plain GPU with nothing read yet: `device_id` is the index, every other field
    /// empty (compute mode `unknown`). Fill the rest with struct update syntax:
    /// `GpuInfo { memory_free_mb: Some(8000), ..GpuInfo::new(0, "GPU-a", "Tesla T4") }`.
    pub fn new(index: u32, uuid: impl Into<String>, name: impl Into<String>) -> GpuInfo {
        GpuInfo {
            index,
            uuid: uuid.into(),
            name: name.into(),
            device_id: index.to_string(),
            ..GpuInfo::default()
        }
    }

    /// What to put in `CUDA_VISIBLE_DEVICES` for this device: `device_id`, or the index
    /// for readings that predate it.
    pub fn cuda_device(&self) -> String {
        if self.device_id.is_empty() {
            self.index.to_string()
        } else {
            self.device_id.clone()
        }
    }

    /// Whether the driver reported this device's memory. Unified-memory GPUs (Jetson,
    /// GB10) do not: the memory fields are then None and named in `unreadable`.
    pub fn memory_reported(&self) -> bool {
        self.memory_total_mb.is_some()
    }

    pub fn is_mig_instance(&self) -> bool {
        self.parent_index.is_some()
    }

    /// This device's identity (index, uuid, name, device id, MIG and compute mode) with
    /// no measurements, failed with `failure`: what is known of it when a read fails.
    pub fn without_readings(&self, failure: GpuFailure) -> GpuInfo {
        GpuInfo {
            index: self.index,
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            unreadable: [
                field::MEMORY_TOTAL,
                field::MEMORY_USED,
                field::MEMORY_FREE,
                field::TEMPERATURE,
                field::UTILIZATION,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            device_id: self.device_id.clone(),
            parent_index: self.parent_index,
            parent_uuid: self.parent_uuid.clone(),
            mig_index: self.mig_index,
            mig_mode: self.mig_mode,
            compute_mode: self.compute_mode,
            failure: Some(failure),
            slowdown_temp_c: self.slowdown_temp_c,
            ..GpuInfo::default()
        }
    }
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
    /// Things worth telling about this reading as a whole (one line each), e.g. that
    /// per-process memory is not read on this driver. Shown by `backprop status`.
    #[serde(default)]
    pub notes: Vec<String>,
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

    /// A read (run on its own thread) did not return within its bound. The thread is
    /// left to finish on its own; no other read starts until it has.
    #[error(
        "the {probe} GPU read did not answer within {} (left running); check the driver or set gpu.probe to none",
        fmt_duration(*.timeout)
    )]
    ReadTimeout { probe: ProbeKind, timeout: Duration },

    /// A read timed out earlier and its thread has still not returned.
    #[error(
        "the {probe} GPU read that timed out has not returned after {}; check the driver or set gpu.probe to none",
        fmt_duration(*.waited)
    )]
    StillHung { probe: ProbeKind, waited: Duration },

    /// The thread running the read died (a bug: a panic in the probe).
    #[error("the {probe} GPU read failed unexpectedly: {reason}")]
    Crashed { probe: ProbeKind, reason: String },
}

impl ProbeError {
    /// The probe's program is missing (as opposed to present but failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProbeError::NotFound { .. })
    }

    /// The read took too long: nvidia-smi was killed, or a read thread did not return.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ProbeError::Timeout { .. }
                | ProbeError::ReadTimeout { .. }
                | ProbeError::StillHung { .. }
        )
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
    /// The longest a read may take when nothing hangs, if the probe knows better than
    /// gpu.probeTimeout (nvidia-smi makes several calls, each bounded by it). A read
    /// still running past this bound is abandoned as hung.
    fn read_bound(&self) -> Option<Duration> {
        None
    }
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
            memory_total_mb: Some(15360),
            memory_free_mb: Some(15000),
            temperature_c: Some(41.0),
            unreadable: vec!["memory.used".into(), "utilization".into()],
            ..GpuInfo::new(1, "GPU-1", "Tesla T4")
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
    fn old_json_without_the_new_fields_still_loads() {
        let old = serde_json::json!({
            "index": 2, "uuid": "GPU-2", "name": "Tesla T4", "memoryTotalMb": 15360,
            "memoryUsedMb": 0, "memoryFreeMb": 15360, "temperatureC": 40.0,
            "utilizationPct": 0.0
        });
        let g: GpuInfo = serde_json::from_value(old).unwrap();
        assert_eq!(g.index, 2);
        assert_eq!(g.device_id, "");
        assert_eq!(g.cuda_device(), "2");
        assert_eq!(g.compute_mode, ComputeMode::Unknown);
        assert_eq!(g.failure, None);
        assert_eq!(g.parent_index, None);
        assert!(g.unreadable.is_empty());
        assert!(g.memory_reported());
        let r: GpuReading = serde_json::from_str(r#"{"gpus": [], "processes": []}"#).unwrap();
        assert!(r.notes.is_empty());
    }

    #[test]
    fn new_fields_are_camel_case_with_snake_case_values() {
        let g = GpuInfo {
            parent_index: Some(0),
            parent_uuid: Some("GPU-0".into()),
            mig_index: Some(1),
            mig_mode: Some(true),
            compute_mode: ComputeMode::ExclusiveProcess,
            failure: Some(GpuFailure::new(FailureKind::MigNotEnumerable, "no")),
            slowdown_temp_c: Some(87.0),
            device_id: "MIG-x".into(),
            ..GpuInfo::new(mig_device_index(0, 1), "MIG-x", "A100 MIG 3g.20gb")
        };
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["index"], 1001);
        assert_eq!(v["deviceId"], "MIG-x");
        assert_eq!(v["parentIndex"], 0);
        assert_eq!(v["parentUuid"], "GPU-0");
        assert_eq!(v["migIndex"], 1);
        assert_eq!(v["migMode"], true);
        assert_eq!(v["computeMode"], "exclusive_process");
        assert_eq!(v["failure"]["kind"], "mig_not_enumerable");
        assert_eq!(v["failure"]["message"], "no");
        assert_eq!(v["slowdownTempC"], 87.0);
        assert_eq!(serde_json::from_value::<GpuInfo>(v).unwrap(), g);
        assert!(g.is_mig_instance());
        assert_eq!(g.cuda_device(), "MIG-x");
        assert_eq!(mig_device_index(1, 0), 2000);
        assert_eq!(mig_device_index(u32::MAX, 3), u32::MAX);
    }

    #[test]
    fn a_plain_gpu_is_addressed_by_its_index() {
        let g = GpuInfo::new(3, "GPU-3", "Tesla T4");
        assert_eq!(g.device_id, "3");
        assert!(!g.is_mig_instance());
        assert!(!g.memory_reported());
        let failed = GpuInfo {
            temperature_c: Some(50.0),
            memory_total_mb: Some(1),
            compute_mode: ComputeMode::Prohibited,
            ..g.clone()
        }
        .without_readings(GpuFailure::new(FailureKind::Timeout, "slow"));
        assert_eq!(failed.temperature_c, None);
        assert_eq!(failed.memory_total_mb, None);
        assert_eq!(failed.device_id, "3");
        assert_eq!(failed.compute_mode, ComputeMode::Prohibited);
        assert_eq!(failed.failure.unwrap().kind, FailureKind::Timeout);
        assert_eq!(failed.unreadable.len(), 5);
    }

    #[test]
    fn compute_modes_from_nvidia_smi() {
        for (text, mode) in [
            ("Default", ComputeMode::Default),
            ("Exclusive_Process", ComputeMode::ExclusiveProcess),
            ("Exclusive_Thread", ComputeMode::ExclusiveProcess),
            ("Prohibited", ComputeMode::Prohibited),
            ("[N/A]", ComputeMode::Unknown),
            ("Weird", ComputeMode::Unknown),
        ] {
            assert_eq!(ComputeMode::from_nvidia_smi(text), mode, "{text}");
        }
        assert!(FailureKind::Lost.is_permanent());
        assert!(FailureKind::MigNotEnumerable.is_permanent());
        assert!(!FailureKind::Timeout.is_permanent());
        assert!(!FailureKind::Other.is_permanent());
        assert_eq!(
            GpuFailure::new(FailureKind::NoPermission, "denied").to_string(),
            "no_permission: denied"
        );
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
        let e = ProbeError::ReadTimeout {
            probe: ProbeKind::Nvml,
            timeout: Duration::from_millis(200),
        };
        assert!(e.is_timeout());
        assert_eq!(
            e.to_string(),
            "the nvml GPU read did not answer within 200ms (left running); check the driver or set gpu.probe to none"
        );
        assert!(
            ProbeError::StillHung {
                probe: ProbeKind::Nvml,
                waited: Duration::from_secs(3)
            }
            .is_timeout()
        );
        assert!(!ProbeError::Nvml("x".into()).is_timeout());
    }
}
