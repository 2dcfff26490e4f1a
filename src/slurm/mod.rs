//! The Slurm executor: runs go to a cluster as `sbatch` jobs whose batch script runs
//! `backprop run --executor local --run-id <id>` on the node, so the timebox, protocol,
//! checkpoints and store work exactly as locally (the home on a shared filesystem).
//! `squeue` and `sacct` tell the state of jobs that backprop on the node could not record.

mod client;
mod script;
mod states;
mod submit;
mod sync;

pub use client::{SlurmError, cancel, submit};
pub use script::{JobScript, time_limit_minutes};
pub use states::{Fate, SacctRow, fate, parse_sacct, parse_squeue};
pub use submit::{SubmitError, adopt, submit_jobs};
pub use sync::sync_records;
