//! Resource snapshots (CPU, RAM, GPUs), the Sampler that takes them, and the governor's
//! start check as a pure function over a snapshot.

use serde::Serialize;
use std::time::Duration;

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
    /// The devices runs can be placed on: GPUs, and MIG instances in place of a GPU in
    /// MIG mode. A device with a `failure` must not be used. After a failed read these
    /// are the devices of the last good reading, without measurements, each failed with
    /// the read's error (kind `timeout` for a read that took too long).
    pub gpus: Vec<crate::gpu::GpuInfo>,
    pub processes: Vec<crate::gpu::GpuProcess>,
    /// When `gpus` and `processes` were read (ms since the epoch, the read's end); None
    /// when no read has succeeded yet.
    pub taken_ms: Option<u64>,
    /// Why no placement may be made from this state: the last read failed, or the last
    /// good one is stale (older than 3 poll intervals, governor only). Runs that need
    /// GPUs wait while this is set.
    pub error: Option<String>,
    /// Why a preferred probe was not used (e.g. NVML could not load) and what the
    /// reading itself notes (e.g. per-process memory not read on this driver), for
    /// `status`; several are joined by "; ".
    pub note: Option<String>,
}

impl Default for GpuState {
    fn default() -> Self {
        GpuState {
            probe: crate::gpu::ProbeKind::None,
            gpus: Vec::new(),
            processes: Vec::new(),
            taken_ms: None,
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
            "free RAM {:.1} GB is below minFreeRamGB {} (--min-free-ram)",
            snapshot.free_ram_gb, limits.min_free_ram_gb
        ));
    }
    if snapshot.load_per_core > limits.max_cpu_load {
        return Verdict::Wait(format!(
            "CPU load {:.2} per core is above maxCpuLoad {} (--max-cpu-load)",
            snapshot.load_per_core, limits.max_cpu_load
        ));
    }
    Verdict::Go
}

/// Reads CPU load, RAM and the GPUs. The GPUs are read on a thread of their own, each
/// read bounded (gpu.probeTimeout), so a hung driver never holds up CPU and RAM.
pub struct Sampler {
    system: Result<sysinfo::System, String>,
    gpu: Option<crate::gpu::GpuReader>,
    gpu_kind: crate::gpu::ProbeKind,
    gpu_note: Option<String>,
    /// Set when the configured probe (not `auto`) could not be opened at all.
    gpu_open_error: Option<String>,
    /// The last good GPU reading and when it was taken.
    last: Option<(crate::gpu::GpuReading, u64)>,
    /// The last read's error, until a read succeeds.
    failed: Option<crate::gpu::ProbeError>,
}

impl Sampler {
    /// `probe` is the `gpu.probe` setting (`auto`, `nvml`, `nvidia-smi`, `none`).
    pub fn new(probe: &str, probe_timeout: Duration) -> Sampler {
        let selected = crate::gpu::open_probe(probe, probe_timeout);
        let explicit = !matches!(probe, "auto" | "none");
        Sampler::from_selected(selected, explicit)
    }

    /// A sampler over a probe already chosen; `explicit`: the user asked for this probe
    /// (not `auto` or `none`), so a missing one is an error rather than CPU only.
    pub fn from_selected(selected: crate::gpu::Selected, explicit: bool) -> Sampler {
        let gpu_open_error = (explicit && selected.probe.is_none()).then(|| {
            selected
                .note
                .clone()
                .unwrap_or_else(|| "the configured GPU probe is not available".to_string())
        });
        Sampler {
            gpu_open_error,
            system: sysinfo::System::new().map_err(|e| e.to_string()),
            gpu: selected.probe,
            gpu_kind: selected.kind,
            gpu_note: selected.note,
            last: None,
            failed: None,
        }
    }

    /// CPU and RAM only.
    pub fn without_gpus() -> Sampler {
        Sampler::new("none", Duration::from_secs(1))
    }

