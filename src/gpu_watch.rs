//! What a fresh GPU reading means for one running attempt, as a pure function: a thermal
//! pause or resume, memory use over the run's limit, memory on its GPUs taken by other
//! processes, or a limit that cannot be enforced because the run's use cannot be read.

use crate::gpu::GpuInfo;
use crate::thermal;

/// What a GPU run is watched for.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuWatch {
    pub thermal: thermal::Limits,
    /// The run's `gpuMemoryLimit` in MB, when it has one.
    pub memory_limit_mb: Option<u64>,
    /// `gpu.memoryLimitAction` is `stop`.
    pub stop_over_limit: bool,
    /// MB reserved on each of the run's GPUs.
    pub reserved_mb: u64,
    /// How long a paused run waits for a lost GPU to come back before it is stopped.
    pub lost_grace_ms: u64,
}

/// What the watch remembers between readings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchState {
    pub paused: bool,
    warned_over_limit: bool,
    warned_unenforceable: bool,
    /// GPUs on which memory taken by others was already reported (until it is given back).
    crowded: Vec<u32>,
    /// When one of the run's GPUs was first seen lost (until it is back).
    lost_since_ms: Option<u64>,
}

/// One reading of the run's own GPUs.
pub struct Reading<'a> {
    /// The run's devices in this reading (a device missing from it is lost).
    pub gpus: &'a [&'a GpuInfo],
    /// How many devices the run holds.
    pub held: usize,
    pub now_ms: u64,
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
    /// Paused on a GPU that is lost for longer than the grace: stop the run.
    GpuLost(String),
}

pub fn watch(state: &mut WatchState, watch: &GpuWatch, reading: &Reading) -> Vec<Action> {
    let mut actions = Vec::new();
    let lost = reading.gpus.len() < reading.held
        || reading.gpus.iter().any(|g| {
            g.failure
                .as_ref()
                .is_some_and(|f| f.kind == crate::gpu::FailureKind::Lost)
        });
    if !lost {
        state.lost_since_ms = None;
    } else if state.paused {
        let since = *state.lost_since_ms.get_or_insert(reading.now_ms);
        if reading.now_ms.saturating_sub(since) >= watch.lost_grace_ms {
            actions.push(Action::GpuLost(
                "a GPU of this paused run is lost (fell off the bus or was reset); it cannot \
                 resume there"
                    .to_string(),
            ));
            return actions;
        }
    }
    let temps: Vec<thermal::Reading> = reading
        .gpus
        .iter()
        .map(|g| {
            let (max_c, resume_c) = watch.thermal.for_gpu(g);
            thermal::Reading {
                index: g.index,
                temp_c: g.temperature_c,
                max_c,
                resume_c,
            }
        })
        .collect();
    match thermal::decide(state.paused, &temps) {
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
            thermal: thermal::Limits::default(),
            memory_limit_mb: limit,
            stop_over_limit: stop,
            reserved_mb: 8000,
            lost_grace_ms: 1000,
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
                held: 1,
                now_ms: 0,
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
                held: 1,
                now_ms: 0,
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
            held: 1,
            now_ms: 0,
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
            held: 1,
            now_ms: 0,
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
    fn a_run_paused_on_a_lost_gpu_is_stopped_after_the_grace() {
        let mut state = WatchState::default();
        let hot = gpu(30_000, 95.0);
        let w = watched(None, false);
        let first = watch(
            &mut state,
            &w,
            &Reading {
                gpus: &[&hot],
                held: 1,
                now_ms: 0,
                run_used_mb: Some(1),
            },
        );
        assert!(matches!(first.as_slice(), [Action::Pause(_)]));
        // The GPU disappears from the readings: not at once, but after the grace.
        assert!(
            watch(
                &mut state,
                &w,
                &Reading {
                    gpus: &[],
                    held: 1,
                    now_ms: 500,
                    run_used_mb: None
                }
            )
            .is_empty()
        );
        let later = watch(
            &mut state,
            &w,
            &Reading {
                gpus: &[],
                held: 1,
                now_ms: 1600,
                run_used_mb: None,
            },
        );
        assert!(
            matches!(later.as_slice(), [Action::GpuLost(_)]),
            "{later:?}"
        );
    }

    #[test]
    fn memory_taken_by_others_is_reported_once_per_episode() {
        let mut state = WatchState::default();
        let crowded = gpu(2_000, 40.0);
        let reading = Reading {
            gpus: &[&crowded],
            held: 1,
            now_ms: 0,
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
                    held: 1,
                    now_ms: 0,
                    run_used_mb: Some(1000)
                }
            )
            .is_empty()
        );
        assert_eq!(watch(&mut state, &watched(None, false), &reading).len(), 1);
    }
}
