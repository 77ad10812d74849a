//! Edge cases of the conversation machine, one per test, driven with JSON as the server sends it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::realtime::wire::{encode_pcm16, ClientEvent, InputContent, InputItem, TurnDetection};

struct Harness {
    conv: Conversation,
    now: Instant,
}

fn config() -> ConversationConfig {
    ConversationConfig {
        instructions: "You take pizza orders.".into(),
        tools: vec![
            ToolDefinition::external(
                "lookup",
                "Look up a dish.",
                json!({"type": "object", "properties": {"q": {"type": "string"}}}),
            ),
            ToolDefinition::end_call(),
            ToolDefinition::transfer_call(),
        ],
        greeting: Greeting::None,
        ..ConversationConfig::default()
    }
}

impl Harness {
    fn new(config: ConversationConfig) -> Self {
        let now = Instant::now();
        Harness {
            conv: Conversation::new(config, now),
            now,
        }
    }

    /// A conversation whose session is configured and ready, outputs drained.
    fn ready() -> Self {
        let mut h = Harness::new(config());
        h.start();
        h
    }

    fn start(&mut self) {
        self.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
        self.drain();
        let echo = self.echo();
        self.server(echo);
        let outputs = self.drain();
        assert!(outputs.contains(&Output::SessionReady), "{outputs:?}");
    }

    /// Like `start`, but leaves the outputs after `session.updated` in the queue.
    fn start_keeping_outputs(&mut self) {
        self.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
        self.drain();
        let echo = self.echo();
        self.server(echo);
    }

    /// `session.updated` echoing exactly what the config asks for.
    fn echo(&self) -> Value {
        json!({"type": "session.updated", "session": self.conv.config().session()})
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    fn server(&mut self, event: Value) {
        self.conv.handle_server_text(self.now, &event.to_string());
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.conv.poll_output()).collect()
    }

    fn sent(&mut self) -> Vec<ClientEvent> {
        self.drain()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn response_created(&mut self, id: &str) {
        self.server(
            json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}),
        );
    }

    fn response_done(&mut self, id: &str) {
        self.server(
            json!({"type": "response.done", "response": {"id": id, "status": "completed"}}),
        );
    }

    fn audio(&mut self, response: &str, item: &str, samples: usize) {
        self.server(
            json!({"type": "response.output_audio.delta", "response_id": response,
            "item_id": item, "output_index": 0, "content_index": 0,
            "delta": encode_pcm16(&vec![100i16; samples]), "obfuscation": "x"}),
        );
    }

    fn speech_started(&mut self) {
        self.server(
            json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 1000,
            "item_id": "item_user"}),
        );
    }

    fn speech_stopped(&mut self) {
        self.server(
            json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2000,
            "item_id": "item_user"}),
        );
    }

    fn function_call(&mut self, response: &str, call_id: &str, name: &str, arguments: &str) {
        self.server(
            json!({"type": "response.function_call_arguments.done", "response_id": response,
            "item_id": format!("item_{call_id}"), "output_index": 1, "call_id": call_id,
            "name": name, "arguments": arguments}),
        );
    }
}

fn count_creates(events: &[ClientEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ClientEvent::ResponseCreate { .. }))
        .count()
}

fn truncates(events: &[ClientEvent]) -> Vec<(String, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::ConversationItemTruncate {
                item_id,
                audio_end_ms,
                content_index,
                ..
            } => {
                assert_eq!(*content_index, 0);
                Some((item_id.clone(), *audio_end_ms))
            }
            _ => None,
        })
        .collect()
}

// ---- session ----

#[test]
fn nothing_is_sent_before_session_created() {
    let mut h = Harness::new(config());
    assert!(h.drain().is_empty());
    assert_eq!(h.conv.session_state(), SessionState::AwaitingCreated);
}

