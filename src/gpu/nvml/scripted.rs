//! A scripted stand-in for NVML (tests only): every call answers what the script says,
//! including the failures real drivers give (a lost GPU, no permission, a missing
//! symbol, MIG handles) and a call that blocks until the test opens a gate.

use super::api::{Memory, NvmlApi, NvmlDevice, NvmlResult, ProcessCall, ProcessUse};
use crate::gpu::types::ComputeMode;
use nvml_wrapper::error::NvmlError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A failure to answer with (NvmlError is not Clone, so the script keeps these).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fail {
    NotSupported,
    GpuLost,
    NoPermission,
    NotFound,
    Timeout,
    Unknown,
    /// The symbol is not in this driver's library (nvml-wrapper's FailedToLoadSymbol).
    MissingSymbol,
    /// NVML's own "function not found".
    FunctionNotFound,
    /// NVML_ERROR_ARGUMENT_VERSION_MISMATCH: the call exists but not for this struct.
    VersionMismatch,
}

impl Fail {
    fn error(&self, call: &str) -> NvmlError {
        match self {
            Fail::NotSupported => NvmlError::NotSupported,
            Fail::GpuLost => NvmlError::GpuLost,
            Fail::NoPermission => NvmlError::NoPermission,
            Fail::NotFound => NvmlError::NotFound,
            Fail::Timeout => NvmlError::Timeout,
            Fail::Unknown => NvmlError::Unknown,
            Fail::MissingSymbol => {
                NvmlError::FailedToLoadSymbol(format!("undefined symbol: nvml_{call}"))
            }
            Fail::FunctionNotFound => NvmlError::FunctionNotFound,
            Fail::VersionMismatch => NvmlError::UnexpectedVariant(25),
        }
    }
}

pub(crate) type Answer<T> = Result<T, Fail>;

/// Blocks the calls that wait on it until [`Gate::open`].
#[derive(Clone, Default)]
pub(crate) struct Gate {
    state: Arc<(Mutex<bool>, Condvar)>,
    /// Calls waiting now, and the most ever waiting at once.
    waiting: Arc<AtomicUsize>,
    most_waiting: Arc<AtomicUsize>,
}

