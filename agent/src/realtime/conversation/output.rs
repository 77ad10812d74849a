//! What the conversation machine asks its driver (the bridge) to do.

use crate::realtime::wire::ClientEvent;

/// One instruction for the bridge, in the order they must be carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this event on the WebSocket.
    Send(ClientEvent),
    /// Queue these PCM16 24 kHz samples of assistant item `item_id` for playback.
    PlayAudio { item_id: String, samples: Vec<i16> },
    /// Barge-in: drop every queued, unplayed sample now, then call
    /// `handle_playback_flushed(item_id, played)` for `item_id` (and for any later item you
    /// still held audio for) with the exact number of its samples the caller heard.
    FlushPlayback { item_id: String },
    /// All audio of `item_id` has been handed over; the bridge may pad/mark and should call
    /// `handle_playback_drained(item_id)` once its last sample has been played.
    AudioEnd { item_id: String },
    /// Run tool `name` with `arguments` (JSON text as the model produced it, unvalidated) and
    /// report with `handle_tool_result(call_id, output)`; errors are outputs too.
    RunTool {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// The model ended the call: hang up once everything queued for playback has been played.
    HangUpAfterPlayback,
    /// The model asked for a transfer: transfer once playback has drained, then report the
    /// outcome with `handle_tool_result(call_id, …)`.
    TransferAfterPlayback { call_id: String, arguments: String },
    /// `session.updated` confirmed the configuration; the call can start.
    SessionReady,
    /// `session.updated` differs from what was asked (listed before `SessionReady` or `Fatal`).
    SessionMismatch(Vec<SessionMismatch>),
    /// The server sent an `error` event (log it; fatal ones are followed by [`Output::Fatal`]).
    ServerError(ErrorReport),
    /// A server frame could not be understood (a known event type with an unexpected shape, or
    /// an undecodable audio payload). The event was ignored.
    MalformedEvent { event_type: String, detail: String },
    /// First sighting of an unknown server event type (later ones are only counted).
    UnknownEventType(String),
    /// The conversation cannot continue; the bridge should end the call.
    Fatal(FatalError),
}

/// One field of the session echo that differs from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMismatch {
    /// Dotted GA path, e.g. `audio.output.voice`.
    pub field: &'static str,
    pub wanted: String,
    pub got: String,
    /// Whether the call cannot work like this (wrong audio format, no audio output, no VAD).
    pub fatal: bool,
}

/// A server `error` event, with the client event it refers to when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    pub code: Option<String>,
    pub message: String,
    pub kind: String,
    pub param: Option<String>,
    pub client_event_id: Option<String>,
    /// The `type` of our event that failed, when `client_event_id` is one we sent.
    pub client_event_type: Option<&'static str>,
}

impl ErrorReport {
    /// Errors that are expected races and harmless (reference §16.10).
    pub fn is_benign(&self) -> bool {
        self.code.as_deref() == Some("response_cancel_not_active")
    }
}

/// Why the conversation cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FatalError {
    #[error("session.update was rejected ({code:?}): {message}")]
    SessionRejected {
        code: Option<String>,
        message: String,
    },
    #[error("the session the server confirmed is unusable: {0:?}")]
    SessionMismatch(Vec<SessionMismatch>),
    #[error("server error {code}: {message}")]
    Server { code: String, message: String },
}
