//! Limits on what one caller can cost (issue 13): at `MAX_CALL_DURATION` the caller hears the
//! goodbye prompt and the call is ended by us, with the echo agent behind `voiceagent run`.

mod common;

use std::time::{Duration, Instant};

use agent::realtime::server::assets::Prompt;
use common::{silent_caller_wav, Voiceagent};
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};

#[test]
fn at_max_call_duration_the_caller_hears_the_goodbye_and_the_call_ends() {
    let limit = Duration::from_secs(8);
    let mut va = Voiceagent::run(&[("MAX_CALL_DURATION", limit.as_secs().to_string())]);
    let mut caller = Baresip::spawn(
        &BaresipConfig::new("longcaller", &silent_caller_wav()).codecs(&[Codec::Opus]),
    )
    .unwrap();
    let dialled = Instant::now();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    // We hang up: the caller only waits.
    caller
        .wait_event("CALL_CLOSED", Duration::from_secs(30))
        .unwrap();
    let lasted = dialled.elapsed();
    va.wait_log("call finished", Duration::from_secs(10));
    let log = va.log_text();
    assert!(
        log.contains("the maximum call duration is reached"),
        "{log}"
    );
    let goodbye = Audio::from_i16(24000, &Prompt::Goodbye.samples());
    assert!(
        lasted >= limit && lasted < limit + goodbye.duration() + Duration::from_secs(4),
        "the call lasted {lasted:?} with a limit of {limit:?}"
    );
    let heard = caller.finish().unwrap().last_received().unwrap();
    let c = compare(&goodbye, &heard, 16000).unwrap();
    eprintln!("the caller heard the goodbye: {c}");
    c.assert_match("the caller hears the goodbye prompt at the limit");
    assert!(
        c.lag_ms > (limit.as_millis() as f64) - 2000.0,
        "the goodbye came at {} ms, before the limit",
        c.lag_ms
    );
}
