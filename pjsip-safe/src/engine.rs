//! The public face of the engine: [`Engine`] owns the pjlib thread, [`EngineHandle`] sends it
//! commands from any thread.
//!
//! Commands travel over a crossbeam channel and each carries its own reply channel (flume), so a
//! caller can wait for the result synchronously ([`Pending::wait`]) or from async code
//! ([`Pending::wait_async`]) without blocking a tokio worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::event::{CallId, EventReceiver, MediaInfo};
use crate::media::MediaStats;

/// Set while an engine runs: pjsua is a process-wide singleton.
pub(crate) static RUNNING: AtomicBool = AtomicBool::new(false);

type Reply<T> = flume::Sender<Result<T>>;

pub(crate) enum Command {
    Answer {
        call: CallId,
        reply: Reply<()>,
    },
    Hangup {
        call: CallId,
        code: u16,
        reply: Reply<()>,
    },
    MakeCall {
        uri: String,
        reply: Reply<CallId>,
    },
    Transfer {
        call: CallId,
        target: String,
        reply: Reply<()>,
    },
    Stats {
        call: CallId,
        reply: Reply<CallStats>,
    },
    Info {
        reply: Reply<EngineInfo>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}

/// A codec as PJSIP offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecInfo {
    /// PJSIP's codec id, e.g. `opus/48000/2`, `PCMA/8000/1`.
    pub id: String,
    /// 0 = disabled, 255 = most preferred.
    pub priority: u8,
}

/// What the engine started with.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// Version of the PJSIP tree we are linked with.
    pub pjsip_version: String,
    /// Listening SIP transports, e.g. `UDP 192.0.2.10:5060`.
    pub sip_addresses: Vec<String>,
    /// Codecs in PJSIP's codec manager with their priorities.
    pub codecs: Vec<CodecInfo>,
    /// Registered to a trunk (true) or IP mode (false).
    pub trunk_mode: bool,
    /// The address the SIP UDP transport advertises in Via and Contact (`host:port`): the
    /// configured public address, the STUN-mapped one, or the local one. `None` without UDP.
    pub udp_published: Option<String>,
    /// The STUN server (as configured) that answered PJSIP, when STUN servers are configured.
    pub stun_server: Option<String>,
    /// The address STUN mapped the SIP UDP transport to (`host:port`, equal to
    /// [`udp_published`](Self::udp_published)); `None` when no STUN server is configured, a
    /// public address is configured (it wins over STUN), there is no UDP transport, or no STUN
    /// server answered (PJSIP then advertises the local address: `stun_ignore_failure`).
    ///
    /// How "mapped" is told from "fell back to the local address": by PJSIP's own verdict, the
    /// `on_stun_resolution_complete` callback, which reports success only after a server
    /// answered a Binding request; only then does pjsua ask that server again for the SIP
    /// socket's mapping and publish it (`create_sip_udp_sock`). Comparing the published with
    /// the local address cannot tell them apart: on a host with a public address and no NAT,
    /// a correct mapping equals the local address. One corner stays invisible to the
    /// application: if the server answers the first request but all four retransmissions of
    /// the second (2 s) are lost, pjsua falls back to the host address and only logs
    /// "Error contacting STUN server"; this field then holds that host address.
    pub stun_mapped: Option<String>,
}

impl EngineInfo {
    /// Enabled codecs, most preferred first.
    pub fn enabled_codecs(&self) -> Vec<&str> {
        let mut enabled: Vec<&CodecInfo> = self.codecs.iter().filter(|c| c.priority > 0).collect();
        enabled.sort_by_key(|c| std::cmp::Reverse(c.priority));
        enabled.into_iter().map(|c| c.id.as_str()).collect()
    }
}

/// Quality figures of a call's audio stream.
#[derive(Debug, Clone)]
pub struct CallStats {
    pub media: MediaInfo,
    pub rx_packets: u32,
    pub rx_lost: u32,
    /// Mean interarrival jitter of received RTP.
    pub rx_jitter_ms: f64,
    pub tx_packets: u32,
    /// Round-trip time from RTCP, once known.
    pub rtt_ms: Option<f64>,
    /// Average delay the jitter buffer adds.
    pub jitter_buffer_ms: u32,
    /// Our media queues' counters (drops, underruns, flushes).
    pub queues: Option<MediaStats>,
    /// How long this call's media-port callbacks took (the real-time budget is 20 µs).
    pub callback_timing: Option<crate::PortTiming>,
}

