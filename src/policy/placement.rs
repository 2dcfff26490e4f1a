//! One GPU against one request: may the run use it at all (visibility, heat, readings), how
//! much it must find free there and reserve, and the environment that pins a run to its GPUs.

use super::Settings;
use crate::config::{Framework, MemoryLimit};
use crate::gpu::{ComputeMode, GpuInfo};

/// A GPU no run can ever use here: a permanent failure (lost, no permission, MIG instances
/// that cannot be listed) or the prohibited compute mode.
pub fn never_usable(gpu: &GpuInfo) -> bool {
    gpu.failure.as_ref().is_some_and(|f| f.kind.is_permanent())
        || gpu.compute_mode == ComputeMode::Prohibited
}

/// Why a GPU cannot take a run for reasons other than memory (these do not change when
/// another run starts or ends, so a later run may use what an earlier one cannot).
pub fn unusable(gpu: &GpuInfo, settings: &Settings) -> Option<String> {
    let index = gpu.index;
    if let Some(visible) = &settings.visible
        && visible.entry_for(gpu).is_none()
    {
        return Some(format!("GPU {index}: not in CUDA_VISIBLE_DEVICES"));
    }
    if let Some(failure) = &gpu.failure {
        return Some(format!(
            "GPU {index}: {}: {}",
            failure.kind.as_str(),
            failure.message
        ));
    }
    if gpu.compute_mode == ComputeMode::Prohibited {
        return Some(format!(
            "GPU {index}: compute mode is prohibited (no process may use it)"
        ));
    }
    if gpu.memory_free_mb.is_none() && (gpu.memory_reported() || settings.require_readings) {
        let hint = if gpu.memory_reported() {
            ""
        } else {
            " (it reports no memory, as unified-memory GPUs do: set gpu.requireReadings false to use it)"
        };
        return Some(format!("GPU {index}: free VRAM unreadable{hint}"));
    }
    let (max_c, _) = settings.thermal.for_gpu(gpu);
    match gpu.temperature_c {
        Some(t) if t >= max_c => Some(format!(
            "GPU {index}: {t:.0}°C ≥ gpu.maxTempC {max_c} (--gpu-max-temp)"
        )),
        None if settings.require_readings => Some(format!(
            "GPU {index}: temperature unreadable (set gpu.requireReadings false to accept)"
        )),
        _ => None,
    }
}

/// Per GPU: what a run must find free there, and what it reserves once placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// `max(gpu.minFreeVramMB, reservation)`.
    pub free_mb: u64,
    pub reserve_mb: u64,
}

/// A run's need on `gpu`: its memory limit (a share of this GPU, or a size), else
/// `gpu.minFreeVramMB`.
pub fn need_on(gpu: &GpuInfo, limit: Option<MemoryLimit>, min_free_mb: u64) -> Need {
    let reserve_mb = match limit {
        Some(limit) => limit.megabytes(gpu.memory_total_mb.unwrap_or(0)),
        None => min_free_mb,
    };
    Need {
        free_mb: reserve_mb.max(min_free_mb),
        reserve_mb,
    }
}

/// An inherited `CUDA_VISIBLE_DEVICES` (as inside a Slurm allocation): which GPUs backprop may
/// hand out, and in which form (an index stays an index, a UUID stays a UUID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visible {
    entries: Vec<String>,
}

