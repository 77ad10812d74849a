//! The call's lifecycle, one edge case per test: the machine driven with server JSON, engine
//! events, tool results, a fake ledger and a clock that only moves when the test moves it.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use pjsip_safe::{CallId, Direction, MediaInfo};
use serde_json::{json, Value};

use super::machine::{Action, CallMachine, CallParams, ToolDone};
use super::playout::{DownlinkOp, Ledger};
use super::{AfterPlayout, Lifecycle};
use crate::config::{BackendFailure, BridgeSettings};
use crate::live::LiveEvent;
use crate::prompts::Prompt;
use crate::realtime::conversation::{ConversationConfig, Greeting, ToolDefinition};
use crate::realtime::wire::{encode_pcm16, ClientEvent};
use crate::tools::ToolOutcome;

fn policy() -> BridgeSettings {
    BridgeSettings {
        ring_delay: Duration::ZERO,
        answer_timeout: Duration::from_secs(5),
        backend_failure: BackendFailure::Apology,
        tool_hold_after: Some(Duration::from_millis(1500)),
        tool_timeout: Duration::from_secs(5),
        transfer_target: None,
        hangup_grace: Duration::from_secs(3),
    }
}

fn conversation() -> ConversationConfig {
    ConversationConfig {
        instructions: "You take orders.".into(),
        tools: vec![
            ToolDefinition::external("lookup", "Look up.", json!({"type": "object"})),
            ToolDefinition::end_call(),
            ToolDefinition::transfer_call(),
        ],
        greeting: Greeting::None,
        ..ConversationConfig::default()
    }
}

/// What the engine's downlink ledger would say: samples pushed and played per key.
#[derive(Default)]
struct FakeLedger {
    received: HashMap<u64, u64>,
    played: HashMap<u64, u64>,
}

impl Ledger for FakeLedger {
    fn played(&self, key: u64) -> u64 {
        self.played.get(&key).copied().unwrap_or(0)
    }
    fn received(&self, key: u64) -> u64 {
        self.received.get(&key).copied().unwrap_or(0)
    }
    fn backlog_empty(&self) -> bool {
        true
    }
    fn drained(&self) -> bool {
        self.received
            .iter()
            .all(|(k, r)| self.played.get(k).copied().unwrap_or(0) >= *r)
    }
}

struct Harness {
    m: CallMachine,
    now: Instant,
    ledger: FakeLedger,
    /// Every action so far, in order.
    log: Vec<Action>,
}

impl Harness {
    fn new(direction: Direction, policy: BridgeSettings) -> Self {
        Self::with_notice(direction, policy, false)
    }

    fn with_notice(direction: Direction, policy: BridgeSettings, recording_notice: bool) -> Self {
        let now = Instant::now();
        let m = CallMachine::new(
            CallParams {
                call: CallId(7),
                direction,
                from: "sip:alice@example.com".into(),
                to: "sip:bot@example.com".into(),
                conversation: conversation(),
                policy,
                recording_notice,
            },
            now,
            SystemTime::now(),
        );
        Harness {
            m,
            now,
            ledger: FakeLedger::default(),
            log: Vec::new(),
        }
    }

    fn incoming(policy: BridgeSettings) -> Self {
        Self::new(Direction::Incoming, policy)
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        if self.m.poll_timeout().is_some_and(|t| t <= self.now) {
            self.m.handle_timeout(self.now);
        }
        self.run();
    }

    /// Carries out the actions like the driver would (the engine always agrees) and returns
    /// them.
    fn run(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(action) = self.m.poll_action() {
            match &action {
                Action::Answer => self.m.handle_answered(self.now, Ok(())),
                Action::Transfer { .. } => self.m.handle_transfer_started(self.now, Ok(())),
                Action::Downlink(DownlinkOp::Push { key, pcm, .. }) => {
                    *self.ledger.received.entry(*key).or_default() += pcm.len() as u64
                }
                Action::Downlink(DownlinkOp::FlushForBargeIn) => {
                    // Nothing more of what was queued will play.
                    let played = self.ledger.played.clone();
                    for (k, r) in self.ledger.received.iter_mut() {
                        *r = (*r).min(played.get(k).copied().unwrap_or(0));
                    }
                    self.m.handle_flushed(self.now, &self.ledger)
                }
                _ => {}
            }
            out.push(action);
        }
        self.log.extend(out.iter().cloned());
        out
    }

