//! The NVML probe (nvml-wrapper). The library is loaded at run time, so a machine
//! without the NVIDIA driver gets an error from [`NvmlProbe::new`], never a panic.

use super::types::{GpuInfo, GpuProbe, GpuProcess, GpuReading, ProbeError, ProbeKind, field};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use std::ffi::OsStr;

/// Library names tried in order: the driver installs the versioned name; the bare one
/// comes with development packages.
pub const DEFAULT_LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

const MIB: u64 = 1024 * 1024;

/// NVML, initialised once and reused for every reading (shut down on drop).
pub struct NvmlProbe {
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlProbe").finish_non_exhaustive()
    }
}

impl NvmlProbe {
    /// Loads the driver's NVML library. Err (`ProbeError::NvmlUnavailable`) when it is
    /// missing or the driver is not running.
    pub fn new() -> Result<Self, ProbeError> {
        Self::with_libraries(&DEFAULT_LIBRARIES)
    }

    /// Loads the first of `libraries` (names or paths) that initialises.
    pub fn with_libraries<S: AsRef<OsStr>>(libraries: &[S]) -> Result<Self, ProbeError> {
        let mut first_error = None;
        for lib in libraries {
            match Nvml::builder().lib_path(lib.as_ref()).init() {
                Ok(nvml) => return Ok(NvmlProbe { nvml }),
                Err(e) => {
                    tracing::debug!(lib = ?lib.as_ref(), %e, "NVML did not load");
                    // The first failure is the informative one (the driver's own name).
                    first_error.get_or_insert_with(|| describe_init_error(&e));
                }
            }
        }
        Err(ProbeError::NvmlUnavailable(
            first_error.unwrap_or_else(|| "no library to load".to_string()),
        ))
    }

    fn read_device(&self, index: u32, processes: &mut Vec<GpuProcess>) -> GpuInfo {
        let mut info = GpuInfo {
            index,
            uuid: String::new(),
            name: String::new(),
            memory_total_mb: None,
            memory_used_mb: None,
            memory_free_mb: None,
            temperature_c: None,
            utilization_pct: None,
            unreadable: Vec::new(),
        };
        let device = match self.nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(index, %e, "NVML: no handle for this GPU");
                info.unreadable = [
                    field::UUID,
                    field::NAME,
                    field::MEMORY_TOTAL,
                    field::MEMORY_USED,
                    field::MEMORY_FREE,
                    field::TEMPERATURE,
                    field::UTILIZATION,
                    field::PROCESSES,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                return info;
            }
        };
        let mut unreadable = Vec::new();
        let mut note = |name: &str, e: &NvmlError| {
            tracing::debug!(index, field = name, %e, "NVML: field unreadable");
            unreadable.push(name.to_string());
        };
        match device.uuid() {
            Ok(u) => info.uuid = u,
            Err(e) => note(field::UUID, &e),
        }
        match device.name() {
            Ok(n) => info.name = n,
            Err(e) => note(field::NAME, &e),
        }
        match device.memory_info() {
            Ok(m) => {
                info.memory_total_mb = Some(m.total / MIB);
                info.memory_used_mb = Some(m.used / MIB);
                info.memory_free_mb = Some(m.free / MIB);
            }
            Err(e) => {
                note(field::MEMORY_TOTAL, &e);
                note(field::MEMORY_USED, &e);
                note(field::MEMORY_FREE, &e);
            }
        }
        match device.temperature(TemperatureSensor::Gpu) {
            Ok(t) => info.temperature_c = Some(f64::from(t)),
            Err(e) => note(field::TEMPERATURE, &e),
        }
        match device.utilization_rates() {
            Ok(u) => info.utilization_pct = Some(f64::from(u.gpu)),
            Err(e) => note(field::UTILIZATION, &e),
        }
        match device.running_compute_processes() {
            Ok(list) => processes.extend(list.into_iter().map(|p| GpuProcess {
                pid: p.pid,
                gpu_uuid: info.uuid.clone(),
                used_mb: match p.used_gpu_memory {
                    UsedGpuMemory::Used(bytes) => Some(bytes / MIB),
                    UsedGpuMemory::Unavailable => None,
                },
            })),
            Err(e) => note(field::PROCESSES, &e),
        }
        info.unreadable = unreadable;
        info
    }
}

impl GpuProbe for NvmlProbe {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Nvml
    }

    fn read(&mut self) -> Result<GpuReading, ProbeError> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| ProbeError::Nvml(format!("counting GPUs: {e}")))?;
        let mut reading = GpuReading::default();
        for index in 0..count {
            let info = self.read_device(index, &mut reading.processes);
            reading.gpus.push(info);
        }
        Ok(reading)
    }
}

fn describe_init_error(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(inner) => inner.to_string(),
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".to_string(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn nvml_probe_is_send() {
        assert_send::<NvmlProbe>();
    }

    #[test]
    fn a_missing_library_is_a_clean_error() {
        let e = NvmlProbe::with_libraries(&["/nonexistent/backprop-test/libnvidia-ml.so.1"])
            .unwrap_err();
        match &e {
            ProbeError::NvmlUnavailable(reason) => {
                assert!(reason.contains("libnvidia-ml.so.1"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.starts_with("NVML could not be loaded: "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(NvmlProbe::with_libraries::<&str>(&[]).is_err());
    }

    #[test]
    fn no_nvml_on_this_machine() {
        // No machine here has the NVIDIA driver. Where one has, this checks a reading.
        match NvmlProbe::new() {
            Err(e) => assert!(matches!(e, ProbeError::NvmlUnavailable(_)), "{e:?}"),
            Ok(mut p) => {
                let r = p.read().unwrap();
                assert!(r.gpus.iter().enumerate().all(|(i, g)| g.index == i as u32));
            }
        }
    }
}