#[test]
fn session_update_follows_session_created_and_is_ga_shaped() {
    let mut h = Harness::new(config());
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let text = sent[0].to_json();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["type"], "session.update");
    assert_eq!(value["session"]["type"], "realtime");
    assert_eq!(
        value["session"]["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    assert_eq!(value["session"]["audio"]["output"]["voice"], "marin");
    assert_eq!(value["session"]["tools"].as_array().unwrap().len(), 3);
    assert!(!text.contains("temperature") && !text.contains("\"modalities\""));
    // A second session.created does not re-send.
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    assert!(h.sent().is_empty());
}

#[test]
fn matching_echo_makes_the_session_ready_and_greets() {
    let mut h = Harness::new(ConversationConfig {
        greeting: Greeting::Model { extra: None },
        ..config()
    });
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    h.drain();
    let echo = h.echo();
    h.server(echo);
    let outputs = h.drain();
    assert_eq!(outputs[0], Output::SessionReady);
    assert!(matches!(
        &outputs[1],
        Output::Send(ClientEvent::ResponseCreate { response: None, .. })
    ));
    assert_eq!(h.conv.session_state(), SessionState::Ready);
}

#[test]
fn greeting_extra_is_combined_with_session_instructions() {
    let mut h = Harness::new(ConversationConfig {
        greeting: Greeting::Model {
            extra: Some("Greet the caller in German.".into()),
        },
        ..config()
    });
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    h.drain();
    let echo = h.echo();
    h.server(echo);
    let sent = h.sent();
    let ClientEvent::ResponseCreate {
        response: Some(params),
        ..
    } = &sent[0]
    else {
        panic!("{sent:?}")
    };
    assert_eq!(
        params.instructions.as_deref(),
        Some("You take pizza orders.\n\nGreet the caller in German.")
    );
}

#[test]
fn voice_mismatch_is_reported_but_not_fatal() {
    let mut h = Harness::new(config());
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    h.drain();
    let mut echo = h.echo();
    echo["session"]["audio"]["output"]["voice"] = json!("alloy");
    h.server(echo);
    let outputs = h.drain();
    assert_eq!(
        outputs[0],
        Output::SessionMismatch(vec![SessionMismatch {
            field: "audio.output.voice",
            wanted: "marin".into(),
            got: "alloy".into(),
            fatal: false,
        }])
    );
    assert_eq!(outputs[1], Output::SessionReady);
}

#[test]
fn vad_parameter_mismatch_is_a_warning() {
    let mut h = Harness::new(config());
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    h.drain();
    let mut echo = h.echo();
    echo["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] = json!(200);
    h.server(echo);
    let outputs = h.drain();
    assert!(matches!(&outputs[0], Output::SessionMismatch(m)
        if m.len() == 1 && m[0].field == "audio.input.turn_detection" && !m[0].fatal));
    assert_eq!(outputs[1], Output::SessionReady);
}

#[test]
fn wrong_audio_format_is_fatal_and_nothing_is_sent() {
    let mut h = Harness::new(ConversationConfig {
        greeting: Greeting::Model { extra: None },
        ..config()
    });
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    h.drain();
    let mut echo = h.echo();
    echo["session"]["audio"]["output"]["format"] = json!({"type": "audio/pcmu"});
    h.server(echo);
    let outputs = h.drain();
    assert!(matches!(&outputs[0], Output::SessionMismatch(m) if m[0].fatal));
    assert!(matches!(
        &outputs[1],
        Output::Fatal(FatalError::SessionMismatch(m)) if m[0].field == "audio.output.format"
    ));
    assert_eq!(outputs.len(), 2, "no greeting after a fatal mismatch");
    assert_eq!(h.conv.session_state(), SessionState::Failed);
}

#[test]
fn turn_detection_off_in_echo_is_fatal() {
    let mut h = Harness::new(config());
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    h.drain();
    let mut echo = h.echo();
    echo["session"]["audio"]["input"]["turn_detection"] = Value::Null;
    h.server(echo);
    assert!(h
        .drain()
        .iter()
        .any(|o| matches!(o, Output::Fatal(FatalError::SessionMismatch(_)))));
}

#[test]
fn rejected_session_update_is_fatal() {
    let mut h = Harness::new(config());
    h.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
    let id = h.sent()[0].event_id().unwrap().to_owned();
    h.server(
        json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "unknown_parameter", "message": "Unknown parameter: 'session.temperature'.",
        "param": null, "event_id": id}}),
    );
    let outputs = h.drain();
    assert!(
        matches!(&outputs[0], Output::ServerError(r) if r.client_event_type == Some("session.update"))
    );
    assert_eq!(
        outputs[1],
        Output::Fatal(FatalError::SessionRejected {
            code: Some("unknown_parameter".into()),
            message: "Unknown parameter: 'session.temperature'.".into(),
        })
    );
}

