//! Choosing GPUs for a run: the GPU(s) with the most *effective* free VRAM that meet the
//! thresholds, where effective free = reported free − what live runs placed there reserved
//! and have not allocated yet (so two runs started together never both take the last GPU).

use crate::gpu::{GpuInfo, GpuProcess};
use std::collections::HashMap;

/// A live run's claim on GPUs, from the shared ledger (the store).
#[derive(Clone, Debug, PartialEq)]
pub struct Reservation {
    pub run_id: String,
    pub gpu_uuids: Vec<String>,
    /// Reserved per GPU.
    pub reserved_mb: u64,
    /// The run's process group, to find what it has already allocated.
    pub pgid: Option<u32>,
}

/// What a run asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub count: usize,
    pub min_free_mb: u64,
    pub max_temp_c: f64,
    /// GPU indices this process may hand out (an inherited CUDA_VISIBLE_DEVICES); None = all.
    pub allowed: Option<Vec<u32>>,
    /// Refuse GPUs whose temperature cannot be read.
    pub require_readings: bool,
}

/// MB reserved on each GPU (by uuid) and not yet allocated by the run holding it.
pub fn outstanding(
    reservations: &[Reservation],
    processes: &[GpuProcess],
    group_of: impl Fn(u32) -> Option<u32>,
) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for r in reservations {
        for uuid in &r.gpu_uuids {
            let used: u64 = match r.pgid {
                Some(pgid) => processes
                    .iter()
                    .filter(|p| &p.gpu_uuid == uuid && group_of(p.pid) == Some(pgid))
                    .filter_map(|p| p.used_mb)
                    .sum(),
                None => 0,
            };
            *out.entry(uuid.clone()).or_default() += r.reserved_mb.saturating_sub(used);
        }
    }
    out
}

/// Why one GPU cannot take the run, or its effective free MB.
fn effective_free(
    gpu: &GpuInfo,
    outstanding: &HashMap<String, u64>,
    req: &Request,
) -> Result<u64, String> {
    if let Some(allowed) = &req.allowed
        && !allowed.contains(&gpu.index)
    {
        return Err(format!("GPU {}: not in CUDA_VISIBLE_DEVICES", gpu.index));
    }
    let Some(free) = gpu.memory_free_mb else {
        return Err(format!("GPU {}: free VRAM unreadable", gpu.index));
    };
    match gpu.temperature_c {
        Some(t) if t >= req.max_temp_c => {
            return Err(format!(
                "GPU {}: {t:.0}°C ≥ gpu.maxTempC {}",
                gpu.index, req.max_temp_c
            ));
        }
        None if req.require_readings => {
            return Err(format!(
                "GPU {}: temperature unreadable (set gpu.requireReadings false to accept)",
                gpu.index
            ));
        }
        _ => {}
    }
    let reserved = outstanding.get(&gpu.uuid).copied().unwrap_or(0);
    let effective = free.saturating_sub(reserved);
    if effective < req.min_free_mb {
        let held = if reserved > 0 {
            format!(" ({reserved} MB reserved by other runs)")
        } else {
            String::new()
        };
        return Err(format!(
            "GPU {}: {effective} MB free{held}, needs gpu.minFreeVramMB {}",
            gpu.index, req.min_free_mb
        ));
    }
    Ok(effective)
}

/// The indices of the chosen GPUs, most effective free VRAM first; or why not, per GPU.
pub fn choose(
    gpus: &[GpuInfo],
    outstanding: &HashMap<String, u64>,
    req: &Request,
) -> Result<Vec<u32>, String> {
    if gpus.is_empty() {
        return Err("no GPU found".into());
    }
    let mut eligible = Vec::new();
    let mut refusals = Vec::new();
    for gpu in gpus {
        match effective_free(gpu, outstanding, req) {
            Ok(free) => eligible.push((free, gpu.index)),
            Err(why) => refusals.push(why),
        }
    }
    if eligible.len() < req.count {
        let wanted = if req.count == 1 {
            "a GPU".to_string()
        } else {
            format!("{} GPUs", req.count)
        };
        return Err(format!("needs {wanted}: {}", refusals.join("; ")));
    }
    eligible.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(eligible
        .into_iter()
        .take(req.count)
        .map(|(_, index)| index)
        .collect())
}

/// The environment that pins a run to its GPUs, plus SPEC's memory hints when the run has a
/// limit (`(MB, fraction of the GPU)`). Framework-specific hints go to the matching
/// framework, or to every framework when it is unknown.
pub fn lease_env(
    gpus: &[u32],
    limit: Option<(u64, f64)>,
    framework: &str,
) -> Vec<(String, String)> {
    let indices: Vec<String> = gpus.iter().map(u32::to_string).collect();
    let mut env = vec![("CUDA_VISIBLE_DEVICES".to_string(), indices.join(","))];
    if let Some((mb, fraction)) = limit {
        let fraction = format!("{:.3}", fraction.clamp(0.0, 1.0));
        env.push(("BACKPROP_GPU_MEMORY_LIMIT_MB".into(), mb.to_string()));
        env.push(("BACKPROP_GPU_MEMORY_FRACTION".into(), fraction.clone()));
        let unknown = !matches!(framework, "pytorch" | "tensorflow" | "jax");
        if unknown || framework == "jax" {
            env.push(("XLA_PYTHON_CLIENT_MEM_FRACTION".into(), fraction));
        }
        if unknown || framework == "tensorflow" {
            env.push(("TF_FORCE_GPU_ALLOW_GROWTH".into(), "true".into()));
        }
    }
    env
}