impl Visible {
    pub fn parse(value: &str) -> Visible {
        Visible {
            entries: value
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// No GPU at all (`-1`, empty, or a list starting with an invalid index, which CUDA reads
    /// as "nothing from here on").
    pub fn is_none(&self) -> bool {
        self.entries
            .first()
            .is_none_or(|e| e.parse::<i64>().is_ok_and(|n| n < 0))
    }

    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(String::as_str)
            .take_while(|e| e.parse::<i64>().is_ok_and(|n| n >= 0) || e.parse::<i64>().is_err())
    }

    /// The entry naming `gpu`, as it should be handed on.
    pub fn entry_for(&self, gpu: &GpuInfo) -> Option<&str> {
        self.entries().find(|entry| match entry.parse::<u32>() {
            Ok(index) => index == gpu.index,
            Err(_) => !gpu.uuid.is_empty() && (gpu.uuid == *entry || gpu.uuid.starts_with(entry)),
        })
    }
}

/// The environment that pins a run to `devices` (as CUDA names them), plus the memory hints
/// when the run has a limit (`(MB, share of the GPU)`): framework-specific hints go to the
/// matching framework, or to every framework when it is unknown.
pub fn lease_env(
    devices: &[String],
    limit: Option<(u64, f64)>,
    framework: Framework,
) -> Vec<(String, String)> {
    let mut env = vec![("CUDA_VISIBLE_DEVICES".to_string(), devices.join(","))];
    if let Some((mb, fraction)) = limit {
        let fraction = format!("{:.3}", fraction.clamp(0.0, 1.0));
        env.push(("BACKPROP_GPU_MEMORY_LIMIT_MB".into(), mb.to_string()));
        env.push(("BACKPROP_GPU_MEMORY_FRACTION".into(), fraction.clone()));
        let known = matches!(
            framework,
            Framework::Pytorch | Framework::Tensorflow | Framework::Jax
        );
        if !known || framework == Framework::Jax {
            env.push(("XLA_PYTHON_CLIENT_MEM_FRACTION".into(), fraction));
        }
        if !known || framework == Framework::Tensorflow {
            env.push(("TF_FORCE_GPU_ALLOW_GROWTH".into(), "true".into()));
        }
    }
    env
}

/// A CPU-only run sees no GPU, whatever the machine has.
pub fn cpu_only_env() -> Vec<(String, String)> {
    vec![("CUDA_VISIBLE_DEVICES".to_string(), "-1".to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{gpu, settings};
    use std::collections::HashMap;

    #[test]
    fn memory_hints_match_the_framework() {
        let devices = vec!["1".to_string(), "0".to_string()];
        let env: HashMap<_, _> = lease_env(&devices, Some((8192, 0.2)), Framework::Jax)
            .into_iter()
            .collect();
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "1,0");
        assert_eq!(env["BACKPROP_GPU_MEMORY_LIMIT_MB"], "8192");
        assert_eq!(env["XLA_PYTHON_CLIENT_MEM_FRACTION"], "0.200");
        assert!(!env.contains_key("TF_FORCE_GPU_ALLOW_GROWTH"));
        let env: HashMap<_, _> = lease_env(&devices[..1], Some((8192, 0.2)), Framework::None)
            .into_iter()
            .collect();
        assert_eq!(env["TF_FORCE_GPU_ALLOW_GROWTH"], "true");
        assert_eq!(lease_env(&devices, None, Framework::Pytorch).len(), 1);
    }

    #[test]
    fn visible_devices_accept_indices_and_uuids_and_keep_their_form() {
        let gpus = [gpu(0, 1, 1.0), gpu(1, 1, 1.0)];
        let visible = Visible::parse("1, GPU-0");
        assert_eq!(visible.entry_for(&gpus[1]), Some("1"));
        assert_eq!(visible.entry_for(&gpus[0]), Some("GPU-0"));
        assert!(Visible::parse("-1").is_none());
        assert!(Visible::parse("").is_none());
        assert_eq!(Visible::parse("-1").entry_for(&gpus[0]), None);
        // CUDA stops at the first invalid index.
        assert_eq!(Visible::parse("0,-1,1").entry_for(&gpus[1]), None);
    }

    #[test]
    fn hot_unreadable_and_hidden_gpus_are_unusable_with_reasons() {
        let mut s = settings();
        assert_eq!(unusable(&gpu(0, 9000, 40.0), &s), None);
        let hot = unusable(&gpu(0, 9000, 90.0), &s).unwrap();
        assert!(hot.contains("90°C ≥ gpu.maxTempC 85"), "{hot}");
        let mut blind = gpu(0, 9000, 40.0);
        blind.temperature_c = None;
        assert!(
            unusable(&blind, &s)
                .unwrap()
                .contains("temperature unreadable")
        );
        s.require_readings = false;
        assert_eq!(unusable(&blind, &s), None);
        s.visible = Some(Visible::parse("1"));
        assert!(
            unusable(&blind, &s)
                .unwrap()
                .contains("not in CUDA_VISIBLE_DEVICES")
        );
    }

    #[test]
    fn the_need_is_the_limit_on_this_gpu_or_the_minimum() {
        let mut g = gpu(0, 9000, 40.0);
        g.memory_total_mb = Some(10_000);
        assert_eq!(
            need_on(&g, Some(MemoryLimit::Percent(80.0)), 2500),
            Need {
                free_mb: 8000,
                reserve_mb: 8000
            }
        );
        assert_eq!(
            need_on(&g, Some(MemoryLimit::Gigabytes(1.0)), 2500),
            Need {
                free_mb: 2500,
                reserve_mb: 1024
            }
        );
        assert_eq!(
            need_on(&g, None, 2500),
            Need {
                free_mb: 2500,
                reserve_mb: 2500
            }
        );
    }
}
