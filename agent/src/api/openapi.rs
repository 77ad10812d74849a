//! The OpenAPI 3.1 description of the API, served at `/api/openapi.json`.
//!
//! Written by hand as JSON rather than generated (utoipa): the API is small, most responses are
//! assembled JSON rather than Rust types, and a derive layer would add more code than it saves.
//! What keeps it honest is a test: the set of paths and methods here must equal the router's
//! route table ([`super::route_table`]).

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn err(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn call_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": "call id, e.g. call-7", "schema": {"type": "string"}})
}

fn auth_errors(mut responses: Value) -> Value {
    responses["401"] = err("no bearer token was sent");
    responses["403"] = err(
        "the bearer token is wrong; for POST also a request a browser sent from another site, \
         or (POST /api/calls) a destination not in OUTBOUND_ALLOWED",
    );
    responses["421"] = err("the Host header is not an address of this API (see API_ALLOWED_HOSTS)");
    responses
}

/// The whole description.
pub fn spec() -> Value {
    let any = json!({"type": "object"});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "voiceagent API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Status, calls, orders, live events and metrics of a running voiceagent. \
                Every route except /healthz and the dashboard's static files needs \
                `Authorization: Bearer <API_TOKEN>` when API_TOKEN is set."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {
                "summary": "Liveness: the process answers HTTP (no token needed)",
                "security": [],
                "responses": {"200": ok("alive", json!({"type": "object", "properties": {"status": {"const": "ok"}}}))}
            }},
            "/readyz": {"get": {
                "summary": "Readiness: the SIP engine runs (registered in trunk mode) and the Realtime backend answered",
                "responses": auth_errors(json!({
                    "200": ok("ready", json!({"$ref": "#/components/schemas/Readiness"})),
                    "503": ok("not ready", json!({"$ref": "#/components/schemas/Readiness"}))
                }))
            }},
            "/api/status": {"get": {
                "summary": "Version, uptime, SIP mode and registration, active calls, configuration without secrets",
                "responses": auth_errors(json!({"200": ok("status", json!({"$ref": "#/components/schemas/Status"}))}))
            }},
            "/api/calls": {
                "get": {
                    "summary": "Active calls and a page of recent (finished) calls, newest first",
                    "parameters": [
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}
                    ],
                    "responses": auth_errors(json!({"200": ok("calls", json!({
                        "type": "object",
                        "properties": {
                            "active": {"type": "array", "items": {"$ref": "#/components/schemas/ActiveCall"}},
                            "recent": {"type": "object", "properties": {
                                "items": {"type": "array", "items": {"$ref": "#/components/schemas/CallSummary"}},
                                "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}
                            }}
                        }
                    }))}))
                },
                "post": {
                    "summary": "Place an outbound call bridged to the agent, only to a destination matching OUTBOUND_ALLOWED (empty: disabled, 403)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["uri"],
                        "properties": {"uri": {"type": "string", "example": "sip:+4930123456@sip.example.com"}}
                    }}}},
                    "responses": auth_errors(json!({
                        "201": ok("the call is being placed", json!({"type": "object", "properties": {"call": {"type": "string"}, "uri": {"type": "string"}}})),
                        "400": err("missing or invalid uri"),
                        "502": err("the engine could not place the call"),
                        "503": err("the service is starting or stopping")
                    }))
                }
            },
            "/api/calls/{id}": {"get": {
                "summary": "One call in detail: caller, called number, codec and clock rate, jitter/loss/RTT, timings, transcript with timestamps, tool calls, barge-ins, errors",
                "parameters": [call_param()],
                "responses": auth_errors(json!({
                    "200": ok("the call (state = active or ended)", json!({"$ref": "#/components/schemas/CallDetail"})),
                    "400": err("malformed call id"),
                    "404": err("unknown call")
                }))
            }},
            "/api/calls/{id}/hangup": {"post": {
                "summary": "Hang up an active call",
                "parameters": [call_param()],
                "responses": auth_errors(json!({
                    "202": ok("hang-up sent; the call_ended event follows", any.clone()),
                    "404": err("not an active call"),
                    "409": err("the engine refused")
                }))
            }},
            "/api/calls/{id}/transfer": {"post": {
                "summary": "Blind-transfer an active call (SIP REFER)",
                "parameters": [call_param()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["target"],
                    "properties": {"target": {"type": "string", "example": "sip:desk@pbx.example.com"}}
                }}}},
                "responses": auth_errors(json!({
                    "202": ok("REFER sent", any.clone()),
                    "400": err("missing or invalid target"),
                    "404": err("not an active call"),
                    "409": err("the engine refused")
                }))
            }},
            "/api/calls/{id}/recording": {"get": {
                "summary": "The call's recording: stereo WAV, caller left, agent right, 16 kHz; available once the call has ended (404 while RECORD_CALLS is off)",
                "parameters": [call_param()],
                "responses": auth_errors(json!({
                    "200": {"description": "the recording", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": err("recording not enabled, or no recording for this call")
                }))
            }},
            "/api/orders": {"get": {
                "summary": "Orders, newest first, filtered by date, status and caller",
                "parameters": [
                    {"name": "from", "in": "query", "description": "ended at or after: 2025-01-31 or RFC 3339", "schema": {"type": "string"}},
                    {"name": "to", "in": "query", "description": "ended before; a date includes that whole day", "schema": {"type": "string"}},
                    {"name": "status", "in": "query", "schema": {"enum": ["confirmed", "abandoned"]}},
                    {"name": "caller", "in": "query", "description": "exact caller number", "schema": {"type": "string"}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
                ],
                "responses": auth_errors(json!({
                    "200": ok("orders", json!({"type": "object", "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
                        "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}
                    }})),
                    "400": err("a filter value is malformed")
                }))
            }},
            "/api/orders/{order_no}": {"get": {
                "summary": "One order with its items",
                "parameters": [{"name": "order_no", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": auth_errors(json!({
                    "200": ok("the order", json!({"$ref": "#/components/schemas/Order"})),
                    "404": err("unknown order number")
                }))
            }},
            "/api/events": {"get": {
                "summary": "Live events as Server-Sent Events: call_started, call_answered, call_ended, transcript, tool_call, barge_in, levels, quality, realtime_error, turn_latency, registration (plus hello and lagged)",
                "responses": auth_errors(json!({
                    "200": {"description": "an endless text/event-stream; each data line is one LiveEvent as JSON",
                            "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/LiveEvent"}}}}
                }))
            }},
            "/api/openapi.json": {"get": {
                "summary": "This description",
                "responses": auth_errors(json!({"200": ok("OpenAPI 3.1", any.clone())}))
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (OpenMetrics text)",
                "responses": auth_errors(json!({
                    "200": {"description": "metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}
                }))
            }},
            "/": {"get": {
                "summary": "The web dashboard (no token needed to load it; it asks for one)",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}
            }},
            "/app.js": {"get": {
                "summary": "The dashboard's script", "security": [],
                "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}}}
            }},
            "/style.css": {"get": {
                "summary": "The dashboard's style sheet", "security": [],
                "responses": {"200": {"description": "CSS", "content": {"text/css": {"schema": {"type": "string"}}}}}
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API_TOKEN"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Readiness": {"type": "object", "properties": {
                    "ready": {"type": "boolean"}, "sip": {"type": "boolean"},
                    "registration": {"$ref": "#/components/schemas/RegistrationState"},
                    "realtime_backend": {"type": "boolean"}
                }},
                "RegistrationState": {"enum": ["starting", "ip_mode", "unknown", "registered", "unregistered", "failed"]},
                "Status": {"type": "object", "properties": {
                    "version": {"type": "string"},
                    "uptime_s": {"type": ["integer", "null"]},
                    "sip": {"type": "object", "properties": {
                        "mode": {"enum": ["trunk", "ip", null]},
                        "registration": {"$ref": "#/components/schemas/RegistrationState"},
                        "registration_detail": {},
                        "pjsip_version": {"type": ["string", "null"]},
                        "listening": {"type": ["array", "null"], "items": {"type": "string"}},
                        "codecs": {"type": ["array", "null"], "items": {"type": "string"}}
                    }},
                    "realtime_backend_ok": {"type": "boolean"},
                    "active_calls": {"type": "integer"},
                    "total_calls": {"type": "integer"},
                    "recording_enabled": {"type": "boolean"},
                    "config": {"type": "object", "description": "every setting; secrets only as \"set\"/\"unset\""}
                }},
                "ActiveCall": {"type": "object", "properties": {
                    "call": {"type": "string"}, "state": {"const": "active"},
                    "direction": {"enum": ["incoming", "outgoing"]},
                    "from": {"type": "string"}, "to": {"type": "string"},
                    "source": {"type": ["string", "null"]},
                    "codec": {"type": ["string", "null"]}, "clock_rate": {"type": ["integer", "null"]},
                    "duration_ms": {"type": "integer"}
                }},
                "CallSummary": {"type": "object", "properties": {
                    "call": {"type": "string"}, "state": {"const": "ended"},
                    "direction": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
                    "started_at": {"type": "integer", "description": "Unix ms"},
                    "answered_after_ms": {"type": ["integer", "null"]}, "duration_ms": {"type": "integer"},
                    "codec": {"type": ["string", "null"]}, "clock_rate": {"type": ["integer", "null"]},
                    "end_reason": {"type": "string"},
                    "outcome": {"enum": ["completed", "unanswered", "backend_failed"]},
                    "barge_ins": {"type": "integer"}, "tool_calls": {"type": "integer"},
                    "errors": {"type": "integer"}, "transcript_lines": {"type": "integer"}
                }},
                "Quality": {"type": ["object", "null"], "properties": {
                    "codec": {"type": "string"}, "clock_rate": {"type": "integer"},
                    "rx_jitter_ms": {"type": "number"}, "rx_lost": {"type": "integer"},
                    "rx_packets": {"type": "integer"}, "tx_packets": {"type": "integer"},
                    "rtt_ms": {"type": ["number", "null"]}, "jitter_buffer_ms": {"type": "integer"},
                    "uplink_frames_dropped": {"type": "integer"},
                    "downlink_frames_discarded": {"type": "integer"},
                    "downlink_underruns": {"type": "integer"}
                }},
                "CallDetail": {"type": "object", "description": "An active call: ActiveCall plus transcript, tool_calls, barge_ins, errors (as LiveEvents so far) and quality. An ended call: the call's full report (started_at, answered_after_ms, duration_ms, codec, clock_rate, end_reason, barge_ins, truncations, tool_calls with arguments/output/ok/duration_ms/at_ms, errors, backend_failed, transcript.entries with at_ms and kind caller/agent/...) plus outcome and quality.",
                    "properties": {
                        "call": {"type": "string"}, "state": {"enum": ["active", "ended"]},
                        "quality": {"$ref": "#/components/schemas/Quality"}
                    }},
                "OrderLine": {"type": "object", "properties": {
                    "article_no": {"type": "string"}, "name": {"type": "string"},
                    "quantity": {"type": "number"}, "unit": {"type": "string"},
                    "unit_price_cents": {"type": "integer"}
                }},
                "Order": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "order_no": {"type": ["string", "null"]},
                    "status": {"enum": ["confirmed", "abandoned"]},
                    "call_id": {"type": "string"}, "caller": {"type": "string"},
                    "started_at": {"type": "string"}, "ended_at": {"type": "string"},
                    "total_net_cents": {"type": "integer"},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/OrderLine"}},
                    "transcript": {"type": "string"}
                }},
                "LiveEvent": {"type": "object", "required": ["type"], "description": "Tagged by type; every call event has `call`.",
                    "properties": {"type": {"enum": [
                        "hello", "lagged", "call_started", "call_answered", "call_ended", "transcript",
                        "tool_call", "barge_in", "levels", "quality", "realtime_error", "turn_latency", "registration"
                    ]}}}
            }
        }
    })
}

pub(super) async fn openapi() -> impl IntoResponse {
    Json(spec())
}

/// `(METHOD, path)` pairs the description documents, sorted.
pub fn documented_routes() -> Vec<(String, String)> {
    let spec = spec();
    let mut out = Vec::new();
    if let Some(paths) = spec["paths"].as_object() {
        for (path, ops) in paths {
            if let Some(ops) = ops.as_object() {
                for method in ops.keys() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}
