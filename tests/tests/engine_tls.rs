//! SIP over TLS and SRTP against real peers (issue 13): registration over TLS verifies the
//! registrar's certificate (chain and name) and fails clearly when either is wrong; with SRTP
//! mandatory, the audio on the wire is not the plaintext G.711 of what was sent.
//!
//! SIPp 3.6 in Debian has no TLS, so the registrar is SIPp over TCP behind `socat`, which
//! terminates TLS with a certificate from the test's own CA.

use std::time::{Duration, Instant};

use integration_tests::engine::{config, lock};
use integration_tests::g711::Law;
use integration_tests::ports;
use integration_tests::process::ChildGuard;
use integration_tests::rtp::RtpListener;
use integration_tests::sipp::{Sipp, SippRun};
use integration_tests::speech::tone;
use integration_tests::tls::{ServerCert, TestCa};
use pjsip_safe::media::SAMPLE_RATE;
use pjsip_safe::{
    AccountConfig, CallState, Engine, EngineConfig, Event, EventReceiver, Registration, Secret,
    SrtpMode, TlsConfig, Transport,
};

fn next_registration(events: &EventReceiver, timeout: Duration) -> Registration {
    let deadline = Instant::now() + timeout;
    while let Ok(event) = events.recv_deadline(deadline) {
        if let Event::Registration(r) = event {
            return r;
        }
    }
    panic!("no registration event within {timeout:?}");
}

