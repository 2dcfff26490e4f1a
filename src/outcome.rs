//! How an attempt ended, from the child's exit and what backprop did to it: the status,
//! the reason kept on the record, and backprop's own exit code (README, "Exit codes").

use crate::record::Status;

pub const EXIT_COMPLETED: i32 = 0;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_REFUSED: i32 = 75;
pub const EXIT_TIMEBOXED: i32 = 124;
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_STOPPED: i32 = 130;

/// Why backprop itself stopped the script, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    Timebox,
    User,
    /// A search run reached its rung's budget.
    Rung,
    GpuMemoryLimit,
    /// Paused on a GPU that fell off the bus: it could never resume.
    GpuLost,
    /// Slurm's early warning: the job's time limit is near.
    SlurmTimeLimit,
    /// Slurm's early warning long before the time limit: the job is being preempted.
    SlurmPreempted,
    /// Slurm ends the job (SIGTERM without a `backprop stop`): cancelled, preempted or the
    /// node going down; the submitting side refines it from accounting.
    SlurmEnded,
}

impl StopCause {
    pub fn reason(self) -> &'static str {
        match self {
            StopCause::Timebox => "timebox",
            StopCause::User => "user",
            StopCause::Rung => "rung",
            StopCause::GpuMemoryLimit => "gpu_memory_limit",
            StopCause::GpuLost => "gpu_lost",
            StopCause::SlurmTimeLimit => "slurm: timeout",
            StopCause::SlurmPreempted => "slurm: preempted",
            StopCause::SlurmEnded => SLURM_ENDED,
        }
    }

    /// Stopped by Slurm's early warning (a requeue may follow).
    pub fn is_slurm_warning(self) -> bool {
        matches!(self, StopCause::SlurmTimeLimit | StopCause::SlurmPreempted)
    }
}

/// The reason of a run Slurm ended with SIGTERM, until accounting says why.
pub const SLURM_ENDED: &str = "slurm: job ended";

/// How the child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for ExitInfo {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub reason: String,
    pub exit_code: i32,
}

impl Outcome {
    /// Why a failed attempt failed, for a message: `exit 2`, `signal 11, exit 139`,
    /// `cuda_oom, exit 1` (never `exit, exit 2`).
    pub fn failure_text(&self) -> String {
        let code = self.exit_code;
        match self.reason.as_str() {
            "exit" => format!("exit {code}"),
            "signal" if code > 128 => format!("signal {}, exit {code}", code - 128),
            reason => format!("{reason}, exit {code}"),
        }
    }
}

/// Decides the outcome of an attempt.
pub fn decide(exit: ExitInfo, cause: Option<StopCause>, cuda_oom: bool) -> Outcome {
    let outcome = |status, reason: &str, exit_code| Outcome {
        status,
        reason: reason.to_string(),
        exit_code,
    };
    match cause {
        // Whether it exited by itself inside the grace period or was killed.
        Some(StopCause::Timebox) => outcome(Status::Timeboxed, "timebox", EXIT_TIMEBOXED),
        Some(cause) => outcome(Status::Stopped, cause.reason(), EXIT_STOPPED),
        None => {
            let script_code = match (exit.code, exit.signal) {
                (Some(code), _) => code,
                (None, Some(signal)) => 128 + signal,
                (None, None) => 1,
            };
            if script_code == 0 {
                outcome(Status::Completed, "exit", EXIT_COMPLETED)
            } else if cuda_oom {
                outcome(Status::Failed, "cuda_oom", script_code)
            } else if exit.signal.is_some() {
                outcome(Status::Failed, "signal", script_code)
            } else {
                outcome(Status::Failed, "exit", script_code)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: i32) -> ExitInfo {
        ExitInfo {
            code: Some(c),
            signal: None,
        }
    }
    fn signal(s: i32) -> ExitInfo {
        ExitInfo {
            code: None,
            signal: Some(s),
        }
    }

    #[test]
    fn a_clean_exit_completes() {
        assert_eq!(decide(code(0), None, false).status, Status::Completed);
        assert_eq!(decide(code(0), None, false).exit_code, 0);
    }

    #[test]
    fn a_failing_script_passes_its_code_through() {
        let o = decide(code(3), None, false);
        assert_eq!(
            (o.status, o.exit_code, o.reason.as_str()),
            (Status::Failed, 3, "exit")
        );
        let o = decide(signal(11), None, false);
        assert_eq!(
            (o.status, o.exit_code, o.reason.as_str()),
            (Status::Failed, 139, "signal")
        );
        assert_eq!(decide(code(1), None, true).reason, "cuda_oom");
    }

    #[test]
    fn a_failure_reads_without_repeating_itself() {
        assert_eq!(decide(code(2), None, false).failure_text(), "exit 2");
        assert_eq!(
            decide(signal(11), None, false).failure_text(),
            "signal 11, exit 139"
        );
        assert_eq!(
            decide(code(1), None, true).failure_text(),
            "cuda_oom, exit 1"
        );
    }

    #[test]
    fn the_timebox_wins_however_the_script_ended() {
        for exit in [code(0), code(130), signal(9), signal(2)] {
            let o = decide(exit, Some(StopCause::Timebox), false);
            assert_eq!((o.status, o.exit_code), (Status::Timeboxed, 124));
        }
    }

    #[test]
    fn a_user_stop_is_stopped_with_130() {
        let o = decide(signal(9), Some(StopCause::User), false);
        assert_eq!(
            (o.status, o.exit_code, o.reason.as_str()),
            (Status::Stopped, 130, "user")
        );
    }
}
