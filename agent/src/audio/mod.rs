//! Audio helpers every layer may use: sample-rate conversion between the engine (48 kHz) and
//! the Realtime API (24 kHz).
//!
//! It sits at the bottom of the crate (it imports nothing of ours) so that the bridge, the local
//! prompts and the recorder can all convert audio without reaching into each other.

pub mod resample;
