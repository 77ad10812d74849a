//! Panics caught at the C boundary: logged and counted, never swallowed.
//!
//! No panic may unwind into PJSIP (undefined behaviour), so every `extern "C"` function of ours
//! runs its body inside `catch_unwind`, and so does every command the pjlib thread runs. What it
//! caught must still be seen: each one is counted ([`caught_panics`], for metrics and tests) and
//! logged with where it happened.
//!
//! Two kinds of threads, two ways to report:
//! - the pjlib thread (SIP callbacks, commands, the log and STUN callbacks) logs at once:
//!   `guard`, `caught`;
//! - PJSIP's media threads (the port's `get_frame`/`put_frame`/`on_destroy`, RFC 2833 DTMF) are
//!   real-time code that must not log or allocate: `guard_rt` only bumps an atomic per place,
//!   and the pjlib thread's housekeeping reports what accumulated in one log line
//!   (`report_rt`).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Panics caught at the C boundary since the process started (both kinds of threads).
pub fn caught_panics() -> u64 {
    CAUGHT.load(Ordering::Relaxed)
}

/// Logs and counts a caught panic. `place` says where (e.g. "on_call_state").
///
/// Not for the media threads' real-time callbacks: they count only (logging allocates) and
/// report elsewhere ([`guard_rt`]).
pub(crate) fn caught(place: &str, payload: &(dyn Any + Send)) {
    CAUGHT.fetch_add(1, Ordering::Relaxed);
    tracing::error!("panic caught in {place}: {}", message(payload));
}

/// The panic's message, when it has one.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `body` (a callback from C, or a command, on a thread that may log); a panic is logged
/// and counted as caught in `place` and `fallback` is returned. Never unwinds: should logging
/// the panic or dropping its payload panic too, that second panic is swallowed (it was counted).
pub(crate) fn guard<R>(place: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let reported = catch_unwind(AssertUnwindSafe(move || {
                caught(place, payload.as_ref());
                drop(payload);
            }));
            if let Err(again) = reported {
                std::mem::forget(again);
            }
            fallback
        }
    }
}

/// Where a media thread caught a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RtPlace {
    PutFrame,
    GetFrame,
    PortDestroy,
    Dtmf,
}

impl RtPlace {
    const ALL: [RtPlace; 4] = [
        RtPlace::PutFrame,
        RtPlace::GetFrame,
        RtPlace::PortDestroy,
        RtPlace::Dtmf,
    ];

    fn name(self) -> &'static str {
        match self {
            RtPlace::PutFrame => "put_frame",
            RtPlace::GetFrame => "get_frame",
            RtPlace::PortDestroy => "port on_destroy",
            RtPlace::Dtmf => "on_dtmf_digit2",
        }
    }
}

/// Media-thread panics not yet reported, per [`RtPlace`].
static RT_UNREPORTED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// [`guard`] for real-time callbacks: a panic is only counted (two relaxed atomic adds; no
/// logging, no allocation of ours) and `fallback` returned. [`report_rt`] logs it later.
pub(crate) fn guard_rt<R>(place: RtPlace, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            CAUGHT.fetch_add(1, Ordering::Relaxed);
            RT_UNREPORTED[place as usize].fetch_add(1, Ordering::Relaxed);
            // Dropping the payload frees what the panic allocated; a payload whose drop panics
            // is leaked rather than unwound into C.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            fallback
        }
    }
}

/// Logs, in one line, the media-thread panics caught since the last report (called by the
/// pjlib thread's housekeeping). Returns how many there were.
pub(crate) fn report_rt() -> u64 {
    let counts = RtPlace::ALL.map(|p| (p, RT_UNREPORTED[p as usize].swap(0, Ordering::Relaxed)));
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if total > 0 {
        let places = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| format!("{} x{n}", p.name()))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::error!(
            total,
            "panics caught in media-thread callbacks since the last report: {places}"
        );
    }
    total
}

/// Test hooks: make the next pass through a chosen place panic, to prove that panics there are
/// caught, logged, counted and survived. Only with the `fault-injection` feature (tests).
#[cfg(feature = "fault-injection")]
pub mod inject {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A place a panic can be injected.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Site {
        /// pjsua's `on_call_state` (pjlib thread).
        OnCallState,
        /// The next command the pjlib thread runs.
        Command,
        /// A media port's `put_frame` (media clock thread).
        PutFrame,
        /// RFC 2833 `on_dtmf_digit2` (media thread).
        Dtmf,
    }

    static ARMED: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];

    fn index(site: Site) -> usize {
        match site {
            Site::OnCallState => 0,
            Site::Command => 1,
            Site::PutFrame => 2,
            Site::Dtmf => 3,
        }
    }

    /// The next pass through `site` panics (once).
    pub fn arm(site: Site) {
        ARMED[index(site)].store(true, Ordering::SeqCst);
    }

    /// Panics if `site` is armed (and disarms it).
    pub(crate) fn fire(site: Site) {
        if ARMED[index(site)].swap(false, Ordering::SeqCst) {
            panic!("injected panic ({site:?})");
        }
    }
}

/// Panics here if a test armed `site` (`fault-injection` feature); nothing otherwise.
macro_rules! fault_point {
    ($site:ident) => {
        #[cfg(feature = "fault-injection")]
        $crate::panics::inject::fire($crate::panics::inject::Site::$site);
    };
}
pub(crate) use fault_point;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_returns_the_body_value_or_the_fallback_and_counts() {
        let before = caught_panics();
        assert_eq!(guard("test", 0, || 7), 7);
        assert_eq!(guard("test", 0, || -> i32 { panic!("boom") }), 0);
        assert!(caught_panics() > before);
    }

    #[test]
    fn media_thread_panics_are_counted_then_reported_once() {
        let before = caught_panics();
        assert_eq!(guard_rt(RtPlace::Dtmf, 1, || -> i32 { panic!("rt") }), 1);
        assert_eq!(guard_rt(RtPlace::GetFrame, 1, || 2), 2);
        assert!(caught_panics() > before);
        // Other tests may add to the counters concurrently: at least ours is reported, and a
        // second report right after has nothing of ours left.
        assert!(report_rt() >= 1);
    }
}
