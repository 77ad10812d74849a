//! Audio I/O and the comparison that decides whether audio got through.
//!
//! The question every media test asks is "did the far end hear *this*
//! sentence?". Three numbers answer it, and each closes a way a broken path
//! could pass:
//!
//! - **correlation**: the received signal is aligned with the sent one by FFT
//!   cross-correlation; the normalised correlation at the best lag (over the
//!   whole sent span, so missing parts count against it) is near 1 for G.711
//!   and good Opus, near 0 for silence, noise or another sentence.
//! - **spectral_similarity**: Pearson correlation of log band-energy
//!   envelopes (32 ms frames, 10 ms hop, log-spaced bands 150 Hz–3.6 kHz, each
//!   band's mean removed) at that lag. It ignores phase and overall colour, so
//!   it tolerates codec coloration (Opus at low rates changes the waveform more
//!   than its spectrum), yet a time-reversed or different sentence has a
//!   different envelope and scores low.
//! - **coverage**: the share of the sent signal's active (speech) frames that
//!   are also active in the received signal at that lag; a truncated or
//!   half-lost stream fails it even if what did arrive matches.
//!
//! Thresholds ([`MIN_CORRELATION`], [`MIN_SPECTRAL_SIMILARITY`],
//! [`MIN_COVERAGE`]) were calibrated by the unit tests below: G.711 (sox
//! A-law) and an Opus-like degradation (low-pass, noise, gain) score far above
//! them; silence, noise, another sentence and the time-reversed sentence far
//! below. Compare at 8000 Hz for paths that include G.711, at 16000 Hz
//! otherwise; higher rates cost time and add nothing to the decision.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use audioadapter_buffers::direct::InterleavedSlice;
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;
use rubato::{Fft, FixedSync, Resampler};

/// Waveform correlation at the best lag that a match must reach.
pub const MIN_CORRELATION: f64 = 0.5;
/// Envelope correlation at the best lag that a match must reach.
pub const MIN_SPECTRAL_SIMILARITY: f64 = 0.6;
/// Share of the sent speech frames that must be present in the received audio.
pub const MIN_COVERAGE: f64 = 0.8;

/// Mono audio as f32 samples in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub rate: u32,
    pub samples: Vec<f32>,
}

impl Audio {
    pub fn new(rate: u32, samples: Vec<f32>) -> Self {
        Self { rate, samples }
    }

    pub fn silence(rate: u32, ms: u32) -> Self {
        Self::new(rate, vec![0.0; (rate as u64 * ms as u64 / 1000) as usize])
    }

    pub fn from_i16(rate: u32, pcm: &[i16]) -> Self {
        Self::new(rate, pcm.iter().map(|&s| f32::from(s) / 32768.0).collect())
    }