    fn server(&mut self, event: Value) -> Vec<Action> {
        self.m.handle_server_text(self.now, &event.to_string());
        self.run()
    }

    /// Connects and confirms the session.
    fn open_session(&mut self) -> Vec<Action> {
        self.m.handle_connected(self.now);
        self.server(json!({"type": "session.created", "session": {"type": "realtime"}}));
        let session = self.m_config_session();
        self.server(json!({"type": "session.updated", "session": session}))
    }

    fn m_config_session(&self) -> Value {
        serde_json::to_value(conversation().session()).expect("session serializes")
    }

    fn media_up(&mut self) -> Vec<Action> {
        let info = MediaInfo {
            codec: "PCMA".into(),
            clock_rate: 8000,
            channels: 1,
            remote_rtp: "127.0.0.1:4000".into(),
        };
        self.m.handle_media_active(self.now, &info, true);
        self.run()
    }

    /// An answered incoming call with media, session ready.
    fn live() -> Self {
        let mut h = Self::incoming(policy());
        h.open_session();
        h.media_up();
        assert_eq!(h.m.lifecycle(), &Lifecycle::Live);
        h
    }

    fn response(&mut self, id: &str) {
        self.server(
            json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}),
        );
    }

    fn response_done(&mut self, id: &str) {
        self.server(
            json!({"type": "response.done", "response": {"id": id, "status": "completed"}}),
        );
    }

    fn audio(&mut self, response: &str, item: &str, samples: usize) -> Vec<Action> {
        self.server(
            json!({"type": "response.output_audio.delta", "response_id": response,
            "item_id": item, "output_index": 0, "content_index": 0,
            "delta": encode_pcm16(&vec![100i16; samples])}),
        )
    }

    fn audio_done(&mut self, response: &str, item: &str) -> Vec<Action> {
        self.server(
            json!({"type": "response.output_audio.done", "response_id": response,
            "item_id": item, "output_index": 0, "content_index": 0}),
        )
    }

    fn function_call(&mut self, response: &str, call_id: &str, name: &str) -> Vec<Action> {
        self.server(
            json!({"type": "response.function_call_arguments.done", "response_id": response,
            "item_id": format!("item_{call_id}"), "output_index": 1, "call_id": call_id,
            "name": name, "arguments": "{}"}),
        )
    }

    /// The engine plays everything queued.
    fn play_all(&mut self) -> Vec<Action> {
        self.ledger.played = self.ledger.received.clone();
        self.m.handle_playout(self.now, &self.ledger);
        self.run()
    }

    fn ended(&mut self) {
        self.m
            .handle_call_ended(self.now, Some((200, "Normal call clearing")));
        self.run();
    }
}

fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.iter().any(|a| a == wanted)
}

fn hangups(actions: &[Action]) -> Vec<u16> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Hangup { code } => Some(*code),
            _ => None,
        })
        .collect()
}

fn tool_outputs(actions: &[Action]) -> Vec<(String, Value)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(ClientEvent::ConversationItemCreate { item, .. }) => {
                let v = serde_json::to_value(item).ok()?;
                (v["type"] == "function_call_output").then(|| {
                    let output = v["output"].as_str().unwrap_or_default();
                    (
                        v["call_id"].as_str().unwrap_or_default().to_owned(),
                        serde_json::from_str(output).unwrap_or(Value::Null),
                    )
                })
            }
            _ => None,
        })
        .collect()
}

