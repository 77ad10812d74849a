//! State-machine tests with a synthetic clock: no sockets, no sleeps.

use super::*;
use crate::realtime::server::script::{speech_like, Reply};

fn params(pacing: Pacing) -> SessionParams {
    SessionParams {
        model: Some("gpt-realtime".into()),
        beta_header: false,
        pacing,
        max_duration: Duration::from_secs(3600),
        seed: 42,
        unix_now: 1_700_000_000,
    }
}

fn start(script: Script, pacing: Pacing) -> (Session, Recorder, Instant) {
    let rec = Recorder::standalone();
    let now = Instant::now();
    let mut s = Session::new(params(pacing), script, rec.clone(), now);
    assert_eq!(types(&drain(&mut s, now)), ["session.created"]);
    (s, rec, now)
}

/// Everything due at `now`.
fn drain(s: &mut Session, now: Instant) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output(now)).collect()
}

fn types(out: &[Output]) -> Vec<String> {
    out.iter()
        .map(|o| match o {
            Output::Send(v) => v["type"].as_str().unwrap().to_owned(),
            Output::Close { code, .. } => format!("close {code}"),
            Output::Disconnect => "disconnect".into(),
        })
        .collect()
}

fn find<'a>(out: &'a [Output], kind: &str) -> &'a Value {
    out.iter()
        .find_map(|o| match o {
            Output::Send(v) if v["type"] == kind => Some(v),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} in {:?}", types(out)))
}

fn send(s: &mut Session, v: Value, now: Instant) -> Vec<Output> {
    s.handle_text(&v.to_string(), now);
    drain(s, now)
}

fn silence(ms: u64) -> Vec<i16> {
    vec![0; (ms * 24) as usize]
}

fn append(s: &mut Session, samples: &[i16], now: Instant) -> Vec<Output> {
    send(
        s,
        json!({"type":"input_audio_buffer.append","audio":encode_pcm16(samples)}),
        now,
    )
}

fn decode_deltas(out: &[Output]) -> Vec<i16> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(v) if v["type"] == "response.output_audio.delta" => {
                Some(decode_pcm16(v["delta"].as_str().unwrap(), "d").unwrap())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn vad_turn_produces_ga_sequence_and_echo_of_committed_audio() {
    let (mut s, rec, now) = start(Script::new().then(Reply::echo()), Pacing::Unpaced);
    let speech = speech_like(Duration::from_millis(600));
    let mut audio = silence(500);
    audio.extend(&speech);
    audio.extend(silence(700));
    let out = append(&mut s, &audio, now);
    let t = types(&out);
    let expected_prefix = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ];
    assert_eq!(&t[..expected_prefix.len()], expected_prefix);
    let tail = [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ];
    assert_eq!(&t[t.len() - tail.len()..], tail);
    let started = find(&out, "input_audio_buffer.speech_started");
    assert_eq!(
        started["audio_start_ms"], 200,
        "500 ms onset minus 300 ms prefix padding"
    );
    let user_item = started["item_id"].clone();
    assert_eq!(
        find(&out, "input_audio_buffer.committed")["item_id"],
        user_item
    );
    // Echo: the committed audio (speech plus the silence that ended the turn) comes back.
    let echoed = decode_deltas(&out);
    assert_eq!(
        echoed.len(),
        (300 + 600 + 200) * 24,
        "200 ms (prefix) to 1300 ms (200 ms default silence after speech)"
    );
    assert_eq!(&echoed[300 * 24..900 * 24], &speech[..]);
    let r = rec.snapshot().unwrap();
    assert_eq!(r.input_audio, audio);
    assert_eq!(r.audio_sent[0].samples, echoed);
    assert_eq!(
        find(&out, "response.done")["response"]["status"],
        "completed"
    );
}

