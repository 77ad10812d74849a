//! The model's side channels through a real call: a function call round trip under the strict
//! server's one-active-response rule, and keypad digits (RFC 4733) reaching the model as text.

mod common;

use std::time::Duration;

use agent::realtime::server::script::{Reply, Script};
use agent::realtime::server::Pacing;
use common::{phrase_24k, serial, silent_caller_wav, ScriptedBackend, Voiceagent};
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::speech::Phrase;
use serde_json::{json, Value};

#[test]
fn a_function_call_round_trip_follows_the_one_response_rule() {
    let _serial = serial();
    let answer = phrase_24k(Phrase::EnglishWeather);
    let backend = ScriptedBackend::start(
        Script::new()
            .reply(Reply::function_call(
                "search_products",
                &json!({"query": "Schrauben", "limit": 3}),
            ))
            .reply(Reply::speak(answer.clone(), "Here is what I found")),
        Pacing::Speedup(2.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &silent_caller_wav()).codecs(&[Codec::Opus]))
            .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    backend.wait_for(
        "the answer after the tool is sent",
        Duration::from_secs(20),
        |s| {
            s.first()
                .and_then(|s| s.audio_sent.first())
                .filter(|a| a.samples.len() >= answer.len())
                .map(|_| ())
        },
    );
    let answer_audio = Audio::from_i16(24000, &answer);
    caller
        .wait_received_audio(
            answer_audio.duration() + Duration::from_secs(1),
            Duration::from_secs(30),
        )
        .unwrap();
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(10));
    let heard = caller.finish().unwrap().last_received().unwrap();
    let session = backend.sessions().remove(0);

    let kinds: Vec<&str> = session
        .client_events
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| *k != "input_audio_buffer.append")
        .collect();
    eprintln!("client events: {kinds:?}");
    let outputs: Vec<(usize, &Value)> = session
        .client_events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.kind == "conversation.item.create" && e.json["item"]["type"] == "function_call_output"
        })
        .map(|(i, e)| (i, &e.json))
        .collect();
    assert_eq!(outputs.len(), 1, "one function_call_output: {kinds:?}");
    let (at, output) = outputs[0];
    let call_id = output["item"]["call_id"].as_str().unwrap_or_default();
    assert!(
        call_id.starts_with("call_"),
        "the output answers the call's call_id: {output}"
    );
    let result: Value = serde_json::from_str(output["item"]["output"].as_str().unwrap())
        .expect("the tool output is JSON");
    assert!(
        result.to_string().to_lowercase().contains("schraube"),
        "the search found screws: {result}"
    );
    let creates: Vec<usize> = session
        .client_events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == "response.create")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        creates.iter().filter(|i| **i > at).count(),
        1,
        "exactly one response.create after the tool output: {kinds:?}"
    );
    assert_eq!(
        creates.len(),
        2,
        "the greeting and the tool follow-up: {kinds:?}"
    );
    assert!(
        session.errors.is_empty(),
        "server errors: {:?}",
        session.errors
    );

    let c = compare(&answer_audio, &heard, 16000).unwrap();
    eprintln!("the caller heard the answer after the tool: {c}");
    c.assert_match("the caller hears the answer spoken after the tool call");
}

#[test]
fn a_keypad_digit_reaches_the_model() {
    let _serial = serial();
    let greeting = phrase_24k(Phrase::EnglishCount);
    let backend = ScriptedBackend::start(
        Script::new().reply(Reply::speak(greeting.clone(), "Press a key")),
        Pacing::Speedup(2.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &silent_caller_wav()).codecs(&[Codec::Pcma]))
            .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    backend.wait_for("the greeting is sent", Duration::from_secs(20), |s| {
        s.first()
            .and_then(|s| s.audio_sent.first())
            .filter(|a| a.samples.len() >= greeting.len())
            .map(|_| ())
    });
    caller.send_dtmf("7").unwrap();
    let item = backend.wait_for(
        "the digit reaches the model",
        Duration::from_secs(10),
        |s| {
            s.first().and_then(|s| {
                s.client_events_of("conversation.item.create")
                    .into_iter()
                    .find(|e| e["item"]["role"] == "user")
                    .cloned()
            })
        },
    );
    let text = item["item"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("\"7\""),
        "the user message names the digit: {item}"
    );
    assert_eq!(item["item"]["content"][0]["type"], "input_text");
    assert!(va.log_text().contains("DTMF"), "the digit is logged");
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(10));
    let session = backend.sessions().remove(0);
    assert!(
        session.errors.is_empty(),
        "server errors: {:?}",
        session.errors
    );
    let _ = caller.finish();
}

/// The model says goodbye and then calls `end_call` (here in the next response, triggered by a
/// keypad digit while the goodbye still plays: audio arrives 20× faster than it plays). The
/// bridge must hang up only after the goodbye has played out, and then promptly.
#[test]
fn end_call_hangs_up_after_the_goodbye_has_played() {
    let _serial = serial();
    let goodbye = phrase_24k(Phrase::GermanGreeting);
    let backend = ScriptedBackend::start(
        Script::new()
            .reply(Reply::speak(goodbye.clone(), "Auf Wiedersehen"))
            .reply(Reply::function_call("end_call", &json!({}))),
        Pacing::Speedup(20.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &silent_caller_wav()).codecs(&[Codec::Pcma]))
            .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    backend.wait_for("the goodbye is sent", Duration::from_secs(20), |s| {
        s.first()
            .and_then(|s| s.audio_sent.first())
            .filter(|a| a.samples.len() >= goodbye.len())
            .map(|_| ())
    });
    caller.send_dtmf("1").unwrap();
    backend.wait_for("end_call is answered", Duration::from_secs(10), |s| {
        s.first().and_then(|s| {
            s.client_events_of("conversation.item.create")
                .into_iter()
                .find(|e| e["item"]["type"] == "function_call_output")
                .map(|_| ())
        })
    });
    caller
        .wait_event("CALL_CLOSED", Duration::from_secs(20))
        .expect("voiceagent hangs up");
    va.wait_log("call finished", Duration::from_secs(10));
    let heard = caller.finish().unwrap().last_received().unwrap();
    let goodbye_audio = Audio::from_i16(24000, &goodbye);
    let c = compare(&goodbye_audio, &heard, 16000).unwrap();
    eprintln!("the caller heard the goodbye: {c}");
    c.assert_match("the caller hears the whole goodbye");
    let goodbye_end_ms = c.lag_ms + c.sent_ms;
    let heard_ms = heard.duration().as_secs_f64() * 1000.0;
    eprintln!("goodbye ends at {goodbye_end_ms:.0} ms; the call's audio ends at {heard_ms:.0} ms");
    assert!(
        heard_ms >= goodbye_end_ms - 40.0,
        "the call ended at {heard_ms:.0} ms, before the goodbye finished at {goodbye_end_ms:.0} ms"
    );
    assert!(
        heard_ms <= goodbye_end_ms + 1500.0,
        "the hang-up came {:.0} ms after the goodbye ended",
        heard_ms - goodbye_end_ms
    );
    let session = backend.sessions().remove(0);
    assert!(
        session.errors.is_empty(),
        "server errors: {:?}",
        session.errors
    );
    assert!(
        session.truncates.is_empty(),
        "the goodbye was not cut: {:?}",
        session.truncates
    );
}
