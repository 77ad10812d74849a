//! `voiceagent run` (and `call`): starts the engine, gives every call its own bridge task,
//! forwards the engine's events to them and shuts everything down in bounded time.
//!
//! The service owns no call logic; it is a dispatcher. Active calls and the reports of finished
//! ones live in [`CallBook`] (in [`crate::state`], below the service and the API), which the HTTP
//! API reads.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pjsip_safe::{CallId, Direction, Engine, EngineConfig, Event, Registration};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::bridge::{self, CallEvent, CallSetup};
use crate::call::report::CallReport;
use crate::config::BridgeSettings;
use crate::live::LiveEvent;
use crate::realtime::conversation::ConversationConfig;
use crate::realtime::server::{LocalRealtimeServer, ServerConfig, ServerHandle};
use crate::realtime::RealtimeTarget;
use crate::state::{ActiveCall, Control, Shared};
use crate::tools::ToolRegistry;

/// Which Realtime backend the calls use.
#[derive(Debug, Clone)]
pub enum Backend {
    /// OpenAI or any other GA-compatible endpoint.
    External(RealtimeTarget),
    /// The built-in local Realtime server with its echo agent (no API key configured).
    Embedded { model: String },
}

/// Everything `run` needs.
pub struct ServiceOptions {
    pub engine: EngineConfig,
    pub backend: Backend,
    pub conversation: ConversationConfig,
    /// Per-call behaviour: ring delay, answer timeout, backend failure, hold, transfer, grace.
    pub policy: BridgeSettings,
    /// Tell callers the call is recorded (recording on and the notice wanted).
    pub recording_notice: bool,
    pub tools: ToolRegistry,
    /// How many finished calls to keep for the API.
    pub keep_recent: usize,
    /// Where call recordings go; `None` = recording off (the engine must have `record_calls`).
    pub recordings_dir: Option<std::path::PathBuf>,
}

/// Run until a shutdown signal, or place one call and stop when it ends.
#[derive(Debug, Clone)]
pub enum RunMode {
    Serve,
    Call(String),
}

/// Starts the built-in local Realtime server (echo agent) for `voiceagent run` without a key.
pub async fn start_embedded_backend() -> anyhow::Result<ServerHandle> {
    let config = ServerConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        // A production service must not keep every call's audio in memory.
        record_sessions: false,
        ..ServerConfig::default()
    };
    LocalRealtimeServer::start(config).await
}

