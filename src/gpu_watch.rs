//! What a fresh GPU reading means for one running attempt, as a pure function: a thermal
//! pause or resume, memory use over the run's limit, memory on its GPUs taken by other
//! processes, or a limit that cannot be enforced because the run's use cannot be read.

use crate::gpu::GpuInfo;
use crate::thermal;

/// What a GPU run is watched for.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuWatch {
    pub max_temp_c: f64,
    pub resume_temp_c: f64,
    /// The run's `gpuMemoryLimit` in MB, when it has one.
    pub memory_limit_mb: Option<u64>,
    /// `gpu.memoryLimitAction` is `stop`.
    pub stop_over_limit: bool,
    /// MB reserved on each of the run's GPUs.
    pub reserved_mb: u64,
}

/// What the watch remembers between readings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchState {
    pub paused: bool,
    warned_over_limit: bool,
    warned_unenforceable: bool,
    /// GPUs on which memory taken by others was already reported (until it is given back).
    crowded: Vec<u32>,
}

/// One reading of the run's own GPUs.
pub struct Reading<'a> {
    pub gpus: &'a [&'a GpuInfo],
    /// The run's processes' memory use on its GPUs; None when it cannot be read here.
    pub run_used_mb: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Pause(String),
    Resume(String),
    /// Over the limit: a warning, and a graceful stop when `stop` is set.
    OverLimit {
        why: String,
        stop: bool,
    },
    /// Told once: the run's use is invisible here, so its limit cannot be enforced.
    LimitUnenforceable(String),
    /// Other processes took memory the run reserved on one of its GPUs.
    MemoryTaken(String),
}

pub fn watch(state: &mut WatchState, watch: &GpuWatch, reading: &Reading) -> Vec<Action> {
    let mut actions = Vec::new();
    let temps: Vec<(u32, Option<f64>)> = reading
        .gpus
        .iter()
        .map(|g| (g.index, g.temperature_c))
        .collect();
    match thermal::decide(state.paused, &temps, watch.max_temp_c, watch.resume_temp_c) {
        thermal::Action::Pause(why) => {
            state.paused = true;
            actions.push(Action::Pause(why));
        }
        thermal::Action::Resume(why) => {
            state.paused = false;
            actions.push(Action::Resume(why));
        }
        thermal::Action::Keep => {}
    }
    match (watch.memory_limit_mb, reading.run_used_mb) {
        (Some(limit), Some(used)) if used > limit && !state.warned_over_limit => {
            state.warned_over_limit = true;
            actions.push(Action::OverLimit {
                why: format!("the run uses {used} MB of GPU memory, over its limit of {limit} MB"),
                stop: watch.stop_over_limit,
            });
        }
        (Some(limit), None) if !state.warned_unenforceable => {
            state.warned_unenforceable = true;
            actions.push(Action::LimitUnenforceable(format!(
                "the run's GPU memory use cannot be read here (a container, MPS or a driver \
                 that does not report per-process memory), so its limit of {limit} MB cannot be \
                 enforced"
            )));
        }
        _ => {}
    }
    // What the run still has to allocate of its reservation must be free on each GPU.
    if let Some(used) = reading.run_used_mb {
        let outstanding = watch
            .reserved_mb
            .saturating_sub(used / reading.gpus.len().max(1) as u64);
        for gpu in reading.gpus {
            let Some(free) = gpu.memory_free_mb else {
                continue;
            };
            let short = free < outstanding;
            let reported = state.crowded.contains(&gpu.index);
            if short && !reported {
                state.crowded.push(gpu.index);
                actions.push(Action::MemoryTaken(format!(
                    "GPU {}: other processes took memory reserved for this run ({free} MB \
                     free, {outstanding} MB of its reservation not yet allocated)",
                    gpu.index
                )));
            } else if !short && reported {
                state.crowded.retain(|g| *g != gpu.index);
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(free_mb: u64, temp: f64) -> GpuInfo {
        crate::policy::tests::gpu(0, free_mb, temp)
    }

    fn watched(limit: Option<u64>, stop: bool) -> GpuWatch {
        GpuWatch {
            max_temp_c: 85.0,
            resume_temp_c: 80.0,
            memory_limit_mb: limit,
            stop_over_limit: stop,
            reserved_mb: 8000,
        }
    }

    #[test]
    fn pauses_when_hot_and_resumes_when_cool() {
        let mut state = WatchState::default();
        let hot = gpu(30_000, 90.0);
        let actions = watch(
            &mut state,
            &watched(None, false),
            &Reading {
                gpus: &[&hot],
                run_used_mb: Some(8000),
            },
        );
        assert!(matches!(actions.as_slice(), [Action::Pause(_)]));
        let cool = gpu(30_000, 70.0);
        let actions = watch(
            &mut state,
            &watched(None, false),
            &Reading {
                gpus: &[&cool],
                run_used_mb: Some(8000),
            },
        );
        assert!(matches!(actions.as_slice(), [Action::Resume(_)]));
    }

    #[test]
    fn over_the_limit_is_reported_once_and_stops_when_configured() {
        let mut state = WatchState::default();
        let g = gpu(30_000, 40.0);
        let reading = Reading {
            gpus: &[&g],
            run_used_mb: Some(9000),
        };
        let actions = watch(&mut state, &watched(Some(8000), true), &reading);
        assert!(matches!(
            &actions[..],
            [Action::OverLimit { stop: true, .. }]
        ));
        assert!(watch(&mut state, &watched(Some(8000), true), &reading).is_empty());
    }

    #[test]
    fn unknown_use_is_never_taken_for_zero() {
        let mut state = WatchState::default();
        let g = gpu(1_000, 40.0);
        let reading = Reading {
            gpus: &[&g],
            run_used_mb: None,
        };
        let actions = watch(&mut state, &watched(Some(8000), true), &reading);
        assert!(
            matches!(&actions[..], [Action::LimitUnenforceable(_)]),
            "{actions:?}"
        );
        // No claim about memory taken by others either: the run may hold it itself.
        assert!(watch(&mut state, &watched(Some(8000), true), &reading).is_empty());
    }

    #[test]
    fn memory_taken_by_others_is_reported_once_per_episode() {
        let mut state = WatchState::default();
        let crowded = gpu(2_000, 40.0);
        let reading = Reading {
            gpus: &[&crowded],
            run_used_mb: Some(1000),
        };
        let actions = watch(&mut state, &watched(None, false), &reading);
        assert!(
            matches!(&actions[..], [Action::MemoryTaken(why)] if why.contains("7000 MB of its reservation")),
            "{actions:?}"
        );
        assert!(watch(&mut state, &watched(None, false), &reading).is_empty());
        let roomy = gpu(20_000, 40.0);
        assert!(
            watch(
                &mut state,
                &watched(None, false),
                &Reading {
                    gpus: &[&roomy],
                    run_used_mb: Some(1000)
                }
            )
            .is_empty()
        );
        assert_eq!(watch(&mut state, &watched(None, false), &reading).len(), 1);
    }
}
