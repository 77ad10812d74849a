//! Local audio prompts the bridge plays itself, without the model: the apology when the
//! Realtime backend fails, the hold sound while a slow tool runs, the recording notice.
//!
//! The WAVs are the local Realtime server's assets (24 kHz); here they are converted once to
//! the engine's 48 kHz and shared.

use std::sync::{Arc, OnceLock};

pub use crate::realtime::server::assets::Prompt;

use crate::audio::resample::StreamResampler;

fn to_48k(prompt: Prompt) -> Arc<[i16]> {
    let mut out = Vec::new();
    match StreamResampler::new(24_000, 48_000, 480) {
        Ok(mut r) => {
            r.push(&prompt.samples(), &mut out);
            r.finish(&mut out);
        }
        Err(e) => tracing::error!("cannot resample the {prompt:?} prompt: {e}"),
    }
    out.into()
}

/// The prompt at 48 kHz, converted on first use.
pub fn samples_48k(prompt: Prompt) -> Arc<[i16]> {
    static CACHE: OnceLock<[Arc<[i16]>; 4]> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        [
            to_48k(Prompt::Greeting),
            to_48k(Prompt::Apology),
            to_48k(Prompt::Hold),
            to_48k(Prompt::RecordingNotice),
        ]
    });
    match prompt {
        Prompt::Greeting => all[0].clone(),
        Prompt::Apology => all[1].clone(),
        Prompt::Hold => all[2].clone(),
        Prompt::RecordingNotice => all[3].clone(),
    }
}
