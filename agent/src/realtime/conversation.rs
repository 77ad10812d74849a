//! The per-call Realtime conversation as an I/O-free state machine (str0m style).
//!
//! The bridge feeds it inputs (`handle_*`, each with the current [`Instant`]) and carries out
//! whatever [`Conversation::poll_output`] returns until it yields `None`. No socket, clock or
//! task lives here, so every protocol edge case is a plain unit test.
//!
//! Rules it enforces, and why:
//! - **One active response** (reference §11.3). A `response.create` is only sent when no response
//!   is active (between `response.created` and `response.done`), none of ours is in flight, and
//!   the caller is not mid-turn (server VAD is about to create one itself). Otherwise it is
//!   queued; requests coalesce into one. Function results are sent at once and never dropped;
//!   only the follow-up `response.create` waits. If the server still rejects one (its VAD response
//!   crossed ours on the wire), it is re-queued rather than lost.
//! - **Barge-in in two phases** (§10.2). On `speech_started` while assistant audio is queued, the
//!   machine emits [`Output::FlushPlayback`]; the bridge flushes and reports how many samples were
//!   heard; only then is `conversation.item.truncate` sent, clamped to the audio received for
//!   that item and skipped when pointless (no audio yet, fully played, unknown item). Late deltas
//!   of the interrupted item/response are dropped.
//! - **Tolerance** (§7). Unknown events are counted and reported once per type; `error` events
//!   are surfaced with their code; only a rejected/unusable session or a fatal server code stops
//!   the conversation.
//!
//! One `Conversation` per call: all state starts fresh with the call.

mod config;
mod output;
mod session_check;
mod transcript;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub use config::{
    ConversationConfig, Greeting, ToolDefinition, ToolKind, END_CALL_TOOL, TRANSFER_CALL_TOOL,
};
pub use output::{ErrorReport, FatalError, Output, SessionMismatch};
pub use transcript::{Transcript, TranscriptEntry, TranscriptEvent};

use session_check::session_mismatches;

use crate::realtime::wire::audio::{samples_to_ms_floor, samples_to_ms_round};
use crate::realtime::wire::{
    decode_pcm16, ClientEvent, ErrorDetails, InputItem, Item, ParseError, ResponseParams,
    ServerEvent, Session,
};

/// How long after `speech_stopped` we wait for the server's own VAD response before sending a
/// queued `response.create` anyway.
pub const VAD_RESPONSE_GRACE: Duration = Duration::from_secs(2);

/// Server error codes after which the session is gone (reference §2.3, §13.2).
const FATAL_ERROR_CODES: &[&str] = &[
    "session_expired",
    "beta_api_shape_disabled",
    "missing_model",
];

/// How many of our sent event ids are remembered to label server errors.
const SENT_EVENT_MEMORY: usize = 64;

/// Where the session configuration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for `session.created` before sending our `session.update`.
    AwaitingCreated,
    /// `session.update` sent, waiting for `session.updated`.
    AwaitingUpdated,
    Ready,
    Failed,
}

/// A caller DTMF input that is not a keypad key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{0:?} is not a DTMF key (expected 0-9, *, #, A-D)")]
    InvalidDtmf(char),
    #[error("no tool call {0:?} is waiting for a result")]
    UnknownToolCall(String),
}

/// Assistant audio handed to the bridge and not yet known to be fully played.
#[derive(Debug)]
struct AudioItem {
    item_id: String,
    response_id: String,
    received_samples: u64,
    /// Barge-in happened; waiting for `handle_playback_flushed`.
    awaiting_flush_report: bool,
}

#[derive(Debug)]
struct ToolCall {
    started: Instant,
    answered: bool,
}

/// What to do when a response that contained a built-in tool call is done.
#[derive(Debug)]
enum AfterResponse {
    HangUp,
    Transfer { call_id: String, arguments: String },
}

