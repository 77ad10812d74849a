//! The engine against real SIP peers over loopback: audio in both directions with Opus
//! (baresip) and G.711 (SIPp), compared with what was sent.
//!
//! pjsua is one per process, so the tests in this binary take turns (`engine::lock`).

use std::time::{Duration, Instant};

use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::engine::{config, lock, start, wait_ended, wait_media_info};
use integration_tests::g711::Law;
use integration_tests::rtp::{decode_g711, RtpListener};
use integration_tests::sipp::{Sipp, SippRun};
use integration_tests::speech::{padded_phrase_wav, phrase_g711, Phrase};
use pjsip_safe::media::{UplinkFrame, SAMPLE_RATE};
use pjsip_safe::CallMedia;

const TAIL_MS: u32 = 20_000;

fn sentence(p: Phrase, rate: u32) -> Audio {
    Audio::read_wav(&padded_phrase_wav(p, rate, 300, 300).unwrap()).unwrap()
}

/// Collects uplink frames for `duration`, returning the audio and the frame rate seen.
fn collect_uplink(media: &mut CallMedia, duration: Duration) -> (Audio, f64) {
    let start = Instant::now();
    let mut samples: Vec<i16> = Vec::new();
    let mut frames: Vec<UplinkFrame> = Vec::new();
    while start.elapsed() < duration {
        if let Ok(frame) = media.uplink.recv_timeout(Duration::from_millis(100)) {
            frames.push(frame);
        }
    }
    let span = frames
        .last()
        .zip(frames.first())
        .map(|(l, f)| (l.captured_at - f.captured_at).as_secs_f64())
        .unwrap_or(0.0);
    let rate = if span > 0.0 {
        (frames.len() - 1) as f64 / span
    } else {
        0.0
    };
    for f in &frames {
        samples.extend_from_slice(&f.samples);
    }
    (Audio::from_i16(SAMPLE_RATE, &samples), rate)
}

#[test]
fn baresip_calls_with_opus_and_audio_flows_both_ways() {
    let _guard = lock();
    let (engine, events, sip_port) = start(config());
    let caller_says = Phrase::GermanOrder;
    let engine_says = Phrase::EnglishWeather;

    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "caller",
            &padded_phrase_wav(caller_says, 48000, 300, TAIL_MS).unwrap(),
        )
        .codecs(&[Codec::Opus]),
    )
    .unwrap();
    caller
        .dial(&format!("sip:agent@127.0.0.1:{sip_port}"))
        .unwrap();
    let (call, info, mut media) = wait_media_info(&events);
    assert_eq!(info.codec.to_lowercase(), "opus", "{info:?}");
    assert_eq!(info.clock_rate, 48000);
    caller.wait_established().unwrap();

    // The engine speaks a 100 ms-chunked sentence while it listens.
    let reply = sentence(engine_says, 48000).to_i16();
    for chunk in reply.chunks(4800) {
        media.downlink.push(1, chunk).unwrap();
    }
    media.downlink.end_of_response(1).unwrap();

    let heard_len = sentence(caller_says, 48000).duration() + Duration::from_millis(1500);
    let (uplink, fps) = collect_uplink(&mut media, heard_len);
    assert!(
        (48.0..52.0).contains(&fps),
        "uplink ran at {fps:.1} frames/s, not 50"
    );

    caller
        .wait_received_audio(
            sentence(engine_says, 48000).duration(),
            Duration::from_secs(15),
        )
        .unwrap();
    assert_eq!(
        media.downlink.played_samples(1),
        reply.len() as u64,
        "every sample pushed was played"
    );
    caller.hangup().unwrap();
    assert_eq!(wait_ended(&events, call), 200);
    caller.wait_closed().unwrap();
    let rec = caller.finish().unwrap();

    let c = compare(&sentence(caller_says, 48000), &uplink, 16000).unwrap();
    eprintln!("engine heard the caller: {c}");
    c.assert_match("the uplink carries the caller's sentence");
    compare(&sentence(engine_says, 48000), &uplink, 16000)
        .unwrap()
        .assert_no_match("the uplink must not carry the engine's own sentence");

    let heard = rec.last_received().unwrap();
    let c = compare(&sentence(engine_says, 48000), &heard, 16000).unwrap();
    eprintln!("the caller heard the engine: {c}");
    c.assert_match("the caller hears the engine's sentence");
    compare(&sentence(caller_says, 48000), &heard, 16000)
        .unwrap()
        .assert_no_match("the caller must not hear itself");
    engine.shutdown().unwrap();
}