    pub fn to_i16(&self) -> Vec<i16> {
        self.samples
            .iter()
            .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// Reads a PCM WAV (8/16/24/32-bit int or 32-bit float); channels are
    /// averaged to mono. Fails clearly on a recorder that was never closed
    /// (header still says "no data").
    pub fn read_wav(path: &Path) -> Result<Self> {
        let reader = hound::WavReader::open(path)
            .with_context(|| format!("opening WAV {}", path.display()))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .into_samples::<f32>()
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading {}", path.display()))?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("reading {}", path.display()))?
            }
        };
        if interleaved.is_empty() {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if size > 1024 {
                bail!(
                    "{} has {size} bytes but its header declares no samples: the recorder was \
                     not closed (hang up and let the peer exit before reading)",
                    path.display()
                );
            }
        }
        let samples = interleaved
            .chunks(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32)
            .collect();
        Ok(Self::new(spec.sample_rate, samples))
    }

    /// Writes mono 16-bit PCM.
    pub fn write_wav(&self, path: &Path) -> Result<()> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: self.rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec)
            .with_context(|| format!("creating {}", path.display()))?;
        for s in self.to_i16() {
            w.write_sample(s)?;
        }
        w.finalize()
            .with_context(|| format!("finalising {}", path.display()))?;
        Ok(())
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate.max(1)))
    }

    /// RMS level in dBFS (-inf dB is reported as -200).
    pub fn rms_dbfs(&self) -> f64 {
        if self.samples.is_empty() {
            return -200.0;
        }
        let e: f64 = self
            .samples
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / self.samples.len() as f64;
        (10.0 * e.log10()).max(-200.0)
    }

    pub fn reversed(&self) -> Self {
        let mut s = self.samples.clone();
        s.reverse();
        Self::new(self.rate, s)
    }

    /// Appends another clip (same rate required).
    pub fn append(&mut self, other: &Audio) -> Result<()> {
        if other.rate != self.rate {
            bail!(
                "cannot append {} Hz audio to {} Hz audio",
                other.rate,
                self.rate
            );
        }
        self.samples.extend_from_slice(&other.samples);
        Ok(())
    }

    /// Sample-rate conversion with rubato's synchronous FFT resampler (the
    /// resampler's delay is trimmed, so timing is preserved).
    pub fn resample(&self, rate: u32) -> Result<Self> {
        if rate == self.rate || self.samples.is_empty() {
            return Ok(Self::new(rate, self.samples.clone()));
        }
        let mut r = Fft::<f32>::new(self.rate as usize, rate as usize, 1024, 1, FixedSync::Input)
            .map_err(|e| anyhow!("creating a {} -> {rate} Hz resampler: {e}", self.rate))?;
        let n = self.samples.len();
        let cap = r.process_all_needed_output_len(n);
        let mut out = vec![0.0f32; cap];
        let input = InterleavedSlice::new(&self.samples[..], 1, n).map_err(|e| anyhow!("{e:?}"))?;
        let mut output =
            InterleavedSlice::new_mut(&mut out[..], 1, cap).map_err(|e| anyhow!("{e:?}"))?;
        let (_, written) = r
            .process_all_into_buffer(&input, &mut output, n, None)
            .map_err(|e| anyhow!("resampling {} -> {rate} Hz: {e}", self.rate))?;
        out.truncate(written);
        Ok(Self::new(rate, out))
    }

    /// Time of the first sample whose magnitude exceeds `threshold_dbfs`
    /// (latency tests with clicks).
    pub fn first_onset(&self, threshold_dbfs: f64) -> Option<Duration> {
        let t = 10f64.powf(threshold_dbfs / 20.0) as f32;
        self.samples
            .iter()
            .position(|s| s.abs() >= t)
            .map(|i| Duration::from_secs_f64(i as f64 / f64::from(self.rate)))
    }
}

/// The result of [`compare`]; see the module docs for what each number means.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Where the start of the sent audio appears in the received audio (ms;
    /// positive = received later).
    pub lag_ms: f64,
    pub correlation: f64,
    pub spectral_similarity: f64,
    pub coverage: f64,
    /// Length of the sent audio's active span (ms).
    pub sent_ms: f64,
    /// Length of the received audio (ms).
    pub received_ms: f64,
    pub received_rms_dbfs: f64,
}

impl Comparison {
    fn nothing(sent_ms: f64, received: &Audio) -> Self {
        Self {
            lag_ms: 0.0,
            correlation: 0.0,
            spectral_similarity: 0.0,
            coverage: 0.0,
            sent_ms,
            received_ms: received.duration().as_secs_f64() * 1000.0,
            received_rms_dbfs: received.rms_dbfs(),
        }
    }

    /// All three measures at or above their thresholds.
    pub fn is_match(&self) -> bool {
        self.correlation >= MIN_CORRELATION
            && self.spectral_similarity >= MIN_SPECTRAL_SIMILARITY
            && self.coverage >= MIN_COVERAGE
    }

    /// Panics with the numbers unless this is a match.
    #[track_caller]
    pub fn assert_match(&self, what: &str) {
        assert!(self.is_match(), "{what}: expected a match, got {self}");
    }

    /// Panics with the numbers if this is a match.
    #[track_caller]
    pub fn assert_no_match(&self, what: &str) {
        assert!(!self.is_match(), "{what}: expected no match, got {self}");
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lag {:.1} ms, correlation {:.3} (min {MIN_CORRELATION}), spectral {:.3} (min \
             {MIN_SPECTRAL_SIMILARITY}), coverage {:.2} (min {MIN_COVERAGE}), sent {:.0} ms, \
             received {:.0} ms at {:.1} dBFS",
            self.lag_ms,
            self.correlation,
            self.spectral_similarity,
            self.coverage,
            self.sent_ms,
            self.received_ms,
            self.received_rms_dbfs
        )
    }
}

