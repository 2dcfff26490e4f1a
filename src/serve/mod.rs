//! `backprop serve`: a live dashboard of the runs, batches and GPUs of one home, on a local
//! HTTP server. One embedded page (no network at run time) and a JSON API under `/api`;
//! changes in the store reach open pages as server-sent events within a second.
//!
//! Who may use it: requests must name this machine in `Host` (see [`auth`]), and every API
//! call needs the token printed at start; the actions (stop, resume) need it in the
//! `Authorization` header, which a page of another site cannot send.

pub mod actions;
pub mod api;
pub mod auth;
pub mod events;
pub mod machine;
mod page;
pub mod params;
pub mod series;
pub mod tail;

use crate::config::Config;
use crate::store::Store;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};
use auth::HostPolicy;
use std::net::{IpAddr, SocketAddr, TcpListener};
use tokio::sync::broadcast;

/// What every request handler shares.
pub struct AppState {
    pub store: Store,
    pub config: Config,
    pub token: String,
    pub hosts: HostPolicy,
    pub history: machine::SharedHistory,
    pub events: broadcast::Sender<events::Encoded>,
    pub resume: actions::ResumeCommand,
}

pub struct Options {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// Open the page with xdg-open.
    pub open: bool,
    pub config: Config,
    /// The `--config` given to `serve`, passed on to the `resume` processes it starts.
    pub config_path: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {address}: {source}; pass another --port (0 picks a free one) or --bind"
    )]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped with an error: {0}")]
    Server(std::io::Error),
}

/// Events a page has not read yet are kept up to this many; a page further behind reloads.
const EVENT_BACKLOG: usize = 256;

/// Serves until SIGINT or SIGTERM. `announce` gets the page's address (with the token) once
/// the server listens.
pub fn run(store: Store, options: Options, announce: impl FnOnce(&str)) -> Result<(), ServeError> {
    let address = SocketAddr::new(options.bind, options.port);
    let listener =
        TcpListener::bind(address).map_err(|source| ServeError::Listen { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { address, source })?;
    let token = auth::new_token();
    let (sender, _) = broadcast::channel(EVENT_BACKLOG);
    let history = machine::SharedHistory::default();
    let sampler = crate::resources::Sampler::new(
        options.config.gpu.probe.as_str(),
        options.config.gpu.probe_timeout.duration(),
    );
    let on_sample = {
        let sender = sender.clone();
        move |sample: &machine::Sample| {
            let _ = sender.send(events::gpu_event(sample));
        }
    };
    machine::start(sampler, history.clone(), on_sample);
    events::start(store.clone(), sender.clone());
    let state = web::Data::new(AppState {
        store,
        config: options.config,
        token: token.clone(),
        hosts: HostPolicy::for_bind(options.bind),
        history,
        events: sender,
        resume: actions::ResumeCommand {
            exe: std::env::current_exe().map_err(ServeError::Server)?,
            config: options.config_path,
        },
    });
    let url = page_url(local, &token);
    if !options.bind.is_loopback() {
        crate::ui::warn(&format!(
            "serving on {} is reachable from other machines; the token guards every call, but \
             it travels unencrypted: prefer --bind 127.0.0.1 and an SSH tunnel",
            options.bind
        ));
    }
    announce(&url);
    if options.open {
        open_in_browser(&url);
    }
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || app(state.clone()))
            .workers(2)
            .shutdown_timeout(1)
            .listen(listener)
            .map_err(ServeError::Server)?
            .run()
            .await
            .map_err(ServeError::Server)
    })
}

/// `http://127.0.0.1:8765/?token=...`, with an IPv6 address in brackets and an
/// every-address binding shown as loopback (the address to open on this machine).
fn page_url(local: SocketAddr, token: &str) -> String {
    let host = match local.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}/?token={token}", local.port())
}

