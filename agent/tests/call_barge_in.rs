//! Barge-in through the whole pipeline: the caller stays silent while a long response plays,
//! then speaks. The caller must stop hearing the response within 100 ms of the server's
//! `speech_started`, and the `conversation.item.truncate` the strict server receives must say
//! how much of the response the caller really heard (within 40 ms), and be accepted.
//!
//! How it is measured (G.711 A-law, so baresip's recording is exactly what arrived):
//! - `speech_started`: the scripted server runs in this process; the test takes the time at
//!   the record change that shows the event was sent.
//! - When the caller stopped hearing: baresip writes each decoded packet to its recording as it
//!   arrives; a thread samples the file's length every 2 ms, so the position where the
//!   response ends in the recording maps to the wall-clock time it arrived (always late by up
//!   to one sample interval, so the latency errs on the long side).
//! - What the caller heard: the response's start and end in the recording (5 ms windows).

mod common;

use std::time::Duration;

use agent::realtime::server::script::{Reply, Script};
use agent::realtime::server::Pacing;
use common::{
    baresip_rec_dir, find_level, first_channel, RecordingClock, ScriptedBackend, Voiceagent,
};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::speech::{padded_phrase_wav, Phrase};

#[test]
fn the_caller_interrupts_a_long_response() {
    let backend = ScriptedBackend::start(
        Script::new().reply(Reply::long(Duration::from_secs(10), "A long answer")),
        Pacing::Speedup(2.0),
    );
    let mut va = Voiceagent::run(&backend.env());
    // Silent for 4 s (the response plays), then a sentence.
    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "caller",
            &padded_phrase_wav(Phrase::GermanOrder, 48000, 4000, 20_000).unwrap(),
        )
        .codecs(&[Codec::Pcma]),
    )
    .unwrap();
    let clock = RecordingClock::start(baresip_rec_dir(&caller.log_path()));
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();

    let speech_started = backend.wait_instant(
        "the server detects the caller's speech",
        Duration::from_secs(20),
        |s| {
            s.first().is_some_and(|s| {
                s.server_event_types
                    .iter()
                    .any(|t| t == "input_audio_buffer.speech_started")
            })
        },
    );
    let truncate = backend.wait_for("a truncate arrives", Duration::from_secs(5), |s| {
        s.first().and_then(|s| s.truncates.first().cloned())
    });
    // Two more seconds of the call, observed in the recording.
    caller
        .wait_received_audio(Duration::from_secs(8), Duration::from_secs(30))
        .unwrap();
    let growth = clock.finish();
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(10));
    let rec = caller.finish().unwrap();
    let path = rec.received.last().expect("a recording").clone();
    let (rate, heard) = first_channel(&path);
    let channels = hound::WavReader::open(&path).unwrap().spec().channels as u64;
    let session = backend.sessions().remove(0);

    // The response in the recording: loud from r0, quiet from r1.
    let win = rate as usize / 200; // 5 ms
    let r0 = find_level(&heard, 0, win, -30.0, true).expect("the caller heard the response");
    let r1 = find_level(&heard, r0, win, -50.0, false).expect("the response stopped");
    let heard_ms = (r1 - r0) as f64 * 1000.0 / f64::from(rate);
    let item = &session.audio_sent[0];
    eprintln!(
        "response: {} ms sent, caller heard {heard_ms:.0} ms; truncate {:?}",
        item.samples.len() / 24,
        truncate
    );
    assert!(
        heard_ms > 2000.0 && heard_ms < 9000.0,
        "the caller must hear part of the 10 s response, not {heard_ms:.0} ms"
    );
    // Nothing of it came back after the cut.
    let after = find_level(&heard, r1 + rate as usize / 10, win, -30.0, true);
    assert!(
        after.is_none(),
        "response audio played again at {:.0} ms of the recording",
        after.unwrap_or(0) as f64 * 1000.0 / f64::from(rate)
    );

    // The truncate: the interrupted item, accepted by the strict server, matching what was heard.
    assert_eq!(
        truncate.item_id, item.item_id,
        "truncate names the interrupted item"
    );
    assert!(
        truncate.accepted,
        "the strict server rejected {truncate:?}: {:?}",
        session.errors
    );
    assert_eq!(
        session.truncates.len(),
        1,
        "one truncate: {:?}",
        session.truncates
    );
    let diff = truncate.audio_end_ms as f64 - heard_ms;
    assert!(
        diff.abs() <= 40.0,
        "audio_end_ms {} but the caller heard {heard_ms:.0} ms of the response ({diff:+.0} ms)",
        truncate.audio_end_ms
    );

    // When the caller stopped hearing it, relative to speech_started.
    let end_bytes = 44 + r1 as u64 * 2 * channels;
    let (stopped_at, _) = growth
        .iter()
        .find(|(_, len)| *len >= end_bytes)
        .expect("the recording grew past the end of the response");
    let stop_ms = stopped_at
        .checked_duration_since(speech_started)
        .map_or_else(
            || -(speech_started.duration_since(*stopped_at).as_secs_f64() * 1000.0),
            |d| d.as_secs_f64() * 1000.0,
        );
    eprintln!("the caller stopped hearing the response {stop_ms:.0} ms after speech_started");
    assert!(
        stop_ms > -40.0,
        "the response stopped {stop_ms:.0} ms before speech_started: not a barge-in"
    );
    assert!(
        stop_ms <= 100.0,
        "the response kept playing {stop_ms:.0} ms after speech_started (limit 100 ms)"
    );
    assert!(
        session
            .error_codes()
            .iter()
            .all(|c| c.as_deref() != Some("conversation_already_has_active_response")),
        "errors: {:?}",
        session.errors
    );
}