/// The conversation of one call. See the module docs for the rules it enforces.
#[derive(Debug)]
pub struct Conversation {
    config: ConversationConfig,
    started: Instant,
    outputs: VecDeque<Output>,
    session_state: SessionState,
    next_event_seq: u64,
    sent_events: VecDeque<(String, &'static str)>,
    session_update_id: Option<String>,
    /// Our recent `response.create`s, by event id, so a rejected one can be re-queued.
    sent_creates: VecDeque<(String, Option<ResponseParams>)>,
    active_response: Option<String>,
    create_in_flight: bool,
    pending_response: Option<Option<ResponseParams>>,
    /// Items created before the session was ready; sent right after `session.updated`.
    deferred_items: Vec<InputItem>,
    caller_speaking: bool,
    vad_response_deadline: Option<Instant>,
    audio_items: Vec<AudioItem>,
    interrupted_items: HashSet<String>,
    interrupted_responses: HashSet<String>,
    heard_ms: HashMap<String, u64>,
    tool_calls: HashMap<String, ToolCall>,
    after_response: Vec<(String, AfterResponse)>,
    ending: bool,
    transcript: Transcript,
    unknown_events: u64,
    unknown_types: HashSet<String>,
    malformed_events: u64,
    dropped_audio_deltas: u64,
}

impl Conversation {
    /// A fresh conversation for one call, started at `now`.
    pub fn new(config: ConversationConfig, now: Instant) -> Self {
        Conversation {
            config,
            started: now,
            outputs: VecDeque::new(),
            session_state: SessionState::AwaitingCreated,
            next_event_seq: 0,
            sent_events: VecDeque::new(),
            session_update_id: None,
            sent_creates: VecDeque::new(),
            active_response: None,
            create_in_flight: false,
            pending_response: None,
            deferred_items: Vec::new(),
            caller_speaking: false,
            vad_response_deadline: None,
            audio_items: Vec::new(),
            interrupted_items: HashSet::new(),
            interrupted_responses: HashSet::new(),
            heard_ms: HashMap::new(),
            tool_calls: HashMap::new(),
            after_response: Vec::new(),
            ending: false,
            transcript: Transcript::default(),
            unknown_events: 0,
            unknown_types: HashSet::new(),
            malformed_events: 0,
            dropped_audio_deltas: 0,
        }
    }

    /// The next thing the bridge must do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Conversation::handle_timeout`] wants to be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.vad_response_deadline
    }

