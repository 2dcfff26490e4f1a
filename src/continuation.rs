//! What happens after an attempt ends: done, restart after a failure (`--max-restarts`, with
//! backoff), or another round after a timebox (`--rounds` / `untilDone`).

use crate::outcome::Outcome;
use crate::record::Status;
use std::time::Duration;

/// How many timeboxes a run of a batch may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounds {
    /// One attempt per invocation (plain `run`, `resume`, `queue` without rounds).
    Off,
    /// At most this many attempts in this invocation.
    Limited(u32),
    /// Until it completes, fails, or has used `maxTotalMinutes`.
    UntilDone,
}

/// A run's budget, carried along with its job.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub max_restarts: u32,
    pub restarts_used: u32,
    pub rounds: Rounds,
    /// Attempts made by this invocation so far (the one that just ended included).
    pub attempts_made: u32,
    pub max_total: Option<Duration>,
    /// Active time of the run over all its attempts.
    pub active_total: Duration,
}

impl Plan {
    pub fn once(max_restarts: u32) -> Plan {
        Plan {
            max_restarts,
            restarts_used: 0,
            rounds: Rounds::Off,
            attempts_made: 0,
            max_total: None,
            active_total: Duration::ZERO,
        }
    }
}

/// A batch's rounds, kept on each of its run records (`batchRounds`: `{"rounds": 3}` or
/// `{"rounds": "untilDone"}`, with `maxTotalMs`) so that `resume <batch-id>` continues its
/// runs with them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchRounds {
    pub rounds: Rounds,
    pub max_total: Option<Duration>,
}

impl BatchRounds {
    const KEY: &'static str = "batchRounds";

    /// Written on a record only when the batch has rounds.
    pub fn write(&self, extra: &mut serde_json::Map<String, serde_json::Value>) {
        let rounds = match self.rounds {
            Rounds::Off => return,
            Rounds::Limited(n) => serde_json::Value::from(n),
            Rounds::UntilDone => serde_json::Value::from("untilDone"),
        };
        let mut value = serde_json::json!({ "rounds": rounds });
        if let Some(max) = self.max_total {
            value["maxTotalMs"] = serde_json::Value::from(max.as_millis() as u64);
        }
        extra.insert(Self::KEY.into(), value);
    }

    /// The rounds of the batch `rec` belongs to (none when it was queued without them).
    pub fn of(rec: &crate::record::RunRecord) -> BatchRounds {
        let value = rec.extra.get(Self::KEY);
        let rounds = match value.and_then(|v| v.get("rounds")) {
            Some(v) if v.as_str() == Some("untilDone") => Rounds::UntilDone,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map_or(Rounds::Off, Rounds::Limited),
            None => Rounds::Off,
        };
        let max_total = value
            .and_then(|v| v.get("maxTotalMs"))
            .and_then(|v| v.as_u64())
            .map(Duration::from_millis);
        BatchRounds { rounds, max_total }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Done,
    Restart {
        after: Duration,
        from: Option<String>,
    },
    NextRound {
        from: String,
    },
}

/// The wait before restart number `n` (0-based): 1 s, 2 s, 4 s, ... at most a minute.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(6)).min(Duration::from_secs(60))
}

pub fn next(
    plan: &Plan,
    outcome: &Outcome,
    latest_checkpoint: Option<String>,
    interrupted: bool,
) -> Next {
    if interrupted {
        return Next::Done;
    }
    match outcome.status {
        Status::Failed if plan.restarts_used < plan.max_restarts => Next::Restart {
            after: backoff(plan.restarts_used),
            from: latest_checkpoint,
        },
        Status::Timeboxed => {
            let Some(from) = latest_checkpoint else {
                return Next::Done;
            };
            let more = match plan.rounds {
                Rounds::Off => false,
                Rounds::Limited(n) => plan.attempts_made < n,
                Rounds::UntilDone => true,
            };
            let budget_left = plan.max_total.is_none_or(|max| plan.active_total < max);
            if more && budget_left {
                Next::NextRound { from }
            } else {
                Next::Done
            }
        }
        _ => Next::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batchs_rounds_are_read_back_from_its_records() {
        let mut rec = crate::record::RunRecord::new(
            crate::runid::RunId::parse("a").unwrap(),
            "a".into(),
            Default::default(),
            1,
        );
        assert_eq!(BatchRounds::of(&rec).rounds, Rounds::Off);
        for rounds in [Rounds::Limited(3), Rounds::UntilDone] {
            let kept = BatchRounds {
                rounds,
                max_total: Some(Duration::from_secs(60)),
            };
            kept.write(&mut rec.extra);
            assert_eq!(BatchRounds::of(&rec), kept);
        }
    }

    fn ended(status: Status) -> Outcome {
        Outcome {
            status,
            reason: "x".into(),
            exit_code: 1,
        }
    }

    #[test]
    fn a_failure_restarts_from_the_checkpoint_until_restarts_run_out() {
        let mut plan = Plan::once(2);
        let ckpt = Some("c".to_string());
        assert_eq!(
            next(&plan, &ended(Status::Failed), ckpt.clone(), false),
            Next::Restart {
                after: Duration::from_secs(1),
                from: ckpt.clone()
            }
        );
        plan.restarts_used = 2;
        assert_eq!(
            next(&plan, &ended(Status::Failed), ckpt.clone(), false),
            Next::Done
        );
        assert_eq!(
            next(&Plan::once(2), &ended(Status::Failed), ckpt, true),
            Next::Done
        );
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }

    #[test]
    fn a_timeboxed_run_takes_another_round_while_rounds_and_budget_last() {
        let mut plan = Plan {
            rounds: Rounds::Limited(3),
            attempts_made: 1,
            ..Plan::once(0)
        };
        let ckpt = Some("c".to_string());
        assert_eq!(
            next(&plan, &ended(Status::Timeboxed), ckpt.clone(), false),
            Next::NextRound { from: "c".into() }
        );
        assert_eq!(
            next(&plan, &ended(Status::Timeboxed), None, false),
            Next::Done,
            "no checkpoint, no round"
        );
        plan.attempts_made = 3;
        assert_eq!(
            next(&plan, &ended(Status::Timeboxed), ckpt.clone(), false),
            Next::Done
        );
        let budget = Plan {
            rounds: Rounds::UntilDone,
            max_total: Some(Duration::from_secs(60)),
            active_total: Duration::from_secs(61),
            ..Plan::once(0)
        };
        assert_eq!(
            next(&budget, &ended(Status::Timeboxed), ckpt.clone(), false),
            Next::Done
        );
        assert_eq!(
            next(&Plan::once(0), &ended(Status::Timeboxed), ckpt, false),
            Next::Done
        );
        assert_eq!(
            next(&Plan::once(0), &ended(Status::Completed), None, false),
            Next::Done
        );
    }
}
