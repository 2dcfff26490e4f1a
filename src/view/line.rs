//! The text of one run's status line, as a pure function of what is known about the run.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum LineState {
    Waiting(String),
    Running,
    Paused(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunLine {
    pub run_id: String,
    pub state: LineState,
    pub step: Option<u64>,
    pub loss: Option<f64>,
    /// `total_steps` (or `total`) as reported by the script.
    pub total: Option<u64>,
    pub steps_per_sec: Option<f64>,
    pub active: Duration,
    pub limit: Duration,
    pub gpus: Vec<u32>,
}

/// `run-id  step 120/3000  loss 0.5321  14.2 steps/s  1m 5s active, 8m 55s left  GPU 1  ETA 3m 22s`
pub fn format_line(line: &RunLine) -> String {
    let mut parts = vec![line.run_id.clone()];
    match &line.state {
        LineState::Waiting(why) => {
            parts.push(format!("waiting ({why})"));
            return parts.join("  ");
        }
        LineState::Paused(why) => parts.push(format!("paused ({why})")),
        LineState::Running => {}
    }
    if let Some(step) = line.step {
        match line.total {
            Some(total) => parts.push(format!("step {step}/{total}")),
            None => parts.push(format!("step {step}")),
        }
    }
    if let Some(loss) = line.loss {
        parts.push(format!("loss {}", loss_text(loss)));
    }
    if let Some(rate) = line.steps_per_sec.filter(|r| *r > 0.0) {
        parts.push(format!("{rate:.1} steps/s"));
    }
    // Both to the second, so that active + left = the timebox.
    let left = line
        .limit
        .saturating_sub(Duration::from_secs(line.active.as_secs()));
    parts.push(format!(
        "{} active, {} left",
        whole(line.active),
        whole(left)
    ));
    if !line.gpus.is_empty() {
        let gpus: Vec<String> = line.gpus.iter().map(u32::to_string).collect();
        parts.push(format!("GPU {}", gpus.join(",")));
    }
    if let (Some(step), Some(total), Some(rate)) = (line.step, line.total, line.steps_per_sec)
        && rate > 0.0
        && total > step
    {
        let eta = Duration::from_secs_f64((total - step) as f64 / rate);
        parts.push(format!("ETA {}", whole(eta)));
    }
    parts.join("  ")
}

fn loss_text(loss: f64) -> String {
    if loss.is_finite() {
        format!("{loss:.4}")
    } else {
        format!("{loss}")
    }
}

/// A duration to the second, as humantime writes it (`1m 5s`).
fn whole(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Steps per second from the two ends of a window of (seconds, step) samples.
pub fn rate(samples: &[(f64, u64)]) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    let dt = last.0 - first.0;
    (dt > 0.0 && last.1 >= first.1).then(|| (last.1 - first.1) as f64 / dt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> RunLine {
        RunLine {
            run_id: "r1".into(),
            state: LineState::Running,
            step: Some(120),
            loss: Some(0.53214),
            total: None,
            steps_per_sec: Some(14.25),
            active: Duration::from_millis(65_400),
            limit: Duration::from_secs(600),
            gpus: vec![1],
        }
    }

    #[test]
    fn a_running_line_shows_step_loss_rate_time_and_gpu() {
        assert_eq!(
            format_line(&running()),
            "r1  step 120  loss 0.5321  14.2 steps/s  1m 5s active, 8m 55s left  GPU 1"
        );
    }

    #[test]
    fn a_total_gives_a_fraction_and_an_eta() {
        let line = RunLine {
            total: Some(3000),
            steps_per_sec: Some(10.0),
            ..running()
        };
        let text = format_line(&line);
        assert!(
            text.contains("step 120/3000") && text.ends_with("ETA 4m 48s"),
            "{text}"
        );
    }

    #[test]
    fn waiting_and_paused_say_why() {
        let line = RunLine {
            state: LineState::Waiting("slot".into()),
            ..running()
        };
        assert_eq!(format_line(&line), "r1  waiting (slot)");
        let line = RunLine {
            state: LineState::Paused("GPU 1 at 90°C".into()),
            loss: Some(f64::NAN),
            ..running()
        };
        let text = format_line(&line);
        assert!(
            text.contains("paused (GPU 1 at 90°C)") && text.contains("loss NaN"),
            "{text}"
        );
    }

    #[test]
    fn rate_from_samples() {
        assert_eq!(rate(&[(0.0, 0), (2.0, 30)]), Some(15.0));
        assert_eq!(rate(&[(1.0, 5)]), None);
    }
}
