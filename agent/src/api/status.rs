//! Liveness, readiness and the status summary.
//!
//! Liveness only says the process answers HTTP (container health checks need no token).
//! Readiness says calls would work: the engine runs, is registered in trunk mode, and the
//! Realtime backend answered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pjsip_safe::Registration;
use serde_json::{json, Value};

use super::Api;
use crate::state::CallBook;

pub(super) async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

/// `(state, detail)`: state is one of `starting`, `ip_mode`, `unknown` (trunk mode, no answer
/// from the registrar yet), `registered`, `unregistered`, `failed`.
pub(super) fn registration_state(api: &Api, book: &CallBook) -> (&'static str, Value) {
    let Some(info) = api.shared.engine_info.get() else {
        return ("starting", Value::Null);
    };
    if !info.trunk_mode {
        return ("ip_mode", Value::Null);
    }
    match &book.registration {
        None => ("unknown", Value::Null),
        Some(Registration::Registered { expires }) => ("registered", json!({"expires": expires})),
        Some(Registration::Unregistered) => ("unregistered", Value::Null),
        Some(Registration::Failed { code, reason }) => {
            ("failed", json!({"code": code, "reason": reason}))
        }
    }
}

pub(super) async fn readyz(State(api): State<Api>) -> impl IntoResponse {
    let engine = api.shared.engine_info.get().is_some();
    let registration = {
        let book = api.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        registration_state(&api, &book).0
    };
    let sip = engine && matches!(registration, "ip_mode" | "registered");
    let backend = api
        .shared
        .backend_ok
        .load(std::sync::atomic::Ordering::Relaxed);
    let ready = sip && backend;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"ready": ready, "sip": sip, "registration": registration, "realtime_backend": backend}),
        ),
    )
}

pub(super) async fn status(State(api): State<Api>) -> impl IntoResponse {
    let book = api.shared.book.lock().unwrap_or_else(|e| e.into_inner());
    let (registration, detail) = registration_state(&api, &book);
    let info = api.shared.engine_info.get();
    let uptime_s = api.shared.started.get().map(|t| t.elapsed().as_secs());
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime_s,
        "sip": {
            "mode": info.map(|i| if i.trunk_mode { "trunk" } else { "ip" }),
            "registration": registration,
            "registration_detail": detail,
            "pjsip_version": info.map(|i| i.pjsip_version.clone()),
            "listening": info.map(|i| i.sip_addresses.clone()),
            "codecs": info.map(|i| i.enabled_codecs().iter().map(ToString::to_string).collect::<Vec<_>>()),
        },
        "realtime_backend_ok": api.shared.backend_ok.load(std::sync::atomic::Ordering::Relaxed),
        "active_calls": book.active.len(),
        "total_calls": book.total_calls,
        "recording_enabled": api.settings.recording_enabled,
        "config": api.settings.config_summary,
    }))
}
