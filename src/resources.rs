//! Resource snapshots and the governor's start check, as pure functions over them.

use serde::Serialize;

/// What the machine looks like at one moment.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub taken_ms: u64,
    pub cpus: usize,
    /// 1-minute load average divided by the number of CPUs.
    pub load_per_core: f64,
    pub free_ram_gb: f64,
    pub total_ram_gb: f64,
    /// Why CPU or RAM could not be read; a start then waits rather than skip the check.
    pub error: Option<String>,
    pub gpu: GpuState,
}

/// What the GPU probe saw.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuState {
    /// The probe in use (`none` when no probe works or none is configured).
    pub probe: crate::gpu::ProbeKind,
    pub gpus: Vec<crate::gpu::GpuInfo>,
    pub processes: Vec<crate::gpu::GpuProcess>,
    /// Why the last reading failed; runs that need GPUs wait while this is set.
    pub error: Option<String>,
    /// Why a preferred probe was not used (e.g. NVML could not load), for `status`.
    pub note: Option<String>,
}

impl Default for GpuState {
    fn default() -> Self {
        GpuState {
            probe: crate::gpu::ProbeKind::None,
            gpus: Vec::new(),
            processes: Vec::new(),
            error: None,
            note: None,
        }
    }
}

/// The limits a start must respect (`minFreeRamGB`, `maxCpuLoad`).
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub min_free_ram_gb: f64,
    pub max_cpu_load: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Go,
    Wait(String),
}

/// Whether a run may start now, and if not, why (shown to the user as the wait reason).
pub fn check(snapshot: &Snapshot, limits: &Thresholds) -> Verdict {
    if let Some(error) = &snapshot.error {
        return Verdict::Wait(format!("cannot read CPU/RAM: {error}"));
    }
    if snapshot.free_ram_gb < limits.min_free_ram_gb {
        return Verdict::Wait(format!(
            "free RAM {:.1} GB is below minFreeRamGB {}",
            snapshot.free_ram_gb, limits.min_free_ram_gb
        ));
    }
    if snapshot.load_per_core > limits.max_cpu_load {
        return Verdict::Wait(format!(
            "CPU load {:.2} per core is above maxCpuLoad {}",
            snapshot.load_per_core, limits.max_cpu_load
        ));
    }
    Verdict::Go
}

/// Reads CPU load, RAM and the GPUs. Blocking (a GPU probe may take up to its timeout), so
/// it runs on the governor's sampler thread or in a one-shot command.
pub struct Sampler {
    system: Result<sysinfo::System, String>,
    gpu_probe: Option<Box<dyn crate::gpu::GpuProbe>>,
    gpu_kind: crate::gpu::ProbeKind,
    gpu_note: Option<String>,
    /// Set when the configured probe (not `auto`) could not be opened at all.
    gpu_open_error: Option<String>,
}

impl Sampler {
    /// `probe` is the `gpu.probe` setting (`auto`, `nvml`, `nvidia-smi`, `none`).
    pub fn new(probe: &str, probe_timeout: std::time::Duration) -> Sampler {
        let selected = crate::gpu::open_probe(probe, probe_timeout);
        let explicit = !matches!(probe, "auto" | "none");
        let gpu_open_error = (explicit && selected.probe.is_none()).then(|| {
            selected
                .note
                .clone()
                .unwrap_or_else(|| format!("GPU probe {probe} is not available"))
        });
        Sampler {
            gpu_open_error,
            system: sysinfo::System::new().map_err(|e| e.to_string()),
            gpu_probe: selected.probe,
            gpu_kind: selected.kind,
            gpu_note: selected.note,
        }
    }

    /// CPU and RAM only.
    pub fn without_gpus() -> Sampler {
        Sampler::new("none", std::time::Duration::from_secs(1))
    }

    pub fn sample(&mut self) -> Snapshot {
        let mut snapshot = self.sample_machine();
        let (reading, error) = crate::gpu::read_with_error(&mut self.gpu_probe);
        snapshot.gpu = GpuState {
            probe: self.gpu_kind,
            gpus: reading.gpus,
            processes: reading.processes,
            error: error.or_else(|| self.gpu_open_error.clone()),
            note: self.gpu_note.clone(),
        };
        snapshot
    }

    /// CPU and RAM now, the GPUs not read yet (a reading may take up to the probe's timeout):
    /// enough for CPU runs, while GPU runs wait for the first full sample.
    pub fn sample_machine_only(&mut self) -> Snapshot {
        let mut snapshot = self.sample_machine();
        snapshot.gpu = GpuState {
            probe: self.gpu_kind,
            error: (self.gpu_kind != crate::gpu::ProbeKind::None).then(|| NOT_READ_YET.to_string()),
            note: self.gpu_note.clone(),
            ..GpuState::default()
        };
        snapshot
    }

    fn sample_machine(&mut self) -> Snapshot {
        const GB: f64 = 1024.0 * 1024.0 * 1024.0;
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut snapshot = Snapshot {
            taken_ms: crate::clock::now_ms(),
            cpus,
            ..Default::default()
        };
        match &mut self.system {
            Ok(system) => {
                system.refresh_memory();
                snapshot.free_ram_gb = system.available_memory() as f64 / GB;
                snapshot.total_ram_gb = system.total_memory() as f64 / GB;
                match sysinfo::System::load_average() {
                    Ok(load) => snapshot.load_per_core = load.one / cpus as f64,
                    Err(e) => snapshot.error = Some(format!("load average: {e}")),
                }
            }
            Err(e) => snapshot.error = Some(e.clone()),
        }
        snapshot
    }
}

/// The GPU error of a snapshot taken before the first GPU reading.
pub const NOT_READ_YET: &str = "no GPU reading yet";

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(free_ram_gb: f64, load_per_core: f64) -> Snapshot {
        Snapshot {
            free_ram_gb,
            load_per_core,
            cpus: 2,
            ..Default::default()
        }
    }

    #[test]
    fn starts_when_everything_is_within_limits() {
        let limits = Thresholds {
            min_free_ram_gb: 4.0,
            max_cpu_load: 2.0,
        };
        assert_eq!(check(&machine(8.0, 0.5), &limits), Verdict::Go);
    }

    #[test]
    fn waits_with_a_reason_naming_the_limit() {
        let limits = Thresholds {
            min_free_ram_gb: 4.0,
            max_cpu_load: 2.0,
        };
        match check(&machine(1.5, 0.5), &limits) {
            Verdict::Wait(why) => assert!(why.contains("minFreeRamGB"), "{why}"),
            Verdict::Go => panic!("should wait"),
        }
        match check(&machine(8.0, 3.5), &limits) {
            Verdict::Wait(why) => assert!(why.contains("maxCpuLoad"), "{why}"),
            Verdict::Go => panic!("should wait"),
        }
    }

    #[test]
    fn a_real_sample_is_plausible() {
        let s = Sampler::without_gpus().sample();
        assert_eq!(s.error, None);
        assert!(s.cpus >= 1 && s.total_ram_gb > 0.0 && s.free_ram_gb <= s.total_ram_gb);
    }
}
