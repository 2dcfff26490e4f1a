//! The machine over the last minutes: a thread samples CPU, RAM and the GPUs every
//! [`SAMPLE_EVERY`] into a ring buffer, so the GPU panel shows history the moment it opens,
//! and `/api/status` answers from the latest sample without probing the GPUs per request.

use crate::resources::{Sampler, Snapshot};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Ten minutes of samples.
pub const KEPT: usize = 300;

/// One GPU in one sample: what its charts need.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuPoint {
    pub index: u32,
    /// "3", or "0:1" for MIG instance 1 of GPU 0.
    pub label: String,
    pub name: String,
    pub memory_used_mb: Option<u64>,
    pub memory_total_mb: Option<u64>,
    pub temperature_c: Option<f64>,
    pub utilization_pct: Option<f64>,
    /// Why it cannot be used, if it cannot.
    pub failure: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub time: u64,
    pub load_per_core: f64,
    #[serde(rename = "freeRamGB")]
    pub free_ram_gb: f64,
    pub gpus: Vec<GpuPoint>,
    /// Why the GPUs could not be read (their last readings are then kept without values).
    pub gpu_error: Option<String>,
}

impl Sample {
    pub fn of(snapshot: &Snapshot) -> Sample {
        Sample {
            time: snapshot.taken_ms,
            load_per_core: snapshot.load_per_core,
            free_ram_gb: snapshot.free_ram_gb,
            gpus: snapshot
                .gpu
                .gpus
                .iter()
                .map(|g| GpuPoint {
                    index: g.index,
                    label: match (g.parent_index, g.mig_index) {
                        (Some(parent), Some(mig)) => format!("{parent}:{mig}"),
                        _ => g.index.to_string(),
                    },
                    name: g.name.clone(),
                    memory_used_mb: g.memory_used_mb,
                    memory_total_mb: g.memory_total_mb,
                    temperature_c: g.temperature_c,
                    utilization_pct: g.utilization_pct,
                    failure: g.failure.as_ref().map(|f| f.to_string()),
                })
                .collect(),
            gpu_error: snapshot.gpu.error.clone(),
        }
    }
}

/// The last [`KEPT`] samples and the latest whole snapshot.
#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
    latest: Option<Snapshot>,
}

impl History {
    pub fn push(&mut self, snapshot: Snapshot) -> Sample {
        let sample = Sample::of(&snapshot);
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(sample.clone());
        self.latest = Some(snapshot);
        sample
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }

    pub fn latest(&self) -> Option<Snapshot> {
        self.latest.clone()
    }
}

pub type SharedHistory = Arc<Mutex<History>>;

/// Samples every [`SAMPLE_EVERY`] for as long as the process lives, handing each new sample
/// to `on_sample` (the event stream). The first sample is taken before this returns, so the
/// first `/api/status` has one.
pub fn start(
    mut sampler: Sampler,
    history: SharedHistory,
    on_sample: impl Fn(&Sample) + Send + 'static,
) {
    let first = sampler.sample_every(SAMPLE_EVERY);
    lock(&history).push(first);
    std::thread::Builder::new()
        .name("serve-sampler".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SAMPLE_EVERY);
                let snapshot = sampler.sample_every(SAMPLE_EVERY);
                let sample = lock(&history).push(snapshot);
                on_sample(&sample);
            }
        })
        .expect("a thread can be started");
}

/// The history, even if a thread panicked while holding it (it holds plain data).
pub fn lock(history: &SharedHistory) -> std::sync::MutexGuard<'_, History> {
    history.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_latest_samples_only() {
        let mut history = History::default();
        for t in 0..(KEPT as u64 + 5) {
            history.push(Snapshot {
                taken_ms: t,
                ..Default::default()
            });
        }
        let samples = history.samples();
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples[0].time, 5);
        assert_eq!(history.latest().unwrap().taken_ms, KEPT as u64 + 4);
    }

    #[test]
    fn a_sample_labels_mig_instances_by_parent() {
        let mut snapshot = Snapshot::default();
        let mut mig = crate::gpu::GpuInfo::new(9, "MIG-a", "A100 MIG 1g.5gb");
        mig.parent_index = Some(0);
        mig.mig_index = Some(1);
        mig.memory_used_mb = Some(100);
        snapshot.gpu.gpus = vec![crate::gpu::GpuInfo::new(1, "GPU-b", "T4"), mig];
        let sample = Sample::of(&snapshot);
        let labels: Vec<&str> = sample.gpus.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["1", "0:1"]);
        assert_eq!(sample.gpus[1].memory_used_mb, Some(100));
    }
}