impl Gate {
    pub fn open(&self) {
        let (lock, cvar) = &*self.state;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn most_waiting(&self) -> usize {
        self.most_waiting.load(Ordering::SeqCst)
    }

    fn pass(&self) {
        let now = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_waiting.fetch_max(now, Ordering::SeqCst);
        let (lock, cvar) = &*self.state;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cvar.wait(open).unwrap();
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One device (GPU or MIG instance) and what each call answers.
#[derive(Clone)]
pub(crate) struct ScriptedGpu {
    /// What getting the handle answers (Ok: the handle).
    pub handle: Answer<()>,
    pub uuid: Answer<String>,
    pub name: Answer<String>,
    pub memory_v2: Answer<Memory>,
    pub memory_v1: Answer<Memory>,
    pub temperature: Answer<u32>,
    pub slowdown: Answer<u32>,
    pub utilization: Answer<u32>,
    pub compute_mode: Answer<ComputeMode>,
    pub mig_enabled: Answer<bool>,
    pub max_mig: Answer<u32>,
    /// MIG slots: an instance, or what the slot answers (NotFound: empty).
    pub mig_slots: Vec<Answer<ScriptedGpu>>,
    pub processes_v3: Answer<Vec<ProcessUse>>,
    pub processes_v2: Answer<Vec<ProcessUse>>,
    pub processes_v1: Answer<Vec<ProcessUse>>,
    /// The call (by the names in the log) that waits on the gate first.
    pub block: Option<(&'static str, Gate)>,
}

pub(crate) const GIB: u64 = 1024 * 1024 * 1024;

impl ScriptedGpu {
    /// A healthy 16 GiB GPU with 1 GiB used, at 40 °C, no MIG support, no processes.
    pub fn healthy(index: u32) -> ScriptedGpu {
        let memory = Memory {
            total: 16 * GIB,
            used: GIB,
            free: 15 * GIB,
        };
        ScriptedGpu {
            handle: Ok(()),
            uuid: Ok(format!("GPU-{index:04}")),
            name: Ok("NVIDIA Scripted GPU".into()),
            memory_v2: Ok(memory),
            memory_v1: Ok(memory),
            temperature: Ok(40),
            slowdown: Ok(90),
            utilization: Ok(5),
            compute_mode: Ok(ComputeMode::Default),
            mig_enabled: Err(Fail::NotSupported),
            max_mig: Err(Fail::NotSupported),
            mig_slots: Vec::new(),
            processes_v3: Ok(Vec::new()),
            processes_v2: Ok(Vec::new()),
            processes_v1: Ok(Vec::new()),
            block: None,
        }
    }

    /// A MIG instance with `total_gib` of memory, `used_gib` of it used.
    pub fn mig_instance(uuid: &str, name: &str, total_gib: u64, used_gib: u64) -> ScriptedGpu {
        let memory = Memory {
            total: total_gib * GIB,
            used: used_gib * GIB,
            free: (total_gib - used_gib) * GIB,
        };
        ScriptedGpu {
            uuid: Ok(uuid.into()),
            name: Ok(name.into()),
            memory_v2: Ok(memory),
            memory_v1: Ok(memory),
            temperature: Err(Fail::NotSupported),
            slowdown: Err(Fail::NotSupported),
            utilization: Err(Fail::NotSupported),
            ..ScriptedGpu::healthy(0)
        }
    }

    /// Every call (the handle too) answers `fail`.
    pub fn failing(fail: Fail) -> ScriptedGpu {
        ScriptedGpu {
            handle: Err(fail),
            ..ScriptedGpu::healthy(0)
        }
    }

    /// Every call after the handle answers `fail`.
    pub fn all_calls_fail(fail: Fail) -> ScriptedGpu {
        ScriptedGpu {
            handle: Ok(()),
            uuid: Err(fail.clone()),
            name: Err(fail.clone()),
            memory_v2: Err(fail.clone()),
            memory_v1: Err(fail.clone()),
            temperature: Err(fail.clone()),
            slowdown: Err(fail.clone()),
            utilization: Err(fail.clone()),
            compute_mode: Err(fail.clone()),
            mig_enabled: Err(fail.clone()),
            max_mig: Err(fail.clone()),
            mig_slots: Vec::new(),
            processes_v3: Err(fail.clone()),
            processes_v2: Err(fail.clone()),
            processes_v1: Err(fail),
            block: None,
        }
    }
}

/// The whole library: driver version, GPU count, the GPUs, and a log of every call.
pub(crate) struct ScriptedNvml {
    pub driver: Answer<String>,
    pub count: Option<Answer<u32>>,
    pub gpus: Vec<ScriptedGpu>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ScriptedNvml {
    pub fn new(gpus: Vec<ScriptedGpu>) -> ScriptedNvml {
        ScriptedNvml {
            driver: Ok("550.54.14".into()),
            count: None,
            gpus,
            log: Arc::default(),
        }
    }
}

fn answer<T: Clone>(
    log: &Mutex<Vec<String>>,
    block: &Option<(&'static str, Gate)>,
    call: &str,
    a: &Answer<T>,
) -> NvmlResult<T> {
    log.lock().unwrap().push(call.to_string());
    if let Some((name, gate)) = block
        && *name == call
    {
        gate.pass();
    }
    a.clone().map_err(|f| f.error(call))
}

impl NvmlApi for ScriptedNvml {
    fn driver_version(&self) -> NvmlResult<String> {
        answer(&self.log, &None, "driver_version", &self.driver)
    }

    fn device_count(&self) -> NvmlResult<u32> {
        let count = self.count.clone().unwrap_or(Ok(self.gpus.len() as u32));
        answer(&self.log, &None, "device_count", &count)
    }

    fn device(&self, index: u32) -> NvmlResult<Box<dyn NvmlDevice + '_>> {
        let gpu = self.gpus.get(index as usize).ok_or(NvmlError::InvalidArg)?;
        answer(&self.log, &gpu.block, "device", &gpu.handle)?;
        Ok(Box::new(ScriptedDevice {
            gpu,
            log: &self.log,
        }))
    }
}

struct ScriptedDevice<'a> {
    gpu: &'a ScriptedGpu,
    log: &'a Mutex<Vec<String>>,
}

impl ScriptedDevice<'_> {
    fn answer<T: Clone>(&self, call: &str, a: &Answer<T>) -> NvmlResult<T> {
        answer(self.log, &self.gpu.block, call, a)
    }
}

impl NvmlDevice for ScriptedDevice<'_> {
    fn uuid(&self) -> NvmlResult<String> {
        self.answer("uuid", &self.gpu.uuid)
    }
    fn name(&self) -> NvmlResult<String> {
        self.answer("name", &self.gpu.name)
    }
    fn memory_v2(&self) -> NvmlResult<Memory> {
        self.answer("memory_v2", &self.gpu.memory_v2)
    }
    fn memory_v1(&self) -> NvmlResult<Memory> {
        self.answer("memory_v1", &self.gpu.memory_v1)
    }
    fn temperature(&self) -> NvmlResult<u32> {
        self.answer("temperature", &self.gpu.temperature)
    }
    fn slowdown_temperature(&self) -> NvmlResult<u32> {
        self.answer("slowdown", &self.gpu.slowdown)
    }
    fn utilization(&self) -> NvmlResult<u32> {
        self.answer("utilization", &self.gpu.utilization)
    }
    fn compute_mode(&self) -> NvmlResult<ComputeMode> {
        self.answer("compute_mode", &self.gpu.compute_mode)
    }
    fn mig_enabled(&self) -> NvmlResult<bool> {
        self.answer("mig_enabled", &self.gpu.mig_enabled)
    }
    fn max_mig_devices(&self) -> NvmlResult<u32> {
        self.answer("max_mig", &self.gpu.max_mig)
    }
    fn mig_device(&self, index: u32) -> NvmlResult<Box<dyn NvmlDevice + '_>> {
        let slot = self
            .gpu
            .mig_slots
            .get(index as usize)
            .cloned()
            .unwrap_or(Err(Fail::NotFound));
        let call = format!("mig_device({index})");
        self.answer(&call, &slot.as_ref().map(|_| ()).map_err(Clone::clone))?;
        let gpu = self.gpu.mig_slots[index as usize]
            .as_ref()
            .expect("answered Ok");
        Ok(Box::new(ScriptedDevice { gpu, log: self.log }))
    }
    fn processes(&self, call: ProcessCall) -> NvmlResult<Vec<ProcessUse>> {
        match call {
            ProcessCall::V3 => self.answer("processes_v3", &self.gpu.processes_v3),
            ProcessCall::V2 => self.answer("processes_v2", &self.gpu.processes_v2),
            ProcessCall::V1 => self.answer("processes_v1", &self.gpu.processes_v1),
        }
    }
}