fn outcome(output: &str, ok: bool) -> ToolOutcome {
    ToolOutcome {
        output: output.into(),
        ok,
        duration: Duration::from_millis(20),
    }
}

// ---- answering ----

#[test]
fn an_incoming_call_is_answered_once_the_session_is_ready() {
    let mut h = Harness::incoming(policy());
    h.m.handle_connected(h.now);
    assert!(matches!(h.m.lifecycle(), Lifecycle::Opening { .. }));
    let actions = h.open_session();
    assert!(has(&actions, &Action::Answer), "{actions:?}");
    assert_eq!(h.m.lifecycle(), &Lifecycle::Live);
    assert_eq!(h.m.report().answered_after_ms, Some(0));
}

#[test]
fn the_ring_delay_is_a_deadline_not_a_sleep() {
    let mut p = policy();
    p.ring_delay = Duration::from_millis(1000);
    let mut h = Harness::incoming(p);
    h.advance(200);
    let actions = h.open_session();
    assert!(!has(&actions, &Action::Answer), "too early: {actions:?}");
    assert!(matches!(
        h.m.lifecycle(),
        Lifecycle::Answering { asked: false, .. }
    ));
    assert_eq!(h.m.poll_timeout(), Some(h.now + Duration::from_millis(800)));
    // The machine keeps working while it rings: the greeting's audio is kept for the media.
    h.response("resp_1");
    let while_ringing = h.audio("resp_1", "item_1", 2400);
    assert!(while_ringing.is_empty(), "no media yet: {while_ringing:?}");
    h.advance(799);
    assert!(!has(&h.log, &Action::Answer));
    h.advance(1);
    assert!(has(&h.log, &Action::Answer));
    assert_eq!(h.m.lifecycle(), &Lifecycle::Live);
    assert_eq!(h.m.report().answered_after_ms, Some(1000));
    // Once media is up, the audio kept while ringing plays.
    let actions = h.media_up();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Downlink(DownlinkOp::Push { key: 1, .. }))));
}

#[test]
fn an_outgoing_call_is_not_answered_by_us() {
    let mut h = Harness::new(Direction::Outgoing, policy());
    let actions = h.open_session();
    assert!(!has(&actions, &Action::Answer));
    assert_eq!(h.m.lifecycle(), &Lifecycle::Live);
    let actions = h.media_up();
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Publish(LiveEvent::CallAnswered { .. }))));
}

// ---- backend failure ----

#[test]
fn a_backend_failure_before_answer_rejects_with_503_when_so_configured() {
    let mut p = policy();
    p.backend_failure = BackendFailure::Reject;
    let mut h = Harness::incoming(p);
    h.m.handle_backend_failed(h.now, "connection refused");
    let actions = h.run();
    assert_eq!(hangups(&actions), [503]);
    assert!(!has(&actions, &Action::Answer));
    assert_eq!(h.m.lifecycle(), &Lifecycle::HangingUp);
    assert!(h.m.report().backend_failed);
}

#[test]
fn a_backend_failure_before_answer_answers_and_apologises() {
    let mut h = Harness::incoming(policy());
    h.m.handle_backend_failed(h.now, "connection refused");
    let actions = h.run();
    assert!(has(&actions, &Action::Answer));
    assert_eq!(h.m.lifecycle(), &Lifecycle::Failing);
    // The apology plays once media is up, then the call is hung up after it.
    let actions = h.media_up();
    assert!(has(
        &actions,
        &Action::Downlink(DownlinkOp::Prompt(Prompt::Apology))
    ));
    h.m.handle_playout(h.now, &h.ledger);
    let actions = h.run();
    assert_eq!(hangups(&actions), [0]);
}

#[test]
fn no_session_in_time_is_a_backend_failure() {
    let mut h = Harness::incoming(policy());
    h.m.handle_connected(h.now);
    h.advance(4999);
    assert!(!h.m.report().backend_failed);
    h.advance(1);
    assert!(h.m.report().backend_failed);
    assert!(h.m.report().errors[0].contains("no session.updated"));
    assert!(has(&h.log, &Action::CloseSocket));
    assert!(has(&h.log, &Action::Answer));
}

