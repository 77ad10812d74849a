//! Calls: the active and recent ones, one call in detail, and the operator's actions (place,
//! hang up, transfer).
//!
//! Actions go straight to the engine handle (hang-up, transfer) or through the service loop
//! (placing a call, which needs a bridge); the bridge of the call then sees the engine's events
//! as if the other side had acted, so the call's report stays complete.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pjsip_safe::CallId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, Api};
use crate::call::report::CallReport;
use crate::live::LiveEvent;
use crate::state::{ActiveCall, Control};

/// How long an action may wait for the engine.
const ACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// `call-7` or `7`.
pub(super) fn parse_call_id(s: &str) -> Option<CallId> {
    s.strip_prefix("call-")
        .unwrap_or(s)
        .parse::<u64>()
        .ok()
        .map(CallId)
}

fn active_json(a: &ActiveCall) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["duration_ms"] = json!(a.since.elapsed().as_millis() as u64);
    v["state"] = json!("active");
    v
}

fn summary_json(r: &CallReport) -> Value {
    json!({
        "call": r.call,
        "state": "ended",
        "direction": r.direction,
        "from": r.from,
        "to": r.to,
        "started_at": r.started_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        "answered_after_ms": r.answered_after_ms,
        "duration_ms": r.duration_ms,
        "codec": r.codec,
        "clock_rate": r.clock_rate,
        "end_reason": r.end_reason,
        "outcome": crate::state::metrics::outcome(r),
        "barge_ins": r.barge_ins,
        "tool_calls": r.tool_calls.len(),
        "errors": r.errors.len(),
        "transcript_lines": r.transcript.entries.len(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

pub(super) async fn list(State(api): State<Api>, Query(page): Query<Page>) -> impl IntoResponse {
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    let book = api.shared.book.lock().unwrap_or_else(|e| e.into_inner());
    let mut active: Vec<&ActiveCall> = book.active.values().collect();
    active.sort_by_key(|a| a.since);
    let active: Vec<Value> = active.into_iter().map(active_json).collect();
    let recent: Vec<Value> = book
        .recent
        .iter()
        .skip(offset)
        .take(limit)
        .map(summary_json)
        .collect();
    Json(json!({
        "active": active,
        "recent": {
            "items": recent,
            "total": book.recent.len(),
            "offset": offset,
            "limit": limit,
        },
    }))
}

pub(super) async fn detail(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let Some(call) = parse_call_id(&id) else {
        return error(StatusCode::BAD_REQUEST, "a call id looks like call-7");
    };
    let name = call.to_string();
    let quality = api
        .quality
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .cloned();
    let (active, report) = {
        let book = api.shared.book.lock().unwrap_or_else(|e| e.into_inner());
        (
            book.active.get(&call).map(active_json),
            book.recent.iter().find(|r| r.call == name).cloned(),
        )
    };
    if let Some(mut v) = active {
        let story = api.shared.live.story(&name);
        let pick = |kind: &str| -> Vec<Value> {
            story
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok())
                .filter(|v| v["type"] == kind)
                .collect()
        };
        v["transcript"] = json!(pick("transcript"));
        v["tool_calls"] = json!(pick("tool_call"));
        v["barge_ins"] = json!(pick("barge_in"));
        v["errors"] = json!(pick("realtime_error"));
        v["answered"] = json!(story
            .iter()
            .any(|e| matches!(e, LiveEvent::CallAnswered { .. })));
        v["quality"] = json!(quality);
        return Json(v).into_response();
    }
    if let Some(r) = report {
        let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
        v["state"] = json!("ended");
        v["outcome"] = json!(crate::state::metrics::outcome(&r));
        v["quality"] = json!(quality);
        return Json(v).into_response();
    }
    error(StatusCode::NOT_FOUND, &format!("no call {name} is known"))
}

#[derive(Debug, Deserialize)]
pub(super) struct PlaceCall {
    uri: String,
}

pub(super) async fn place(State(api): State<Api>, body: Option<Json<PlaceCall>>) -> Response {
    let Some(Json(PlaceCall { uri })) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON {\"uri\": \"sip:...\"} with Content-Type: application/json",
        );
    };
    let uri = uri.trim().to_owned();
    if !(uri.starts_with("sip:") || uri.starts_with("sips:")) || uri.len() > 512 {
        return error(
            StatusCode::BAD_REQUEST,
            "uri must be a SIP URI such as sip:+4930123456@sip.example.com",
        );
    }
    if let Err(refusal) = api.settings.outbound.check(&uri) {
        tracing::info!(status = %refusal.status, "outbound call through the API refused: {}", refusal.message);
        return error(refusal.status, &refusal.message);
    }
    let Some(control) = api.shared.control.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the service is starting");
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if control
        .send(Control::PlaceCall {
            uri: uri.clone(),
            reply,
        })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    match tokio::time::timeout(ACTION_TIMEOUT, answer).await {
        Ok(Ok(Ok(call))) => (
            StatusCode::CREATED,
            Json(json!({"call": call.to_string(), "uri": uri})),
        )
            .into_response(),
        Ok(Ok(Err(e))) => error(StatusCode::BAD_GATEWAY, &format!("the call failed: {e}")),
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping"),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine did not answer in time",
        ),
    }
}

/// The active call `id`, or the error response.
// The error is the handler's response, returned at once; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn active_call(api: &Api, id: &str) -> Result<(CallId, pjsip_safe::EngineHandle), Response> {
    let call = parse_call_id(id)
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "a call id looks like call-7"))?;
    let engine = api
        .shared
        .engine
        .get()
        .cloned()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "the engine is not running"))?;
    let known = api
        .shared
        .book
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .active
        .contains_key(&call);
    if !known {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("{call} is not an active call"),
        ));
    }
    Ok((call, engine))
}

