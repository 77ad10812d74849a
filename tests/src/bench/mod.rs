//! Pieces of the engine benchmark (`tests/benches/engine_load.rs`), kept here so they are
//! compiled and unit-tested with the harness rather than only when the bench runs.
//!
//! The benchmark compares our engine (the `echo` example of pjsip-safe) with PJSIP's own
//! `pjsua --auto-loop` under the same load, so the figures say what our layer costs on top of
//! PJSIP rather than what the machine happens to do.
//!
//! - [`g711_peer`]: N symmetric G.711 RTP endpoints (loss, gaps, click round trips).
//! - [`answerer`]: spawning the answering process (echo example or pjsua) and the Opus caller.
//! - [`procfs`]: CPU time and RSS of a process from `/proc`.

pub mod answerer;
pub mod g711_peer;
pub mod procfs;