#[test]
fn a_backend_failure_mid_call_stops_the_model_and_plays_the_apology() {
    let mut h = Harness::live();
    h.response("resp_1");
    h.audio("resp_1", "item_1", 4800);
    h.m.handle_backend_failed(h.now, "the Realtime endpoint closed the connection");
    let actions = h.run();
    assert!(!has(&actions, &Action::Answer), "already answered");
    assert_eq!(
        actions,
        [
            Action::CloseSocket,
            Action::Downlink(DownlinkOp::Flush),
            Action::Downlink(DownlinkOp::Prompt(Prompt::Apology)),
        ]
    );
    // Audio still on the wire for the model is not played, and nothing more is sent.
    let late = h.audio("resp_1", "item_1", 2400);
    assert!(late.is_empty(), "{late:?}");
    assert!(h.m.wants_playout());
    let actions = h.play_all();
    assert_eq!(hangups(&actions), [0]);
    // A second failure report changes nothing.
    h.m.handle_backend_failed(h.now, "again");
    assert!(h.run().is_empty());
    assert_eq!(h.m.report().errors.len(), 1);
}

// ---- tools ----

#[test]
fn a_hang_up_during_a_tool_call_waits_for_the_tool_within_the_grace() {
    let mut h = Harness::live();
    h.response("resp_1");
    let actions = h.function_call("resp_1", "call_1", "lookup");
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::RunTool { name, .. } if name == "lookup")));
    h.advance(100);
    h.ended();
    assert!(matches!(h.m.lifecycle(), Lifecycle::Ended { .. }));
    assert!(!h.m.is_done(), "the tool still runs");
    h.advance(500);
    h.m.handle_tool_done(
        h.now,
        ToolDone {
            call_id: "call_1".into(),
            name: "lookup".into(),
            arguments: "{}".into(),
            outcome: outcome(r#"{"ok":true}"#, true),
        },
    );
    h.run();
    assert!(h.m.is_done());
    let report = h.m.report();
    assert_eq!(report.tool_calls.len(), 1);
    assert_eq!(report.tool_calls[0].at_ms, 0);
    assert_eq!(report.end_reason, "200 Normal call clearing");
}

#[test]
fn a_tool_that_never_finishes_is_given_up_after_the_grace() {
    let mut h = Harness::live();
    h.response("resp_1");
    h.function_call("resp_1", "call_1", "lookup");
    h.ended();
    h.advance(2999);
    assert!(!h.m.is_done());
    h.advance(1);
    assert!(h.m.is_done());
}

