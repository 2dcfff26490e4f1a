//! The admitting write. Inside one store transaction the world is gathered (the queued and
//! live runs from the records, their supervisors' liveness and GPU use from /proc), the
//! policy decides, and a start is recorded with its attempt and GPU lease before any other
//! process can look: two processes deciding at the same instant see each other.

use crate::policy::{self, Decision, Holder, Placement, Request, WaitOn, Waiter};
use crate::proc_info::{self, Liveness};
use crate::record::lifecycle::{self, AttemptStart};
use crate::record::{RunRecord, Status, SupervisorRef};
use crate::resources::Snapshot;
use crate::runid::RunId;
use crate::store::Tx;
use crate::usage::{self, LiveAttempt};
use std::collections::HashMap;
use std::path::Path;

/// A run asking to start its next attempt.
pub struct Ask<'a> {
    pub run_id: &'a RunId,
    pub attempt: u32,
    pub resumed_from: Option<String>,
    pub snapshot: &'a Snapshot,
    pub settings: &'a policy::Settings,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Recorded as running, with this placement.
    Started(Placement),
    Waiting(WaitOn, String),
    Impossible(String),
    /// The run is not queued in the store any more (stopped, removed, taken over).
    Gone(String),
}

/// Decides for `ask` against the records in `ex` and records a start.
pub fn admit(ex: &mut Tx, ask: &Ask, home: &Path, host: &str, now: u64) -> Answer {
    let records = ex.active_records();
    let mut alive = Liveness::cache(host);
    let live: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.supervisor.as_ref().is_some_and(|s| alive.check(s)))
        .collect();
    let Some(mine) = records.iter().find(|r| r.id == *ask.run_id) else {
        return Answer::Gone(format!("run {} is no longer in the store", ask.run_id));
    };
    if mine.status() != Status::Queued || mine.held {
        return Answer::Gone(format!(
            "run {} is {} and no longer waits for a start",
            ask.run_id,
            mine.status()
        ));
    }
    let holders: Vec<Holder> = live
        .iter()
        .filter(|r| matches!(r.status(), Status::Running | Status::Paused))
        .map(|r| Holder {
            id: r.id.clone(),
            lease: r.gpu_lease.clone(),
        })
        .collect();
    let mut waiters: Vec<Waiter> = live
        .iter()
        .filter(|r| r.status() == Status::Queued && !r.held)
        .map(|r| Waiter {
            id: r.id.clone(),
            seq: r.queue_seq,
            request: Request::of(&r.spec.options),
        })
        .collect();
    if !waiters.iter().any(|w| w.id == mine.id) {
        // Its supervisor is this process, alive by definition; the record may still name
        // the process that created it before a takeover.
        waiters.push(Waiter {
            id: mine.id.clone(),
            seq: mine.queue_seq,
            request: Request::of(&mine.spec.options),
        });
    }
    let attempts: Vec<LiveAttempt> = live
        .iter()
        .filter_map(|r| {
            let attempt = r.current_attempt().filter(|a| a.is_open())?;
            Some(LiveAttempt {
                id: &r.id,
                pgid: attempt.pid?,
                run_dir: home.join("runs").join(&r.id).display().to_string(),
                uuids: r
                    .gpu_lease
                    .as_ref()
                    .map(|l| l.uuids.clone())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let gpu = &ask.snapshot.gpu;
    let usage = usage::attribute(&gpu.gpus, &gpu.processes, &attempts);
    let world = policy::World {
        snapshot: ask.snapshot,
        holders: &holders,
        waiters: &waiters,
        usage: &usage,
    };
    let decision = policy::decide(ask.run_id, &world, ask.settings);
    let mut rec = mine.clone();
    match decision {
        Decision::Start(placement) => {
            let start = AttemptStart {
                number: ask.attempt,
                gpus: placement.gpus.clone(),
                reserved_mb: placement.lease().map(|l| l.reserved_mb),
                resumed_from: ask.resumed_from.clone(),
                host: host.to_string(),
                lease: placement.lease(),
            };
            match lifecycle::admit(&mut rec, start, now) {
                Ok(()) => {
                    ex.put(&rec);
                    Answer::Started(placement)
                }
                Err(refused) => Answer::Gone(refused.to_string()),
            }
        }
        Decision::Wait(on, why) => {
            if rec.reason.as_deref() != Some(why.as_str())
                && lifecycle::wait(&mut rec, &why).is_ok()
            {
                ex.put(&rec);
            }
            Answer::Waiting(on, why)
        }
        Decision::Impossible(why) => Answer::Impossible(why),
    }
}

impl Liveness {
    /// Supervisor liveness looked up once per process (a batch's runs share one).
    pub fn cache(host: &str) -> LivenessCache<'_> {
        LivenessCache {
            host,
            seen: HashMap::new(),
        }
    }
}

pub struct LivenessCache<'a> {
    host: &'a str,
    seen: HashMap<(String, u32, u64), bool>,
}

impl LivenessCache<'_> {
    /// Whether `supervisor` may still be working (one on another host counts as alive).
    pub fn check(&mut self, supervisor: &SupervisorRef) -> bool {
        let host = self.host;
        *self
            .seen
            .entry((
                supervisor.host.clone(),
                supervisor.pid,
                supervisor.start_ticks,
            ))
            .or_insert_with(|| proc_info::liveness(supervisor, host) != Liveness::Dead)
    }
}
