//! The API against a real `voiceagent run` and baresip: a call shows up in the calls list and
//! the event stream with its transcript, hang-up through the API ends it at baresip, metrics
//! move, and an outbound call placed through the API rings baresip — only when its destination is
//! in `OUTBOUND_ALLOWED` and the request is not cross-site or under a foreign `Host`.

mod api_support;
mod common;

use std::time::Duration;

use api_support::{get, parse_prometheus, raw, request, sample, wait_for, EventStream};
use common::Voiceagent;
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::speech::{padded_phrase_wav, Phrase};
use serde_json::{json, Value};

const TOKEN: &str = "calls-token-0123456789abcdef";
const LONG: Duration = Duration::from_secs(30);

fn metrics(addr: &str) -> Vec<(String, f64)> {
    let r = get(addr, "/metrics", Some(TOKEN));
    assert_eq!(r.status, 200);
    parse_prometheus(&r.body)
}

#[test]
fn a_call_is_listed_streamed_hung_up_and_counted() {
    let va = Voiceagent::run(&[("API_TOKEN", TOKEN.to_owned())]);
    let addr = va.api_addr.clone();
    let before = metrics(&addr);
    let mut events = EventStream::open(&addr, Some(TOKEN));

    let wav = padded_phrase_wav(Phrase::GermanOrder, 48000, 6000, 30_000).unwrap();
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &wav).codecs(&[Codec::Opus])).unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();

    let started = events.wait(LONG, |e| e["type"] == "call_started");
    let id = started["call"].as_str().unwrap().to_owned();
    assert_eq!(started["direction"], "incoming");
    assert!(
        started["from"].as_str().unwrap().contains("caller"),
        "{started}"
    );
    events.wait(LONG, |e| {
        e["type"] == "call_answered" && e["call"] == id.as_str()
    });
    // The echo agent's greeting arrives as a transcript line once it has been spoken.
    let line = events.wait(LONG, |e| {
        e["type"] == "transcript" && e["call"] == id.as_str() && e["speaker"] == "agent"
    });
    assert!(
        line["text"].as_str().unwrap().contains("Echo-Test"),
        "{line}"
    );
    let levels = events.wait(LONG, |e| {
        e["type"] == "levels" && e["call"] == id.as_str() && e["agent_dbfs"].as_f64() > Some(-60.0)
    });
    assert!(levels["caller_dbfs"].is_number());
    let quality = events.wait(LONG, |e| e["type"] == "quality" && e["call"] == id.as_str());
    assert_eq!(quality["codec"], "opus", "{quality}");

    let list = get(&addr, "/api/calls", Some(TOKEN)).json();
    let active = list["active"].as_array().unwrap();
    let me = active
        .iter()
        .find(|c| c["call"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is listed as active: {list}"));
    assert_eq!(me["codec"], "opus");
    assert_eq!(me["clock_rate"], 48000);

    let detail = get(&addr, &format!("/api/calls/{id}"), Some(TOKEN)).json();
    assert_eq!(detail["state"], "active");
    assert_eq!(detail["answered"], true);
    assert!(
        detail["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"].as_str().unwrap_or("").contains("Echo-Test")),
        "the active call's detail has its transcript so far: {detail}"
    );
    assert_eq!(detail["quality"]["codec"], "opus", "{detail}");

    let status = get(&addr, "/api/status", Some(TOKEN)).json();
    assert_eq!(status["active_calls"], 1);
    // OUTBOUND_ALLOWED is unset here: the outbound API is off and says how to turn it on.
    let r = request(
        &addr,
        "POST",
        "/api/calls",
        Some(TOKEN),
        Some(&json!({"uri": "sip:caller@127.0.0.1"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("OUTBOUND_ALLOWED"));
    assert_eq!(status["sip"]["mode"], "ip");
    assert!(!status.to_string().contains(TOKEN));

    // Hang up through the API: baresip sees the call end.
    let r = request(
        &addr,
        "POST",
        &format!("/api/calls/{id}/hangup"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    caller.wait_closed().unwrap();
    let ended = events.wait(LONG, |e| {
        e["type"] == "call_ended" && e["call"] == id.as_str()
    });
    assert!(ended["duration_ms"].as_u64().unwrap() > 1000, "{ended}");

    let recent = wait_for("the call in the history", LONG, || {
        let list = get(&addr, "/api/calls", Some(TOKEN)).json();
        let items = list["recent"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        items.into_iter().find(|c| c["call"] == id.as_str())
    });
    assert_eq!(recent["codec"], "opus");
    let detail = get(&addr, &format!("/api/calls/{id}"), Some(TOKEN)).json();
    assert_eq!(detail["state"], "ended");
    let entries = detail["transcript"]["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "agent" && e["text"].as_str().unwrap().contains("Echo-Test")),
        "the ended call keeps its transcript with timestamps: {detail}"
    );
    assert!(entries.iter().all(|e| e["at_ms"].is_u64()));
    let r = request(
        &addr,
        "POST",
        &format!("/api/calls/{id}/hangup"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 404, "an ended call cannot be hung up again");

    let after = metrics(&addr);
    let total = |s: &[(String, f64)]| -> f64 {
        s.iter()
            .filter(|(k, _)| k.starts_with("voiceagent_calls_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        total(&after),
        total(&before) + 1.0,
        "one more finished call"
    );
    assert_eq!(
        sample(&after, "voiceagent_calls_by_codec_total{codec=\"opus\"}"),
        1.0
    );
    assert!(sample(&after, "voiceagent_uplink_latency_seconds_count") > 10.0);
    assert!(sample(&after, "voiceagent_downlink_latency_seconds_count") > 1.0);
    assert_eq!(sample(&after, "voiceagent_calls_active"), 0.0);
    drop(caller);
}

#[test]
fn an_outbound_call_placed_through_the_api_rings_baresip() {
    let wav = padded_phrase_wav(Phrase::GermanOrder, 48000, 300, 300).unwrap();
    let mut callee =
        Baresip::spawn(&BaresipConfig::new("callee", &wav).codecs(&[Codec::Opus])).unwrap();
    // Exactly this callee may be called through the API.
    let va = Voiceagent::run(&[
        ("API_TOKEN", TOKEN.to_owned()),
        ("OUTBOUND_ALLOWED", callee.uri()),
    ]);
    let addr = va.api_addr.clone();
    let mut events = EventStream::open(&addr, Some(TOKEN));

    // Refused first, each for its own reason; every one of them would ring the callee if placed.
    let same_callee_elsewhere = callee.uri().replace("@127.0.0.1", "@localhost");
    for (uri, extra, want) in [
        (same_callee_elsewhere, String::new(), 403),
        (
            format!("{};maddr=127.0.0.1", callee.uri()),
            String::new(),
            400,
        ),
        (
            callee.uri(),
            "Origin: http://attacker.example\r\n".to_owned(),
            403,
        ),
        (
            callee.uri(),
            "Sec-Fetch-Site: cross-site\r\n".to_owned(),
            403,
        ),
        (
            callee.uri(),
            format!("Origin: http://{addr}\r\nSec-Fetch-Site: same-site\r\n"),
            403,
        ),
    ] {
        let head = format!(
            "POST /api/calls HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n{extra}"
        );
        let r = raw(&addr, &head, Some(&json!({ "uri": uri })));
        assert_eq!(r.status, want, "{uri} {extra:?}: {}", r.body);
    }
    // A DNS-rebinding page reaches the same socket under its own name, or another port's origin.
    let port = addr.rsplit_once(':').unwrap().1;
    for (host, origin) in [
        (format!("attacker.example:{port}"), String::new()),
        (
            format!("127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1),
            String::new(),
        ),
        (
            addr.clone(),
            format!(
                "Origin: http://127.0.0.1:{}\r\n",
                port.parse::<u16>().unwrap() ^ 1
            ),
        ),
    ] {
        let head = format!(
            "POST /api/calls HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n{origin}"
        );
        let r = raw(&addr, &head, Some(&json!({"uri": callee.uri()})));
        assert!(
            r.status == 421 || r.status == 403,
            "Host {host} {origin:?}: {} {}",
            r.status,
            r.body
        );
    }
    assert!(
        get(&addr, "/api/calls", Some(TOKEN)).json()["active"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no refused request placed a call"
    );

    let r = request(
        &addr,
        "POST",
        "/api/calls",
        Some(TOKEN),
        Some(&json!({"uri": callee.uri()})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["call"].as_str().unwrap().to_owned();
    callee.wait_incoming().unwrap();
    let rang = callee
        .event_history()
        .iter()
        .filter(|k| *k == "CALL_INCOMING")
        .count();
    assert_eq!(rang, 1, "only the allowed request rang the callee");

    let started = events.wait(LONG, |e| {
        e["type"] == "call_started" && e["call"] == id.as_str()
    });
    assert_eq!(started["direction"], "outgoing");
    let list = get(&addr, "/api/calls", Some(TOKEN)).json();
    let listed: Vec<&Value> = list["active"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["call"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "the placed call is active: {list}");
    assert_eq!(listed[0]["direction"], "outgoing");

    // Answer, then hang up from the API.
    callee.accept().unwrap();
    callee.wait_established().unwrap();
    // (The bridge publishes `call_answered` only for calls it answers; media flowing is the
    // sign here.)
    let q = events.wait(LONG, |e| e["type"] == "quality" && e["call"] == id.as_str());
    assert_eq!(q["codec"], "opus", "{q}");
    let r = request(
        &addr,
        "POST",
        &format!("/api/calls/{id}/hangup"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    callee.wait_closed().unwrap();
    events.wait(LONG, |e| {
        e["type"] == "call_ended" && e["call"] == id.as_str()
    });

    let bad = request(
        &addr,
        "POST",
        "/api/calls/call-999/transfer",
        Some(TOKEN),
        Some(&json!({"target": "sip:desk@127.0.0.1"})),
    );
    assert_eq!(bad.status, 404, "{}", bad.body);
}
