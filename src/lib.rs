//! backprop: timeboxed, governed ML training runs with a durable record.

pub mod active_clock;
pub mod actors;
pub mod admission;
pub mod cli;
pub mod clock;
pub mod config;
pub mod continuation;
pub mod executor;
pub mod file_writer;
pub mod framework;
pub mod gpu;
pub mod gpu_watch;
pub mod guard;
pub mod helper_command;
pub mod launch;
pub mod legacy_hint;
pub mod outcome;
pub mod plot;
pub mod policy;
pub mod proc_info;
pub mod process;
pub mod protocol;
pub mod pump;
pub mod python_helper;
pub mod reaper;
pub mod record;
pub mod resources;
pub mod runid;
pub mod search;
pub mod serve;
pub mod slurm;
pub mod stdio;
pub mod stopping;
pub mod store;
pub mod sweep;
pub mod thermal;
pub mod ui;
pub mod usage;
pub mod view;
pub mod wake;

#[cfg(test)]
pub(crate) mod tests_support {
    /// Polls `condition` every 20 ms for up to 10 s.
    pub fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(10) {
            if condition() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        condition()
    }
}
