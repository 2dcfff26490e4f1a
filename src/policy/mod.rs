//! The scheduler policy, pure: given the runs waiting to start, the live runs and the GPU
//! memory they hold, the resource snapshot and the settings, it decides whether one run
//! starts now, where, and if not, why it waits.
//!
//! The rules:
//! - **Gates**: free RAM ≥ `minFreeRamGB` and CPU load per core ≤ `maxCpuLoad` (not inside a
//!   Slurm allocation, which already is the admission).
//! - **Slots**: running + paused runs stay within `maxParallel`, across every process.
//! - **Reservations**: a GPU takes a run only if the run's reservation (its memory limit, else
//!   `gpu.minFreeVramMB`) fits the GPU's effective free memory (see [`ledger`]), so the sum of
//!   reservations placed on a GPU never exceeds what it had free for them.
//! - **First come, first served, with backfill**: earlier runs are served first. Earlier
//!   runs that could start now are counted as started. A later run may start only if it delays
//!   no earlier waiting run: it must not take a slot an earlier run is waiting for, nor memory
//!   on a GPU an earlier run is waiting to use; it may take what the earlier run cannot use
//!   now (a CPU slot while that run waits for a cool GPU, a GPU it cannot use, room a GPU
//!   still has after both).
//! - **Impossible requests** (more GPUs than there are or than `CUDA_VISIBLE_DEVICES`
//!   allows, a reservation larger than every GPU) are refused at once, judged only against a
//!   working probe.

pub mod ledger;
pub mod placement;

pub use ledger::{GpuUse, Holder, effective_free};
pub use placement::{Visible, cpu_only_env, lease_env};

use crate::config::{Framework, MemoryLimit};
use crate::gpu::{GpuInfo, ProbeKind};
use crate::record::{GpuLease, RunOptions};
use crate::resources::{Snapshot, Thresholds, Verdict};
use crate::runid::RunId;
use placement::{Need, need_on, unusable};
use std::collections::HashMap;

/// What a run asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// GPUs; None = 1 where GPUs exist, else 0.
    pub gpus: Option<u32>,
    pub memory_limit: Option<MemoryLimit>,
    /// Its own bound on the runs active at once.
    pub max_parallel: u32,
}

impl Request {
    pub fn of(options: &RunOptions) -> Request {
        Request {
            gpus: options.gpus,
            memory_limit: options.gpu_memory_limit,
            max_parallel: options.max_parallel.max(1),
        }
    }
}

/// A live run waiting for a start, in some backprop process of the home.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiter {
    pub id: RunId,
    /// Arrival order: smaller came first.
    pub seq: u64,
    pub request: Request,
}

/// This process's settings (from its config and environment).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub gates: Thresholds,
    pub min_free_vram_mb: u64,
    pub thermal: crate::thermal::Limits,
    pub require_readings: bool,
    /// An inherited `CUDA_VISIBLE_DEVICES`, which bounds the GPUs handed out.
    pub visible: Option<Visible>,
    /// Inside a Slurm allocation the allocation is the admission: no gates, no queue, and
    /// exactly the GPUs Slurm gave.
    pub inside_allocation: bool,
}

/// Everything the policy looks at.
pub struct World<'a> {
    pub snapshot: &'a Snapshot,
    /// Live running and paused runs.
    pub holders: &'a [Holder],
    /// Live queued runs asking for a start (the run decided on among them).
    pub waiters: &'a [Waiter],
    /// Per GPU uuid: whose processes use its memory.
    pub usage: &'a HashMap<String, GpuUse>,
}

/// Where a run starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// `CUDA_VISIBLE_DEVICES` entries; empty = CPU only (no GPU visible).
    pub devices: Vec<String>,
    /// Indices of the probed GPUs it got (for the record and `status`).
    pub gpus: Vec<u32>,
    pub uuids: Vec<String>,
    /// Reserved on each GPU.
    pub reserved_mb: Option<u64>,
    /// The run's memory limit on its GPUs: (MB, share of the smallest).
    pub limit: Option<(u64, f64)>,
}

