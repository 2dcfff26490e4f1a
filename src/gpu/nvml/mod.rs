//! The NVML probe (nvml-wrapper). The library is loaded at run time, so a machine
//! without the NVIDIA driver gets an error from [`NvmlProbe::new`], never a panic.
//!
//! The probe's logic runs over the small [`api::NvmlApi`] trait, so tests drive it with a
//! scripted stand-in. What it does beyond reading each GPU:
//! - MIG: a GPU with MIG mode on is replaced by its MIG instances, each a device of its
//!   own (its memory; its parent's temperature and utilisation; `MIG-...` uuid as
//!   device id). When the instances cannot be listed the GPU is reported failed
//!   (`mig_not_enumerable`), since nothing can run on a MIG GPU outside an instance.
//! - Older drivers: `nvmlDeviceGetMemoryInfo_v2` missing falls back to v1 and
//!   `nvmlDeviceGetComputeRunningProcesses_v3` to v2 then v1, remembered per probe.
//! - Drivers 535.43–535.86 return corrupt process records: per-process lists are not read
//!   there (one warning, and a note on every reading).
//! - Failures: a lost GPU, no permission, nothing supported: [`GpuInfo::failure`] says
//!   which, instead of a row of unreadable fields.

mod api;
#[cfg(test)]
pub(crate) mod scripted;
#[cfg(test)]
mod tests_scripted;

use super::types::{
    ComputeMode, FailureKind, GpuFailure, GpuInfo, GpuProbe, GpuProcess, GpuReading, ProbeError,
    ProbeKind, field, mig_device_index,
};
pub(crate) use api::{Memory, NvmlApi, NvmlDevice, NvmlResult, ProcessCall, ProcessUse};
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Library names tried in order: the driver installs the versioned name; the bare one
/// comes with development packages.
pub const DEFAULT_LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

const MIB: u64 = 1024 * 1024;

/// NVML, initialised once and reused for every reading (shut down on drop).
pub struct NvmlProbe {
    api: Box<dyn NvmlApi>,
    calls: Calls,
}

/// Which calls work on this driver, learnt as the probe goes.
#[derive(Debug)]
struct Calls {
    /// `nvmlDeviceGetMemoryInfo_v2` is missing: use v1.
    memory_v1: bool,
    /// The process-list call to use; None when the driver has none.
    process_call: Option<ProcessCall>,
    /// None until the driver version was read; then why process lists are skipped, if
    /// they are.
    skip_processes: Option<Option<String>>,
}

impl std::fmt::Debug for NvmlProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlProbe")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
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
                Ok(nvml) => return Ok(Self::with_api(Box::new(api::RealNvml { nvml }))),
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

    /// The probe over any implementation of the NVML calls (tests: a scripted one).
    pub(crate) fn with_api(api: Box<dyn NvmlApi>) -> NvmlProbe {
        NvmlProbe {
            api,
            calls: Calls {
                memory_v1: false,
                process_call: Some(ProcessCall::V3),
                skip_processes: None,
            },
        }
    }
}

impl GpuProbe for NvmlProbe {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Nvml
    }

    fn read(&mut self) -> Result<GpuReading, ProbeError> {
        let api = &*self.api;
        let calls = &mut self.calls;
        let mut reading = GpuReading::default();
        let skip = calls
            .skip_processes
            .get_or_insert_with(|| process_records_note(api))
            .clone();
        if let Some(note) = skip {
            reading.notes.push(note);
        }
        let count = api
            .device_count()
            .map_err(|e| ProbeError::Nvml(format!("counting GPUs: {e}")))?;
        for index in 0..count {
            calls.read_gpu(api, index, &mut reading);
        }
        Ok(reading)
    }
}

static WARNED_PROCESS_RECORDS: AtomicBool = AtomicBool::new(false);

