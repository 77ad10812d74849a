//! The call's lifecycle, written down: one enum instead of a dozen flags.
//!
//! ```text
//!  Opening ──session ready──► Answering ──answered──► Live ──end_call──► Draining(HangUp) ─┐
//!     │  (outgoing: straight to Live)                  │ ▲                                   │
//!     │                                                │ └─transfer failed── Transferring    │
//!     │                                                └─transfer_call──► Draining(Transfer)─┤
//!     └──────────── backend failed (any state before HangingUp) ──► Failing ──apology played─┤
//!                                                                                            ▼
//!                           engine: call ended (from any state) ──► Ended ◄──────────── HangingUp
//!                                                                     │ tools done or grace over
//!                                                                     ▼
//!                                                                    Done
//! ```
//!
//! Facts that are not phases stay beside it in the machine: whether media is up, whether the
//! call was answered, which tools run, whether the hold sound plays.

use std::time::Instant;

/// Where a call stands. See the module docs for the transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// The Realtime session is being opened (connect, `session.update`, `session.updated`); an
    /// incoming call rings meanwhile. At `deadline` the backend counts as failed.
    Opening { deadline: Instant },
    /// The session is ready; the incoming call is answered at `at` (the ring delay), then the
    /// engine is asked (`asked`).
    Answering { at: Instant, asked: bool },
    /// The conversation runs.
    Live,
    /// The model is done: once its last words have been played, do `then`.
    Draining(AfterPlayout),
    /// A blind transfer for the model's `transfer_call` (`call_id`) was started; the final
    /// NOTIFY decides (success hangs up, failure goes back to `Live`).
    Transferring { call_id: String },
    /// The backend failed: the apology plays (once media is up), then the call is hung up.
    Failing,
    /// We asked the engine to hang up; waiting for the call to end.
    HangingUp,
    /// The engine reported the end of the call; pending tools may finish until `grace_until`.
    Ended { grace_until: Instant },
    /// Nothing more to do: the driver collects the report.
    Done,
}

/// What a draining call does once playback is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPlayout {
    HangUp,
    /// Transfer for the model's `transfer_call` with this call id.
    Transfer {
        call_id: String,
    },
}

impl Lifecycle {
    /// The engine reported the end (or we are past it).
    pub fn is_over(&self) -> bool {
        matches!(self, Lifecycle::Ended { .. } | Lifecycle::Done)
    }
}
