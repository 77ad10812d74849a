//! Checks the `session.updated` echo against what was asked for.
//!
//! The server has been seen to silently keep a different audio format (reference §4.4) and to
//! drop a whole update; audio in the wrong format is noise to the caller, so a wrong format, no
//! audio output or no VAD is fatal, while a different voice or VAD tuning is only reported.

use super::{ConversationConfig, SessionMismatch};
use crate::realtime::wire::{AudioFormat, Modality, Session, TurnDetection, Voice};

/// Compares the `session.updated` echo with what `config` asked for.
pub(super) fn session_mismatches(
    config: &ConversationConfig,
    echo: &Session,
) -> Vec<SessionMismatch> {
    let mut out = Vec::new();
    let mut check = |field: &'static str, wanted: String, got: String, fatal: bool| {
        if wanted != got {
            out.push(SessionMismatch {
                field,
                wanted,
                got,
                fatal,
            });
        }
    };
    let audio = echo.audio.as_ref();
    let input = audio.and_then(|a| a.input.as_ref());
    let output = audio.and_then(|a| a.output.as_ref());
    let describe_format = |format: Option<&AudioFormat>| format!("{format:?}");
    check(
        "audio.input.format",
        describe_format(Some(&AudioFormat::PCM_24K)),
        describe_format(input.and_then(|i| i.format.as_ref())),
        true,
    );
    check(
        "audio.output.format",
        describe_format(Some(&AudioFormat::PCM_24K)),
        describe_format(output.and_then(|o| o.format.as_ref())),
        true,
    );
    if let Some(modalities) = &echo.output_modalities {
        check(
            "output_modalities",
            format!("{:?}", [Modality::Audio]),
            format!("{modalities:?}"),
            true,
        );
    }
    check(
        "audio.output.voice",
        Voice::Named(config.voice.clone()).to_string(),
        output
            .and_then(|o| o.voice.as_ref())
            .map_or_else(|| "absent".into(), Voice::to_string),
        false,
    );
    let wanted_vad = config.turn_detection.as_ref();
    let got_vad = input.and_then(|i| i.turn_detection.as_ref());
    let vad_type = |vad: Option<&TurnDetection>| vad.map_or("none", TurnDetection::type_name);
    check(
        "audio.input.turn_detection.type",
        vad_type(wanted_vad).into(),
        vad_type(got_vad).into(),
        true,
    );
    if let (Some(wanted), Some(got)) = (wanted_vad, got_vad) {
        if wanted.type_name() == got.type_name() && !vad_settings_match(wanted, got) {
            check(
                "audio.input.turn_detection",
                format!("{wanted:?}"),
                format!("{got:?}"),
                false,
            );
        }
    }
    if let Some(model) = &config.transcription_model {
        check(
            "audio.input.transcription.model",
            model.clone(),
            input
                .and_then(|i| i.transcription.as_ref())
                .map_or_else(|| "none".into(), |t| t.model.clone()),
            false,
        );
    }
    out
}

/// Whether every VAD setting we asked for is echoed back (settings we left out may take any
/// server default).
fn vad_settings_match(wanted: &TurnDetection, got: &TurnDetection) -> bool {
    fn same<T: PartialEq>(wanted: &Option<T>, got: &Option<T>) -> bool {
        wanted.is_none() || wanted == got
    }
    fn same_f64(wanted: &Option<f64>, got: &Option<f64>) -> bool {
        match (wanted, got) {
            (None, _) => true,
            (Some(w), Some(g)) => (w - g).abs() < 1e-6,
            (Some(_), None) => false,
        }
    }
    match (wanted, got) {
        (
            TurnDetection::ServerVad {
                threshold: t1,
                prefix_padding_ms: p1,
                silence_duration_ms: s1,
                idle_timeout_ms: i1,
                create_response: c1,
                interrupt_response: r1,
            },
            TurnDetection::ServerVad {
                threshold: t2,
                prefix_padding_ms: p2,
                silence_duration_ms: s2,
                idle_timeout_ms: i2,
                create_response: c2,
                interrupt_response: r2,
            },
        ) => {
            same_f64(t1, t2)
                && same(p1, p2)
                && same(s1, s2)
                && same(i1, i2)
                && same(c1, c2)
                && same(r1, r2)
        }
        (
            TurnDetection::SemanticVad {
                eagerness: e1,
                create_response: c1,
                interrupt_response: r1,
            },
            TurnDetection::SemanticVad {
                eagerness: e2,
                create_response: c2,
                interrupt_response: r2,
            },
        ) => same(e1, e2) && same(c1, c2) && same(r1, r2),
        _ => true,
    }
}
