//! The API in-process (no SIP engine): token enforcement, the OpenAPI description against the
//! router, metrics as Prometheus text, orders, the refusal of an open API beyond loopback.

mod api_support;
mod common;

use std::time::Duration;

use agent::api::outbound::{OutboundPattern, OutboundPolicy};
use agent::api::{self, Api, ApiSettings};
use agent::ordering::store::{NewOrder, OrderLine};
use agent::ordering::OrderStore;
use agent::state::Shared;
use api_support::{get, parse_prometheus, raw, request, sample};
use pjsip_safe::Secret;
use serde_json::json;

const TOKEN: &str = "test-token-0123456789abcdef";

/// Serves the router on a free loopback port; the runtime lives as long as the returned value.
struct Server {
    addr: String,
    _runtime: tokio::runtime::Runtime,
    shared: Shared,
}

fn serve(settings: ApiSettings) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared = Shared::default();
    let app = api::router(Api::new(shared.clone(), settings));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    runtime.spawn(async move { axum::serve(listener, app).await });
    Server {
        addr,
        _runtime: runtime,
        shared,
    }
}

/// Outbound calls through the API to any user at 127.0.0.1.
fn loopback_outbound() -> OutboundPolicy {
    OutboundPolicy::new(
        vec![OutboundPattern::parse("sip:*@127.0.0.1").unwrap()],
        &[],
    )
}

fn with_token() -> Server {
    serve(ApiSettings {
        token: Some(Secret::new(TOKEN)),
        config_summary: json!({"sip": {"mode": "ip"}}),
        outbound: loopback_outbound(),
        ..ApiSettings::default()
    })
}

#[test]
fn the_token_protects_everything_but_liveness_and_the_dashboard_shell() {
    let s = with_token();
    assert_eq!(get(&s.addr, "/healthz", None).status, 200);
    for path in ["/", "/app.js", "/style.css"] {
        assert_eq!(get(&s.addr, path, None).status, 200, "{path}");
    }
    let protected = [
        "/readyz",
        "/api/status",
        "/api/calls",
        "/api/calls/call-1",
        "/api/orders",
        "/api/openapi.json",
        "/metrics",
        "/api/events",
    ];
    for path in protected {
        let r = get(&s.addr, path, None);
        assert_eq!(r.status, 401, "{path} without a token");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{path}: 401 names the scheme"
        );
        assert_eq!(
            get(&s.addr, path, Some("wrong-token-0123456789")).status,
            403,
            "{path}"
        );
        assert_eq!(
            get(&s.addr, path, Some(&TOKEN[..TOKEN.len() - 1])).status,
            403,
            "{path}: a prefix of the token is wrong"
        );
    }
    let r = request(&s.addr, "POST", "/api/calls/call-1/hangup", None, None);
    assert_eq!(r.status, 401, "actions need the token too");
    let r = get(&s.addr, "/api/status", Some(TOKEN));
    assert_eq!(r.status, 200);
    let status = r.json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["sip"]["registration"], "starting");
    assert_eq!(status["config"]["sip"]["mode"], "ip");
    assert!(
        !r.body.contains(TOKEN),
        "the status must not show the token"
    );
    // Without an engine the service is not ready, and says so.
    assert_eq!(get(&s.addr, "/readyz", Some(TOKEN)).status, 503);
}

#[test]
fn errors_are_json_and_actions_check_their_input() {
    let s = with_token();
    let r = get(&s.addr, "/no/such/route", Some(TOKEN));
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("openapi"));
    assert_eq!(get(&s.addr, "/api/calls/banana", Some(TOKEN)).status, 400);
    assert_eq!(get(&s.addr, "/api/calls/call-99", Some(TOKEN)).status, 404);
    let r = request(
        &s.addr,
        "POST",
        "/api/calls",
        Some(TOKEN),
        Some(&json!({"uri": "http://x"})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request(&s.addr, "POST", "/api/calls", Some(TOKEN), None);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request(
        &s.addr,
        "POST",
        "/api/calls",
        Some(TOKEN),
        Some(&json!({"uri": "sip:a@127.0.0.1"})),
    );
    assert_eq!(r.status, 503, "no service loop yet: {}", r.body);
    let r = request(
        &s.addr,
        "POST",
        "/api/calls/call-3/hangup",
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 503, "no engine yet: {}", r.body);
    let r = get(&s.addr, "/api/calls/call-3/recording", Some(TOKEN));
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("recording not enabled"));
}

