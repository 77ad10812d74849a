//! A safe media engine over PJSIP for voice bots: SIP (registration, NAT, calls, DTMF,
//! transfer) and, per call, 20 ms frames of 48 kHz audio in both directions.
//!
//! # Threading
//!
//! pjlib wants every thread that calls it registered, and pjsua's callbacks re-enter its API, so
//! the engine confines PJSIP to **one dedicated OS thread** (`pjsua`). It creates pjsua, runs
//! its event loop (`pjsua_handle_events`, with `thread_cnt = 0` so every SIP callback runs
//! there), executes commands and finally destroys pjsua. Nothing else of ours calls pjlib: the
//! pjsua layer's methods take a `!Send` token that only that thread holds.
//!
//! - Other threads hold an [`EngineHandle`] (cloneable, `Send`) and send commands over a
//!   crossbeam channel; each returns a [`Pending`] result to `wait()` on or `.wait_async().await`.
//! - Events ([`Event`]) arrive on an [`EventReceiver`] (flume), readable from sync and async code.
//! - PJSIP's own "clock" thread drives the 48 kHz conference bridge every 20 ms and calls each
//!   call's media port. Those callbacks only touch lock-free queues ([`media`]); the application
//!   gets the other ends ([`CallMedia`]) with [`Event::MediaActive`].
//! - RFC 2833 DTMF arrives on PJSIP's media thread: the callback pushes the digit into a
//!   preallocated lock-free queue and the pjlib thread emits [`Event::Dtmf`] within one poll
//!   interval (5 ms), in order. No lock, allocation or logging on a media thread.
//! - No panic unwinds into C ([`panics`]): on the pjlib thread a caught panic is logged and
//!   counted (a command that panics answers [`Error::Internal`]; a call whose callback panicked
//!   is hung up); on the media threads it is only counted, and the pjlib thread's housekeeping
//!   logs the count.
//!
//! One engine per process (pjsua is a singleton): a second [`Engine::start`] while one runs
//! fails with [`Error::AlreadyRunning`]. Dropping the [`Engine`] shuts it down gracefully.
//!
//! # Module map
//!
//! | module | what it holds |
//! |---|---|
//! | `engine` | [`Engine`], [`EngineHandle`], [`Pending`]: the public face, any thread |
//! | `command`, `info` | what the handle asks (`Command`) and what comes back ([`EngineInfo`], [`CallStats`]); shared by `engine` and `runtime`, which do not import each other |
//! | `runtime` | the pjlib thread's loop: commands, the callbacks' records, housekeeping, shutdown |
//! | `runtime::setup` | pjsua bring-up: config translation, codecs, transports, STUN verdict, accounts |
//! | `runtime::calls` | the call table and its policy: accepting or not, answer timers, ACK and RTP timeouts, unknown calls (unit-tested) |
//! | `admission` | who may start a call: shutdown, source policy (allowlist, trunk-only), per-source INVITE rate, the cap (unit-tested) |
//! | `runtime::conference` | a call's media port in the bridge, connected both ways; stream info |
//! | `runtime::trunk` | the trunk's addresses admission trusts: resolved at start, refreshed off-thread, plus the registrar's |
//! | `pjsua` | the thin layer: every pjsua/pjmedia call the loop makes, safe and checked |
//! | `callbacks` | the `extern "C"` callbacks: copy into records (SIP) or a lock-free queue (DTMF) |
//! | `port` | the custom `pjmedia_port` (real-time `get_frame`/`put_frame`) and its lifetime |
//! | [`media`] | the lock-free per-call queues and their application halves |
//! | [`edge`] | the SIP edge filter (refuses REFER, Replaces, SUBSCRIBE, …) |
//! | [`panics`] | caught panics: logged and counted; media threads count only |
//! | `log_limit`, `pjsip_log` | rate-limited logging for what outsiders can trigger; PJSIP's log lines redacted and limited |
//! | `sip_uri` | host and port out of a SIP URI (trunk resolution) |
//! | `error` | [`Error`] and the one `check` for `pj_status_t` |
//! | `config`, `event` | [`EngineConfig`] and [`Event`] |
//!
//! `unsafe` lives in `pjsua` (the pjsua calls), `port` (the port's memory), `callbacks`, `edge`
//! and the STUN callback in `runtime::setup` (pointers PJSIP hands to callbacks), `error` and
//! `pjstr` (strings); the loop and the rest of its rooms are safe Rust.

mod admission;
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
mod pjsip_log;
mod pjstr;
mod pjsua;
mod port;
mod runtime;
mod sip_uri;

pub use admission::InviteRate;
pub use config::{
    AccountConfig, AnswerMode, ContactRewrite, EngineConfig, JitterConfig, OpusConfig, Secret,
    SrtpMode, TlsConfig, Transport, DEFAULT_CODECS, SYSTEM_CA_FILE,
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

/// PJSIP log lines not written because of the log rate limit (see `pjsip_log.rs`).
pub fn pjsip_log_suppressed() -> u64 {
    pjsip_log::suppressed_lines()
}

/// Where that tree came from (`upstream`, `debian`, `source tree`, `installed prefix`).
pub fn pjsip_flavor() -> &'static str {
    pjsip_sys::BUILD_FLAVOR
}
