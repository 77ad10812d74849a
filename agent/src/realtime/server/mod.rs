//! A strict local OpenAI Realtime server (GA protocol): the embedded backend of
//! `voiceagent run` when no API key is configured, and the test double for the client.
//!
//! Why it exists: the phone bridge's hardest bugs (barge-in truncation offsets, the
//! one-active-response rule, tool-call sequencing, beta leftovers) only show against a server
//! that enforces the protocol. This one enforces it the way api.openai.com does (reference
//! `openai-realtime.md` §17, kept with the project notes), speaks from a [`Script`] instead of a
//! model, and records everything each session received so tests can assert on it.
//!
//! Layout: `session.rs` is the I/O-free state machine; this module is only the tokio /
//! tokio-tungstenite adapter (accept, handshake checks, pacing timer, shutdown).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use agent::realtime::server::{LocalRealtimeServer, ServerConfig};
//! let server = LocalRealtimeServer::start(ServerConfig::default()).await?;
//! println!("connect to {}?model=gpt-realtime", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod assets;
mod protocol;
mod record;
pub mod script;
mod session;
mod session_config;
mod vad;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub use assets::Prompt;
pub use record::{ClientEventRecord, ItemAudio, SessionEnd, SessionRecord, TruncateRecord};
pub use script::{Fault, Reply, ReplyKind, Script};

use record::Registry;
use session::{Output, Session, SessionParams};

/// How fast response audio deltas are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// One second of audio per second (a client must buffer nothing extra).
    RealTime,
    /// This many seconds of audio per second. The real service is faster than real time, so a
    /// value above 1 catches clients that treat `response.done` as "finished playing".
    Speedup(f64),
    /// As fast as the socket takes it.
    Unpaced,
}

/// Configuration of the local server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; tests use `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// When set, the upgrade is refused with HTTP 401 unless the client presents this key
    /// (`Authorization: Bearer …` or the `openai-insecure-api-key.…` subprotocol).
    pub required_api_key: Option<String>,
    /// The script each new session starts with (cloned per session).
    pub script: Script,
    pub pacing: Pacing,
    /// Maximum session duration; then `session_expired` and close 1001 (60 min like GA).
    pub max_session: Duration,
    /// Keep [`SessionRecord`]s (all client events and audio). Turn off for long-running use.
    pub record_sessions: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            required_api_key: None,
            script: Script::echo(),
            pacing: Pacing::Speedup(2.0),
            max_session: Duration::from_secs(60 * 60),
            record_sessions: true,
        }
    }
}

/// Entry point: see [`LocalRealtimeServer::start`].
pub struct LocalRealtimeServer;

impl LocalRealtimeServer {
    /// Binds `config.bind` and serves sessions until [`ServerHandle::shutdown`].
    pub async fn start(config: ServerConfig) -> Result<ServerHandle> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding the local Realtime server to {}", config.bind))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let registry = Registry::new(config.record_sessions);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::new(config),
            Arc::clone(&registry),
            stop_rx,
        ));
        tracing::info!(%addr, "local Realtime server listening");
        Ok(ServerHandle {
            addr,
            registry,
            stop: stop_tx,
            task,
        })
    }
}

/// A running server. Dropping it without [`shutdown`](Self::shutdown) leaves it running until
/// the runtime ends.
pub struct ServerHandle {
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// `ws://127.0.0.1:PORT/v1/realtime` (append `?model=…`).
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of every session's record, in connection order.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.registry.snapshot()
    }

    /// Waits until `check` returns `Some` for the current records, or fails after `timeout`.
    /// Re-evaluated whenever any record changes: no polling sleeps.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[SessionRecord]) -> Option<T>,
    ) -> Result<T> {
        let mut changes = self.registry.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(v) = check(&self.registry.snapshot()) {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("local Realtime server stopped while waiting"),
                Err(_) => bail!(
                    "condition on the local Realtime server's records not met within {timeout:?}"
                ),
            }
        }
    }

    /// Stops accepting, closes open sessions with 1001 and waits for them to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!("local Realtime server task failed: {e}");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut seed: u64 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    seed = seed.wrapping_add(0x9E37_79B9);
                    sessions.spawn(serve_connection(stream, peer, Arc::clone(&config), Arc::clone(&registry), stop.clone(), seed));
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    // Sessions see the stop signal themselves; give them a moment to send their close frames.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
}

