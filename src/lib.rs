//! backprop: timeboxed, governed ML training runs with a durable record.

pub mod clock;
pub mod proc_info;
pub mod record;
pub mod runid;
pub mod store;
pub mod ui;
pub mod framework;
pub mod launch;
pub mod outcome;
pub mod process;
pub mod guard;
pub mod reaper;
pub mod active_clock;
pub mod actors;
pub mod resources;
pub mod stdio;
pub mod protocol;
pub mod pump;
pub mod config;
pub mod cli;
