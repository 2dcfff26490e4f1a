//! The read side of the API: runs, one run, its metrics and logs, the machine, and the event
//! stream. Every answer is JSON (errors too: `{"error": "..."}`); store reads run on the
//! blocking pool so a slow disk never stalls the server's event loop.

use super::events::Encoded;
use super::{AppState, params, series, tail};
use crate::runid::RunId;
use crate::store::{ListQuery, StoreError, query};
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Duration;
use tokio::sync::broadcast;

/// An error answer: a status and a sentence saying what is wrong and what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status, &self.message)
    }
}

pub fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": message }))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError::not_found(format!(
                "no run {id:?} in the store; GET /api/runs lists the runs"
            )),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Runs `work` on the blocking pool.
pub async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    web::block(work)
        .await
        .map_err(|_| ApiError::internal("the server could not finish the request; try again"))?
}

/// The run id in the path, checked (it names a directory).
pub fn run_id(req: &HttpRequest) -> Result<RunId, ApiError> {
    let text = req.match_info().get("id").unwrap_or_default();
    RunId::parse(text).map_err(|e| ApiError::bad_request(format!("{text:?} is not a run id: {e}")))
}

fn raw_json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

/// `GET /api/runs`: the records `list --json` prints, newest first (the newest 100 unless
/// `limit` says otherwise), as stored.
pub async fn runs(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p = params::runs(req.query_string()).map_err(ApiError::bad_request)?;
    let store = state.store.clone();
    let body = blocking(move || {
        let db = store.connect()?;
        let query = ListQuery {
            status: p.status,
            name: p.name,
            batch: p.batch,
            limit: Some(p.limit),
            ..ListQuery::default()
        };
        let mut body = String::from("[");
        query::each_record(db.conn(), &query, |_, raw| {
            if body.len() > 1 {
                body.push(',');
            }
            body.push_str(raw);
            Ok(())
        })?;
        body.push(']');
        Ok(body)
    })
    .await?;
    Ok(raw_json(body))
}

/// `GET /api/runs/<id>`: the whole record, attempts and checkpoints included.
pub async fn run(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    params::no_params(req.query_string()).map_err(ApiError::bad_request)?;
    let id = run_id(&req)?;
    let store = state.store.clone();
    let body = blocking(move || {
        let db = store.connect()?;
        let raw: Option<String> = db
            .conn()
            .query_row(
                "SELECT record FROM runs WHERE id = ?1",
                [id.as_str()],
                |row| row.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(ApiError::internal(format!("cannot read run {id}: {e}"))),
            })?;
        raw.ok_or_else(|| StoreError::NotFound(id.to_string()).into())
    })
    .await?;
    Ok(raw_json(body))
}

/// Fails with 404 unless the run exists.
fn existing(state: &AppState, id: &RunId) -> Result<(), ApiError> {
    let db = state.store.connect()?;
    let found = db
        .conn()
        .query_row(
            "SELECT 1 FROM runs WHERE id = ?1",
            [id.as_str()],
            |_| Ok(()),
        )
        .map(|_| true)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(false),
            e => Err(ApiError::internal(format!("cannot read run {id}: {e}"))),
        })?;
    if found {
        Ok(())
    } else {
        Err(StoreError::NotFound(id.to_string()).into())
    }
}

/// `GET /api/runs/<id>/metrics?name=loss[&offset=N]`: the metric's points from `offset` on;
/// without `name`, the names of the metrics the run reported.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p = params::metrics(req.query_string()).map_err(ApiError::bad_request)?;
    let id = run_id(&req)?;
    let state = state.into_inner();
    let value = blocking(move || {
        existing(&state, &id)?;
        let path = state.store.run_dir(&id).join("metrics.jsonl");
        let unreadable =
            |e: std::io::Error| ApiError::internal(format!("cannot read {}: {e}", path.display()));
        match p.name {
            Some(name) => {
                let chunk = series::read(&path, &name, p.offset).map_err(unreadable)?;
                Ok(serde_json::to_value(chunk).expect("serialisable"))
            }
            None => {
                let names = match crate::plot::metric_names(&path) {
                    Ok(names) => names,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
                    Err(e) => return Err(unreadable(e)),
                };
                Ok(serde_json::json!({ "names": names }))
            }
        }
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(value))
}

/// `GET /api/runs/<id>/logs?stream=stdout&tail=N`: the last N lines.
pub async fn logs(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p = params::logs(req.query_string()).map_err(ApiError::bad_request)?;
    let id = run_id(&req)?;
    let state = state.into_inner();
    let tail = blocking(move || {
        existing(&state, &id)?;
        let path = state.store.run_dir(&id).join(p.stream.file_name());
        tail::last_lines(&path, p.tail)
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(tail))
}

/// `GET /api/status`: what `backprop status --json` prints, from the latest machine sample.
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    params::no_params(req.query_string()).map_err(ApiError::bad_request)?;
    let state = state.into_inner();
    let value = blocking(move || {
        let snapshot = super::machine::lock(&state.history)
            .latest()
            .unwrap_or_default();
        Ok(crate::cli::status_json(
            &state.store,
            &state.config,
            &snapshot,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(value))
}

/// `GET /api/machine`: the samples of the last minutes (CPU, RAM, each GPU), oldest first.
pub async fn machine(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    params::no_params(req.query_string()).map_err(ApiError::bad_request)?;
    let samples = super::machine::lock(&state.history).samples();
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "everyMs": super::machine::SAMPLE_EVERY.as_millis() as u64,
            "samples": samples,
        })))
}

/// A comment line now and then keeps proxies and the browser from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/events`: server-sent events. `runs` (the changed runs' rows), `gpu` (a machine
/// sample), `reload` (too much changed at once, or the store was replaced: read the list
/// again).
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    params::no_params(req.query_string()).map_err(ApiError::bad_request)?;
    let receiver = state.events.subscribe();
    let hello = Encoded::from_static(b"retry: 2000\n: connected\n\n");
    let stream = futures_util::stream::unfold(
        (receiver, Some(hello)),
        |(mut receiver, first)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, actix_web::Error>(first), (receiver, None)));
            }
            let next = tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await;
            let bytes = match next {
                Err(_) => Encoded::from_static(b": keep-alive\n\n"),
                Ok(Ok(bytes)) => bytes,
                // This page fell behind: it reads the list again rather than miss changes.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    Encoded::from_static(b"event: reload\ndata: {}\n\n")
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            Some((Ok(bytes), (receiver, None)))
        },
    );
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}
