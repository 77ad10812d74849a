//! The one audio format the queues carry: 48 kHz mono i16, 20 ms per frame.
//!
//! The conference bridge is configured for exactly this (see the PJSIP reference §0), so the
//! media port never resamples or re-frames; everything else (OpenAI's 24 kHz, odd chunk sizes)
//! is the bridge task's job, on the API side of the queues.

use std::fmt;
use std::time::Instant;

/// Bridge clock rate in Hz.
pub const SAMPLE_RATE: u32 = 48_000;
/// Frame duration in milliseconds (`audio_frame_ptime`).
pub const FRAME_MS: u32 = 20;
/// Samples per 20 ms frame at 48 kHz mono (1920 bytes).
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE as usize / 1000) * FRAME_MS as usize;

/// One 20 ms frame of 16-bit mono PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// A frame of digital silence, for the port to play on underrun.
pub const SILENCE: Frame = [0; FRAME_SAMPLES];

/// A frame the caller said, as captured on the real-time thread.
#[derive(Clone)]
pub struct UplinkFrame {
    /// Counts every `put_frame` call on this queue, from 0, including frames later dropped as
    /// oldest; a gap in `seq` on the consumer side is exactly the number of frames dropped.
    pub seq: u64,
    /// When the real-time side received the frame from PJSIP (monotonic clock), for measuring
    /// uplink latency in the bridge.
    pub captured_at: Instant,
    /// The 960 samples.
    pub samples: Frame,
}

impl fmt::Debug for UplinkFrame {
    // 960 numbers in a log line help nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UplinkFrame")
            .field("seq", &self.seq)
            .field("captured_at", &self.captured_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_20ms_at_48k() {
        assert_eq!(FRAME_SAMPLES, 960);
        assert_eq!(std::mem::size_of::<Frame>(), 1920);
    }
}