/// Why per-process lists must not be read on this driver, or None. Warns once per
/// process.
fn process_records_note(api: &dyn NvmlApi) -> Option<String> {
    let version = match api.driver_version() {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(%e, "NVML: driver version unreadable");
            return None;
        }
    };
    if !process_records_are_corrupt(&version) {
        return None;
    }
    let note = format!(
        "per-process GPU memory is not read: NVIDIA driver {version} (535.43 to 535.86) returns \
         corrupt process records; upgrade the driver to read it"
    );
    if !WARNED_PROCESS_RECORDS.swap(true, Ordering::Relaxed) {
        tracing::warn!("{note}");
    }
    Some(note)
}

/// Drivers 535.43 to 535.86 changed the size of NVML's process record without changing
/// its version, so the process-list calls return garbage (fixed in 535.98).
pub(crate) fn process_records_are_corrupt(driver_version: &str) -> bool {
    let mut parts = driver_version.trim().split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(535), Some(minor)) if (43..=86).contains(&minor))
}

/// NVML_ERROR_ARGUMENT_VERSION_MISMATCH (nvml-wrapper has no variant for it).
const ARGUMENT_VERSION_MISMATCH: u32 = 25;

/// A call this driver does not have (older than the call, or stripped), or has in a
/// version that refuses the struct version given: try the older call.
fn missing(e: &NvmlError) -> bool {
    match e {
        NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound => true,
        NvmlError::UnexpectedVariant(code) => *code == ARGUMENT_VERSION_MISMATCH,
        _ => false,
    }
}

fn failure_kind(e: &NvmlError) -> FailureKind {
    match e {
        NvmlError::GpuLost => FailureKind::Lost,
        NvmlError::NoPermission => FailureKind::NoPermission,
        NvmlError::NotSupported
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_) => FailureKind::NotSupported,
        NvmlError::Timeout => FailureKind::Timeout,
        _ => FailureKind::Other,
    }
}

/// What went wrong on one device, for its failure message.
#[derive(Default)]
struct Problems {
    unreadable: Vec<String>,
    lost: Option<String>,
}

impl Problems {
    /// `result`'s value, or None with `name` noted as unreadable (if not empty).
    fn get<T>(&mut self, index: u32, name: &str, result: NvmlResult<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(index, field = name, %e, "NVML: field unreadable");
                if matches!(e, NvmlError::GpuLost) {
                    self.lost.get_or_insert_with(|| e.to_string());
                }
                if !name.is_empty() {
                    self.unreadable.push(name.to_string());
                }
                None
            }
        }
    }
}

impl Calls {
    fn memory(&mut self, device: &dyn NvmlDevice) -> NvmlResult<Memory> {
        if !self.memory_v1 {
            match device.memory_v2() {
                Err(e) if missing(&e) => {
                    tracing::debug!(%e, "NVML: no v2 memory call (older driver); using v1");
                    self.memory_v1 = true;
                }
                other => return other,
            }
        }
        device.memory_v1()
    }

    fn processes(&mut self, device: &dyn NvmlDevice) -> NvmlResult<Vec<ProcessUse>> {
        if matches!(self.skip_processes, Some(Some(_))) {
            return Err(NvmlError::NotSupported);
        }
        loop {
            let Some(call) = self.process_call else {
                return Err(NvmlError::FunctionNotFound);
            };
            match device.processes(call) {
                Err(e) if missing(&e) => {
                    tracing::debug!(?call, %e, "NVML: process-list call missing; trying an older one");
                    self.process_call = call.older();
                }
                other => return other,
            }
        }
    }