/// What the HTTP upgrade told us.
#[derive(Debug, Default)]
struct Upgrade {
    model: Option<String>,
    beta_header: bool,
}

// The handshake callback's error type is fixed by tungstenite (an HTTP response).
#[allow(clippy::result_large_err)]
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
    seed: u64,
) {
    let mut upgrade = Upgrade::default();
    let callback = |req: &Request, resp: Response| {
        check_upgrade(req, resp, config.required_api_key.as_deref(), &mut upgrade)
    };
    let mut ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(%peer, "Realtime upgrade refused or failed: {e}");
            return;
        }
    };
    tracing::info!(%peer, model = upgrade.model.as_deref().unwrap_or(""), "Realtime session connected");
    let params = SessionParams {
        model: upgrade.model,
        beta_header: upgrade.beta_header,
        pacing: config.pacing,
        max_duration: config.max_session,
        seed,
        unix_now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let mut session = Session::new(
        params,
        config.script.clone(),
        registry.new_session(),
        Instant::now(),
    );
    loop {
        while let Some(output) = session.poll_output(Instant::now()) {
            match output {
                Output::Send(event) => {
                    if ws.send(Message::text(event.to_string())).await.is_err() {
                        session.on_client_gone();
                        return;
                    }
                }
                Output::Close { code, reason } => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    // Let the client's close reply arrive so the handshake completes cleanly;
                    // when shutting down, do not wait on clients that no longer read.
                    let grace = if *stop.borrow() {
                        Duration::from_millis(100)
                    } else {
                        Duration::from_secs(2)
                    };
                    let _ =
                        tokio::time::timeout(grace, async { while ws.next().await.is_some() {} })
                            .await;
                    return;
                }
                Output::Disconnect => return, // dropping the stream closes TCP without a close frame
            }
        }
        if session.is_closed() {
            return;
        }
        let deadline = session.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            _ = stop.changed() => session.on_shutdown(),
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => session.handle_text(text.as_str(), Instant::now()),
                Some(Ok(Message::Binary(_))) => session.handle_binary(),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    session.on_client_gone();
                    return;
                }
            },
            () = sleep_until_opt(deadline) => {}
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// HTTP-level checks of the upgrade: path, authentication, subprotocol; records model and
/// the beta header (those are answered inside the WebSocket, like the real service).
#[allow(clippy::result_large_err)] // the error type is tungstenite's `ErrorResponse`
fn check_upgrade(
    req: &Request,
    mut resp: Response,
    api_key: Option<&str>,
    upgrade: &mut Upgrade,
) -> Result<Response, ErrorResponse> {
    if req.uri().path() != "/v1/realtime" {
        return Err(http_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Invalid URL (GET {})", req.uri().path()),
        ));
    }
    upgrade.model = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "model")
            .map(|(_, v)| v.to_owned())
    });
    upgrade.beta_header = req.headers().get_all("openai-beta").iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("realtime"))
    });
    let protocols: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    if let Some(expected) = api_key {
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let sub = protocols
            .iter()
            .find_map(|p| p.strip_prefix("openai-insecure-api-key."));
        let presented = bearer.or(sub);
        match presented {
            // The key itself never goes into logs or error messages.
            Some(k) if k == expected => {}
            Some(_) => return Err(http_error(StatusCode::UNAUTHORIZED, "invalid_api_key", "Incorrect API key provided.")),
            None => {
                return Err(http_error(
                    StatusCode::UNAUTHORIZED,
                    "missing_api_key",
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.",
                ))
            }
        }
    }
    if protocols.iter().any(|p| p == "realtime") {
        resp.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("realtime"),
        );
    }
    Ok(resp)
}

fn http_error(status: StatusCode, code: &str, message: &str) -> ErrorResponse {
    let body = serde_json::json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": code } }).to_string();
    let mut resp = ErrorResponse::new(Some(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}
