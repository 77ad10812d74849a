//! voiceagent: answers and places phone calls over SIP (PJSIP through `pjsip-safe`) and lets an
//! OpenAI Realtime speech-to-speech model talk to the caller.
//!
//! The crate is split by what each part holds:
//! - [`realtime`]: the OpenAI Realtime GA protocol: wire types, the I/O-free conversation state
//!   machine (barge-in, truncation, tool calls) and the strict local Realtime server that is both
//!   the embedded default and the test double.
//! - [`ordering`]: the phone ordering product: catalog, search, orders and their storage.

pub mod ordering;
pub mod realtime;
