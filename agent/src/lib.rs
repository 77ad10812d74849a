//! voiceagent: answers and places phone calls over SIP (PJSIP through `pjsip-safe`) and lets an
//! OpenAI Realtime speech-to-speech model talk to the caller.
//!
//! The crate is split by what each part holds:
//! - [`api`]: the HTTP API, event stream, metrics and dashboard.
//! - [`service`]: `voiceagent run`: the engine, one bridge task per call, shutdown.
//! - [`bridge`]: one call: engine frames ↔ resampling ↔ WebSocket, driven by the conversation
//!   state machine; barge-in, tools, hold and apology prompts.
//! - [`realtime`]: the OpenAI Realtime GA protocol: wire types, the I/O-free conversation state
//!   machine (barge-in, truncation, tool calls) and the strict local Realtime server that is both
//!   the embedded default and the test double.
//! - [`tools`]: the tool registry the model calls into.
//! - [`ordering`]: the phone ordering product: catalog, search, orders and their storage.
//! - [`config`]: the typed configuration from the environment, `.env` and a config file.
//! - [`live`]: live events (calls, transcripts, tools, levels) for the API and dashboard.
//! - [`recording`]: stereo call recordings written off the real-time path.
//! - [`prompts`]: local audio prompts (apology, hold) at the engine's rate.

pub mod api;
pub mod bridge;
pub mod config;
pub mod live;
pub mod ordering;
pub mod prompts;
pub mod realtime;
pub mod recording;
pub mod service;
pub mod tools;
