//! One call's bridge between the engine's audio and a Realtime session.
//!
//! [`run_call`] is the only place where the call's pieces meet: the engine's 20 ms frames, the
//! WebSocket, tool tasks and timers. It owns no protocol logic: every decision (when to answer,
//! what to send, when to truncate) comes from the I/O-free [`Conversation`]; the bridge carries
//! its [`Output`]s out and reports back what happened (audio actually heard, playback drained,
//! tool results).
//!
//! Audio: uplink frames (48 kHz) are resampled to 24 kHz and appended one by one, so nothing
//! waits for a batch; downlink deltas are resampled per item into the engine's queue, which
//! counts the samples the caller really heard. After a barge-in that count (halved back to
//! 24 kHz) is the truncation point.

pub mod resample;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use pjsip_safe::media::{Playback, PushError, UplinkFrame};
use pjsip_safe::{CallId, CallMedia, Direction, EngineHandle, MediaInfo, Secret};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::live::{Level, LiveBus, LiveEvent};
use crate::prompts::{self, Prompt};
use crate::realtime::conversation::{
    Conversation, ConversationConfig, Output, Transcript, TranscriptEvent,
};
use crate::realtime::wire::ClientEvent;
use crate::tools::{ToolContext, ToolOutcome, ToolRegistry};
use resample::StreamResampler;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Downlink key of local prompts (apology, hold); model items use small increasing keys.
const PROMPT_KEY: u64 = u64::MAX - 1;
/// How often playback progress is checked while something waits for it.
const PLAYBACK_TICK: Duration = Duration::from_millis(10);

/// Where the Realtime session lives.
#[derive(Debug, Clone)]
pub struct RealtimeTarget {
    /// `ws://` or `wss://` URL of the Realtime endpoint, without the model parameter.
    pub url: String,
    pub model: String,
    pub api_key: Option<Secret>,
}

/// What happens when the Realtime backend cannot be reached or fails mid-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFailure {
    /// Before answering: reject with 503. Mid-call: play the apology and hang up.
    Reject,
    /// Answer (if not yet) and play the local apology prompt, then hang up.
    Apology,
    /// Play the apology, then transfer to the configured target (hang up if there is none).
    ApologyThenTransfer,
}

/// Per-call behaviour that is not protocol.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// How long to wait for `session.updated` before giving up on the backend.
    pub answer_timeout: Duration,
    pub backend_failure: BackendFailure,
    /// Play the hold sound when a tool has been running this long.
    pub tool_hold_after: Duration,
    /// After the caller hangs up: how long pending tool calls and transcripts may take.
    pub hangup_grace: Duration,
    /// SIP URI for `transfer_call` (and `ApologyThenTransfer`).
    pub transfer_target: Option<String>,
    /// Let an incoming call ring at least this long before answering.
    pub ring_delay: Duration,
    /// Tell the caller the call is recorded, before anything else is heard.
    pub recording_notice: bool,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            answer_timeout: Duration::from_secs(5),
            backend_failure: BackendFailure::Apology,
            tool_hold_after: Duration::from_millis(1500),
            hangup_grace: Duration::from_secs(3),
            transfer_target: None,
            ring_delay: Duration::ZERO,
            recording_notice: false,
        }
    }
}

/// What the engine reports about this call, forwarded by the service.
#[derive(Debug)]
pub enum CallEvent {
    MediaActive {
        info: MediaInfo,
        media: Option<CallMedia>,
    },
    Dtmf(char),
    TransferStatus {
        code: u16,
        reason: String,
        last: bool,
    },
    Ended {
        code: u16,
        reason: String,
    },
}

/// Everything a call's bridge starts with.
pub struct CallSetup {
    pub call: CallId,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub engine: EngineHandle,
    pub events: mpsc::UnboundedReceiver<CallEvent>,
    pub conversation: ConversationConfig,
    pub tools: ToolRegistry,
    pub realtime: RealtimeTarget,
    pub policy: CallPolicy,
    /// Where live events of this call go.
    pub live: LiveBus,
}

/// How often audio levels are published.
const LEVEL_INTERVAL: Duration = Duration::from_millis(250);

/// A tool call as it happened, for the call's record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: String,
    pub output: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub at_ms: u64,
}

