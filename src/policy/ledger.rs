//! The reservation ledger: how much of each GPU is still free for a new run once the runs
//! already placed there are counted, whether or not their memory use can be seen.

use crate::gpu::GpuInfo;
use crate::record::GpuLease;
use crate::runid::RunId;
use std::collections::{HashMap, HashSet};

/// A live run that holds a slot (running or paused) and perhaps GPUs.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    pub id: RunId,
    pub lease: Option<GpuLease>,
}

/// Who uses one GPU's memory, as far as the process list and /proc tell (built outside the
/// policy; see `crate::usage`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuUse {
    /// Every process on this GPU could be matched to a run or to something else, so a run with
    /// no process here really uses nothing yet. False when some listed process cannot be seen
    /// from here (containers, another PID namespace) or the list itself is unreadable.
    pub attributable: bool,
    /// Known memory use of live runs' processes (MB).
    pub runs: HashMap<RunId, u64>,
    /// Runs with a process here whose memory use the driver does not report (`[N/A]`).
    pub runs_unknown: HashSet<RunId>,
    /// Known memory use of processes that belong to no live run (MB).
    pub foreign_mb: u64,
}

/// MB of `gpu` a new run can count on: reported free minus what live runs reserved there and
/// have not allocated yet. A run whose own use cannot be seen is never counted twice: the
/// used memory nobody else explains is taken to be its allocation, up to its reservation.
/// None when the free memory is unreadable.
pub fn effective_free(gpu: &GpuInfo, holders: &[Holder], usage: Option<&GpuUse>) -> Option<u64> {
    let free = gpu.memory_free_mb?;
    let default_use = GpuUse::default();
    let usage = usage.unwrap_or(&default_use);
    let mut known_outstanding: u64 = 0;
    let mut known_used: u64 = 0;
    let mut unknown_reserved: u64 = 0;
    for holder in holders {
        let Some(lease) = &holder.lease else { continue };
        if !lease.uuids.contains(&gpu.uuid) {
            continue;
        }
        let reserved = lease.reserved_mb;
        let seen = usage.attributable && !usage.runs_unknown.contains(&holder.id);
        if seen {
            let used = usage.runs.get(&holder.id).copied().unwrap_or(0);
            known_used += used;
            known_outstanding += reserved.saturating_sub(used);
        } else {
            unknown_reserved += reserved;
        }
    }
    // Memory in use that neither known run processes nor known foreign processes explain:
    // the runs we cannot see have allocated (at most) this much of their reservations.
    let unexplained = gpu
        .memory_used_mb
        .map(|used| used.saturating_sub(known_used + usage.foreign_mb))
        .unwrap_or(0);
    let unknown_outstanding = unknown_reserved.saturating_sub(unexplained);
    Some(free.saturating_sub(known_outstanding + unknown_outstanding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(total: u64, used: u64) -> GpuInfo {
        let mut g = crate::policy::tests::gpu(0, total - used, 40.0);
        g.memory_total_mb = Some(total);
        g.memory_used_mb = Some(used);
        g
    }

    fn holder(id: &str, reserved_mb: u64) -> Holder {
        Holder {
            id: RunId::parse(id).unwrap(),
            lease: Some(GpuLease {
                gpus: vec![0],
                uuids: vec!["GPU-0".into()],
                reserved_mb,
            }),
        }
    }

    fn seen(runs: &[(&str, u64)], foreign_mb: u64) -> GpuUse {
        GpuUse {
            attributable: true,
            runs: runs
                .iter()
                .map(|(id, mb)| (RunId::parse(id).unwrap(), *mb))
                .collect(),
            runs_unknown: HashSet::new(),
            foreign_mb,
        }
    }

    #[test]
    fn a_reservation_not_yet_allocated_counts_and_an_allocated_one_is_not_counted_twice() {
        let holders = [holder("a", 6000)];
        // Not allocated yet: the whole reservation is outstanding.
        let fresh = seen(&[], 0);
        assert_eq!(
            effective_free(&gpu(24000, 0), &holders, Some(&fresh)),
            Some(18000)
        );
        // Allocated 4000 of it: 2000 outstanding on top of what the driver shows used.
        let part = seen(&[("a", 4000)], 0);
        assert_eq!(
            effective_free(&gpu(24000, 4000), &holders, Some(&part)),
            Some(18000)
        );
        // Over its reservation: nothing outstanding.
        let over = seen(&[("a", 9000)], 0);
        assert_eq!(
            effective_free(&gpu(24000, 9000), &holders, Some(&over)),
            Some(15000)
        );
    }

    #[test]
    fn unknown_usage_is_never_counted_twice() {
        let holders = [holder("a", 6000)];
        // In a container the run's process is invisible; the driver shows 6000 MB used.
        let hidden = GpuUse {
            attributable: false,
            ..Default::default()
        };
        assert_eq!(
            effective_free(&gpu(24000, 6000), &holders, Some(&hidden)),
            Some(18000)
        );
        // Nothing allocated yet: the reservation still counts.
        assert_eq!(
            effective_free(&gpu(24000, 0), &holders, Some(&hidden)),
            Some(18000)
        );
        // Visible but `[N/A]`: the same rule.
        let mut na = seen(&[], 0);
        na.runs_unknown.insert(RunId::parse("a").unwrap());
        assert_eq!(
            effective_free(&gpu(24000, 6000), &holders, Some(&na)),
            Some(18000)
        );
        // Memory used by a foreign process is not taken for the run's allocation.
        let mut foreign = na.clone();
        foreign.foreign_mb = 6000;
        assert_eq!(
            effective_free(&gpu(24000, 6000), &holders, Some(&foreign)),
            Some(12000)
        );
    }

    #[test]
    fn leases_on_other_gpus_do_not_count_and_unreadable_free_memory_is_none() {
        let mut other = holder("b", 6000);
        other.lease.as_mut().unwrap().uuids = vec!["GPU-9".into()];
        assert_eq!(effective_free(&gpu(24000, 0), &[other], None), Some(24000));
        let mut unreadable = gpu(24000, 0);
        unreadable.memory_free_mb = None;
        assert_eq!(effective_free(&unreadable, &[], None), None);
    }
}