fn open_in_browser(url: &str) {
    match which::which("xdg-open") {
        Ok(opener) => {
            let started = std::process::Command::new(opener)
                .arg(url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            match started {
                // Reaped on a thread of its own: xdg-open returns quickly.
                Ok(mut child) => {
                    std::thread::spawn(move || child.wait());
                }
                Err(e) => crate::ui::warn(&format!(
                    "cannot run xdg-open: {e}; open the address yourself"
                )),
            }
        }
        Err(_) => crate::ui::warn("--open: no xdg-open on PATH; open the address yourself"),
    }
}

fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(from_fn(guard))
        .service(resource("/").route(web::get().to(page::index)))
        .service(resource("/app.js").route(web::get().to(page::script)))
        .service(resource("/style.css").route(web::get().to(page::style)))
        .service(resource("/api/runs").route(web::get().to(api::runs)))
        .service(resource("/api/runs/{id}").route(web::get().to(api::run)))
        .service(resource("/api/runs/{id}/metrics").route(web::get().to(api::metrics)))
        .service(resource("/api/runs/{id}/logs").route(web::get().to(api::logs)))
        .service(resource("/api/runs/{id}/stop").route(web::post().to(actions::stop_run)))
        .service(resource("/api/runs/{id}/resume").route(web::post().to(actions::resume)))
        .service(resource("/api/batches/{id}/stop").route(web::post().to(actions::stop_batch)))
        .service(resource("/api/status").route(web::get().to(api::status)))
        .service(resource("/api/machine").route(web::get().to(api::machine)))
        .service(resource("/api/events").route(web::get().to(api::events)))
        .default_service(web::to(|| async {
            api::json_error(
                StatusCode::NOT_FOUND,
                "no such page or API call; the API is /api/runs, /api/runs/<id>[/metrics|/logs|/stop|/resume], /api/batches/<id>/stop, /api/status, /api/machine, /api/events",
            )
        }))
}

/// A path whose other methods are answered 405 with a JSON error.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        api::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this method is not allowed here; reads are GET, actions (stop, resume) are POST",
        )
    }))
}

/// Before every handler: the `Host` check, then the token for `/api`. After: headers that
/// keep the page from being framed, sniffed or leaking its address.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("the state is registered")
        .clone();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let refusal = if !state.hosts.allows(host) {
        Some(
            "this server answers only requests addressed to this machine (Host: localhost, 127.0.0.1, [::1] or the --bind address); open the address backprop serve printed",
        )
    } else if is_api(req.path()) && !has_token(&req, &state.token) {
        Some(
            "a valid token is needed: send `Authorization: Bearer <token>` (reads may also pass ?token=<token>); the token is in the address backprop serve printed",
        )
    } else {
        None
    };
    if let Some(message) = refusal {
        let response = api::json_error(StatusCode::FORBIDDEN, message);
        return Ok(secure(req.into_response(response)).map_into_right_body());
    }
    let response = next.call(req).await?;
    Ok(secure(response).map_into_left_body())
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The token in the `Authorization` header; for reads (which an EventSource cannot send
/// headers with) also in `?token=`. Actions need the header: a form on another site can
/// put anything in a URL, never a header.
fn has_token(req: &ServiceRequest, token: &str) -> bool {
    if let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        return auth::bearer(given).is_some_and(|given| auth::token_matches(token, given));
    }
    req.method() == actix_web::http::Method::GET
        && params::pairs(req.query_string()).is_ok_and(|pairs| {
            pairs
                .iter()
                .any(|(k, v)| k == "token" && auth::token_matches(token, v))
        })
}

fn secure<B>(mut response: ServiceResponse<B>) -> ServiceResponse<B> {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_address_names_what_to_open() {
        let token = "t";
        assert_eq!(
            page_url("127.0.0.1:8765".parse().unwrap(), token),
            "http://127.0.0.1:8765/?token=t"
        );
        assert_eq!(
            page_url("0.0.0.0:80".parse().unwrap(), token),
            "http://127.0.0.1:80/?token=t"
        );
        assert_eq!(
            page_url("[::1]:8765".parse().unwrap(), token),
            "http://[::1]:8765/?token=t"
        );
    }

    #[test]
    fn api_paths_are_recognised() {
        assert!(is_api("/api"));
        assert!(is_api("/api/runs"));
        assert!(!is_api("/apis"));
        assert!(!is_api("/"));
    }
}
