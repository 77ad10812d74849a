//! Both audio directions through the bridge, against a scripted strict Realtime server running
//! in the test process: the caller's sentence must reach the server as 24 kHz PCM that matches
//! it, and the model's scripted answer must reach the caller and match.

mod common;

use std::time::Duration;

use agent::realtime::server::script::{Reply, Script};
use agent::realtime::server::Pacing;
use common::{phrase_24k, ScriptedBackend, Voiceagent};
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::speech::{padded_phrase_wav, Phrase};

#[test]
fn caller_speech_reaches_the_model_and_the_answer_reaches_the_caller() {
    let greeting = phrase_24k(Phrase::EnglishCount);
    let answer = phrase_24k(Phrase::EnglishWeather);
    let backend = ScriptedBackend::start(
        Script::new()
            .reply(Reply::speak(greeting.clone(), "One, two, three"))
            .reply(Reply::speak(answer.clone(), "The weather")),
        Pacing::Speedup(2.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    let says = Phrase::GermanOrder;
    // The greeting lasts about 4 s; the caller speaks after it.
    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "caller",
            &padded_phrase_wav(says, 48000, 7000, 20_000).unwrap(),
        )
        .codecs(&[Codec::Opus]),
    )
    .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();

    // The caller's turn ends (server VAD) and the answer is sent in full.
    backend.wait_for("the answer is sent", Duration::from_secs(40), |s| {
        s.first()
            .and_then(|s| s.audio_sent.get(1))
            .filter(|a| a.samples.len() >= answer.len())
            .map(|_| ())
    });
    let sentence = Audio::read_wav(&padded_phrase_wav(says, 48000, 300, 300).unwrap()).unwrap();
    let answer_audio = Audio::from_i16(24000, &answer);
    // Let the answer play out at the caller: observed in its recording, not slept for.
    let need = Duration::from_millis(7000) + sentence.duration() + answer_audio.duration();
    caller
        .wait_received_audio(need, Duration::from_secs(40))
        .unwrap();
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(10));
    let heard = caller.finish().unwrap().last_received().unwrap();
    let session = backend.sessions().remove(0);

    // Uplink: the server's input buffer holds the caller's sentence at 24 kHz.
    let input = Audio::from_i16(24000, &session.input_audio);
    let c = compare(&sentence, &input, 16000).unwrap();
    eprintln!("the server received the caller's sentence: {c}");
    c.assert_match("the server's input audio is the caller's sentence");
    assert!(
        c.lag_ms > 5000.0,
        "the sentence is at {} ms of the input, but the caller said it after 7 s of silence",
        c.lag_ms
    );
    let other =
        Audio::read_wav(&padded_phrase_wav(Phrase::GermanGreeting, 48000, 300, 300).unwrap())
            .unwrap();
    compare(&other, &input, 16000)
        .unwrap()
        .assert_no_match("a sentence the caller did not say must not match the input");
    // The whole call was appended, in real time: about as long as the call's audio.
    let input_s = input.duration().as_secs_f64();
    assert!(
        input_s >= need.as_secs_f64() - 3.0,
        "only {input_s:.1} s of caller audio reached the server"
    );

    // Downlink: the caller heard the greeting, then the answer after its sentence.
    let c = compare(&Audio::from_i16(24000, &greeting), &heard, 16000).unwrap();
    eprintln!("the caller heard the greeting: {c}");
    c.assert_match("the caller hears the scripted greeting");
    let c = compare(&answer_audio, &heard, 16000).unwrap();
    eprintln!("the caller heard the answer: {c}");
    c.assert_match("the caller hears the scripted answer");
    assert!(
        c.lag_ms > 7000.0 + sentence.duration().as_secs_f64() * 1000.0 - 1000.0,
        "the answer must come after the caller's sentence, not at {} ms",
        c.lag_ms
    );
    // No protocol errors and no barge-in: the caller did not interrupt.
    assert!(
        session.errors.is_empty(),
        "server errors: {:?}",
        session.errors
    );
    assert!(
        session.truncates.is_empty(),
        "unexpected truncates: {:?}",
        session.truncates
    );
}
