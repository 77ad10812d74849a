//! Streaming sample-rate conversion between the engine (48 kHz) and the Realtime API (24 kHz).
//!
//! rubato's synchronous FFT resampler works on fixed-size chunks, while audio arrives as 20 ms
//! frames (uplink) or as deltas of any size (downlink). [`StreamResampler`] buffers input up to a
//! chunk and keeps every buffer preallocated.
//!
//! The two directions want different things from the filter's delay:
//! - **Downlink** ([`StreamResampler::new`]) trims it after a reset, so that N input samples
//!   become exactly N × ratio output samples per segment. That keeps the played-sample count a
//!   faithful clock of the model's audio: barge-in truncation depends on it.
//! - **Uplink** ([`StreamResampler::streaming`]) keeps it, so every input chunk (one 20 ms
//!   frame) becomes exactly one output chunk, and each `input_audio_buffer.append` ends on a
//!   20 ms boundary of the input stream. Trimming would shift the stream by the delay (3.3 ms),
//!   so the server's VAD could only close a 20 ms window on the *next* append: the end of every
//!   turn would wait one frame longer (measured: about 17 ms of turn overhead).

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// A mono i16 resampler for one direction of one call.
pub struct StreamResampler {
    inner: Fft<f32>,
    chunk_in: usize,
    pending: Vec<f32>,
    out_buf: Vec<f32>,
    /// Output samples of the resampler's delay still to drop in this segment.
    skip: usize,
    /// Whether each segment drops the delay (`skip`) at its start.
    trim: bool,
    /// Input and output samples of the current segment (for the exact length at `finish`).
    seg_in: u64,
    seg_out: u64,
    from: u32,
    to: u32,
}

impl StreamResampler {
    /// A resampler for a continuous stream: the filter's delay stays in the output as leading
    /// silence, and every `chunk_in` input samples yield exactly `chunk_in × to / from` output
    /// samples at once. `chunk_in` must be a multiple of `from / gcd(from, to)`.
    pub fn streaming(from: u32, to: u32, chunk_in: usize) -> anyhow::Result<Self> {
        let mut r = Self::new(from, to, chunk_in)?;
        r.trim = false;
        r.skip = 0;
        Ok(r)
    }

    /// A resampler from `from` Hz to `to` Hz taking input in chunks of `chunk_in` samples,
    /// trimming the filter's delay at the start of each segment.
    pub fn new(from: u32, to: u32, chunk_in: usize) -> anyhow::Result<Self> {
        let inner = Fft::<f32>::new(from as usize, to as usize, chunk_in, 1, FixedSync::Input)
            .map_err(|e| anyhow::anyhow!("creating a {from} -> {to} Hz resampler: {e}"))?;
        let out_max = inner.output_frames_max();
        let skip = inner.output_delay();
        Ok(Self {
            inner,
            chunk_in,
            pending: Vec::with_capacity(chunk_in),
            out_buf: vec![0.0; out_max],
            skip,
            trim: true,
            seg_in: 0,
            seg_out: 0,
            from,
            to,
        })
    }