/// Compares what was sent with what was received, both brought to `rate`.
///
/// `sent` may carry silence padding (it is trimmed to its active span);
/// `received` may be longer, shorter, delayed or early. Errors only for
/// unusable input (a silent `sent`, a failed resample); a silent or missing
/// `received` is a valid, non-matching result.
pub fn compare(sent: &Audio, received: &Audio, rate: u32) -> Result<Comparison> {
    let s_full = remove_dc(sent.resample(rate)?);
    let r = remove_dc(received.resample(rate)?);
    let Some((start, end)) = active_span(&s_full.samples, rate) else {
        bail!("the sent audio is silent; nothing to compare against");
    };
    let s = &s_full.samples[start..end];
    let sent_ms = s.len() as f64 * 1000.0 / f64::from(rate);
    let es: f64 = energy(s);
    let er_total = energy(&r.samples);
    if r.samples.len() < s.len() / 4 || er_total <= 1e-12 {
        return Ok(Comparison::nothing(sent_ms, received));
    }

    let (lag, dot) = best_lag(s, &r.samples);
    let window = window_energy(&r.samples, lag, s.len());
    let correlation = if window > 0.0 {
        dot / (es * window).sqrt()
    } else {
        0.0
    };

    let (spectral_similarity, coverage) = envelope_measures(s, &r.samples, lag, rate);
    Ok(Comparison {
        lag_ms: (lag - start as i64) as f64 * 1000.0 / f64::from(rate),
        correlation,
        spectral_similarity,
        coverage,
        sent_ms,
        received_ms: received.duration().as_secs_f64() * 1000.0,
        received_rms_dbfs: received.rms_dbfs(),
    })
}

fn remove_dc(mut a: Audio) -> Audio {
    if !a.samples.is_empty() {
        let mean = a.samples.iter().map(|&x| f64::from(x)).sum::<f64>() / a.samples.len() as f64;
        for x in &mut a.samples {
            *x -= mean as f32;
        }
    }
    a
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum()
}

fn window_energy(r: &[f32], lag: i64, len: usize) -> f64 {
    let from = lag.max(0) as usize;
    let to = ((lag + len as i64).max(0) as usize).min(r.len());
    if from >= to {
        0.0
    } else {
        energy(&r[from..to])
    }
}

/// First and last sample of the region whose 10 ms frames are within 40 dB of
/// the loudest frame, with 50 ms of margin.
fn active_span(x: &[f32], rate: u32) -> Option<(usize, usize)> {
    let hop = (rate as usize / 100).max(1);
    let frames: Vec<f64> = x.chunks(hop).map(energy).collect();
    let max = frames.iter().cloned().fold(0.0, f64::max);
    if max <= 1e-12 {
        return None;
    }
    let thr = max * 1e-4;
    let first = frames.iter().position(|&e| e > thr)?;
    let last = frames.iter().rposition(|&e| e > thr)?;
    let margin = rate as usize / 20;
    Some((
        (first * hop).saturating_sub(margin),
        ((last + 1) * hop + margin).min(x.len()),
    ))
}

