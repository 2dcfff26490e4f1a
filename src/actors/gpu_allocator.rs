//! The GpuAllocator: admits a run (a `maxParallel` slot) and decides which GPUs it gets and
//! the environment that pins it there.
//!
//! Both happen inside one locked store update: the queue and the ledger (the GPU leases of
//! every live run of the home, whichever process supervises it) are read, the decision made,
//! and the run marked running with its lease before the lock is released, so two backprop
//! processes starting at the same instant see each other.

use super::governor::{Governor, Latest};
use crate::admission;
use crate::config::MemoryLimit;
use crate::placement::{self, Request, Reservation};
use crate::proc_info::{self, Liveness};
use crate::record::{GpuLease, RunRecord, Status};
use crate::resources::GpuState;
use crate::store::Store;
use actix::prelude::*;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lease {
    pub gpus: Vec<u32>,
    pub reserved_mb: Option<u64>,
    /// CUDA_VISIBLE_DEVICES and memory hints for the script.
    pub env: Vec<(String, String)>,
}

/// Why a run cannot have GPUs now.
#[derive(Clone, Debug, PartialEq)]
pub struct NoFit {
    pub reason: String,
    /// It can never fit here (no GPU at all): refuse rather than wait forever.
    pub permanent: bool,
}

/// The allocator's fixed settings.
#[derive(Clone, Debug)]
pub struct Policy {
    pub min_free_mb: u64,
    pub max_temp_c: f64,
    pub require_readings: bool,
    /// backprop's own CUDA_VISIBLE_DEVICES (e.g. set by Slurm), which bounds what it hands out.
    pub inherited_visible: Option<String>,
}

pub struct GpuAllocator {
    store: Store,
    governor: Addr<Governor>,
    policy: Policy,
}

impl GpuAllocator {
    pub fn new(store: Store, governor: Addr<Governor>, policy: Policy) -> GpuAllocator {
        GpuAllocator {
            store,
            governor,
            policy,
        }
    }
}

impl Actor for GpuAllocator {
    type Context = Context<Self>;
}

/// Reserve GPUs for a run.
#[derive(Message, Clone)]
#[rtype(result = "Result<Lease, NoFit>")]
pub struct Reserve {
    pub run_id: String,
    /// `--gpus`; None = 1 where GPUs exist, else 0.
    pub gpus: Option<u32>,
    pub memory_limit: Option<MemoryLimit>,
    /// `BACKPROP_FRAMEWORK`, to pick the matching memory hints.
    pub framework: String,
    /// Admission: at most this many runs active across the home.
    pub max_parallel: u32,
    /// Reserved per GPU when the run has no memory limit (gpu.minFreeVramMB).
    pub default_reservation_mb: u64,
}

impl Handler<Reserve> for GpuAllocator {
    type Result = ResponseFuture<Result<Lease, NoFit>>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        let governor = self.governor.clone();
        let store = self.store.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let snapshot = governor
                .send(Latest)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| NoFit {
                    reason: "no resource sample yet".into(),
                    permanent: false,
                })?;
            let gpu = snapshot.gpu.clone();
            tokio::task::spawn_blocking(move || place(&store, &policy, &gpu, &msg))
                .await
                .unwrap_or_else(|e| {
                    Err(NoFit {
                        reason: format!("GPU placement failed: {e}"),
                        permanent: false,
                    })
                })
        })
    }
}

/// What a run needs before the lock is taken.
enum Need {
    /// No placement to do: CPU only, or GPUs handed to us as they are.
    Fixed {
        env: Vec<(String, String)>,
        gpus: Vec<u32>,
    },
    Gpus(Request),
}

/// Takes an admission slot and, for GPU runs, the GPUs: one locked store update that reads
/// the ledger and the queue, decides, and marks the run `running` with its lease.
fn place(store: &Store, policy: &Policy, gpu: &GpuState, req: &Reserve) -> Result<Lease, NoFit> {
    let need = need(policy, gpu, req)?;
    let host = proc_info::hostname();
    let claimed = store.update(|ex| {
        let records: Vec<RunRecord> = ex.active_records();
        let me = records
            .iter()
            .find(|r| r.id == req.run_id)
            .ok_or_else(|| format!("run {} is no longer in the store", req.run_id))?;
        admission::check(&records, me, req.max_parallel, &host)?;
        let mut rec = me.clone();
        let lease = match &need {
            Need::Fixed { env, gpus } => Lease {
                env: env.clone(),
                gpus: gpus.clone(),
                reserved_mb: None,
            },
            Need::Gpus(request) => {
                let reservations = ledger(&records, &req.run_id, &host);
                let held = placement::outstanding(
                    &reservations,
                    &gpu.processes,
                    crate::gpu::process_group_of,
                );
                let chosen = placement::choose(&gpu.gpus, &held, request)?;
                let lease = gpu_lease(gpu, chosen, req);
                rec.gpu_lease = Some(GpuLease {
                    gpus: lease.gpus.clone(),
                    uuids: lease
                        .gpus
                        .iter()
                        .filter_map(|i| gpu.gpus.iter().find(|g| g.index == *i))
                        .map(|g| g.uuid.clone())
                        .collect(),
                    reserved_mb: lease.reserved_mb.unwrap_or(0),
                });
                lease
            }
        };
        // The slot is taken in the same write that decided it.
        rec.status = Status::Running;
        rec.reason = None;
        rec.start_time.get_or_insert(crate::clock::now_ms());
        ex.put(&rec);
        Ok(lease)
    });
    match claimed {
        Ok(Ok(lease)) => Ok(lease),
        Ok(Err(reason)) => Err(NoFit {
            reason,
            permanent: false,
        }),
        Err(e) => Err(NoFit {
            reason: format!("cannot read the store: {e}"),
            permanent: false,
        }),
    }
}

