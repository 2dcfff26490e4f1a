//! The contents of experiments.json: run id → record, kept as raw JSON until needed.

use super::StoreError;
use crate::record::{RunRecord, Status};
use indexmap::IndexMap;
use serde_json::value::RawValue;

#[derive(Default, Clone, Debug)]
pub struct Experiments {
    entries: IndexMap<String, Box<RawValue>>,
    dirty: bool,
    /// A change freed a slot or a GPU, or took a run out of the queue: waiting processes
    /// are woken once it is written.
    freed: bool,
}

/// Why a file is not a valid store.
#[derive(Debug)]
pub struct Corrupt(String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Experiments {
    pub fn parse(bytes: &[u8]) -> Result<Experiments, Corrupt> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Corrupt("the file is empty".into()));
        }
        let entries: IndexMap<String, Box<RawValue>> =
            serde_json::from_slice(bytes).map_err(|e| Corrupt(describe(&e)))?;
        Ok(Experiments {
            entries,
            dirty: false,
            freed: false,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let size: usize = self
            .entries
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 8)
            .sum();
        let mut out = Vec::with_capacity(size + 4);
        out.extend_from_slice(b"{\n");
        for (i, (id, raw)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b",\n");
            }
            out.extend_from_slice(
                serde_json::to_string(id)
                    .expect("a string serialises")
                    .as_bytes(),
            );
            out.extend_from_slice(b": ");
            out.extend_from_slice(raw.get().as_bytes());
        }
        out.extend_from_slice(b"\n}\n");
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// One record, parsed. A record that does not parse is reported, never dropped.
    pub fn record(&self, id: &str) -> Result<RunRecord, StoreError> {
        let raw = self
            .entries
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        serde_json::from_str(raw.get()).map_err(|e| StoreError::Unreadable {
            id: id.to_string(),
            message: e.to_string(),
        })
    }

    /// Every record in file order read as `T` (a few fields of each, say); unreadable ones as
    /// errors.
    pub fn parse_all<T: serde::de::DeserializeOwned>(&self) -> Vec<Result<T, StoreError>> {
        self.entries
            .iter()
            .map(|(id, raw)| {
                serde_json::from_str(raw.get()).map_err(|e| StoreError::Unreadable {
                    id: id.clone(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Every record that parses, in file order (unreadable ones stay in the file untouched).
    pub fn readable_records(&self) -> Vec<RunRecord> {
        self.records().into_iter().filter_map(Result::ok).collect()
    }

    /// Every record in file order; unreadable ones as errors.
    pub fn records(&self) -> Vec<Result<RunRecord, StoreError>> {
        self.ids().map(|id| self.record(id)).collect()
    }

    /// The queued, running and paused records: each record's status is looked at first, and
    /// only active ones are parsed whole (admission and the GPU ledger need no others).
    pub fn active_records(&self) -> Vec<RunRecord> {
        self.records_where(|status, _| status.is_active())
    }

    /// The records for which `keep(status, slurm state)` holds, parsed whole; the others are
    /// only glanced at (their status and Slurm state), which is several times cheaper.
    pub fn records_where(
        &self,
        keep: impl Fn(crate::record::Status, Option<&str>) -> bool,
    ) -> Vec<RunRecord> {
        #[derive(serde::Deserialize)]
        struct Job {
            state: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Brief {
            status: crate::record::Status,
            #[serde(default)]
            slurm: Option<Job>,
        }
        self.entries
            .values()
            .filter(|raw| {
                serde_json::from_str::<Brief>(raw.get()).is_ok_and(|b| {
                    keep(b.status, b.slurm.as_ref().and_then(|j| j.state.as_deref()))
                })
            })
            .filter_map(|raw| serde_json::from_str(raw.get()).ok())
            .collect()
    }

    /// Inserts or replaces a record (keyed by its id).
    pub fn put(&mut self, rec: &RunRecord) {
        let raw = serde_json::value::to_raw_value(rec).expect("a record always serialises");
        let before = self
            .entries
            .get(rec.id.as_str())
            .and_then(|old| status_of(old));
        self.freed |= frees(before, Some(rec.status()));
        self.entries.insert(rec.id.to_string(), raw);
        self.dirty = true;
    }

    /// Removes a record (only for one that never ran, e.g. a refused Slurm submission).
    pub fn remove(&mut self, id: &str) -> bool {
        let removed = self.entries.shift_remove(id);
        self.freed |= frees(removed.as_deref().and_then(status_of), None);
        self.dirty |= removed.is_some();
        removed.is_some()
    }

    /// Whether a change frees a slot or a GPU, or takes a run out of the queue.
    pub fn frees_something(&self) -> bool {
        self.freed
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

fn status_of(raw: &RawValue) -> Option<Status> {
    #[derive(serde::Deserialize)]
    struct Brief {
        status: Status,
    }
    serde_json::from_str::<Brief>(raw.get())
        .ok()
        .map(|b| b.status)
}

/// A running run that stops running frees its slot and lease; a queued one that leaves the
/// queue lets the runs behind it move up.
fn frees(before: Option<Status>, after: Option<Status>) -> bool {
    let holds = |s: Option<Status>| matches!(s, Some(Status::Running | Status::Paused));
    match before {
        Some(Status::Running | Status::Paused) => !holds(after),
        Some(Status::Queued) => after.is_none_or(|s| !s.is_active()),
        _ => false,
    }
}

fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "it ends early (truncated?)".to_string(),
        Category::Data => "it is JSON but not an object of runs".to_string(),
        _ => format!("not valid JSON: {e}"),
    };
    format!("{what}, at line {} column {}", e.line(), e.column())
}
