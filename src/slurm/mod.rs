//! The Slurm executor: runs go to a cluster as `sbatch` jobs whose batch script runs
//! `backprop run --executor local --run-id <id>` on the node, so the timebox, protocol,
//! checkpoints and store work exactly as locally (the home on a shared filesystem).
//! `squeue` and `sacct` tell the state of jobs that backprop on the node could not record.

mod client;
pub mod node;
mod script;
mod states;
pub mod stop;
mod submit;
mod sync;

pub use client::{SlurmError, cancel, requeue, signal_steps, submit};
pub use node::NodeFile;
pub use script::{JobScript, time_limit_minutes};
pub use states::{Fate, QueueRow, SacctRow, fate, parse_sacct, parse_squeue, parse_time};
pub use submit::{SubmitError, submit_jobs};
pub use sync::{recover_from_run_dirs, stale, sync_records};