/// The lag `k` maximising sum_t r[t+k]*s[t] (received delayed by k samples),
/// restricted to lags where at least half of `s` overlaps `r`; returns the lag
/// and the correlation sum.
fn best_lag(s: &[f32], r: &[f32]) -> (i64, f64) {
    let m = s.len();
    let n = r.len();
    let len = (n + m).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(len);
    let inv = planner.plan_fft_inverse(len);
    let spectrum = |x: &[f32], fwd: &Arc<dyn realfft::RealToComplex<f64>>| {
        let mut buf = vec![0.0f64; len];
        for (b, &v) in buf.iter_mut().zip(x) {
            *b = f64::from(v);
        }
        let mut out = fwd.make_output_vec();
        fwd.process(&mut buf, &mut out)
            .expect("sizes come from the planner");
        out
    };
    let fr = spectrum(r, &fwd);
    let fs = spectrum(s, &fwd);
    let mut prod: Vec<Complex<f64>> = fr.iter().zip(&fs).map(|(a, b)| a * b.conj()).collect();
    // realfft requires purely real DC and Nyquist bins for the inverse.
    if let Some(first) = prod.first_mut() {
        first.im = 0.0;
    }
    if let Some(last) = prod.last_mut() {
        last.im = 0.0;
    }
    let mut xc = inv.make_output_vec();
    inv.process(&mut prod, &mut xc)
        .expect("sizes come from the planner");
    let min_lag = -((m / 2) as i64);
    let max_lag = n as i64 - (m / 2) as i64;
    let mut best = (0i64, f64::MIN);
    for k in min_lag..=max_lag {
        let idx = if k >= 0 {
            k as usize
        } else {
            (len as i64 + k) as usize
        };
        let v = xc[idx] / len as f64;
        if v > best.1 {
            best = (k, v);
        }
    }
    best
}

