//! Panics caught at the C boundary: logged and counted, never swallowed.
//!
//! No panic may unwind into PJSIP (undefined behaviour), so every `extern "C"` function of ours
//! runs its body inside `catch_unwind`. What it caught must still be seen: each one is logged
//! with where it happened and counted, and the count is exported (metrics, tests).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};

static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Panics caught at the C boundary since the process started.
pub fn caught_panics() -> u64 {
    CAUGHT.load(Ordering::Relaxed)
}

/// Logs and counts a caught panic. `place` says where (e.g. "on_call_state").
///
/// Not for the media threads' real-time callbacks: they count only (logging allocates) and
/// report elsewhere.
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
