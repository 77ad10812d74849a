//! `voiceagent run` without an API key answers with the built-in echo agent: a caller (baresip,
//! Opus) hears the greeting, then its own sentence played back, through the whole pipeline
//! (PJSIP, the bridge, resampling, the WebSocket, the local Realtime server).

mod common;

use std::time::Duration;

use agent::realtime::server::assets::Prompt;
use common::Voiceagent;
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::speech::{padded_phrase_wav, Phrase};

#[test]
fn the_echo_agent_greets_and_repeats_the_caller() {
    let mut va = Voiceagent::run(&[]);
    assert!(
        va.log_text().contains("built-in local echo agent"),
        "the start-up log must say the embedded default is used:\n{}",
        va.log_text()
    );
    let says = Phrase::GermanOrder;
    // The caller waits for the greeting (about 4.6 s), then speaks, then stays quiet.
    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "caller",
            &padded_phrase_wav(says, 48000, 6000, 20_000).unwrap(),
        )
        .codecs(&[Codec::Opus]),
    )
    .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    va.wait_log("session ready; call answered", Duration::from_secs(10));
    let sentence = Audio::read_wav(&padded_phrase_wav(says, 48000, 300, 300).unwrap()).unwrap();
    // Greeting, the caller's sentence, its echo after the pause.
    let need = Duration::from_millis(6000) + sentence.duration() * 2 + Duration::from_millis(1500);
    caller
        .wait_received_audio(need, Duration::from_secs(40))
        .unwrap();
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(10));
    let heard = caller.finish().unwrap().last_received().unwrap();

    let greeting = Audio::from_i16(24000, &Prompt::Greeting.samples());
    let c = compare(&greeting, &heard, 16000).unwrap();
    eprintln!("the caller heard the greeting: {c}");
    c.assert_match("the caller hears the echo agent's greeting");
    assert!(
        c.lag_ms < 1500.0,
        "the greeting started {} ms into the call",
        c.lag_ms
    );

    let c = compare(&sentence, &heard, 16000).unwrap();
    eprintln!("the caller heard its own sentence: {c}");
    c.assert_match("the caller hears its own sentence played back");
    assert!(
        c.lag_ms > 6000.0,
        "the echo must come after the caller spoke, not at {} ms",
        c.lag_ms
    );
    let other =
        Audio::read_wav(&padded_phrase_wav(Phrase::EnglishWeather, 48000, 300, 300).unwrap())
            .unwrap();
    compare(&other, &heard, 16000)
        .unwrap()
        .assert_no_match("a sentence nobody said must not be heard");
}