/// CPU or GPUs, decided from the snapshot alone (before taking the lock).
fn need(policy: &Policy, gpu: &GpuState, req: &Reserve) -> Result<Need, NoFit> {
    let machine_has_gpus = !gpu.gpus.is_empty();
    let count = match req.gpus {
        Some(n) => n,
        None if gpu.error.is_some() => {
            return Err(NoFit {
                reason: format!(
                    "GPU probe failed ({}); pass --gpus 0 to run on the CPU",
                    gpu.error.as_deref().unwrap_or_default()
                ),
                permanent: false,
            });
        }
        None => u32::from(machine_has_gpus),
    };
    if count == 0 {
        let env = if machine_has_gpus {
            vec![("CUDA_VISIBLE_DEVICES".to_string(), "-1".to_string())]
        } else {
            Vec::new()
        };
        return Ok(Need::Fixed {
            env,
            gpus: Vec::new(),
        });
    }
    if let Some(error) = &gpu.error {
        return Err(NoFit {
            reason: format!("GPU probe failed: {error}"),
            permanent: false,
        });
    }
    if gpu.probe == crate::gpu::ProbeKind::None {
        // No probe, but GPUs handed to this process (a Slurm allocation sets
        // CUDA_VISIBLE_DEVICES): pass them on as given; nothing can be checked here.
        let given: Vec<&str> = policy
            .inherited_visible
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "-1")
            .collect();
        if given.len() >= count as usize {
            let chosen = &given[..count as usize];
            return Ok(Need::Fixed {
                env: vec![("CUDA_VISIBLE_DEVICES".to_string(), chosen.join(","))],
                gpus: chosen.iter().filter_map(|d| d.parse().ok()).collect(),
            });
        }
        return Err(NoFit {
            reason: format!(
                "the run asks for {count} GPU(s) but no GPU probe works here; use --gpus 0"
            ),
            permanent: true,
        });
    }
    let allowed = policy
        .inherited_visible
        .as_deref()
        .map(|visible| placement::allowed_by_visible_devices(visible, &gpu.gpus));
    Ok(Need::Gpus(Request {
        count: count as usize,
        min_free_mb: policy.min_free_mb,
        max_temp_c: policy.max_temp_c,
        allowed,
        require_readings: policy.require_readings,
    }))
}

/// The lease for the chosen GPUs: the reservation (the memory limit, else minFreeVramMB)
/// and the environment.
fn gpu_lease(gpu: &GpuState, chosen: Vec<u32>, req: &Reserve) -> Lease {
    let smallest_total = chosen
        .iter()
        .filter_map(|i| gpu.gpus.iter().find(|g| g.index == *i))
        .filter_map(|g| g.memory_total_mb)
        .min()
        .unwrap_or(0);
    let (reserved_mb, limit) = match &req.memory_limit {
        Some(limit) => {
            let mb = limit.megabytes(smallest_total);
            (mb, Some((mb, limit.fraction(smallest_total))))
        }
        None => (req.default_reservation_mb, None),
    };
    Lease {
        env: placement::lease_env(&chosen, limit, &req.framework),
        gpus: chosen,
        reserved_mb: Some(reserved_mb),
    }
}

/// The GPU leases of live runs other than `except`.
pub fn ledger(records: &[RunRecord], except: &str, host: &str) -> Vec<Reservation> {
    records
        .iter()
        .filter(|r| {
            r.id != except && matches!(r.status, Status::Queued | Status::Running | Status::Paused)
        })
        .filter(|r| {
            r.supervisor
                .as_ref()
                .is_some_and(|s| proc_info::liveness(s, host) != Liveness::Dead)
        })
        .filter_map(|r| {
            let lease = r.gpu_lease.as_ref()?;
            let live_pid = r
                .attempts
                .last()
                .filter(|a| a.end_time.is_none())
                .and_then(|a| a.pid);
            Some(Reservation {
                run_id: r.id.clone(),
                gpu_uuids: lease.uuids.clone(),
                reserved_mb: lease.reserved_mb,
                pgid: live_pid,
            })
        })
        .collect()
}
