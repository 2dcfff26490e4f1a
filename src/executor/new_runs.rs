//! What a new run is made of: its spec (the program resolved, the working directory checked,
//! the options taken from the config) and its record, entered in the store before it starts.

use crate::clock::now_ms;
use crate::config::Config;
use crate::launch::{self, NotFound};
use crate::record::{RunOptions, RunRecord, RunSpec};
use crate::runid::RunId;
use crate::store::{Store, StoreError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a new run cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum NewRunError {
    /// The script or interpreter is missing (exit 127): nothing is recorded.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error("--cwd {0} is not a directory")]
    NotADirectory(String),
    #[error(
        "run id {0:?} is already taken; pick another --run-id or continue it with `backprop resume {0}`"
    )]
    Taken(RunId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The spec of a new run of `script` with `args`, relative paths taken from `here`.
pub fn spec_for(
    script: &str,
    args: Vec<String>,
    config: &Config,
    cwd: Option<&Path>,
    env: BTreeMap<String, String>,
    here: &Path,
) -> Result<RunSpec, NewRunError> {
    let program = launch::resolve(script, &config.interpreter, here)?;
    let dir: PathBuf = match cwd {
        Some(dir) => here.join(dir),
        None => here.to_path_buf(),
    };
    if !dir.is_dir() {
        return Err(NewRunError::NotADirectory(dir.display().to_string()));
    }
    Ok(RunSpec {
        program: program.program,
        args,
        interpreter: program.interpreter,
        cwd: dir.display().to_string(),
        env,
        options: RunOptions::from_config(config),
    })
}

/// A run to enter in the store.
pub struct NewRun {
    pub wanted_id: Option<RunId>,
    pub name: String,
    pub spec: RunSpec,
    pub params: Option<Map<String, Value>>,
    pub batch_id: Option<RunId>,
    /// Its part in the batch's adaptive search: it is held until the search starts it.
    pub search: Option<crate::search::SearchRecord>,
    /// The batch's rounds, for `resume <batch-id>`.
    pub rounds: Option<crate::continuation::BatchRounds>,
}

/// Enters the new records (queued, supervised by this process) in one write, in order, each
/// under a fresh id unless one was asked for; returns the ids.
pub fn create_records(store: &Store, runs: Vec<NewRun>) -> Result<Vec<RunId>, NewRunError> {
    let me = crate::proc_info::me();
    store.update(|ex| {
        let mut ids = Vec::new();
        let mut last_seq = 0;
        for run in &runs {
            let id = match &run.wanted_id {
                Some(id) if ex.contains(id) => return Err(NewRunError::Taken(id.clone())),
                Some(id) => id.clone(),
                None => (0..)
                    .map(|salt| RunId::generate(&run.name, salt))
                    .find(|id| !ex.contains(id))
                    .expect("an unused id exists"),
            };
            let mut rec = RunRecord::new(id.clone(), run.name.clone(), run.spec.clone(), now_ms());
            // Strictly increasing even within one clock tick: arrival order is queue order.
            rec.queue_seq = rec.queue_seq.max(last_seq + 1);
            last_seq = rec.queue_seq;
            rec.supervisor = Some(me.clone());
            rec.params = run.params.clone();
            rec.batch_id = run.batch_id.clone();
            if let Some(rounds) = &run.rounds {
                rounds.write(&mut rec.extra);
            }
            if let Some(search) = &run.search {
                crate::search::record::write(&mut rec.extra, search);
                rec.held = true;
                rec.reason = Some("waiting for its turn in the search".into());
            }
            ex.put(&rec);
            ids.push(id);
        }
        Ok(ids)
    })?
}

/// `examples/train.py` → `train`; `torchrun` → `torchrun`.
pub fn script_name(script: &str) -> String {
    let file = Path::new(script)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".py").unwrap_or(&file).to_string()
}
