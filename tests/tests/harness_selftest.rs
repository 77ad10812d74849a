//! Proves the harness with peer-to-peer calls that do not need our engine:
//! if these pass, a failing engine test points at the engine, not at the
//! harness.

use std::time::Duration;

use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::g711::Law;
use integration_tests::rtp::{decode_g711, RtpListener};
use integration_tests::sipp::{Sipp, SippRun};
use integration_tests::speech::{padded_phrase_wav, phrase_g711, Phrase};

/// Silence after each sentence, so a playing file never hits its end mid-test.
const TAIL_MS: u32 = 20_000;

fn sentence(p: Phrase, rate: u32) -> Audio {
    Audio::read_wav(&padded_phrase_wav(p, rate, 300, 300).unwrap()).unwrap()
}

#[test]
fn baresip_calls_baresip_with_opus_and_each_hears_the_other() {
    let a_says = Phrase::GermanOrder;
    let b_says = Phrase::EnglishWeather;
    let mut a = Baresip::spawn(
        &BaresipConfig::new(
            "alice",
            &padded_phrase_wav(a_says, 48000, 300, TAIL_MS).unwrap(),
        )
        .codecs(&[Codec::Opus]),
    )
    .unwrap();
    let mut b = Baresip::spawn(
        &BaresipConfig::new(
            "bob",
            &padded_phrase_wav(b_says, 48000, 300, TAIL_MS).unwrap(),
        )
        .codecs(&[Codec::Opus])
        .auto_answer(),
    )
    .unwrap();

    a.dial(&b.uri()).unwrap();
    // (With answermode=auto, baresip 1.0 reports no CALL_INCOMING, only
    // CALL_ESTABLISHED.)
    a.wait_established().unwrap();
    b.wait_established().unwrap();

    // Let both sentences play out (each is < 6 s including padding).
    let need = Duration::from_millis(6500);
    a.wait_received_audio(need, Duration::from_secs(15))
        .unwrap();
    b.wait_received_audio(need, Duration::from_secs(15))
        .unwrap();

    a.hangup().unwrap();
    a.wait_closed().unwrap();
    b.wait_closed().unwrap();
    let rec_a = a.finish().unwrap();
    let rec_b = b.finish().unwrap();

    let heard_by_a = rec_a.last_received().unwrap();
    let heard_by_b = rec_b.last_received().unwrap();
    assert_eq!(heard_by_a.rate, 48000, "Opus decodes at 48 kHz");

    let c = compare(&sentence(b_says, 48000), &heard_by_a, 16000).unwrap();
    eprintln!("alice heard bob: {c}");
    c.assert_match("alice hears bob's sentence");
    let c = compare(&sentence(a_says, 48000), &heard_by_b, 16000).unwrap();
    eprintln!("bob heard alice: {c}");
    c.assert_match("bob hears alice's sentence");

    // Negative controls: nobody hears their own sentence.
    compare(&sentence(a_says, 48000), &heard_by_a, 16000)
        .unwrap()
        .assert_no_match("alice must not hear herself");
    compare(&sentence(b_says, 48000), &heard_by_b, 16000)
        .unwrap()
        .assert_no_match("bob must not hear himself");
}

