//! One call's driver: moves bytes and time between the engine, the Realtime WebSocket, tool
//! tasks and the [`CallMachine`], which decides everything.
//!
//! [`run_call`] waits on whatever can happen next (a server frame, an uplink frame, an engine
//! event, a tool result, the machine's next deadline, a playback tick) and hands it to the
//! machine with the current time; then it carries out the machine's [`Action`]s in order: send
//! on the socket, answer, hang up, transfer, spawn a tool, change the downlink queue, publish a
//! live event. It keeps only what is I/O: the socket, the engine's media queues, the backlog of
//! audio the downlink queue had no room for yet, and the latency timers around them.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use pjsip_safe::media::{DownlinkApi, Playback, PushError, UplinkFrame};
use pjsip_safe::{CallId, CallMedia, Direction, EngineHandle, MediaInfo};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::call::machine::{Action, CallMachine, CallParams, ToolDone};
use crate::call::playout::{DownlinkOp, Ledger, PROMPT_KEY};
use crate::call::report::{log_latency, CallReport};
use crate::config::BridgeSettings;
use crate::live::LiveBus;
use crate::prompts;
use crate::realtime::client::{connect, RealtimeTarget, Socket};
use crate::realtime::conversation::ConversationConfig;
use crate::tools::{ToolContext, ToolRegistry};

/// How often playback progress is reported while the machine waits for it.
const PLAYBACK_TICK: Duration = Duration::from_millis(10);
/// The longest the driver sleeps without a reason.
const IDLE_WAKE: Duration = Duration::from_secs(1);

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
    pub policy: BridgeSettings,
    /// Tell the caller the call is recorded, before anything else is heard.
    pub recording_notice: bool,
    /// Where live events of this call go.
    pub live: LiveBus,
}

/// Audio waiting for room in the engine's downlink queue, in order.
enum Pending {
    Push(u64, Vec<i16>),
    End(u64),
}

/// The engine's downlink ledger as the machine reads it.
struct EngineLedger<'a> {
    downlink: Option<&'a DownlinkApi>,
    backlog_empty: bool,
}

impl Ledger for EngineLedger<'_> {
    fn played(&self, key: u64) -> u64 {
        self.downlink.map_or(0, |d| d.played_samples(key))
    }
    fn received(&self, key: u64) -> u64 {
        self.downlink.map_or(0, |d| d.received_samples(key))
    }
    fn backlog_empty(&self) -> bool {
        self.backlog_empty
    }
    fn drained(&self) -> bool {
        self.backlog_empty && self.downlink.is_none_or(|d| d.is_drained())
    }
}

/// The I/O half of a call.
struct Driver {
    call: CallId,
    engine: EngineHandle,
    live: LiveBus,
    tools: ToolRegistry,
    ctx: ToolContext,
    tool_tx: mpsc::UnboundedSender<ToolDone>,
    socket: Option<Socket>,
    media: Option<CallMedia>,
    backlog: VecDeque<Pending>,
    /// A delta that started playback on an idle line: when it arrived and the stream position
    /// of its first sample, until the engine reports that sample played.
    first_play: Option<(Instant, u64)>,
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
        recording_notice,
        live,
    } = setup;
    let (tool_tx, mut tool_rx) = mpsc::unbounded_channel();
    let answer_timeout = policy.answer_timeout;
    let mut machine = CallMachine::new(
        CallParams {
            call,
            direction,
            from: from.clone(),
            to: to.clone(),
            conversation,
            policy,
            recording_notice,
        },
        Instant::now(),
        SystemTime::now(),
    );
    let mut driver = Driver {
        call,
        engine,
        live,
        tools,
        ctx: ToolContext {
            call,
            caller: from,
            called: to,
        },
        tool_tx,
        socket: None,
        media: None,
        backlog: VecDeque::new(),
        first_play: None,
    };

    // The session opens while the call rings (the engine's events keep flowing meanwhile).
    let mut connecting = Some(Box::pin(tokio::time::timeout(
        answer_timeout,
        connect(&realtime),
    )));
    let mut events_open = true;
    while !machine.is_done() {
        let now = Instant::now();
        let mut wake = machine.poll_timeout().unwrap_or(now + IDLE_WAKE);
        wake = wake.min(now + IDLE_WAKE);
        if machine.wants_playout() || !driver.backlog.is_empty() {
            wake = wake.min(now + PLAYBACK_TICK);
        }
        tokio::select! {
            result = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                let now = Instant::now();
                match result {
                    Ok(Ok(socket)) => {
                        driver.socket = Some(socket);
                        machine.handle_connected(now);
                    }
                    Ok(Err(e)) => machine.handle_backend_failed(now, &e.to_string()),
                    Err(_) => machine.handle_backend_failed(
                        now,
                        "the Realtime endpoint did not accept the connection in time",
                    ),
                }
            }
            message = next_message(&mut driver.socket) => driver.on_socket(&mut machine, message),
            frame = next_frame(&mut driver.media) => match frame {
                Some(frame) => {
                    if machine.handle_uplink(Instant::now(), &frame.samples) {
                        driver.carry_out(&mut machine).await;
                        machine.note_uplink_latency(frame.captured_at.elapsed());
                    }
                }
                None => {
                    driver.media = None;
                    machine.handle_media_closed();
                }
            },
            event = events.recv(), if events_open => match event {
                Some(event) => driver.on_call_event(&mut machine, event),
                None => {
                    events_open = false;
                    machine.handle_call_ended(Instant::now(), None);
                }
            },
            Some(done) = tool_rx.recv() => machine.handle_tool_done(Instant::now(), done),
            _ = tokio::time::sleep_until(wake.into()) => machine.handle_timeout(Instant::now()),
        }
        driver.carry_out(&mut machine).await;
        driver.report_playout(&mut machine);
        driver.carry_out(&mut machine).await;
    }
    if let Some(mut socket) = driver.socket.take() {
        let _ = socket.close(None).await;
    }
    let report = machine.finish(Instant::now());
    log_latency(&report);
    driver.tools.call_ended(&driver.ctx, &report.transcript);
    report
}