// ---- one active response ----

#[test]
fn response_create_waits_for_the_active_response() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.conv.handle_dtmf(h.now, '5').unwrap();
    let sent = h.sent();
    assert_eq!(
        sent.len(),
        1,
        "only the DTMF item, no response.create: {sent:?}"
    );
    assert!(matches!(
        sent[0],
        ClientEvent::ConversationItemCreate { .. }
    ));
    h.response_done("resp_1");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn queued_requests_coalesce_into_one_response_create() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.conv.handle_dtmf(h.now, '1').unwrap();
    h.conv.handle_dtmf(h.now, '2').unwrap();
    assert_eq!(count_creates(&h.sent()), 0);
    h.response_done("resp_1");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn no_second_response_create_while_one_is_in_flight() {
    let mut h = Harness::ready();
    h.conv.handle_dtmf(h.now, '1').unwrap();
    assert_eq!(count_creates(&h.sent()), 1);
    h.conv.handle_dtmf(h.now, '2').unwrap();
    assert_eq!(
        count_creates(&h.sent()),
        0,
        "first create not yet acknowledged"
    );
    h.response_created("resp_1");
    assert_eq!(count_creates(&h.sent()), 0);
    h.response_done("resp_1");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn function_output_is_sent_at_once_and_follow_up_waits_for_done() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.function_call("resp_1", "call_1", "lookup", r#"{"q":"Margherita"}"#);
    assert_eq!(
        h.drain(),
        vec![Output::RunTool {
            call_id: "call_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"Margherita"}"#.into(),
        }]
    );
    h.conv
        .handle_tool_result(h.now, "call_1", r#"{"price":"9.50"}"#)
        .unwrap();
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert!(matches!(&sent[0], ClientEvent::ConversationItemCreate {
        item: InputItem::FunctionCallOutput { call_id, output }, .. }
        if call_id == "call_1" && output == r#"{"price":"9.50"}"#));
    h.response_done("resp_1");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn tool_result_after_response_done_creates_response_immediately() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.function_call("resp_1", "call_1", "lookup", "{}");
    h.response_done("resp_1");
    h.drain();
    h.conv.handle_tool_result(h.now, "call_1", "{}").unwrap();
    let sent = h.sent();
    assert_eq!(sent.len(), 2);
    assert!(matches!(sent[1], ClientEvent::ResponseCreate { .. }));
}

#[test]
fn function_call_repeated_in_output_item_done_runs_once() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.function_call("resp_1", "call_1", "lookup", "{}");
    h.server(
        json!({"type": "response.output_item.done", "response_id": "resp_1",
        "output_index": 1, "item": {"id": "item_call_1", "type": "function_call",
        "status": "completed", "name": "lookup", "call_id": "call_1", "arguments": "{}"}}),
    );
    let runs = h
        .drain()
        .into_iter()
        .filter(|o| matches!(o, Output::RunTool { .. }))
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn unknown_or_repeated_tool_results_are_errors() {
    let mut h = Harness::ready();
    assert_eq!(
        h.conv.handle_tool_result(h.now, "call_x", "{}"),
        Err(InputError::UnknownToolCall("call_x".into()))
    );
    h.response_created("resp_1");
    h.function_call("resp_1", "call_1", "lookup", "{}");
    h.conv.handle_tool_result(h.now, "call_1", "{}").unwrap();
    assert!(h.conv.handle_tool_result(h.now, "call_1", "{}").is_err());
}

#[test]
fn unknown_tool_name_is_answered_with_an_error_output() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.function_call("resp_1", "call_1", "launch_rocket", "{}");
    let sent = h.sent();
    assert!(matches!(&sent[0], ClientEvent::ConversationItemCreate {
        item: InputItem::FunctionCallOutput { output, .. }, .. } if output.contains("unknown tool")));
    h.response_done("resp_1");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn tool_calls_are_recorded_with_output_and_duration() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.advance(1000);
    h.function_call("resp_1", "call_1", "lookup", r#"{"q":"x"}"#);
    h.advance(250);
    h.conv
        .handle_tool_result(h.now, "call_1", "boom: db down")
        .unwrap();
    let entry = &h.conv.transcript().entries[0];
    assert_eq!(entry.at_ms, 1000);
    assert_eq!(
        entry.event,
        TranscriptEvent::Tool {
            call_id: "call_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"x"}"#.into(),
            output: Some("boom: db down".into()),
            duration_ms: Some(250),
        }
    );
}

#[test]
fn rejected_response_create_is_requeued_not_lost() {
    let mut h = Harness::ready();
    h.conv.handle_dtmf(h.now, '1').unwrap();
    let create_id = h
        .sent()
        .into_iter()
        .find(|e| matches!(e, ClientEvent::ResponseCreate { .. }))
        .unwrap()
        .event_id()
        .unwrap()
        .to_owned();
    // A VAD response crossed ours on the wire.
    h.response_created("resp_vad");
    h.server(
        json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "conversation_already_has_active_response", "message": "busy",
        "param": null, "event_id": create_id}}),
    );
    let outputs = h.drain();
    assert!(matches!(&outputs[0], Output::ServerError(r)
        if r.client_event_type == Some("response.create")));
    assert_eq!(outputs.len(), 1, "nothing sent while resp_vad is active");
    h.response_done("resp_vad");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn response_create_is_held_while_the_caller_speaks_and_for_the_vad_response() {
    let mut h = Harness::ready();
    h.speech_started();
    h.conv.handle_dtmf(h.now, '#').unwrap();
    assert_eq!(count_creates(&h.sent()), 0, "caller is speaking");
    h.speech_stopped();
    assert_eq!(
        count_creates(&h.sent()),
        0,
        "server VAD will create a response"
    );
    assert_eq!(h.conv.poll_timeout(), Some(h.now + VAD_RESPONSE_GRACE));
    h.response_created("resp_vad");
    assert_eq!(h.conv.poll_timeout(), None);
    h.response_done("resp_vad");
    assert_eq!(count_creates(&h.sent()), 1);
}

#[test]
fn held_response_create_goes_out_when_no_vad_response_comes() {
    let mut h = Harness::ready();
    h.speech_started();
    h.conv.handle_dtmf(h.now, '3').unwrap();
    h.speech_stopped();
    h.sent();
    h.advance(1000);
    h.conv.handle_timeout(h.now);
    assert_eq!(count_creates(&h.sent()), 0, "too early");
    h.advance(1000);
    h.conv.handle_timeout(h.now);
    assert_eq!(count_creates(&h.sent()), 1);
}

// ---- built-in tools ----

#[test]
fn end_call_hangs_up_after_the_response_and_stops_responding() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_bye", 4800);
    h.function_call("resp_1", "call_end", END_CALL_TOOL, "{}");
    let outputs = h.drain();
    assert!(matches!(&outputs[0], Output::PlayAudio { .. }));
    assert!(
        matches!(&outputs[1], Output::Send(ClientEvent::ConversationItemCreate {
        item: InputItem::FunctionCallOutput { call_id, .. }, .. }) if call_id == "call_end")
    );
    assert_eq!(outputs.len(), 2, "no hang-up before response.done");
    h.response_done("resp_1");
    assert_eq!(h.drain(), vec![Output::HangUpAfterPlayback]);
    h.conv.handle_dtmf(h.now, '1').unwrap();
    assert!(h.sent().is_empty(), "nothing more is said once ending");
}

#[test]
fn transfer_waits_for_response_done_and_its_result_is_spoken() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.function_call(
        "resp_1",
        "call_t",
        TRANSFER_CALL_TOOL,
        r#"{"reason":"complaint"}"#,
    );
    assert!(h.drain().is_empty());
    h.response_done("resp_1");
    assert_eq!(
        h.drain(),
        vec![Output::TransferAfterPlayback {
            call_id: "call_t".into(),
            arguments: r#"{"reason":"complaint"}"#.into(),
        }]
    );
    h.conv
        .handle_tool_result(h.now, "call_t", r#"{"error":"busy"}"#)
        .unwrap();
    let sent = h.sent();
    assert!(matches!(
        sent[0],
        ClientEvent::ConversationItemCreate { .. }
    ));
    assert!(matches!(sent[1], ClientEvent::ResponseCreate { .. }));
}

// ---- barge-in ----

#[test]
fn barge_in_flushes_then_truncates_at_heard_audio() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 24_000);
    h.audio("resp_1", "item_a", 24_000);
    h.response_done("resp_1");
    h.drain();
    h.speech_started();
    assert_eq!(
        h.drain(),
        vec![Output::FlushPlayback {
            item_id: "item_a".into()
        }]
    );
    h.conv.handle_playback_flushed(h.now, "item_a", 12_000);
    assert_eq!(truncates(&h.sent()), vec![("item_a".into(), 500)]);
    // A second report for the same item does nothing.
    h.conv.handle_playback_flushed(h.now, "item_a", 12_000);
    assert!(h.sent().is_empty());
}