#[test]
fn response_create_while_active_is_rejected() {
    let (mut s, rec, now) = start(
        Script::new().reply(Reply::long(Duration::from_secs(5), "long")),
        Pacing::RealTime,
    );
    send(&mut s, json!({"type":"response.create"}), now);
    let out = send(
        &mut s,
        json!({"type":"response.create","event_id":"ev_2"}),
        now,
    );
    let err = &find(&out, "error")["error"];
    assert_eq!(err["code"], "conversation_already_has_active_response");
    assert_eq!(err["event_id"], "ev_2");
    assert!(err["message"].as_str().unwrap().contains("resp_"));
    assert_eq!(
        rec.snapshot().unwrap().error_codes(),
        [Some("conversation_already_has_active_response".to_owned())]
    );
}

#[test]
fn audio_is_paced_in_real_time() {
    let (mut s, _rec, now) = start(
        Script::new().reply(Reply::long(Duration::from_secs(2), "x")),
        Pacing::RealTime,
    );
    let out = send(&mut s, json!({"type":"response.create"}), now);
    let first = decode_deltas(&out).len();
    assert!(
        first > 0 && first <= 200 * 24,
        "only the first chunk is due at once, got {first}"
    );
    assert!(s.next_deadline().unwrap() > now);
    let later = drain(&mut s, now + Duration::from_secs(1));
    let by_one_second = first + decode_deltas(&later).len();
    assert!(
        (24_000..=24_000 + 160 * 24).contains(&by_one_second),
        "{by_one_second}"
    );
    let rest = drain(&mut s, now + Duration::from_secs(3));
    assert!(types(&rest).contains(&"response.done".to_owned()));
}

#[test]
fn speech_during_response_cancels_with_turn_detected_and_truncate_is_checked() {
    let (mut s, rec, now) = start(
        Script::new().reply(Reply::long(Duration::from_secs(10), "eins zwei drei")),
        Pacing::RealTime,
    );
    let out = send(&mut s, json!({"type":"response.create"}), now);
    let item_id = find(&out, "response.output_item.added")["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t1 = now + Duration::from_millis(1000);
    drain(&mut s, t1);
    let sent_ms = rec.snapshot().unwrap().audio_sent[0].samples.len() as i64 / 24;
    assert!((1000..1200).contains(&sent_ms), "{sent_ms}");
    let out = append(&mut s, &speech_like(Duration::from_millis(200)), t1);
    let t = types(&out);
    assert_eq!(t[0], "input_audio_buffer.speech_started");
    let done = find(&out, "response.done");
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    assert_eq!(
        find(&out, "response.output_item.done")["item"]["status"],
        "incomplete"
    );
    // Beyond what was sent: the real error text.
    let out = send(
        &mut s,
        json!({"type":"conversation.item.truncate","item_id":item_id,"content_index":0,"audio_end_ms":sent_ms + 500}),
        t1,
    );
    let msg = find(&out, "error")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        msg,
        format!(
            "Audio content of {sent_ms}ms is already shorter than {}ms",
            sent_ms + 500
        )
    );
    let out = send(
        &mut s,
        json!({"type":"conversation.item.truncate","item_id":item_id,"content_index":0,"audio_end_ms":700}),
        t1,
    );
    assert_eq!(
        find(&out, "conversation.item.truncated")["audio_end_ms"],
        700
    );
    let truncs = rec.snapshot().unwrap().truncates;
    assert_eq!(
        truncs
            .iter()
            .map(|t| (t.audio_end_ms, t.accepted))
            .collect::<Vec<_>>(),
        [(sent_ms + 500, false), (700, true)]
    );
    let out = send(
        &mut s,
        json!({"type":"conversation.item.truncate","item_id":"nope","content_index":0,"audio_end_ms":1}),
        t1,
    );
    assert_eq!(
        find(&out, "error")["error"]["code"],
        "item_truncate_invalid_item_id"
    );
}

