//! A search's part of a run record, under the record's `search` key as plain JSON (so fields
//! written by other versions survive a rewrite): the batch's search spec, its parallel limit,
//! and the run's own [`StoredRun`]. Every run of the batch carries the spec, so
//! `resume <batch-id>` rebuilds the search from the records alone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::spec::SearchSpec;
use super::stored::StoredRun;

/// The key in a run record.
pub const KEY: &str = "search";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRecord {
    pub spec: SearchSpec,
    /// The batch's `maxParallel`: how many runs train at once.
    pub max_parallel: u32,
    pub run: StoredRun,
}

/// The search part of a record's extra fields: none for a run outside a search, an error for
/// one this version cannot read.
pub fn read(extra: &Map<String, Value>) -> Option<Result<SearchRecord, String>> {
    let value = extra.get(KEY)?;
    Some(
        serde_json::from_value(value.clone())
            .map_err(|e| format!("its \"{KEY}\" field cannot be read ({e})")),
    )
}

/// Writes the whole search part, keeping fields this version does not know.
pub fn write(extra: &mut Map<String, Value>, record: &SearchRecord) {
    let value = serde_json::to_value(record).expect("a search record serializes");
    merge(extra.entry(KEY).or_insert(Value::Null), value);
}

/// Writes the run's own part only.
pub fn write_run(extra: &mut Map<String, Value>, run: &StoredRun) {
    let value = serde_json::to_value(run).expect("a stored run serializes");
    let search = extra
        .entry(KEY)
        .or_insert_with(|| Value::Object(Map::new()));
    if !search.is_object() {
        *search = Value::Object(Map::new());
    }
    let slot = search
        .as_object_mut()
        .expect("an object")
        .entry("run")
        .or_insert(Value::Null);
    merge(slot, value);
}

/// `new` over `old`: objects key by key (keys only in `old` stay), anything else replaced.
fn merge(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, value) in new {
                merge(old.entry(key).or_insert(Value::Null), value);
            }
        }
        (old, new) => *old = new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Budget, Method, Mode, RungResult};
    use serde_json::json;

    fn record() -> SearchRecord {
        SearchRecord {
            spec: SearchSpec {
                method: Method::Asha,
                metric: "val_loss".into(),
                mode: Mode::Min,
                min_budget: Budget::Steps(10),
                max_budget: Budget::Steps(90),
                reduction_factor: 3,
                seed: None,
            },
            max_parallel: 2,
            run: StoredRun {
                position: 1,
                started: true,
                rungs: vec![RungResult {
                    rung: 0,
                    metric: Some(0.5),
                    step: Some(10),
                    active_ms: 40,
                }],
                promoted_to: Some(1),
                end: None,
            },
        }
    }

    #[test]
    fn reads_back_what_it_wrote_and_keeps_unknown_fields() {
        let mut extra = Map::new();
        extra.insert(KEY.into(), json!({"later": 1, "run": {"note": "x"}}));
        write(&mut extra, &record());
        assert_eq!(read(&extra).unwrap().unwrap(), record());
        let mut moved = record().run;
        moved.promoted_to = Some(2);
        write_run(&mut extra, &moved);
        assert_eq!(read(&extra).unwrap().unwrap().run, moved);
        assert_eq!(extra[KEY]["later"], json!(1));
        assert_eq!(extra[KEY]["run"]["note"], json!("x"));
    }

    #[test]
    fn a_run_outside_a_search_has_none_and_a_damaged_one_says_so() {
        assert!(read(&Map::new()).is_none());
        let mut extra = Map::new();
        extra.insert(KEY.into(), json!({"spec": 3}));
        assert!(read(&extra).unwrap().unwrap_err().contains("search"));
    }
}