#[test]
fn sipp_calls_baresip_with_pcma_and_audio_flows_both_ways() {
    let sipp_says = Phrase::EnglishCount;
    let baresip_says = Phrase::GermanGreeting;
    let mut callee = Baresip::spawn(
        &BaresipConfig::new(
            "carol",
            &padded_phrase_wav(baresip_says, 8000, 300, TAIL_MS).unwrap(),
        )
        .codecs(&[Codec::Pcma])
        .auto_answer(),
    )
    .unwrap();
    let listener = RtpListener::bind().unwrap();

    let law = Law::A;
    let sent_sentence = sentence(sipp_says, 8000);
    let call_ms = sent_sentence.duration().as_millis() as u64 + 1500;
    let run = SippRun::new("uac_g711_rtp.xml")
        .var("RTP_LISTEN_PORT", listener.port())
        .var("PT", law.payload_type())
        .var("CODEC", law.encoding_name())
        .var(
            "AUDIO_FILE",
            phrase_g711(sipp_says, law, 300, 300).unwrap().display(),
        )
        .var("CALL_MS", call_ms)
        .remote(format!("127.0.0.1:{}", callee.sip_port()))
        .service("carol")
        .timeout(Duration::from_millis(call_ms) + Duration::from_secs(10));
    let sipp = Sipp::spawn(&run).unwrap();

    callee.wait_established().unwrap();
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    callee.wait_closed().unwrap();
    let rec = callee.finish().unwrap();
    let packets = listener.finish().unwrap();

    // What baresip heard is what SIPp streamed.
    let heard = rec.last_received().unwrap();
    assert_eq!(heard.rate, 8000, "G.711 decodes at 8 kHz");
    let c = compare(&sent_sentence, &heard, 8000).unwrap();
    eprintln!("baresip heard sipp: {c}");
    c.assert_match("baresip hears SIPp's sentence");
    compare(&sentence(baresip_says, 8000), &heard, 8000)
        .unwrap()
        .assert_no_match("baresip must not hear itself");

    // What the harness captured is baresip's sentence, as PCMA.
    assert!(
        packets.iter().all(|p| p.payload_type == law.payload_type()),
        "unexpected payload types"
    );
    let captured = decode_g711(&packets, law);
    let c = compare(&sentence(baresip_says, 8000), &captured, 8000).unwrap();
    eprintln!("harness captured baresip: {c} ({} packets)", packets.len());
    c.assert_match("the RTP listener captured baresip's sentence");
    compare(&sent_sentence, &captured, 8000)
        .unwrap()
        .assert_no_match("the listener must not capture SIPp's own stream");
}

#[test]
fn baresip_registers_at_the_sipp_registrar_with_digest_auth() {
    let registrar = Sipp::spawn(
        &SippRun::new("uas_registrar.xml")
            .var("USER", "dave")
            .var("PASSWORD", "test-only-pw")
            .var("PAUSE_MS", 8000)
            .timeout(Duration::from_secs(15)),
    )
    .unwrap();
    let src = padded_phrase_wav(Phrase::GermanGreeting, 8000, 0, 0).unwrap();
    let ua = Baresip::spawn(
        &BaresipConfig::new("dave", &src)
            .codecs(&[Codec::Pcma])
            .register(integration_tests::baresip::Registration {
                registrar: registrar.addr(),
                password: "test-only-pw".into(),
                interval_s: 60,
            }),
    )
    .unwrap();
    let mut ua = ua;
    ua.wait_registered(Duration::from_secs(10)).unwrap();
    // Quitting unregisters (Expires: 0), which ends the registrar's scenario.
    ua.finish().unwrap();
    let report = registrar.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
}

#[test]
fn sipp_registrar_rejects_a_wrong_password() {
    let registrar = Sipp::spawn(
        &SippRun::new("uas_registrar.xml")
            .var("USER", "erin")
            .var("PASSWORD", "the-right-one")
            .var("PAUSE_MS", 3000)
            .timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let src = padded_phrase_wav(Phrase::GermanGreeting, 8000, 0, 0).unwrap();
    let mut ua = Baresip::spawn(
        &BaresipConfig::new("erin", &src)
            .codecs(&[Codec::Pcma])
            .register(integration_tests::baresip::Registration {
                registrar: registrar.addr(),
                password: "a-wrong-one".into(),
                interval_s: 60,
            }),
    )
    .unwrap();
    assert!(ua.wait_registered(Duration::from_secs(3)).is_err());
    drop(ua);
    let report = registrar.wait().unwrap();
    assert!(!report.all_succeeded(1), "{report}");
    assert!(
        report.failed >= 1 || report.status.code() != Some(0),
        "{report}"
    );
}