pub(super) async fn hangup(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let (call, engine) = match active_call(&api, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    tracing::info!(%call, "hang-up requested through the API");
    match tokio::time::timeout(ACTION_TIMEOUT, engine.hangup(call, 0).wait_async()).await {
        Ok(Ok(())) => (
            StatusCode::ACCEPTED,
            Json(json!({"call": call.to_string(), "hangup": "sent"})),
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, &format!("hang-up failed: {e}")),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine did not answer in time",
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Transfer {
    target: String,
}

pub(super) async fn transfer(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Option<Json<Transfer>>,
) -> Response {
    let Some(Json(Transfer { target })) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON {\"target\": \"sip:...\"} with Content-Type: application/json",
        );
    };
    let target = target.trim().to_owned();
    if !(target.starts_with("sip:") || target.starts_with("sips:") || target.starts_with("tel:"))
        || target.len() > 512
    {
        return error(
            StatusCode::BAD_REQUEST,
            "target must be a SIP or tel URI such as sip:+4930123456@sip.example.com",
        );
    }
    let (call, engine) = match active_call(&api, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    tracing::info!(%call, %target, "transfer requested through the API");
    match tokio::time::timeout(
        ACTION_TIMEOUT,
        engine.transfer(call, target.clone()).wait_async(),
    )
    .await
    {
        Ok(Ok(())) => (
            StatusCode::ACCEPTED,
            Json(json!({"call": call.to_string(), "transfer": "sent", "target": target})),
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, &format!("transfer failed: {e}")),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine did not answer in time",
        ),
    }
}

/// The call's recording: a stereo WAV (caller left, agent right, 16 kHz), once the call has
/// ended and the file is written.
pub(super) async fn recording(State(api): State<Api>, Path(id): Path<String>) -> Response {
    if parse_call_id(&id).is_none() {
        return error(StatusCode::BAD_REQUEST, "a call id looks like call-7");
    }
    if !api.settings.recording_enabled {
        return error(
            StatusCode::NOT_FOUND,
            "recording not enabled (set RECORD_CALLS=true)",
        );
    }
    let path = api
        .shared
        .book
        .lock()
        .ok()
        .and_then(|book| book.recordings.get(&id).cloned());
    let Some(path) = path else {
        return error(
            StatusCode::NOT_FOUND,
            "no recording for this call (yet: it is written when the call ends)",
        );
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            StatusCode::OK,
            [
                (axum::http::header::CONTENT_TYPE, "audio/wav".to_string()),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"{id}.wav\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "the recording file is gone (deleted by RECORDING_RETENTION_DAYS?)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_parse_with_or_without_prefix() {
        assert_eq!(parse_call_id("call-7"), Some(CallId(7)));
        assert_eq!(parse_call_id("7"), Some(CallId(7)));
        assert_eq!(parse_call_id("call-x"), None);
        assert_eq!(parse_call_id(""), None);
    }
}
