//! What the local server says: a script of replies, one consumed per response.
//!
//! A real model is not reproducible; a script is. Each response the server creates (on the
//! client's `response.create` or automatically after a VAD turn) takes the next [`Reply`]; when
//! the list is exhausted the fallback applies. The default script is the echo agent that
//! `voiceagent run` uses without an API key: a greeting, then every caller utterance played
//! back from the server's own copy of the committed input audio. Faults (dropped socket, error
//! event, delay) are attached to replies so tests can place them exactly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::assets::{decode_wav_24k_mono, Prompt};

/// What one response contains.
#[derive(Debug, Clone)]
pub enum ReplyKind {
    /// Speak these PCM16 24 kHz samples with this transcript.
    Speak { pcm: Arc<[i16]>, transcript: String },
    /// Play back the last committed user audio (transcript: the scripted user transcript, if
    /// any, else "(Echo)").
    Echo,
    /// Call a function. The client must answer with a `function_call_output` item and a
    /// `response.create`; the next reply is then spoken.
    FunctionCall { name: String, arguments: String },
    /// Speak what a function makes, at run time, from the conversation's latest
    /// `function_call_output` (see [`Reply::speak_fn`]).
    SpeakFn(SpeakFn),
}

/// The signature of [`Reply::speak_fn`]'s function: the latest function output in, PCM16
/// 24 kHz samples and their transcript out.
pub type SpeakFnBody = dyn Fn(&Value) -> (Vec<i16>, String) + Send + Sync;

/// A reply made at run time from the previous tool result (a model reading out an order
/// number it just received). Shared, so a script stays cheap to clone per session.
#[derive(Clone)]
pub struct SpeakFn(pub Arc<SpeakFnBody>);

impl SpeakFn {
    /// Runs the function on `output`.
    pub fn make(&self, output: &Value) -> (Vec<i16>, String) {
        (self.0)(output)
    }
}

impl std::fmt::Debug for SpeakFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpeakFn(..)")
    }
}

/// A failure injected into one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Drop the TCP connection without a close frame after this much audio was sent.
    Disconnect { after_audio_ms: u32 },
    /// Send a close frame with this code and reason after this much audio was sent.
    Close {
        after_audio_ms: u32,
        code: u16,
        reason: String,
    },
    /// After this much audio, send a `server_error` error event and end the response with
    /// `status: "failed"`.
    ServerError {
        after_audio_ms: u32,
        message: String,
    },
}

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    /// Time between `response.created` and the first output item (a slow model).
    pub delay: Duration,
    pub fault: Option<Fault>,
}

impl Reply {
    fn of(kind: ReplyKind) -> Self {
        Self {
            kind,
            delay: Duration::ZERO,
            fault: None,
        }
    }

    /// Speak PCM16 24 kHz samples.
    pub fn speak(pcm: impl Into<Arc<[i16]>>, transcript: impl Into<String>) -> Self {
        Self::of(ReplyKind::Speak {
            pcm: pcm.into(),
            transcript: transcript.into(),
        })
    }

    /// Speak a 24 kHz mono 16-bit WAV file's content.
    pub fn speak_wav(wav: &[u8], transcript: impl Into<String>) -> Result<Self> {
        Ok(Self::speak(decode_wav_24k_mono(wav)?, transcript))
    }

    /// Speak one of the embedded prompts.
    pub fn prompt(prompt: Prompt) -> Self {
        Self::speak(prompt.samples(), prompt.transcript())
    }

    /// Play back the caller's last utterance.
    pub fn echo() -> Self {
        Self::of(ReplyKind::Echo)
    }

    /// Call a function with these JSON arguments.
    pub fn function_call(name: impl Into<String>, arguments: &Value) -> Self {
        Self::of(ReplyKind::FunctionCall {
            name: name.into(),
            arguments: arguments.to_string(),
        })
    }

    /// Speak audio made when the response starts, from the latest `function_call_output` the
    /// client sent: its `output` parsed as JSON (a JSON string when it is not JSON, `null` when
    /// there was none). What a model does with a tool result, e.g. reading out the order number
    /// `confirm_order` returned; the test synthesises the speech and can compare it with what
    /// the caller heard.
    pub fn speak_fn(f: impl Fn(&Value) -> (Vec<i16>, String) + Send + Sync + 'static) -> Self {
        Self::of(ReplyKind::SpeakFn(SpeakFn(Arc::new(f))))
    }

    /// A long, speech-like response (a 220 Hz tone with a 4 Hz syllable envelope), for
    /// barge-in tests.
    pub fn long(duration: Duration, transcript: impl Into<String>) -> Self {
        Self::speak(speech_like(duration), transcript)
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }
}

/// A speech-like test signal at 24 kHz: loud enough for the VAD, with a syllable rhythm.
pub fn speech_like(duration: Duration) -> Vec<i16> {
    let n = (duration.as_secs_f64() * 24_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 24_000.0;
            let envelope = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            let carrier = (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.4 * (2.0 * std::f64::consts::PI * 660.0 * t).sin();
            (9000.0 * envelope * carrier) as i16
        })
        .collect()
}

/// The sequence of replies and scripted user transcripts for one session.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub(crate) replies: VecDeque<Reply>,
    pub(crate) fallback: Option<Reply>,
    pub(crate) user_transcripts: VecDeque<String>,
    pub(crate) greet_on_session_update: bool,
}

impl Script {
    /// An empty script: every response is empty until replies are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// The echo agent: the greeting prompt, then each caller utterance played back.
    ///
    /// The greeting is spoken on the client's first `response.create` (as with the real model,
    /// which never speaks first on its own); use [`Script::greet_on_session_update`] to have
    /// the server start it by itself after the first `session.update`.
    pub fn echo() -> Self {
        Self::new()
            .reply(Reply::prompt(Prompt::Greeting))
            .then(Reply::echo())
    }

    /// Append a reply.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.replies.push_back(reply);
        self
    }

    /// What every response uses once the replies are used up.
    pub fn then(mut self, reply: Reply) -> Self {
        self.fallback = Some(reply);
        self
    }

    /// Text for the next user turn's input transcription (emitted only when the session
    /// enables `audio.input.transcription`, like the real service).
    pub fn user_transcript(mut self, text: impl Into<String>) -> Self {
        self.user_transcripts.push_back(text.into());
        self
    }

    /// Start the first reply automatically after the first successful `session.update`.
    pub fn greet_on_session_update(mut self, yes: bool) -> Self {
        self.greet_on_session_update = yes;
        self
    }

    pub(crate) fn next_reply(&mut self) -> Option<Reply> {
        self.replies.pop_front().or_else(|| self.fallback.clone())
    }
}
