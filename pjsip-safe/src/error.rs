//! The one place where PJSIP's `pj_status_t` becomes a Rust error.
//!
//! Every pjsua call goes through [`check`], so an error always carries the status code, PJSIP's
//! own message for it and the function that failed: enough to diagnose a trunk problem from a log
//! line without a debugger.

use std::ffi::c_char;

use pjsip_sys as sys;

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PJSIP function returned an error status.
    #[error("{function} failed: {message} (PJSIP status {status})")]
    Pj {
        function: &'static str,
        status: i32,
        message: String,
    },
    /// A listening port could not be bound because something else uses it.
    #[error(
        "{transport} port {port} is already in use: stop the other program, or choose another port"
    )]
    AddressInUse { transport: &'static str, port: u16 },
    /// The configuration was rejected before PJSIP saw it.
    #[error("invalid engine setting `{key}`: {problem}")]
    Config { key: &'static str, problem: String },
    /// Another engine already runs in this process (pjsua is a process-wide singleton).
    #[error("a PJSIP engine is already running in this process; only one is possible")]
    AlreadyRunning,
    /// The engine thread has stopped; the handle can no longer be used.
    #[error("the PJSIP engine has stopped")]
    Stopped,
    /// The call does not exist (any more).
    #[error("no such call: {0}")]
    NoSuchCall(crate::CallId),
    /// The call is in a state where this action is impossible.
    #[error("call {call}: {problem}")]
    InvalidCallState {
        call: crate::CallId,
        problem: &'static str,
    },
    /// The engine is at its configured call limit.
    #[error("the maximum number of concurrent calls ({0}) is reached")]
    TooManyCalls(u32),
    /// The engine thread panicked while handling the request.
    #[error("internal error in the PJSIP engine thread: {0}")]
    Internal(String),
}

/// A `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// PJSIP's message for a status code.
pub(crate) fn pj_message(status: sys::pj_status_t) -> String {
    let mut buf = [0 as c_char; 160];
    // SAFETY: pj_strerror writes at most `buf.len()` bytes into `buf` and returns a pj_str_t that
    // points into it; we copy out before `buf` goes away. It needs no pjlib thread registration.
    let s = unsafe { sys::pj_strerror(status, buf.as_mut_ptr(), buf.len() as _) };
    crate::pjstr::to_string(&s)
}

/// Turns a status into a `Result`, naming the function that returned it.
pub(crate) fn check(status: sys::pj_status_t, function: &'static str) -> Result<()> {
    if status == sys::PJ_SUCCESS as sys::pj_status_t {
        Ok(())
    } else {
        Err(Error::Pj {
            function,
            status,
            message: pj_message(status),
        })
    }
}

/// `check` for transport creation, which reports a busy port in a way an operator can act on.
pub(crate) fn check_bind(
    status: sys::pj_status_t,
    function: &'static str,
    transport: &'static str,
    port: u16,
) -> Result<()> {
    const EADDRINUSE: i32 = 98;
    if status == sys::PJ_ERRNO_START_SYS as i32 + EADDRINUSE {
        return Err(Error::AddressInUse { transport, port });
    }
    check(status, function)
}