    /// Reads GPU `index` into `out`: the GPU itself, or its MIG instances.
    fn read_gpu(&mut self, api: &dyn NvmlApi, index: u32, out: &mut GpuReading) {
        let device = match api.device(index) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(index, %e, "NVML: no handle for this GPU");
                let mut info = GpuInfo::new(index, "", "").without_readings(GpuFailure::new(
                    failure_kind(&e),
                    describe_failure(index, &e, "NVML cannot open it"),
                ));
                info.compute_mode = ComputeMode::Unknown;
                info.unreadable
                    .extend([field::UUID, field::NAME, field::PROCESSES].map(String::from));
                out.gpus.push(info);
                return;
            }
        };
        let device = &*device;
        let mut p = Problems::default();
        let mut info = GpuInfo::new(index, "", "");
        info.uuid = p.get(index, field::UUID, device.uuid()).unwrap_or_default();
        info.name = p.get(index, field::NAME, device.name()).unwrap_or_default();
        let memory = self.memory(device);
        let temperature = device.temperature();
        let utilization = device.utilization();
        let nothing_read = [
            memory.as_ref().err(),
            temperature.as_ref().err(),
            utilization.as_ref().err(),
        ]
        .into_iter()
        .all(|e| e.is_some());
        let first_error = memory
            .as_ref()
            .err()
            .map(|e| (failure_kind(e), e.to_string()));
        if let Some(m) = p.get(index, "", memory) {
            set_memory(&mut info, m);
        } else {
            p.unreadable.extend(
                [field::MEMORY_TOTAL, field::MEMORY_USED, field::MEMORY_FREE].map(String::from),
            );
        }
        info.temperature_c = p.get(index, field::TEMPERATURE, temperature).map(f64::from);
        info.utilization_pct = p.get(index, field::UTILIZATION, utilization).map(f64::from);
        info.slowdown_temp_c = p
            .get(index, "", device.slowdown_temperature())
            .filter(|t| *t > 0)
            .map(f64::from);
        info.compute_mode = p
            .get(index, "", device.compute_mode())
            .unwrap_or(ComputeMode::Unknown);
        info.mig_mode = match device.mig_enabled() {
            Ok(on) => Some(on),
            Err(NvmlError::NotSupported) => None,
            Err(e) => p.get(index, "", Err(e)),
        };

        if let Some(e) = p.lost.take() {
            let failure = GpuFailure::new(
                FailureKind::Lost,
                format!("GPU {index} has fallen off the bus (NVML: {e}); a reboot recovers it"),
            );
            let mut lost = info.without_readings(failure);
            for name in p
                .unreadable
                .into_iter()
                .chain([field::PROCESSES.to_string()])
            {
                if !lost.unreadable.contains(&name) {
                    lost.unreadable.push(name);
                }
            }
            out.gpus.push(lost);
            return;
        }
        if nothing_read && let Some((kind, e)) = first_error {
            info.failure = Some(GpuFailure::new(
                kind,
                format!("GPU {index}: NVML reads nothing from it (memory: {e})"),
            ));
        }

        if info.mig_mode == Some(true) {
            match self.read_mig_instances(device, &info, &p.unreadable, out) {
                Ok(0) => {
                    info.failure = Some(GpuFailure::new(
                        FailureKind::MigNotEnumerable,
                        format!(
                            "GPU {index} is in MIG mode but has no MIG instances; create some \
                             (nvidia-smi mig -cgi <profiles> -C) or turn MIG off"
                        ),
                    ));
                }
                Ok(_) => return,
                Err(e) => {
                    let hint = if matches!(e, NvmlError::NoPermission) {
                        "; run as a user allowed to see them (often root) or turn MIG off"
                    } else {
                        "; check the driver or turn MIG off"
                    };
                    info.failure = Some(GpuFailure::new(
                        FailureKind::MigNotEnumerable,
                        format!(
                            "GPU {index} is in MIG mode but its MIG instances cannot be listed \
                             (NVML: {e}){hint}"
                        ),
                    ));
                }
            }
        }
        self.add_processes(device, index, &info.uuid, &mut p.unreadable, out);
        info.unreadable = p.unreadable;
        out.gpus.push(info);
    }

    /// Appends the compute processes of `device` (named by `uuid`) to `out`, or notes
    /// them unreadable.
    fn add_processes(
        &mut self,
        device: &dyn NvmlDevice,
        index: u32,
        uuid: &str,
        unreadable: &mut Vec<String>,
        out: &mut GpuReading,
    ) {
        match self.processes(device) {
            Ok(list) => out.processes.extend(list.into_iter().map(|p| GpuProcess {
                pid: p.pid,
                gpu_uuid: uuid.to_string(),
                used_mb: p.used_bytes.map(|b| b / MIB),
            })),
            Err(e) => {
                tracing::debug!(index, %e, "NVML: processes unreadable");
                unreadable.push(field::PROCESSES.to_string());
            }
        }
    }

    /// Adds the MIG instances of `parent` (read as `parent_info`) to `out`; how many.
    /// Err when none could be listed because of an error.
    fn read_mig_instances(
        &mut self,
        parent: &dyn NvmlDevice,
        parent_info: &GpuInfo,
        parent_unreadable: &[String],
        out: &mut GpuReading,
    ) -> NvmlResult<usize> {
        let parent_index = parent_info.index;
        let slots = parent.max_mig_devices()?;
        let mut first_error = None;
        let mut found = 0;
        for slot in 0..slots {
            let instance = match parent.mig_device(slot) {
                Ok(d) => d,
                Err(NvmlError::NotFound) => continue,
                Err(e) => {
                    tracing::debug!(parent_index, slot, %e, "NVML: MIG instance unreadable");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            found += 1;
            let instance = &*instance;
            let index = mig_device_index(parent_index, slot);
            let mut p = Problems::default();
            let uuid = instance.uuid();
            let name = p
                .get(index, field::NAME, instance.name())
                .unwrap_or_else(|| format!("{} MIG", parent_info.name));
            let mut info = GpuInfo {
                name,
                parent_index: Some(parent_index),
                parent_uuid: Some(parent_info.uuid.clone()).filter(|u| !u.is_empty()),
                mig_index: Some(slot),
                mig_mode: Some(true),
                compute_mode: parent_info.compute_mode,
                temperature_c: parent_info.temperature_c,
                utilization_pct: parent_info.utilization_pct,
                slowdown_temp_c: parent_info.slowdown_temp_c,
                ..GpuInfo::new(index, "", "")
            };
            info.unreadable.extend(
                parent_unreadable
                    .iter()
                    .filter(|f| *f == field::TEMPERATURE || *f == field::UTILIZATION)
                    .cloned(),
            );
            match uuid {
                Ok(u) => {
                    info.device_id = u.clone();
                    info.uuid = u;
                }
                Err(e) => {
                    p.unreadable.push(field::UUID.to_string());
                    info.device_id = String::new();
                    info.failure = Some(GpuFailure::new(
                        failure_kind(&e),
                        format!(
                            "MIG instance {slot} of GPU {parent_index}: its uuid is unreadable \
                             (NVML: {e}), so CUDA cannot be pointed at it"
                        ),
                    ));
                }
            }
            let memory = self.memory(instance);
            match p.get(index, "", memory) {
                Some(m) => set_memory(&mut info, m),
                None => p.unreadable.extend(
                    [field::MEMORY_TOTAL, field::MEMORY_USED, field::MEMORY_FREE].map(String::from),
                ),
            }
            if let Some(e) = p.lost.take() {
                info.failure = Some(GpuFailure::new(
                    FailureKind::Lost,
                    format!("MIG instance {slot} of GPU {parent_index} is lost (NVML: {e})"),
                ));
            }
            let uuid = info.uuid.clone();
            self.add_processes(instance, index, &uuid, &mut p.unreadable, out);
            info.unreadable.extend(p.unreadable);
            out.gpus.push(info);
        }
        match (found, first_error) {
            (0, Some(e)) => Err(e),
            _ => Ok(found),
        }
    }
}

fn set_memory(info: &mut GpuInfo, m: Memory) {
    info.memory_total_mb = Some(m.total / MIB);
    info.memory_used_mb = Some(m.used / MIB);
    info.memory_free_mb = Some(m.free / MIB);
}

fn describe_failure(index: u32, e: &NvmlError, what: &str) -> String {
    match e {
        NvmlError::GpuLost => {
            format!("GPU {index} has fallen off the bus (NVML: {e}); a reboot recovers it")
        }
        NvmlError::NoPermission => format!(
            "GPU {index}: {what} (no permission); check the device files' permissions (/dev/nvidia*)"
        ),
        _ => format!("GPU {index}: {what} (NVML: {e})"),
    }
}

/// Whether NVML loaded but read nothing: GPUs exist and every one of them failed.
pub(crate) fn read_nothing(reading: &GpuReading) -> bool {
    !reading.gpus.is_empty() && reading.gpus.iter().all(|g| g.failure.is_some())
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
