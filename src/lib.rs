//! backprop: timeboxed, governed ML training runs with a durable record.

pub mod active_clock;
pub mod actors;
pub mod admission;
pub mod cli;
pub mod clock;
pub mod config;
pub mod continuation;
pub mod framework;
pub mod gpu;
pub mod guard;
pub mod launch;
pub mod outcome;
pub mod placement;
pub mod proc_info;
pub mod process;
pub mod protocol;
pub mod pump;
pub mod reaper;
pub mod record;
pub mod resources;
pub mod runid;
pub mod stdio;
pub mod store;
pub mod sweep;
pub mod thermal;
pub mod ui;