/// SIPp's TCP registrar behind a TLS terminator presenting `cert`; returns both and the TLS
/// port.
fn tls_registrar(cert: &ServerCert) -> (Sipp, ChildGuard, u16) {
    let mut run = SippRun::new("uas_registrar.xml")
        .var("USER", "agent")
        .var("PASSWORD", "s3cret")
        .var("EXPIRES", 3600)
        .var("PAUSE_MS", 15_000)
        .timeout(Duration::from_secs(30));
    run.extra_args = vec!["-t".into(), "t1".into()];
    let sipp = Sipp::spawn(&run).unwrap();
    let tls_port = ports::tcp_port().unwrap();
    let socat = std::process::Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            cert.cert.display(),
            cert.key.display()
        ))
        .arg(format!("TCP:{}", sipp.addr()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (apt-get install socat)");
    let socat = ChildGuard::new("socat tls", socat);
    // Until socat listens.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (sipp, socat, tls_port)
}

fn tls_engine(server: String, ca: &TestCa) -> (Engine, EventReceiver) {
    Engine::start(EngineConfig {
        transports: vec![Transport::Tls],
        tls: TlsConfig {
            ca_file: Some(ca.cert.clone()),
            ..TlsConfig::default()
        },
        account: Some(AccountConfig {
            server,
            username: "agent".into(),
            password: Secret::new("s3cret"),
            domain: Some("localhost".into()),
            proxy: None,
            reg_interval: Duration::from_secs(300),
            retry_interval: Duration::from_secs(60),
        }),
        ..config()
    })
    .unwrap()
}

#[test]
fn tls_registration_verifies_the_registrar_certificate() {
    let _guard = lock();
    let ca = TestCa::new("voiceagent-test-ca").unwrap();
    let cert = ca.issue("registrar", &["localhost"]).unwrap();

    // The right CA and name: registered over TLS.
    let (registrar, _socat, tls_port) = tls_registrar(&cert);
    let (engine, events) = tls_engine(format!("localhost:{tls_port}"), &ca);
    let reg = next_registration(&events, Duration::from_secs(10));
    assert!(
        matches!(reg, Registration::Registered { .. }),
        "registration over TLS: {reg:?}"
    );
    engine.shutdown().unwrap();
    drop(registrar);

    // A CA that did not issue the registrar's certificate.
    let other_ca = TestCa::new("some-other-ca").unwrap();
    let (_registrar, _socat, tls_port) = tls_registrar(&cert);
    let (engine, events) = tls_engine(format!("localhost:{tls_port}"), &other_ca);
    let reg = next_registration(&events, Duration::from_secs(10));
    eprintln!("wrong CA: {reg:?}");
    match reg {
        Registration::Failed { reason, .. } => assert!(
            reason.to_lowercase().contains("certificate")
                || reason.to_lowercase().contains("ssl")
                || reason.to_lowercase().contains("tls"),
            "the error must say it is the certificate: {reason}"
        ),
        other => panic!("a registrar with an untrusted certificate was accepted: {other:?}"),
    }
    engine.shutdown().unwrap();

    // The right CA, but the certificate names localhost and we connect to 127.0.0.1.
    let (_registrar, _socat, tls_port) = tls_registrar(&cert);
    let (engine, events) = tls_engine(format!("127.0.0.1:{tls_port}"), &ca);
    let reg = next_registration(&events, Duration::from_secs(10));
    eprintln!("wrong name: {reg:?}");
    assert!(
        matches!(reg, Registration::Failed { .. }),
        "a certificate for another name was accepted: {reg:?}"
    );
    engine.shutdown().unwrap();
}

/// The plaintext of a 1 kHz tone in G.711 at 8 kHz repeats every 8 samples; ciphertext does not.
fn periodicity(payload: &[u8]) -> f64 {
    let pcm: Vec<f64> = Law::A
        .decode_all(payload)
        .iter()
        .map(|&s| f64::from(s))
        .collect();
    let (mut num, mut den) = (0.0, 0.0);
    for i in 8..pcm.len() {
        num += pcm[i] * pcm[i - 8];
        den += pcm[i] * pcm[i];
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

#[test]
fn srtp_mandatory_encrypts_the_audio_on_the_wire() {
    let _guard = lock();
    let (engine, events) = Engine::start(EngineConfig {
        srtp: SrtpMode::Mandatory,
        codecs: vec!["PCMA/8000".into()],
        ..config()
    })
    .unwrap();
    let peer = RtpListener::bind().unwrap();
    let uas = Sipp::spawn(
        &SippRun::new("uas_answer_srtp.xml")
            .var("RTP_LISTEN_PORT", peer.port())
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let handle = engine.handle();
    let call = handle
        .make_call(format!("sip:desk@{}", uas.addr()))
        .wait()
        .unwrap();
    let mut media = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(event) = events.recv_deadline(deadline) {
        match event {
            Event::MediaActive { media: Some(m), .. } => {
                media = Some(m);
                break;
            }
            Event::CallState {
                state: CallState::Disconnected,
                code,
                reason,
                ..
            } => panic!("the SRTP call failed: {code} {reason}"),
            _ => {}
        }
    }
    let mut media = media.expect("no media");
    let second = tone(1000.0, SAMPLE_RATE, 1000, 0.3).to_i16();
    media.downlink.push(1, &second).unwrap();
    peer.wait_for_packets(45, Duration::from_secs(5)).unwrap();
    handle.hangup(call, 0).wait().unwrap();
    let report = uas.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    engine.shutdown().unwrap();

    let packets = peer.finish().unwrap();
    // Keep-alive packets (empty payload plus the tag) aside.
    let audio: Vec<_> = packets
        .iter()
        .filter(|p| p.payload_type == 8 && p.payload.len() > 10)
        .collect();
    assert!(audio.len() >= 30, "only {} packets", audio.len());
    // SRTP keeps the RTP header and appends an 80-bit authentication tag to the payload.
    assert!(
        audio.iter().all(|p| p.payload.len() == 160 + 10),
        "payload sizes: {:?}",
        audio.iter().map(|p| p.payload.len()).collect::<Vec<_>>()
    );
    let periodic = audio
        .iter()
        .filter(|p| periodicity(&p.payload[..160]) > 0.5)
        .count();
    assert_eq!(
        periodic, 0,
        "{periodic} packets carry the tone's plaintext G.711 on the wire"
    );
    // The check itself can fail: the plaintext of the same tone is periodic.
    let plain: Vec<u8> = Law::A.encode_all(&tone(1000.0, 8000, 20, 0.3).to_i16());
    assert!(periodicity(&plain) > 0.9);
}
