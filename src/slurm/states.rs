//! Reading `squeue` and `sacct -P` output, and what a job's end means for its record.

use crate::record::Status;
use std::collections::HashMap;

/// A queued or running job as squeue shows it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QueueRow {
    pub state: String,
    /// Why it is pending (`Resources`, `PartitionTimeLimit`, ...); `None` shown as none.
    pub reason: Option<String>,
    /// Where it runs.
    pub nodes: Option<String>,
}

/// `squeue -h -r -o %i|%T|%r|%N` → job id → row.
pub fn parse_squeue(text: &str) -> HashMap<String, QueueRow> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split('|').map(str::trim);
            let id = fields.next().filter(|id| !id.is_empty())?;
            let state = fields.next()?.to_string();
            let known = |v: Option<&str>| {
                v.filter(|v| !v.is_empty() && *v != "None" && *v != "(null)")
                    .map(str::to_string)
            };
            let reason = known(fields.next());
            let nodes = known(fields.next());
            Some((
                id.to_string(),
                QueueRow {
                    state,
                    reason,
                    nodes,
                },
            ))
        })
        .collect()
}

/// A Slurm time (`infinite`, `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`): Some(None) is
/// unlimited, None not a time.
pub fn parse_time(text: &str) -> Option<Option<std::time::Duration>> {
    let text = text.trim();
    if matches!(text, "infinite" | "UNLIMITED" | "INFINITE") {
        return Some(None);
    }
    let number = |t: &str| t.parse::<u64>().ok();
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (number(d)?, rest),
        None => (0, text),
    };
    let parts: Vec<u64> = rest.split(':').map(number).collect::<Option<_>>()?;
    let secs = match (text.contains('-'), parts.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (_, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some(Some(std::time::Duration::from_secs(days * 86_400 + secs)))
}

#[derive(Clone, Debug, PartialEq)]
pub struct SacctRow {
    /// The first word of the state: `CANCELLED by 0` → `CANCELLED`.
    pub state: String,
    /// Who cancelled it (the uid in `CANCELLED by 1000`).
    pub by: Option<String>,
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
                    by: state
                        .split_once(" by ")
                        .map(|(_, by)| by.trim().to_string()),
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
        let states = parse_squeue(
            "101|RUNNING|None|node7\n102_0|RUNNING|None|n1\n102_3|PENDING|PartitionTimeLimit|\n\n",
        );
        assert_eq!(states["102_3"].state, "PENDING");
        assert_eq!(
            states["102_3"].reason.as_deref(),
            Some("PartitionTimeLimit")
        );
        assert_eq!(states["101"].nodes.as_deref(), Some("node7"));
        assert_eq!(states["101"].reason, None);
        assert_eq!(states.len(), 3);
    }

    #[test]
    fn slurm_times_in_every_form() {
        let t = |s: &str| parse_time(s).map(|d| d.map(|d| d.as_secs()));
        assert_eq!(t("infinite"), Some(None));
        assert_eq!(t("5"), Some(Some(300)));
        assert_eq!(t("5:00"), Some(Some(300)));
        assert_eq!(t("1:02:03"), Some(Some(3723)));
        assert_eq!(t("2-00:00:00"), Some(Some(172_800)));
        assert_eq!(t("1-2"), Some(Some(93_600)));
        assert_eq!(t("1-2:30"), Some(Some(95_400)));
        assert_eq!(t("INVALID"), None);
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
                by: Some("0".into()),
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
