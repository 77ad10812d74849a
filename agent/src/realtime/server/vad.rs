//! Energy-based voice activity detection standing in for the service's server VAD.
//!
//! The real server VAD is a model; what clients depend on is its *contract*: `speech_started`
//! with an `audio_start_ms` that already includes `prefix_padding_ms`, and `speech_stopped`
//! once `silence_duration_ms` of silence has passed, with `audio_end_ms` including that silence
//! (reference §7.2, §9). An RMS gate over 20 ms frames honours that contract deterministically,
//! which is what tests need. `threshold` (0..1) maps linearly to -60..-10 dBFS, so the default
//! 0.5 triggers at -35 dBFS: ordinary speech passes, line noise does not.

/// Samples per millisecond at 24 kHz.
pub(crate) const SAMPLES_PER_MS: u64 = 24;
const FRAME: usize = 480; // 20 ms
/// Consecutive loud frames needed to declare speech (rejects single clicks).
const ONSET_FRAMES: u32 = 2;

/// What the detector saw; sample positions are absolute (since the session started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VadEvent {
    SpeechStarted { start_sample: u64 },
    SpeechStopped { end_sample: u64 },
}

#[derive(Debug, Clone)]
pub(crate) struct EnergyVad {
    level: f64,
    prefix_samples: u64,
    silence_samples: u64,
    frame: Vec<i16>,
    /// Absolute index of the first sample of `frame`.
    frame_start: u64,
    /// Earliest sample a speech start may reach back to (last commit/clear).
    floor: u64,
    loud_run: u32,
    onset: u64,
    in_speech: bool,
    quiet_since: Option<u64>,
}

impl EnergyVad {
    pub(crate) fn new(threshold: f32, prefix_padding_ms: u32, silence_duration_ms: u32) -> Self {
        let mut v = Self {
            level: 0.0,
            prefix_samples: 0,
            silence_samples: 0,
            frame: Vec::with_capacity(FRAME),
            frame_start: 0,
            floor: 0,
            loud_run: 0,
            onset: 0,
            in_speech: false,
            quiet_since: None,
        };
        v.set_params(threshold, prefix_padding_ms, silence_duration_ms);
        v
    }

    pub(crate) fn set_params(
        &mut self,
        threshold: f32,
        prefix_padding_ms: u32,
        silence_duration_ms: u32,
    ) {
        let dbfs = -60.0 + 50.0 * f64::from(threshold.clamp(0.0, 1.0));
        self.level = 32768.0 * 10f64.powf(dbfs / 20.0);
        self.prefix_samples = u64::from(prefix_padding_ms) * SAMPLES_PER_MS;
        self.silence_samples = u64::from(silence_duration_ms) * SAMPLES_PER_MS;
    }

    /// Positions the detector when it is created mid-session: the next sample fed is `pos`,
    /// and speech may not reach back before `floor`.
    pub(crate) fn start_at(&mut self, pos: u64, floor: u64) {
        self.frame.clear();
        self.frame_start = pos;
        self.floor = floor;
    }

    /// Forget any speech in progress; audio before `floor` is no longer in the buffer.
    pub(crate) fn reset(&mut self, floor: u64) {
        self.floor = floor;
        self.in_speech = false;
        self.loud_run = 0;
        self.quiet_since = None;
    }

    /// Feeds samples that follow the previously fed ones.
    pub(crate) fn push(&mut self, samples: &[i16], out: &mut Vec<VadEvent>) {
        for &s in samples {
            self.frame.push(s);
            if self.frame.len() == FRAME {
                self.on_frame(out);
                self.frame_start += FRAME as u64;
                self.frame.clear();
            }
        }
    }

    fn on_frame(&mut self, out: &mut Vec<VadEvent>) {
        let energy: f64 = self
            .frame
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum();
        let loud = (energy / FRAME as f64).sqrt() >= self.level;
        let frame_end = self.frame_start + FRAME as u64;
        if loud {
            if self.loud_run == 0 {
                self.onset = self.frame_start;
            }
            self.loud_run += 1;
            self.quiet_since = None;
            if !self.in_speech && self.loud_run >= ONSET_FRAMES {
                self.in_speech = true;
                let start = self
                    .onset
                    .saturating_sub(self.prefix_samples)
                    .max(self.floor);
                out.push(VadEvent::SpeechStarted {
                    start_sample: start,
                });
            }
        } else {
            self.loud_run = 0;
            if self.in_speech {
                let since = *self.quiet_since.get_or_insert(self.frame_start);
                if frame_end - since >= self.silence_samples {
                    self.in_speech = false;
                    self.quiet_since = None;
                    out.push(VadEvent::SpeechStopped {
                        end_sample: frame_end,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64, amp: f64) -> Vec<i16> {
        (0..ms * SAMPLES_PER_MS)
            .map(|i| (amp * (i as f64 * 0.1).sin()) as i16)
            .collect()
    }

    #[test]
    fn detects_start_with_prefix_and_stop_after_silence() {
        let mut vad = EnergyVad::new(0.5, 300, 500);
        let mut ev = Vec::new();
        vad.push(&tone(1000, 0.0), &mut ev);
        assert!(ev.is_empty());
        vad.push(&tone(800, 8000.0), &mut ev);
        assert_eq!(
            ev,
            vec![VadEvent::SpeechStarted {
                start_sample: 700 * SAMPLES_PER_MS
            }]
        );
        // Short pauses do not end speech.
        vad.push(&tone(300, 0.0), &mut ev);
        vad.push(&tone(200, 8000.0), &mut ev);
        assert_eq!(ev.len(), 1);
        vad.push(&tone(600, 0.0), &mut ev);
        assert_eq!(
            ev[1],
            VadEvent::SpeechStopped {
                end_sample: 2800 * SAMPLES_PER_MS
            }
        );
    }

    #[test]
    fn quiet_noise_and_single_clicks_are_not_speech() {
        let mut vad = EnergyVad::new(0.5, 300, 200);
        let mut ev = Vec::new();
        vad.push(&tone(2000, 300.0), &mut ev); // about -40 dBFS
        let mut click = tone(20, 20000.0);
        click.extend(tone(500, 0.0));
        vad.push(&click, &mut ev);
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn prefix_is_clamped_to_floor() {
        let mut vad = EnergyVad::new(0.5, 300, 200);
        vad.reset(0);
        let mut ev = Vec::new();
        vad.push(&tone(100, 8000.0), &mut ev);
        assert_eq!(ev, vec![VadEvent::SpeechStarted { start_sample: 0 }]);
    }
}
