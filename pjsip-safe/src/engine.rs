//! The public face of the engine: [`Engine`] owns the pjlib thread, [`EngineHandle`] sends it
//! commands from any thread.
//!
//! Commands travel over a crossbeam channel and each carries its own reply channel (flume), so a
//! caller can wait for the result synchronously ([`Pending::wait`]) or from async code
//! ([`Pending::wait_async`]) without blocking a tokio worker.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::command::{Command, Reply};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::event::{CallId, EventReceiver};
use crate::info::{CallStats, EngineInfo};
use crate::runtime::RUNNING;

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