#[test]
fn a_slow_tool_gets_the_hold_sound_which_stops_with_its_result() {
    let mut h = Harness::live();
    h.response("resp_1");
    h.function_call("resp_1", "call_1", "lookup");
    h.response_done("resp_1");
    h.advance(1000);
    assert!(h.m.wants_playout());
    h.play_all();
    assert!(!has(
        &h.log,
        &Action::Downlink(DownlinkOp::Prompt(Prompt::Hold))
    ));
    h.advance(500);
    let actions = h.play_all();
    assert!(has(
        &actions,
        &Action::Downlink(DownlinkOp::Prompt(Prompt::Hold))
    ));
    h.m.handle_tool_done(
        h.now,
        ToolDone {
            call_id: "call_1".into(),
            name: "lookup".into(),
            arguments: "{}".into(),
            outcome: outcome(r#"{"ok":true,"found":1}"#, true),
        },
    );
    let actions = h.run();
    assert_eq!(
        actions[1],
        Action::Downlink(DownlinkOp::StopPrompt),
        "{actions:?}"
    );
    assert_eq!(
        tool_outputs(&actions),
        [("call_1".to_owned(), json!({"ok": true, "found": 1}))]
    );
}

// ---- the model ends or transfers the call ----

#[test]
fn end_call_hangs_up_only_after_the_goodbye_was_played() {
    let mut h = Harness::live();
    h.response("resp_1");
    h.audio("resp_1", "item_bye", 4800);
    h.function_call("resp_1", "call_end", "end_call");
    h.audio_done("resp_1", "item_bye");
    h.response_done("resp_1");
    assert_eq!(h.m.lifecycle(), &Lifecycle::Draining(AfterPlayout::HangUp));
    // Half of the goodbye played: no hang-up yet.
    h.ledger.played.insert(1, 4800);
    h.m.handle_playout(h.now, &h.ledger);
    assert!(hangups(&h.run()).is_empty());
    let actions = h.play_all();
    assert_eq!(hangups(&actions), [0]);
    assert_eq!(h.m.lifecycle(), &Lifecycle::HangingUp);
    h.ended();
    assert!(h.m.is_done());
}

#[test]
fn transfer_call_transfers_after_playback_and_hangs_up_on_success() {
    let mut p = policy();
    p.transfer_target = Some("sip:desk@example.com".into());
    let mut h = Harness::incoming(p);
    h.open_session();
    h.media_up();
    h.response("resp_1");
    h.function_call("resp_1", "call_t", "transfer_call");
    h.response_done("resp_1");
    assert_eq!(
        h.m.lifecycle(),
        &Lifecycle::Draining(AfterPlayout::Transfer {
            call_id: "call_t".into()
        })
    );
    let actions = h.play_all();
    assert!(has(
        &actions,
        &Action::Transfer {
            target: "sip:desk@example.com".into()
        }
    ));
    assert_eq!(
        h.m.lifecycle(),
        &Lifecycle::Transferring {
            call_id: "call_t".into()
        }
    );
    h.m.handle_transfer_status(h.now, 100, "Trying", false);
    assert!(h.run().is_empty());
    h.m.handle_transfer_status(h.now, 200, "OK", true);
    let actions = h.run();
    assert_eq!(
        tool_outputs(&actions),
        [(
            "call_t".to_owned(),
            json!({"ok": true, "status": 200, "reason": "OK"})
        )]
    );
    assert_eq!(hangups(&actions), [0]);
}

#[test]
fn a_failed_transfer_goes_back_to_the_conversation() {
    let mut p = policy();
    p.transfer_target = Some("sip:desk@example.com".into());
    let mut h = Harness::incoming(p);
    h.open_session();
    h.media_up();
    h.response("resp_1");
    h.function_call("resp_1", "call_t", "transfer_call");
    h.response_done("resp_1");
    h.play_all();
    h.m.handle_transfer_status(h.now, 486, "Busy Here", true);
    let actions = h.run();
    assert_eq!(
        tool_outputs(&actions),
        [(
            "call_t".to_owned(),
            json!({"ok": false, "status": 486, "reason": "Busy Here"})
        )]
    );
    assert!(hangups(&actions).is_empty());
    assert_eq!(h.m.lifecycle(), &Lifecycle::Live);
}

#[test]
fn a_transfer_without_a_target_is_refused_to_the_model() {
    let mut h = Harness::live();
    h.response("resp_1");
    h.function_call("resp_1", "call_t", "transfer_call");
    h.response_done("resp_1");
    let actions = h.play_all();
    assert!(!actions.iter().any(|a| matches!(a, Action::Transfer { .. })));
    let outputs = tool_outputs(&actions);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].1["ok"], false);
    assert!(outputs[0].1["error"]
        .as_str()
        .is_some_and(|e| e.contains("TRANSFER_TARGET")));
    assert_eq!(h.m.lifecycle(), &Lifecycle::Live);
}

// ---- barge-in and playout ----

