//! The local Realtime server against a real tokio-tungstenite client over TCP.
//!
//! These tests exercise the transport adapter (handshake checks, close codes, pacing timer)
//! on top of the state machine's unit tests, and check audio by comparing what came back
//! with what was sent.

use std::time::Duration;

use agent::realtime::server::script::speech_like;
use agent::realtime::server::{
    Fault, LocalRealtimeServer, Pacing, Prompt, Reply, Script, ServerConfig, ServerHandle,
    SessionEnd,
};
use base64::prelude::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const STEP: Duration = Duration::from_secs(10);

async fn server(script: Script, pacing: Pacing) -> ServerHandle {
    LocalRealtimeServer::start(ServerConfig {
        script,
        pacing,
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

async fn connect_with(
    server: &ServerHandle,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("{}?model=gpt-realtime", server.url())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Bearer sk-test-not-a-real-key"),
    );
    for (k, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Connects and consumes `session.created`.
async fn connect(server: &ServerHandle) -> Ws {
    let mut ws = connect_with(server, &[]).await.unwrap();
    let created = next(&mut ws).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(
        created["session"]["audio"]["input"]["format"],
        json!({"type":"audio/pcm","rate":24000})
    );
    ws
}

async fn send(ws: &mut Ws, event: Value) {
    ws.send(Message::text(event.to_string())).await.unwrap();
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("no server event within 10 s")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text event, got {other:?}"),
        }
    }
}

/// Reads events until one of type `kind`; returns it and everything before it.
async fn until(ws: &mut Ws, kind: &str) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    loop {
        let e = next(ws).await;
        if e["type"] == kind {
            return (e, seen);
        }
        seen.push(e);
    }
}

fn audio_of(events: &[Value]) -> Vec<i16> {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .flat_map(|e| {
            let bytes = BASE64_STANDARD
                .decode(e["delta"].as_str().unwrap())
                .unwrap();
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn b64(samples: &[i16]) -> String {
    BASE64_STANDARD.encode(
        samples
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

async fn append_in_frames(ws: &mut Ws, samples: &[i16]) {
    for chunk in samples.chunks(480) {
        send(
            ws,
            json!({"type":"input_audio_buffer.append","audio":b64(chunk)}),
        )
        .await;
    }
}

/// Normalised cross-correlation of `needle` against `hay` at one lag, using every `step`-th sample.
fn correlation_at(hay: &[i16], needle: &[i16], lag: usize, step: usize) -> f64 {
    let (mut dot, mut e1, mut e2) = (0.0, 0.0, 0.0);
    for i in (0..needle.len()).step_by(step) {
        let (a, b) = (f64::from(hay[lag + i]), f64::from(needle[i]));
        dot += a * b;
        e1 += a * a;
        e2 += b * b;
    }
    if e1 > 0.0 && e2 > 0.0 {
        dot / (e1 * e2).sqrt()
    } else {
        0.0
    }
}

/// Best normalised cross-correlation of `needle` inside `hay`, and its lag: a coarse search on
/// decimated samples, then a full-resolution search around the coarse peak.
fn best_correlation(hay: &[i16], needle: &[i16]) -> (f64, usize) {
    let max_lag = hay.len().saturating_sub(needle.len());
    let coarse = (0..=max_lag)
        .step_by(4)
        .map(|lag| (correlation_at(hay, needle, lag, 4), lag))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
    (coarse.1.saturating_sub(8)..=(coarse.1 + 8).min(max_lag))
        .map(|lag| (correlation_at(hay, needle, lag, 1), lag))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// A chirp (300 → 1500 Hz) with a syllable envelope: loud enough for the VAD, and with a
/// sharp autocorrelation so alignment is unambiguous.
fn chirp(ms: usize) -> Vec<i16> {
    let n = ms * 24;
    (0..n)
        .map(|i| {
            let t = i as f64 / 24_000.0;
            let dur = n as f64 / 24_000.0;
            let phase = 2.0 * std::f64::consts::PI * (300.0 * t + 600.0 * t * t / dur);
            (8000.0 * (0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin()) * phase.sin())
                as i16
        })
        .collect()
}

#[tokio::test]
async fn ga_happy_path_greeting_then_echo_of_caller_audio() {
    let server = server(Script::echo(), Pacing::Speedup(8.0)).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"session.update","session":{
        "type":"realtime","instructions":"Echo.",
        "audio":{"input":{"format":{"type":"audio/pcm","rate":24000},
                          "turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":400}},
                 "output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}}}})).await;
    let updated = next(&mut ws).await;
    assert_eq!(updated["type"], "session.updated");
    assert_eq!(
        updated["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"],
        400
    );
    assert_eq!(updated["session"]["audio"]["output"]["voice"], "marin");

    // Greeting on the client's response.create: exactly the embedded prompt.
    send(&mut ws, json!({"type":"response.create"})).await;
    let (done, events) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(audio_of(&events), &Prompt::Greeting.samples()[..]);
    let transcript = events
        .iter()
        .find(|e| e["type"] == "response.output_audio_transcript.done")
        .unwrap();
    assert_eq!(transcript["transcript"], Prompt::Greeting.transcript());

    // Caller speaks: 300 ms silence, 800 ms chirp, 800 ms silence, in 20 ms frames.
    let burst = chirp(800);
    let mut caller = vec![0i16; 300 * 24];
    caller.extend(&burst);
    caller.extend(vec![0i16; 800 * 24]);
    append_in_frames(&mut ws, &caller).await;
    let (started, _) = until(&mut ws, "input_audio_buffer.speech_started").await;
    let (stopped, _) = until(&mut ws, "input_audio_buffer.speech_stopped").await;
    assert_eq!(started["item_id"], stopped["item_id"]);
    assert_eq!(
        started["audio_start_ms"], 0,
        "onset at 300 ms minus 300 ms prefix padding"
    );
    let end_ms = stopped["audio_end_ms"].as_u64().unwrap();
    assert!(
        (1500..=1560).contains(&end_ms),
        "speech ends at 1100 ms plus 400 ms silence, got {end_ms}"
    );
    let (committed, _) = until(&mut ws, "input_audio_buffer.committed").await;
    assert_eq!(committed["item_id"], started["item_id"]);
    let (added, _) = until(&mut ws, "conversation.item.added").await;
    assert_eq!(added["item"]["role"], "user");
    let (done, events) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    let echoed = audio_of(&events);
    let (corr, lag) = best_correlation(&echoed, &burst);
    assert!(corr > 0.99, "echo correlation {corr}");
    assert_eq!(
        lag,
        300 * 24,
        "the burst sits after the 300 ms prefix padding"
    );

    // The server recorded exactly what the client sent.
    let record = server
        .wait_for(STEP, |s| {
            s.first()
                .filter(|r| r.input_audio.len() == caller.len())
                .cloned()
        })
        .await
        .unwrap();
    assert_eq!(record.input_audio, caller);
    assert_eq!(record.client_events_of("session.update").len(), 1);
    assert_eq!(record.audio_sent.len(), 2);
    assert!(record.errors.is_empty(), "{:?}", record.errors);
    server.shutdown().await;
}

async fn expect_close(ws: &mut Ws, code: u16) -> String {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("no close within 10 s")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), code);
                return frame.reason.to_string();
            }
            Some(Ok(Message::Text(_))) => {}
            other => panic!("expected close {code}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn beta_header_is_rejected_with_4000() {
    let server = server(Script::echo(), Pacing::Unpaced).await;
    let mut ws = connect_with(&server, &[("openai-beta", "realtime=v1")])
        .await
        .unwrap();
    let err = next(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["code"], "beta_api_shape_disabled");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(
        expect_close(&mut ws, 4000).await,
        "invalid_request_error.beta_api_shape_disabled"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn beta_shaped_session_update_is_rejected_with_4000() {
    let server = server(Script::echo(), Pacing::Unpaced).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"session.update","event_id":"evt_beta","session":{
        "modalities":["text","audio"],"voice":"alloy","input_audio_format":"pcm16","output_audio_format":"pcm16"}})).await;
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["code"], "beta_api_shape_disabled");
    assert_eq!(err["error"]["event_id"], "evt_beta");
    expect_close(&mut ws, 4000).await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_session_field_names_the_param_and_session_survives() {
    let server = server(Script::echo(), Pacing::Unpaced).await;
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        json!({"type":"session.update","session":{"type":"realtime","temperature":0.8}}),
    )
    .await;
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["code"], "unknown_parameter");
    assert_eq!(err["error"]["param"], "session.temperature");
    send(
        &mut ws,
        json!({"type":"session.update","session":{"type":"realtime"}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "session.updated");
    server.shutdown().await;
}

#[tokio::test]
async fn response_create_during_active_response_is_an_error() {
    let script = Script::new().reply(Reply::long(
        Duration::from_secs(20),
        "Ein sehr langer Satz.",
    ));
    let server = server(script, Pacing::RealTime).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let (created, _) = until(&mut ws, "response.created").await;
    send(
        &mut ws,
        json!({"type":"response.create","event_id":"evt_again"}),
    )
    .await;
    let (err, _) = until(&mut ws, "error").await;
    assert_eq!(
        err["error"]["code"],
        "conversation_already_has_active_response"
    );
    assert_eq!(err["error"]["event_id"], "evt_again");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains(created["response"]["id"].as_str().unwrap()));
    send(&mut ws, json!({"type":"response.cancel"})).await;
    let (done, _) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "cancelled");
    server.shutdown().await;
}

#[tokio::test]
async fn truncate_past_sent_audio_is_an_error_and_recorded() {
    let script = Script::new().reply(Reply::long(Duration::from_millis(1500), "Guten Tag."));
    let server = server(script, Pacing::Unpaced).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let (done, events) = until(&mut ws, "response.done").await;
    let item_id = done["response"]["output"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let received_ms = audio_of(&events).len() as i64 / 24;
    assert_eq!(received_ms, 1500);
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":item_id,"content_index":0,"audio_end_ms":received_ms + 250})).await;
    let (err, _) = until(&mut ws, "error").await;
    assert_eq!(
        err["error"]["message"],
        "Audio content of 1500ms is already shorter than 1750ms"
    );
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":item_id,"content_index":0,"audio_end_ms":900})).await;
    let (ok, _) = until(&mut ws, "conversation.item.truncated").await;
    assert_eq!(ok["audio_end_ms"], 900);
    let truncates = server
        .wait_for(STEP, |s| {
            Some(s[0].truncates.clone()).filter(|t| t.len() == 2)
        })
        .await
        .unwrap();
    assert_eq!(
        truncates
            .iter()
            .map(|t| (t.audio_end_ms, t.accepted))
            .collect::<Vec<_>>(),
        [(1750, false), (900, true)]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn function_call_round_trip() {
    let script = Script::new()
        .reply(Reply::function_call(
            "find_product",
            &json!({"query": "Pizza Margherita"}),
        ))
        .reply(Reply::prompt(Prompt::RecordingNotice));
    let server = server(script, Pacing::Unpaced).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"session.update","session":{"type":"realtime","tools":[
        {"type":"function","name":"find_product","description":"Search","parameters":{"type":"object","properties":{"query":{"type":"string"}}}}]}})).await;
    until(&mut ws, "session.updated").await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let (args, _) = until(&mut ws, "response.function_call_arguments.done").await;
    assert_eq!(args["name"], "find_product");
    let call_id = args["call_id"].as_str().unwrap().to_owned();
    until(&mut ws, "response.done").await;
    send(&mut ws, json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_unknown","output":"{}"}})).await;
    let (err, _) = until(&mut ws, "error").await;
    assert_eq!(err["error"]["param"], "item.call_id");
    send(&mut ws, json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":call_id,"output":"{\"found\":1}"}})).await;
    until(&mut ws, "conversation.item.done").await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let (done, events) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(audio_of(&events), &Prompt::RecordingNotice.samples()[..]);
    server.shutdown().await;
}

#[tokio::test]
async fn fault_injection_drops_the_socket_mid_response() {
    let script = Script::new().reply(Reply::long(Duration::from_secs(3), "x").with_fault(
        Fault::Disconnect {
            after_audio_ms: 500,
        },
    ));
    let server = server(script, Pacing::Unpaced).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let mut audio_events = Vec::new();
    let ended = loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("socket neither failed nor closed")
        {
            Some(Ok(Message::Text(t))) => {
                let e: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(e["type"], "response.done", "the response must not complete");
                audio_events.push(e);
            }
            Some(Ok(Message::Close(frame))) => {
                panic!("expected an abrupt drop, got close frame {frame:?}")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    // tungstenite reports a TCP drop without a close frame as an error (or a bare end).
    if let Some(e) = &ended {
        assert!(
            e.to_string().to_lowercase().contains("closing handshake")
                || e.to_string().to_lowercase().contains("reset"),
            "{e}"
        );
    }
    let got_ms = audio_of(&audio_events).len() / 24;
    assert!((500..900).contains(&got_ms), "{got_ms} ms before the drop");
    let end = server.wait_for(STEP, |s| s[0].end.clone()).await.unwrap();
    assert_eq!(end, SessionEnd::ServerDropped);
    server.shutdown().await;
}

#[tokio::test]
async fn fault_injection_error_event_fails_the_response() {
    let script = Script::new().reply(Reply::long(Duration::from_secs(1), "x").with_fault(
        Fault::ServerError {
            after_audio_ms: 200,
            message: "model overloaded".into(),
        },
    ));
    let server = server(script, Pacing::Unpaced).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let (err, _) = until(&mut ws, "error").await;
    assert_eq!(err["error"]["type"], "server_error");
    let (done, _) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "failed");
    server.shutdown().await;
}

#[tokio::test]
async fn required_api_key_refuses_the_upgrade_with_401() {
    let server = LocalRealtimeServer::start(ServerConfig {
        required_api_key: Some("sk-right".into()),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    match connect_with(&server, &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(
                !body.contains("sk-test"),
                "the presented key must not be echoed: {body}"
            );
        }
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| "a WebSocket")),
    }
    let mut ws = connect_with(&server, &[("authorization", "Bearer sk-right")])
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "session.created");
    server.shutdown().await;
}

#[tokio::test]
async fn barge_in_cancels_a_long_response_with_turn_detected() {
    let script = Script::new().reply(Reply::long(Duration::from_secs(30), "Sehr lang."));
    let server = server(script, Pacing::RealTime).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type":"response.create"})).await;
    until(&mut ws, "response.output_audio.delta").await;
    append_in_frames(&mut ws, &speech_like(Duration::from_millis(300))).await;
    let (_, _) = until(&mut ws, "input_audio_buffer.speech_started").await;
    let (done, _) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    server.shutdown().await;
}