/// A command's result, to wait for from sync or async code.
#[must_use = "a command's result says whether it worked"]
pub struct Pending<T>(flume::Receiver<Result<T>>);

impl<T> Pending<T> {
    /// Blocks until the engine thread has executed the command.
    pub fn wait(self) -> Result<T> {
        self.0.recv().unwrap_or(Err(Error::Stopped))
    }

    /// Waits without blocking the async executor.
    pub async fn wait_async(self) -> Result<T> {
        self.0.recv_async().await.unwrap_or(Err(Error::Stopped))
    }
}

/// A cloneable, `Send` handle that sends commands to the pjlib thread.
#[derive(Clone)]
pub struct EngineHandle {
    commands: Sender<Command>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Pending<T> {
        let (tx, rx) = flume::bounded(1);
        // A stopped engine drops the command, and with it the reply sender: wait() says Stopped.
        let _ = self.commands.send(make(tx));
        Pending(rx)
    }

    /// Answers an incoming call with 200 OK.
    pub fn answer(&self, call: CallId) -> Pending<()> {
        self.send(|reply| Command::Answer { call, reply })
    }

    /// Rejects a ringing call with `code` (e.g. 486, 503, 603), or hangs up an established one.
    pub fn hangup(&self, call: CallId, code: u16) -> Pending<()> {
        self.send(|reply| Command::Hangup { call, code, reply })
    }

    /// Places a call to a SIP URI through the trunk account (or directly in IP mode).
    pub fn make_call(&self, uri: impl Into<String>) -> Pending<CallId> {
        let uri = uri.into();
        self.send(|reply| Command::MakeCall { uri, reply })
    }

    /// Blind transfer (REFER) to `target`, a SIP URI. Progress arrives as
    /// [`crate::Event::TransferStatus`].
    pub fn transfer(&self, call: CallId, target: impl Into<String>) -> Pending<()> {
        let target = target.into();
        self.send(|reply| Command::Transfer {
            call,
            target,
            reply,
        })
    }

    /// Codec, jitter, loss and RTT of a call's audio stream.
    pub fn stats(&self, call: CallId) -> Pending<CallStats> {
        self.send(|reply| Command::Stats { call, reply })
    }

    /// Version, transports and codecs.
    pub fn info(&self) -> Pending<EngineInfo> {
        self.send(|reply| Command::Info { reply })
    }
}

/// The running engine. Dropping it shuts down gracefully (hangs up, unregisters, destroys pjsua).
pub struct Engine {
    handle: EngineHandle,
    info: EngineInfo,
    thread: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Engine {
    /// Starts pjsua on its own thread. Returns once SIP transports listen and the bridge runs,
    /// or with the error that stopped it (a busy port, a bad setting).
    pub fn start(config: EngineConfig) -> Result<(Engine, EventReceiver)> {
        config.validate()?;
        if RUNNING.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyRunning);
        }
        let shutdown_timeout = config.shutdown_timeout;
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = flume::unbounded();
        let (ready_tx, ready_rx) = flume::bounded(1);
        let thread = std::thread::Builder::new()
            .name("pjsua".into())
            .spawn(move || crate::runtime::run(config, cmd_rx, ev_tx, ready_tx))
            .map_err(|e| {
                RUNNING.store(false, Ordering::Release);
                Error::Internal(format!("cannot start the pjlib thread: {e}"))
            })?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok((
                Engine {
                    handle: EngineHandle { commands: cmd_tx },
                    info,
                    thread: Some(thread),
                    shutdown_timeout,
                },
                ev_rx,
            )),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Internal(
                    "the pjlib thread died during start-up".into(),
                ))
            }
        }
    }

    /// A handle for sending commands from other threads.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// What the engine started with.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// Stops accepting calls, hangs up every call (BYE), unregisters and destroys pjsua, within
    /// the configured shutdown timeout (plus PJSIP's unregistration wait).
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let (tx, rx) = flume::bounded(1);
        let _ = self.handle.commands.send(Command::Shutdown { reply: tx });
        // pjsua_destroy waits for unregistration (bounded by unreg_timeout) on top of our own
        // shutdown timeout.
        let result = rx
            .recv_timeout(self.shutdown_timeout + Duration::from_secs(10))
            .unwrap_or(Err(Error::Stopped));
        let _ = thread.join();
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("engine shutdown: {e}");
        }
    }
}