#[test]
fn truncate_is_clamped_to_received_audio_while_still_generating() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 24_000 + 23); // 1000.96 ms received
    h.speech_started();
    h.drain();
    h.conv.handle_playback_flushed(h.now, "item_a", 30_000);
    assert_eq!(truncates(&h.sent()), vec![("item_a".into(), 1000)]);
}

#[test]
fn heard_ms_is_rounded_but_never_beyond_received() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 47); // floor 1 ms
    h.speech_started();
    h.drain();
    h.conv.handle_playback_flushed(h.now, "item_a", 36); // rounds to 2 ms
    assert_eq!(truncates(&h.sent()), vec![("item_a".into(), 1)]);
}

#[test]
fn fully_played_item_is_not_truncated() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 4800);
    h.response_done("resp_1");
    h.speech_started();
    h.drain();
    h.conv.handle_playback_flushed(h.now, "item_a", 4800);
    assert!(truncates(&h.sent()).is_empty());
}

#[test]
fn drained_item_is_not_flushed() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 4800);
    h.server(
        json!({"type": "response.output_audio.done", "response_id": "resp_1",
        "item_id": "item_a", "output_index": 0, "content_index": 0}),
    );
    h.response_done("resp_1");
    let outputs = h.drain();
    assert!(outputs.contains(&Output::AudioEnd {
        item_id: "item_a".into()
    }));
    assert!(h.conv.is_playing());
    h.conv.handle_playback_drained(h.now, "item_a");
    assert!(!h.conv.is_playing());
    h.speech_started();
    assert!(h.drain().is_empty());
}

