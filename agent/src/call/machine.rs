//! One call as a state machine without I/O (str0m style, like [`Conversation`] inside it).
//!
//! The driver (`bridge`) feeds it what happened — engine events, server frames, uplink audio,
//! tool results, what the engine's ledger says was played, the current time — through
//! `handle_*`, and carries out every [`Action`] from [`CallMachine::poll_action`] in order. It
//! wakes the machine at [`CallMachine::poll_timeout`] and, while
//! [`CallMachine::wants_playout`], reports playback every few milliseconds. No socket, clock,
//! task or sleep lives here, so the call's policy (ring delay, apology, hold sound, transfer,
//! hang-up after the goodbye, grace for tools after a hang-up) is a set of fast unit tests.
//!
//! The ring delay lives here, not in the engine (`pjsip_safe::AnswerMode::AfterRing`, which the
//! agent leaves at `Manual`): the call is answered only once the Realtime session is confirmed,
//! and the delay is a lower bound on top of that, so the engine cannot know when to answer.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use pjsip_safe::{CallId, Direction, MediaInfo};

use super::lifecycle::{AfterPlayout, Lifecycle};
use super::playout::{DownlinkOp, Ledger, NoMedia, Playout};
use super::report::{CallReport, ToolCallRecord};
use crate::config::{BackendFailure, BridgeSettings};
use crate::live::{Level, LiveEvent};
use crate::prompts::Prompt;
use crate::realtime::conversation::{
    Conversation, ConversationConfig, Output, Transcript, TranscriptEvent,
};
use crate::realtime::wire::{ClientEvent, ServerEvent};
use crate::tools::ToolOutcome;

/// How often audio levels are published.
const LEVEL_INTERVAL: Duration = Duration::from_millis(250);
/// At most this many latency samples per direction are kept in the report.
const LATENCY_SAMPLES: usize = 100_000;

/// Everything the machine starts with.
#[derive(Debug, Clone)]
pub struct CallParams {
    pub call: CallId,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub conversation: ConversationConfig,
    pub policy: BridgeSettings,
    /// Tell the caller the call is recorded, before anything else is heard.
    pub recording_notice: bool,
}

/// One thing for the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this event on the WebSocket (if it is still open; a failure is reported with
    /// [`CallMachine::handle_backend_failed`]).
    Send(ClientEvent),
    /// Close the WebSocket; nothing more is sent.
    CloseSocket,
    /// Answer the call; report with [`CallMachine::handle_answered`].
    Answer,
    /// Hang up (`code` 0 = normal; 503 rejects an unanswered call).
    Hangup { code: u16 },
    /// Blind-transfer to `target`; report with [`CallMachine::handle_transfer_started`].
    Transfer { target: String },
    /// Run a tool; report with [`CallMachine::handle_tool_done`].
    RunTool {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// Change the engine's downlink queue.
    Downlink(DownlinkOp),
    /// Publish on the live bus.
    Publish(LiveEvent),
}

/// A finished tool, as the driver reports it.
#[derive(Debug, Clone)]
pub struct ToolDone {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    pub outcome: ToolOutcome,
}

/// Whether the WebSocket is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    Connecting,
    Open,
    Closed,
}

/// One call. See the module docs.
pub struct CallMachine {
    call: CallId,
    direction: Direction,
    policy: BridgeSettings,
    recording_notice: bool,
    started: Instant,
    conv: Conversation,
    lifecycle: Lifecycle,
    socket: Socket,
    /// The engine's media is up (the downlink accepts audio).
    media: bool,
    answered: bool,
    session_ready: bool,
    /// Audio the model sent before media was up (greeting racing the 200 OK).
    pre_media: Vec<Output>,
    playout: Playout,
    /// Barge-in flushed the queue; waiting for the ledger (item the flush is for).
    pending_barge_in: Option<String>,
    up: crate::audio::resample::StreamResampler,
    up_buf: Vec<i16>,
    pending_tools: HashMap<String, Instant>,
    /// The model ended or transferred the call before it was answered: applied once live.
    after_answer: Option<AfterPlayout>,
    hold_playing: bool,
    /// When the server reported the end of the caller's speech (for the turn latency).
    speech_stopped_at: Option<Instant>,
    /// Transcript entries already published.
    published: usize,
    caller_level: Level,
    agent_level: Level,
    last_levels: Instant,
    actions: VecDeque<Action>,
    report: CallReport,
}