#[test]
fn function_call_round_trip_and_unknown_call_id() {
    let script = Script::new()
        .reply(Reply::function_call(
            "lookup_order",
            &json!({"order_id": "42"}),
        ))
        .reply(Reply::speak(
            speech_like(Duration::from_millis(300)),
            "Ihre Bestellung ist unterwegs.",
        ));
    let (mut s, _rec, now) = start(script, Pacing::Unpaced);
    let tools = json!([{"type":"function","name":"lookup_order","parameters":{"type":"object"}}]);
    let out = send(
        &mut s,
        json!({"type":"session.update","session":{"type":"realtime","tools":tools}}),
        now,
    );
    assert_eq!(types(&out), ["session.updated"]);
    let out = send(&mut s, json!({"type":"response.create"}), now);
    let args = find(&out, "response.function_call_arguments.done");
    assert_eq!(args["name"], "lookup_order");
    assert_eq!(
        serde_json::from_str::<Value>(args["arguments"].as_str().unwrap()).unwrap(),
        json!({"order_id":"42"})
    );
    let call_id = args["call_id"].as_str().unwrap().to_owned();
    assert_eq!(
        find(&out, "response.done")["response"]["output"][0]["type"],
        "function_call"
    );
    let out = send(
        &mut s,
        json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_bogus","output":"{}"}}),
        now,
    );
    assert_eq!(find(&out, "error")["error"]["param"], "item.call_id");
    let out = send(
        &mut s,
        json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":call_id,"output":"{\"ok\":true}"}}),
        now,
    );
    assert_eq!(
        types(&out),
        ["conversation.item.added", "conversation.item.done"]
    );
    let out = send(&mut s, json!({"type":"response.create"}), now);
    assert_eq!(
        find(&out, "response.output_audio_transcript.done")["transcript"],
        "Ihre Bestellung ist unterwegs."
    );
}

#[test]
fn undeclared_tool_fails_the_response() {
    let (mut s, _rec, now) = start(
        Script::new().reply(Reply::function_call("secret", &json!({}))),
        Pacing::Unpaced,
    );
    let out = send(&mut s, json!({"type":"response.create"}), now);
    assert_eq!(find(&out, "error")["error"]["type"], "server_error");
    assert_eq!(find(&out, "response.done")["response"]["status"], "failed");
}

#[test]
fn beta_shape_and_beta_header_close_with_4000() {
    let (mut s, _rec, now) = start(Script::new(), Pacing::Unpaced);
    let out = send(
        &mut s,
        json!({"type":"session.update","session":{"modalities":["text","audio"],"voice":"alloy"}}),
        now,
    );
    assert_eq!(
        find(&out, "error")["error"]["code"],
        "beta_api_shape_disabled"
    );
    assert_eq!(
        out.last(),
        Some(&Output::Close {
            code: 4000,
            reason: "invalid_request_error.beta_api_shape_disabled".into()
        })
    );
    assert!(s.is_closed());

    let mut p = params(Pacing::Unpaced);
    p.beta_header = true;
    let mut s = Session::new(p, Script::new(), Recorder::disabled(), now);
    let out = drain(&mut s, now);
    assert_eq!(types(&out), ["error", "close 4000"]);
}

#[test]
fn missing_model_closes_with_4000() {
    let mut p = params(Pacing::Unpaced);
    p.model = None;
    let now = Instant::now();
    let mut s = Session::new(p, Script::new(), Recorder::disabled(), now);
    let out = drain(&mut s, now);
    assert_eq!(find(&out, "error")["error"]["code"], "missing_model");
    assert_eq!(types(&out), ["error", "close 4000"]);
}

#[test]
fn manual_commit_and_cancel_errors() {
    let (mut s, _rec, now) = start(Script::new(), Pacing::Unpaced);
    send(
        &mut s,
        json!({"type":"session.update","session":{"type":"realtime","audio":{"input":{"turn_detection":null}}}}),
        now,
    );
    append(&mut s, &silence(50), now);
    let out = send(&mut s, json!({"type":"input_audio_buffer.commit"}), now);
    let err = &find(&out, "error")["error"];
    assert_eq!(err["code"], "input_audio_buffer_commit_empty");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .ends_with("buffer only has 50.00ms of audio."));
    append(&mut s, &silence(100), now);
    let out = send(&mut s, json!({"type":"input_audio_buffer.commit"}), now);
    assert_eq!(
        types(&out),
        [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done"
        ]
    );
    let out = send(&mut s, json!({"type":"response.cancel"}), now);
    assert_eq!(
        find(&out, "error")["error"]["code"],
        "response_cancel_not_active"
    );
}

