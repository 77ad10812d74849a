//! Server → client events that this bridge acts on, GA names only.
//!
//! Parsing is tolerant by design (reference §7, STYLE 14): unknown fields are ignored (GA adds
//! `obfuscation` to deltas), unknown enum values fall into `Other` variants, and an event type we
//! do not know becomes [`ServerEvent::Unknown`] carrying its type string instead of an error.
//! Only a *known* event whose payload does not match is a [`ParseError::Malformed`]. Beta names
//! such as `response.audio.delta` are deliberately unknown here.
//!
//! Server `event_id`s are not kept (nothing correlates on them); the `error` event keeps the
//! client `event_id` it echoes, which is how a failed client event is identified.

use serde::{Deserialize, Serialize};

use super::client::Role;
use super::session::Session;

/// Every server event this bridge understands, plus [`ServerEvent::Unknown`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    #[serde(rename = "session.created")]
    SessionCreated { session: Session },
    #[serde(rename = "session.updated")]
    SessionUpdated { session: Session },
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {
        #[serde(default)]
        audio_start_ms: u64,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {
        #[serde(default)]
        audio_end_ms: u64,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.committed")]
    InputAudioBufferCommitted {
        #[serde(default)]
        previous_item_id: Option<String>,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.cleared")]
    InputAudioBufferCleared {},
    #[serde(rename = "conversation.item.added")]
    ConversationItemAdded {
        #[serde(default)]
        previous_item_id: Option<String>,
        item: Item,
    },
    #[serde(rename = "conversation.item.done")]
    ConversationItemDone {
        #[serde(default)]
        previous_item_id: Option<String>,
        item: Item,
    },
    #[serde(rename = "conversation.item.truncated")]
    ConversationItemTruncated {
        item_id: String,
        #[serde(default)]
        content_index: u32,
        audio_end_ms: u64,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    InputTranscriptionDelta {
        item_id: String,
        #[serde(default)]
        content_index: u32,
        #[serde(default)]
        delta: String,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputTranscriptionCompleted {
        item_id: String,
        #[serde(default)]
        content_index: u32,
        transcript: String,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.failed")]
    InputTranscriptionFailed {
        item_id: String,
        #[serde(default)]
        content_index: u32,
        error: ErrorDetails,
    },
    #[serde(rename = "response.created")]
    ResponseCreated { response: Response },
    #[serde(rename = "response.output_item.added")]
    ResponseOutputItemAdded {
        response_id: String,
        #[serde(default)]
        output_index: u32,
        item: Item,
    },
    #[serde(rename = "response.output_item.done")]
    ResponseOutputItemDone {
        response_id: String,
        #[serde(default)]
        output_index: u32,
        item: Item,
    },
    #[serde(rename = "response.content_part.added")]
    ResponseContentPartAdded {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        part: Content,
    },
    #[serde(rename = "response.content_part.done")]
    ResponseContentPartDone {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        part: Content,
    },
    #[serde(rename = "response.output_audio.delta")]
    ResponseOutputAudioDelta {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        /// Base64 of little-endian PCM16 at 24 kHz.
        delta: String,
    },
    #[serde(rename = "response.output_audio.done")]
    ResponseOutputAudioDone {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
    },
    #[serde(rename = "response.output_audio_transcript.delta")]
    ResponseOutputAudioTranscriptDelta {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        delta: String,
    },
    #[serde(rename = "response.output_audio_transcript.done")]
    ResponseOutputAudioTranscriptDone {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        transcript: String,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ResponseFunctionCallArgumentsDelta {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        call_id: String,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    ResponseFunctionCallArgumentsDone {
        response_id: String,
        item_id: String,
        #[serde(default)]
        output_index: u32,
        call_id: String,
        /// GA adds the function name here; beta lacked it.
        #[serde(default)]
        name: Option<String>,
        arguments: String,
    },
    #[serde(rename = "response.done")]
    ResponseDone { response: Response },
    #[serde(rename = "rate_limits.updated")]
    RateLimitsUpdated { rate_limits: Vec<RateLimit> },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        event_id: Option<String>,
        error: ErrorDetails,
    },
    /// An event type this client does not know; `event_type` is its `type` string.
    #[serde(skip)]
    Unknown { event_type: String },
}

/// The `type` strings that map to a known [`ServerEvent`] variant.
pub const KNOWN_SERVER_EVENT_TYPES: &[&str] = &[
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.truncated",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.done",
    "rate_limits.updated",
    "error",
];

/// Why a server text frame could not be turned into a [`ServerEvent`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("server frame is not a JSON object with a string \"type\": {0}")]
    NotAnEvent(String),
    #[error("server event {event_type:?} has an unexpected shape: {source}")]
    Malformed {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ServerEvent {
    /// Parses one server text frame. Unknown event types are `Ok(Unknown)`, never an error.
    pub fn parse(text: &str) -> Result<ServerEvent, ParseError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ParseError::NotAnEvent(e.to_string()))?;
        let event_type = value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ParseError::NotAnEvent("missing string field \"type\"".into()))?
            .to_owned();
        if !KNOWN_SERVER_EVENT_TYPES.contains(&event_type.as_str()) {
            return Ok(ServerEvent::Unknown { event_type });
        }
        serde_json::from_value(value).map_err(|source| ParseError::Malformed { event_type, source })
    }

    /// The wire `type` of this event (the original string for [`ServerEvent::Unknown`]).
    pub fn event_type(&self) -> &str {
        match self {
            ServerEvent::SessionCreated { .. } => "session.created",
            ServerEvent::SessionUpdated { .. } => "session.updated",
            ServerEvent::SpeechStarted { .. } => "input_audio_buffer.speech_started",
            ServerEvent::SpeechStopped { .. } => "input_audio_buffer.speech_stopped",
            ServerEvent::InputAudioBufferCommitted { .. } => "input_audio_buffer.committed",
            ServerEvent::InputAudioBufferCleared {} => "input_audio_buffer.cleared",
            ServerEvent::ConversationItemAdded { .. } => "conversation.item.added",
            ServerEvent::ConversationItemDone { .. } => "conversation.item.done",
            ServerEvent::ConversationItemTruncated { .. } => "conversation.item.truncated",
            ServerEvent::InputTranscriptionDelta { .. } => {
                "conversation.item.input_audio_transcription.delta"
            }
            ServerEvent::InputTranscriptionCompleted { .. } => {
                "conversation.item.input_audio_transcription.completed"
            }
            ServerEvent::InputTranscriptionFailed { .. } => {
                "conversation.item.input_audio_transcription.failed"
            }
            ServerEvent::ResponseCreated { .. } => "response.created",
            ServerEvent::ResponseOutputItemAdded { .. } => "response.output_item.added",
            ServerEvent::ResponseOutputItemDone { .. } => "response.output_item.done",
            ServerEvent::ResponseContentPartAdded { .. } => "response.content_part.added",
            ServerEvent::ResponseContentPartDone { .. } => "response.content_part.done",
            ServerEvent::ResponseOutputAudioDelta { .. } => "response.output_audio.delta",
            ServerEvent::ResponseOutputAudioDone { .. } => "response.output_audio.done",
            ServerEvent::ResponseOutputAudioTranscriptDelta { .. } => {
                "response.output_audio_transcript.delta"
            }
            ServerEvent::ResponseOutputAudioTranscriptDone { .. } => {
                "response.output_audio_transcript.done"
            }
            ServerEvent::ResponseFunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            ServerEvent::ResponseFunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            ServerEvent::ResponseDone { .. } => "response.done",
            ServerEvent::RateLimitsUpdated { .. } => "rate_limits.updated",
            ServerEvent::Error { .. } => "error",
            ServerEvent::Unknown { event_type } => event_type,
        }
    }
}

/// A conversation item as the server reports it (GA content type names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        status: Option<String>,
        role: Role,
        #[serde(default)]
        content: Vec<Content>,
    },
    FunctionCall {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        status: Option<String>,
        name: String,
        call_id: String,
        #[serde(default)]
        arguments: String,
    },
    FunctionCallOutput {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
        #[serde(default)]
        output: String,
    },
    /// MCP items and future item types.
    #[serde(other)]
    Other,
}

impl Item {
    /// The item id, when the item carries one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Item::Message { id, .. }
            | Item::FunctionCall { id, .. }
            | Item::FunctionCallOutput { id, .. } => id.as_deref(),
            Item::Other => None,
        }
    }
}

