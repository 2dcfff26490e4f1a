//! Active time: what the timebox counts. Paused time does not count.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ActiveClock {
    banked: Duration,
    running_since: Option<Instant>,
}

impl ActiveClock {
    pub fn started_at(now: Instant) -> ActiveClock {
        ActiveClock {
            banked: Duration::ZERO,
            running_since: Some(now),
        }
    }

    pub fn elapsed_at(&self, now: Instant) -> Duration {
        self.banked
            + self
                .running_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    pub fn elapsed(&self) -> Duration {
        self.elapsed_at(Instant::now())
    }

    pub fn pause_at(&mut self, now: Instant) {
        if let Some(since) = self.running_since.take() {
            self.banked += now.saturating_duration_since(since);
        }
    }

    pub fn resume_at(&mut self, now: Instant) {
        if self.running_since.is_none() {
            self.running_since = Some(now);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.running_since.is_none()
    }

    /// Active time left before `limit`.
    pub fn remaining(&self, limit: Duration) -> Duration {
        limit.saturating_sub(self.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_time_does_not_count() {
        let t0 = Instant::now();
        let mut clock = ActiveClock::started_at(t0);
        let s = Duration::from_secs;
        clock.pause_at(t0 + s(10));
        assert_eq!(clock.elapsed_at(t0 + s(100)), s(10));
        clock.resume_at(t0 + s(100));
        assert_eq!(clock.elapsed_at(t0 + s(105)), s(15));
        clock.pause_at(t0 + s(105));
        clock.pause_at(t0 + s(200));
        assert_eq!(clock.elapsed_at(t0 + s(300)), s(15));
        assert!(clock.is_paused());
    }
}
