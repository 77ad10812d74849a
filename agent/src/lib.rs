//! voiceagent: answers and places phone calls over SIP (PJSIP through `pjsip-safe`) and lets an
//! OpenAI Realtime speech-to-speech model talk to the caller.
//!
//! The crate is split by what each part holds:
//! - [`api`]: the HTTP API, event stream, metrics and dashboard.
//! - [`service`]: `voiceagent run`: the engine, one bridge task per call, shutdown.
//! - [`state`]: what the service writes and the API reads (call book, metrics, control
//!   requests); below both, so neither imports the other.
//! - [`bridge`]: one call's async driver: engine frames, the WebSocket, tool tasks and timers in
//!   and out of the call machine.
//! - [`call`]: one call without I/O: the lifecycle machine (ring delay, apology, hold, transfer,
//!   hang-up), playout accounting and the call's report.
//! - [`realtime`]: the OpenAI Realtime GA protocol: wire types, the I/O-free conversation state
//!   machine (barge-in, truncation, tool calls), the client socket and the strict local Realtime
//!   server that is both the embedded default and the test double.
//! - [`tools`]: the tool registry the model calls into.
//! - [`ordering`]: the phone ordering product: catalog, search, orders and their storage.
//! - [`config`]: the typed configuration from the environment, `.env` and a config file.
//! - [`live`]: live events (calls, transcripts, tools, levels) for the API and dashboard.
//! - [`recording`]: stereo call recordings written off the real-time path.
//! - [`prompts`]: local audio prompts (apology, hold) at the engine's rate.
//! - [`audio`]: sample-rate conversion, at the bottom (it imports nothing of ours).
//!
//! Arrows point down only: `service` and `api` → `state` → `call` (report) → `realtime`;
//! `bridge` → `call` → `realtime`, `tools`, `prompts` → `audio`.

pub mod api;
pub mod audio;
pub mod bridge;
pub mod call;
pub mod config;
pub mod live;
pub mod ordering;
pub mod prompts;
pub mod realtime;
pub mod recording;
pub mod service;
pub mod state;
pub mod tools;
