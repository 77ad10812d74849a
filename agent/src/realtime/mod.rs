//! The OpenAI Realtime GA protocol.
//!
//! Split so that protocol decisions never wait on I/O: [`wire`] holds the serde types,
//! [`conversation`] the per-call state machine (one active response, barge-in and truncation,
//! tool calls) that takes events plus the current time and returns what to do, and [`server`] the
//! strict local Realtime server. The tokio bridge only moves bytes between them.

pub mod conversation;
pub mod server;
pub mod wire;
