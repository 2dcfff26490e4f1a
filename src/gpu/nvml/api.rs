//! The few NVML calls the probe makes, behind two small traits, so the probe's logic
//! (fallbacks, MIG, failures) can be driven by a scripted stand-in in tests.
//!
//! [`RealNvml`] implements them with nvml-wrapper. Versioned calls are separate
//! methods (`memory_v2` / `memory_v1`, [`ProcessCall`]) so the probe decides which one
//! to use; the older ones go through the raw library (`Nvml::lib()`), whose symbols are
//! each looked up when the library loads and may be missing on an old or a new driver.

use super::super::types::ComputeMode;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{
    ComputeMode as NvmlComputeMode, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::{NvmlError, nvml_try};
use nvml_wrapper_sys::bindings as sys;
use std::os::raw::c_uint;

pub(crate) type NvmlResult<T> = Result<T, NvmlError>;

/// Bytes of device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Memory {
    pub total: u64,
    pub used: u64,
    pub free: u64,
}

/// Which `nvmlDeviceGetComputeRunningProcesses` to call: `_v3` (current drivers), `_v2`
/// (R450–R510) or the unversioned v1 (older still).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProcessCall {
    V3,
    V2,
    V1,
}

impl ProcessCall {
    /// The call to try when this one's symbol is missing.
    pub fn older(self) -> Option<ProcessCall> {
        match self {
            ProcessCall::V3 => Some(ProcessCall::V2),
            ProcessCall::V2 => Some(ProcessCall::V1),
            ProcessCall::V1 => None,
        }
    }
}

/// One compute process: pid and used bytes (None when the driver does not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcessUse {
    pub pid: u32,
    pub used_bytes: Option<u64>,
}

/// The library as a whole.
pub(crate) trait NvmlApi: Send {
    fn driver_version(&self) -> NvmlResult<String>;
    fn device_count(&self) -> NvmlResult<u32>;
    fn device(&self, index: u32) -> NvmlResult<Box<dyn NvmlDevice + '_>>;
}

/// One device handle: a GPU, or a MIG instance of one.
pub(crate) trait NvmlDevice {
    fn uuid(&self) -> NvmlResult<String>;
    fn name(&self) -> NvmlResult<String>;
    /// `nvmlDeviceGetMemoryInfo_v2` (R510 and later).
    fn memory_v2(&self) -> NvmlResult<Memory>;
    /// `nvmlDeviceGetMemoryInfo` (every driver).
    fn memory_v1(&self) -> NvmlResult<Memory>;
    /// Degrees C.
    fn temperature(&self) -> NvmlResult<u32>;
    /// The slowdown threshold, degrees C.
    fn slowdown_temperature(&self) -> NvmlResult<u32>;
    /// GPU utilisation, percent.
    fn utilization(&self) -> NvmlResult<u32>;
    fn compute_mode(&self) -> NvmlResult<ComputeMode>;
    /// Whether MIG mode is currently on.
    fn mig_enabled(&self) -> NvmlResult<bool>;
    /// How many MIG instance slots the GPU has (not all need be in use).
    fn max_mig_devices(&self) -> NvmlResult<u32>;
    /// The MIG instance in slot `index`; `NotFound` for an empty slot.
    fn mig_device(&self, index: u32) -> NvmlResult<Box<dyn NvmlDevice + '_>>;
    fn processes(&self, call: ProcessCall) -> NvmlResult<Vec<ProcessUse>>;
}

/// NVML through nvml-wrapper.
pub(crate) struct RealNvml {
    pub nvml: Nvml,
}

impl NvmlApi for RealNvml {
    fn driver_version(&self) -> NvmlResult<String> {
        self.nvml.sys_driver_version()
    }

    fn device_count(&self) -> NvmlResult<u32> {
        self.nvml.device_count()
    }

    fn device(&self, index: u32) -> NvmlResult<Box<dyn NvmlDevice + '_>> {
        let device = self.nvml.device_by_index(index)?;
        Ok(Box::new(RealDevice {
            nvml: &self.nvml,
            device,
        }))
    }
}

struct RealDevice<'n> {
    nvml: &'n Nvml,
    device: nvml_wrapper::Device<'n>,
}

/// A symbol of the raw library, or nvml-wrapper's error for a missing one.
fn symbol<T, E: std::fmt::Display>(sym: &Result<T, E>) -> NvmlResult<&T> {
    sym.as_ref()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))
}