/// Log band-energy envelopes of `s` and of `r` shifted by `lag`: returns
/// (spectral similarity, coverage).
fn envelope_measures(s: &[f32], r: &[f32], lag: i64, rate: u32) -> (f64, f64) {
    let frame = (rate as usize * 32 / 1000).max(16);
    let hop = (rate as usize / 100).max(1);
    let n_frames = if s.len() >= frame {
        (s.len() - frame) / hop + 1
    } else {
        1
    };
    let hi = 3600.0f64.min(0.45 * f64::from(rate));
    let lo = 150.0f64;
    let bands = 12usize;
    let edges: Vec<usize> = (0..=bands)
        .map(|b| {
            let f = lo * (hi / lo).powf(b as f64 / bands as f64);
            ((f * frame as f64 / f64::from(rate)).round() as usize).min(frame / 2)
        })
        .collect();
    let window: Vec<f64> = (0..frame)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / frame as f64).cos())
        .collect();
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(frame);
    let mut buf = fft.make_input_vec();
    let mut spec = fft.make_output_vec();
    let mut bands_of = |x: &[f32], start: i64| -> Vec<f64> {
        for (i, b) in buf.iter_mut().enumerate() {
            let t = start + i as i64;
            *b = if t >= 0 && (t as usize) < x.len() {
                f64::from(x[t as usize]) * window[i]
            } else {
                0.0
            };
        }
        fft.process(&mut buf, &mut spec)
            .expect("sizes come from the planner");
        edges
            .windows(2)
            .map(|e| {
                spec[e[0]..e[1].max(e[0] + 1)]
                    .iter()
                    .map(|c| c.norm_sqr())
                    .sum()
            })
            .collect()
    };
    let es: Vec<Vec<f64>> = (0..n_frames)
        .map(|i| bands_of(s, (i * hop) as i64))
        .collect();
    let er: Vec<Vec<f64>> = (0..n_frames)
        .map(|i| bands_of(r, (i * hop) as i64 + lag))
        .collect();

    let frame_total =
        |m: &Vec<Vec<f64>>| -> Vec<f64> { m.iter().map(|f| f.iter().sum()).collect() };
    let ts = frame_total(&es);
    let tr = frame_total(&er);
    let max_s = ts.iter().cloned().fold(0.0, f64::max);
    let max_r = tr.iter().cloned().fold(0.0, f64::max);
    if max_s <= 0.0 || max_r <= 0.0 {
        return (0.0, 0.0);
    }
    let active_s: Vec<bool> = ts.iter().map(|&e| e > max_s * 1e-3).collect();
    let active_r: Vec<bool> = tr.iter().map(|&e| e > max_r * 1e-4).collect();
    let n_active = active_s.iter().filter(|&&a| a).count();
    let both = active_s
        .iter()
        .zip(&active_r)
        .filter(|(a, b)| **a && **b)
        .count();
    let coverage = if n_active == 0 {
        0.0
    } else {
        both as f64 / n_active as f64
    };

    let to_log = |m: &Vec<Vec<f64>>, max: f64| -> Vec<Vec<f64>> {
        let floor = max * 1e-5 / bands as f64;
        m.iter()
            .map(|f| f.iter().map(|&e| (e + floor).log10()).collect())
            .collect()
    };
    let ls = to_log(&es, max_s);
    let lr = to_log(&er, max_r);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for b in 0..bands {
        let ms = ls.iter().map(|f| f[b]).sum::<f64>() / n_frames as f64;
        let mr = lr.iter().map(|f| f[b]).sum::<f64>() / n_frames as f64;
        for i in 0..n_frames {
            let x = ls[i][b] - ms;
            let y = lr[i][b] - mr;
            sxy += x * y;
            sxx += x * x;
            syy += y * y;
        }
    }
    let sim = if sxx > 0.0 && syy > 0.0 {
        sxy / (sxx * syy).sqrt()
    } else {
        0.0
    };
    (sim, coverage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::Law;
    use crate::speech::{self, Phrase};
    use std::process::Command;

    const RATE: u32 = 8000;

    fn phrase(p: Phrase) -> Audio {
        Audio::read_wav(&speech::phrase_wav(p, 16000).expect("espeak-ng and sox are installed"))
            .unwrap()
    }

    /// Deterministic white noise (xorshift), so the tests never flake.
    fn noise(rate: u32, len: usize, amp: f32, seed: u64) -> Audio {
        let mut x = seed | 1;
        let s = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
            })
            .collect();
        Audio::new(rate, s)
    }

    fn delayed(a: &Audio, ms: u32) -> Audio {
        let mut out = Audio::silence(a.rate, ms);
        out.append(a).unwrap();
        out.append(&Audio::silence(a.rate, 700)).unwrap();
        out
    }

    /// Through sox: 8 kHz A-law WAV and back, as a real G.711 leg would do.
    fn through_sox_alaw(a: &Audio) -> Audio {
        let dir = crate::process::scratch_dir("sox-alaw").unwrap();
        let src = dir.path().join("in.wav");
        let mid = dir.path().join("alaw.wav");
        let out = dir.path().join("out.wav");
        a.write_wav(&src).unwrap();
        let ok = Command::new("sox")
            .arg(&src)
            .args(["-r", "8000", "-e", "a-law", "-b", "8"])
            .arg(&mid)
            .status()
            .unwrap()
            .success()
            && Command::new("sox")
                .arg(&mid)
                .args(["-e", "signed-integer", "-b", "16"])
                .arg(&out)
                .status()
                .unwrap()
                .success();
        assert!(ok, "sox failed");
        Audio::read_wav(&out).unwrap()
    }

    /// Opus-like degradation: 3.4 kHz low-pass (sox), -6 dB gain, noise at
    /// about -40 dBFS.
    fn opus_like(a: &Audio) -> Audio {
        let dir = crate::process::scratch_dir("sox-lp").unwrap();
        let src = dir.path().join("in.wav");
        let out = dir.path().join("out.wav");
        a.write_wav(&src).unwrap();
        let ok = Command::new("sox")
            .arg(&src)
            .arg(&out)
            .args(["lowpass", "3400", "gain", "-6"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "sox failed");
        let mut b = Audio::read_wav(&out).unwrap();
        let n = noise(b.rate, b.samples.len(), 0.01, 7);
        for (x, y) in b.samples.iter_mut().zip(&n.samples) {
            *x += y;
        }
        b
    }

    #[test]
    fn identical_delayed_audio_matches_with_the_right_lag() {
        let de = phrase(Phrase::GermanOrder);
        let c = compare(&de, &delayed(&de, 240), RATE).unwrap();
        eprintln!("identity: {c}");
        c.assert_match("identity");
        assert!((c.lag_ms - 240.0).abs() < 2.0, "{c}");
        assert!(c.correlation > 0.95, "{c}");
    }

    #[test]
    fn g711_through_sox_matches() {
        let de = phrase(Phrase::GermanOrder);
        let c = compare(&de, &delayed(&through_sox_alaw(&de), 100), RATE).unwrap();
        eprintln!("sox a-law: {c}");
        c.assert_match("sox a-law");
        assert!(c.correlation > 0.9, "{c}");
        // The harness's own codec must agree with sox.
        let pcm8 = de.resample(8000).unwrap().to_i16();
        let ours = Audio::from_i16(8000, &Law::A.decode_all(&Law::A.encode_all(&pcm8)));
        compare(&de, &ours, RATE)
            .unwrap()
            .assert_match("harness a-law");
        let mu = Audio::from_i16(8000, &Law::Mu.decode_all(&Law::Mu.encode_all(&pcm8)));
        compare(&de, &mu, RATE)
            .unwrap()
            .assert_match("harness mu-law");
    }

    #[test]
    fn opus_like_degradation_matches() {
        let en = phrase(Phrase::EnglishWeather);
        let c = compare(&en, &delayed(&opus_like(&en), 60), RATE).unwrap();
        eprintln!("opus-like: {c}");
        c.assert_match("low-pass + noise");
        let c16 = compare(&en, &delayed(&opus_like(&en), 60), 16000).unwrap();
        c16.assert_match("low-pass + noise at 16 kHz");
    }

    #[test]
    fn silence_does_not_match() {
        let de = phrase(Phrase::GermanOrder);
        let c = compare(&de, &Audio::silence(16000, 5000), RATE).unwrap();
        eprintln!("silence: {c}");
        c.assert_no_match("silence");
        let c = compare(&de, &Audio::new(16000, vec![]), RATE).unwrap();
        c.assert_no_match("empty");
    }

    #[test]
    fn noise_does_not_match() {
        let de = phrase(Phrase::GermanOrder);
        let c = compare(&de, &noise(16000, 16000 * 6, 0.3, 42), RATE).unwrap();
        eprintln!("noise: {c}");
        c.assert_no_match("noise");
    }

    #[test]
    fn another_sentence_does_not_match() {
        let de = phrase(Phrase::GermanOrder);
        for other in [
            Phrase::GermanGreeting,
            Phrase::EnglishWeather,
            Phrase::EnglishCount,
        ] {
            let c = compare(&de, &delayed(&phrase(other), 100), RATE).unwrap();
            eprintln!("{other:?}: {c}");
            c.assert_no_match(&format!("{other:?} instead of GermanOrder"));
        }
    }

    #[test]
    fn time_reversed_sentence_does_not_match() {
        let de = phrase(Phrase::GermanOrder);
        let c = compare(&de, &delayed(&de.reversed(), 100), RATE).unwrap();
        eprintln!("reversed: {c}");
        c.assert_no_match("time-reversed");
    }

    #[test]
    fn truncated_audio_does_not_match() {
        let de = phrase(Phrase::GermanOrder);
        let half = Audio::new(de.rate, de.samples[..de.samples.len() / 2].to_vec());
        let c = compare(&de, &delayed(&half, 100), RATE).unwrap();
        eprintln!("half: {c}");
        c.assert_no_match("first half only");
    }

    #[test]
    fn resample_keeps_timing_and_level() {
        let t = speech::tone(1000.0, 48000, 500, 0.5);
        let r = t.resample(8000).unwrap();
        assert!(
            (r.samples.len() as i64 - 4000).abs() <= 2,
            "{}",
            r.samples.len()
        );
        assert!((r.rms_dbfs() - t.rms_dbfs()).abs() < 0.5);
        let c = speech::clicks(8000, &[100, 600], 1500);
        let onset = c.first_onset(-20.0).unwrap();
        assert_eq!(onset.as_millis(), 100);
    }

    #[test]
    fn wav_round_trip_and_unfinished_header_is_reported() {
        let dir = crate::process::scratch_dir("wav").unwrap();
        let p = dir.path().join("t.wav");
        let t = speech::tone(440.0, 8000, 200, 0.25);
        t.write_wav(&p).unwrap();
        let back = Audio::read_wav(&p).unwrap();
        assert_eq!(back.samples.len(), t.samples.len());
        // A WAV whose header still says 0 data bytes (recorder killed).
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
        bytes.extend(std::iter::repeat_n(0u8, 4000));
        std::fs::write(&p, &bytes).unwrap();
        let err = Audio::read_wav(&p).unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
    }
}