    /// Starts a new segment: drops buffered input and the filter's history.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.pending.clear();
        self.skip = if self.trim {
            self.inner.output_delay()
        } else {
            0
        };
        self.seg_in = 0;
        self.seg_out = 0;
    }

    /// Output samples the current segment should have in total for its input so far.
    fn expected_out(&self) -> u64 {
        self.seg_in * u64::from(self.to) / u64::from(self.from)
    }

    /// Feeds samples; complete chunks are converted and appended to `out`.
    pub fn push(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.seg_in += input.len() as u64;
        for &s in input {
            self.pending.push(f32::from(s) / 32768.0);
            if self.pending.len() == self.chunk_in {
                self.process_pending(out, None);
            }
        }
    }

    /// Ends the segment: converts what is buffered and the filter's tail, so the segment's output
    /// is exactly `input × to / from` samples. The resampler is reset afterwards.
    pub fn finish(&mut self, out: &mut Vec<i16>) {
        let mut guard = 0;
        while self.seg_out < self.expected_out() && guard < 16 {
            let partial = self.pending.len();
            self.pending.resize(self.chunk_in, 0.0);
            self.process_pending(out, Some(partial));
            guard += 1;
        }
        self.reset();
    }

    fn process_pending(&mut self, out: &mut Vec<i16>, partial: Option<usize>) {
        let n = self.chunk_in;
        let (Ok(input), Ok(mut output)) = (
            InterleavedSlice::new(&self.pending[..], 1, n),
            InterleavedSlice::new_mut(&mut self.out_buf[..], 1, self.inner.output_frames_max()),
        ) else {
            self.pending.clear();
            return;
        };
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let written = match self
            .inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
        {
            Ok((_, written)) => written,
            Err(e) => {
                tracing::warn!("resampler: {e}");
                0
            }
        };
        self.pending.clear();
        let mut produced = &self.out_buf[..written];
        let drop = self.skip.min(produced.len());
        self.skip -= drop;
        produced = &produced[drop..];
        // Never emit more than the segment's exact length (the tail of `finish` is padding).
        let room = self.expected_out().saturating_sub(self.seg_out) as usize;
        let take = if partial.is_some() {
            produced.len().min(room)
        } else {
            produced.len()
        };
        out.extend(
            produced[..take]
                .iter()
                .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        self.seg_out += take as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * hz * std::f32::consts::TAU / rate as f32).sin() * 12000.0) as i16)
            .collect()
    }

    #[test]
    fn a_segment_keeps_its_exact_length_and_timing() {
        let mut r = StreamResampler::new(24000, 48000, 480).unwrap();
        let input = sine(24000, 440.0, 24000 + 123);
        let mut out = Vec::new();
        for chunk in input.chunks(1000) {
            r.push(chunk, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out.len(), input.len() * 2);
        // Timing: the output's zero crossings line up with the input's (delay trimmed).
        let probe = 12000;
        let a = f32::from(input[probe]);
        let b = f32::from(out[probe * 2]);
        assert!(
            (a - b).abs() < 1500.0,
            "input {a} vs output {b} at the same instant"
        );
    }

    #[test]
    fn downsampling_streams_frames_at_half_the_length() {
        let mut r = StreamResampler::new(48000, 24000, 960).unwrap();
        let input = sine(48000, 1000.0, 960 * 50);
        let mut out = Vec::new();
        for frame in input.chunks(960) {
            r.push(frame, &mut out);
        }
        // Streaming: every 20 ms frame yields its 10 ms at once, minus the filter delay once.
        assert!(out.len() >= 480 * 49, "{}", out.len());
        let rms = (out[4800..]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / (out.len() - 4800) as f64)
            .sqrt();
        assert!((rms - 12000.0 / 2f64.sqrt()).abs() < 600.0, "rms {rms}");
    }

    #[test]
    fn streaming_turns_each_frame_into_one_whole_chunk() {
        let mut r = StreamResampler::streaming(48000, 24000, 960).unwrap();
        let input = sine(48000, 1000.0, 960 * 20);
        let mut out = Vec::new();
        for (i, frame) in input.chunks(960).enumerate() {
            r.push(frame, &mut out);
            assert_eq!(out.len(), 480 * (i + 1), "frame {i}");
        }
        // The delay stays in front: the signal appears a few ms in, then at full level.
        let delay = out.iter().position(|s| s.abs() > 3000).unwrap();
        assert!(delay > 0 && delay < 240, "delay {delay} samples");
        let rms = (out[2400..]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / (out.len() - 2400) as f64)
            .sqrt();
        assert!((rms - 12000.0 / 2f64.sqrt()).abs() < 600.0, "rms {rms}");
    }

    #[test]
    fn reset_forgets_the_previous_segment() {
        let mut r = StreamResampler::new(24000, 48000, 480).unwrap();
        let mut out = Vec::new();
        r.push(&sine(24000, 300.0, 4800), &mut out);
        r.reset();
        out.clear();
        r.push(&vec![0; 4800], &mut out);
        r.finish(&mut out);
        assert_eq!(out.len(), 9600);
        assert!(
            out.iter().all(|&s| s.abs() < 50),
            "old audio leaked after reset"
        );
    }
}
