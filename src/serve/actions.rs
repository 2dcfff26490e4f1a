//! What the page can do: stop a run or a batch (as `backprop stop <id> --no-wait` does) and
//! resume a run (a `backprop resume <id>` process of its own, detached from this server, so
//! closing the dashboard stops nothing). Only POST acts, and only with the token in the
//! `Authorization` header (see the guard in the module above).

use super::api::{ApiError, blocking, run_id};
use super::{AppState, params};
use crate::record::{RunRecord, Status};
use crate::runid::RunId;
use crate::stopping::{self, StopError};
use crate::store::query;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use std::path::{Path, PathBuf};

/// How to start `backprop resume`: this same binary, with this server's `--config`.
#[derive(Clone, Debug)]
pub struct ResumeCommand {
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
}

fn stop_error(e: StopError) -> ApiError {
    match e {
        StopError::Store(e) => e.into(),
        StopError::Slurm(message) => ApiError::new(StatusCode::BAD_GATEWAY, message),
    }
}

fn accepted(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Accepted().json(value)
}

/// `POST /api/runs/<id>/stop`.
pub async fn stop_run(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    params::no_params(req.query_string()).map_err(ApiError::bad_request)?;
    let id = run_id(&req)?;
    let store = state.store.clone();
    let ids = blocking(move || {
        let rec = store.get(&id)?;
        if !rec.status().is_active() {
            return Err(ApiError::conflict(format!(
                "run {id} is not active (status {}); there is nothing to stop",
                rec.status()
            )));
        }
        stopping::request(&store, &[&rec]).map_err(stop_error)
    })
    .await?;
    Ok(accepted(json!({ "stopping": ids })))
}

/// `POST /api/batches/<id>/stop`: every active run of the batch.
pub async fn stop_batch(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    params::no_params(req.query_string()).map_err(ApiError::bad_request)?;
    let id = run_id(&req)?;
    let store = state.store.clone();
    let ids = blocking(move || {
        let runs = query::batch(store.connect()?.conn(), &id)?;
        if runs.is_empty() {
            return Err(ApiError::not_found(format!(
                "no batch {id:?} in the store; a batch id is the batchId of its runs"
            )));
        }
        let active: Vec<&RunRecord> = runs.iter().filter(|r| r.status().is_active()).collect();
        if active.is_empty() {
            return Err(ApiError::conflict(format!(
                "batch {id} has no active runs; there is nothing to stop"
            )));
        }
        stopping::request(&store, &active).map_err(stop_error)
    })
    .await?;
    Ok(accepted(json!({ "stopping": ids })))
}

/// `POST /api/runs/<id>/resume[?force=true]`: starts `backprop resume <id>` on its own.
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let force = params::resume(req.query_string()).map_err(ApiError::bad_request)?;
    let id = run_id(&req)?;
    let state = state.into_inner();
    let started = blocking(move || {
        let rec = state.store.get(&id)?;
        check_resumable(&rec, force)?;
        let log = state
            .store
            .ensure_run_dir(&id)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .join("serve-resume.log");
        let pid = spawn_detached(&state.resume, &id, force, &log).map_err(|e| {
            ApiError::internal(format!(
                "cannot start `backprop resume {id}`: {e}; run it from a terminal instead"
            ))
        })?;
        Ok((pid, log))
    })
    .await?;
    Ok(accepted(json!({ "pid": started.0, "log": started.1 })))
}

/// The refusals `backprop resume` itself would make, answered here so the page gets them.
fn check_resumable(rec: &RunRecord, force: bool) -> Result<(), ApiError> {
    if rec.status().is_active() {
        return Err(ApiError::conflict(format!(
            "run {} is still {}; stop it first",
            rec.id,
            rec.status()
        )));
    }
    if rec.status() == Status::Completed && !force {
        return Err(ApiError::conflict(format!(
            "run {} already completed; to run it again from its latest checkpoint, resume with force=true",
            rec.id
        )));
    }
    Ok(())
}

/// `backprop resume <id>` in a new session (its own process group, no terminal), stdin
/// from /dev/null and its output appended to `log`; a thread of this server reaps it, and
/// if the server ends first it simply goes on.
fn spawn_detached(
    command: &ResumeCommand,
    id: &RunId,
    force: bool,
    log: &Path,
) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = crate::store::private_file(std::fs::OpenOptions::new().create(true).append(true))
        .open(log)?;
    let mut cmd = std::process::Command::new(&command.exe);
    if let Some(config) = &command.config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["resume", id.as_str()]);
    if force {
        cmd.arg("--force");
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    std::thread::Builder::new()
        .name("serve-resume-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        })?;
    Ok(pid)
}
