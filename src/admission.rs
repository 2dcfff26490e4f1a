//! Admission: `maxParallel` bounds the running + paused runs of every backprop process that
//! shares a home, first come first served. Decided under the store lock from the records
//! themselves, so a run whose supervisor died never holds a slot.

use crate::proc_info::{self, Liveness};
use crate::record::{RunRecord, Status};

/// Whether the run's supervisor may still be working on it (unknown on another host counts).
pub fn supervised(rec: &RunRecord, host: &str) -> bool {
    rec.supervisor
        .as_ref()
        .is_some_and(|s| proc_info::liveness(s, host) != Liveness::Dead)
}

/// A place in the queue: earlier `queueSeq` first, the run id breaking ties.
fn ahead_of(other: &RunRecord, me: &RunRecord) -> bool {
    (other.queue_seq, &other.id) < (me.queue_seq, &me.id)
}

/// May `me` take a slot now? `Err` says why not (shown as the wait reason).
pub fn check(
    records: &[RunRecord],
    me: &RunRecord,
    max_parallel: u32,
    host: &str,
) -> Result<(), String> {
    // The runs of one batch share a supervisor: look each one up in /proc once.
    let mut alive: std::collections::HashMap<(u32, u64), bool> = std::collections::HashMap::new();
    let mut supervised = |rec: &RunRecord| match &rec.supervisor {
        Some(s) if s.host == host => *alive
            .entry((s.pid, s.start_ticks))
            .or_insert_with(|| proc_info::liveness(s, host) != Liveness::Dead),
        Some(_) => true,
        None => false,
    };
    let others = records.iter().filter(|r| r.id != me.id && supervised(r));
    let (mut active, mut ahead) = (0u32, 0u32);
    for rec in others {
        match rec.status {
            Status::Running | Status::Paused => active += 1,
            Status::Queued if ahead_of(rec, me) => ahead += 1,
            _ => {}
        }
    }
    // Strictly first come first served: earlier arrivals start first, even when a slot for
    // this one is free (they take it within one poll).
    if ahead > 0 {
        Err(format!(
            "waiting for earlier runs to start (maxParallel {max_parallel})"
        ))
    } else if active >= max_parallel {
        Err(format!(
            "waiting for a slot: {active} runs active, maxParallel {max_parallel}"
        ))
    } else {
        Ok(())
    }
}

/// The sequence number for a run entering the queue now: later arrivals get larger numbers.
/// Queue entries are made under the store lock, so wall-clock nanoseconds keep arrival order.
pub fn next_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RunSpec, SupervisorRef};

    fn run(id: &str, status: Status, seq: u64, sup: &SupervisorRef) -> RunRecord {
        let mut rec = RunRecord::new(id.into(), id.into(), RunSpec::default(), 0);
        rec.status = status;
        rec.queue_seq = seq;
        rec.supervisor = Some(sup.clone());
        rec
    }

    #[test]
    fn first_come_first_served_within_max_parallel() {
        let me = proc_info::me();
        let host = me.host.clone();
        let records = vec![
            run("a", Status::Running, 1, &me),
            run("b", Status::Queued, 2, &me),
            run("c", Status::Queued, 3, &me),
        ];
        assert!(check(&records, &records[1], 2, &host).is_ok());
        let why = check(&records, &records[2], 3, &host).unwrap_err();
        assert!(why.contains("earlier runs"), "{why}");
        let mut started = records.clone();
        started[1].status = Status::Running;
        let why = check(&started, &started[2], 2, &host).unwrap_err();
        assert!(why.contains("maxParallel 2"), "{why}");
        assert!(check(&started, &started[2], 3, &host).is_ok());
    }

    #[test]
    fn a_dead_supervisor_holds_no_slot() {
        let me = proc_info::me();
        let dead = SupervisorRef {
            pid: u32::MAX - 3,
            ..me.clone()
        };
        let records = vec![
            run("ghost", Status::Running, 1, &dead),
            run("me", Status::Queued, 2, &me),
        ];
        assert!(check(&records, &records[1], 1, &me.host).is_ok());
    }
}
