//! Thermal limits per GPU and the pause decision, as pure functions of the run's GPU
//! temperatures.

use crate::gpu::GpuInfo;

/// `gpu.maxTempC` and `gpu.resumeTempC`; unset, each GPU's own: its slowdown threshold − 5 °C
/// where the driver reports one (laptops run at 85–87 °C normally), else 85 °C, and
/// resuming 5 °C below that.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub max_c: Option<f64>,
    pub resume_c: Option<f64>,
}

impl Limits {
    /// (pause at, resume at) for `gpu`.
    pub fn for_gpu(&self, gpu: &GpuInfo) -> (f64, f64) {
        let max = self
            .max_c
            .unwrap_or_else(|| crate::gpu::default_max_temp_c(gpu.slowdown_temp_c));
        (max, self.resume_c.unwrap_or(max - 5.0))
    }
}

/// One of the run's GPUs: its index, temperature (None = unreadable) and limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub index: u32,
    pub temp_c: Option<f64>,
    pub max_c: f64,
    pub resume_c: f64,
}

/// What to do with a running (or thermally paused) run.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Pause(String),
    Resume(String),
    Keep,
}

/// Pause when one GPU is at or above its limit; resume once every GPU is at or below its
/// resume temperature. An unreadable temperature never resumes a paused run.
pub fn decide(paused: bool, gpus: &[Reading]) -> Action {
    if !paused {
        return match gpus.iter().find(|g| g.temp_c.is_some_and(|t| t >= g.max_c)) {
            Some(g) => Action::Pause(format!(
                "GPU {} at {:.0}°C ≥ gpu.maxTempC {}",
                g.index,
                g.temp_c.unwrap_or_default(),
                g.max_c
            )),
            None => Action::Keep,
        };
    }
    let cooled = !gpus.is_empty()
        && gpus
            .iter()
            .all(|g| g.temp_c.is_some_and(|t| t <= g.resume_c));
    if cooled {
        let hottest = gpus
            .iter()
            .filter_map(|g| g.temp_c)
            .fold(f64::MIN, f64::max);
        let resume = gpus.iter().map(|g| g.resume_c).fold(f64::MAX, f64::min);
        Action::Resume(format!(
            "GPUs cooled to {hottest:.0}°C ≤ gpu.resumeTempC {resume}"
        ))
    } else {
        Action::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u32, temp_c: Option<f64>) -> Reading {
        Reading {
            index,
            temp_c,
            max_c: 85.0,
            resume_c: 80.0,
        }
    }

    #[test]
    fn pauses_at_the_limit_and_resumes_only_below_the_resume_temperature() {
        assert_eq!(decide(false, &[at(0, Some(84.0))]), Action::Keep);
        assert!(
            matches!(decide(false, &[at(0, Some(70.0)), at(1, Some(85.0))]), Action::Pause(why) if why.contains("GPU 1"))
        );
        assert_eq!(decide(true, &[at(0, Some(82.0))]), Action::Keep);
        assert!(matches!(
            decide(true, &[at(0, Some(80.0))]),
            Action::Resume(_)
        ));
    }

    #[test]
    fn an_unreadable_temperature_never_resumes_and_never_pauses() {
        assert_eq!(decide(true, &[at(0, None)]), Action::Keep);
        assert_eq!(decide(false, &[at(0, None)]), Action::Keep);
        assert_eq!(decide(true, &[]), Action::Keep);
    }

    #[test]
    fn unset_limits_follow_each_gpus_own_slowdown_threshold() {
        let laptop = GpuInfo {
            slowdown_temp_c: Some(97.0),
            ..GpuInfo::new(0, "GPU-0", "RTX 4070 Laptop")
        };
        let plain = GpuInfo::new(1, "GPU-1", "T4");
        let unset = Limits::default();
        assert_eq!(unset.for_gpu(&laptop), (92.0, 87.0));
        assert_eq!(unset.for_gpu(&plain), (85.0, 80.0));
        let set = Limits {
            max_c: Some(75.0),
            resume_c: Some(60.0),
        };
        assert_eq!(set.for_gpu(&laptop), (75.0, 60.0));
    }
}