/// What happened on a call; logged at its end and kept by the service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallReport {
    pub call: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    #[serde(with = "unix_ms")]
    pub started_at: SystemTime,
    pub answered_after_ms: Option<u64>,
    pub duration_ms: u64,
    pub codec: Option<String>,
    pub clock_rate: Option<u32>,
    pub end_reason: String,
    pub barge_ins: u32,
    pub truncations: Vec<(String, u64)>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub errors: Vec<String>,
    pub backend_failed: bool,
    pub transcript: Transcript,
    /// Frame captured by the engine → `append` sent, per frame (µs).
    #[serde(skip)]
    pub uplink_latency_us: Vec<u32>,
    /// Delta received → handed to the engine's queue (µs).
    #[serde(skip)]
    pub downlink_latency_us: Vec<u32>,
    /// Delta received → its first sample handed to PJSIP's clock tick (µs), for each delta
    /// that starts playback on an idle line (the start of every answer). Later deltas of an
    /// answer wait behind the audio queued before them, by design, so they are not timed.
    #[serde(skip)]
    pub downlink_play_latency_us: Vec<u32>,
}

mod unix_ms {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        s.serialize_u64(ms)
    }
}

struct ToolDone {
    call_id: String,
    name: String,
    arguments: String,
    outcome: ToolOutcome,
    started: Instant,
}

/// Downlink bookkeeping per model item.
struct PlayItem {
    item_id: String,
    key: u64,
    /// 24 kHz samples received for it.
    received_24k: u64,
    ended: bool,
}

/// Connects to the Realtime endpoint (GA: no beta header), with the model in the query string.
pub async fn connect(target: &RealtimeTarget) -> anyhow::Result<Socket> {
    let sep = if target.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}model={}", target.url, target.model);
    let mut request = url.as_str().into_client_request()?;
    if let Some(key) = &target.api_key {
        let value = format!("Bearer {}", key.expose()).parse().map_err(|_| {
            anyhow::anyhow!("OPENAI_API_KEY contains characters not allowed in an HTTP header")
        })?;
        request.headers_mut().insert("Authorization", value);
    }
    let (socket, _response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to the Realtime endpoint {}: {e}",
                target.url
            )
        })?;
    Ok(socket)
}

/// Connects and waits for `session.created`: proves the endpoint accepts the key and model.
pub async fn probe(target: &RealtimeTarget) -> anyhow::Result<()> {
    let mut socket = connect(target).await?;
    while let Some(message) = socket.next().await {
        match message? {
            Message::Text(text) => {
                let value: serde_json::Value = serde_json::from_str(&text)?;
                match value.get("type").and_then(|t| t.as_str()) {
                    Some("session.created") => {
                        let _ = socket.close(None).await;
                        return Ok(());
                    }
                    Some("error") => {
                        anyhow::bail!("the endpoint answered with an error: {}", value["error"])
                    }
                    _ => {}
                }
            }
            Message::Close(frame) => anyhow::bail!(
                "the endpoint closed the connection: {}",
                frame.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason))
            ),
            _ => {}
        }
    }
    anyhow::bail!("the endpoint closed the connection before session.created")
}