#[test]
fn no_audio_yet_means_no_flush_and_no_truncate() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.speech_started();
    assert!(h.drain().is_empty());
    h.conv.handle_playback_flushed(h.now, "item_a", 0);
    assert!(h.sent().is_empty());
}

#[test]
fn report_for_unknown_item_is_ignored() {
    let mut h = Harness::ready();
    h.conv.handle_playback_flushed(h.now, "item_nope", 1000);
    h.conv.handle_playback_drained(h.now, "item_nope");
    assert!(h.drain().is_empty());
}

#[test]
fn late_deltas_of_the_interrupted_response_are_dropped() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 2400);
    h.speech_started();
    h.drain();
    h.audio("resp_1", "item_a", 2400); // same item
    h.audio("resp_1", "item_b", 2400); // another item of the cancelled response
    h.server(
        json!({"type": "response.output_audio.done", "response_id": "resp_1",
        "item_id": "item_a", "output_index": 0, "content_index": 0}),
    );
    assert!(h.drain().is_empty(), "nothing played after barge-in");
    assert_eq!(h.conv.dropped_audio_deltas(), 2);
    // The received count was not inflated by dropped deltas: clamp stays at 100 ms.
    h.conv.handle_playback_flushed(h.now, "item_a", 10_000);
    assert_eq!(truncates(&h.sent()), vec![("item_a".into(), 100)]);
    // The next response plays normally.
    h.server(
        json!({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"}}}),
    );
    h.response_created("resp_2");
    h.audio("resp_2", "item_c", 240);
    assert!(
        matches!(&h.drain()[0], Output::PlayAudio { item_id, samples }
        if item_id == "item_c" && samples.len() == 240)
    );
}

#[test]
fn barge_in_is_off_when_the_server_does_not_interrupt() {
    let mut h = Harness::new(ConversationConfig {
        turn_detection: Some(TurnDetection::ServerVad {
            threshold: None,
            prefix_padding_ms: None,
            silence_duration_ms: None,
            idle_timeout_ms: None,
            create_response: Some(true),
            interrupt_response: Some(false),
        }),
        ..config()
    });
    h.start();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 2400);
    h.drain();
    h.speech_started();
    assert!(h.drain().is_empty());
    h.audio("resp_1", "item_a", 2400);
    assert!(matches!(&h.drain()[0], Output::PlayAudio { .. }));
}

