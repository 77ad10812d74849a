//! One call, without I/O: its lifecycle, its playout accounting, its policy and its record.
//!
//! - [`machine`]: the call as a state machine (str0m style): engine events, server frames,
//!   tool results, playback reports and the current time in; [`machine::Action`]s out;
//!   deadlines through `poll_timeout`. The Realtime [`Conversation`] runs inside it.
//! - [`lifecycle`]: the phases of a call (opening → answering → live → draining/failing →
//!   ended) as one enum.
//! - [`playout`]: which model item each downlink sample belongs to; what was heard of it is read
//!   from the engine's ledger, the one count of played audio.
//! - [`report`]: the [`report::CallReport`] the service keeps and the API shows; it sits here,
//!   below the bridge, the service and the API, so none of them imports another for it.
//!
//! The async driver that feeds the machine is [`crate::bridge`].
//!
//! [`Conversation`]: crate::realtime::conversation::Conversation

pub mod lifecycle;
pub mod machine;
pub mod playout;
pub mod report;

#[cfg(test)]
mod tests;

pub use lifecycle::{AfterPlayout, Lifecycle};
pub use machine::{Action, CallMachine, CallParams, ToolDone};
pub use report::{CallReport, ToolCallRecord};
