//! The per-connection Realtime session, as a state machine without I/O.
//!
//! The WebSocket task feeds it client frames and the current time and sends whatever
//! [`Session::poll_output`] returns; it sleeps until [`Session::next_deadline`] when nothing is
//! due. All protocol decisions (VAD turns, the one-active-response rule, barge-in cancellation,
//! truncation checks, function calls, pacing of audio deltas, injected faults) live here, so
//! every edge case is a fast unit test with a synthetic clock (house style 13).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::protocol::{
    check_fields, decode_pcm16, encode_pcm16, parse_client_event, ApiError, ClientEvent, IdGen,
};
use super::record::{ClientEventRecord, ItemAudio, Recorder, SessionEnd, TruncateRecord};
use super::script::{Fault, ReplyKind, Script};
use super::session_config::{is_beta_shaped, tools_allow, validate_max_tokens, SessionConfig};
use super::vad::{EnergyVad, VadEvent, SAMPLES_PER_MS};
use super::Pacing;

/// Chunk sizes of successive audio deltas (ms), cycled: real deltas vary in size (§4.4).
const CHUNK_MS: [u64; 4] = [40, 100, 160, 60];
/// Minimum audio for a manual commit (§13: `input_audio_buffer_commit_empty`).
const MIN_COMMIT_MS: u64 = 100;

/// Connection facts the session needs, taken from the HTTP upgrade.
#[derive(Debug, Clone)]
pub(crate) struct SessionParams {
    pub model: Option<String>,
    pub beta_header: bool,
    pub pacing: Pacing,
    pub max_duration: Duration,
    pub seed: u64,
    /// Wall-clock seconds at connect, for `expires_at`.
    pub unix_now: u64,
}

/// What the WebSocket task must do next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    Send(Value),
    Close {
        code: u16,
        reason: String,
    },
    /// Drop the TCP connection without a close frame (fault injection).
    Disconnect,
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    /// The GA item object without audio bytes.
    json: Value,
    /// User input audio or assistant output audio actually sent (PCM16 24 kHz).
    audio: Vec<i16>,
}

impl Item {
    fn is_assistant_audio(&self) -> bool {
        self.json["role"] == "assistant" && self.json["content"][0]["type"] == "output_audio"
    }
}

