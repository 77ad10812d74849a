//! The OpenAI Realtime GA protocol: protocol, client and test double.
//!
//! Split so that protocol decisions never wait on I/O: [`wire`] holds the serde types,
//! [`conversation`] the per-call state machine (one active response, barge-in and truncation,
//! tool calls) that takes events plus the current time and returns what to do, [`client`] the
//! socket (connect, probe), and [`server`] the strict local Realtime server, which shares no
//! serde model with the client. The call's driver (`bridge`) only moves bytes between them.

pub mod client;
pub mod conversation;
pub mod server;
pub mod wire;

pub use client::{connect, probe, RealtimeTarget};