#[test]
fn client_cancel_and_greeting_on_session_update() {
    let script = Script::new()
        .reply(Reply::long(Duration::from_secs(3), "hallo"))
        .greet_on_session_update(true);
    let (mut s, _rec, now) = start(script, Pacing::RealTime);
    let out = send(
        &mut s,
        json!({"type":"session.update","session":{"type":"realtime"}}),
        now,
    );
    assert_eq!(types(&out)[..2], ["session.updated", "response.created"]);
    let out = send(&mut s, json!({"type":"response.cancel"}), now);
    assert_eq!(
        find(&out, "response.done")["response"]["status_details"]["reason"],
        "client_cancelled"
    );
}

#[test]
fn input_transcription_only_when_enabled() {
    let script = Script::new()
        .user_transcript("Ich hätte gern eine Pizza")
        .user_transcript("zwei");
    let (mut s, _rec, now) = start(script, Pacing::Unpaced);
    let mut turn = speech_like(Duration::from_millis(400));
    turn.extend(silence(300));
    let out = append(&mut s, &turn, now);
    assert!(!types(&out).iter().any(|t| t.contains("transcription")));
    send(
        &mut s,
        json!({"type":"session.update","session":{"type":"realtime","audio":{"input":{"transcription":{"model":"gpt-4o-mini-transcribe"}}}}}),
        now,
    );
    let out = append(&mut s, &turn, now);
    assert_eq!(
        find(
            &out,
            "conversation.item.input_audio_transcription.completed"
        )["transcript"],
        "zwei"
    );
}

#[test]
fn faults_disconnect_and_close_mid_response() {
    let script = Script::new().reply(Reply::long(Duration::from_secs(2), "x").with_fault(
        Fault::Disconnect {
            after_audio_ms: 300,
        },
    ));
    let (mut s, rec, now) = start(script, Pacing::Unpaced);
    let out = send(&mut s, json!({"type":"response.create"}), now);
    assert_eq!(out.last(), Some(&Output::Disconnect));
    assert!(!types(&out).contains(&"response.done".to_owned()));
    let sent = rec.snapshot().unwrap().audio_sent[0].samples.len();
    assert!((300 * 24..600 * 24).contains(&sent), "{sent}");

    let script = Script::new().reply(Reply::long(Duration::from_secs(1), "x").with_fault(
        Fault::Close {
            after_audio_ms: 0,
            code: 1011,
            reason: "boom".into(),
        },
    ));
    let (mut s, _rec, now) = start(script, Pacing::Unpaced);
    let out = send(&mut s, json!({"type":"response.create"}), now);
    assert_eq!(
        out.last(),
        Some(&Output::Close {
            code: 1011,
            reason: "boom".into()
        })
    );
}

#[test]
fn delayed_reply_waits_and_session_expires() {
    let script = Script::new()
        .reply(Reply::long(Duration::from_millis(200), "x").with_delay(Duration::from_secs(2)));
    let (mut s, _rec, now) = start(script, Pacing::Unpaced);
    let out = send(&mut s, json!({"type":"response.create"}), now);
    assert_eq!(types(&out), ["response.created"]);
    assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(2)));
    assert!(
        types(&drain(&mut s, now + Duration::from_secs(2))).contains(&"response.done".to_owned())
    );
    let out = drain(&mut s, now + Duration::from_secs(3600));
    assert_eq!(find(&out, "error")["error"]["code"], "session_expired");
    assert!(matches!(out.last(), Some(Output::Close { code: 1001, .. })));
}

#[test]
fn voice_is_locked_after_audio() {
    let (mut s, _rec, now) = start(
        Script::new().reply(Reply::long(Duration::from_millis(100), "x")),
        Pacing::Unpaced,
    );
    send(&mut s, json!({"type":"response.create"}), now);
    let out = send(
        &mut s,
        json!({"type":"session.update","session":{"type":"realtime","instructions":"neu","audio":{"output":{"voice":"cedar"}}}}),
        now,
    );
    assert_eq!(find(&out, "error")["error"]["code"], "cannot_update_voice");
}