/// Item content and content parts. Items use GA names (`output_audio`), while
/// `response.content_part.*` parts still say `audio`/`text` (reference §7.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    InputText {
        #[serde(default)]
        text: String,
    },
    InputAudio {
        #[serde(default)]
        transcript: Option<String>,
    },
    OutputText {
        #[serde(default)]
        text: String,
    },
    OutputAudio {
        #[serde(default)]
        transcript: Option<String>,
    },
    Text {
        #[serde(default)]
        text: String,
    },
    Audio {
        #[serde(default)]
        transcript: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// The `response` object of `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: String,
    pub status: ResponseStatus,
    #[serde(default)]
    pub status_details: Option<StatusDetails>,
    #[serde(default)]
    pub output: Vec<Item>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub usage: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    InProgress,
    Completed,
    Cancelled,
    Failed,
    Incomplete,
    #[serde(other)]
    Other,
}

/// `status_details`: `{type, reason}` for cancelled/incomplete, `{type, error}` for failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub name: String,
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub remaining: u64,
    #[serde(default)]
    pub reset_seconds: f64,
}

/// The body of an `error` event. `code`, `param` and `event_id` may be null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetails {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub param: Option<String>,
    /// The client `event_id` of the event that failed, when it had one.
    #[serde(default)]
    pub event_id: Option<String>,
}