/// Runs the service until `shutdown` resolves (or, in `RunMode::Call`, the call ends).
pub async fn run(
    options: ServiceOptions,
    mode: RunMode,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let ServiceOptions {
        engine: engine_config,
        backend,
        conversation,
        policy,
        recording_notice,
        tools,
        keep_recent,
        recordings_dir,
    } = options;

    let (target, _embedded) = match backend {
        Backend::External(target) => {
            tracing::info!(url = %target.url, model = %target.model, "Realtime backend: external endpoint");
            (target, None)
        }
        Backend::Embedded { model } => {
            let server = start_embedded_backend().await?;
            tracing::info!(
                "Realtime backend: the built-in local echo agent at {} (no OPENAI_API_KEY is set; set it to talk to OpenAI)",
                server.url()
            );
            (
                RealtimeTarget {
                    url: server.url(),
                    model,
                    api_key: None,
                },
                Some(server),
            )
        }
    };

    let (engine, events) = tokio::task::spawn_blocking(move || Engine::start(engine_config))
        .await
        .map_err(|e| anyhow::anyhow!("the engine start-up task failed: {e}"))??;
    let info = engine.info().clone();
    tracing::info!(
        pjsip = %info.pjsip_version,
        pjsip_build = pjsip_safe::pjsip_flavor(),
        mode = if info.trunk_mode { "trunk (registering)" } else { "IP (direct calls)" },
        listening = %info.sip_addresses.join(", "),
        codecs = %info.enabled_codecs().join(", "),
        "SIP engine started"
    );
    let handle = engine.handle();
    let _ = shared.engine.set(handle.clone());
    let _ = shared.engine_info.set(info.clone());
    let _ = shared.started.set(Instant::now());
    shared
        .backend_ok
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Control>();
    let _ = shared.control.set(control_tx);
    let mut engine = Some(engine);

    let mut conversation = conversation;
    conversation.tools = tools.definitions();

    let mut calls: HashMap<CallId, mpsc::UnboundedSender<CallEvent>> = HashMap::new();
    let mut tasks: JoinSet<CallReport> = JoinSet::new();
    // Every call, incoming or placed, starts here: listed as active, announced, bridged.
    let spawn_call = |tasks: &mut JoinSet<CallReport>,
                      calls: &mut HashMap<CallId, mpsc::UnboundedSender<CallEvent>>,
                      call: CallId,
                      direction: Direction,
                      from: String,
                      to: String,
                      source: Option<SocketAddr>| {
        let (tx, rx) = mpsc::unbounded_channel();
        calls.insert(call, tx);
        shared.book.lock().expect("book lock").active.insert(
            call,
            ActiveCall {
                call: call.to_string(),
                direction: direction.as_str(),
                from: from.clone(),
                to: to.clone(),
                source,
                since: Instant::now(),
                codec: None,
                clock_rate: None,
            },
        );
        shared.live.publish(LiveEvent::CallStarted {
            call: call.to_string(),
            direction: direction.as_str(),
            from: from.clone(),
            to: to.clone(),
        });
        // Every log line of the call's bridge carries its id (`call{id=call-7}: ...`, or a
        // `span` field in JSON logs).
        let span = tracing::info_span!("call", id = %call);
        tasks.spawn(tracing::Instrument::instrument(
            bridge::run_call(CallSetup {
                call,
                direction,
                from,
                to,
                engine: handle.clone(),
                events: rx,
                conversation: conversation.clone(),
                tools: tools.clone(),
                realtime: target.clone(),
                policy: policy.clone(),
                recording_notice,
                live: shared.live.clone(),
            }),
            span,
        ));
    };

    let mut outbound: Option<CallId> = None;
    if let RunMode::Call(uri) = &mode {
        let call = handle.make_call(uri.clone()).wait_async().await?;
        tracing::info!(%call, %uri, "calling");
        outbound = Some(call);
        spawn_call(
            &mut tasks,
            &mut calls,
            call,
            Direction::Outgoing,
            String::new(),
            uri.clone(),
            None,
        );
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mut stopping: Option<tokio::task::JoinHandle<pjsip_safe::Result<()>>> = None;
    let begin_stop = |engine: &mut Option<Engine>| {
        engine
            .take()
            .map(|e| tokio::task::spawn_blocking(move || e.shutdown()))
    };

    loop {
        tokio::select! {
            event = events.recv_async() => {
                let Ok(event) = event else { break };
                if let Some((call, from, to, source)) = dispatch(event, &shared, &mut calls, recordings_dir.as_deref()) {
                    spawn_call(&mut tasks, &mut calls, call, Direction::Incoming, from, to, source);
                }
            }
            Some(done) = tasks.join_next() => {
                if let Ok(report) = done {
                    let finished_outbound = outbound.is_some_and(|c| c.to_string() == report.call);
                    log_report(&report);
                    shared.metrics.call_finished(&report);
                    shared.live.publish(LiveEvent::CallEnded {
                        call: report.call.clone(),
                        reason: report.end_reason.clone(),
                        duration_ms: report.duration_ms,
                    });
                    let mut book = shared.book.lock().expect("book lock");
                    book.total_calls += 1;
                    book.recent.push_front(report);
                    book.recent.truncate(keep_recent);
                    drop(book);
                    if finished_outbound && stopping.is_none() {
                        stopping = begin_stop(&mut engine);
                    }
                }
            }
            Some(control) = control_rx.recv() => match control {
                Control::PlaceCall { uri, reply } => {
                    let placed = if stopping.is_some() {
                        Err(pjsip_safe::Error::Stopped)
                    } else {
                        handle.make_call(uri.clone()).wait_async().await
                    };
                    if let Ok(call) = &placed {
                        tracing::info!(%call, %uri, "placing a call (API)");
                        spawn_call(&mut tasks, &mut calls, *call, Direction::Outgoing, String::new(), uri.clone(), None);
                    }
                    let _ = reply.send(placed);
                }
            },
            _ = &mut shutdown, if stopping.is_none() => {
                tracing::info!("shutting down: no new calls; hanging up active calls and unregistering");
                stopping = begin_stop(&mut engine);
            }
        }
    }
    // The engine is gone; the bridges see their calls end. Collect them in bounded time.
    let deadline = Duration::from_secs(5);
    let _ = tokio::time::timeout(deadline, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(report) = done {
                log_report(&report);
                shared
                    .book
                    .lock()
                    .expect("book lock")
                    .recent
                    .push_front(report);
            }
        }
    })
    .await;
    tasks.abort_all();
    if let Some(stop) = stopping {
        stop.await
            .map_err(|e| anyhow::anyhow!("the engine shutdown task failed: {e}"))??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A new incoming call for the caller to start a bridge for.
type NewCall = (CallId, String, String, Option<SocketAddr>);

/// Routes an engine event to its call's bridge; returns a new incoming call to start.
fn dispatch(
    event: Event,
    shared: &Shared,
    calls: &mut HashMap<CallId, mpsc::UnboundedSender<CallEvent>>,
    recordings_dir: Option<&std::path::Path>,
) -> Option<NewCall> {
    let forward = |calls: &HashMap<CallId, mpsc::UnboundedSender<CallEvent>>, call: CallId, e| {
        if let Some(tx) = calls.get(&call) {
            let _ = tx.send(e);
        }
    };
    match event {
        Event::IncomingCall {
            call,
            from,
            to,
            source,
            ..
        } => {
            tracing::info!(%call, %from, %to, ?source, "incoming call");
            return Some((call, from, to, source));
        }
        Event::IncomingRejected {
            from,
            source,
            reason,
            code,
        } => {
            shared.metrics.invite_refused(reason);
            // A flood of INVITEs must not become a flood of log lines: the engine logs the
            // first refusals of each kind per minute and counts the rest; here only debug.
            tracing::debug!(%from, ?source, ?reason, code, "INVITE refused");
        }
        Event::MediaActive {
            call,
            info,
            mut media,
        } => {
            let tap = media.as_mut().and_then(|m| m.recording.take());
            if let (Some(tap), Some(dir)) = (tap, recordings_dir) {
                let book = shared.book.clone();
                crate::recording::start_then(call, tap, dir, move |path| {
                    if let (Some(path), Ok(mut book)) = (path, book.lock()) {
                        book.recordings.insert(call.to_string(), path);
                    }
                });
            }
            if let Some(active) = shared.book.lock().expect("book lock").active.get_mut(&call) {
                active.codec = Some(info.codec.clone());
                active.clock_rate = Some(info.clock_rate);
            }
            forward(calls, call, CallEvent::MediaActive { info, media });
        }
        Event::Dtmf { call, digit } => forward(calls, call, CallEvent::Dtmf(digit)),
        Event::TransferStatus {
            call,
            code,
            reason,
            last,
        } => forward(
            calls,
            call,
            CallEvent::TransferStatus { code, reason, last },
        ),
        Event::CallEnded {
            call, code, reason, ..
        } => {
            tracing::info!(%call, code, %reason, "call ended");
            shared.book.lock().expect("book lock").active.remove(&call);
            if let Some(tx) = calls.remove(&call) {
                let _ = tx.send(CallEvent::Ended { code, reason });
            }
        }
        Event::Registration(reg) => {
            match &reg {
                Registration::Registered { expires } => {
                    tracing::info!(expires, "registered with the SIP server")
                }
                Registration::Unregistered => tracing::info!("unregistered from the SIP server"),
                Registration::Failed { code, reason } => tracing::error!(
                    code,
                    %reason,
                    "registration failed (401/403: check SIP_USERNAME and SIP_PASSWORD; 408: SIP_SERVER unreachable)"
                ),
            }
            shared.live.publish(LiveEvent::Registration {
                state: format!("{reg:?}"),
            });
            shared.book.lock().expect("book lock").registration = Some(reg);
        }
        Event::CallState {
            call, state, code, ..
        } => {
            tracing::debug!(%call, ?state, code, "call state");
        }
        Event::MediaChanged { call, status } => tracing::info!(%call, ?status, "media changed"),
        Event::InternalError { call, message } => {
            tracing::error!(?call, "internal error in the engine: {message}")
        }
        other => tracing::debug!("engine event: {other:?}"),
    }
    None
}

fn log_report(report: &CallReport) {
    for entry in &report.transcript.entries {
        tracing::info!(call = %report.call, "transcript: {}", serde_json::to_string(entry).unwrap_or_default());
    }
    tracing::info!(
        call = %report.call,
        from = %report.from,
        duration_ms = report.duration_ms,
        codec = report.codec.as_deref().unwrap_or("-"),
        barge_ins = report.barge_ins,
        tool_calls = report.tool_calls.len(),
        errors = report.errors.len(),
        ended = %report.end_reason,
        "call finished"
    );
}
