//! Every change of a run's status, as named transitions. Each checks where the run is before
//! it moves it and says why when it cannot; nothing else in backprop assigns a status.
//!
//! ```text
//! queued ──admit──▶ running ⇄ paused ──finish──▶ completed | failed | timeboxed | stopped
//!   ▲ │                │                          (requeue: a restart or the next round)
//!   │ └─end_unstarted──┼─▶ rejected | stopped | failed
//!   │                  └─mark_lost / slurm_ended─▶ lost | an end Slurm reported
//!   └──reclaim (resume), submit_to_slurm── any end
//! ```

use super::{Attempt, AttemptEvent, GpuLease, RunRecord, SlurmJob, Status, SupervisorRef};

/// The transitions, for the table of what is allowed from where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// queued → queued with a new reason for waiting.
    Wait,
    /// queued → queued, held out of admission (a restart's backoff).
    Hold,
    /// queued (held) → queued, asking for a start again.
    Release,
    /// queued → running, with a new attempt.
    Admit,
    /// running → paused (thermal).
    Pause,
    /// paused → running.
    Unpause,
    /// running | paused → completed | failed | timeboxed | stopped.
    Finish,
    /// running | paused → queued: the attempt ended and another follows (restart, round).
    Requeue,
    /// queued → rejected | stopped | failed, without starting.
    EndUnstarted,
    /// an end → queued, claimed by a process that will run the next attempt (`resume`).
    Reclaim,
    /// queued (new) or an end → queued on Slurm.
    SubmitToSlurm,
    /// queued on Slurm → the end it had before (`sbatch` refused a resubmission).
    Unsubmit,
    /// queued | running | paused → lost (its supervisor died).
    MarkLost,
    /// queued | running | paused → the end Slurm reported for its job.
    SlurmEnded,
    /// queued | running | paused: ask its supervisor to stop it (a flag, no status change).
    RequestStop,
    /// queued (held at a rung of a search) → pruned: the search ended without promoting it.
    Prune,
    /// failed → stopped: the signal that killed the attempt was Slurm ending the job.
    BlameSlurm,
}

impl Transition {
    fn verb(self) -> &'static str {
        match self {
            Transition::Wait => "wait for a start",
            Transition::Hold => "be held",
            Transition::Release => "be released",
            Transition::Admit => "start",
            Transition::Pause => "pause",
            Transition::Unpause => "resume from a pause",
            Transition::Finish => "finish an attempt",
            Transition::Requeue => "be queued for another attempt",
            Transition::EndUnstarted => "end without starting",
            Transition::Reclaim => "be resumed",
            Transition::SubmitToSlurm => "be submitted to Slurm",
            Transition::Unsubmit => "be taken back from Slurm",
            Transition::MarkLost => "be marked lost",
            Transition::SlurmEnded => "take the end Slurm reported",
            Transition::RequestStop => "be asked to stop",
            Transition::Prune => "be pruned",
            Transition::BlameSlurm => "be marked as ended by Slurm",
        }
    }
}

/// The one table of what may happen to a run in each status.
pub fn allowed(from: Status, transition: Transition) -> bool {
    use Status::*;
    use Transition::*;
    let ended = !from.is_active();
    match transition {
        Wait | Hold | Release | Admit | EndUnstarted | Unsubmit | Prune => from == Queued,
        Pause => from == Running,
        Unpause => from == Paused,
        Finish | Requeue => matches!(from, Running | Paused),
        Reclaim => ended,
        SubmitToSlurm => from == Queued || ended,
        MarkLost | SlurmEnded | RequestStop => from.is_active(),
        BlameSlurm => from == Failed,
    }
}

/// Why a transition was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run {id} cannot {verb}: it is {from}")]
pub struct Refused {
    pub id: String,
    pub verb: &'static str,
    pub from: Status,
}

fn check(rec: &RunRecord, transition: Transition) -> Result<(), Refused> {
    if allowed(rec.status, transition) {
        Ok(())
    } else {
        Err(Refused {
            id: rec.id.to_string(),
            verb: transition.verb(),
            from: rec.status,
        })
    }
}