impl std::fmt::Debug for CallMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMachine")
            .field("call", &self.call)
            .field("lifecycle", &self.lifecycle)
            .field("media", &self.media)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl CallMachine {
    /// A call that starts ringing (incoming) or dialling (outgoing) at `now`; the driver opens
    /// the WebSocket at once.
    pub fn new(params: CallParams, now: Instant, wall_clock: SystemTime) -> Self {
        let CallParams {
            call,
            direction,
            from,
            to,
            conversation,
            policy,
            recording_notice,
        } = params;
        let report = CallReport {
            call: call.to_string(),
            direction: direction.as_str(),
            from,
            to,
            started_at: wall_clock,
            answered_after_ms: None,
            duration_ms: 0,
            codec: None,
            clock_rate: None,
            end_reason: String::new(),
            barge_ins: 0,
            truncations: Vec::new(),
            tool_calls: Vec::new(),
            errors: Vec::new(),
            backend_failed: false,
            transcript: Transcript::default(),
            uplink_latency_us: Vec::new(),
            downlink_latency_us: Vec::new(),
            downlink_play_latency_us: Vec::new(),
        };
        Self {
            call,
            direction,
            lifecycle: Lifecycle::Opening {
                deadline: now + policy.answer_timeout,
            },
            policy,
            recording_notice,
            started: now,
            conv: Conversation::new(conversation, now),
            socket: Socket::Connecting,
            media: false,
            answered: direction == Direction::Outgoing,
            session_ready: false,
            pre_media: Vec::new(),
            playout: Playout::new(),
            pending_barge_in: None,
            up: crate::audio::resample::StreamResampler::streaming(
                48_000,
                24_000,
                pjsip_safe::media::FRAME_SAMPLES,
            )
            .expect("48 kHz -> 24 kHz is a valid conversion"),
            up_buf: Vec::with_capacity(960),
            pending_tools: HashMap::new(),
            after_answer: None,
            hold_playing: false,
            speech_stopped_at: None,
            published: 0,
            caller_level: Level::default(),
            agent_level: Level::default(),
            last_levels: now,
            actions: VecDeque::new(),
            report,
        }
    }

    // ---- outputs ----

    /// The next thing the driver must do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`CallMachine::handle_timeout`] wants to be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = match &self.lifecycle {
            Lifecycle::Opening { deadline } => Some(*deadline),
            Lifecycle::Answering { at, asked: false } => Some(*at),
            Lifecycle::Ended { grace_until } => Some(*grace_until),
            _ => None,
        };
        [own, self.conv.poll_timeout()].into_iter().flatten().min()
    }

    /// Whether the driver should report playback ([`CallMachine::handle_playout`]) every few
    /// milliseconds: something waits for audio to be played (or for a tool to become slow).
    pub fn wants_playout(&self) -> bool {
        self.media
            && (!self.playout.is_empty()
                || matches!(self.lifecycle, Lifecycle::Draining(_) | Lifecycle::Failing)
                || self.hold_playing
                || !self.pending_tools.is_empty()
                || self.report.backend_failed)
    }

    /// The call is over; collect the report with [`CallMachine::finish`].
    pub fn is_done(&self) -> bool {
        self.lifecycle == Lifecycle::Done
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The report so far (the transcript is filled in by [`CallMachine::finish`]).
    pub fn report(&self) -> &CallReport {
        &self.report
    }

    // ---- inputs: the Realtime socket ----

    /// The WebSocket is open.
    pub fn handle_connected(&mut self, _now: Instant) {
        if self.socket == Socket::Connecting && !self.report.backend_failed {
            self.socket = Socket::Open;
        }
    }

    /// One text frame from the server.
    pub fn handle_server_text(&mut self, now: Instant, text: &str) {
        if self.socket == Socket::Closed {
            return; // Frames still buffered after a failure belong to a session we gave up.
        }
        match ServerEvent::parse(text) {
            Ok(event) => {
                if matches!(event, ServerEvent::SpeechStopped { .. }) {
                    // Only this event starts the turn clock.
                    self.speech_stopped_at = Some(now);
                }
                self.conv.handle_server_event(now, event);
            }
            Err(e) => self.conv.handle_parse_error(e),
        }
        self.pump(now);
    }

    /// The backend is gone or unusable (connect failed, socket closed or errored, a send
    /// failed): the caller hears an apology (or a 503) and the call ends.
    pub fn handle_backend_failed(&mut self, now: Instant, why: &str) {
        if self.report.backend_failed || self.lifecycle.is_over() {
            return;
        }
        tracing::error!(call = %self.call, "Realtime backend failed: {why}");
        self.report.backend_failed = true;
        self.report.errors.push(format!("backend: {why}"));
        if self.socket != Socket::Closed {
            self.socket = Socket::Closed;
            self.actions.push_back(Action::CloseSocket);
        }
        if self.lifecycle == Lifecycle::HangingUp {
            return; // Already leaving: nothing to apologise for.
        }
        if !self.answered {
            if self.policy.backend_failure == BackendFailure::Reject {
                self.actions.push_back(Action::Hangup { code: 503 });
                self.lifecycle = Lifecycle::HangingUp;
                return;
            }
            self.actions.push_back(Action::Answer);
        }
        self.lifecycle = Lifecycle::Failing;
        // Whatever the model was saying stops; the apology plays once media is up.
        if self.media {
            self.actions.push_back(Action::Downlink(DownlinkOp::Flush));
        }
        self.playout.clear();
        self.pending_barge_in = None;
        self.pre_media.clear();
        self.play_prompt(Prompt::Apology);
        self.pump(now);
    }

    // ---- inputs: the engine ----

    /// One 20 ms uplink frame (48 kHz). Returns whether an `append` went out for it (so the
    /// driver can time it).
    pub fn handle_uplink(&mut self, now: Instant, samples: &[i16]) -> bool {
        self.caller_level.add(samples);
        if now.saturating_duration_since(self.last_levels) >= LEVEL_INTERVAL {
            self.last_levels = now;
            self.actions.push_back(Action::Publish(LiveEvent::Levels {
                call: self.call.to_string(),
                caller_dbfs: self.caller_level.take_dbfs(),
                agent_dbfs: self.agent_level.take_dbfs(),
            }));
        }
        if !self.session_ready || self.socket != Socket::Open || self.report.backend_failed {
            return false;
        }
        self.up_buf.clear();
        self.up.push(samples, &mut self.up_buf);
        if self.up_buf.is_empty() {
            return false;
        }
        self.actions
            .push_back(Action::Send(ClientEvent::append_audio(&self.up_buf)));
        true
    }

    /// The call's media is up (`has_media`: the engine handed over its audio queues).
    pub fn handle_media_active(&mut self, now: Instant, info: &MediaInfo, has_media: bool) {
        self.report.codec = Some(info.codec.clone());
        self.report.clock_rate = Some(info.clock_rate);
        if !has_media || self.lifecycle.is_over() {
            return;
        }
        self.media = true;
        if self.direction == Direction::Outgoing {
            // The callee answered (or started early media: 183 with SDP).
            self.report.answered_after_ms = Some(self.elapsed_ms(now));
            self.publish(LiveEvent::CallAnswered {
                call: self.call.to_string(),
            });
        }
        let failed = self.report.backend_failed;
        if self.recording_notice && !failed {
            // Queued first: the greeting (already on its way) plays after it.
            self.play_prompt(Prompt::RecordingNotice);
        }
        for output in std::mem::take(&mut self.pre_media) {
            self.carry_out(now, output);
        }
        if failed {
            self.play_prompt(Prompt::Apology);
        }
    }

    /// The engine's audio queues are gone (the uplink closed).
    pub fn handle_media_closed(&mut self) {
        self.media = false;
    }

    pub fn handle_dtmf(&mut self, now: Instant, digit: char) {
        tracing::info!(call = %self.call, %digit, "DTMF");
        if let Err(e) = self.conv.handle_dtmf(now, digit) {
            tracing::debug!(call = %self.call, "DTMF not forwarded: {e}");
        }
        self.pump(now);
    }

    /// Progress of a blind transfer (NOTIFY); `last` is the final status.
    pub fn handle_transfer_status(&mut self, now: Instant, code: u16, reason: &str, last: bool) {
        tracing::info!(call = %self.call, code, %reason, last, "transfer progress");
        if !last {
            return;
        }
        match std::mem::replace(&mut self.lifecycle, Lifecycle::Live) {
            Lifecycle::Transferring { call_id } => {
                let ok = (200..300).contains(&code);
                let output = serde_json::json!({"ok": ok, "status": code, "reason": reason});
                let _ = self
                    .conv
                    .handle_tool_result(now, &call_id, output.to_string());
                if ok {
                    self.hang_up();
                }
            }
            other => {
                self.lifecycle = other;
                if self.lifecycle == Lifecycle::Failing {
                    self.hang_up();
                }
            }
        }
        self.pump(now);
    }

    /// The engine reported the end of the call (`None`: its events stopped, e.g. at shutdown).
    pub fn handle_call_ended(&mut self, now: Instant, end: Option<(u16, &str)>) {
        if let Some((code, reason)) = end {
            self.report.end_reason = format!("{code} {reason}");
        }
        self.media = false;
        if !self.lifecycle.is_over() {
            self.lifecycle = Lifecycle::Ended {
                grace_until: now + self.policy.hangup_grace,
            };
        }
        self.check_done(now);
    }

    /// The engine answered the call (or failed to).
    pub fn handle_answered(&mut self, now: Instant, result: Result<(), String>) {
        let for_apology = self.lifecycle == Lifecycle::Failing;
        match result {
            Ok(()) => {
                self.answered = true;
                self.report.answered_after_ms = Some(self.elapsed_ms(now));
                if !for_apology {
                    tracing::info!(call = %self.call, "session ready; call answered");
                    self.publish(LiveEvent::CallAnswered {
                        call: self.call.to_string(),
                    });
                    if matches!(self.lifecycle, Lifecycle::Answering { .. }) {
                        self.go_live();
                    }
                }
            }
            Err(e) if for_apology => {
                tracing::warn!(call = %self.call, "answering for the apology failed: {e}")
            }
            Err(e) => {
                tracing::warn!(call = %self.call, "answering failed: {e}");
                self.report.errors.push(format!("answer: {e}"));
            }
        }
    }

    /// The engine started the blind transfer asked for with [`Action::Transfer`] (or not).
    pub fn handle_transfer_started(&mut self, now: Instant, result: Result<(), String>) {
        let Lifecycle::Transferring { call_id } = &self.lifecycle else {
            return;
        };
        let call_id = call_id.clone();
        match result {
            Ok(()) => tracing::info!(call = %self.call, "blind transfer requested"),
            Err(e) => {
                self.lifecycle = Lifecycle::Live;
                let output = crate::tools::ToolOutput::error(format!(
                    "the transfer could not be started: {e}"
                ));
                let _ = self
                    .conv
                    .handle_tool_result(now, &call_id, output.to_json_text());
                self.pump(now);
            }
        }
    }

    // ---- inputs: tools ----

    pub fn handle_tool_done(&mut self, now: Instant, done: ToolDone) {
        let started = self.pending_tools.remove(&done.call_id).unwrap_or(now);
        let duration_ms = done.outcome.duration.as_millis() as u64;
        tracing::info!(
            call = %self.call,
            tool = %done.name,
            ok = done.outcome.ok,
            duration_ms,
            "tool finished"
        );
        self.report.tool_calls.push(ToolCallRecord {
            name: done.name.clone(),
            arguments: done.arguments.clone(),
            output: done.outcome.output.clone(),
            ok: done.outcome.ok,
            duration_ms,
            at_ms: started.saturating_duration_since(self.started).as_millis() as u64,
        });
        self.publish(LiveEvent::ToolCall {
            call: self.call.to_string(),
            name: done.name,
            arguments: done.arguments,
            output: done.outcome.output.clone(),
            ok: done.outcome.ok,
            duration_ms,
        });
        if self.hold_playing && self.pending_tools.is_empty() {
            self.stop_prompt();
        }
        if let Err(e) = self
            .conv
            .handle_tool_result(now, &done.call_id, done.outcome.output)
        {
            tracing::warn!(call = %self.call, "tool result not accepted: {e}");
        }
        self.pump(now);
        self.check_done(now);
    }

    // ---- inputs: playback and time ----

    /// Barge-in, phase two: the queue was flushed ([`DownlinkOp::FlushForBargeIn`]); `ledger`
    /// tells what the caller heard of each interrupted item.
    pub fn handle_flushed(&mut self, now: Instant, ledger: &dyn Ledger) {
        if let Some(item_id) = self.pending_barge_in.take() {
            self.report_barge_in(now, &item_id, ledger);
            self.pump(now);
        }
    }

    /// What the engine's ledger says now: items fully heard, the hold sound, and whatever
    /// waited for playback to end (hang-up, transfer, the end of the apology).
    pub fn handle_playout(&mut self, now: Instant, ledger: &dyn Ledger) {
        if self.media {
            while let Some(item) = self.playout.pop_heard(ledger) {
                self.actions
                    .push_back(Action::Downlink(DownlinkOp::Forget { key: item.key }));
                self.conv.handle_playback_drained(now, &item.item_id);
            }
        }
        self.pump(now);

        let drained = !self.media || ledger.drained();
        // Hold sound while a slow tool runs and nothing else plays.
        if !self.report.backend_failed && drained && self.media {
            let slow = self.policy.tool_hold_after.is_some_and(|after| {
                self.pending_tools
                    .values()
                    .any(|t| now.saturating_duration_since(*t) >= after)
            });
            if slow {
                self.hold_playing = true;
                self.play_prompt(Prompt::Hold);
            } else if self.hold_playing && self.pending_tools.is_empty() {
                self.hold_playing = false;
            }
        }
        if drained && self.playout.is_empty() {
            match std::mem::replace(&mut self.lifecycle, Lifecycle::Live) {
                Lifecycle::Draining(AfterPlayout::HangUp) => self.hang_up(),
                Lifecycle::Draining(AfterPlayout::Transfer { call_id }) => {
                    self.transfer(now, call_id)
                }
                Lifecycle::Failing if self.media => self.hang_up(),
                other => self.lifecycle = other,
            }
        }
    }

    /// Time has passed: the conversation's timers, the session deadline, the ring delay, the
    /// grace after a hang-up.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conv.handle_timeout(now);
        match self.lifecycle {
            Lifecycle::Opening { deadline } if now >= deadline => {
                let why = if self.socket == Socket::Connecting {
                    "the Realtime endpoint did not accept the connection in time"
                } else {
                    "no session.updated from the Realtime endpoint in time"
                };
                self.handle_backend_failed(now, why);
            }
            Lifecycle::Answering { at, asked: false } if now >= at => self.answer(),
            _ => {}
        }
        self.pump(now);
        self.check_done(now);
    }

    // ---- the driver's measurements ----

    /// Frame captured by the engine → `append` sent.
    pub fn note_uplink_latency(&mut self, latency: Duration) {
        push_capped(&mut self.report.uplink_latency_us, latency);
    }

    /// Delta received → handed to the engine's queue.
    pub fn note_downlink_latency(&mut self, latency: Duration) {
        push_capped(&mut self.report.downlink_latency_us, latency);
    }

    /// Delta received → its first sample handed to PJSIP, for deltas that start playback.
    pub fn note_play_latency(&mut self, latency: Duration) {
        push_capped(&mut self.report.downlink_play_latency_us, latency);
    }

    /// The call's record, with its duration and transcript. The driver closes the socket.
    pub fn finish(mut self, now: Instant) -> CallReport {
        self.report.duration_ms = self.elapsed_ms(now);
        self.report.transcript = self.conv.transcript().clone();
        self.report
    }

    // ---- the conversation's outputs ----

    /// Carries out everything the conversation asks for.
    fn pump(&mut self, now: Instant) {
        while let Some(output) = self.conv.poll_output() {
            self.carry_out(now, output);
        }
        self.publish_transcript();
    }

    fn carry_out(&mut self, now: Instant, output: Output) {
        match output {
            Output::Send(event) => {
                if self.socket == Socket::Open {
                    self.actions.push_back(Action::Send(event));
                }
            }
            Output::PlayAudio { .. } | Output::AudioEnd { .. } if !self.media => {
                if !self.lifecycle.is_over() {
                    self.pre_media.push(output);
                }
            }
            Output::PlayAudio { item_id, samples } => self.play(now, item_id, &samples),
            Output::AudioEnd { item_id } => {
                if let Some((key, tail)) = self.playout.end(&item_id) {
                    if !tail.is_empty() {
                        self.downlink(DownlinkOp::Push {
                            key,
                            pcm: tail,
                            received: None,
                        });
                    }
                    self.downlink(DownlinkOp::End { key });
                }
            }
            Output::FlushPlayback { item_id } => {
                self.report.barge_ins += 1;
                if self.media {
                    self.downlink(DownlinkOp::FlushForBargeIn);
                    self.pending_barge_in = Some(item_id);
                } else {
                    self.report_barge_in(now, &item_id, &NoMedia);
                }
            }
            Output::RunTool {
                call_id,
                name,
                arguments,
            } => {
                tracing::info!(call = %self.call, tool = %name, %arguments, "tool call");
                self.pending_tools.insert(call_id.clone(), now);
                self.actions.push_back(Action::RunTool {
                    call_id,
                    name,
                    arguments,
                });
            }
            Output::HangUpAfterPlayback => self.after_playout(AfterPlayout::HangUp),
            Output::TransferAfterPlayback { call_id, .. } => {
                self.after_playout(AfterPlayout::Transfer { call_id })
            }
            Output::SessionReady => self.on_session_ready(now),
            Output::SessionMismatch(mismatches) => {
                for m in mismatches {
                    tracing::warn!(
                        call = %self.call,
                        field = m.field,
                        wanted = %m.wanted,
                        got = %m.got,
                        fatal = m.fatal,
                        "session.updated differs from the request"
                    );
                }
            }
            Output::ServerError(e) => {
                let code = e.code.clone().unwrap_or_else(|| "-".into());
                if e.is_benign() {
                    tracing::debug!(call = %self.call, %code, "Realtime error (benign): {}", e.message);
                } else {
                    tracing::warn!(call = %self.call, %code, "Realtime error: {}", e.message);
                    self.report
                        .errors
                        .push(format!("realtime {code}: {}", e.message));
                }
            }
            Output::MalformedEvent { event_type, detail } => {
                tracing::warn!(call = %self.call, %event_type, "malformed Realtime event: {detail}");
            }
            Output::UnknownEventType(kind) => {
                tracing::debug!(call = %self.call, %kind, "unknown Realtime event type ignored");
            }
            Output::Fatal(e) => self.handle_backend_failed(now, &e.to_string()),
        }
    }

    fn on_session_ready(&mut self, now: Instant) {
        self.session_ready = true;
        if !matches!(self.lifecycle, Lifecycle::Opening { .. }) {
            return;
        }
        if self.answered {
            self.go_live();
            return;
        }
        let at = self.started + self.policy.ring_delay;
        self.lifecycle = Lifecycle::Answering { at, asked: false };
        if now >= at {
            self.answer();
        }
    }

    /// The model is done: drain, then hang up or transfer (once live, if it is not yet).
    fn after_playout(&mut self, then: AfterPlayout) {
        match self.lifecycle {
            Lifecycle::Live | Lifecycle::Draining(_) | Lifecycle::Transferring { .. } => {
                self.lifecycle = Lifecycle::Draining(then)
            }
            Lifecycle::Opening { .. } | Lifecycle::Answering { .. } => {
                self.after_answer = Some(then)
            }
            _ => {}
        }
    }

    /// The call is live: the conversation runs (or drains, if the model already ended it).
    fn go_live(&mut self) {
        self.lifecycle = match self.after_answer.take() {
            Some(then) => Lifecycle::Draining(then),
            None => Lifecycle::Live,
        };
    }

    fn answer(&mut self) {
        if let Lifecycle::Answering { asked, .. } = &mut self.lifecycle {
            *asked = true;
            self.actions.push_back(Action::Answer);
        }
    }

    fn play(&mut self, received: Instant, item_id: String, samples: &[i16]) {
        if self.hold_playing {
            self.stop_prompt();
        }
        if self.playout.is_new(&item_id) {
            if let Some(stopped) = self.speech_stopped_at.take() {
                // End of the caller's turn (as the server's VAD saw it) → first answer audio.
                self.publish(LiveEvent::TurnLatency {
                    call: self.call.to_string(),
                    ms: received.saturating_duration_since(stopped).as_millis() as u64,
                });
            }
        }
        let (key, pcm) = self.playout.play(item_id, samples);
        self.agent_level.add(&pcm);
        if !pcm.is_empty() {
            self.downlink(DownlinkOp::Push {
                key,
                pcm,
                received: Some(received),
            });
        }
    }

    /// Reports every interrupted item (what the caller heard of it) to the conversation, the
    /// report and the live bus.
    fn report_barge_in(&mut self, now: Instant, item_id: &str, ledger: &dyn Ledger) {
        let mut reported_target = false;
        for item in self.playout.interrupt(item_id) {
            let heard_24k = ledger.played(item.key).min(ledger.received(item.key)) / 2;
            tracing::info!(
                call = %self.call,
                item = %item.item_id,
                heard_ms = heard_24k / 24,
                received_ms = ledger.received(item.key) / 48,
                "barge-in: playback flushed"
            );
            self.report
                .truncations
                .push((item.item_id.clone(), heard_24k / 24));
            self.publish(LiveEvent::BargeIn {
                call: self.call.to_string(),
                item_id: item.item_id.clone(),
                heard_ms: heard_24k / 24,
            });
            reported_target |= item.item_id == item_id;
            self.conv
                .handle_playback_flushed(now, &item.item_id, heard_24k);
            self.downlink(DownlinkOp::Forget { key: item.key });
        }
        if !reported_target {
            // Nothing of it reached the engine yet (e.g. still before media).
            self.pre_media.clear();
            self.conv.handle_playback_flushed(now, item_id, 0);
        }
    }

    fn transfer(&mut self, now: Instant, call_id: String) {
        match self.policy.transfer_target.clone() {
            Some(target) => {
                self.lifecycle = Lifecycle::Transferring { call_id };
                tracing::info!(call = %self.call, %target, "blind transfer");
                self.actions.push_back(Action::Transfer { target });
            }
            None => {
                let output = crate::tools::ToolOutput::error(
                    "no transfer target is configured (TRANSFER_TARGET); offer a callback instead",
                );
                let _ = self
                    .conv
                    .handle_tool_result(now, &call_id, output.to_json_text());
                self.pump(now);
            }
        }
    }

    fn hang_up(&mut self) {
        if matches!(self.lifecycle, Lifecycle::HangingUp) || self.lifecycle.is_over() {
            return;
        }
        self.lifecycle = Lifecycle::HangingUp;
        self.actions.push_back(Action::Hangup { code: 0 });
    }

    fn check_done(&mut self, now: Instant) {
        if let Lifecycle::Ended { grace_until } = self.lifecycle {
            if self.pending_tools.is_empty() || now >= grace_until {
                self.lifecycle = Lifecycle::Done;
            }
        }
    }

    fn play_prompt(&mut self, prompt: Prompt) {
        if self.media {
            self.downlink(DownlinkOp::Prompt(prompt));
        }
    }

    fn stop_prompt(&mut self) {
        if self.media {
            self.downlink(DownlinkOp::StopPrompt);
        }
        self.hold_playing = false;
    }

    fn downlink(&mut self, op: DownlinkOp) {
        self.actions.push_back(Action::Downlink(op));
    }

    fn publish(&mut self, event: LiveEvent) {
        self.actions.push_back(Action::Publish(event));
    }

    /// Publishes transcript lines the conversation added since the last call.
    fn publish_transcript(&mut self) {
        let entries = &self.conv.transcript().entries;
        if entries.len() == self.published {
            return;
        }
        let mut lines = Vec::new();
        for entry in entries.iter().skip(self.published) {
            let (speaker, text) = match &entry.event {
                TranscriptEvent::Caller { text, .. } => ("caller", text),
                TranscriptEvent::Agent { text, .. } => ("agent", text),
                _ => continue,
            };
            lines.push(LiveEvent::Transcript {
                call: self.call.to_string(),
                speaker,
                text: text.clone(),
                at_ms: entry.at_ms,
            });
        }
        self.published = entries.len();
        for line in lines {
            self.publish(line);
        }
    }

    fn elapsed_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }
}

fn push_capped(values: &mut Vec<u32>, latency: Duration) {
    if values.len() < LATENCY_SAMPLES {
        values.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }
}