#[test]
fn the_openapi_description_matches_the_routes() {
    assert_eq!(
        api::openapi::documented_routes(),
        api::route_table(),
        "every route is documented and every documented route exists"
    );
    let s = with_token();
    let r = get(&s.addr, "/api/openapi.json", Some(TOKEN));
    assert_eq!(r.status, 200);
    let served = r.json();
    assert_eq!(served, api::openapi::spec());
    assert_eq!(served["openapi"], "3.1.0");
    // Every documented route answers something other than "no such route" (paths with
    // parameters get a placeholder; GET only, actions are covered above).
    for (method, path) in api::route_table() {
        if method != "GET" || path == "/api/events" {
            continue;
        }
        let concrete = path.replace("{id}", "call-1").replace("{order_no}", "X");
        let r = get(&s.addr, &concrete, Some(TOKEN));
        let fallback = r.status == 404 && r.body.contains("no such route");
        assert!(!fallback, "{path} is documented but not routed");
    }
    // The schemas every $ref points at exist.
    let text = served.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(
            served["components"]["schemas"][name].is_object(),
            "missing schema {name}"
        );
    }
}

#[test]
fn metrics_are_prometheus_text() {
    let s = with_token();
    let r = get(&s.addr, "/metrics", Some(TOKEN));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .contains("openmetrics-text"));
    let samples = parse_prometheus(&r.body);
    assert_eq!(sample(&samples, "voiceagent_calls_active"), 0.0);
    assert!(r
        .body
        .contains("# TYPE voiceagent_uplink_latency_seconds histogram"));
    assert_eq!(
        sample(&samples, "voiceagent_calls_total{outcome=\"completed\"}"),
        0.0
    );
    assert!(
        r.body.contains("# TYPE voiceagent_calls counter"),
        "{}",
        r.body
    );
    // A live event moves the event-derived metrics only through the sampler task, which the
    // in-process router does not run; record directly and see the exposition move.
    s.shared.metrics.observe(&agent::live::LiveEvent::ToolCall {
        call: "call-1".into(),
        name: "search_products".into(),
        arguments: "{}".into(),
        output: "[]".into(),
        ok: true,
        duration_ms: 12,
    });
    let samples = parse_prometheus(&get(&s.addr, "/metrics", Some(TOKEN)).body);
    assert_eq!(
        sample(
            &samples,
            "voiceagent_tool_calls_total{tool=\"search_products\",result=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "voiceagent_tool_latency_seconds_count{tool=\"search_products\"}"
        ),
        1.0
    );
}

#[test]
fn orders_are_listed_filtered_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = OrderStore::open_in(dir.path()).unwrap();
    let now = chrono::Utc::now();
    let order_no = store
        .confirm(
            &NewOrder {
                call_id: "call-1".into(),
                caller: "+4930111".into(),
                started_at: now,
                items: vec![OrderLine {
                    article_no: "A-1".into(),
                    name: "Schraube".into(),
                    quantity: 3.0,
                    unit: "Stk".into(),
                    unit_price_cents: 150,
                }],
                transcript: "caller: drei Schrauben".into(),
            },
            now,
        )
        .unwrap();
    drop(store);
    let s = serve(ApiSettings {
        token: Some(Secret::new(TOKEN)),
        data_dir: Some(dir.path().to_owned()),
        ..ApiSettings::default()
    });
    let list = get(&s.addr, "/api/orders", Some(TOKEN)).json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["order_no"], order_no.as_str());
    assert_eq!(list["items"][0]["items"][0]["name"], "Schraube");
    let today = now.format("%Y-%m-%d").to_string();
    let r = get(
        &s.addr,
        &format!("/api/orders?status=confirmed&caller=%2B4930111&from={today}&to={today}"),
        Some(TOKEN),
    );
    assert_eq!(r.json()["total"], 1, "{}", r.body);
    for q in ["caller=%2B4930999", "status=abandoned", "from=2999-01-01"] {
        let r = get(&s.addr, &format!("/api/orders?{q}"), Some(TOKEN));
        assert_eq!(r.json()["total"], 0, "{q}: {}", r.body);
    }
    assert_eq!(
        get(&s.addr, "/api/orders?from=yesterday", Some(TOKEN)).status,
        400
    );
    assert_eq!(
        get(&s.addr, "/api/orders?status=lost", Some(TOKEN)).status,
        400
    );
    let one = get(&s.addr, &format!("/api/orders/{order_no}"), Some(TOKEN));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["total_net_cents"], 450);
    assert_eq!(get(&s.addr, "/api/orders/NOPE-1", Some(TOKEN)).status, 404);
}