impl Placement {
    /// The environment that pins the run there.
    pub fn env(&self, framework: Framework) -> Vec<(String, String)> {
        if self.devices.is_empty() {
            cpu_only_env()
        } else {
            lease_env(&self.devices, self.limit, framework)
        }
    }

    /// The lease the run holds in the shared ledger (GPU runs placed by the policy).
    pub fn lease(&self) -> Option<GpuLease> {
        (!self.uuids.is_empty()).then(|| GpuLease {
            gpus: self.gpus.clone(),
            uuids: self.uuids.clone(),
            reserved_mb: self.reserved_mb.unwrap_or(0),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Start(Placement),
    /// Not now; the reason names what it waits for and the setting that changes it.
    Wait(WaitOn, String),
    /// Never, on this machine: refused at once.
    Impossible(String),
}

/// What a waiting run waits for. Runs behind one waiting for the machine (gates, probe) or
/// for a slot wait for the same thing; runs behind one waiting for GPUs may still fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOn {
    /// Free RAM or CPU load.
    Machine,
    /// A GPU reading that works.
    Probe,
    /// The first GPU reading of this process (a moment; not a refusal under `--no-wait`).
    Reading,
    /// `maxParallel`.
    Slot,
    /// GPUs with room (or cool enough).
    Gpus,
}

/// Whether run `me` (one of `world.waiters`) starts now.
pub fn decide(me: &RunId, world: &World, settings: &Settings) -> Decision {
    let mut queue: Vec<&Waiter> = world.waiters.iter().collect();
    queue.sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
    let Some(position) = queue.iter().position(|w| w.id == *me) else {
        return Decision::Wait(WaitOn::Slot, "not in the admission queue".into());
    };
    let mine = queue[position];
    if settings.inside_allocation {
        return Decision::Start(given_by_allocation(settings));
    }
    let count = match gpu_count(&mine.request, world.snapshot) {
        Ok(count) => count,
        Err(why) => return Decision::Wait(probe_wait_on(world.snapshot), why),
    };
    if count > 0
        && let Some(decision) = without_placement(count, world.snapshot, settings)
    {
        return decision;
    }
    if let Some(why) = impossible(&mine.request, count, world.snapshot, settings) {
        return Decision::Impossible(why);
    }
    if let Verdict::Wait(why) = crate::resources::check(world.snapshot, &settings.gates) {
        return Decision::Wait(WaitOn::Machine, why);
    }
    let mut sim = Sim::new(world, settings);
    for earlier in &queue[..position] {
        sim.serve(earlier);
    }
    sim.decide_for(mine, count)
}

/// GPUs the request needs, resolving "1 where GPUs exist" against the snapshot.
fn gpu_count(request: &Request, snapshot: &Snapshot) -> Result<u32, String> {
    match request.gpus {
        Some(n) => Ok(n),
        None => match &snapshot.gpu.error {
            Some(error) => Err(format!(
                "{}; pass --gpus 0 to run on the CPU",
                probe_wait(error)
            )),
            None => Ok(u32::from(!snapshot.gpu.gpus.is_empty())),
        },
    }
}

fn probe_wait_on(snapshot: &Snapshot) -> WaitOn {
    if snapshot.gpu.error.as_deref() == Some(crate::resources::NOT_READ_YET) {
        WaitOn::Reading
    } else {
        WaitOn::Probe
    }
}

/// Why GPU runs wait for the probe.
fn probe_wait(error: &str) -> String {
    if error == crate::resources::NOT_READ_YET {
        "waiting for the first GPU reading".to_string()
    } else {
        format!("GPU probe failed: {error}")
    }
}

/// GPU runs that cannot be placed from readings: the probe failed (wait), or there is no
/// probe (pass on what was handed to us, else refuse).
fn without_placement(count: u32, snapshot: &Snapshot, settings: &Settings) -> Option<Decision> {
    if let Some(error) = &snapshot.gpu.error {
        return Some(Decision::Wait(probe_wait_on(snapshot), probe_wait(error)));
    }
    let handed_unknown = settings.visible.as_ref().is_some_and(|v| {
        !v.is_none() && !snapshot.gpu.gpus.iter().any(|g| v.entry_for(g).is_some())
    });
    if snapshot.gpu.probe != ProbeKind::None && !handed_unknown {
        return None;
    }
    // No probe, or GPUs handed to us that no probed device matches (a MIG id the probe
    // cannot see, a GPU hidden by cgroups): passed on as given.
    let given: Vec<String> = settings
        .visible
        .iter()
        .flat_map(|v| v.entries())
        .map(str::to_string)
        .collect();
    Some(if given.len() >= count as usize {
        let devices = given[..count as usize].to_vec();
        Decision::Start(Placement {
            gpus: devices.iter().filter_map(|d| d.parse().ok()).collect(),
            devices,
            ..Default::default()
        })
    } else {
        Decision::Impossible(format!(
            "the run asks for {count} GPU(s) but no GPU probe works here and none was handed to \
             backprop; use --gpus 0 or set gpu.probe"
        ))
    })
}

/// Exactly what the allocation gave (nothing visible when it gave nothing).
pub fn given_by_allocation(settings: &Settings) -> Placement {
    let devices: Vec<String> = match &settings.visible {
        Some(v) if !v.is_none() => v.entries().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Placement {
        gpus: devices.iter().filter_map(|d| d.parse().ok()).collect(),
        devices,
        ..Default::default()
    }
}

/// Why no state of this machine could ever satisfy the request (judged against a working
/// probe only).
fn impossible(
    request: &Request,
    count: u32,
    snapshot: &Snapshot,
    settings: &Settings,
) -> Option<String> {
    if count == 0 || snapshot.gpu.error.is_some() || snapshot.gpu.probe == ProbeKind::None {
        return None;
    }
    let all = &snapshot.gpu.gpus;
    let visible: Vec<&GpuInfo> = all
        .iter()
        .filter(|g| {
            settings
                .visible
                .as_ref()
                .is_none_or(|v| v.entry_for(g).is_some())
        })
        .collect();
    let usable: Vec<&GpuInfo> = visible
        .iter()
        .copied()
        .filter(|g| !placement::never_usable(g))
        .collect();
    if usable.len() < count as usize {
        let list = |gpus: &[&GpuInfo]| {
            gpus.iter()
                .map(|g| g.index.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let exists = if usable.len() < visible.len() {
            format!(
                "only {} of the GPUs it may use can ever take a run ({}); the others are \
                 lost, refuse access, cannot be split into MIG instances or are prohibited",
                usable.len(),
                list(&usable)
            )
        } else if usable.len() < all.len() {
            format!(
                "CUDA_VISIBLE_DEVICES allows {} of this machine's {} GPUs ({})",
                usable.len(),
                all.len(),
                list(&usable)
            )
        } else if all.is_empty() {
            "this machine has no GPU".to_string()
        } else {
            format!(
                "this machine has {} ({})",
                all.len(),
                list(&all.iter().collect::<Vec<_>>())
            )
        };
        return Some(format!("the run asks for {count} GPUs but {exists}"));
    }
    let totals: Vec<(u32, u64, u64)> = usable
        .iter()
        .filter_map(|g| {
            let total = g.memory_total_mb?;
            let need = need_on(g, request.memory_limit, settings.min_free_vram_mb);
            Some((g.index, total, need.free_mb))
        })
        .collect();
    let fitting = totals
        .iter()
        .filter(|(_, total, need)| need <= total)
        .count();
    if totals.len() == usable.len() && fitting < count as usize {
        let (_, largest, need) = totals.iter().max_by_key(|(_, total, _)| *total)?;
        return Some(format!(
            "the run needs {need} MB free on each GPU (gpuMemoryLimit -g / gpu.minFreeVramMB --gpu-min-vram) but \
             the largest GPU here has {largest} MB"
        ));
    }
    None
}

/// One GPU during the simulation of the queue.
struct SimGpu<'a> {
    info: &'a GpuInfo,
    /// Effective free MB, less what earlier runs counted as started take.
    free: u64,
    unusable: Option<String>,
    /// A run holds it, or an earlier run counted as started took it (for exclusive mode).
    occupied: bool,
}

/// The queue served in order on a copy of the machine's state: earlier runs that can start
/// take their share; those that cannot leave marks a later run must respect.
struct Sim<'a> {
    settings: &'a Settings,
    snapshot: &'a Snapshot,
    gpus: Vec<SimGpu<'a>>,
    active: u32,
    /// An earlier run that could start but for a slot: slots are its first.
    slot_waiter: Option<&'a Waiter>,
    /// (GPU, MB an earlier run needs free there, that run): keep at least that much.
    protected: Vec<(usize, u64, &'a RunId)>,
    /// (GPU, earlier run waiting for memory there): take nothing there.
    untouchable: Vec<(usize, &'a RunId)>,
}

impl<'a> Sim<'a> {
    fn new(world: &World<'a>, settings: &'a Settings) -> Sim<'a> {
        let gpus = world
            .snapshot
            .gpu
            .gpus
            .iter()
            .map(|info| {
                let held = world.holders.iter().any(|h| {
                    h.lease
                        .as_ref()
                        .is_some_and(|l| l.uuids.contains(&info.uuid))
                });
                let used = world
                    .snapshot
                    .gpu
                    .processes
                    .iter()
                    .any(|p| p.gpu_uuid == info.uuid);
                SimGpu {
                    info,
                    free: effective_free(info, world.holders, world.usage.get(&info.uuid))
                        .unwrap_or(0),
                    unusable: unusable(info, settings),
                    occupied: held || used,
                }
            })
            .collect();
        Sim {
            settings,
            snapshot: world.snapshot,
            gpus,
            active: world.holders.len() as u32,
            slot_waiter: None,
            protected: Vec::new(),
            untouchable: Vec::new(),
        }
    }

    /// An earlier run: counted as started if it can start, else its marks are left.
    fn serve(&mut self, earlier: &'a Waiter) {
        let Ok(count) = gpu_count(&earlier.request, self.snapshot) else {
            return; // it waits for the probe, as every GPU run does
        };
        if impossible(&earlier.request, count, self.snapshot, self.settings).is_some() {
            return; // it is refused by its own process
        }
        let slot_free = self.active < earlier.request.max_parallel;
        match self.place(&earlier.request, count) {
            Ok(chosen) if slot_free => self.take(&chosen),
            Ok(_) => {
                self.slot_waiter.get_or_insert(earlier);
            }
            Err(_) => self.mark_gpus_for(earlier),
        }
    }

    fn decide_for(&self, mine: &Waiter, count: u32) -> Decision {
        if let Some(earlier) = self.slot_waiter {
            return Decision::Wait(
                WaitOn::Slot,
                format!(
                    "waiting for a slot: run {} came first (maxParallel {}, -p)",
                    earlier.id, mine.request.max_parallel
                ),
            );
        }
        if self.active >= mine.request.max_parallel {
            return Decision::Wait(
                WaitOn::Slot,
                format!(
                    "waiting for a slot: {} run{} active, maxParallel {} (-p)",
                    self.active,
                    if self.active == 1 { "" } else { "s" },
                    mine.request.max_parallel
                ),
            );
        }
        if count == 0 {
            return Decision::Start(Placement::default());
        }
        match self.place(&mine.request, count) {
            Ok(chosen) => Decision::Start(self.placement(&mine.request, &chosen)),
            Err(reasons) => {
                let wanted = if count == 1 {
                    "a GPU".to_string()
                } else {
                    format!("{count} GPUs")
                };
                Decision::Wait(
                    WaitOn::Gpus,
                    format!("needs {wanted}: {}", reasons.join("; ")),
                )
            }
        }
    }

    /// The GPUs `request` would get now (most effective free memory first), or why not.
    fn place(&self, request: &Request, count: u32) -> Result<Vec<(usize, Need)>, Vec<String>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut eligible = Vec::new();
        let mut reasons = Vec::new();
        for (i, gpu) in self.gpus.iter().enumerate() {
            match self.refusal(i, gpu, request) {
                Some(why) => reasons.push(why),
                None => eligible.push((
                    i,
                    need_on(
                        gpu.info,
                        request.memory_limit,
                        self.settings.min_free_vram_mb,
                    ),
                )),
            }
        }
        if self.gpus.is_empty() {
            reasons.push("no GPU found".into());
        }
        if eligible.len() < count as usize {
            return Err(reasons);
        }
        eligible.sort_by(|(a, _), (b, _)| {
            let (a, b) = (&self.gpus[*a], &self.gpus[*b]);
            b.free.cmp(&a.free).then(a.info.index.cmp(&b.info.index))
        });
        eligible.truncate(count as usize);
        Ok(eligible)
    }

    /// Why GPU `i` cannot take `request` now, if it cannot.
    fn refusal(&self, i: usize, gpu: &SimGpu, request: &Request) -> Option<String> {
        if let Some(why) = &gpu.unusable {
            return Some(why.clone());
        }
        let index = gpu.info.index;
        if gpu.occupied && gpu.info.compute_mode == crate::gpu::ComputeMode::ExclusiveProcess {
            return Some(format!(
                "GPU {index}: exclusive-process mode and already in use"
            ));
        }
        // No memory figure (unified memory, accepted by gpu.requireReadings): nothing to check.
        gpu.info.memory_free_mb?;
        let need = need_on(
            gpu.info,
            request.memory_limit,
            self.settings.min_free_vram_mb,
        );
        if gpu.free < need.free_mb {
            return Some(format!(
                "GPU {index}: {} MB free for new runs, needs {} MB (gpuMemoryLimit -g / gpu.minFreeVramMB --gpu-min-vram)",
                gpu.free, need.free_mb
            ));
        }
        if let Some((_, earlier)) = self.untouchable.iter().find(|(g, _)| *g == i) {
            return Some(format!(
                "GPU {index}: run {earlier} came first and waits for memory there"
            ));
        }
        let left = gpu.free - need.reserve_mb;
        if let Some((_, kept, earlier)) = self
            .protected
            .iter()
            .find(|(g, kept, _)| *g == i && left < *kept)
        {
            return Some(format!(
                "GPU {index}: {kept} MB kept for run {earlier}, which came first"
            ));
        }
        None
    }

    fn take(&mut self, chosen: &[(usize, Need)]) {
        self.active += 1;
        for (i, need) in chosen {
            let gpu = &mut self.gpus[*i];
            gpu.free -= need.reserve_mb.min(gpu.free);
            gpu.occupied = true;
        }
    }

    /// An earlier run that cannot have its GPUs now: the GPUs it could use are kept for it
    /// (room it needs where it fits now, all of it where it waits for memory).
    fn mark_gpus_for(&mut self, earlier: &'a Waiter) {
        for (i, gpu) in self.gpus.iter().enumerate() {
            if gpu.unusable.is_some() {
                continue;
            }
            let need = need_on(
                gpu.info,
                earlier.request.memory_limit,
                self.settings.min_free_vram_mb,
            );
            if gpu.free >= need.free_mb {
                self.protected.push((i, need.free_mb, &earlier.id));
            } else {
                self.untouchable.push((i, &earlier.id));
            }
        }
    }

    fn placement(&self, request: &Request, chosen: &[(usize, Need)]) -> Placement {
        let infos: Vec<&GpuInfo> = chosen.iter().map(|(i, _)| self.gpus[*i].info).collect();
        let smallest_total = infos
            .iter()
            .filter_map(|g| g.memory_total_mb)
            .min()
            .unwrap_or(0);
        let reserved = chosen.iter().map(|(_, n)| n.reserve_mb).max();
        Placement {
            devices: infos
                .iter()
                .map(|g| match &self.settings.visible {
                    Some(v) => v.entry_for(g).unwrap_or_default().to_string(),
                    None => g.cuda_device(),
                })
                .collect(),
            gpus: infos.iter().map(|g| g.index).collect(),
            uuids: infos.iter().map(|g| g.uuid.clone()).collect(),
            reserved_mb: reserved,
            limit: request.memory_limit.map(|limit| {
                (
                    limit.megabytes(smallest_total),
                    limit.fraction(smallest_total),
                )
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
