//! What several commands share: errors with exit codes, opening the store, config loading.

use super::Global;
use crate::config::{self, FlagValue, LoadRequest, LoadedConfig, Override};
use crate::executor::new_runs::NewRunError;
use crate::executor::{Output, Results};
use crate::outcome::{EXIT_NOT_FOUND, EXIT_USAGE};
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::store::{Store, StoreError};
use std::path::PathBuf;

/// An error to show on one line, with the exit code it means.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub fn with_code(code: i32, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> CliError {
        CliError::usage(e.to_string())
    }
}

impl From<NewRunError> for CliError {
    fn from(e: NewRunError) -> CliError {
        match e {
            NewRunError::NotFound(_) => CliError::with_code(EXIT_NOT_FOUND, e.to_string()),
            _ => CliError::usage(e.to_string()),
        }
    }
}

impl From<crate::slurm::SubmitError> for CliError {
    fn from(e: crate::slurm::SubmitError) -> CliError {
        CliError::usage(e.to_string())
    }
}

/// How the runs' output is shown, from the global flags.
pub fn output(global: &Global) -> Output {
    Output {
        echo_protocol: global.verbose > 0,
        quiet: global.quiet,
        json: global.json,
    }
}

pub fn home() -> PathBuf {
    crate::store::default_home()
}

/// Opens the store for writing and marks runs of dead supervisors `lost`.
pub fn open_store() -> Result<Store, CliError> {
    let store = Store::open(&home())?;
    crate::reaper::refresh(&store)?;
    Ok(store)
}

/// The store opened to read, brought up to date cheaply (only records that can need it are
/// parsed); a home that cannot be written is still read.
pub fn open_store_refreshed() -> Result<Store, CliError> {
    let home = home();
    match Store::open(&home) {
        Ok(store) => {
            if let Err(e) = crate::reaper::refresh(&store) {
                crate::ui::warn(&format!("could not check for lost runs: {e}"));
            }
            Ok(store)
        }
        Err(StoreError::Unwritable { .. })
            if home.join(crate::store::EXPERIMENTS_FILE).is_file() =>
        {
            Ok(Store::open_for_reading(&home))
        }
        Err(e) => Err(e.into()),
    }
}

/// `exportJson` from the config (true when the config cannot be read: the export is the
/// safe default).
pub fn export_enabled(global: &Global) -> bool {
    load_config(global, Vec::new()).map_or(true, |c| c.config.export_json)
}

pub fn load_config(global: &Global, flags: Vec<FlagValue>) -> Result<LoadedConfig, CliError> {
    load_config_with(global, Vec::new(), flags)
}

/// The config with a batch's overrides layered between the environment and the flags.
pub fn load_config_with(
    global: &Global,
    overrides: Vec<Override>,
    flags: Vec<FlagValue>,
) -> Result<LoadedConfig, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
    let loaded = config::load(LoadRequest {
        config_path: global.config.clone(),
        cwd,
        env: process_env(),
        overrides,
        flags,
    })
    .map_err(|e| CliError::usage(e.to_string()))?;
    crate::store::export::set_enabled(loaded.config.export_json);
    Ok(loaded)
}

/// The process environment as text. Non-UTF-8 variables cannot be config values; they are
/// passed over, not fatal.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The record of a run named by the user.
pub fn find_run(store: &Store, id: &RunId) -> Result<RunRecord, CliError> {
    Ok(store.get(id)?)
}

/// Prints how a run of this process ended and returns backprop's exit code for it.
pub fn report_outcome(global: &Global, store: &Store, run_id: &RunId, results: Results) -> i32 {
    let Some((_, outcome)) = results.into_iter().find(|(id, _)| id == run_id) else {
        crate::ui::error(&format!("run {run_id} ended without an outcome"));
        return 1;
    };
    let rec = store.get(run_id).ok();
    if !global.quiet
        && let Some(rec) = &rec
    {
        let mut line = format!("{run_id} {}", outcome.status);
        if outcome.status == Status::Failed {
            line.push_str(&format!(" ({})", outcome.failure_text()));
        }
        line.push_str(&format!(
            " after {}",
            duration_text(rec.current_attempt().map_or(0, |a| a.active_ms))
        ));
        if let Some(step) = rec.last_step {
            line.push_str(&format!(
                " at step {step}, loss {}",
                loss_text(rec.last_loss)
            ));
        }
        if matches!(
            outcome.status,
            Status::Timeboxed | Status::Stopped | Status::Failed
        ) && rec.last_checkpoint.is_some()
        {
            line.push_str(&format!("; continue with: backprop resume {run_id}"));
        }
        crate::ui::info(&line);
    }
    if let Some(rec) = &rec {
        print_legacy_hint(std::slice::from_ref(rec));
    }
    outcome.exit_code
}

/// The one line about `--legacy-args` when any of these failed runs asked for the original
/// tool's arguments (shown even with `-q`: it explains a failure).
pub fn print_legacy_hint(records: &[RunRecord]) {
    if records
        .iter()
        .any(|r| r.status() == Status::Failed && crate::legacy_hint::noted(r))
    {
        crate::ui::info(&format!("hint: {}", crate::legacy_hint::HINT));
    }
}

/// `1m 5s`-style text of a duration in milliseconds, to the second.
pub fn duration_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// `2026-11-23 16:29:00` (UTC) of an epoch-ms time.
pub fn time_text(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', "")
}

pub fn loss_text(loss: Option<f64>) -> String {
    loss.map(|l| format!("{l:.4}"))
        .unwrap_or_else(|| "-".into())
}

pub fn print_json(value: &impl serde::Serialize) {
    super::out::line(&serde_json::to_string_pretty(value).expect("serialisable"));
}