    /// A snapshot with a fresh GPU reading (waiting for it up to the probe's bound): for
    /// one-shot commands.
    pub fn sample(&mut self) -> Snapshot {
        self.sample_with(None)
    }

    /// CPU and RAM now, the GPUs not read yet (a first reading may take up to the probe's
    /// bound): enough for CPU runs, while GPU runs wait for the first full sample.
    pub fn sample_machine_only(&mut self) -> Snapshot {
        let mut snapshot = Snapshot {
            taken_ms: crate::clock::now_ms(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            ..Default::default()
        };
        self.sample_cpu_and_ram(&mut snapshot);
        snapshot.gpu = GpuState {
            probe: self.gpu_kind,
            note: self.gpu_note.clone(),
            error: match &self.gpu {
                Some(_) => Some(NOT_READ_YET.to_string()),
                None => self.gpu_open_error.clone(),
            },
            ..Default::default()
        };
        snapshot
    }

    /// A snapshot for sampling every `interval`: CPU and RAM now; the GPUs as read by a
    /// read that answers within `interval`, else as last read. The very first GPU read
    /// is waited for (up to the probe's bound). A GPU reading older than three
    /// intervals is an error ("stale"), so no placement is made from it.
    pub fn sample_every(&mut self, interval: Duration) -> Snapshot {
        self.sample_with(Some(interval))
    }

    fn sample_with(&mut self, interval: Option<Duration>) -> Snapshot {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut snapshot = Snapshot {
            taken_ms: crate::clock::now_ms(),
            cpus,
            ..Default::default()
        };
        // The GPU read runs while CPU and RAM are read.
        let started = self.gpu.as_mut().map(|r| r.start());
        self.sample_cpu_and_ram(&mut snapshot);
        snapshot.gpu = self.gpu_state(started, interval);
        snapshot
    }

    fn sample_cpu_and_ram(&mut self, snapshot: &mut Snapshot) {
        const GB: f64 = 1024.0 * 1024.0 * 1024.0;
        match &mut self.system {
            Ok(system) => {
                system.refresh_memory();
                snapshot.free_ram_gb = system.available_memory() as f64 / GB;
                snapshot.total_ram_gb = system.total_memory() as f64 / GB;
                match sysinfo::System::load_average() {
                    Ok(load) => snapshot.load_per_core = load.one / snapshot.cpus as f64,
                    Err(e) => snapshot.error = Some(format!("load average: {e}")),
                }
            }
            Err(e) => snapshot.error = Some(e.clone()),
        }
    }

    fn gpu_state(
        &mut self,
        started: Option<Result<(), crate::gpu::ProbeError>>,
        interval: Option<Duration>,
    ) -> GpuState {
        let mut state = GpuState {
            probe: self.gpu_kind,
            note: self.gpu_note.clone(),
            ..Default::default()
        };
        let Some(reader) = &mut self.gpu else {
            state.error = self.gpu_open_error.clone();
            return state;
        };
        let answer = match started {
            Some(Err(e)) => Some(Err(e)),
            _ => {
                let wait = match interval {
                    Some(interval) if self.last.is_some() || self.failed.is_some() => interval,
                    _ => reader.bound(),
                };
                reader
                    .poll(wait)
                    .map(|(result, at)| result.map(|r| (r, at)))
            }
        };
        match answer {
            Some(Ok(reading)) => {
                self.last = Some(reading);
                self.failed = None;
            }
            Some(Err(e)) => self.failed = Some(e),
            None => {} // still reading: the last answer stands
        }
        let now = crate::clock::now_ms();
        if let Some((reading, at)) = &self.last {
            state.taken_ms = Some(*at);
            let notes = self.gpu_note.iter().chain(reading.notes.iter());
            let notes: Vec<&str> = notes.map(String::as_str).collect();
            state.note = (!notes.is_empty()).then(|| notes.join("; "));
            match &self.failed {
                Some(e) => {
                    let kind = if e.is_timeout() {
                        crate::gpu::FailureKind::Timeout
                    } else {
                        crate::gpu::FailureKind::Other
                    };
                    let failure = crate::gpu::GpuFailure::new(kind, e.to_string());
                    state.gpus = reading
                        .gpus
                        .iter()
                        .map(|g| g.without_readings(failure.clone()))
                        .collect();
                }
                None => {
                    state.gpus = reading.gpus.clone();
                    state.processes = reading.processes.clone();
                }
            }
        }
        if let Some(e) = &self.failed {
            state.error = Some(e.to_string());
        } else if self.last.is_none() {
            state.error = Some("no GPU reading yet".to_string());
        } else if let (Some(interval), Some(at)) = (interval, state.taken_ms) {
            let age = Duration::from_millis(now.saturating_sub(at));
            if age > interval * STALE_AFTER_INTERVALS {
                state.error = Some(format!(
                    "GPU readings are stale (last one {}s ago)",
                    age.as_secs()
                ));
            }
        }
        state
    }
}

/// The GPU error of a snapshot taken before the first GPU reading.
pub const NOT_READ_YET: &str = "no GPU reading yet";

/// A GPU reading older than this many poll intervals is stale.
pub const STALE_AFTER_INTERVALS: u32 = 3;

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
        // The key and the flag that change each limit are both named.
        assert_eq!(
            check(&machine(1.5, 0.5), &limits),
            Verdict::Wait("free RAM 1.5 GB is below minFreeRamGB 4 (--min-free-ram)".into())
        );
        assert_eq!(
            check(&machine(8.0, 6.65), &limits),
            Verdict::Wait("CPU load 6.65 per core is above maxCpuLoad 2 (--max-cpu-load)".into())
        );
    }

    /// A probe whose reads follow a script: each read takes the next step (the last one
    /// repeats): sleep this long, then answer.
    struct Steps {
        steps: std::sync::Arc<std::sync::Mutex<Vec<Step>>>,
    }

    /// Sleep this many ms, then answer.
    type Step = (u64, Result<GpuReading, ProbeError>);

    use crate::gpu::{GpuInfo, GpuProbe, GpuReader, GpuReading, ProbeError, ProbeKind, Selected};

    impl GpuProbe for Steps {
        fn kind(&self) -> ProbeKind {
            ProbeKind::Nvml
        }
        fn read(&mut self) -> Result<GpuReading, ProbeError> {
            let (sleep_ms, answer) = {
                let mut steps = self.steps.lock().unwrap();
                if steps.len() > 1 {
                    steps.remove(0)
                } else {
                    steps[0].clone()
                }
            };
            std::thread::sleep(Duration::from_millis(sleep_ms));
            answer
        }
    }

    fn one_gpu() -> GpuReading {
        GpuReading {
            gpus: vec![GpuInfo {
                temperature_c: Some(50.0),
                memory_free_mb: Some(1000),
                ..GpuInfo::new(0, "GPU-0", "Fake")
            }],
            processes: vec![crate::gpu::GpuProcess {
                pid: 1,
                gpu_uuid: "GPU-0".into(),
                used_mb: Some(1),
            }],
            notes: vec!["a note".into()],
        }
    }

    fn sampler(steps: Vec<Step>, bound_ms: u64) -> Sampler {
        let probe = Steps {
            steps: std::sync::Arc::new(std::sync::Mutex::new(steps)),
        };
        Sampler::from_selected(
            Selected {
                probe: Some(GpuReader::new(
                    Box::new(probe),
                    Duration::from_millis(bound_ms),
                )),
                kind: ProbeKind::Nvml,
                note: Some("chosen".into()),
            },
            false,
        )
    }

    #[test]
    fn a_good_reading_carries_its_time_and_notes() {
        let mut s = sampler(vec![(0, Ok(one_gpu()))], 2000);
        let before = crate::clock::now_ms();
        let snap = s.sample();
        assert_eq!(snap.gpu.error, None);
        assert_eq!(snap.gpu.gpus, one_gpu().gpus);
        assert_eq!(snap.gpu.processes.len(), 1);
        assert!(snap.gpu.taken_ms.unwrap() >= before);
        assert_eq!(snap.gpu.note.as_deref(), Some("chosen; a note"));
        assert_eq!(snap.gpu.probe, ProbeKind::Nvml);
    }

    #[test]
    fn a_hung_gpu_never_holds_up_cpu_and_ram() {
        // The first read answers, every later one hangs for 3 s.
        let mut s = sampler(vec![(0, Ok(one_gpu())), (3000, Ok(one_gpu()))], 300);
        let interval = Duration::from_millis(50);
        assert_eq!(s.sample_every(interval).gpu.error, None);
        let t0 = std::time::Instant::now();
        let mut errors = Vec::new();
        while t0.elapsed() < Duration::from_millis(600) {
            let t = std::time::Instant::now();
            let snap = s.sample_every(interval);
            assert!(
                t.elapsed() < Duration::from_millis(200),
                "{:?}",
                t.elapsed()
            );
            assert!(snap.total_ram_gb > 0.0);
            assert_eq!(snap.error, None);
            errors.push(snap.gpu.error.clone());
            if let Some(e) = &snap.gpu.error
                && e.contains("stale")
            {
                // The stale reading is still shown, with its time.
                assert_eq!(snap.gpu.gpus[0].temperature_c, Some(50.0));
                assert!(snap.gpu.taken_ms.is_some());
                assert!(e.starts_with("GPU readings are stale (last one "), "{e}");
            }
            if let Some(e) = &snap.gpu.error
                && (e.contains("did not answer") || e.contains("has not returned"))
            {
                // Timed out: the devices are kept, without numbers, failed `timeout`.
                let g = &snap.gpu.gpus[0];
                assert_eq!(g.temperature_c, None);
                assert_eq!(
                    g.failure.as_ref().unwrap().kind,
                    crate::gpu::FailureKind::Timeout
                );
                assert!(snap.gpu.processes.is_empty());
            }
        }
        let text: Vec<String> = errors.iter().flatten().cloned().collect();
        assert!(text.iter().any(|e| e.contains("stale")), "{errors:?}");
        assert!(
            text.iter()
                .any(|e| e.contains("did not answer within 300ms")),
            "{errors:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("has not returned")),
            "{errors:?}"
        );
        assert!(errors[0].is_none(), "fresh enough at first: {errors:?}");
    }

    #[test]
    fn a_failed_read_is_an_error_until_a_read_succeeds() {
        let failed = Err(ProbeError::Nvml("boom".into()));
        let mut s = sampler(
            vec![(0, Ok(one_gpu())), (0, failed), (0, Ok(one_gpu()))],
            2000,
        );
        assert_eq!(s.sample().gpu.error, None);
        let snap = s.sample();
        assert!(snap.gpu.error.unwrap().contains("boom"));
        assert_eq!(
            snap.gpu.gpus[0].failure.as_ref().unwrap().kind,
            crate::gpu::FailureKind::Other
        );
        assert_eq!(s.sample().gpu.error, None);
        // No reading ever: no devices, the error.
        let mut s = sampler(vec![(0, Err(ProbeError::Nvml("never".into())))], 2000);
        let snap = s.sample_every(Duration::from_millis(50));
        assert!(snap.gpu.gpus.is_empty());
        assert!(snap.gpu.error.unwrap().contains("never"));
    }

    #[test]
    fn a_real_sample_is_plausible() {
        let s = Sampler::without_gpus().sample();
        assert_eq!(s.error, None);
        assert!(s.cpus >= 1 && s.total_ram_gb > 0.0 && s.free_ram_gb <= s.total_ram_gb);
    }
}
