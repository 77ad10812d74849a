//! RECORD_CALLS: a real call's stereo recording has the caller on the left and the agent on the
//! right (each channel matches what that side said), the recording notice is played first, and
//! the API serves the file.

mod api_support;
mod common;

use std::time::Duration;

use agent::realtime::server::assets::Prompt;
use api_support::{get, wait_for};
use common::Voiceagent;
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::speech::{padded_phrase_wav, Phrase};

const TOKEN: &str = "recording-token-0123456789";

fn channel(samples: &[i16], ch: usize) -> Audio {
    let mono: Vec<i16> = samples.chunks(2).map(|p| p[ch]).collect();
    Audio::from_i16(16_000, &mono)
}

#[test]
fn a_recording_has_the_caller_left_and_the_agent_right() {
    let va = Voiceagent::run(&[
        ("RECORD_CALLS", "true".into()),
        ("RECORDING_NOTICE", "true".into()),
        ("API_TOKEN", TOKEN.into()),
    ]);
    let says = Phrase::EnglishWeather;
    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "recorded",
            // Notice (2 s) and greeting (4.6 s) first, then the sentence.
            &padded_phrase_wav(says, 48000, 8000, 20_000).unwrap(),
        )
        .codecs(&[Codec::Opus]),
    )
    .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    let sentence = Audio::read_wav(&padded_phrase_wav(says, 48000, 300, 300).unwrap()).unwrap();
    caller
        .wait_received_audio(
            Duration::from_millis(8000) + sentence.duration() * 2 + Duration::from_millis(1500),
            Duration::from_secs(45),
        )
        .unwrap();
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    drop(caller.finish().unwrap());

    // The API serves the file once it is written.
    let response = wait_for("the recording", Duration::from_secs(15), || {
        let r = get(&va.api_addr, "/api/calls/call-1/recording", Some(TOKEN));
        (r.status == 200).then_some(r)
    });
    let content_type = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    assert_eq!(content_type.as_deref(), Some("audio/wav"));
    assert_eq!(
        get(&va.api_addr, "/api/calls/call-1/recording", None).status,
        401,
        "recordings need the token"
    );

    let day_dirs: Vec<_> = std::fs::read_dir(va.data_dir.join("recordings"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(day_dirs.len(), 1);
    let file = std::fs::read_dir(day_dirs[0].path())
        .unwrap()
        .flatten()
        .next()
        .expect("one recording")
        .path();
    let mut reader = hound::WavReader::open(&file).unwrap();
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 16_000);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let (left, right) = (channel(&samples, 0), channel(&samples, 1));

    let c = compare(&sentence, &left, 16000).unwrap();
    eprintln!("left channel vs the caller's sentence: {c}");
    c.assert_match("the caller's words are on the left channel");
    let greeting = Audio::from_i16(24000, &Prompt::Greeting.samples());
    let notice = Audio::from_i16(24000, &Prompt::RecordingNotice.samples());
    let c = compare(&greeting, &right, 16000).unwrap();
    eprintln!("right channel vs the greeting: {c}");
    c.assert_match("the agent's greeting is on the right channel");
    let n = compare(&notice, &right, 16000).unwrap();
    eprintln!("right channel vs the recording notice: {n}");
    n.assert_match("the recording notice is on the right channel");
    assert!(n.lag_ms < c.lag_ms, "the notice plays before the greeting");
    compare(&greeting, &left, 16000)
        .unwrap()
        .assert_no_match("the agent must not be on the caller's channel");
}