#[test]
fn an_open_api_beyond_loopback_refuses_to_start() {
    let port = integration_tests::ports::tcp_port().unwrap();
    let mut va =
        common::Voiceagent::spawn_with(&["run"], &[("API_ADDR", format!("0.0.0.0:{port}"))]);
    let status = va
        .wait_exit(Duration::from_secs(20))
        .expect("voiceagent must exit by itself");
    assert!(!status.success(), "it must fail");
    let log = va.log_text();
    assert!(
        log.contains("API_TOKEN is not set") && log.contains("127.0.0.1"),
        "the error says why and what to do:\n{log}"
    );
    assert!(
        !log.contains("SIP engine started"),
        "nothing starts before the refusal:\n{log}"
    );
}

/// `METHOD path` with these headers (each `Name: value`), plus the bearer token.
fn head(method: &str, path: &str, headers: &[&str]) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n");
    for line in headers {
        h.push_str(line);
        h.push_str("\r\n");
    }
    h
}

#[test]
fn foreign_host_names_are_refused_but_liveness_answers_any() {
    let s = with_token();
    let port = s.addr.rsplit_once(':').unwrap().1.to_owned();
    let host = |h: &str| format!("Host: {h}");
    // Ours: the address itself and localhost on loopback, in any case, with a trailing dot.
    for ours in [
        s.addr.clone(),
        format!("localhost:{port}"),
        format!("LocalHost.:{port}"),
    ] {
        let r = raw(&s.addr, &head("GET", "/api/status", &[&host(&ours)]), None);
        assert_eq!(r.status, 200, "{ours}: {}", r.body);
    }
    // A rebinding page's name, on every route (the dashboard shell and metrics too).
    for path in [
        "/api/status",
        "/api/calls",
        "/",
        "/app.js",
        "/metrics",
        "/readyz",
    ] {
        let r = raw(
            &s.addr,
            &head("GET", path, &[&host(&format!("attacker.example:{port}"))]),
            None,
        );
        assert_eq!(r.status, 421, "{path}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains("API_ALLOWED_HOSTS"), "{error}");
    }
    // Odd values.
    let long = format!("{}.example:{port}", "a".repeat(20_000));
    for (value, want) in [
        (format!("ATTACKER.example.:{port}"), 421),
        (format!("192.168.1.10:{port}"), 421),
        (format!("[2001:db8::1]:{port}"), 421),
        ("[::1".to_owned(), 400),
        (format!("127.0.0.1:{port}:{port}"), 400),
        (String::new(), 400),
        (long, 400),
    ] {
        let r = raw(&s.addr, &head("GET", "/api/status", &[&host(&value)]), None);
        let shown: String = value.chars().take(60).collect();
        assert_eq!(r.status, want, "Host {shown}: {}", r.body);
        assert!(r.json()["error"].is_string());
        assert!(r.body.len() < 400, "the error does not echo a huge Host");
    }
    // Two Host headers, or none at all (HTTP/1.0 allows that).
    let r = raw(
        &s.addr,
        &head(
            "GET",
            "/api/status",
            &[&host(&s.addr), &host("attacker.example")],
        ),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = raw(
        &s.addr,
        &format!("GET /api/status HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Liveness answers whatever the name (probes, load balancers).
    let r = raw(
        &s.addr,
        &head("GET", "/healthz", &["Host: attacker.example"]),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn configured_host_names_are_accepted() {
    let s = serve(ApiSettings {
        token: Some(Secret::new(TOKEN)),
        hosts: api::guard::HostPolicy {
            bind: None,
            allowed: vec![api::guard::AllowedHost::parse("voiceagent.internal").unwrap()],
        },
        ..ApiSettings::default()
    });
    let r = raw(
        &s.addr,
        &head("GET", "/api/status", &["Host: VoiceAgent.Internal:8443"]),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(
        &s.addr,
        &head("GET", "/api/status", &["Host: voiceagent.internal.evil"]),
        None,
    );
    assert_eq!(r.status, 421, "{}", r.body);
}

#[test]
fn cross_site_state_changes_are_refused() {
    let s = with_token();
    let ours = format!("Host: {}", s.addr);
    let call = json!({"uri": "sip:a@127.0.0.1"});
    for extra in [
        "Origin: http://attacker.example".to_owned(),
        "Origin: null".to_owned(),
        "Origin: http://attacker.example:80".to_owned(),
        "Sec-Fetch-Site: cross-site".to_owned(),
        "Sec-Fetch-Site: same-site".to_owned(),
        format!("Origin: http://{}\r\nSec-Fetch-Site: cross-site", s.addr),
        format!(
            "Origin: http://{}\r\nOrigin: http://attacker.example",
            s.addr
        ),
    ] {
        for (path, body) in [
            ("/api/calls", Some(&call)),
            ("/api/calls/call-1/hangup", None),
            ("/api/calls/call-1/transfer", None),
        ] {
            let r = raw(&s.addr, &head("POST", path, &[&ours, &extra]), body);
            assert!(
                r.status == 403 || (r.status == 400 && extra.matches("Origin:").count() == 2),
                "{path} with {extra:?}: {} {}",
                r.status,
                r.body
            );
            assert!(r.json()["error"].is_string());
        }
    }
    // The same request from the page the API serves, or from a script, gets through the checks
    // (and then fails for want of a running service).
    for extra in [
        format!("Origin: http://{}\r\nSec-Fetch-Site: same-origin", s.addr),
        "Sec-Fetch-Site: none".to_owned(),
        "X-Nothing: 1".to_owned(),
    ] {
        let r = raw(
            &s.addr,
            &head("POST", "/api/calls", &[&ours, &extra]),
            Some(&call),
        );
        assert_eq!(r.status, 503, "{extra:?}: {}", r.body);
    }
    // Reading is not a state change: a cross-site GET is answered (the browser hides the answer
    // from the other site; the Host check stops rebinding).
    let r = raw(
        &s.addr,
        &head(
            "GET",
            "/api/status",
            &[
                &ours,
                "Origin: http://attacker.example",
                "Sec-Fetch-Site: cross-site",
            ],
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn outbound_calls_need_a_listed_destination() {
    // Disabled by default, and the error names the key that enables it.
    let s = serve(ApiSettings {
        token: Some(Secret::new(TOKEN)),
        ..ApiSettings::default()
    });
    let r = request(
        &s.addr,
        "POST",
        "/api/calls",
        Some(TOKEN),
        Some(&json!({"uri": "sip:a@127.0.0.1"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("set OUTBOUND_ALLOWED"));

    let s = with_token();
    for (uri, want) in [
        ("sip:a@127.0.0.1", 503),
        ("sip:premium@203.0.113.7", 403),
        ("sip:a@127.0.0.1.attacker.example", 403),
        ("sip:a@127.0.0.1;maddr=203.0.113.7", 400),
        ("sip:a@127.0.0.1?Route=%3Csip:203.0.113.7%3E", 400),
        ("sip:a:pw@127.0.0.1", 400),
    ] {
        let r = request(
            &s.addr,
            "POST",
            "/api/calls",
            Some(TOKEN),
            Some(&json!({ "uri": uri })),
        );
        assert_eq!(r.status, want, "{uri}: {}", r.body);
    }
}
