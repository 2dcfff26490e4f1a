//! Thermal pause decisions, as a pure function of the run's GPU temperatures.

/// What to do with a running (or thermally paused) run.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Pause(String),
    Resume(String),
    Keep,
}

/// `temps`: (GPU index, temperature) of the run's GPUs; None = unreadable.
/// Pause at or above `max_c`; resume once every GPU is at or below `resume_c`. An unreadable
/// temperature never resumes a paused run.
pub fn decide(paused: bool, temps: &[(u32, Option<f64>)], max_c: f64, resume_c: f64) -> Action {
    if !paused {
        return match temps.iter().find(|(_, t)| t.is_some_and(|t| t >= max_c)) {
            Some((index, Some(t))) => {
                Action::Pause(format!("GPU {index} at {t:.0}°C ≥ gpu.maxTempC {max_c}"))
            }
            _ => Action::Keep,
        };
    }
    let cooled = !temps.is_empty() && temps.iter().all(|(_, t)| t.is_some_and(|t| t <= resume_c));
    if cooled {
        let hottest = temps
            .iter()
            .filter_map(|(_, t)| *t)
            .fold(f64::MIN, f64::max);
        Action::Resume(format!(
            "GPUs cooled to {hottest:.0}°C ≤ gpu.resumeTempC {resume_c}"
        ))
    } else {
        Action::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_at_the_limit_and_resumes_only_below_the_resume_temperature() {
        assert_eq!(decide(false, &[(0, Some(84.0))], 85.0, 80.0), Action::Keep);
        assert!(
            matches!(decide(false, &[(0, Some(70.0)), (1, Some(85.0))], 85.0, 80.0), Action::Pause(why) if why.contains("GPU 1"))
        );
        assert_eq!(decide(true, &[(0, Some(82.0))], 85.0, 80.0), Action::Keep);
        assert!(matches!(
            decide(true, &[(0, Some(80.0))], 85.0, 80.0),
            Action::Resume(_)
        ));
    }

    #[test]
    fn an_unreadable_temperature_never_resumes_and_never_pauses() {
        assert_eq!(decide(true, &[(0, None)], 85.0, 80.0), Action::Keep);
        assert_eq!(decide(false, &[(0, None)], 85.0, 80.0), Action::Keep);
        assert_eq!(decide(true, &[], 85.0, 80.0), Action::Keep);
    }
}
