//! Test speech and test signals.
//!
//! Real speech (espeak-ng) rather than tones, because codecs and the
//! comparison treat speech differently from a sine: Opus codes a pure tone
//! almost perfectly and a broken path can still "pass" a tone test. The WAVs
//! are rendered once per (phrase, rate, padding) and cached under
//! `target/integration-tests/speech`, so repeated runs cost nothing.
//! Rendering: espeak-ng (22050 Hz) → sox: resample, mono, 16-bit, normalise to
//! -3 dBFS, pad with silence.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::audio::Audio;
use crate::g711::Law;
use crate::process::target_dir;

/// Distinct sentences: different words, lengths and languages, so a test can
/// tell which one arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phrase {
    GermanOrder,
    GermanGreeting,
    EnglishWeather,
    EnglishCount,
}

impl Phrase {
    pub const ALL: [Phrase; 4] = [
        Phrase::GermanOrder,
        Phrase::GermanGreeting,
        Phrase::EnglishWeather,
        Phrase::EnglishCount,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Phrase::GermanOrder => {
                "Guten Tag, ich möchte zwei große Pizzen mit Salami und eine Flasche Wasser bestellen."
            }
            Phrase::GermanGreeting => "Hallo, hier ist der Bestellservice. Was darf es heute sein?",
            Phrase::EnglishWeather => {
                "The weather in the mountains will be cold and windy, with snow after midnight."
            }
            Phrase::EnglishCount => "One, two, three, four, five. Please repeat your order number.",
        }
    }

    /// espeak-ng voice.
    pub fn voice(self) -> &'static str {
        match self {
            Phrase::GermanOrder | Phrase::GermanGreeting => "de",
            Phrase::EnglishWeather | Phrase::EnglishCount => "en",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Phrase::GermanOrder => "de-order",
            Phrase::GermanGreeting => "de-greeting",
            Phrase::EnglishWeather => "en-weather",
            Phrase::EnglishCount => "en-count",
        }
    }
}

fn cache_dir() -> Result<PathBuf> {
    let dir = target_dir().join("integration-tests").join("speech");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Writes `path` through a unique temporary name and a rename, so parallel
/// tests never read a half-written cache file.
fn write_atomically(path: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension(format!(
        "tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    make(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The phrase as mono 16-bit WAV at `rate`, with 300 ms of silence before and
/// after.
pub fn phrase_wav(phrase: Phrase, rate: u32) -> Result<PathBuf> {
    padded_phrase_wav(phrase, rate, 300, 300)
}

/// The phrase with explicit silence padding. Use a long `tail_ms` for a peer
/// that plays a file as its microphone (baresip's `aufile`), so the call has
/// only silence after the sentence rather than an end-of-file.
pub fn padded_phrase_wav(phrase: Phrase, rate: u32, lead_ms: u32, tail_ms: u32) -> Result<PathBuf> {
    let path = cache_dir()?.join(format!("{}-{rate}-{lead_ms}-{tail_ms}.wav", phrase.slug()));
    if path.exists() {
        return Ok(path);
    }
    let raw = cache_dir()?.join(format!("{}-espeak.wav", phrase.slug()));
    if !raw.exists() {
        write_atomically(&raw, |tmp| {
            run(Command::new("espeak-ng")
                .args(["-v", phrase.voice(), "-s", "150", "-w"])
                .arg(tmp)
                .arg(phrase.text()))
        })?;
    }
    write_atomically(&path, |tmp| {
        run(Command::new("sox")
            .arg(&raw)
            .args([
                "-r",
                &rate.to_string(),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
            ])
            .arg("-t")
            .arg("wav")
            .arg(tmp)
            .args(["gain", "-n", "-3", "pad"])
            .arg(format!("{:.3}", f64::from(lead_ms) / 1000.0))
            .arg(format!("{:.3}", f64::from(tail_ms) / 1000.0)))
    })?;
    Ok(path)
}

/// The phrase at 8 kHz as headerless G.711 bytes: what SIPp's `rtp_stream`
/// plays (it sends the file's bytes as they are).
pub fn phrase_g711(phrase: Phrase, law: Law, lead_ms: u32, tail_ms: u32) -> Result<PathBuf> {
    let ext = match law {
        Law::A => "al",
        Law::Mu => "ul",
    };
    let path = cache_dir()?.join(format!("{}-8000-{lead_ms}-{tail_ms}.{ext}", phrase.slug()));
    if !path.exists() {
        let wav = padded_phrase_wav(phrase, 8000, lead_ms, tail_ms)?;
        let pcm = Audio::read_wav(&wav)?.to_i16();
        write_atomically(&path, |tmp| {
            std::fs::write(tmp, law.encode_all(&pcm))
                .with_context(|| format!("writing {}", tmp.display()))
        })?;
    }
    Ok(path)
}

/// A sine tone.
pub fn tone(freq_hz: f64, rate: u32, ms: u32, amplitude: f32) -> Audio {
    let n = (u64::from(rate) * u64::from(ms) / 1000) as usize;
    let w = 2.0 * std::f64::consts::PI * freq_hz / f64::from(rate);
    Audio::new(
        rate,
        (0..n)
            .map(|i| amplitude * (w * i as f64).sin() as f32)
            .collect(),
    )
}

/// Silence of `total_ms` with a 5 ms 1 kHz burst at each of `at_ms`: a clean
/// onset for latency measurements that survives any codec.
pub fn clicks(rate: u32, at_ms: &[u32], total_ms: u32) -> Audio {
    let mut a = Audio::silence(rate, total_ms);
    let burst = tone(1000.0, rate, 5, 0.8);
    for &t in at_ms {
        let start = (u64::from(rate) * u64::from(t) / 1000) as usize;
        for (i, s) in burst.samples.iter().enumerate() {
            if let Some(x) = a.samples.get_mut(start + i) {
                *x = *s;
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_render_at_each_rate_and_are_cached() {
        for rate in [48000, 24000, 8000] {
            let p = phrase_wav(Phrase::GermanGreeting, rate).unwrap();
            let a = Audio::read_wav(&p).unwrap();
            assert_eq!(a.rate, rate);
            assert!(a.duration().as_secs_f64() > 2.0, "{:?}", a.duration());
            assert!(a.rms_dbfs() > -30.0, "{}", a.rms_dbfs());
            let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
            let again = phrase_wav(Phrase::GermanGreeting, rate).unwrap();
            assert_eq!(
                std::fs::metadata(again).unwrap().modified().unwrap(),
                modified
            );
        }
    }

    #[test]
    fn g711_file_is_raw_bytes_of_the_phrase() {
        let p = phrase_g711(Phrase::EnglishCount, Law::Mu, 0, 0).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let wav =
            Audio::read_wav(&padded_phrase_wav(Phrase::EnglishCount, 8000, 0, 0).unwrap()).unwrap();
        assert_eq!(bytes.len(), wav.samples.len());
        let decoded = Audio::from_i16(8000, &Law::Mu.decode_all(&bytes));
        crate::audio::compare(&wav, &decoded, 8000)
            .unwrap()
            .assert_match("mu-law file");
    }
}
