//! Audio prompts embedded in the binary (made by `scripts/make-prompts.sh`).
//!
//! They are compiled in so `voiceagent run` works from a single binary with no asset directory,
//! and they are 24 kHz mono PCM16 so they can be sent as Realtime audio without resampling.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};

/// One of the committed prompts in `agent/assets/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// The echo agent's greeting ("Hallo, hier ist der Echo-Test von voiceagent …").
    Greeting,
    /// Spoken when the model backend fails ("Entschuldigung, es gibt gerade eine technische Störung …").
    Apology,
    /// A soft two-tone hold sound, about 1.5 s.
    Hold,
    /// "Dieses Gespräch wird aufgezeichnet."
    RecordingNotice,
    /// "Die maximale Gesprächsdauer ist erreicht. …": the end of a call at MAX_CALL_DURATION.
    Goodbye,
}

impl Prompt {
    pub const ALL: [Prompt; 5] = [
        Prompt::Greeting,
        Prompt::Apology,
        Prompt::Hold,
        Prompt::RecordingNotice,
        Prompt::Goodbye,
    ];

    /// The WAV file as committed.
    pub fn wav_bytes(self) -> &'static [u8] {
        match self {
            Prompt::Greeting => include_bytes!("../../../assets/greeting.wav"),
            Prompt::Apology => include_bytes!("../../../assets/apology.wav"),
            Prompt::Hold => include_bytes!("../../../assets/hold.wav"),
            Prompt::RecordingNotice => include_bytes!("../../../assets/recording-notice.wav"),
            Prompt::Goodbye => include_bytes!("../../../assets/goodbye.wav"),
        }
    }

    /// The transcript of the prompt (empty for the hold sound).
    pub fn transcript(self) -> &'static str {
        match self {
            Prompt::Greeting => "Hallo, hier ist der Echo-Test von voiceagent. Sprechen Sie, ich wiederhole Ihre Worte.",
            Prompt::Apology => "Entschuldigung, es gibt gerade eine technische Störung. Bitte rufen Sie später noch einmal an.",
            Prompt::Hold => "",
            Prompt::RecordingNotice => "Dieses Gespräch wird aufgezeichnet.",
            Prompt::Goodbye => "Die maximale Gesprächsdauer ist erreicht. Vielen Dank für Ihren Anruf. Auf Wiederhören.",
        }
    }

    /// Decoded PCM16 24 kHz mono samples, decoded once and shared.
    pub fn samples(self) -> Arc<[i16]> {
        static CACHE: OnceLock<Vec<Arc<[i16]>>> = OnceLock::new();
        let all = CACHE.get_or_init(|| {
            Prompt::ALL
                .iter()
                // The files are build inputs checked by the unit test below; failing to decode
                // one is a broken build, not a runtime condition, so an empty prompt is fine.
                .map(|p| {
                    decode_wav_24k_mono(p.wav_bytes())
                        .map(Arc::from)
                        .unwrap_or_else(|_| Arc::from(Vec::new()))
                })
                .collect()
        });
        let index = Prompt::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Arc::clone(&all[index])
    }
}

/// Decodes a WAV file that must be 24 kHz mono 16-bit PCM (the Realtime PCM format).
pub fn decode_wav_24k_mono(bytes: &[u8]) -> Result<Vec<i16>> {
    let mut reader =
        hound::WavReader::new(Cursor::new(bytes)).context("not a readable WAV file")?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.sample_rate != 24_000
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        bail!(
            "WAV must be 24000 Hz mono 16-bit PCM, got {} Hz, {} channel(s), {} bit {:?}; convert with `sox in.wav -r 24000 -c 1 -b 16 out.wav`",
            spec.sample_rate,
            spec.channels,
            spec.bits_per_sample,
            spec.sample_format
        );
    }
    reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .context("truncated WAV data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_prompts_decode_and_have_sound() {
        for p in Prompt::ALL {
            let pcm = decode_wav_24k_mono(p.wav_bytes()).unwrap();
            let secs = pcm.len() as f64 / 24_000.0;
            assert!((1.0..6.0).contains(&secs), "{p:?}: {secs} s");
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!(peak > 2000, "{p:?} is silent");
            assert_eq!(p.samples().len(), pcm.len());
        }
    }

    #[test]
    fn wrong_format_is_a_clear_error() {
        let mut buf = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        let err = decode_wav_24k_mono(buf.get_ref()).unwrap_err().to_string();
        assert!(err.contains("16000 Hz"), "{err}");
    }
}