#[test]
fn played_audio_carries_the_decoded_samples() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    let samples: Vec<i16> = (0..480).map(|i| (i * 37 - 9000) as i16).collect();
    h.server(
        json!({"type": "response.output_audio.delta", "response_id": "resp_1",
        "item_id": "item_a", "output_index": 0, "content_index": 0,
        "delta": encode_pcm16(&samples)}),
    );
    assert_eq!(
        h.drain(),
        vec![Output::PlayAudio {
            item_id: "item_a".into(),
            samples
        }]
    );
}

// ---- tolerance and errors ----

#[test]
fn unknown_events_are_counted_and_reported_once_per_type() {
    let mut h = Harness::ready();
    h.server(json!({"type": "response.audio.delta", "delta": "AgE="}));
    h.server(json!({"type": "response.audio.delta", "delta": "AgE="}));
    h.server(json!({"type": "input_audio_buffer.timeout_triggered"}));
    assert_eq!(h.conv.unknown_events(), 3);
    assert_eq!(
        h.drain(),
        vec![
            Output::UnknownEventType("response.audio.delta".into()),
            Output::UnknownEventType("input_audio_buffer.timeout_triggered".into()),
        ]
    );
}

#[test]
fn malformed_frames_are_reported_not_fatal() {
    let mut h = Harness::ready();
    h.conv.handle_server_text(h.now, "{not json");
    h.server(json!({"type": "response.created"}));
    h.server(
        json!({"type": "response.output_audio.delta", "response_id": "r", "item_id": "i",
        "delta": "AQID"}),
    );
    let outputs = h.drain();
    assert_eq!(outputs.len(), 3);
    assert!(outputs
        .iter()
        .all(|o| matches!(o, Output::MalformedEvent { .. })));
    assert_eq!(h.conv.malformed_events(), 3);
    assert_eq!(h.conv.session_state(), SessionState::Ready);
}

#[test]
fn server_errors_are_surfaced_with_code_and_our_event_type() {
    let mut h = Harness::ready();
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 4800);
    h.speech_started();
    h.drain();
    h.conv.handle_playback_flushed(h.now, "item_a", 2400);
    let truncate_id = h.sent()[0].event_id().unwrap().to_owned();
    h.server(
        json!({"type": "error", "error": {"type": "invalid_request_error", "code": null,
        "message": "Audio content of 90ms is already shorter than 100ms", "param": null,
        "event_id": truncate_id}}),
    );
    assert_eq!(
        h.drain(),
        vec![Output::ServerError(ErrorReport {
            code: None,
            message: "Audio content of 90ms is already shorter than 100ms".into(),
            kind: "invalid_request_error".into(),
            param: None,
            client_event_id: Some(truncate_id),
            client_event_type: Some("conversation.item.truncate"),
        })]
    );
    assert_eq!(h.conv.session_state(), SessionState::Ready);
}

