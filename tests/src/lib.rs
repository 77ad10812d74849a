//! Shared harness for the end-to-end tests: real SIP peers (baresip, SIPp) on
//! loopback, generated speech, and audio comparison that a broken media path
//! cannot pass.
//!
//! Why a harness crate rather than helpers inside each test file: every
//! end-to-end test needs the same fiddly parts (free ports, spawning and
//! reaping peers, finding what they recorded, aligning audio that went through
//! a codec), and getting any of them subtly wrong produces tests that pass
//! when nothing arrived. Keeping them here means they are proven once, by
//! `tests/harness_selftest.rs`, with peer-to-peer calls that do not need our
//! engine.
//!
//! Layout:
//! - [`ports`]: free SIP/control/RTP ports (never fixed numbers).
//! - [`speech`]: espeak-ng + sox phrases, cached under `target/`, plus tone
//!   and click generators.
//! - [`audio`]: WAV I/O, resampling, alignment and [`audio::compare`].
//! - [`g711`]: A-law / µ-law encode and decode (what SIPp sends and what the
//!   harness receives).
//! - [`rtp`]: a UDP listener that captures RTP for peers that cannot record.
//! - [`engine`]: our engine on loopback, its call events, and the SIPp peers its tests use.
//! - [`baresip`]: a baresip process driven through `ctrl_tcp`.
//! - [`sipp`]: SIPp runs with the scenarios in `tests/data/sipp`.
//! - [`process`]: kill-on-drop child processes and scratch directories.

pub mod audio;
pub mod baresip;
pub mod bench;
pub mod engine;
pub mod g711;
pub mod ports;
pub mod process;
pub mod rtp;
pub mod sipp;
pub mod speech;
pub mod tls;

pub use audio::{compare, Audio, Comparison};