    /// Time has passed; lets a queued `response.create` go out when the server's VAD did not
    /// create a response after the caller's turn.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .vad_response_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            self.vad_response_deadline = None;
            self.maybe_send_response();
        }
    }

    /// One text frame from the server. Unparseable frames are reported, never fatal.
    pub fn handle_server_text(&mut self, now: Instant, text: &str) {
        match ServerEvent::parse(text) {
            Ok(event) => self.handle_server_event(now, event),
            Err(e) => self.handle_parse_error(e),
        }
    }

    /// A server frame its reader could not parse (for a driver that parses frames itself, to
    /// look at the typed event first). Reported, never fatal.
    pub fn handle_parse_error(&mut self, error: ParseError) {
        match error {
            ParseError::NotAnEvent(detail) => self.malformed(String::new(), detail),
            ParseError::Malformed { event_type, source } => {
                self.malformed(event_type, source.to_string())
            }
        }
    }

    /// One parsed server event.
    pub fn handle_server_event(&mut self, now: Instant, event: ServerEvent) {
        match event {
            ServerEvent::SessionCreated { .. } => self.on_session_created(),
            ServerEvent::SessionUpdated { session } => self.on_session_updated(&session),
            ServerEvent::SpeechStarted { .. } => self.on_speech_started(),
            ServerEvent::SpeechStopped { .. } => self.on_speech_stopped(now),
            ServerEvent::InputTranscriptionCompleted {
                item_id,
                transcript,
                ..
            } => {
                let at = self.elapsed_ms(now);
                self.transcript.push(
                    at,
                    TranscriptEvent::Caller {
                        item_id,
                        text: transcript,
                    },
                );
            }
            ServerEvent::InputTranscriptionFailed { error, .. } => {
                let report = self.error_report(error);
                self.outputs.push_back(Output::ServerError(report));
            }
            ServerEvent::ResponseCreated { response } => {
                self.active_response = Some(response.id);
                self.create_in_flight = false;
                self.vad_response_deadline = None;
            }
            ServerEvent::ResponseOutputAudioDelta {
                response_id,
                item_id,
                delta,
                ..
            } => self.on_audio_delta(response_id, item_id, &delta),
            ServerEvent::ResponseOutputAudioDone { item_id, .. } => {
                if !self.interrupted_items.contains(&item_id)
                    && self.audio_items.iter().any(|item| item.item_id == item_id)
                {
                    self.outputs.push_back(Output::AudioEnd { item_id });
                }
            }
            ServerEvent::ResponseOutputAudioTranscriptDone {
                item_id,
                transcript,
                ..
            } => {
                let at = self.elapsed_ms(now);
                let heard_ms = self.heard_ms.get(&item_id).copied();
                self.transcript.push(
                    at,
                    TranscriptEvent::Agent {
                        item_id,
                        text: transcript,
                        heard_ms,
                    },
                );
            }
            ServerEvent::ResponseFunctionCallArgumentsDone {
                response_id,
                call_id,
                name,
                arguments,
                ..
            } => {
                // Without a name (beta shape) `response.output_item.done` still carries it.
                if let Some(name) = name {
                    self.on_function_call(now, response_id, call_id, name, arguments);
                }
            }
            ServerEvent::ResponseOutputItemDone {
                response_id,
                item:
                    Item::FunctionCall {
                        name,
                        call_id,
                        arguments,
                        ..
                    },
                ..
            } => self.on_function_call(now, response_id, call_id, name, arguments),
            ServerEvent::ResponseDone { response } => self.on_response_done(&response.id),
            ServerEvent::Error { error, .. } => self.on_error(error),
            ServerEvent::Unknown { event_type } => {
                self.unknown_events += 1;
                if self.unknown_types.insert(event_type.clone()) {
                    self.outputs.push_back(Output::UnknownEventType(event_type));
                }
            }
            // Known and harmless: nothing in them changes what we do.
            ServerEvent::InputAudioBufferCommitted { .. }
            | ServerEvent::InputAudioBufferCleared {}
            | ServerEvent::ConversationItemAdded { .. }
            | ServerEvent::ConversationItemDone { .. }
            | ServerEvent::ConversationItemTruncated { .. }
            | ServerEvent::InputTranscriptionDelta { .. }
            | ServerEvent::ResponseOutputItemAdded { .. }
            | ServerEvent::ResponseOutputItemDone { .. }
            | ServerEvent::ResponseContentPartAdded { .. }
            | ServerEvent::ResponseContentPartDone { .. }
            | ServerEvent::ResponseOutputAudioTranscriptDelta { .. }
            | ServerEvent::ResponseFunctionCallArgumentsDelta { .. }
            | ServerEvent::RateLimitsUpdated { .. } => {}
        }
    }

    /// The caller pressed a keypad key: tell the model as a user text item and ask it to answer.
    pub fn handle_dtmf(&mut self, now: Instant, digit: char) -> Result<(), InputError> {
        let digit = digit.to_ascii_uppercase();
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
            return Err(InputError::InvalidDtmf(digit));
        }
        let at = self.elapsed_ms(now);
        self.transcript.push(at, TranscriptEvent::Dtmf { digit });
        if self.ending || self.session_state == SessionState::Failed {
            return Ok(());
        }
        let text = format!("[DTMF] The caller pressed the key \"{digit}\" on the phone keypad.");
        let item = InputItem::user_text(text);
        if self.session_state == SessionState::Ready {
            self.send_item(item);
        } else {
            self.deferred_items.push(item);
        }
        self.request_response(None);
        Ok(())
    }

    /// A tool finished (or failed: errors are outputs too). The output is sent at once; the
    /// follow-up `response.create` waits for any active response to finish.
    pub fn handle_tool_result(
        &mut self,
        now: Instant,
        call_id: &str,
        output: impl Into<String>,
    ) -> Result<(), InputError> {
        let output = output.into();
        let call = match self.tool_calls.get_mut(call_id) {
            Some(call) if !call.answered => call,
            _ => return Err(InputError::UnknownToolCall(call_id.to_owned())),
        };
        call.answered = true;
        let duration_ms = duration_ms(now.saturating_duration_since(call.started));
        self.transcript
            .set_tool_output(call_id, &output, duration_ms);
        self.send_item(InputItem::FunctionCallOutput {
            call_id: call_id.to_owned(),
            output,
        });
        if !self.ending {
            self.request_response(None);
        }
        Ok(())
    }

    /// Barge-in, phase two: the bridge flushed playback and the caller heard `played_samples`
    /// (24 kHz) of `item_id`. Sends the truncate when it is needed.
    pub fn handle_playback_flushed(&mut self, _now: Instant, item_id: &str, played_samples: u64) {
        let Some(index) = self
            .audio_items
            .iter()
            .position(|item| item.item_id == item_id && item.awaiting_flush_report)
        else {
            return; // Unknown, already drained or already truncated: nothing to cut.
        };
        let item = self.audio_items.remove(index);
        let still_generating = self.active_response.as_deref() == Some(&item.response_id);
        if item.received_samples == 0
            || (played_samples >= item.received_samples && !still_generating)
        {
            return; // No audio to cut, or the caller heard all of it (reference §10.2.3).
        }
        let audio_end_ms =
            samples_to_ms_round(played_samples).min(samples_to_ms_floor(item.received_samples));
        let audio_end_ms = u32::try_from(audio_end_ms).unwrap_or(u32::MAX);
        self.heard_ms
            .insert(item.item_id.clone(), u64::from(audio_end_ms));
        self.transcript
            .set_heard(&item.item_id, u64::from(audio_end_ms));
        let event_id = self.next_event_id();
        self.send(ClientEvent::ConversationItemTruncate {
            event_id: Some(event_id),
            item_id: item.item_id,
            content_index: 0,
            audio_end_ms,
        });
    }

    /// Every sample of `item_id` has been played.
    pub fn handle_playback_drained(&mut self, _now: Instant, item_id: &str) {
        self.audio_items
            .retain(|item| item.item_id != item_id || item.awaiting_flush_report);
    }

    /// The record of the call so far.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// Server events of unknown type seen so far.
    pub fn unknown_events(&self) -> u64 {
        self.unknown_events
    }

    /// Server frames that could not be understood.
    pub fn malformed_events(&self) -> u64 {
        self.malformed_events
    }

    /// Audio deltas dropped because their item or response was interrupted.
    pub fn dropped_audio_deltas(&self) -> u64 {
        self.dropped_audio_deltas
    }

    pub fn session_state(&self) -> SessionState {
        self.session_state
    }

    /// The response the server is generating, if any.
    pub fn active_response(&self) -> Option<&str> {
        self.active_response.as_deref()
    }

    /// Whether assistant audio has been handed out and is not known to be played or flushed.
    pub fn is_playing(&self) -> bool {
        self.audio_items
            .iter()
            .any(|item| !item.awaiting_flush_report && item.received_samples > 0)
    }

    pub fn config(&self) -> &ConversationConfig {
        &self.config
    }

    // ---- session ----

    fn on_session_created(&mut self) {
        if self.session_state != SessionState::AwaitingCreated {
            return;
        }
        let event_id = self.next_event_id();
        self.session_update_id = Some(event_id.clone());
        self.session_state = SessionState::AwaitingUpdated;
        self.send(ClientEvent::SessionUpdate {
            event_id: Some(event_id),
            session: Box::new(self.config.session()),
        });
    }

    fn on_session_updated(&mut self, echo: &Session) {
        if self.session_state != SessionState::AwaitingUpdated {
            return;
        }
        let mismatches = session_mismatches(&self.config, echo);
        let fatal = mismatches.iter().any(|m| m.fatal);
        if !mismatches.is_empty() {
            self.outputs
                .push_back(Output::SessionMismatch(mismatches.clone()));
        }
        if fatal {
            self.fail(FatalError::SessionMismatch(
                mismatches.into_iter().filter(|m| m.fatal).collect(),
            ));
            return;
        }
        self.session_state = SessionState::Ready;
        self.outputs.push_back(Output::SessionReady);
        for item in std::mem::take(&mut self.deferred_items) {
            self.send_item(item);
        }
        if let Greeting::Model { extra } = &self.config.greeting {
            let params = extra.as_ref().map(|extra| ResponseParams {
                instructions: Some(format!("{}\n\n{extra}", self.config.instructions)),
                ..ResponseParams::default()
            });
            self.request_response(params);
        } else {
            self.maybe_send_response();
        }
    }

    // ---- caller turns and barge-in ----

    fn on_speech_started(&mut self) {
        self.caller_speaking = true;
        self.vad_response_deadline = None;
        if !self.config.barge_in_enabled() {
            return;
        }
        // The server cancels the response it is generating; anything still on the wire for it
        // must not be played.
        if let Some(response) = &self.active_response {
            self.interrupted_responses.insert(response.clone());
        }
        let mut first = None;
        for item in &mut self.audio_items {
            if item.awaiting_flush_report || item.received_samples == 0 {
                continue;
            }
            item.awaiting_flush_report = true;
            self.interrupted_items.insert(item.item_id.clone());
            first.get_or_insert_with(|| item.item_id.clone());
        }
        if let Some(item_id) = first {
            self.outputs.push_back(Output::FlushPlayback { item_id });
        }
    }

    fn on_speech_stopped(&mut self, now: Instant) {
        self.caller_speaking = false;
        if self.config.server_creates_responses() {
            self.vad_response_deadline = Some(now + VAD_RESPONSE_GRACE);
        } else {
            self.maybe_send_response();
        }
    }

    fn on_audio_delta(&mut self, response_id: String, item_id: String, delta: &str) {
        if self.interrupted_items.contains(&item_id)
            || self.interrupted_responses.contains(&response_id)
        {
            self.interrupted_items.insert(item_id);
            self.dropped_audio_deltas += 1;
            return;
        }
        let samples = match decode_pcm16(delta) {
            Ok(samples) => samples,
            Err(e) => {
                self.malformed("response.output_audio.delta".into(), e.to_string());
                return;
            }
        };
        if samples.is_empty() {
            return;
        }
        let count = samples.len() as u64;
        match self
            .audio_items
            .iter_mut()
            .find(|item| item.item_id == item_id)
        {
            Some(item) => item.received_samples += count,
            None => self.audio_items.push(AudioItem {
                item_id: item_id.clone(),
                response_id,
                received_samples: count,
                awaiting_flush_report: false,
            }),
        }
        self.outputs
            .push_back(Output::PlayAudio { item_id, samples });
    }

    // ---- responses and tools ----

    fn on_response_done(&mut self, response_id: &str) {
        if self.active_response.as_deref() == Some(response_id) {
            self.active_response = None;
        }
        self.interrupted_responses.remove(response_id);
        let (now_due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.after_response)
            .into_iter()
            .partition(|(response, _)| response == response_id);
        self.after_response = later;
        for (_, action) in now_due {
            self.run_after_response(action);
        }
        self.maybe_send_response();
    }

    fn on_function_call(
        &mut self,
        now: Instant,
        response_id: String,
        call_id: String,
        name: String,
        arguments: String,
    ) {
        if self.tool_calls.contains_key(&call_id) {
            return; // Seen in `arguments.done` already; `output_item.done` repeats it.
        }
        let kind = self.config.tool(&name).map(|tool| tool.kind);
        let at = self.elapsed_ms(now);
        self.transcript.push(
            at,
            TranscriptEvent::Tool {
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
                output: None,
                duration_ms: None,
            },
        );
        self.tool_calls.insert(
            call_id.clone(),
            ToolCall {
                started: now,
                answered: false,
            },
        );
        match kind {
            None => {
                let output = serde_json::json!({ "error": format!("unknown tool {name:?}") });
                // Cannot fail: the call was registered just above.
                let _ = self.handle_tool_result(now, &call_id, output.to_string());
            }
            Some(ToolKind::External) => self.outputs.push_back(Output::RunTool {
                call_id,
                name,
                arguments,
            }),
            Some(ToolKind::EndCall) => {
                self.ending = true;
                self.pending_response = None;
                let _ = self.handle_tool_result(now, &call_id, r#"{"ok":true}"#);
                self.after(response_id, AfterResponse::HangUp);
            }
            Some(ToolKind::TransferCall) => {
                self.after(response_id, AfterResponse::Transfer { call_id, arguments })
            }
        }
    }

    /// Runs `action` when `response_id` is done, so all of that response's audio (the goodbye,
    /// "I'll connect you") has been handed to playback first.
    fn after(&mut self, response_id: String, action: AfterResponse) {
        if self.active_response.as_deref() == Some(&response_id) {
            self.after_response.push((response_id, action));
        } else {
            self.run_after_response(action);
        }
    }

    fn run_after_response(&mut self, action: AfterResponse) {
        self.outputs.push_back(match action {
            AfterResponse::HangUp => Output::HangUpAfterPlayback,
            AfterResponse::Transfer { call_id, arguments } => {
                Output::TransferAfterPlayback { call_id, arguments }
            }
        });
    }

    fn request_response(&mut self, params: Option<ResponseParams>) {
        match &mut self.pending_response {
            // Requests coalesce; the first one's parameters (e.g. the greeting) win.
            Some(existing) => {
                if existing.is_none() {
                    *existing = params;
                }
            }
            None => self.pending_response = Some(params),
        }
        self.maybe_send_response();
    }

    fn maybe_send_response(&mut self) {
        if self.pending_response.is_none()
            || self.session_state != SessionState::Ready
            || self.ending
            || self.active_response.is_some()
            || self.create_in_flight
            || self.caller_speaking
            || self.vad_response_deadline.is_some()
        {
            return;
        }
        let params = self.pending_response.take().flatten();
        let event_id = self.next_event_id();
        self.create_in_flight = true;
        self.sent_creates
            .push_back((event_id.clone(), params.clone()));
        if self.sent_creates.len() > SENT_EVENT_MEMORY {
            self.sent_creates.pop_front();
        }
        self.send(ClientEvent::ResponseCreate {
            event_id: Some(event_id),
            response: params,
        });
    }

    // ---- errors ----

    fn on_error(&mut self, error: ErrorDetails) {
        let report = self.error_report(error);
        let client_event_id = report.client_event_id.clone();
        let code = report.code.clone();
        let message = report.message.clone();
        self.outputs.push_back(Output::ServerError(report));

        if let Some(id) = &client_event_id {
            if self.session_update_id.as_deref() == Some(id.as_str())
                && self.session_state == SessionState::AwaitingUpdated
            {
                self.fail(FatalError::SessionRejected { code, message });
                return;
            }
            if let Some(index) = self.sent_creates.iter().position(|(sent, _)| sent == id) {
                // Our response.create was rejected (typically it crossed a VAD response on the
                // wire). Keep the request: it goes out after the active response is done.
                let (_, params) = self.sent_creates.remove(index).unwrap_or_default();
                self.create_in_flight = false;
                if code.as_deref() == Some("conversation_already_has_active_response") {
                    // The server emits this while the other response is active, after its
                    // `response.created`, so the request waits for that response's done.
                    self.request_response(params);
                }
                return;
            }
        }
        if let Some(code) = code {
            if FATAL_ERROR_CODES.contains(&code.as_str()) {
                self.fail(FatalError::Server { code, message });
            }
        }
    }

    fn error_report(&self, error: ErrorDetails) -> ErrorReport {
        let client_event_type = error.event_id.as_ref().and_then(|id| {
            self.sent_events
                .iter()
                .find(|(sent, _)| sent == id)
                .map(|(_, kind)| *kind)
        });
        ErrorReport {
            code: error.code,
            message: error.message,
            kind: error.kind,
            param: error.param,
            client_event_id: error.event_id,
            client_event_type,
        }
    }

    fn fail(&mut self, error: FatalError) {
        self.session_state = SessionState::Failed;
        self.pending_response = None;
        self.outputs.push_back(Output::Fatal(error));
    }

    fn malformed(&mut self, event_type: String, detail: String) {
        self.malformed_events += 1;
        self.outputs
            .push_back(Output::MalformedEvent { event_type, detail });
    }

    // ---- plumbing ----

    fn send_item(&mut self, item: InputItem) {
        let event_id = self.next_event_id();
        self.send(ClientEvent::ConversationItemCreate {
            event_id: Some(event_id),
            previous_item_id: None,
            item,
        });
    }

    fn send(&mut self, event: ClientEvent) {
        if let Some(id) = event.event_id() {
            self.sent_events
                .push_back((id.to_owned(), event.event_type()));
            if self.sent_events.len() > SENT_EVENT_MEMORY {
                self.sent_events.pop_front();
            }
        }
        self.outputs.push_back(Output::Send(event));
    }

    fn next_event_id(&mut self) -> String {
        self.next_event_seq += 1;
        format!("va_{}", self.next_event_seq)
    }

    fn elapsed_ms(&self, now: Instant) -> u64 {
        duration_ms(now.saturating_duration_since(self.started))
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
