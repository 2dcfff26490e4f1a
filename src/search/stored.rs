//! The stored form of a search: what each run record keeps so that a search can be rebuilt
//! after the supervising process is gone (`resume <batch-id>` after a kill -9).

use serde::{Deserialize, Serialize};

/// A run's result at one rung: the last value of the metric when it reached the rung's budget
/// (none when it never reported it, or reported NaN), its last reported step and its active
/// time over all attempts then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RungResult {
    pub rung: usize,
    pub metric: Option<f64>,
    #[serde(default)]
    pub step: Option<u64>,
    #[serde(default)]
    pub active_ms: u64,
}

/// How a run left the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchEnd {
    /// Reached maxBudget, or its script ended on its own.
    Completed,
    /// Failed on its way to a rung; ranks nowhere.
    Failed,
    /// Stopped at a rung and never promoted.
    Pruned,
}

/// One run's part of the search, for its run record:
/// `{"position": 4, "started": true, "rungs": [{"rung": 0, "metric": 0.41, "step": 100,
///   "activeMs": 5120}], "promotedTo": 1, "end": null}`.
///
/// - `position`: its place in start order (what [`super::AshaState`] calls the run).
/// - `started`: it was given a slot once (`StartNew`).
/// - `rungs`: its result at each rung it finished, rung 0 first.
/// - `promotedTo`: the highest rung it was promoted to (none: never promoted).
/// - `end`: `completed`, `failed` or `pruned`; none while it is in the search.
///
/// A run is in flight when it is started, has not ended and has no result yet at the rung it
/// heads for (`promotedTo`, else 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRun {
    pub position: usize,
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub rungs: Vec<RungResult>,
    #[serde(default)]
    pub promoted_to: Option<usize>,
    #[serde(default)]
    pub end: Option<SearchEnd>,
}