#[test]
fn barge_in_reports_what_the_ledger_says_was_heard() {
    let mut h = Harness::live();
    h.response("resp_1");
    h.audio("resp_1", "item_1", 24_000); // 1 s
    h.ledger.played.insert(1, 24_000); // 500 ms of 48 kHz audio played
    let actions = h.server(json!({"type": "input_audio_buffer.speech_started",
        "audio_start_ms": 1000, "item_id": "item_user"}));
    assert!(has(
        &actions,
        &Action::Downlink(DownlinkOp::FlushForBargeIn)
    ));
    let truncate = actions.iter().find_map(|a| match a {
        Action::Send(ClientEvent::ConversationItemTruncate {
            item_id,
            audio_end_ms,
            ..
        }) => Some((item_id.clone(), *audio_end_ms)),
        _ => None,
    });
    assert_eq!(truncate, Some(("item_1".to_owned(), 500)));
    assert_eq!(h.m.report().barge_ins, 1);
    assert_eq!(h.m.report().truncations, [("item_1".to_owned(), 500)]);
    assert!(has(
        &actions,
        &Action::Downlink(DownlinkOp::Forget { key: 1 })
    ));
}

#[test]
fn items_heard_in_full_are_forgotten_and_the_turn_latency_is_published() {
    let mut h = Harness::live();
    h.server(
        json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2000,
        "item_id": "item_user"}),
    );
    h.advance(300);
    h.response("resp_1");
    let actions = h.audio("resp_1", "item_1", 4800);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Publish(LiveEvent::TurnLatency { ms: 300, .. }))));
    h.audio_done("resp_1", "item_1");
    let actions = h.play_all();
    assert!(has(
        &actions,
        &Action::Downlink(DownlinkOp::Forget { key: 1 })
    ));
    assert!(!h.m.wants_playout());
}

// ---- shutdown ----

#[test]
fn shutdown_ends_the_call_when_the_engine_events_stop() {
    let mut h = Harness::live();
    h.m.handle_call_ended(h.now, None);
    h.run();
    assert!(h.m.is_done());
    let report = h.m.finish(h.now + Duration::from_millis(1234));
    assert_eq!(report.duration_ms, 1234);
    assert_eq!(report.end_reason, "");
    assert!(!report.backend_failed);
}

#[test]
fn a_call_that_ends_while_ringing_is_never_answered() {
    let mut p = policy();
    p.ring_delay = Duration::from_millis(1000);
    let mut h = Harness::incoming(p);
    h.open_session();
    h.ended();
    assert!(h.m.is_done());
    h.advance(2000);
    assert!(!has(&h.log, &Action::Answer));
    assert_eq!(h.m.report().answered_after_ms, None);
}

#[test]
fn the_recording_notice_plays_before_the_greeting_kept_while_ringing() {
    let mut h = Harness::with_notice(Direction::Incoming, policy(), true);
    h.open_session();
    h.response("resp_1");
    h.audio("resp_1", "item_hello", 4800);
    let actions = h.media_up();
    let notice = actions
        .iter()
        .position(|a| a == &Action::Downlink(DownlinkOp::Prompt(Prompt::RecordingNotice)));
    let greeting = actions
        .iter()
        .position(|a| matches!(a, Action::Downlink(DownlinkOp::Push { .. })));
    assert!(notice.is_some() && notice < greeting, "{actions:?}");
}

#[test]
fn end_call_during_the_ring_delay_answers_then_drains() {
    let mut p = policy();
    p.ring_delay = Duration::from_millis(1000);
    let mut h = Harness::incoming(p);
    h.open_session();
    h.response("resp_1");
    h.function_call("resp_1", "call_end", "end_call");
    h.response_done("resp_1");
    assert!(matches!(h.m.lifecycle(), Lifecycle::Answering { .. }));
    h.advance(1000);
    assert!(has(&h.log, &Action::Answer));
    assert_eq!(h.m.lifecycle(), &Lifecycle::Draining(AfterPlayout::HangUp));
    h.media_up();
    let actions = h.play_all();
    assert_eq!(hangups(&actions), [0]);
}