#[test]
fn session_expired_is_fatal() {
    let mut h = Harness::ready();
    h.server(json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "session_expired", "message": "Your session hit the maximum duration of 60 minutes.",
        "param": null, "event_id": null}}));
    let outputs = h.drain();
    assert!(matches!(&outputs[0], Output::ServerError(r) if !r.is_benign()));
    assert!(
        matches!(&outputs[1], Output::Fatal(FatalError::Server { code, .. })
        if code == "session_expired")
    );
}

#[test]
fn cancel_not_active_is_benign() {
    let mut h = Harness::ready();
    h.server(json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "response_cancel_not_active", "message": "Cancellation failed: no active response found"}}));
    assert!(matches!(&h.drain()[..], [Output::ServerError(r)] if r.is_benign()));
}

// ---- DTMF and transcripts ----

#[test]
fn dtmf_becomes_a_user_text_item_and_a_response() {
    let mut h = Harness::ready();
    h.conv.handle_dtmf(h.now, '7').unwrap();
    let sent = h.sent();
    let ClientEvent::ConversationItemCreate {
        item: InputItem::Message { content, .. },
        ..
    } = &sent[0]
    else {
        panic!("{sent:?}")
    };
    assert!(matches!(&content[0], InputContent::InputText { text } if text.contains("\"7\"")));
    assert!(matches!(sent[1], ClientEvent::ResponseCreate { .. }));
    assert_eq!(
        h.conv.transcript().entries[0].event,
        TranscriptEvent::Dtmf { digit: '7' }
    );
}

#[test]
fn dtmf_before_session_ready_is_sent_after_it() {
    let mut h = Harness::new(config());
    h.conv.handle_dtmf(h.now, '9').unwrap();
    assert!(h.drain().is_empty());
    h.start_keeping_outputs();
    let outputs = h.drain();
    let ready = outputs
        .iter()
        .position(|o| *o == Output::SessionReady)
        .unwrap();
    assert!(matches!(
        &outputs[ready + 1],
        Output::Send(ClientEvent::ConversationItemCreate { .. })
    ));
    assert!(matches!(
        &outputs[ready + 2],
        Output::Send(ClientEvent::ResponseCreate { .. })
    ));
}

#[test]
fn invalid_dtmf_is_an_error() {
    let mut h = Harness::ready();
    assert_eq!(
        h.conv.handle_dtmf(h.now, 'x'),
        Err(InputError::InvalidDtmf('X'))
    );
    assert!(h.drain().is_empty());
}

#[test]
fn transcripts_of_both_sides_have_times_and_heard_ms() {
    let mut h = Harness::ready();
    h.advance(1500);
    h.server(
        json!({"type": "conversation.item.input_audio_transcription.completed",
        "item_id": "item_u", "content_index": 0, "transcript": "Eine Pizza bitte.",
        "usage": {"type": "duration", "seconds": 2}}),
    );
    h.advance(500);
    h.response_created("resp_1");
    h.audio("resp_1", "item_a", 48_000);
    h.response_done("resp_1");
    h.speech_started();
    h.conv.handle_playback_flushed(h.now, "item_a", 24_000);
    h.server(
        json!({"type": "response.output_audio_transcript.done", "response_id": "resp_1",
        "item_id": "item_a", "output_index": 0, "content_index": 0,
        "transcript": "Gern, welche Größe?"}),
    );
    let entries = &h.conv.transcript().entries;
    assert_eq!(entries[0].at_ms, 1500);
    assert_eq!(
        entries[0].event,
        TranscriptEvent::Caller {
            item_id: "item_u".into(),
            text: "Eine Pizza bitte.".into()
        }
    );
    assert_eq!(entries[1].at_ms, 2000);
    assert_eq!(
        entries[1].event,
        TranscriptEvent::Agent {
            item_id: "item_a".into(),
            text: "Gern, welche Größe?".into(),
            heard_ms: Some(1000),
        }
    );
}

#[test]
fn transcript_serializes_for_the_api() {
    let mut h = Harness::ready();
    h.conv.handle_dtmf(h.now, '1').unwrap();
    let value = serde_json::to_value(h.conv.transcript()).unwrap();
    assert_eq!(
        value,
        json!({"entries": [{"at_ms": 0, "kind": "dtmf", "digit": "1"}]})
    );
}
