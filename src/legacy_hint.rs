//! Scripts written for the original backprop tool, which gave every script
//! `--run-id ID --max-minutes N`: run without those they fail at once asking for them. The
//! decision is pure; the Worker records it on the attempt (an event), and the commands that
//! report how a run ended print the hint.

use crate::outcome::Outcome;
use crate::record::{RunRecord, Status};
use std::time::Duration;

/// A failure within this much active time is a failure at start.
pub const QUICK_FAILURE: Duration = Duration::from_secs(10);

/// The kind of the attempt event that records the hint.
pub const EVENT: &str = "legacy_args_hint";

/// What to do about it, on one line.
pub const HINT: &str = "this script looks written for the original backprop tool (it asks for --run-id / --max-minutes): pass --legacy-args, or set \"scriptArgs\": \"legacy\" in backprop.config.json";

/// Whether an attempt that ended with `outcome` after `active` time deserves the hint: it
/// failed at start, its stderr named the original tool's arguments, and it did not get them.
pub fn applies(
    outcome: &Outcome,
    active: Duration,
    stderr_named_them: bool,
    given_legacy_args: bool,
) -> bool {
    outcome.status == Status::Failed
        && active <= QUICK_FAILURE
        && stderr_named_them
        && !given_legacy_args
}

/// Whether the run's latest attempt was given the hint.
pub fn noted(rec: &RunRecord) -> bool {
    rec.current_attempt()
        .is_some_and(|a| a.events.iter().any(|e| e.kind == EVENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ExitInfo, decide};

    fn failed() -> Outcome {
        decide(
            ExitInfo {
                code: Some(2),
                signal: None,
            },
            None,
            false,
        )
    }

    #[test]
    fn only_a_quick_failure_that_asked_for_the_arguments() {
        let quick = Duration::from_secs(1);
        assert!(applies(&failed(), quick, true, false));
        assert!(applies(&failed(), QUICK_FAILURE, true, false));
        assert!(!applies(&failed(), Duration::from_secs(11), true, false));
        assert!(!applies(&failed(), quick, false, false));
        assert!(!applies(&failed(), quick, true, true), "it had them");
        let completed = decide(
            ExitInfo {
                code: Some(0),
                signal: None,
            },
            None,
            false,
        );
        assert!(!applies(&completed, quick, true, false));
        assert!(!HINT.contains('\n'));
    }
}
