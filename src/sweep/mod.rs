//! Sweep files: a JSON description of many runs (a grid, random samples or a list), expanded
//! into the runs of one batch. Pure functions; only [`load_file`] reads a file.
//!
//! ```json
//! { "script": "train.py", "args": ["--lr", "{lr}", "--batch-size", "{bs}"],
//!   "grid": {"lr": [0.1, 0.01], "bs": [32, 64]}, "name": "lr{lr}-bs{bs}",
//!   "maxRunMinutes": 5, "maxParallel": 2 }
//! ```
//!
//! - `grid`: the cartesian product, the first param varying slowest (at most 10,000 runs).
//! - `random`: `{"n": 8, "seed": 1, "params": {"lr": {"logUniform": [1e-4, 1e-1]}, ...}}` with
//!   `uniform`, `logUniform`, `choice` and `int` (inclusive). Runs are drawn from ChaCha8 seeded
//!   with `seed`, with our own arithmetic on its raw 64-bit words, so a seed gives the same runs
//!   on every machine and version. Sampled floats are rounded to 6 significant digits so that
//!   names and args stay readable (`0.000123457`, not `0.00012345678912345`).
//! - `runs`: runs listed whole; a missing `script`, `args`, `name`, `env` or `cwd` is taken from
//!   the top level, and `params` add to (and override) the top-level `params`.
//! - Templates: `{param}` in `name`, `args` and `env` values; `{args}` as a whole element of
//!   `args` gives `--param value` for every param; `{{` and `}}` are literal braces. Numbers
//!   print as Python's `json`/`repr` prints them (`0.1`, `32`, `1e-05`), so a Python script
//!   sees what it would have written.
//! - `search`: `{"method": "asha", "metric": "val_loss", "mode": "min", "minBudget":
//!   {"steps": 100}, "maxBudget": {"steps": 2700}, "reductionFactor": 3, "seed": 7}` makes the
//!   runs the configurations of an adaptive search ([`crate::search`]); checked here, run by
//!   the supervisor.
//! - Any config key (`maxRunMinutes`, `"gpu": {"maxTempC": 80}`, ...) applies to the batch at
//!   the top level, or to one run inside a `runs` entry. Values are checked later by
//!   `config::load`; here only that the key exists.
//!
//! Objects keep the order they are written in: [`load_file`] reads the file itself in order.
//! [`parse`] takes a `serde_json::Value`, whose objects are sorted by key unless serde_json's
//! `preserve_order` feature is on; with it off, a grid given as a `Value` varies in key order.

mod errors;
mod expand;
mod json;
mod sample;
mod search;
mod template;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::Override;
use crate::search::SearchSpec;

pub use errors::SweepError;

/// The most runs a grid or `random` may give.
pub const MAX_RUNS: usize = 10_000;

/// Every run of a sweep file (or of the config's `experiments`), ready to be admitted.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub runs: Vec<PlannedRun>,
    /// Config keys set at the top level of the sweep file, for the whole batch
    /// (origin: the file name).
    pub overrides: Vec<Override>,
    /// `untilDone`: runs that stop at their timebox with a checkpoint go back in the queue.
    pub until_done: bool,
    /// `rounds`: how many rounds (timeboxes) of the queue a run may get.
    pub rounds: Option<u32>,
    /// `maxTotalMinutes`: the active time one run may spend over all its rounds.
    pub max_total: Option<Duration>,
    /// `search`: stop the losing runs early (see [`crate::search`]); the runs are its
    /// configurations, started in [`crate::search::start_order`].
    pub search: Option<SearchSpec>,
}

/// One run of a batch, its templates filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// Free text, unique in the batch; a later step turns it into a run id.
    pub name: String,
    pub script: String,
    pub args: Vec<String>,
    /// Every param of this run: the shared `params` and its own (grid, sample or entry).
    pub params: serde_json::Map<String, serde_json::Value>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// This run's own config keys (origin: `"<file> runs[i]"`), applied after the batch's.
    pub overrides: Vec<Override>,
}

/// Expands a sweep file's JSON. `origin` names the file in errors and in `Override::origin`.
pub fn parse(value: &serde_json::Value, origin: &str) -> Result<Batch, SweepError> {
    expand::parse_file(&json::Json::from_value(value), origin)
}

/// Reads and expands a sweep file, keeping the order its objects are written in.
pub fn load_file(path: &Path) -> Result<Batch, SweepError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SweepError::Unreadable {
        path: origin.clone(),
        reason: e.to_string(),
    })?;
    let value = json::from_text(&text, &origin)?;
    expand::parse_file(&value, &origin)
}

/// Expands the config file's `experiments` list: like a sweep file's `runs` with nothing at
/// the top level (each entry names its own script). Errors and overrides say
/// `"<origin> experiments[i]"`.
pub fn from_experiments(list: &[serde_json::Value], origin: &str) -> Result<Batch, SweepError> {
    let items: Vec<json::Json> = list.iter().map(json::Json::from_value).collect();
    expand::parse_experiments(&items, origin)
}
