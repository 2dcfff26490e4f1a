//! Whose processes use each GPU's memory: the probe's process list matched to live runs
//! through /proc (by process group, or by the run directory in the process's environment for
//! processes that left the group), so the policy can count reservations without counting
//! them twice.

use crate::gpu::{GpuInfo, GpuProcess, field};
use crate::policy::GpuUse;
use crate::runid::RunId;
use std::collections::HashMap;

/// A live run whose attempt is under way.
pub struct LiveAttempt<'a> {
    pub id: &'a RunId,
    /// The attempt's pid, which is also its process group.
    pub pgid: u32,
    /// `BACKPROP_RUN_DIR` as the run's processes carry it.
    pub run_dir: String,
    /// The devices it holds (a process listed under a MIG instance's parent GPU is counted
    /// on the instance the run holds there).
    pub uuids: Vec<String>,
}

/// Per GPU uuid, who uses its memory.
pub fn attribute(
    gpus: &[GpuInfo],
    processes: &[GpuProcess],
    runs: &[LiveAttempt],
) -> HashMap<String, GpuUse> {
    attribute_with(gpus, processes, runs, &ProcFacts)
}

/// What /proc says about a process (a trait so tests need no real processes).
pub trait Facts {
    /// The process group, or None when the process cannot be seen from here.
    fn group_of(&self, pid: u32) -> Option<u32>;
    /// Its `BACKPROP_RUN_DIR`, if it has one and we may read it.
    fn run_dir_of(&self, pid: u32) -> Option<String>;
}

struct ProcFacts;

impl Facts for ProcFacts {
    fn group_of(&self, pid: u32) -> Option<u32> {
        crate::gpu::process_group_of(pid)
    }

    fn run_dir_of(&self, pid: u32) -> Option<String> {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(b"BACKPROP_RUN_DIR="))
            .map(|dir| String::from_utf8_lossy(dir).into_owned())
    }
}

pub fn attribute_with(
    gpus: &[GpuInfo],
    processes: &[GpuProcess],
    runs: &[LiveAttempt],
    facts: &dyn Facts,
) -> HashMap<String, GpuUse> {
    let mut out: HashMap<String, GpuUse> = gpus
        .iter()
        .map(|g| {
            let listed = !g.unreadable.iter().any(|f| f == field::PROCESSES);
            (
                g.uuid.clone(),
                GpuUse {
                    attributable: listed,
                    ..Default::default()
                },
            )
        })
        .collect();
    // Under MIG, nvidia-smi lists processes under the parent GPU's uuid.
    let instances_of = |parent: &str| -> Vec<String> {
        gpus.iter()
            .filter(|g| g.parent_uuid.as_deref() == Some(parent))
            .map(|g| g.uuid.clone())
            .collect()
    };
    for process in processes {
        let group = facts.group_of(process.pid);
        let owner = group.and_then(|group| {
            runs.iter().find(|r| r.pgid == group).or_else(|| {
                let dir = facts.run_dir_of(process.pid)?;
                runs.iter().find(|r| r.run_dir == dir)
            })
        });
        let device = if out.contains_key(&process.gpu_uuid) {
            process.gpu_uuid.clone()
        } else {
            let instances = instances_of(&process.gpu_uuid);
            match owner.and_then(|run| instances.iter().find(|u| run.uuids.contains(u))) {
                Some(instance) => instance.clone(),
                None => {
                    // Somebody's use of some instance of that GPU: not attributable.
                    for instance in instances {
                        if let Some(gpu) = out.get_mut(&instance) {
                            gpu.attributable = false;
                        }
                    }
                    continue;
                }
            }
        };
        let Some(gpu) = out.get_mut(&device) else {
            continue;
        };
        if group.is_none() {
            // Listed by the driver but invisible here (another PID namespace).
            gpu.attributable = false;
            continue;
        }
        match (owner, process.used_mb) {
            (Some(run), Some(mb)) => *gpu.runs.entry(run.id.clone()).or_default() += mb,
            (Some(run), None) => {
                gpu.runs_unknown.insert(run.id.clone());
            }
            (None, Some(mb)) => gpu.foreign_mb += mb,
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Facts for Fake {
        fn group_of(&self, pid: u32) -> Option<u32> {
            match pid {
                101 | 102 => Some(100),
                201 => Some(201),
                301 => Some(301),
                _ => None,
            }
        }
        fn run_dir_of(&self, pid: u32) -> Option<String> {
            (pid == 301).then(|| "/h/runs/b".to_string())
        }
    }

    fn gpu(uuid: &str) -> GpuInfo {
        let mut g = crate::policy::tests::gpu(0, 1000, 40.0);
        g.uuid = uuid.into();
        g
    }

    fn process(pid: u32, uuid: &str, used_mb: Option<u64>) -> GpuProcess {
        GpuProcess {
            pid,
            gpu_uuid: uuid.into(),
            used_mb,
        }
    }

    #[test]
    fn processes_are_matched_by_group_or_run_directory() {
        let (a, b) = (RunId::parse("a").unwrap(), RunId::parse("b").unwrap());
        let runs = [
            LiveAttempt {
                id: &a,
                pgid: 100,
                run_dir: "/h/runs/a".into(),
                uuids: vec!["G0".into()],
            },
            LiveAttempt {
                id: &b,
                pgid: 300,
                run_dir: "/h/runs/b".into(),
                uuids: vec!["G1".into()],
            },
        ];
        let processes = [
            process(101, "G0", Some(1000)),
            process(102, "G0", Some(500)),
            process(201, "G0", Some(700)),
            process(301, "G1", None),
            process(999, "G2", Some(4000)),
        ];
        let used = attribute_with(&[gpu("G0"), gpu("G1"), gpu("G2")], &processes, &runs, &Fake);
        assert!(used["G0"].attributable);
        assert_eq!(used["G0"].runs[&a], 1500);
        assert_eq!(used["G0"].foreign_mb, 700);
        assert!(
            used["G1"].runs_unknown.contains(&b),
            "a daemon outside the group"
        );
        assert!(!used["G2"].attributable, "pid 999 is not visible here");
    }

    #[test]
    fn a_process_listed_under_a_mig_parent_counts_on_the_instance_its_run_holds() {
        let a = RunId::parse("a").unwrap();
        let instance = |uuid: &str| {
            let mut g = gpu(uuid);
            g.parent_uuid = Some("GPU-P".into());
            g
        };
        let runs = [LiveAttempt {
            id: &a,
            pgid: 100,
            run_dir: "/h/runs/a".into(),
            uuids: vec!["MIG-2".into()],
        }];
        let gpus = [instance("MIG-1"), instance("MIG-2")];
        let used = attribute_with(&gpus, &[process(101, "GPU-P", Some(900))], &runs, &Fake);
        assert_eq!(used["MIG-2"].runs[&a], 900);
        assert!(used["MIG-1"].attributable);
        let used = attribute_with(&gpus, &[process(201, "GPU-P", Some(900))], &runs, &Fake);
        assert!(!used["MIG-1"].attributable && !used["MIG-2"].attributable);
    }

    #[test]
    fn an_unreadable_process_list_makes_the_gpu_unattributable() {
        let mut g = gpu("G0");
        g.unreadable.push(field::PROCESSES.into());
        assert!(!attribute_with(&[g], &[], &[], &Fake)["G0"].attributable);
        assert!(attribute_with(&[gpu("G0")], &[], &[], &Fake)["G0"].attributable);
    }
}