async fn next_frame(media: &mut Option<CallMedia>) -> Option<UplinkFrame> {
    match media {
        Some(m) => m.uplink.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_message(socket: &mut Option<Socket>) -> Option<Result<Message, String>> {
    match socket {
        Some(s) => s.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

struct Bridge {
    call: CallId,
    direction: Direction,
    engine: EngineHandle,
    tools: ToolRegistry,
    policy: CallPolicy,
    ctx: ToolContext,
    conv: Conversation,
    socket: Option<Socket>,
    media: Option<CallMedia>,
    started: Instant,
    answered: bool,
    session_ready: bool,
    /// Audio the model sent before media was up (greeting racing the 200 OK).
    pre_media: Vec<Output>,
    up: StreamResampler,
    up_buf: Vec<i16>,
    down: StreamResampler,
    down_buf: Vec<i16>,
    items: VecDeque<PlayItem>,
    next_key: u64,
    /// Audio the engine's queue had no room for yet.
    backlog: VecDeque<(u64, Vec<i16>)>,
    /// A delta that started playback on an idle line: when it arrived and the stream position
    /// of its first sample, until the engine reports that sample played.
    first_play: Option<(Instant, u64)>,
    tool_tx: mpsc::UnboundedSender<ToolDone>,
    pending_tools: HashMap<String, Instant>,
    hold_playing: bool,
    hangup_after_playback: bool,
    transfer_after_playback: Option<String>,
    transfer_in_progress: Option<String>,
    live: LiveBus,
    /// When the server reported the end of the caller's speech (for the turn latency).
    speech_stopped_at: Option<Instant>,
    /// Transcript entries already published.
    published: usize,
    caller_level: Level,
    agent_level: Level,
    last_levels: Instant,
    /// The backend failed; the apology plays and then the call ends.
    failing: bool,
    hung_up: bool,
    ended: bool,
    report: CallReport,
}

/// Runs one call from ringing (or dialling) to its end and returns what happened.
pub async fn run_call(setup: CallSetup) -> CallReport {
    let CallSetup {
        call,
        direction,
        from,
        to,
        engine,
        mut events,
        conversation,
        tools,
        realtime,
        policy,
        live,
    } = setup;
    let started = Instant::now();
    let (tool_tx, mut tool_rx) = mpsc::unbounded_channel();
    let report = CallReport {
        call: call.to_string(),
        direction: direction.as_str(),
        from: from.clone(),
        to: to.clone(),
        started_at: SystemTime::now(),
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
    let mut bridge = Bridge {
        call,
        direction,
        engine,
        tools,
        policy,
        ctx: ToolContext {
            call,
            caller: from,
            called: to,
        },
        conv: Conversation::new(conversation, started),
        socket: None,
        media: None,
        started,
        answered: direction == Direction::Outgoing,
        session_ready: false,
        pre_media: Vec::new(),
        up: StreamResampler::streaming(48_000, 24_000, pjsip_safe::media::FRAME_SAMPLES)
            .expect("48 kHz -> 24 kHz is a valid conversion"),
        up_buf: Vec::with_capacity(960),
        down: StreamResampler::new(24_000, 48_000, 480).expect("24 kHz -> 48 kHz is valid"),
        down_buf: Vec::with_capacity(48_000),
        items: VecDeque::new(),
        next_key: 1,
        backlog: VecDeque::new(),
        first_play: None,
        tool_tx,
        pending_tools: HashMap::new(),
        hold_playing: false,
        hangup_after_playback: false,
        transfer_after_playback: None,
        transfer_in_progress: None,
        live,
        speech_stopped_at: None,
        published: 0,
        caller_level: Level::default(),
        agent_level: Level::default(),
        last_levels: started,
        failing: false,
        hung_up: false,
        ended: false,
        report,
    };

    // Open the session while the call rings; answer once it is confirmed.
    let answer_deadline = started + bridge.policy.answer_timeout;
    match tokio::time::timeout(bridge.policy.answer_timeout, connect(&realtime)).await {
        Ok(Ok(socket)) => bridge.socket = Some(socket),
        Ok(Err(e)) => bridge.backend_failed(&e.to_string()).await,
        Err(_) => {
            bridge
                .backend_failed("the Realtime endpoint did not accept the connection in time")
                .await
        }
    }

    let mut grace_until: Option<Instant> = None;
    loop {
        if bridge.ended {
            let tools_done = bridge.pending_tools.is_empty();
            let deadline = *grace_until.get_or_insert(Instant::now() + bridge.policy.hangup_grace);
            if tools_done || Instant::now() >= deadline {
                break;
            }
        }
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        if let Some(t) = bridge.conv.poll_timeout() {
            wake = wake.min(t);
        }
        if !bridge.session_ready && !bridge.failing {
            wake = wake.min(answer_deadline);
        }
        if bridge.waits_for_playback() {
            wake = wake.min(now + PLAYBACK_TICK);
        }
        if let Some(g) = grace_until {
            wake = wake.min(g);
        }
        tokio::select! {
            message = next_message(&mut bridge.socket) => bridge.on_socket(message).await,
            frame = next_frame(&mut bridge.media) => match frame {
                Some(frame) => bridge.on_uplink(frame).await,
                None => bridge.media = None,
            },
            event = events.recv() => match event {
                Some(event) => bridge.on_call_event(event).await,
                None => bridge.ended = true,
            },
            Some(done) = tool_rx.recv() => bridge.on_tool_done(done),
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                bridge.conv.handle_timeout(now);
                if !bridge.session_ready && !bridge.failing && !bridge.ended && now >= answer_deadline {
                    bridge.backend_failed("no session.updated from the Realtime endpoint in time").await;
                }
            }
        }
        bridge.drive().await;
        bridge.check_playback().await;
    }
    bridge.finish().await
}

impl Bridge {
    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn waits_for_playback(&self) -> bool {
        self.media.is_some()
            && (!self.items.is_empty()
                || !self.backlog.is_empty()
                || self.hangup_after_playback
                || self.transfer_after_playback.is_some()
                || self.hold_playing
                || !self.pending_tools.is_empty()
                || self.failing)
    }

    async fn send(&mut self, event: ClientEvent) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if let Err(e) = socket.send(Message::Text(event.to_json().into())).await {
            self.backend_failed(&format!("sending to the Realtime endpoint failed: {e}"))
                .await;
        }
    }

    async fn on_socket(&mut self, message: Option<Result<Message, String>>) {
        let now = Instant::now();
        match message {
            Some(Ok(Message::Text(text))) => {
                // A cheap look before parsing: only this one event starts the turn clock.
                if text.contains("\"input_audio_buffer.speech_stopped\"") {
                    self.speech_stopped_at = Some(now);
                }
                self.conv.handle_server_text(now, &text)
            }
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason));
                self.backend_failed(&format!("the Realtime endpoint closed the session ({why})"))
                    .await;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                self.backend_failed(&format!("the Realtime connection failed: {e}"))
                    .await
            }
            None => {
                self.backend_failed("the Realtime endpoint closed the connection")
                    .await
            }
        }
    }

    async fn on_uplink(&mut self, frame: UplinkFrame) {
        self.caller_level.add(&frame.samples);
        if self.last_levels.elapsed() >= LEVEL_INTERVAL {
            self.last_levels = Instant::now();
            self.live.publish(LiveEvent::Levels {
                call: self.call.to_string(),
                caller_dbfs: self.caller_level.take_dbfs(),
                agent_dbfs: self.agent_level.take_dbfs(),
            });
        }
        if !self.session_ready || self.socket.is_none() || self.failing {
            return;
        }
        self.up_buf.clear();
        self.up.push(&frame.samples, &mut self.up_buf);
        if self.up_buf.is_empty() {
            return;
        }
        let event = ClientEvent::append_audio(&self.up_buf);
        self.send(event).await;
        if self.report.uplink_latency_us.len() < 100_000 {
            self.report
                .uplink_latency_us
                .push(frame.captured_at.elapsed().as_micros() as u32);
        }
    }

    async fn on_call_event(&mut self, event: CallEvent) {
        let now = Instant::now();
        match event {
            CallEvent::MediaActive { info, media } => {
                self.report.codec = Some(info.codec.clone());
                self.report.clock_rate = Some(info.clock_rate);
                if let Some(media) = media {
                    self.media = Some(media);
                    if self.direction == Direction::Outgoing {
                        // The callee answered (or started early media: 183 with SDP).
                        self.report.answered_after_ms = Some(self.elapsed_ms());
                        self.live.publish(LiveEvent::CallAnswered {
                            call: self.call.to_string(),
                        });
                    }
                    if self.policy.recording_notice && !self.failing {
                        // Queued first: the greeting (already on its way) plays after it.
                        self.play_prompt(Prompt::RecordingNotice);
                    }
                    for output in std::mem::take(&mut self.pre_media) {
                        self.carry_out(output).await;
                    }
                    if self.failing {
                        self.play_prompt(Prompt::Apology);
                    }
                }
            }
            CallEvent::Dtmf(digit) => {
                tracing::info!(call = %self.call, %digit, "DTMF");
                if let Err(e) = self.conv.handle_dtmf(now, digit) {
                    tracing::debug!(call = %self.call, "DTMF not forwarded: {e}");
                }
            }
            CallEvent::TransferStatus { code, reason, last } => {
                tracing::info!(call = %self.call, code, %reason, last, "transfer progress");
                if last {
                    if let Some(call_id) = self.transfer_in_progress.take() {
                        let ok = (200..300).contains(&code);
                        let output = json!({"ok": ok, "status": code, "reason": reason});
                        let _ = self
                            .conv
                            .handle_tool_result(now, &call_id, output.to_string());
                        if ok {
                            self.hang_up().await;
                        }
                    } else if self.failing {
                        self.hang_up().await;
                    }
                }
            }
            CallEvent::Ended { code, reason } => {
                self.report.end_reason = format!("{code} {reason}");
                self.ended = true;
                self.media = None;
            }
        }
    }

    fn on_tool_done(&mut self, done: ToolDone) {
        let now = Instant::now();
        self.pending_tools.remove(&done.call_id);
        tracing::info!(
            call = %self.call,
            tool = %done.name,
            ok = done.outcome.ok,
            duration_ms = done.outcome.duration.as_millis() as u64,
            "tool finished"
        );
        self.report.tool_calls.push(ToolCallRecord {
            name: done.name,
            arguments: done.arguments,
            output: done.outcome.output.clone(),
            ok: done.outcome.ok,
            duration_ms: done.outcome.duration.as_millis() as u64,
            at_ms: done.started.duration_since(self.started).as_millis() as u64,
        });
        self.live.publish(LiveEvent::ToolCall {
            call: self.call.to_string(),
            name: self
                .report
                .tool_calls
                .last()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            arguments: self
                .report
                .tool_calls
                .last()
                .map(|t| t.arguments.clone())
                .unwrap_or_default(),
            output: done.outcome.output.clone(),
            ok: done.outcome.ok,
            duration_ms: done.outcome.duration.as_millis() as u64,
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
    }

    /// Carries out everything the conversation asks for.
    async fn drive(&mut self) {
        while let Some(output) = self.conv.poll_output() {
            self.carry_out(output).await;
        }
        self.publish_transcript();
    }

    /// Publishes transcript lines the conversation added since the last call.
    fn publish_transcript(&mut self) {
        let entries = &self.conv.transcript().entries;
        for entry in entries.iter().skip(self.published) {
            let (speaker, text) = match &entry.event {
                TranscriptEvent::Caller { text, .. } => ("caller", text),
                TranscriptEvent::Agent { text, .. } => ("agent", text),
                _ => continue,
            };
            self.live.publish(LiveEvent::Transcript {
                call: self.call.to_string(),
                speaker,
                text: text.clone(),
                at_ms: entry.at_ms,
            });
        }
        self.published = entries.len();
    }

    async fn carry_out(&mut self, output: Output) {
        let now = Instant::now();
        match output {
            Output::Send(event) => self.send(event).await,
            Output::PlayAudio { .. } | Output::AudioEnd { .. } if self.media.is_none() => {
                if !self.ended {
                    self.pre_media.push(output);
                }
            }
            Output::PlayAudio { item_id, samples } => self.play(item_id, &samples, now),
            Output::AudioEnd { item_id } => self.end_item(&item_id),
            Output::FlushPlayback { item_id } => self.flush_playback(&item_id, now),
            Output::RunTool {
                call_id,
                name,
                arguments,
            } => self.run_tool(call_id, name, arguments),
            Output::HangUpAfterPlayback => self.hangup_after_playback = true,
            Output::TransferAfterPlayback { call_id, .. } => {
                self.transfer_after_playback = Some(call_id)
            }
            Output::SessionReady => {
                self.session_ready = true;
                if !self.answered && !self.failing {
                    let ring_until = self.started + self.policy.ring_delay;
                    tokio::time::sleep_until(ring_until.into()).await;
                    match self.engine.answer(self.call).wait_async().await {
                        Ok(()) => {
                            self.answered = true;
                            self.report.answered_after_ms = Some(self.elapsed_ms());
                            tracing::info!(call = %self.call, "session ready; call answered");
                            self.live.publish(LiveEvent::CallAnswered {
                                call: self.call.to_string(),
                            });
                        }
                        Err(e) => {
                            tracing::warn!(call = %self.call, "answering failed: {e}");
                            self.report.errors.push(format!("answer: {e}"));
                        }
                    }
                }
            }
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
            Output::Fatal(e) => self.backend_failed(&e.to_string()).await,
        }
    }

    fn media_push(&mut self, key: u64, pcm: Vec<i16>) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        if !self.backlog.is_empty() {
            self.backlog.push_back((key, pcm));
            return;
        }
        match media.downlink.push(key, &pcm) {
            Ok(()) => {}
            Err(PushError::Full { .. }) => self.backlog.push_back((key, pcm)),
            Err(PushError::Closed) => {}
        }
    }

    fn play(&mut self, item_id: String, samples: &[i16], received: Instant) {
        if self.hold_playing {
            self.stop_prompt();
        }
        let is_new = self
            .items
            .back()
            .is_none_or(|i| i.item_id != item_id || i.ended);
        if is_new {
            if let Some(stopped) = self.speech_stopped_at.take() {
                // End of the caller's turn (as the server's VAD saw it) → first answer audio.
                self.live.publish(LiveEvent::TurnLatency {
                    call: self.call.to_string(),
                    ms: received.duration_since(stopped).as_millis() as u64,
                });
            }
            self.down.reset();
            let key = self.next_key;
            self.next_key += 1;
            self.items.push_back(PlayItem {
                item_id,
                key,
                received_24k: 0,
                ended: false,
            });
        }
        let item = self.items.back_mut().expect("pushed above");
        item.received_24k += samples.len() as u64;
        let key = item.key;
        let mut out = std::mem::take(&mut self.down_buf);
        out.clear();
        self.down.push(samples, &mut out);
        self.agent_level.add(&out);
        if !out.is_empty() {
            self.note_first_play(received);
            self.media_push(key, out.clone());
        }
        self.down_buf = out;
        if self.report.downlink_latency_us.len() < 100_000 {
            self.report
                .downlink_latency_us
                .push(received.elapsed().as_micros() as u32);
        }
    }

    /// Starts timing "delta received → first sample played" if this delta starts playback on
    /// an idle line.
    fn note_first_play(&mut self, received: Instant) {
        if self.first_play.is_some() || !self.backlog.is_empty() {
            return;
        }
        if let Some(media) = &self.media {
            if media.downlink.is_drained() {
                self.first_play = Some((received, media.downlink.write_position()));
            }
        }
    }

    /// Finishes the timing started by `note_first_play` once the engine has played the sample.
    fn check_first_play(&mut self) {
        let (Some((received, pos)), Some(media)) = (self.first_play, &self.media) else {
            return;
        };
        match media.downlink.playback_of(pos) {
            Playback::Pending => {}
            Playback::Played(at) => {
                self.first_play = None;
                if self.report.downlink_play_latency_us.len() < 100_000 {
                    self.report
                        .downlink_play_latency_us
                        .push(at.saturating_duration_since(received).as_micros() as u32);
                }
            }
            Playback::Unknown => self.first_play = None,
        }
    }

    fn end_item(&mut self, item_id: &str) {
        let Some(item) = self
            .items
            .iter_mut()
            .find(|i| i.item_id == item_id && !i.ended)
        else {
            return;
        };
        item.ended = true;
        let key = item.key;
        let mut out = Vec::new();
        self.down.finish(&mut out);
        if !out.is_empty() {
            self.media_push(key, out);
        }
        if let Some(media) = self.media.as_mut() {
            if self.backlog.is_empty() {
                let _ = media.downlink.end_of_response(key);
            }
        }
    }

    fn flush_playback(&mut self, item_id: &str, now: Instant) {
        self.report.barge_ins += 1;
        if let Some(media) = self.media.as_mut() {
            media.downlink.flush();
        }
        self.backlog.clear();
        self.down.reset();
        // Report the interrupted item and every later one we held audio for.
        let from = self
            .items
            .iter()
            .position(|i| i.item_id == item_id)
            .unwrap_or(self.items.len());
        let interrupted: Vec<PlayItem> = self.items.drain(from..).collect();
        let mut reported_target = false;
        for item in interrupted {
            let played_48k = self
                .media
                .as_ref()
                .map_or(0, |m| m.downlink.played_samples(item.key));
            let heard_24k = (played_48k / 2).min(item.received_24k);
            tracing::info!(
                call = %self.call,
                item = %item.item_id,
                heard_ms = heard_24k / 24,
                received_ms = item.received_24k / 24,
                "barge-in: playback flushed"
            );
            self.report
                .truncations
                .push((item.item_id.clone(), heard_24k / 24));
            self.live.publish(LiveEvent::BargeIn {
                call: self.call.to_string(),
                item_id: item.item_id.clone(),
                heard_ms: heard_24k / 24,
            });
            reported_target |= item.item_id == item_id;
            self.conv
                .handle_playback_flushed(now, &item.item_id, heard_24k);
            if let Some(media) = self.media.as_mut() {
                media.downlink.forget(item.key);
            }
        }
        if !reported_target {
            // Nothing of it reached the engine yet (e.g. still before media).
            self.pre_media.clear();
            self.conv.handle_playback_flushed(now, item_id, 0);
        }
    }

    fn run_tool(&mut self, call_id: String, name: String, arguments: String) {
        tracing::info!(call = %self.call, tool = %name, %arguments, "tool call");
        let registry = self.tools.clone();
        let ctx = self.ctx.clone();
        let tx = self.tool_tx.clone();
        let started = Instant::now();
        self.pending_tools.insert(call_id.clone(), started);
        tokio::spawn(async move {
            let outcome = registry.run(&ctx, &name, &arguments).await;
            let _ = tx.send(ToolDone {
                call_id,
                name,
                arguments,
                outcome,
                started,
            });
        });
    }

    fn play_prompt(&mut self, prompt: Prompt) {
        let samples = prompts::samples_48k(prompt);
        if let Some(media) = self.media.as_mut() {
            if media.downlink.push(PROMPT_KEY, &samples).is_ok() {
                let _ = media.downlink.end_of_response(PROMPT_KEY);
            }
        }
    }

    fn stop_prompt(&mut self) {
        if let Some(media) = self.media.as_mut() {
            media.downlink.flush();
            media.downlink.forget(PROMPT_KEY);
        }
        self.hold_playing = false;
    }

    fn drained(&self) -> bool {
        self.backlog.is_empty() && self.media.as_ref().is_none_or(|m| m.downlink.is_drained())
    }

    async fn check_playback(&mut self) {
        let now = Instant::now();
        // Retry audio the queue had no room for.
        while let Some((key, pcm)) = self.backlog.pop_front() {
            let Some(media) = self.media.as_mut() else {
                break;
            };
            match media.downlink.push(key, &pcm) {
                Ok(()) => {
                    let ended = self.items.iter().any(|i| i.key == key && i.ended);
                    if ended && self.backlog.iter().all(|(k, _)| *k != key) {
                        let _ = media.downlink.end_of_response(key);
                    }
                }
                Err(PushError::Full { .. }) => {
                    self.backlog.push_front((key, pcm));
                    break;
                }
                Err(PushError::Closed) => {
                    self.backlog.clear();
                    break;
                }
            }
        }
        self.check_first_play();
        // Items fully heard.
        if let Some(media) = self.media.as_mut() {
            while let Some(item) = self.items.front() {
                let played = media.downlink.played_samples(item.key) / 2;
                if item.ended && played >= item.received_24k && self.backlog.is_empty() {
                    let item = self.items.pop_front().expect("front exists");
                    media.downlink.forget(item.key);
                    self.conv.handle_playback_drained(now, &item.item_id);
                } else {
                    break;
                }
            }
        }
        self.drive().await;

        let drained = self.drained();
        // Hold sound while a slow tool runs and nothing else plays.
        if !self.failing && drained && self.media.is_some() {
            let slow = self
                .pending_tools
                .values()
                .any(|t| t.elapsed() >= self.policy.tool_hold_after);
            if slow {
                self.hold_playing = true;
                self.play_prompt(Prompt::Hold);
            } else if self.hold_playing && self.pending_tools.is_empty() {
                self.hold_playing = false;
            }
        }
        if drained && self.items.is_empty() {
            if self.hangup_after_playback && !self.hung_up {
                self.hang_up().await;
            }
            if let Some(call_id) = self.transfer_after_playback.take() {
                self.transfer(call_id).await;
            }
            if self.failing
                && self.media.is_some()
                && !self.hung_up
                && self.transfer_in_progress.is_none()
            {
                let transfer = self.policy.backend_failure == BackendFailure::ApologyThenTransfer;
                match (&self.policy.transfer_target, transfer) {
                    (Some(target), true) => {
                        let target = target.clone();
                        if self
                            .engine
                            .transfer(self.call, target)
                            .wait_async()
                            .await
                            .is_err()
                        {
                            self.hang_up().await;
                        } else {
                            // The final NOTIFY ends the call (see TransferStatus).
                            self.transfer_in_progress = Some(String::new());
                        }
                    }
                    _ => self.hang_up().await,
                }
            }
        }
    }

    async fn transfer(&mut self, call_id: String) {
        let now = Instant::now();
        let Some(target) = self.policy.transfer_target.clone() else {
            let output = json!({"ok": false, "error": "no transfer target is configured (TRANSFER_TARGET); offer a callback instead"});
            let _ = self
                .conv
                .handle_tool_result(now, &call_id, output.to_string());
            return;
        };
        match self
            .engine
            .transfer(self.call, target.clone())
            .wait_async()
            .await
        {
            Ok(()) => {
                tracing::info!(call = %self.call, %target, "blind transfer requested");
                self.transfer_in_progress = Some(call_id);
            }
            Err(e) => {
                let output = json!({"ok": false, "error": format!("the transfer could not be started: {e}")});
                let _ = self
                    .conv
                    .handle_tool_result(now, &call_id, output.to_string());
            }
        }
    }

    async fn hang_up(&mut self) {
        if self.hung_up || self.ended {
            return;
        }
        self.hung_up = true;
        if let Err(e) = self.engine.hangup(self.call, 0).wait_async().await {
            tracing::debug!(call = %self.call, "hangup: {e}");
        }
    }

    /// The backend is gone or unusable: the caller hears an apology (or a 503) and the call ends.
    async fn backend_failed(&mut self, why: &str) {
        if self.failing || self.ended {
            return;
        }
        tracing::error!(call = %self.call, "Realtime backend failed: {why}");
        self.failing = true;
        self.report.backend_failed = true;
        self.report.errors.push(format!("backend: {why}"));
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
        if !self.answered {
            if self.policy.backend_failure == BackendFailure::Reject {
                let _ = self.engine.hangup(self.call, 503).wait_async().await;
                self.hung_up = true;
                return;
            }
            match self.engine.answer(self.call).wait_async().await {
                Ok(()) => {
                    self.answered = true;
                    self.report.answered_after_ms = Some(self.elapsed_ms());
                }
                Err(e) => {
                    tracing::warn!(call = %self.call, "answering for the apology failed: {e}")
                }
            }
        }
        // Whatever the model was saying stops; the apology plays once media is up.
        if let Some(media) = self.media.as_mut() {
            media.downlink.flush();
        }
        self.items.clear();
        self.backlog.clear();
        self.pre_media.clear();
        self.hangup_after_playback = false;
        self.play_prompt(Prompt::Apology);
    }

    async fn finish(mut self) -> CallReport {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
        if !self.ended && !self.hung_up {
            let _ = self.engine.hangup(self.call, 0).wait_async().await;
        }
        self.report.duration_ms = self.elapsed_ms();
        log_latency(&self.report);
        self.report.transcript = self.conv.transcript().clone();
        self.tools.call_ended(&self.ctx, &self.report.transcript);
        self.report
    }
}

/// The `p`-th percentile (0..=100) of `values`, or 0 when there are none.
fn percentile(values: &[u32], p: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One line per call with the bridge's own latencies, so operators (and the bridge benchmark)
/// see them without an API: uplink = frame captured by the port → `append` sent; downlink =
/// delta received → its audio in the engine's queue; downlink_play = delta received → its
/// first sample handed to PJSIP's clock tick, for deltas that start an answer.
fn log_latency(report: &CallReport) {
    let (up, down) = (&report.uplink_latency_us, &report.downlink_latency_us);
    let play = &report.downlink_play_latency_us;
    tracing::info!(
        call = %report.call,
        uplink_frames = up.len(),
        uplink_p50_us = percentile(up, 50.0),
        uplink_p99_us = percentile(up, 99.0),
        uplink_max_us = up.iter().copied().max().unwrap_or(0),
        downlink_deltas = down.len(),
        downlink_p50_us = percentile(down, 50.0),
        downlink_p99_us = percentile(down, 99.0),
        downlink_max_us = down.iter().copied().max().unwrap_or(0),
        downlink_play_starts = play.len(),
        downlink_play_p50_us = percentile(play, 50.0),
        downlink_play_p99_us = percentile(play, 99.0),
        downlink_play_max_us = play.iter().copied().max().unwrap_or(0),
        "bridge latency"
    );
}

#[cfg(test)]
mod latency_tests {
    use super::percentile;

    #[test]
    fn percentiles_pick_ranked_values() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 99.0), 0);
    }
}
