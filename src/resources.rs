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
}

/// The limits a start must respect (SPEC "Governor and GPUs").
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

/// Reads CPU load and RAM. Cheap (it reads /proc), but still called off the actor thread.
pub struct Sampler {
    system: Result<sysinfo::System, String>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            system: sysinfo::System::new().map_err(|e| e.to_string()),
        }
    }
}

impl Sampler {
    pub fn sample(&mut self) -> Snapshot {
        const GB: f64 = 1024.0 * 1024.0 * 1024.0;
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut snapshot = Snapshot {
            taken_ms: crate::clock::now_ms(),
            cpus,
            ..Default::default()
        };
        let system = match &mut self.system {
            Ok(system) => system,
            Err(e) => {
                snapshot.error = Some(e.clone());
                return snapshot;
            }
        };
        system.refresh_memory();
        snapshot.free_ram_gb = system.available_memory() as f64 / GB;
        snapshot.total_ram_gb = system.total_memory() as f64 / GB;
        match sysinfo::System::load_average() {
            Ok(load) => snapshot.load_per_core = load.one / cpus as f64,
            Err(e) => snapshot.error = Some(format!("load average: {e}")),
        }
        snapshot
    }
}

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
        let s = Sampler::default().sample();
        assert_eq!(s.error, None);
        assert!(s.cpus >= 1 && s.total_ram_gb > 0.0 && s.free_ram_gb <= s.total_ram_gb);
    }
}