impl Driver {
    fn on_socket(&mut self, machine: &mut CallMachine, message: Option<Result<Message, String>>) {
        let now = Instant::now();
        match message {
            Some(Ok(Message::Text(text))) => machine.handle_server_text(now, &text),
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map_or("no reason".into(), |f| format!("{} {}", f.code, f.reason));
                machine.handle_backend_failed(
                    now,
                    &format!("the Realtime endpoint closed the session ({why})"),
                );
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                machine.handle_backend_failed(now, &format!("the Realtime connection failed: {e}"))
            }
            None => {
                machine.handle_backend_failed(now, "the Realtime endpoint closed the connection")
            }
        }
    }

    fn on_call_event(&mut self, machine: &mut CallMachine, event: CallEvent) {
        let now = Instant::now();
        match event {
            CallEvent::MediaActive { info, media } => {
                let has_media = media.is_some();
                if let Some(media) = media {
                    self.media = Some(media);
                }
                machine.handle_media_active(now, &info, has_media);
            }
            CallEvent::Dtmf(digit) => machine.handle_dtmf(now, digit),
            CallEvent::TransferStatus { code, reason, last } => {
                machine.handle_transfer_status(now, code, &reason, last)
            }
            CallEvent::Ended { code, reason } => {
                self.media = None;
                self.backlog.clear();
                machine.handle_call_ended(now, Some((code, &reason)));
            }
        }
    }

    /// Carries out everything the machine asks for, in order.
    async fn carry_out(&mut self, machine: &mut CallMachine) {
        while let Some(action) = machine.poll_action() {
            match action {
                Action::Send(event) => {
                    let Some(socket) = self.socket.as_mut() else {
                        continue;
                    };
                    if let Err(e) = socket.send(Message::Text(event.to_json().into())).await {
                        if let Some(mut socket) = self.socket.take() {
                            let _ = socket.close(None).await;
                        }
                        machine.handle_backend_failed(
                            Instant::now(),
                            &format!("sending to the Realtime endpoint failed: {e}"),
                        );
                    }
                }
                Action::CloseSocket => {
                    if let Some(mut socket) = self.socket.take() {
                        let _ = socket.close(None).await;
                    }
                }
                Action::Answer => {
                    let result = self.engine.answer(self.call).wait_async().await;
                    machine.handle_answered(Instant::now(), result.map_err(|e| e.to_string()));
                }
                Action::Hangup { code } => {
                    if let Err(e) = self.engine.hangup(self.call, code).wait_async().await {
                        tracing::debug!(call = %self.call, "hangup: {e}");
                    }
                }
                Action::Transfer { target } => {
                    let result = self.engine.transfer(self.call, target).wait_async().await;
                    machine
                        .handle_transfer_started(Instant::now(), result.map_err(|e| e.to_string()));
                }
                Action::RunTool {
                    call_id,
                    name,
                    arguments,
                } => self.run_tool(call_id, name, arguments),
                Action::Downlink(op) => self.downlink(machine, op),
                Action::Publish(event) => self.live.publish(event),
            }
        }
    }

    fn run_tool(&self, call_id: String, name: String, arguments: String) {
        let registry = self.tools.clone();
        let ctx = self.ctx.clone();
        let tx = self.tool_tx.clone();
        tokio::spawn(async move {
            let outcome = registry.run(&ctx, &name, &arguments).await;
            let _ = tx.send(ToolDone {
                call_id,
                name,
                arguments,
                outcome,
            });
        });
    }

    fn downlink(&mut self, machine: &mut CallMachine, op: DownlinkOp) {
        let Some(media) = self.media.as_mut() else {
            self.backlog.clear();
            if op == DownlinkOp::FlushForBargeIn {
                machine.handle_flushed(Instant::now(), &self.ledger());
            }
            return;
        };
        let downlink = &mut media.downlink;
        match op {
            DownlinkOp::Push { key, pcm, received } => {
                if let Some(received) = received {
                    if self.first_play.is_none() && self.backlog.is_empty() && downlink.is_drained()
                    {
                        self.first_play = Some((received, downlink.write_position()));
                    }
                }
                if !self.backlog.is_empty() {
                    self.backlog.push_back(Pending::Push(key, pcm));
                } else if let Err(PushError::Full { .. }) = downlink.push(key, &pcm) {
                    self.backlog.push_back(Pending::Push(key, pcm));
                }
                if let Some(received) = received {
                    machine.note_downlink_latency(received.elapsed());
                }
            }
            DownlinkOp::End { key } => {
                if !self.backlog.is_empty() {
                    self.backlog.push_back(Pending::End(key));
                } else if let Err(PushError::Full { .. }) = downlink.end_of_response(key) {
                    self.backlog.push_back(Pending::End(key));
                }
            }
            DownlinkOp::Flush => {
                downlink.flush();
                self.backlog.clear();
            }
            DownlinkOp::FlushForBargeIn => {
                downlink.flush();
                self.backlog.clear();
                machine.handle_flushed(Instant::now(), &self.ledger());
            }
            DownlinkOp::StopPrompt => {
                downlink.flush();
                downlink.forget(PROMPT_KEY);
            }
            DownlinkOp::Forget { key } => downlink.forget(key),
            DownlinkOp::Prompt(prompt) => {
                let samples = prompts::samples_48k(prompt);
                if downlink.push(PROMPT_KEY, &samples).is_ok() {
                    let _ = downlink.end_of_response(PROMPT_KEY);
                }
            }
        }
    }

    fn ledger(&self) -> EngineLedger<'_> {
        EngineLedger {
            downlink: self.media.as_ref().map(|m| &m.downlink),
            backlog_empty: self.backlog.is_empty(),
        }
    }

    /// Retries the backlog, times the first played sample, and tells the machine what the
    /// ledger says.
    fn report_playout(&mut self, machine: &mut CallMachine) {
        self.retry_backlog();
        self.check_first_play(machine);
        machine.handle_playout(Instant::now(), &self.ledger());
    }

    fn retry_backlog(&mut self) {
        let Some(media) = self.media.as_mut() else {
            self.backlog.clear();
            return;
        };
        while let Some(pending) = self.backlog.pop_front() {
            let result = match &pending {
                Pending::Push(key, pcm) => media.downlink.push(*key, pcm),
                Pending::End(key) => media.downlink.end_of_response(*key),
            };
            match result {
                Ok(()) => {}
                Err(PushError::Full { .. }) => {
                    self.backlog.push_front(pending);
                    break;
                }
                Err(PushError::Closed) => {
                    self.backlog.clear();
                    break;
                }
            }
        }
    }

    /// Finishes the timing of a delta that started playback once the engine played it.
    fn check_first_play(&mut self, machine: &mut CallMachine) {
        let (Some((received, pos)), Some(media)) = (self.first_play, &self.media) else {
            return;
        };
        match media.downlink.playback_of(pos) {
            Playback::Pending => {}
            Playback::Played(at) => {
                self.first_play = None;
                machine.note_play_latency(at.saturating_duration_since(received));
            }
            Playback::Unknown => self.first_play = None,
        }
    }
}
