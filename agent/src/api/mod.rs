//! The HTTP API, live event stream, metrics and dashboard (`API_ADDR`, default 127.0.0.1:8085).
//!
//! One table ([`route_table`]) lists every route; the router is built from it and a test checks
//! it against the OpenAPI description, so the documentation cannot silently fall behind.
//! Authentication ([`auth`]) wraps the whole router: liveness and the dashboard's static files are
//! open, everything else needs the bearer token when one is configured. Outside it, [`guard`]
//! refuses foreign `Host` names (DNS rebinding) and cross-site state-changing requests (CSRF);
//! [`outbound`] decides which destinations `POST /api/calls` may call. `docs/SECURITY.md` has
//! the threat model.
//!
//! Modules: [`auth`] (token, bind check), [`guard`] (Host/Origin), [`outbound`]
//! (`OUTBOUND_ALLOWED`), `status` (health, readiness, status), `calls`
//! (calls and actions), `orders`, `events` (SSE), [`metrics`] (Prometheus and the quality
//! sampler), [`openapi`], `dashboard` (embedded assets). The API guide is `docs/API.md`.

pub mod auth;
mod calls;
mod dashboard;
mod events;
pub mod guard;
pub mod metrics;
pub mod openapi;
mod orders;
pub mod outbound;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use pjsip_safe::Secret;
use serde_json::{json, Value};

use crate::state::Shared;

/// What the API knows about the configuration.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// `None`: the API is open (only allowed on loopback, see [`auth::check_bind`]).
    pub token: Option<Secret>,
    /// Where the order database lives (`DATA_DIR`); `None`: the order routes answer 503.
    pub data_dir: Option<PathBuf>,
    /// `RECORD_CALLS`.
    pub recording_enabled: bool,
    /// `Config::summary()`: every setting without secrets.
    pub config_summary: Value,
    /// Accepted `Host`/`Origin` values; [`serve`] fills in the bind address.
    pub hosts: guard::HostPolicy,
    /// Where `POST /api/calls` may call; the default allows nothing.
    pub outbound: outbound::OutboundPolicy,
}

/// The router's state: the service's shared state plus the API's own.
#[derive(Debug, Clone)]
pub struct Api {
    pub shared: Shared,
    pub settings: Arc<ApiSettings>,
    /// Last quality sample per call (also kept a while after the call ended).
    pub quality: Arc<Mutex<metrics::QualityBook>>,
}

impl Api {
    pub fn new(shared: Shared, settings: ApiSettings) -> Self {
        Self {
            shared,
            settings: Arc::new(settings),
            quality: Arc::default(),
        }
    }
}

/// A JSON error body: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Every route: method, path, handler.
fn routes() -> Vec<(Method, &'static str, MethodRouter<Api>)> {
    vec![
        (Method::GET, "/healthz", get(status::healthz)),
        (Method::GET, "/readyz", get(status::readyz)),
        (Method::GET, "/api/status", get(status::status)),
        (Method::GET, "/api/calls", get(calls::list)),
        (Method::POST, "/api/calls", post(calls::place)),
        (Method::GET, "/api/calls/{id}", get(calls::detail)),
        (Method::POST, "/api/calls/{id}/hangup", post(calls::hangup)),
        (
            Method::POST,
            "/api/calls/{id}/transfer",
            post(calls::transfer),
        ),
        (
            Method::GET,
            "/api/calls/{id}/recording",
            get(calls::recording),
        ),
        (Method::GET, "/api/orders", get(orders::list)),
        (Method::GET, "/api/orders/{order_no}", get(orders::get)),
        (Method::GET, "/api/events", get(events::events)),
        (Method::GET, "/api/openapi.json", get(openapi::openapi)),
        (Method::GET, "/metrics", get(metrics::metrics)),
        (Method::GET, "/", get(dashboard::index)),
        (Method::GET, "/app.js", get(dashboard::app_js)),
        (Method::GET, "/style.css", get(dashboard::style)),
    ]
}

/// `(METHOD, path)` of every route the router serves, sorted.
pub fn route_table() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_owned()))
        .collect();
    out.sort();
    out
}

/// Builds the router over the service's shared state.
pub fn router(api: Api) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        // Routes on the same path merge their methods.
        router = router.route(path, handler);
    }
    router
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route; see /api/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_token,
        ))
        // Outermost: a rebinding page learns nothing, not even whether a token is needed.
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            guard::enforce,
        ))
        .with_state(api)
}

/// Binds `addr` and serves until the process ends, with the quality sampler beside it.
/// Refuses an unauthenticated API on a non-loopback address, and a busy port, with clear errors.
pub async fn serve(
    addr: SocketAddr,
    mut settings: ApiSettings,
    shared: Shared,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    auth::check_bind(addr, settings.token.as_ref())?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("API_ADDR {addr}: the port is already in use; stop the other program or set API_ADDR to a free address")
        } else {
            anyhow::anyhow!("API_ADDR {addr}: cannot listen: {e}")
        }
    })?;
    // The bound address (API_ADDR may name port 0) is what clients put in Host.
    settings.hosts.bind = Some(listener.local_addr().unwrap_or(addr));
    let authenticated = settings.token.is_some();
    tracing::info!(%addr, authenticated, "HTTP API and dashboard listening on http://{addr}/");
    let api = Api::new(shared, settings);
    let sampler = tokio::spawn(metrics::run_sampler(api.clone()));
    let app = router(api);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP API stopped: {e}");
        }
        sampler.abort();
    }))
}
