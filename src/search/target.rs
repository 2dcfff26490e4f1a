//! What one attempt of a search run trains toward: its rung's budget, counted over all the
//! run's attempts.

use std::time::Duration;

use super::spec::Budget;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RungTarget {
    pub rung: usize,
    pub budget: Budget,
    /// Active time of the run's earlier attempts (a minutes budget counts them too).
    pub active_before: Duration,
}

impl RungTarget {
    /// Whether the attempt, at its last reported `step` after `active` time of its own, has
    /// used the budget.
    pub fn reached(&self, step: Option<u64>, active: Duration) -> bool {
        self.budget.is_reached(step, self.active_before + active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_count_as_reported_and_minutes_over_all_attempts() {
        let steps = RungTarget {
            rung: 0,
            budget: Budget::Steps(100),
            active_before: Duration::from_secs(50),
        };
        assert!(!steps.reached(None, Duration::from_secs(999)));
        assert!(!steps.reached(Some(99), Duration::ZERO));
        assert!(steps.reached(Some(125), Duration::ZERO));
        let minutes = RungTarget {
            budget: Budget::Active(Duration::from_secs(60)),
            ..steps
        };
        assert!(!minutes.reached(Some(1000), Duration::from_secs(9)));
        assert!(minutes.reached(None, Duration::from_secs(10)));
    }
}
