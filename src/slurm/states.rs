//! Reading `squeue` and `sacct -P` output, and what a job's end means for its record.

use crate::record::Status;
use std::collections::HashMap;

/// `squeue -h -r -o %i|%T` → job id → state.
pub fn parse_squeue(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (id, state) = line.trim().split_once('|')?;
            Some((id.trim().to_string(), state.trim().to_string()))
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct SacctRow {
    /// The first word of the state: `CANCELLED by 0` → `CANCELLED`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

/// `sacct -P -n -X --format=JobID,State,ExitCode` → job id → row. Steps (`123.batch`) are
/// skipped; `ExitCode` is `code:signal`.
pub fn parse_sacct(text: &str) -> HashMap<String, SacctRow> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split('|');
            let (id, state, exit) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
            if id.is_empty() || id.contains('.') {
                return None;
            }
            let (code, signal) = exit.split_once(':').unwrap_or((exit, ""));
            Some((
                id.to_string(),
                SacctRow {
                    state: state.split_whitespace().next().unwrap_or("").to_string(),
                    exit_code: code.parse().ok(),
                    signal: signal.parse().ok(),
                },
            ))
        })
        .collect()
}

/// What to do with an active record whose Slurm job is no longer queued or running.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// The job is still queued or running (or its end is not known yet): keep the record.
    Stays,
    End {
        status: Status,
        reason: String,
    },
}

/// `state` is the job's final Slurm state; `started` whether backprop on the node had
/// claimed the run (it records the outcome itself when it can).
pub fn fate(state: &str, started: bool) -> Fate {
    let end = |status, reason: String| Fate::End { status, reason };
    match (state, started) {
        (
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
            | "RESIZING",
            _,
        ) => Fate::Stays,
        ("CANCELLED", false) => end(Status::Stopped, "slurm: cancelled before it started".into()),
        ("COMPLETED", false) => end(
            Status::Lost,
            "slurm: the job ended without starting the run".into(),
        ),
        (other, false) => end(
            Status::Failed,
            format!("slurm: {other} before the run started"),
        ),
        // backprop on the node died with its job (cancelled, out of time, node failure).
        (other, true) => end(
            Status::Lost,
            format!("slurm: job {}", other.to_ascii_lowercase()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_states_per_task() {
        let states = parse_squeue("101|RUNNING\n102_0|RUNNING\n102_3|PENDING\n\n");
        assert_eq!(states["102_3"], "PENDING");
        assert_eq!(states.len(), 3);
    }

    #[test]
    fn sacct_rows_skip_steps_and_split_exit_codes() {
        let text = "101|COMPLETED|0:0\n101.batch|COMPLETED|0:0\n102_1|CANCELLED by 0|0:15\n103|TIMEOUT|0:0\n104|FAILED|3:0\n";
        let rows = parse_sacct(text);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows["102_1"],
            SacctRow {
                state: "CANCELLED".into(),
                exit_code: Some(0),
                signal: Some(15)
            }
        );
        assert_eq!(rows["104"].exit_code, Some(3));
    }

    #[test]
    fn a_job_that_ended_before_backprop_could_record_anything_is_marked() {
        assert_eq!(fate("RUNNING", false), Fate::Stays);
        assert!(matches!(
            fate("CANCELLED", false),
            Fate::End {
                status: Status::Stopped,
                ..
            }
        ));
        assert!(matches!(
            fate("TIMEOUT", false),
            Fate::End {
                status: Status::Failed,
                ..
            }
        ));
        assert!(matches!(
            fate("NODE_FAIL", true),
            Fate::End {
                status: Status::Lost,
                ..
            }
        ));
        assert!(matches!(
            fate("COMPLETED", false),
            Fate::End {
                status: Status::Lost,
                ..
            }
        ));
    }
}
