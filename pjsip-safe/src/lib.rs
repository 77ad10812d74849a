//! A safe media engine over PJSIP for voice bots: SIP (registration, NAT, calls, DTMF,
//! transfer) and, per call, 20 ms frames of 48 kHz audio in both directions.
//!
//! # Threading
//!
//! pjlib wants every thread that calls it registered, and pjsua's callbacks re-enter its API, so
//! the engine confines PJSIP to **one dedicated OS thread** (`pjsua`). It creates pjsua, runs
//! its event loop (`pjsua_handle_events`, with `thread_cnt = 0` so every SIP callback runs
//! there), executes commands and finally destroys pjsua. Nothing else of ours calls pjlib.
//!
//! - Other threads hold an [`EngineHandle`] (cloneable, `Send`) and send commands over a
//!   crossbeam channel; each returns a [`Pending`] result to `wait()` on or `.wait_async().await`.
//! - Events ([`Event`]) arrive on an [`EventReceiver`] (flume), readable from sync and async code.
//! - PJSIP's own "clock" thread drives the 48 kHz conference bridge every 20 ms and calls each
//!   call's media port. Those callbacks only touch lock-free queues ([`media`]); the application
//!   gets the other ends ([`CallMedia`]) with [`Event::MediaActive`].
//! - RFC 2833 DTMF is reported from PJSIP's media thread through a channel; no engine state is
//!   touched there.
//!
//! One engine per process (pjsua is a singleton): a second [`Engine::start`] while one runs
//! fails with [`Error::AlreadyRunning`]. Dropping the [`Engine`] shuts it down gracefully.

mod callbacks;
mod command;
mod config;
pub mod edge;
mod engine;
mod error;
mod event;
mod info;
mod log_limit;
pub mod media;
pub mod panics;
mod pjstr;
mod pjsua;
mod port;
mod runtime;

pub use config::{
    AccountConfig, AnswerMode, ContactRewrite, EngineConfig, JitterConfig, OpusConfig, Secret,
    Transport, DEFAULT_CODECS,
};
pub use engine::{Engine, EngineHandle, Pending};
pub use error::{Error, Result};
pub use event::{
    CallId, CallMedia, CallState, Direction, Event, EventReceiver, MediaInfo, MediaStatus,
    Registration, RejectReason,
};
pub use info::{CallStats, CodecInfo, EngineInfo};
pub use ipnet::IpNet;
// Media-port callback timing (benchmarks, docs/BENCHMARKS.md).
pub use port::{port_totals, CallbackTiming, PortTiming, PortTotals, TIMING_BUCKETS};

/// Version of the PJSIP tree the engine is linked with (e.g. `2.17`).
pub fn pjsip_version() -> String {
    pjsua::pjsip_version()
}

/// Where that tree came from (`upstream`, `debian`, `source tree`, `installed prefix`).
pub fn pjsip_flavor() -> &'static str {
    pjsip_sys::BUILD_FLAVOR
}
