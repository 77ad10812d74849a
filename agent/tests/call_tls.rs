//! SIP over TLS with SRTP mandatory (issue 13): baresip calls `voiceagent run` over TLS
//! (`;transport=tls`, trusting the test's own CA) with `mediaenc=srtp-mand`, and hears the echo
//! agent's greeting and its own sentence played back: signalling and media both encrypted, the
//! whole pipeline intact. `voiceagent check` reports the certificate it presents.

mod common;

use std::time::Duration;

use agent::realtime::server::assets::Prompt;
use common::Voiceagent;
use integration_tests::audio::{compare, Audio};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};
use integration_tests::ports;
use integration_tests::speech::{padded_phrase_wav, Phrase};
use integration_tests::tls::TestCa;

#[test]
fn a_caller_over_tls_with_srtp_hears_the_echo_agent() {
    let ca = TestCa::new("voiceagent-call-ca").unwrap();
    let cert = ca.issue("agent", &["localhost", "127.0.0.1"]).unwrap();
    let tls_port = ports::tcp_port().unwrap();
    let env = [
        ("SIP_TRANSPORT", "udp,tls".to_string()),
        ("SIP_TLS_PORT", tls_port.to_string()),
        ("SIP_TLS_CERT_FILE", cert.cert.display().to_string()),
        ("SIP_TLS_KEY_FILE", cert.key.display().to_string()),
        ("SRTP", "mandatory".to_string()),
    ];
    let mut va = Voiceagent::run(&env);
    va.wait_log("SIP engine started", Duration::from_secs(10));
    let says = Phrase::GermanOrder;
    let mut caller = Baresip::spawn(
        &BaresipConfig::new(
            "tlscaller",
            &padded_phrase_wav(says, 48000, 6000, 20_000).unwrap(),
        )
        .codecs(&[Codec::Opus])
        .tls_srtp(&ca.cert),
    )
    .unwrap();
    caller
        .dial(&format!("sip:agent@127.0.0.1:{tls_port};transport=tls"))
        .unwrap();
    caller.wait_established().unwrap();
    let sentence = Audio::read_wav(&padded_phrase_wav(says, 48000, 300, 300).unwrap()).unwrap();
    let need = Duration::from_millis(6000) + sentence.duration() * 2 + Duration::from_millis(1500);
    if let Err(e) = caller.wait_received_audio(need, Duration::from_secs(40)) {
        panic!("{e}\nvoiceagent's log:\n{}", va.log_text());
    }
    caller.hangup().unwrap();
    caller.wait_closed().unwrap();
    va.wait_log("call finished", Duration::from_secs(10));
    let baresip_log = std::fs::read_to_string(caller.log_path()).unwrap_or_default();
    let heard = caller.finish().unwrap().last_received().unwrap();
    assert!(
        baresip_log.contains("SRTP is Enabled"),
        "baresip must have negotiated SRTP:\n{baresip_log}"
    );

    let greeting = Audio::from_i16(24000, &Prompt::Greeting.samples());
    compare(&greeting, &heard, 16000)
        .unwrap()
        .assert_match("the TLS+SRTP caller hears the echo agent's greeting");
    compare(&sentence, &heard, 16000)
        .unwrap()
        .assert_match("the TLS+SRTP caller hears its own sentence played back");
    drop(va);

    // `check` names the certificate it presents.
    let mut env = env.to_vec();
    env.retain(|(k, _)| *k != "SIP_TLS_PORT");
    env.push(("SIP_TLS_PORT", ports::tcp_port().unwrap().to_string()));
    let mut check = Voiceagent::spawn_with(&["check"], &env);
    check.wait_exit(Duration::from_secs(60));
    let text = check.log_text();
    assert!(
        text.contains("TLS: presenting certificate subject CN=localhost"),
        "{text}"
    );
}