impl RealDevice<'_> {
    fn handle(&self) -> sys::nvmlDevice_t {
        // SAFETY: the handle comes from NVML and stays valid while `self.nvml` lives.
        unsafe { self.device.handle() }
    }
}

impl NvmlDevice for RealDevice<'_> {
    fn uuid(&self) -> NvmlResult<String> {
        self.device.uuid()
    }

    fn name(&self) -> NvmlResult<String> {
        self.device.name()
    }

    fn memory_v2(&self) -> NvmlResult<Memory> {
        let m = self.device.memory_info()?;
        Ok(Memory {
            total: m.total,
            used: m.used,
            free: m.free,
        })
    }

    fn memory_v1(&self) -> NvmlResult<Memory> {
        let sym = symbol(&self.nvml.lib().nvmlDeviceGetMemoryInfo)?;
        let mut m = sys::nvmlMemory_t {
            total: 0,
            free: 0,
            used: 0,
        };
        // SAFETY: a valid handle and a pointer to a struct of the type the call fills.
        nvml_try(unsafe { sym(self.handle(), &mut m) })?;
        Ok(Memory {
            total: m.total,
            used: m.used,
            free: m.free,
        })
    }

    fn temperature(&self) -> NvmlResult<u32> {
        self.device.temperature(TemperatureSensor::Gpu)
    }

    fn slowdown_temperature(&self) -> NvmlResult<u32> {
        self.device
            .temperature_threshold(TemperatureThreshold::Slowdown)
    }

    fn utilization(&self) -> NvmlResult<u32> {
        self.device.utilization_rates().map(|u| u.gpu)
    }

    fn compute_mode(&self) -> NvmlResult<ComputeMode> {
        Ok(match self.device.compute_mode()? {
            NvmlComputeMode::Default => ComputeMode::Default,
            NvmlComputeMode::ExclusiveProcess | NvmlComputeMode::ExclusiveThread => {
                ComputeMode::ExclusiveProcess
            }
            NvmlComputeMode::Prohibited => ComputeMode::Prohibited,
        })
    }

    fn mig_enabled(&self) -> NvmlResult<bool> {
        let mode = self.device.mig_mode()?;
        Ok(mode.current == sys::NVML_DEVICE_MIG_ENABLE)
    }

    fn max_mig_devices(&self) -> NvmlResult<u32> {
        self.device.mig_device_count()
    }

    fn mig_device(&self, index: u32) -> NvmlResult<Box<dyn NvmlDevice + '_>> {
        let device = self.device.mig_device_by_index(index)?;
        Ok(Box::new(RealDevice {
            nvml: self.nvml,
            device,
        }))
    }

    fn processes(&self, call: ProcessCall) -> NvmlResult<Vec<ProcessUse>> {
        let from_wrapper = |list: Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>| {
            list.into_iter()
                .map(|p| ProcessUse {
                    pid: p.pid,
                    used_bytes: match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    },
                })
                .collect()
        };
        match call {
            ProcessCall::V3 => self.device.running_compute_processes().map(from_wrapper),
            ProcessCall::V2 => self.device.running_compute_processes_v2().map(from_wrapper),
            ProcessCall::V1 => self.processes_v1(),
        }
    }
}

impl RealDevice<'_> {
    /// `nvmlDeviceGetComputeRunningProcesses` (v1 records: pid and used memory).
    fn processes_v1(&self) -> NvmlResult<Vec<ProcessUse>> {
        let sym = symbol(&self.nvml.lib().nvmlDeviceGetComputeRunningProcesses)?;
        let empty = sys::nvmlProcessInfo_v1_t {
            pid: 0,
            usedGpuMemory: 0,
        };
        let mut count: c_uint = 0;
        // SAFETY: a count query (null array) on a valid handle.
        let code = unsafe { sym(self.handle(), &mut count, std::ptr::null_mut()) };
        if code != sys::nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE {
            // Success means no processes.
            return nvml_try(code).map(|_| Vec::new());
        }
        // Room for processes started since the count.
        count += 5;
        let mut records = vec![empty; count as usize];
        // SAFETY: `records` holds `count` records of the type the call fills.
        nvml_try(unsafe { sym(self.handle(), &mut count, records.as_mut_ptr()) })?;
        records.truncate(count as usize);
        Ok(records
            .into_iter()
            .map(|p| ProcessUse {
                pid: p.pid,
                // NVML_VALUE_NOT_AVAILABLE (-1) as an unsigned long long.
                used_bytes: (p.usedGpuMemory != u64::MAX).then_some(p.usedGpuMemory),
            })
            .collect())
    }
}