fn sipp_g711_call(law: Law) {
    let _guard = lock();
    let (engine, events, sip_port) = start(config());
    let peer_says = Phrase::EnglishCount;
    let engine_says = Phrase::GermanGreeting;
    let peer = RtpListener::bind().unwrap();
    let scratch = integration_tests::process::scratch_dir("g711").unwrap();
    let port_file = scratch.path().join("engine-rtp-port");
    let sent = sentence(peer_says, 8000);
    let call_ms = sent.duration().as_millis() as u64 + 2000;
    let run = SippRun::new("uac_g711_symmetric.xml")
        .var("RTP_LISTEN_PORT", peer.port())
        .var("PT", law.payload_type())
        .var("CODEC", law.encoding_name())
        .var("PORT_FILE", port_file.display())
        .var("CALL_MS", call_ms)
        .remote(format!("127.0.0.1:{sip_port}"))
        .service("agent")
        .timeout(Duration::from_millis(call_ms) + Duration::from_secs(10));
    let sipp = Sipp::spawn(&run).unwrap();

    let (call, info, mut media) = wait_media_info(&events);
    assert_eq!(info.codec, law.encoding_name(), "{info:?}");
    assert_eq!(info.clock_rate, 8000);
    let engine_rtp =
        integration_tests::sipp::wait_port_file(&port_file, Duration::from_secs(10)).unwrap();
    let g711 = std::fs::read(phrase_g711(peer_says, law, 300, 300).unwrap()).unwrap();
    let sender = peer
        .stream_g711(
            std::net::SocketAddr::from(([127, 0, 0, 1], engine_rtp)),
            g711,
            law.payload_type(),
        )
        .unwrap();

    let reply = sentence(engine_says, 48000).to_i16();
    media.downlink.push(7, &reply).unwrap();
    media.downlink.end_of_response(7).unwrap();
    let (uplink, fps) = collect_uplink(&mut media, sent.duration() + Duration::from_millis(1000));
    assert!(
        (48.0..52.0).contains(&fps),
        "uplink ran at {fps:.1} frames/s, not 50"
    );
    sender.join().unwrap();

    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    wait_ended(&events, call);
    let packets = peer.finish().unwrap();
    assert_eq!(media.downlink.played_samples(7), reply.len() as u64);

    // 8 kHz in, resampled to 48 kHz by the bridge: compare in the telephone band.
    let c = compare(&sent, &uplink, 8000).unwrap();
    eprintln!("{law:?}: engine heard the peer: {c}");
    c.assert_match("the uplink carries the peer's sentence");
    compare(&sentence(engine_says, 8000), &uplink, 8000)
        .unwrap()
        .assert_no_match("the uplink must not carry the engine's sentence");

    assert!(
        packets.iter().all(|p| p.payload_type == law.payload_type()),
        "the engine sent another payload type than {law:?}"
    );
    let captured = decode_g711(&packets, law);
    let c = compare(&sentence(engine_says, 8000), &captured, 8000).unwrap();
    eprintln!(
        "{law:?}: the peer captured the engine: {c} ({} packets)",
        packets.len()
    );
    c.assert_match("the engine's sentence reaches the G.711 peer");
    compare(&sent, &captured, 8000)
        .unwrap()
        .assert_no_match("the peer must not hear its own sentence");
    engine.shutdown().unwrap();
}

#[test]
fn sipp_calls_with_pcma_and_audio_flows_both_ways() {
    sipp_g711_call(Law::A);
}

#[test]
fn sipp_calls_with_pcmu_and_audio_flows_both_ways() {
    sipp_g711_call(Law::Mu);
}