/// GPU indices allowed by an inherited CUDA_VISIBLE_DEVICES (indices or UUIDs, as Slurm and
/// users write it). `-1` or empty allows none.
pub fn allowed_by_visible_devices(value: &str, gpus: &[GpuInfo]) -> Vec<u32> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|entry| match entry.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n as u32),
            Ok(_) => None,
            Err(_) => gpus
                .iter()
                .find(|g| g.uuid == entry)
                .or_else(|| gpus.iter().find(|g| g.uuid.starts_with(entry)))
                .map(|g| g.index),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, free_mb: u64, temp: f64) -> GpuInfo {
        GpuInfo {
            index,
            uuid: format!("GPU-{index}"),
            name: "Fake".into(),
            memory_total_mb: Some(40_000),
            memory_used_mb: Some(40_000 - free_mb),
            memory_free_mb: Some(free_mb),
            temperature_c: Some(temp),
            utilization_pct: Some(0.0),
            unreadable: vec![],
            ..Default::default()
        }
    }

    fn request(count: usize) -> Request {
        Request {
            count,
            min_free_mb: 2500,
            max_temp_c: 85.0,
            allowed: None,
            require_readings: true,
        }
    }

    #[test]
    fn picks_the_gpu_with_the_most_free_memory() {
        let gpus = [gpu(0, 10_000, 40.0), gpu(1, 20_000, 40.0)];
        assert_eq!(choose(&gpus, &HashMap::new(), &request(1)), Ok(vec![1]));
        assert_eq!(choose(&gpus, &HashMap::new(), &request(2)), Ok(vec![1, 0]));
    }

    #[test]
    fn reservations_not_yet_allocated_count_against_a_gpu() {
        let gpus = [gpu(0, 10_000, 40.0), gpu(1, 20_000, 40.0)];
        let first = Reservation {
            run_id: "a".into(),
            gpu_uuids: vec!["GPU-1".into()],
            reserved_mb: 12_000,
            pgid: None,
        };
        let held = outstanding(std::slice::from_ref(&first), &[], |_| None);
        assert_eq!(choose(&gpus, &held, &request(1)), Ok(vec![0]));
        // Once the run has allocated its memory, the reported free already shows it.
        let started = Reservation {
            pgid: Some(77),
            ..first
        };
        let procs = [GpuProcess {
            pid: 78,
            gpu_uuid: "GPU-1".into(),
            used_mb: Some(12_000),
        }];
        let held = outstanding(&[started], &procs, |pid| (pid == 78).then_some(77));
        assert_eq!(held["GPU-1"], 0);
    }

    #[test]
    fn hot_full_unreadable_and_hidden_gpus_are_refused_with_reasons() {
        let mut unreadable = gpu(3, 30_000, 0.0);
        unreadable.temperature_c = None;
        let gpus = [
            gpu(0, 1_000, 40.0),
            gpu(1, 30_000, 90.0),
            gpu(2, 30_000, 40.0),
            unreadable,
        ];
        let req = Request {
            allowed: Some(vec![0, 1, 3]),
            ..request(1)
        };
        let why = choose(&gpus, &HashMap::new(), &req).unwrap_err();
        for needle in [
            "GPU 0: 1000 MB free",
            "GPU 1: 90°C",
            "GPU 2: not in CUDA_VISIBLE_DEVICES",
            "GPU 3: temperature unreadable",
        ] {
            assert!(why.contains(needle), "{needle} in {why}");
        }
        let lenient = Request {
            require_readings: false,
            ..req
        };
        assert_eq!(choose(&gpus, &HashMap::new(), &lenient), Ok(vec![3]));
    }

    #[test]
    fn memory_hints_match_the_framework() {
        let env: HashMap<_, _> = lease_env(&[1, 0], Some((8192, 0.2)), "jax")
            .into_iter()
            .collect();
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "1,0");
        assert_eq!(env["BACKPROP_GPU_MEMORY_LIMIT_MB"], "8192");
        assert_eq!(env["XLA_PYTHON_CLIENT_MEM_FRACTION"], "0.200");
        assert!(!env.contains_key("TF_FORCE_GPU_ALLOW_GROWTH"));
        let env: HashMap<_, _> = lease_env(&[0], Some((8192, 0.2)), "none")
            .into_iter()
            .collect();
        assert_eq!(env["TF_FORCE_GPU_ALLOW_GROWTH"], "true");
        assert_eq!(lease_env(&[2], None, "pytorch").len(), 1);
    }

    #[test]
    fn visible_devices_accept_indices_and_uuids() {
        let gpus = [gpu(0, 1, 1.0), gpu(1, 1, 1.0)];
        assert_eq!(allowed_by_visible_devices("1,0", &gpus), vec![1, 0]);
        assert_eq!(allowed_by_visible_devices("GPU-1", &gpus), vec![1]);
        assert!(allowed_by_visible_devices("-1", &gpus).is_empty());
    }
}