/// Logs a refused transition made from a background writer, where nobody waits for it (the
/// record moved on meanwhile, e.g. another process marked it lost).
pub fn or_log(result: Result<(), Refused>) {
    if let Err(refused) = result {
        tracing::warn!("{refused}");
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptEnd {
    pub status: Status,
    /// `exit`, `timebox`, `user`, `cuda_oom`, ...
    pub reason: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

/// What a new attempt starts with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptStart {
    pub number: u32,
    pub gpus: Vec<u32>,
    pub reserved_mb: Option<u64>,
    pub resumed_from: Option<String>,
    pub host: String,
    pub lease: Option<GpuLease>,
}

pub fn wait(rec: &mut RunRecord, why: &str) -> Result<(), Refused> {
    check(rec, Transition::Wait)?;
    rec.reason = Some(why.to_string());
    Ok(())
}

/// Holds a queued run out of admission (a restart's backoff) with the reason shown.
pub fn hold(rec: &mut RunRecord, why: &str) -> Result<(), Refused> {
    check(rec, Transition::Hold)?;
    rec.held = true;
    rec.reason = Some(why.to_string());
    Ok(())
}

/// Puts a held run back in the admission queue, at its end (`seq`).
pub fn release(rec: &mut RunRecord, seq: u64) -> Result<(), Refused> {
    check(rec, Transition::Release)?;
    rec.held = false;
    rec.queue_seq = seq;
    Ok(())
}

/// The run starts its next attempt: the slot and the GPU lease are taken in this change.
pub fn admit(rec: &mut RunRecord, start: AttemptStart, now: u64) -> Result<(), Refused> {
    check(rec, Transition::Admit)?;
    rec.status = Status::Running;
    rec.held = false;
    rec.reason = None;
    rec.end_time = None;
    rec.start_time.get_or_insert(now);
    rec.gpu_lease = start.lease;
    rec.attempts.push(Attempt {
        number: start.number,
        start_time: Some(now),
        status: Some(Status::Running),
        gpus: start.gpus,
        reserved_mb: start.reserved_mb,
        resumed_from: start.resumed_from,
        host: Some(start.host),
        ..Default::default()
    });
    Ok(())
}

/// The attempt's process is running (its pid is also its process group).
pub fn record_pid(rec: &mut RunRecord, attempt: u32, pid: u32) -> Result<(), Refused> {
    if !matches!(rec.status, Status::Running | Status::Paused) {
        return Err(Refused {
            id: rec.id.to_string(),
            verb: "record its process",
            from: rec.status,
        });
    }
    if let Some(current) = rec.attempts.last_mut()
        && current.number == attempt
        && current.is_open()
    {
        current.pid = Some(pid);
    }
    Ok(())
}

/// Adds an event (a warning, a memory note) to the attempt under way.
pub fn note(rec: &mut RunRecord, event: AttemptEvent) {
    if let Some(attempt) = rec.attempts.last_mut()
        && attempt.is_open()
    {
        attempt.events.push(event);
    }
}

pub fn pause(rec: &mut RunRecord, why: &str, now: u64) -> Result<(), Refused> {
    check(rec, Transition::Pause)?;
    rec.status = Status::Paused;
    rec.reason = Some(why.to_string());
    note(rec, event(now, "pause", format!("thermal: {why}")));
    Ok(())
}

pub fn unpause(rec: &mut RunRecord, why: &str, now: u64) -> Result<(), Refused> {
    check(rec, Transition::Unpause)?;
    rec.status = Status::Running;
    rec.reason = None;
    if let Some(attempt) = rec.attempts.last_mut() {
        attempt.status = Some(Status::Running);
    }
    note(rec, event(now, "resume", why.to_string()));
    Ok(())
}

/// The attempt under way ended and so does the run.
pub fn finish(rec: &mut RunRecord, end: &AttemptEnd, now: u64) -> Result<(), Refused> {
    check(rec, Transition::Finish)?;
    assert!(
        matches!(
            end.status,
            Status::Completed | Status::Failed | Status::Timeboxed | Status::Stopped
        ),
        "an attempt does not end {}",
        end.status
    );
    close_attempt(rec, end, now);
    end_run(rec, end.status, &end.reason, now);
    Ok(())
}

/// The attempt under way ended and another will follow (a restart after a failure, the next
/// round after a timebox); `held` keeps it out of admission until released.
pub fn requeue(
    rec: &mut RunRecord,
    end: &AttemptEnd,
    why: &str,
    held: bool,
    now: u64,
) -> Result<(), Refused> {
    check(rec, Transition::Requeue)?;
    close_attempt(rec, end, now);
    rec.status = Status::Queued;
    rec.reason = Some(why.to_string());
    rec.held = held;
    rec.end_time = None;
    rec.gpu_lease = None;
    Ok(())
}

/// A queued run ends without starting (refused, stopped while waiting, not startable).
pub fn end_unstarted(
    rec: &mut RunRecord,
    status: Status,
    reason: &str,
    now: u64,
) -> Result<(), Refused> {
    check(rec, Transition::EndUnstarted)?;
    assert!(
        matches!(status, Status::Rejected | Status::Stopped | Status::Failed),
        "an unstarted run does not end {status}"
    );
    end_run(rec, status, reason, now);
    Ok(())
}

/// A search run waiting at a rung ends `pruned`: the search is over and it was not promoted.
pub fn prune(rec: &mut RunRecord, why: &str, now: u64) -> Result<(), Refused> {
    check(rec, Transition::Prune)?;
    end_run(rec, Status::Pruned, why, now);
    Ok(())
}

/// An ended run is claimed by `supervisor` for its next attempt (`resume`).
pub fn reclaim(rec: &mut RunRecord, supervisor: SupervisorRef, seq: u64) -> Result<(), Refused> {
    check(rec, Transition::Reclaim)?;
    rec.status = Status::Queued;
    rec.queue_seq = seq;
    rec.held = false;
    rec.reason = None;
    rec.end_time = None;
    rec.stop_requested = false;
    rec.supervisor = Some(supervisor);
    Ok(())
}

/// The run's next attempt is a Slurm job (no local process supervises it).
pub fn submit_to_slurm(rec: &mut RunRecord, job: SlurmJob, why: &str) -> Result<(), Refused> {
    check(rec, Transition::SubmitToSlurm)?;
    rec.status = Status::Queued;
    rec.held = false;
    rec.supervisor = None;
    rec.end_time = None;
    rec.stop_requested = false;
    rec.reason = Some(why.to_string());
    rec.slurm = Some(job);
    Ok(())
}

/// A resubmission `sbatch` refused: the run goes back to how it ended.
pub fn unsubmit(rec: &mut RunRecord, back_to: Status) -> Result<(), Refused> {
    check(rec, Transition::Unsubmit)?;
    assert!(!back_to.is_active(), "a run is taken back to an end");
    rec.status = back_to;
    rec.supervisor = None;
    Ok(())
}

pub fn mark_lost(rec: &mut RunRecord, now: u64) -> Result<(), Refused> {
    check(rec, Transition::MarkLost)?;
    end_run(rec, Status::Lost, "lost", now);
    Ok(())
}

/// The run's Slurm job ended before backprop on the node could record it.
pub fn slurm_ended(
    rec: &mut RunRecord,
    status: Status,
    reason: &str,
    now: u64,
) -> Result<(), Refused> {
    check(rec, Transition::SlurmEnded)?;
    assert!(!status.is_active(), "Slurm reports an end");
    end_run(rec, status, reason, now);
    Ok(())
}

/// Slurm ended the job (cancelled, timed out, preempted) and its signal reached the script
/// before backprop could stop it: the attempt did not fail, Slurm stopped it.
pub fn blame_slurm(rec: &mut RunRecord, reason: &str) -> Result<(), Refused> {
    check(rec, Transition::BlameSlurm)?;
    rec.status = Status::Stopped;
    rec.reason = Some(reason.to_string());
    if let Some(attempt) = rec.attempts.last_mut() {
        attempt.status = Some(Status::Stopped);
        attempt.reason = Some(reason.to_string());
    }
    Ok(())
}

pub fn request_stop(rec: &mut RunRecord) -> Result<(), Refused> {
    check(rec, Transition::RequestStop)?;
    rec.stop_requested = true;
    Ok(())
}

fn event(time: u64, kind: &str, detail: String) -> AttemptEvent {
    AttemptEvent {
        time,
        kind: kind.to_string(),
        detail: Some(detail),
    }
}

fn close_attempt(rec: &mut RunRecord, end: &AttemptEnd, now: u64) {
    if let Some(attempt) = rec.attempts.last_mut()
        && attempt.is_open()
    {
        attempt.end_time = Some(now);
        attempt.status = Some(end.status);
        attempt.reason = Some(end.reason.clone());
        attempt.exit_code = end.exit_code;
        attempt.signal = end.signal;
    }
}

/// The run is over: nobody supervises it, it holds nothing, and an attempt left open (a
/// supervisor that died) ends with it.
fn end_run(rec: &mut RunRecord, status: Status, reason: &str, now: u64) {
    rec.status = status;
    rec.reason = Some(reason.to_string());
    rec.end_time = Some(now);
    rec.held = false;
    rec.supervisor = None;
    rec.stop_requested = false;
    rec.gpu_lease = None;
    if let Some(attempt) = rec.attempts.last_mut()
        && attempt.is_open()
    {
        attempt.end_time = Some(now);
        attempt.status = Some(status);
        attempt.reason = Some(reason.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunSpec;
    use crate::runid::RunId;
    use Status::*;
    use Transition::*;

    const STATUSES: [Status; 10] = [
        Queued, Running, Paused, Completed, Failed, Timeboxed, Stopped, Rejected, Lost, Pruned,
    ];
    const TRANSITIONS: [Transition; 17] = [
        Wait,
        Hold,
        Release,
        Admit,
        Pause,
        Unpause,
        Finish,
        Requeue,
        EndUnstarted,
        Reclaim,
        SubmitToSlurm,
        Unsubmit,
        MarkLost,
        SlurmEnded,
        RequestStop,
        Prune,
        BlameSlurm,
    ];

    /// The expected table, written out: the statuses each transition may leave from.
    fn expected(transition: Transition) -> &'static [Status] {
        const ENDS: &[Status] = &[
            Completed, Failed, Timeboxed, Stopped, Rejected, Lost, Pruned,
        ];
        const ACTIVE: &[Status] = &[Queued, Running, Paused];
        match transition {
            Wait | Hold | Release | Admit | EndUnstarted | Unsubmit | Prune => &[Queued],
            Pause => &[Running],
            Unpause => &[Paused],
            Finish | Requeue => &[Running, Paused],
            Reclaim => ENDS,
            SubmitToSlurm => &[
                Queued, Completed, Failed, Timeboxed, Stopped, Rejected, Lost, Pruned,
            ],
            MarkLost | SlurmEnded | RequestStop => ACTIVE,
            BlameSlurm => &[Failed],
        }
    }

    #[test]
    fn every_transition_is_allowed_exactly_from_the_statuses_of_the_table() {
        for transition in TRANSITIONS {
            for from in STATUSES {
                assert_eq!(
                    allowed(from, transition),
                    expected(transition).contains(&from),
                    "{transition:?} from {from}"
                );
            }
        }
    }

    fn record_in(status: Status) -> RunRecord {
        let mut rec = RunRecord::new(
            RunId::parse("r").unwrap(),
            "r".into(),
            RunSpec::default(),
            1,
        );
        rec.status = status;
        rec
    }

    fn start(number: u32) -> AttemptStart {
        AttemptStart {
            number,
            gpus: vec![1],
            reserved_mb: Some(2500),
            host: "h".into(),
            lease: Some(GpuLease {
                gpus: vec![1],
                uuids: vec!["GPU-1".into()],
                reserved_mb: 2500,
            }),
            ..Default::default()
        }
    }

    fn ended(status: Status, reason: &str) -> AttemptEnd {
        AttemptEnd {
            status,
            reason: reason.into(),
            exit_code: Some(0),
            signal: None,
        }
    }

    /// Every transition function refuses from a status the table forbids, saying why, and
    /// leaves the record as it was.
    #[test]
    fn refused_transitions_say_why_and_change_nothing() {
        type Call = fn(&mut RunRecord) -> Result<(), Refused>;
        let calls: Vec<(Transition, Call)> = vec![
            (Wait, |r| wait(r, "x")),
            (Hold, |r| hold(r, "x")),
            (Release, |r| release(r, 9)),
            (Admit, |r| admit(r, start(1), 5)),
            (Pause, |r| pause(r, "hot", 5)),
            (Unpause, |r| unpause(r, "cool", 5)),
            (Finish, |r| finish(r, &ended(Completed, "exit"), 5)),
            (Requeue, |r| {
                requeue(r, &ended(Failed, "exit"), "again", true, 5)
            }),
            (EndUnstarted, |r| end_unstarted(r, Rejected, "no", 5)),
            (Reclaim, |r| reclaim(r, crate::proc_info::me(), 9)),
            (SubmitToSlurm, |r| {
                submit_to_slurm(r, SlurmJob::default(), "sub")
            }),
            (Unsubmit, |r| unsubmit(r, Timeboxed)),
            (MarkLost, |r| mark_lost(r, 5)),
            (SlurmEnded, |r| slurm_ended(r, Failed, "slurm: timeout", 5)),
            (RequestStop, request_stop),
            (Prune, |r| prune(r, "search over", 5)),
            (BlameSlurm, |r| blame_slurm(r, "slurm: cancelled by root")),
        ];
        assert_eq!(calls.len(), TRANSITIONS.len());
        for (transition, call) in calls {
            for from in STATUSES {
                let mut rec = record_in(from);
                if matches!(from, Running | Paused) {
                    rec.attempts.push(Attempt {
                        number: 1,
                        start_time: Some(1),
                        status: Some(from),
                        ..Default::default()
                    });
                }
                let before = rec.clone();
                match call(&mut rec) {
                    Ok(()) => assert!(allowed(from, transition), "{transition:?} from {from}"),
                    Err(refused) => {
                        assert!(!allowed(from, transition), "{transition:?} from {from}");
                        assert_eq!(refused.from, from);
                        assert!(refused.to_string().contains(&format!("it is {from}")));
                        assert_eq!(rec, before, "{transition:?} from {from} changed the record");
                    }
                }
            }
        }
    }

    #[test]
    fn a_run_goes_through_its_life() {
        let mut rec = record_in(Queued);
        wait(&mut rec, "waiting for a slot").unwrap();
        admit(&mut rec, start(1), 10).unwrap();
        assert_eq!((rec.status(), rec.reason.clone()), (Running, None));
        assert_eq!(rec.attempts.len(), 1);
        assert!(rec.gpu_lease.is_some());
        record_pid(&mut rec, 1, 4242).unwrap();
        pause(&mut rec, "GPU 1 at 90°C", 11).unwrap();
        assert_eq!(rec.status(), Paused);
        unpause(&mut rec, "cooled", 12).unwrap();
        let kinds: Vec<&str> = rec.attempts[0]
            .events
            .iter()
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(kinds, ["pause", "resume"]);
        requeue(
            &mut rec,
            &ended(Timeboxed, "timebox"),
            "round 1 done",
            false,
            13,
        )
        .unwrap();
        assert_eq!(rec.status(), Queued);
        assert_eq!(rec.attempts[0].status(), Some(Timeboxed));
        assert!(rec.gpu_lease.is_none() && rec.end_time.is_none());
        admit(&mut rec, start(2), 14).unwrap();
        finish(&mut rec, &ended(Completed, "exit"), 20).unwrap();
        assert_eq!((rec.status(), rec.end_time), (Completed, Some(20)));
        assert!(rec.supervisor.is_none() && rec.gpu_lease.is_none());
        assert_eq!(rec.attempts[1].status(), Some(Completed));
        reclaim(&mut rec, crate::proc_info::me(), 99).unwrap();
        assert_eq!((rec.status(), rec.queue_seq), (Queued, 99));
    }

    #[test]
    fn a_lost_run_closes_its_open_attempt_and_frees_its_lease() {
        let mut rec = record_in(Queued);
        admit(&mut rec, start(1), 10).unwrap();
        mark_lost(&mut rec, 30).unwrap();
        assert_eq!(rec.status(), Lost);
        assert_eq!(rec.attempts[0].status(), Some(Lost));
        assert_eq!(rec.attempts[0].end_time, Some(30));
        assert!(rec.gpu_lease.is_none());
    }

    #[test]
    fn a_held_run_is_released_at_the_back_of_the_queue() {
        let mut rec = record_in(Queued);
        hold(&mut rec, "restart 1 of 3 in 2s").unwrap();
        assert!(rec.held);
        release(&mut rec, 77).unwrap();
        assert!(!rec.held);
        assert_eq!(rec.queue_seq, 77);
    }
}
