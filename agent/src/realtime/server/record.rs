//! What each session saw and did, kept for tests to assert against.
//!
//! A test double is only useful if a test can ask it afterwards "what exactly did the client
//! send?". The session state machine writes into a [`Recorder`] as it goes; the
//! [`ServerHandle`](super::ServerHandle) hands out snapshots and lets a test wait (without
//! sleeping) until a condition over the records holds. Recording can be switched off for the
//! embedded production use, where keeping every call's audio would only grow memory.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::watch;

/// One client event as received (after JSON parsing; unparseable frames are kept as a string).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientEventRecord {
    /// The `type` field, or `""` when it was missing.
    pub kind: String,
    /// The whole event. `input_audio_buffer.append` keeps its `audio` field (base64) as sent.
    pub json: Value,
}

/// One `conversation.item.truncate` request.
#[derive(Clone, Debug, PartialEq)]
pub struct TruncateRecord {
    pub item_id: String,
    pub content_index: i64,
    pub audio_end_ms: i64,
    /// Whether the server accepted it (answered `conversation.item.truncated`).
    pub accepted: bool,
}

/// Assistant audio the server sent for one item (PCM16 24 kHz samples, in order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemAudio {
    pub item_id: String,
    pub response_id: String,
    pub samples: Vec<i16>,
}

/// How the session ended, from the server's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The server sent a close frame with this code and reason.
    ServerClosed { code: u16, reason: String },
    /// The server dropped the TCP connection without a close frame (fault injection).
    ServerDropped,
    /// The client closed or the connection failed.
    ClientGone,
}

/// Everything recorded for one WebSocket session.
#[derive(Clone, Debug, Default)]
pub struct SessionRecord {
    /// `sess_…` id announced in `session.created`.
    pub session_id: String,
    /// The `model` query parameter.
    pub model: Option<String>,
    /// Every client event, in arrival order.
    pub client_events: Vec<ClientEventRecord>,
    /// All input audio appended during the session, decoded (PCM16 24 kHz mono).
    pub input_audio: Vec<i16>,
    /// When each `input_audio_buffer.append` arrived, with the length of `input_audio` after it:
    /// benchmarks time the uplink path against the caller's packets with it.
    pub input_arrivals: Vec<(std::time::Instant, usize)>,
    /// Truncate requests, accepted or not.
    pub truncates: Vec<TruncateRecord>,
    /// Assistant audio sent, per item, in the order the items started.
    pub audio_sent: Vec<ItemAudio>,
    /// The `error` objects of every `error` event the server sent.
    pub errors: Vec<Value>,
    /// The `type` of every server event sent, in order.
    pub server_event_types: Vec<String>,
    /// Set once the session is over.
    pub end: Option<SessionEnd>,
}

impl SessionRecord {
    /// Client events of the given type.
    pub fn client_events_of(&self, kind: &str) -> Vec<&Value> {
        self.client_events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| &e.json)
            .collect()
    }

    /// Error codes emitted (`None` for errors without a code).
    pub fn error_codes(&self) -> Vec<Option<String>> {
        self.errors
            .iter()
            .map(|e| e.get("code").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// Audio sent for one item, if any.
    pub fn audio_for_item(&self, item_id: &str) -> Option<&ItemAudio> {
        self.audio_sent.iter().find(|a| a.item_id == item_id)
    }
}

/// Shared store of all sessions of one server, with a change counter for waiters.
#[derive(Debug)]
pub(crate) struct Registry {
    enabled: bool,
    sessions: Mutex<Vec<Arc<Mutex<SessionRecord>>>>,
    changed: watch::Sender<u64>,
}

impl Registry {
    pub(crate) fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            enabled,
            sessions: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
        })
    }

    /// A recorder for a new session (a no-op recorder when recording is off).
    pub(crate) fn new_session(self: &Arc<Self>) -> Recorder {
        if !self.enabled {
            return Recorder { inner: None };
        }
        let record = Arc::new(Mutex::new(SessionRecord::default()));
        lock(&self.sessions).push(Arc::clone(&record));
        self.bump();
        Recorder {
            inner: Some((record, Arc::clone(self))),
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<SessionRecord> {
        lock(&self.sessions)
            .iter()
            .map(|r| lock(r).clone())
            .collect()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Write access to one session's record. Cheap to call when recording is off.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    inner: Option<(Arc<Mutex<SessionRecord>>, Arc<Registry>)>,
}

impl Recorder {
    /// A recorder that records nothing (unit tests of the state machine, production).
    #[cfg(test)]
    pub(crate) fn disabled() -> Self {
        Self { inner: None }
    }

    /// A recorder not attached to a server, for unit tests that inspect the record.
    #[cfg(test)]
    pub(crate) fn standalone() -> Self {
        Registry::new(true).new_session()
    }

    pub(crate) fn with(&self, f: impl FnOnce(&mut SessionRecord)) {
        if let Some((record, registry)) = &self.inner {
            f(&mut lock(record));
            registry.bump();
        }
    }

    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Option<SessionRecord> {
        self.inner.as_ref().map(|(r, _)| lock(r).clone())
    }
}

/// Poisoning only means another session task panicked mid-update; the record is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
