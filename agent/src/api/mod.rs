//! The HTTP API and dashboard server (`API_ADDR`, default 127.0.0.1:8085).
//!
//! Liveness (`/healthz`) is always open so container health checks need no token; everything
//! else will require the bearer token (`API_TOKEN`).

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::service::Shared;

/// Builds the router over the service's shared state.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

/// Ready = the SIP engine runs (and, in trunk mode, is registered) and the Realtime backend
/// answered.
async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    let engine = shared.engine_info.get().cloned();
    let registered = match &engine {
        Some(info) if info.trunk_mode => matches!(
            shared.book.lock().ok().and_then(|b| b.registration.clone()),
            Some(pjsip_safe::Registration::Registered { .. })
        ),
        Some(_) => true,
        None => false,
    };
    let backend = shared.backend_ok.load(std::sync::atomic::Ordering::Relaxed);
    let ready = engine.is_some() && registered && backend;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"ready": ready, "sip": engine.is_some() && registered, "realtime_backend": backend}),
        ),
    )
}

/// Binds `addr` and serves until the process ends. A busy port is a clear error.
pub async fn serve(
    addr: SocketAddr,
    shared: Shared,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("API_ADDR {addr}: the port is already in use; stop the other program or set API_ADDR to a free address")
        } else {
            anyhow::anyhow!("API_ADDR {addr}: cannot listen: {e}")
        }
    })?;
    tracing::info!(%addr, "HTTP API listening");
    let app = router(shared);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP API stopped: {e}");
        }
    }))
}