#[derive(Debug, Clone)]
enum Body {
    Audio {
        pcm: Arc<[i16]>,
        transcript: String,
    },
    Text {
        text: String,
    },
    Call {
        name: String,
        arguments: String,
        call_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Completed,
    Cancelled(&'static str),
    Failed,
}

#[derive(Debug)]
struct ActiveResponse {
    id: String,
    item_id: String,
    previous_item_id: Option<String>,
    body: Body,
    fault: Option<Fault>,
    start_at: Instant,
    opened_at: Option<Instant>,
    sent_samples: usize,
    sent_chars: usize,
    chunk: usize,
    /// The response object fields that stay fixed (modalities, audio, metadata).
    shape: Value,
}

impl ActiveResponse {
    fn transcript(&self) -> &str {
        match &self.body {
            Body::Audio { transcript, .. } => transcript,
            Body::Text { text } => text,
            Body::Call { .. } => "",
        }
    }
}

/// One WebSocket session's protocol state.
pub(crate) struct Session {
    ids: IdGen,
    config: SessionConfig,
    conversation_id: String,
    script: Script,
    recorder: Recorder,
    pacing: Pacing,
    out: VecDeque<Output>,
    closed: bool,
    expires_at: Instant,
    max_duration: Duration,
    vad: Option<EnergyVad>,
    audio_total: u64,
    buffer: Vec<i16>,
    buffer_start: u64,
    speech: Option<(String, u64)>,
    items: Vec<Item>,
    active: Option<ActiveResponse>,
    assistant_audio_sent: bool,
    any_response: bool,
    last_user_audio: Arc<[i16]>,
    last_user_transcript: Option<String>,
    call_ids: HashSet<String>,
}

impl Session {
    pub(crate) fn new(
        params: SessionParams,
        script: Script,
        recorder: Recorder,
        now: Instant,
    ) -> Self {
        let mut ids = IdGen::new(params.seed);
        let session_id = ids.next("sess");
        let conversation_id = ids.next("conv");
        let model = params.model.clone().unwrap_or_default();
        let config = SessionConfig::new(
            &session_id,
            &model,
            params.unix_now + params.max_duration.as_secs(),
        );
        recorder.with(|r| {
            r.session_id = session_id.clone();
            r.model = params.model.clone();
        });
        let mut s = Self {
            ids,
            config,
            conversation_id,
            script,
            recorder,
            pacing: params.pacing,
            out: VecDeque::new(),
            closed: false,
            expires_at: now + params.max_duration,
            max_duration: params.max_duration,
            vad: None,
            audio_total: 0,
            buffer: Vec::new(),
            buffer_start: 0,
            speech: None,
            items: Vec::new(),
            active: None,
            assistant_audio_sent: false,
            any_response: false,
            last_user_audio: Arc::from(Vec::new()),
            last_user_transcript: None,
            call_ids: HashSet::new(),
        };
        if params.beta_header {
            s.fatal(ApiError::beta_shape(), None);
        } else if !params.model.as_deref().is_some_and(model_supported) {
            let shown = params.model.as_deref().unwrap_or("");
            let err = ApiError::invalid(
                "missing_model",
                format!("Invalid or missing model '{shown}'. Pass ?model=gpt-realtime (or another GA realtime model)."),
                Some("model"),
            );
            s.fatal(err, None);
        } else {
            s.rebuild_vad();
            let session = s.config.to_json();
            s.emit("session.created", json!({ "session": session }));
        }
        s
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The client went away (or the transport failed).
    pub(crate) fn on_client_gone(&mut self) {
        if !self.closed {
            self.closed = true;
            self.recorder.with(|r| r.end = Some(SessionEnd::ClientGone));
        }
    }

    /// The server is shutting down.
    pub(crate) fn on_shutdown(&mut self) {
        if !self.closed {
            self.close(1001, "server shutting down".into());
        }
    }

    /// Handles one client text frame.
    pub(crate) fn handle_text(&mut self, text: &str, now: Instant) {
        if self.closed {
            return;
        }
        let incoming = parse_client_event(text);
        self.recorder.with(|r| {
            r.client_events.push(ClientEventRecord {
                kind: incoming.kind.clone(),
                json: incoming.json.clone(),
            })
        });
        let event_id = incoming.event_id.as_deref();
        let result = match incoming.event {
            Ok(event) => self.dispatch(event, now),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if e.code.as_deref() == Some("beta_api_shape_disabled") {
                self.fatal(e, event_id);
            } else {
                self.error(&e, event_id);
            }
        }
    }

    /// Binary frames are not part of the protocol: everything is JSON text (§2.1).
    pub(crate) fn handle_binary(&mut self) {
        if !self.closed {
            self.recorder.with(|r| {
                r.client_events.push(ClientEventRecord {
                    kind: String::new(),
                    json: Value::String("<binary frame>".into()),
                })
            });
            let e = ApiError::invalid(
                "invalid_event",
                "Binary frames are not supported; send JSON text events.",
                None,
            );
            self.error(&e, None);
        }
    }

    /// The next thing to send, if anything is due at `now`.
    pub(crate) fn poll_output(&mut self, now: Instant) -> Option<Output> {
        if !self.closed && now >= self.expires_at {
            let minutes = self.max_duration.as_secs() / 60;
            let msg = format!("Your session hit the maximum duration of {minutes} minutes.");
            self.error(
                &ApiError::invalid("session_expired", msg.clone(), None),
                None,
            );
            self.close(1001, msg);
        }
        if self.out.is_empty() && !self.closed {
            self.drive_response(now);
        }
        self.out.pop_front()
    }

    /// When to poll again if no client frame arrives first.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let response = self.active.as_ref().map(|a| self.due_time(a));
        Some(response.map_or(self.expires_at, |t| t.min(self.expires_at)))
    }

    // ----- client events -----

    fn dispatch(&mut self, event: ClientEvent, now: Instant) -> Result<(), ApiError> {
        match event {
            ClientEvent::SessionUpdate { session } => self.session_update(&session, now),
            ClientEvent::AudioAppend { samples } => {
                self.append(&samples, now);
                Ok(())
            }
            ClientEvent::AudioCommit => self.manual_commit(),
            ClientEvent::AudioClear => {
                self.buffer.clear();
                self.buffer_start = self.audio_total;
                self.speech = None;
                if let Some(vad) = &mut self.vad {
                    vad.reset(self.audio_total);
                }
                self.emit("input_audio_buffer.cleared", json!({}));
                Ok(())
            }
            ClientEvent::ItemCreate { previous_item_id, item } => self.item_create(previous_item_id, &item),
            ClientEvent::ItemRetrieve { item_id } => {
                let item = self.items.iter().find(|i| i.id == item_id).ok_or_else(|| item_not_found("item_retrieve_invalid_item_id", &item_id))?;
                let mut json = item.json.clone();
                if !item.audio.is_empty() {
                    json["content"][0]["audio"] = Value::String(encode_pcm16(&item.audio));
                }
                self.emit("conversation.item.retrieved", json!({ "item": json }));
                Ok(())
            }
            ClientEvent::ItemDelete { item_id } => {
                let pos = self.items.iter().position(|i| i.id == item_id).ok_or_else(|| item_not_found("item_delete_invalid_item_id", &item_id))?;
                self.items.remove(pos);
                self.emit("conversation.item.deleted", json!({ "item_id": item_id }));
                Ok(())
            }
            ClientEvent::ItemTruncate { item_id, content_index, audio_end_ms } => {
                let result = self.truncate(&item_id, content_index, audio_end_ms);
                let accepted = result.is_ok();
                self.recorder.with(|r| r.truncates.push(TruncateRecord { item_id, content_index, audio_end_ms, accepted }));
                result
            }
            ClientEvent::ResponseCreate { response } => {
                if let Some(active) = &self.active {
                    return Err(ApiError::invalid(
                        "conversation_already_has_active_response",
                        format!(
                            "Conversation already has an active response in progress: {}. Wait until the response is finished before creating a new one.",
                            active.id
                        ),
                        None,
                    ));
                }
                let overrides = response.unwrap_or_default();
                validate_response_overrides(&overrides)?;
                self.start_response(&overrides, now);
                Ok(())
            }
            ClientEvent::ResponseCancel { response_id } => {
                let matches = match (&self.active, &response_id) {
                    (Some(a), Some(id)) => &a.id == id,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if !matches {
                    return Err(ApiError::invalid("response_cancel_not_active", "Cancellation failed: no active response found", None));
                }
                self.finish(Finish::Cancelled("client_cancelled"));
                Ok(())
            }
            ClientEvent::OutputAudioBufferClear => Err(ApiError::invalid_value(
                "type",
                "output_audio_buffer.clear is only supported for WebRTC and SIP connections; over WebSocket the client owns playout.",
            )),
            ClientEvent::TranscriptionSessionUpdate => {
                Err(ApiError::invalid_value("type", "Passing a transcription session update event to a realtime session is not allowed."))
            }
        }
    }

    fn session_update(
        &mut self,
        update: &Map<String, Value>,
        now: Instant,
    ) -> Result<(), ApiError> {
        if is_beta_shaped(update) {
            return Err(ApiError::beta_shape());
        }
        self.config
            .apply_update(update, self.assistant_audio_sent)?;
        self.rebuild_vad();
        let session = self.config.to_json();
        self.emit("session.updated", json!({ "session": session }));
        if self.script.greet_on_session_update && !self.any_response && self.active.is_none() {
            self.start_response(&Map::new(), now);
        }
        Ok(())
    }

    fn rebuild_vad(&mut self) {
        match self.config.turn_detection() {
            None => self.vad = None,
            Some(td) => match &mut self.vad {
                Some(vad) => {
                    vad.set_params(td.threshold, td.prefix_padding_ms, td.silence_duration_ms)
                }
                None => {
                    let mut vad =
                        EnergyVad::new(td.threshold, td.prefix_padding_ms, td.silence_duration_ms);
                    vad.start_at(self.audio_total, self.buffer_start);
                    self.vad = Some(vad);
                }
            },
        }
    }

    fn append(&mut self, samples: &[i16], now: Instant) {
        self.recorder.with(|r| {
            r.input_audio.extend_from_slice(samples);
            r.input_arrivals.push((now, r.input_audio.len()));
        });
        self.audio_total += samples.len() as u64;
        self.buffer.extend_from_slice(samples);
        let Some(vad) = &mut self.vad else { return };
        let mut events = Vec::new();
        vad.push(samples, &mut events);
        let td = self.config.turn_detection();
        for event in events {
            match event {
                VadEvent::SpeechStarted { start_sample } => {
                    let item_id = self.ids.next("item");
                    self.speech = Some((item_id.clone(), start_sample));
                    self.emit(
                        "input_audio_buffer.speech_started",
                        json!({ "audio_start_ms": start_sample / SAMPLES_PER_MS, "item_id": item_id }),
                    );
                    if self.active.is_some() && td.is_some_and(|t| t.interrupt_response) {
                        self.finish(Finish::Cancelled("turn_detected"));
                    }
                }
                VadEvent::SpeechStopped { end_sample } => {
                    let (item_id, start) = self
                        .speech
                        .take()
                        .unwrap_or_else(|| (self.ids.next("item"), self.buffer_start));
                    self.emit(
                        "input_audio_buffer.speech_stopped",
                        json!({ "audio_end_ms": end_sample / SAMPLES_PER_MS, "item_id": item_id }),
                    );
                    let cut = (end_sample.saturating_sub(self.buffer_start) as usize)
                        .min(self.buffer.len());
                    let from = (start.saturating_sub(self.buffer_start) as usize).min(cut);
                    let audio = self.buffer[from..cut].to_vec();
                    self.buffer.drain(..cut);
                    self.buffer_start += cut as u64;
                    self.commit_user_item(item_id, audio);
                    if td.is_some_and(|t| t.create_response) && self.active.is_none() {
                        self.start_response(&Map::new(), now);
                    }
                }
            }
        }
    }

    fn manual_commit(&mut self) -> Result<(), ApiError> {
        let ms = self.buffer.len() as f64 / SAMPLES_PER_MS as f64;
        if (self.buffer.len() as u64) < MIN_COMMIT_MS * SAMPLES_PER_MS {
            return Err(ApiError::invalid(
                "input_audio_buffer_commit_empty",
                format!("Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {ms:.2}ms of audio."),
                None,
            ));
        }
        let item_id = self
            .speech
            .take()
            .map_or_else(|| self.ids.next("item"), |(id, _)| id);
        let audio = std::mem::take(&mut self.buffer);
        self.buffer_start = self.audio_total;
        if let Some(vad) = &mut self.vad {
            vad.reset(self.audio_total);
        }
        self.commit_user_item(item_id, audio);
        Ok(())
    }

    fn commit_user_item(&mut self, item_id: String, audio: Vec<i16>) {
        let previous = self.items.last().map(|i| i.id.clone());
        self.emit(
            "input_audio_buffer.committed",
            json!({ "previous_item_id": previous, "item_id": item_id }),
        );
        let item = json!({
            "id": item_id, "type": "message", "status": "completed", "role": "user",
            "content": [{ "type": "input_audio", "transcript": null }],
        });
        self.emit(
            "conversation.item.added",
            json!({ "previous_item_id": previous, "item": item }),
        );
        self.emit(
            "conversation.item.done",
            json!({ "previous_item_id": previous, "item": item }),
        );
        self.last_user_audio = Arc::from(audio.as_slice());
        self.items.push(Item {
            id: item_id.clone(),
            json: item,
            audio,
        });
        let transcript = self.script.user_transcripts.pop_front();
        self.last_user_transcript = transcript.clone();
        if self.config.transcription_enabled() {
            match transcript {
                Some(text) => {
                    for word in split_keep_spaces(&text) {
                        let obf = self.obfuscation();
                        self.emit(
                            "conversation.item.input_audio_transcription.delta",
                            json!({ "item_id": item_id, "content_index": 0, "delta": word, "obfuscation": obf }),
                        );
                    }
                    self.emit(
                        "conversation.item.input_audio_transcription.completed",
                        json!({
                            "item_id": item_id, "content_index": 0, "transcript": text,
                            "usage": { "type": "duration", "seconds": (self.last_user_audio.len() as f64 / 24_000.0).ceil() },
                        }),
                    );
                    if let Some(item) = self.items.iter_mut().find(|i| i.id == item_id) {
                        item.json["content"][0]["transcript"] = Value::String(text);
                    }
                }
                None => self.emit(
                    "conversation.item.input_audio_transcription.failed",
                    json!({
                        "item_id": item_id, "content_index": 0,
                        "error": { "type": "transcription_error", "code": "audio_unintelligible", "message": "The audio could not be transcribed.", "param": null },
                    }),
                ),
            }
        }
    }

    fn item_create(
        &mut self,
        previous_item_id: Option<String>,
        item: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        let position = match previous_item_id.as_deref() {
            None => self.items.len(),
            Some("root") => 0,
            Some(id) => self
                .items
                .iter()
                .position(|i| i.id == id)
                .map(|p| p + 1)
                .ok_or_else(|| {
                    ApiError::invalid_value(
                        "previous_item_id",
                        format!("Previous item with id '{id}' not found."),
                    )
                })?,
        };
        let (json, audio) = validate_item(item, &self.call_ids)?;
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            if self.items.iter().any(|i| i.id == id) {
                return Err(ApiError::invalid(
                    "item_id_already_exists",
                    format!("Item with id '{id}' already exists."),
                    Some("item.id"),
                ));
            }
        }
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| self.ids.next("item"), str::to_owned);
        let mut json = json;
        json["id"] = Value::String(id.clone());
        if json["type"] == "function_call" {
            if let Some(c) = json["call_id"].as_str() {
                self.call_ids.insert(c.to_owned());
            }
        }
        if json["role"] == "user" && !audio.is_empty() {
            self.last_user_audio = Arc::from(audio.as_slice());
        }
        let previous = position.checked_sub(1).map(|p| self.items[p].id.clone());
        self.emit(
            "conversation.item.added",
            json!({ "previous_item_id": previous, "item": json }),
        );
        self.emit(
            "conversation.item.done",
            json!({ "previous_item_id": previous, "item": json }),
        );
        self.items.insert(position, Item { id, json, audio });
        Ok(())
    }

    fn truncate(
        &mut self,
        item_id: &str,
        content_index: i64,
        audio_end_ms: i64,
    ) -> Result<(), ApiError> {
        let item = self
            .items
            .iter_mut()
            .find(|i| i.id == item_id)
            .ok_or_else(|| item_not_found("item_truncate_invalid_item_id", item_id))?;
        if !item.is_assistant_audio() || item.audio.is_empty() {
            return Err(ApiError::invalid(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                None,
            ));
        }
        if content_index != 0 {
            return Err(ApiError::invalid_value(
                "content_index",
                format!("Invalid 'content_index': {content_index}. Only content_index 0 exists."),
            ));
        }
        if audio_end_ms < 0 {
            return Err(ApiError::invalid(
                "integer_below_min_value",
                format!("Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, but got {audio_end_ms} instead."),
                Some("audio_end_ms"),
            ));
        }
        let have_ms = item.audio.len() as u64 / SAMPLES_PER_MS;
        if audio_end_ms as u64 > have_ms {
            // Observed text; the GA code is unknown (2024 reports show null), §13.2.
            return Err(ApiError {
                kind: "invalid_request_error",
                code: None,
                message: format!(
                    "Audio content of {have_ms}ms is already shorter than {audio_end_ms}ms"
                ),
                param: None,
            });
        }
        item.audio
            .truncate(audio_end_ms as usize * SAMPLES_PER_MS as usize);
        // "Truncating audio will delete the server-side text transcript" (§6.7).
        item.json["content"][0]["transcript"] = Value::String(String::new());
        self.emit("conversation.item.truncated", json!({ "item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms }));
        Ok(())
    }

    // ----- responses -----

    fn start_response(&mut self, overrides: &Map<String, Value>, now: Instant) {
        self.any_response = true;
        let reply = self.script.next_reply();
        let (kind, delay, mut fault) = match reply {
            Some(r) => (r.kind, r.delay, r.fault),
            None => (
                ReplyKind::Speak {
                    pcm: Arc::from(Vec::new()),
                    transcript: String::new(),
                },
                Duration::ZERO,
                None,
            ),
        };
        let text_only = match overrides.get("output_modalities") {
            Some(m) => m == &json!(["text"]),
            None => self.config.text_only(),
        };
        let body = match kind {
            ReplyKind::Speak { pcm, transcript } if text_only => {
                drop(pcm);
                Body::Text { text: transcript }
            }
            ReplyKind::Speak { pcm, transcript } => Body::Audio { pcm, transcript },
            ReplyKind::SpeakFn(f) => {
                let (pcm, transcript) = f.make(&self.last_function_output());
                if text_only {
                    Body::Text { text: transcript }
                } else {
                    Body::Audio {
                        pcm: Arc::from(pcm),
                        transcript,
                    }
                }
            }
            ReplyKind::Echo => {
                let transcript = self
                    .last_user_transcript
                    .clone()
                    .unwrap_or_else(|| "(Echo)".into());
                if text_only {
                    Body::Text { text: transcript }
                } else {
                    Body::Audio {
                        pcm: Arc::clone(&self.last_user_audio),
                        transcript,
                    }
                }
            }
            ReplyKind::FunctionCall { name, arguments } => {
                let allowed = match (overrides.get("tools"), overrides.get("tool_choice")) {
                    (None, None) => self.config.allows_tool(&name),
                    (tools, choice) => {
                        let session = self.config.to_json();
                        tools_allow(
                            tools.unwrap_or(&session["tools"]),
                            choice.unwrap_or(&session["tool_choice"]),
                            &name,
                        )
                    }
                };
                if !allowed {
                    // The real model never calls an undeclared tool; surfacing it loudly makes a
                    // client that forgot to declare its tools fail visibly.
                    fault = Some(Fault::ServerError {
                        after_audio_ms: 0,
                        message: format!("Scripted function '{name}' is not declared in the session's tools (or tool_choice forbids it)."),
                    });
                }
                Body::Call {
                    name,
                    arguments,
                    call_id: self.ids.next("call"),
                }
            }
        };
        let id = self.ids.next("resp");
        let item_id = self.ids.next("item");
        let modalities = if text_only {
            json!(["text"])
        } else {
            json!(["audio"])
        };
        let mut audio_out =
            json!({ "format": self.config.output_format(), "voice": self.config.voice() });
        if let Some(o) = overrides
            .get("audio")
            .and_then(|a| a.get("output"))
            .and_then(Value::as_object)
        {
            for (k, v) in o {
                audio_out[k.as_str()] = v.clone();
            }
        }
        let shape = json!({
            "object": "realtime.response",
            "conversation_id": self.conversation_id,
            "output_modalities": modalities,
            "max_output_tokens": overrides.get("max_output_tokens").cloned().unwrap_or_else(|| json!("inf")),
            "audio": { "output": audio_out },
            "metadata": overrides.get("metadata").cloned().unwrap_or(Value::Null),
        });
        let mut created = shape.clone();
        created["id"] = json!(id);
        created["status"] = json!("in_progress");
        created["status_details"] = Value::Null;
        created["output"] = json!([]);
        created["usage"] = Value::Null;
        self.emit("response.created", json!({ "response": created }));
        self.active = Some(ActiveResponse {
            id,
            item_id,
            previous_item_id: None,
            body,
            fault,
            start_at: now + delay,
            opened_at: None,
            sent_samples: 0,
            sent_chars: 0,
            chunk: 0,
            shape,
        });
    }

    /// The `output` of the latest `function_call_output` item, parsed as JSON when it is JSON,
    /// for [`ReplyKind::SpeakFn`].
    fn last_function_output(&self) -> Value {
        self.items
            .iter()
            .rev()
            .find(|i| i.json["type"] == "function_call_output")
            .and_then(|i| i.json["output"].as_str())
            .map_or(Value::Null, |text| {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            })
    }

    /// When the active response's next step is due.
    fn due_time(&self, a: &ActiveResponse) -> Instant {
        let Some(opened) = a.opened_at else {
            return a.start_at;
        };
        let audio_secs = a.sent_samples as f64 / 24_000.0;
        match self.pacing {
            Pacing::Unpaced => opened,
            Pacing::RealTime => opened + Duration::from_secs_f64(audio_secs),
            Pacing::Speedup(f) => opened + Duration::from_secs_f64(audio_secs / f.max(0.01)),
        }
    }

    fn drive_response(&mut self, now: Instant) {
        let Some(a) = &self.active else { return };
        if now < self.due_time(a) {
            return;
        }
        if a.opened_at.is_none() {
            self.open_response(now);
            return;
        }
        let sent_ms = (a.sent_samples as u64 / SAMPLES_PER_MS) as u32;
        if let Some(fault) = a.fault.clone() {
            let after = match &fault {
                Fault::Disconnect { after_audio_ms }
                | Fault::Close { after_audio_ms, .. }
                | Fault::ServerError { after_audio_ms, .. } => *after_audio_ms,
            };
            if sent_ms >= after {
                self.trigger_fault(fault);
                return;
            }
        }
        self.send_chunk();
    }

    fn open_response(&mut self, now: Instant) {
        let previous = self.items.last().map(|i| i.id.clone());
        let Some(a) = &mut self.active else { return };
        a.opened_at = Some(now);
        a.previous_item_id = previous.clone();
        let (response_id, item_id) = (a.id.clone(), a.item_id.clone());
        let (item, part) = match &a.body {
            Body::Call { name, call_id, .. } => (
                json!({ "id": item_id, "type": "function_call", "status": "in_progress", "name": name, "call_id": call_id, "arguments": "" }),
                None,
            ),
            Body::Audio { .. } => (
                json!({ "id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": [] }),
                Some(json!({ "type": "audio", "transcript": "" })),
            ),
            Body::Text { .. } => (
                json!({ "id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": [] }),
                Some(json!({ "type": "text", "text": "" })),
            ),
        };
        let is_audio = matches!(a.body, Body::Audio { .. });
        let is_call = matches!(a.body, Body::Call { .. });
        self.emit(
            "response.output_item.added",
            json!({ "response_id": response_id, "output_index": 0, "item": item }),
        );
        self.emit(
            "conversation.item.added",
            json!({ "previous_item_id": previous, "item": item }),
        );
        let content_type = if is_audio {
            "output_audio"
        } else {
            "output_text"
        };
        let mut stored = item.clone();
        if !is_call {
            stored["content"] = json!([{ "type": content_type, "transcript": "" }]);
        }
        self.items.push(Item {
            id: item_id.clone(),
            json: stored,
            audio: Vec::new(),
        });
        if is_audio {
            self.recorder.with(|r| {
                r.audio_sent.push(ItemAudio {
                    item_id: item_id.clone(),
                    response_id: response_id.clone(),
                    samples: Vec::new(),
                })
            });
        }
        if let Some(part) = part {
            self.emit(
                "response.content_part.added",
                json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0, "part": part }),
            );
        }
        // A function call has no audio: its fault (if any) fires now, otherwise it completes.
        if is_call {
            if let Some(fault) = self.active.as_ref().and_then(|a| a.fault.clone()) {
                self.trigger_fault(fault);
            } else {
                self.finish(Finish::Completed);
            }
        }
    }

    fn send_chunk(&mut self) {
        let ids_delta = self.obfuscation();
        let ids_audio = self.obfuscation();
        let Some(a) = &mut self.active else { return };
        let (response_id, item_id) = (a.id.clone(), a.item_id.clone());
        let base = json!({ "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0 });
        match &a.body {
            Body::Audio { pcm, transcript } => {
                let n = (CHUNK_MS[a.chunk % CHUNK_MS.len()] * SAMPLES_PER_MS) as usize;
                let end = (a.sent_samples + n).min(pcm.len());
                let chunk: Vec<i16> = pcm[a.sent_samples..end].to_vec();
                let char_target = if pcm.is_empty() || end == pcm.len() {
                    transcript.chars().count()
                } else {
                    transcript.chars().count() * end / pcm.len()
                };
                let delta: String = transcript
                    .chars()
                    .skip(a.sent_chars)
                    .take(char_target.saturating_sub(a.sent_chars))
                    .collect();
                a.sent_chars = char_target.max(a.sent_chars);
                a.sent_samples = end;
                a.chunk += 1;
                let done = end >= pcm.len();
                if !delta.is_empty() {
                    let mut e = base.clone();
                    e["delta"] = json!(delta);
                    e["obfuscation"] = json!(ids_delta);
                    self.emit("response.output_audio_transcript.delta", e);
                }
                if !chunk.is_empty() {
                    self.assistant_audio_sent = true;
                    let mut e = base;
                    e["delta"] = json!(encode_pcm16(&chunk));
                    e["obfuscation"] = json!(ids_audio);
                    self.emit("response.output_audio.delta", e);
                    if let Some(item) = self.items.iter_mut().find(|i| i.id == item_id) {
                        item.audio.extend_from_slice(&chunk);
                    }
                    self.recorder.with(|r| {
                        if let Some(rec) = r.audio_sent.iter_mut().find(|x| x.item_id == item_id) {
                            rec.samples.extend_from_slice(&chunk);
                        }
                    });
                }
                if done {
                    self.finish(Finish::Completed);
                }
            }
            Body::Text { text } => {
                let words = split_keep_spaces(text);
                let word = words.get(a.chunk).cloned();
                a.chunk += 1;
                match word {
                    Some(w) => {
                        a.sent_chars += w.chars().count();
                        let mut e = base;
                        e["delta"] = json!(w);
                        e["obfuscation"] = json!(ids_delta);
                        self.emit("response.output_text.delta", e);
                    }
                    None => self.finish(Finish::Completed),
                }
            }
            Body::Call { .. } => self.finish(Finish::Completed),
        }
    }

    fn trigger_fault(&mut self, fault: Fault) {
        match fault {
            Fault::Disconnect { .. } => {
                self.active = None;
                self.closed = true;
                self.out.push_back(Output::Disconnect);
                self.recorder
                    .with(|r| r.end = Some(SessionEnd::ServerDropped));
            }
            Fault::Close { code, reason, .. } => {
                self.active = None;
                self.close(code, reason);
            }
            Fault::ServerError { message, .. } => {
                if let Some(a) = &mut self.active {
                    a.fault = None;
                }
                self.error(&ApiError::server("server_error", message), None);
                self.finish(Finish::Failed);
            }
        }
    }

    /// Ends the active response, closing whatever parts are open (also on cancel, §7.2).
    fn finish(&mut self, how: Finish) {
        let Some(a) = self.active.take() else { return };
        let (status, details) = match how {
            Finish::Completed => ("completed", Value::Null),
            Finish::Cancelled(reason) => (
                "cancelled",
                json!({ "type": "cancelled", "reason": reason }),
            ),
            Finish::Failed => (
                "failed",
                json!({ "type": "failed", "error": { "type": "server_error", "code": "server_error" } }),
            ),
        };
        let mut output = Vec::new();
        if a.opened_at.is_some() {
            let base = json!({ "response_id": a.id, "item_id": a.item_id, "output_index": 0, "content_index": 0 });
            let item_status = if how == Finish::Completed {
                "completed"
            } else {
                "incomplete"
            };
            let sent_text: String = a.transcript().chars().take(a.sent_chars).collect();
            let item = match &a.body {
                Body::Audio { .. } => {
                    self.emit("response.output_audio.done", base.clone());
                    let mut e = base.clone();
                    e["transcript"] = json!(sent_text);
                    self.emit("response.output_audio_transcript.done", e);
                    let mut e = base.clone();
                    e["part"] = json!({ "type": "audio", "transcript": sent_text });
                    self.emit("response.content_part.done", e);
                    json!({ "id": a.item_id, "type": "message", "status": item_status, "role": "assistant",
                            "content": [{ "type": "output_audio", "transcript": sent_text }] })
                }
                Body::Text { .. } => {
                    let mut e = base.clone();
                    e["text"] = json!(sent_text);
                    self.emit("response.output_text.done", e);
                    let mut e = base.clone();
                    e["part"] = json!({ "type": "text", "text": sent_text });
                    self.emit("response.content_part.done", e);
                    json!({ "id": a.item_id, "type": "message", "status": item_status, "role": "assistant",
                            "content": [{ "type": "output_text", "text": sent_text }] })
                }
                Body::Call {
                    name,
                    arguments,
                    call_id,
                } => {
                    self.call_ids.insert(call_id.clone());
                    let mid = arguments.len() / 2;
                    let split = (0..=mid)
                        .rev()
                        .find(|i| arguments.is_char_boundary(*i))
                        .unwrap_or(0);
                    for part in [&arguments[..split], &arguments[split..]] {
                        if !part.is_empty() {
                            self.emit(
                                "response.function_call_arguments.delta",
                                json!({ "response_id": a.id, "item_id": a.item_id, "output_index": 0, "call_id": call_id, "delta": part }),
                            );
                        }
                    }
                    self.emit(
                        "response.function_call_arguments.done",
                        json!({ "response_id": a.id, "item_id": a.item_id, "output_index": 0, "call_id": call_id, "name": name, "arguments": arguments }),
                    );
                    json!({ "id": a.item_id, "type": "function_call", "status": item_status, "name": name, "call_id": call_id, "arguments": arguments })
                }
            };
            self.emit(
                "response.output_item.done",
                json!({ "response_id": a.id, "output_index": 0, "item": item }),
            );
            self.emit(
                "conversation.item.done",
                json!({ "previous_item_id": a.previous_item_id, "item": item }),
            );
            if let Some(stored) = self.items.iter_mut().find(|i| i.id == a.item_id) {
                stored.json = item.clone();
            }
            output.push(item);
        }
        let out_audio_tokens = a.sent_samples as u64 / 1200; // ~20 audio tokens per second
        let out_text_tokens = a.sent_chars as u64 / 4;
        let mut response = a.shape.clone();
        response["id"] = json!(a.id);
        response["status"] = json!(status);
        response["status_details"] = details;
        response["output"] = Value::Array(output);
        response["usage"] = json!({
            "total_tokens": 120 + out_audio_tokens + out_text_tokens,
            "input_tokens": 120,
            "output_tokens": out_audio_tokens + out_text_tokens,
            "input_token_details": { "text_tokens": 100, "audio_tokens": 20, "image_tokens": 0, "cached_tokens": 0,
                                     "cached_tokens_details": { "text_tokens": 0, "audio_tokens": 0, "image_tokens": 0 } },
            "output_token_details": { "text_tokens": out_text_tokens, "audio_tokens": out_audio_tokens },
        });
        self.emit("response.done", json!({ "response": response }));
        self.emit(
            "rate_limits.updated",
            json!({ "rate_limits": [{ "name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.5 }] }),
        );
    }

    // ----- output helpers -----

    fn emit(&mut self, kind: &str, mut fields: Value) {
        let event_id = self.ids.next("event");
        if let Value::Object(m) = &mut fields {
            m.insert("type".into(), json!(kind));
            m.insert("event_id".into(), json!(event_id));
        }
        self.recorder
            .with(|r| r.server_event_types.push(kind.to_owned()));
        self.out.push_back(Output::Send(fields));
    }

    fn error(&mut self, e: &ApiError, client_event_id: Option<&str>) {
        let error = e.to_json(client_event_id);
        self.recorder.with(|r| r.errors.push(error.clone()));
        self.emit("error", json!({ "error": error }));
    }

    /// An error the real service answers by closing with 4000 and `<type>.<code>` (§2.3).
    fn fatal(&mut self, e: ApiError, client_event_id: Option<&str>) {
        self.error(&e, client_event_id);
        self.close(4000, e.close_reason());
    }

    fn close(&mut self, code: u16, reason: String) {
        self.active = None;
        self.closed = true;
        self.recorder.with(|r| {
            r.end = Some(SessionEnd::ServerClosed {
                code,
                reason: reason.clone(),
            })
        });
        self.out.push_back(Output::Close { code, reason });
    }

    fn obfuscation(&mut self) -> String {
        self.ids.next("o")[2..14].to_owned()
    }
}

fn model_supported(model: &str) -> bool {
    model.starts_with("gpt-realtime") || model.starts_with("gpt-audio")
}

fn item_not_found(code: &str, item_id: &str) -> ApiError {
    ApiError::invalid(
        code,
        format!("Item with item_id not found: {item_id}"),
        Some("item_id"),
    )
}

fn split_keep_spaces(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

fn validate_response_overrides(r: &Map<String, Value>) -> Result<(), ApiError> {
    check_fields(
        r,
        &[
            "instructions",
            "output_modalities",
            "audio",
            "tools",
            "tool_choice",
            "max_output_tokens",
            "metadata",
            "conversation",
            "input",
            "prompt",
        ],
        "response.",
    )?;
    if let Some(c) = r.get("conversation") {
        match c.as_str() {
            Some("auto") => {}
            Some("none") => {
                return Err(ApiError::invalid_value(
                    "response.conversation",
                    "Out-of-band responses (conversation: 'none') are not emulated by the local Realtime server.",
                ))
            }
            _ => return Err(ApiError::invalid_value("response.conversation", format!("Invalid value: {c}. Supported values are: 'auto' and 'none'."))),
        }
    }
    if let Some(m) = r.get("output_modalities") {
        if m != &json!(["audio"]) && m != &json!(["text"]) {
            return Err(ApiError::invalid_value(
                "response.output_modalities",
                "Expected exactly one of ['audio'] or ['text'].",
            ));
        }
    }
    if let Some(t) = r.get("max_output_tokens") {
        validate_max_tokens(t, "response.max_output_tokens")?;
    }
    if let Some(a) = r.get("audio") {
        let a = a
            .as_object()
            .ok_or_else(|| ApiError::invalid_type("response.audio", "an object", a))?;
        check_fields(a, &["output"], "response.audio.")?;
        if let Some(o) = a.get("output").and_then(Value::as_object) {
            check_fields(o, &["format", "voice"], "response.audio.output.")?;
        }
    }
    Ok(())
}

/// Validates a client-created item; returns the stored item JSON and any decoded audio.
fn validate_item(
    item: &Map<String, Value>,
    call_ids: &HashSet<String>,
) -> Result<(Value, Vec<i16>), ApiError> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing("item.type"))?;
    match kind {
        "message" => {
            check_fields(item, &["type", "id", "object", "status", "role", "content"], "item.")?;
            let role = item.get("role").and_then(Value::as_str).ok_or_else(|| ApiError::missing("item.role"))?;
            let allowed: &[&str] = match role {
                "user" => &["input_text", "input_audio", "input_image"],
                "system" => &["input_text"],
                "assistant" => &["output_text"],
                other => return Err(ApiError::invalid_value("item.role", format!("Invalid value: '{other}'. Supported values are: 'user', 'assistant', and 'system'."))),
            };
            let content = item.get("content").and_then(Value::as_array).ok_or_else(|| ApiError::missing("item.content"))?;
            let mut audio = Vec::new();
            let mut stored_content = Vec::new();
            for (i, part) in content.iter().enumerate() {
                let p = format!("item.content[{i}]");
                let part_obj = part.as_object().ok_or_else(|| ApiError::invalid_type(&p, "an object", part))?;
                let t = part_obj.get("type").and_then(Value::as_str).ok_or_else(|| ApiError::missing(&format!("{p}.type")))?;
                if !allowed.contains(&t) {
                    return Err(ApiError::invalid_value(
                        &format!("{p}.type"),
                        format!("Invalid value: '{t}'. Supported values for role '{role}' are: {allowed:?}."),
                    ));
                }
                let mut stored = part.clone();
                if t == "input_audio" {
                    check_fields(part_obj, &["type", "audio", "transcript"], &format!("{p}."))?;
                    let b64 = part_obj.get("audio").and_then(Value::as_str).ok_or_else(|| ApiError::missing(&format!("{p}.audio")))?;
                    audio.extend(decode_pcm16(b64, &format!("{p}.audio"))?);
                    if let Some(m) = stored.as_object_mut() {
                        m.remove("audio");
                        m.entry("transcript").or_insert(Value::Null);
                    }
                } else {
                    check_fields(part_obj, &["type", "text", "image_url", "detail"], &format!("{p}."))?;
                }
                stored_content.push(stored);
            }
            Ok((json!({ "type": "message", "status": "completed", "role": role, "content": stored_content }), audio))
        }
        "function_call_output" => {
            check_fields(item, &["type", "id", "object", "status", "call_id", "output"], "item.")?;
            let call_id = item.get("call_id").and_then(Value::as_str).ok_or_else(|| ApiError::missing("item.call_id"))?;
            let output = item.get("output").ok_or_else(|| ApiError::missing("item.output"))?;
            if !output.is_string() {
                return Err(ApiError::invalid_type("item.output", "a string", output));
            }
            if !call_ids.contains(call_id) {
                return Err(ApiError::invalid_value("item.call_id", format!("Tool call ID '{call_id}' not found in conversation.")));
            }
            Ok((json!({ "type": "function_call_output", "status": "completed", "call_id": call_id, "output": output }), Vec::new()))
        }
        "function_call" => {
            check_fields(item, &["type", "id", "object", "status", "call_id", "name", "arguments"], "item.")?;
            for k in ["call_id", "name", "arguments"] {
                if !item.get(k).is_some_and(Value::is_string) {
                    return Err(ApiError::missing(&format!("item.{k}")));
                }
            }
            let mut j = Value::Object(item.clone());
            j["status"] = json!("completed");
            Ok((j, Vec::new()))
        }
        other => Err(ApiError::invalid_value(
            "item.type",
            format!("Invalid value: '{other}'. Supported values are: 'message', 'function_call', and 'function_call_output'."),
        )),
    }
}

#[cfg(test)]
mod tests;
