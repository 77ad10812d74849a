//! The engine's SIP features against real peers over loopback: digest registration with refresh
//! and unregistration, RFC 4733 DTMF, blind transfer, the call cap, the source allowlist,
//! barge-in flush timing, BYE on shutdown, start-up errors, malformed input and the ring delay.
//!
//! Every verdict comes from the peer (SIPp's success counters, RTP captured by the harness) or
//! from an engine event that only a working feature produces. pjsua is one per process, so the
//! tests in this binary take turns (`engine::lock`).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use integration_tests::engine::{
    a_normal_call_completes, account, config, lock, registrar, start, uac, wait_ended, wait_event,
    wait_media, wait_registration,
};
use integration_tests::g711::Law;
use integration_tests::ports;
use integration_tests::rtp::{decode_g711, DtmfDigit, RtpListener};
use integration_tests::sipp::{Sipp, SippRun};
use integration_tests::speech::tone;
use pjsip_safe::media::SAMPLE_RATE;
use pjsip_safe::{
    AnswerMode, CallId, CallState, Engine, EngineConfig, Error, Event, InviteRate, Registration,
    RejectReason, Secret,
};

#[test]
fn registers_with_digest_auth_refreshes_and_unregisters_on_shutdown() {
    let _guard = lock();
    let registrar = registrar("s3cret", 6);
    let (engine, events, _) = start(EngineConfig {
        account: Some(account(registrar.addr(), "s3cret")),
        ..config()
    });
    assert!(engine.info().trunk_mode);
    let first = wait_registration(&events, Duration::from_secs(10));
    let registered_at = Instant::now();
    // We asked for 60 s; the registrar granted 6 and PJSIP must follow the registrar.
    assert_eq!(first, Registration::Registered { expires: 6 });
    // PJSIP refreshes at max(6 - 5, 5) s (its minimum delay before refresh is 5 s).
    let second = wait_registration(&events, Duration::from_secs(10));
    let refresh = registered_at.elapsed();
    assert_eq!(second, Registration::Registered { expires: 6 });
    eprintln!("re-registration after {refresh:?}");
    assert!(
        refresh >= Duration::from_secs(4) && refresh < Duration::from_secs(7),
        "refresh after {refresh:?}, expected about 5 s"
    );
    engine.shutdown().unwrap();
    // Events sent during shutdown stay readable after it.
    let last = wait_registration(&events, Duration::from_secs(1));
    assert_eq!(last, Registration::Unregistered);
    let report = registrar.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
}

#[test]
fn wrong_password_fails_registration() {
    let _guard = lock();
    let registrar = registrar("right", 3600);
    let (engine, events, _) = start(EngineConfig {
        account: Some(account(registrar.addr(), "wrong")),
        ..config()
    });
    match wait_registration(&events, Duration::from_secs(10)) {
        Registration::Failed { code, reason } => {
            eprintln!("registration failed: {code} {reason}");
            assert!(code == 401 || code == 403, "code {code}");
        }
        other => panic!("registered with a wrong password: {other:?}"),
    }
    let report = registrar.wait().unwrap();
    assert_eq!(report.failed, 1, "{report}");
    engine.shutdown().unwrap();
}

#[test]
fn rfc4733_dtmf_digits_arrive_in_order() {
    let _guard = lock();
    let (engine, events, port) = start(config());
    let peer = RtpListener::bind().unwrap();
    let scratch = integration_tests::process::scratch_dir("dtmf").unwrap();
    let port_file = scratch.path().join("engine-rtp-port");
    let sipp = Sipp::spawn(
        &uac("uac_g711_dtmf.xml", port, &peer)
            .var("PT", 8)
            .var("CODEC", "PCMA")
            .var("PORT_FILE", port_file.display())
            .var("CALL_MS", 4000)
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let (call, _media) = wait_media(&events);
    let engine_rtp =
        integration_tests::sipp::wait_port_file(&port_file, Duration::from_secs(10)).unwrap();
    let audio = Law::A.encode_all(&tone(440.0, 8000, 3000, 0.1).to_i16());
    let digits = [('1', 400), ('5', 1000), ('#', 1600)]
        .map(|(digit, at)| DtmfDigit {
            digit,
            at: Duration::from_millis(at),
            length: Duration::from_millis(200),
            event_pt: 101,
        })
        .to_vec();
    let sender = peer
        .stream_g711_with_dtmf(
            SocketAddr::from(([127, 0, 0, 1], engine_rtp)),
            audio,
            8,
            digits,
        )
        .unwrap();
    let mut got = String::new();
    while got.len() < 3 {
        got.push(wait_event(
            &events,
            "Dtmf",
            Duration::from_secs(5),
            |e| match e {
                Event::Dtmf { call: c, digit } if c == call => Some(digit),
                _ => None,
            },
        ));
    }
    sender.join().unwrap();
    assert_eq!(got, "15#");
    // No digit is reported twice (each end packet is sent three times).
    let mut extra = String::new();
    wait_event(&events, "CallEnded", Duration::from_secs(10), |e| match e {
        Event::Dtmf { digit, .. } => {
            extra.push(digit);
            None
        }
        Event::CallEnded { call: c, .. } if c == call => Some(()),
        _ => None,
    });
    assert_eq!(extra, "", "digits reported twice");
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    engine.shutdown().unwrap();
}

#[test]
fn blind_transfer_sends_refer_and_reports_the_notify() {
    let _guard = lock();
    let (engine, events, _) = start(config());
    let peer = RtpListener::bind().unwrap();
    let desk_port = ports::sip_port().unwrap();
    let target = format!("sip:desk@127.0.0.1:{desk_port}");
    let uas = Sipp::spawn(
        &SippRun::new("uas_refer.xml")
            .var("RTP_LISTEN_PORT", peer.port())
            .var("REFER_TO", format!("sip:desk@127\\.0\\.0\\.1:{desk_port}"))
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let handle = engine.handle();
    let call = handle
        .make_call(format!("sip:frontdesk@{}", uas.addr()))
        .wait()
        .unwrap();
    wait_event(&events, "Confirmed", Duration::from_secs(10), |e| match e {
        Event::CallState {
            call: c,
            state: CallState::Confirmed,
            ..
        } if c == call => Some(()),
        _ => None,
    });
    handle.transfer(call, &target).wait().unwrap();
    let mut progress = Vec::new();
    let (code, last) = wait_event(
        &events,
        "final TransferStatus",
        Duration::from_secs(10),
        |e| match e {
            Event::TransferStatus {
                call: c,
                code,
                last,
                reason,
            } if c == call => {
                progress.push(format!("{code} {reason} last={last}"));
                last.then_some((code, last))
            }
            _ => None,
        },
    );
    eprintln!("transfer progress: {progress:?}");
    assert_eq!((code, last), (200, true));
    handle.hangup(call, 0).wait().unwrap();
    wait_ended(&events, call);
    let report = uas.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    engine.shutdown().unwrap();
}

/// Behind 1:1 NAT the engine must advertise the public address, not the one it binds: in the
/// Contact of its answer (so the peer's ACK and BYE reach it) and in the SDP `c=` line (so RTP
/// does). 127.0.0.99 stands in for the public address: it is loopback, so the peer's requests
/// to it still arrive (the engine listens on all addresses here).
#[test]
fn a_configured_public_address_is_advertised_in_contact_and_sdp() {
    let _guard = lock();
    let public = "127.0.0.99";
    let (engine, events, port) = start(EngineConfig {
        bind: "0.0.0.0".parse().unwrap(),
        public_address: Some(public.into()),
        ..config()
    });
    let rtp = RtpListener::bind().unwrap();
    let scratch = integration_tests::process::scratch_dir("nat").unwrap();
    let addr_file = scratch.path().join("advertised");
    let sipp = Sipp::spawn(
        &uac("uac_nat.xml", port, &rtp)
            .var("ADDR_FILE", addr_file.display())
            .var("CALL_MS", 1000)
            .timeout(Duration::from_secs(15)),
    )
    .unwrap();
    let (call, _media) = wait_media(&events);
    let report = sipp.wait().unwrap();
    assert!(
        report.all_succeeded(1),
        "ACK and BYE sent to the advertised Contact must reach the engine: {report}"
    );
    assert_eq!(wait_ended(&events, call), 200);
    let text = std::fs::read_to_string(&addr_file).unwrap();
    let advertised: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        advertised,
        [public, public],
        "SDP c= address and Contact host of the 200 OK"
    );
    engine.shutdown().unwrap();
}

#[test]
fn calls_beyond_max_calls_get_486_busy() {
    let _guard = lock();
    let (engine, events, port) = start(EngineConfig {
        max_calls: 1,
        ..config()
    });
    let rtp = RtpListener::bind().unwrap();
    let first = Sipp::spawn(&uac("uac_wait_bye.xml", port, &rtp).var("WAIT_MS", 15_000)).unwrap();
    let (call, _media) = wait_media(&events);
    let second = Sipp::spawn(&uac("uac_expect_reject.xml", port, &rtp).var("CODE", 486)).unwrap();
    let (reason, code) =
        wait_event(
            &events,
            "IncomingRejected",
            Duration::from_secs(10),
            |e| match e {
                Event::IncomingRejected { reason, code, .. } => Some((reason, code)),
                _ => None,
            },
        );
    assert_eq!((reason, code), (RejectReason::Busy, 486));
    let report = second.wait().unwrap();
    assert!(
        report.all_succeeded(1),
        "the second caller must see 486: {report}"
    );
    engine.handle().hangup(call, 0).wait().unwrap();
    wait_ended(&events, call);
    let report = first.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    engine.shutdown().unwrap();
}

#[test]
fn allowed_sources_refuse_others_with_403_and_admit_members() {
    let _guard = lock();
    let rtp = RtpListener::bind().unwrap();
    let (engine, events, port) = start(EngineConfig {
        allowed_sources: vec!["10.0.0.0/8".parse().unwrap()],
        ..config()
    });
    let sipp = Sipp::spawn(&uac("uac_expect_reject.xml", port, &rtp).var("CODE", 403)).unwrap();
    let (reason, code, source) = wait_event(
        &events,
        "IncomingRejected",
        Duration::from_secs(10),
        |e| match e {
            Event::IncomingRejected {
                reason,
                code,
                source,
                ..
            } => Some((reason, code, source)),
            _ => None,
        },
    );
    assert_eq!((reason, code), (RejectReason::NotAllowed, 403));
    assert_eq!(source.map(|s| s.ip()), Some("127.0.0.1".parse().unwrap()));
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "the caller must see 403: {report}");
    engine.shutdown().unwrap();

    let (engine, events, port) = start(EngineConfig {
        allowed_sources: vec!["127.0.0.0/8".parse().unwrap()],
        ..config()
    });
    a_normal_call_completes(&events, port, &rtp);
    engine.shutdown().unwrap();
}

/// Energy of a decoded 20 ms packet: the tone is loud, silence (and resampler ringing) is not.
fn is_tone(payload: &[u8]) -> bool {
    let pcm = Law::A.decode_all(payload);
    let energy: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (energy / pcm.len().max(1) as f64).sqrt() > 1000.0
}

#[test]
fn flush_stops_the_audio_within_a_frame_and_played_samples_is_exact() {
    let _guard = lock();
    let (engine, events, port) = start(config());
    let peer = RtpListener::bind().unwrap();
    let scratch = integration_tests::process::scratch_dir("flush").unwrap();
    let sipp = Sipp::spawn(
        &uac("uac_g711_symmetric.xml", port, &peer)
            .var("PT", 8)
            .var("CODEC", "PCMA")
            .var("PORT_FILE", scratch.path().join("port").display())
            .var("CALL_MS", 4000)
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let (call, mut media) = wait_media(&events);
    const KEY: u64 = 3;
    let ten_seconds = tone(1000.0, SAMPLE_RATE, 10_000, 0.3).to_i16();
    media.downlink.push(KEY, &ten_seconds).unwrap();
    let two_seconds = u64::from(SAMPLE_RATE) * 2;
    let deadline = Instant::now() + Duration::from_secs(10);
    while media.downlink.played_samples(KEY) < two_seconds {
        assert!(Instant::now() < deadline, "playback did not progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    let flushed_at = Instant::now();
    let unplayed = media.downlink.flush();
    let played = media.downlink.played_samples(KEY);
    assert_eq!(played + unplayed, ten_seconds.len() as u64);

    wait_ended(&events, call);
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    let packets = peer.finish().unwrap();
    let tone_packets: Vec<_> = packets
        .iter()
        .filter(|p| p.payload_type == 8 && is_tone(&p.payload))
        .collect();
    let last = tone_packets.last().expect("the peer received no tone");
    let stop = last.at.saturating_duration_since(flushed_at);
    // The tone's extent in the decoded stream, to the sample: packet counts would be off by
    // one at each end because the bridge's resampler smears a frame over two packets.
    let decoded = decode_g711(&packets, Law::A);
    let loud: Vec<usize> = decoded
        .samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.abs() > 0.1)
        .map(|(i, _)| i)
        .collect();
    let (first, last_loud) = (loud[0], loud[loud.len() - 1]);
    let received_ms = (last_loud - first + 1) as f64 * 1000.0 / f64::from(decoded.rate);
    let played_ms = played as f64 * 1000.0 / f64::from(SAMPLE_RATE);
    eprintln!(
        "flush: last tone packet {stop:?} after flush(); peer got {received_ms:.1} ms of tone \
         ({} loud packets), played_samples says {played_ms} ms",
        tone_packets.len()
    );
    assert!(
        stop <= Duration::from_millis(60),
        "tone kept arriving {stop:?} after the flush"
    );
    assert!(
        (received_ms - played_ms).abs() <= 20.0,
        "peer heard {received_ms} ms, played_samples reports {played_ms} ms"
    );
    // Nothing loud arrives after the last tone packet (the flush did not just pause it).
    let after: usize = packets
        .iter()
        .filter(|p| p.at > last.at && is_tone(&p.payload))
        .count();
    assert_eq!(after, 0);
    engine.shutdown().unwrap();
}

#[test]
fn shutdown_sends_bye_to_every_active_call() {
    let _guard = lock();
    let (engine, events, port) = start(config());
    let rtp = RtpListener::bind().unwrap();
    let peers: Vec<Sipp> = (0..2)
        .map(|_| Sipp::spawn(&uac("uac_wait_bye.xml", port, &rtp).var("WAIT_MS", 15_000)).unwrap())
        .collect();
    let (a, _ma) = wait_media(&events);
    let (b, _mb) = wait_media(&events);
    assert_ne!(a, b);
    let started = Instant::now();
    engine.shutdown().unwrap();
    eprintln!("shutdown with two calls took {:?}", started.elapsed());
    let ended: Vec<CallId> = events
        .drain()
        .filter_map(|e| match e {
            Event::CallEnded { call, .. } => Some(call),
            _ => None,
        })
        .collect();
    assert!(ended.contains(&a) && ended.contains(&b), "{ended:?}");
    for peer in peers {
        let report = peer.wait().unwrap();
        assert!(report.all_succeeded(1), "a peer got no BYE: {report}");
    }
}

#[test]
fn start_errors_are_clear_and_the_engine_restarts() {
    let _guard = lock();
    let (engine, _events, _) = start(config());
    match Engine::start(config()) {
        Err(Error::AlreadyRunning) => {}
        other => panic!("second engine: {:?}", other.map(|_| ())),
    }
    // Outbound calls to something that is no SIP URI fail before PJSIP sees them.
    match engine.handle().make_call("not a uri").wait() {
        Err(e @ Error::Config { key: "uri", .. }) => {
            assert!(e.to_string().contains("not a uri"), "{e}");
        }
        other => panic!("invalid URI: {other:?}"),
    }
    engine.shutdown().unwrap();

    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    match Engine::start(EngineConfig {
        sip_port: port,
        ..config()
    }) {
        Err(e @ Error::AddressInUse { port: p, .. }) => {
            assert_eq!(p, port);
            eprintln!("busy port: {e}");
            assert!(e.to_string().contains(&port.to_string()), "{e}");
        }
        other => panic!("busy port: {:?}", other.map(|_| ())),
    }
    drop(busy);
    let (engine, _events, _) = start(config());
    engine.shutdown().unwrap();
}

#[test]
fn malformed_sip_does_not_crash_and_calls_work_afterwards() {
    let _guard = lock();
    let (engine, events, port) = start(config());
    let garbage = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ("127.0.0.1", port);
    let big = vec![b'A'; 60_000];
    let inputs: [&[u8]; 7] = [
        b"\x00\xff\xfe garbage",
        b"INVITE\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\nContent-Length: -5\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCSeq: 1 BYE\r\n\r\n",
        b"\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n",
        &big,
    ];
    for input in inputs {
        garbage.send_to(input, to).unwrap();
    }
    let rtp = RtpListener::bind().unwrap();
    let sipp = Sipp::spawn(&uac("uac_malformed.xml", port, &rtp)).unwrap();
    let report = sipp.wait().unwrap();
    assert!(
        report.all_succeeded(1),
        "the final OPTIONS got no 200: {report}"
    );

    a_normal_call_completes(&events, port, &rtp);
    engine.shutdown().unwrap();
}

#[test]
fn after_ring_answers_with_200_no_earlier_than_the_delay() {
    let _guard = lock();
    let (engine, events, port) = start(EngineConfig {
        answer: AnswerMode::AfterRing(Duration::from_millis(300)),
        ..config()
    });
    let rtp = RtpListener::bind().unwrap();
    let scratch = integration_tests::process::scratch_dir("ring").unwrap();
    let log = scratch.path().join("events");
    let sipp = Sipp::spawn(
        &uac("uac_call.xml", port, &rtp)
            .var("CALL_MS", 300)
            .var("EVENTS_FILE", log.display()),
    )
    .unwrap();
    let call = wait_event(
        &events,
        "IncomingCall",
        Duration::from_secs(10),
        |e| match e {
            Event::IncomingCall { call, .. } => Some(call),
            _ => None,
        },
    );
    wait_ended(&events, call);
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    let text = std::fs::read_to_string(&log).unwrap();
    let at = |code: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(code)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {code} in {text:?}"))
    };
    let (ringing, ok) = (at("180 "), at("200 "));
    eprintln!("180 → 200 at the peer: {} ms", ok - ringing);
    // The peer timestamps both with `date` from a shell, which costs a few ms each.
    assert!(
        ok >= ringing + 290,
        "200 came {} ms after 180",
        ok.saturating_sub(ringing)
    );
    engine.shutdown().unwrap();
}

#[test]
fn hold_and_unhold_keep_the_audio_flowing() {
    let _guard = lock();
    let (engine, events, port) = start(config());
    let peer = RtpListener::bind().unwrap();
    let sipp = Sipp::spawn(
        &uac("uac_hold.xml", port, &peer)
            .var("PHASE_MS", 1500)
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let (call, mut media) = wait_media(&events);
    let tone_pcm = tone(1000.0, SAMPLE_RATE, 8000, 0.3).to_i16();
    media.downlink.push(1, &tone_pcm).unwrap();
    let held_at = wait_event(&events, "RemoteHold", Duration::from_secs(5), |e| match e {
        Event::MediaChanged { call: c, status } if c == call => {
            assert_eq!(status, pjsip_safe::MediaStatus::RemoteHold);
            Some(Instant::now())
        }
        _ => None,
    });
    let resumed_at = wait_event(
        &events,
        "MediaActive again",
        Duration::from_secs(5),
        |e| match e {
            Event::MediaActive { call: c, media, .. } if c == call => {
                assert!(media.is_none(), "the call's media is handed over only once");
                Some(Instant::now())
            }
            _ => None,
        },
    );
    wait_ended(&events, call);
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    let packets = peer.finish().unwrap();
    let tone_between = |from: Instant, to: Instant| {
        packets
            .iter()
            .filter(|p| p.at > from && p.at < to && is_tone(&p.payload))
            .count()
    };
    let far_future = Instant::now() + Duration::from_secs(60);
    let before = packets
        .iter()
        .filter(|p| p.at < held_at && is_tone(&p.payload))
        .count();
    let during = tone_between(held_at + Duration::from_millis(100), resumed_at);
    let after = tone_between(resumed_at, far_future);
    eprintln!("tone packets: {before} before hold, {during} on hold, {after} after unhold");
    assert!(before >= 50, "only {before} tone packets before the hold");
    // 1.5 s after the unhold = 75 packets; allow for set-up of the new stream.
    assert!(after >= 60, "only {after} tone packets after the unhold");
    engine.shutdown().unwrap();
}

/// Toll fraud and call hijacking (issue 13): an answered caller sends REFER (to a would-be
/// target the test listens on), SUBSCRIBE and MESSAGE in the dialog, PUBLISH and an INVITE with
/// Replaces outside it. Each is refused with the code SIPp expects, the target receives not a
/// single packet, the call is never replaced (one IncomingCall, ended by the caller's BYE), and
/// the refusals are counted. Run in IP mode and in trunk mode (registered to a SIPp registrar),
/// where a followed REFER would use the trunk's credentials.
fn hostile_requests_are_refused(trunk: bool) {
    let _guard = lock();
    let registrar = trunk.then(|| registrar("s3cret", 3600));
    let (engine, events, port) = start(EngineConfig {
        account: registrar.as_ref().map(|r| account(r.addr(), "s3cret")),
        ..config()
    });
    if trunk {
        assert!(matches!(
            wait_registration(&events, Duration::from_secs(10)),
            Registration::Registered { .. }
        ));
    }
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    let before = pjsip_safe::edge::refused_counts();
    let rtp = RtpListener::bind().unwrap();
    let sipp = Sipp::spawn(
        &uac("uac_hostile_requests.xml", port, &rtp)
            .var("TARGET", format!("premium@{target_addr}"))
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let call = wait_event(
        &events,
        "IncomingCall",
        Duration::from_secs(10),
        |e| match e {
            Event::IncomingCall { call, .. } => Some(call),
            _ => None,
        },
    );
    let report = sipp.wait().unwrap();
    assert!(
        report.all_succeeded(1),
        "every hostile request must get its refusal: {report}"
    );
    assert_eq!(
        wait_ended(&events, call),
        200,
        "the caller's BYE ends the call"
    );
    // Nothing else happened: no second call, no transfer.
    while let Ok(event) = events.recv_timeout(Duration::from_millis(300)) {
        assert!(
            !matches!(
                event,
                Event::IncomingCall { .. } | Event::TransferStatus { .. }
            ),
            "unexpected {event:?}"
        );
    }
    target
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    if let Ok((n, from)) = target.recv_from(&mut buf) {
        panic!(
            "the REFER target received {n} bytes from {from}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let after = pjsip_safe::edge::refused_counts();
    let grew: Vec<_> = before
        .iter()
        .zip(&after)
        .map(|((kind, b), (_, a))| (kind.as_str(), a - b))
        .collect();
    for (kind, n) in &grew {
        assert!(*n >= 1, "{kind} refusals were not counted: {grew:?}");
    }
    engine.shutdown().unwrap();
    drop(registrar);
}

#[test]
fn hostile_requests_are_refused_in_ip_mode() {
    hostile_requests_are_refused(false);
}

#[test]
fn hostile_requests_are_refused_in_trunk_mode() {
    hostile_requests_are_refused(true);
}

/// An INVITE flood from one source that never ACKs (issue 13): the source's INVITE rate is
/// limited (503), the few admitted calls are let go once `confirm_timeout` passes without an
/// ACK, and a real call from another source still gets through meanwhile.
#[test]
fn an_invite_flood_is_rate_limited_and_unconfirmed_calls_are_let_go() {
    let _guard = lock();
    let confirm_timeout = Duration::from_secs(2);
    let (engine, events, port) = start(EngineConfig {
        invite_rate: Some(InviteRate {
            per_second: 2.0,
            burst: 5,
        }),
        confirm_timeout,
        ..config()
    });
    let rtp = RtpListener::bind().unwrap();
    let flood_calls = 300;
    let mut flood = uac("uac_flood_no_ack.xml", port, &rtp)
        .var("WAIT_MS", 15_000)
        .timeout(Duration::from_secs(40));
    flood.calls = flood_calls;
    flood.rate = Some(100);
    flood.concurrent = Some(flood_calls);
    let flood = Sipp::spawn(&flood).unwrap();
    // The real caller, from another address, in the middle of the flood.
    std::thread::sleep(Duration::from_millis(500));
    let scratch = integration_tests::process::scratch_dir("flood").unwrap();
    let mut real = uac("uac_call.xml", port, &rtp)
        .var("CALL_MS", 500)
        .var("EVENTS_FILE", scratch.path().join("events").display());
    real.extra_args = vec!["-i".into(), "127.0.0.2".into()];
    let real = Sipp::spawn(&real).unwrap();

    let started = Instant::now();
    let mut admitted: std::collections::HashMap<CallId, (String, Instant)> = Default::default();
    let mut ended = Vec::new();
    let mut rate_limited = 0;
    let deadline = started + Duration::from_secs(25);
    while Instant::now() < deadline {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else {
            if !admitted.is_empty() && admitted.len() == ended.len() && rate_limited > 0 {
                break;
            }
            continue;
        };
        match event {
            Event::IncomingCall { call, from, .. } => {
                admitted.insert(call, (from, Instant::now()));
            }
            Event::IncomingRejected {
                reason: RejectReason::RateLimited,
                code,
                ..
            } => {
                assert_eq!(code, 503);
                rate_limited += 1;
            }
            Event::CallEnded { call, code, .. } => {
                let (from, at) = admitted
                    .get(&call)
                    .cloned()
                    .expect("ended a call it admitted");
                ended.push((call, from, at.elapsed(), code));
            }
            _ => {}
        }
    }
    let flood_report = flood.wait().unwrap();
    let real_report = real.wait().unwrap();
    eprintln!(
        "admitted {} calls, rate-limited {rate_limited}; ended: {ended:?}",
        admitted.len()
    );
    assert!(
        real_report.all_succeeded(1),
        "the real caller: {real_report}"
    );
    assert!(
        ended
            .iter()
            .any(|(_, from, _, code)| from.contains("sipp@127.0.0.2") && *code == 200),
        "the real call from 127.0.0.2 was answered and ended by its BYE: {ended:?}"
    );
    let flood_admitted = admitted
        .values()
        .filter(|(from, _)| from.contains("flood@"))
        .count();
    assert!(
        (5..=25).contains(&flood_admitted),
        "a burst of 5 plus 2/s over the flood's few seconds, got {flood_admitted}"
    );
    assert!(
        rate_limited >= flood_calls as usize - 25,
        "the rest of the flood is refused with 503: {rate_limited}"
    );
    assert_eq!(admitted.len(), ended.len(), "every admitted call ended");
    for (call, from, held, _) in &ended {
        if from.contains("flood@") {
            assert!(
                *held < confirm_timeout + Duration::from_millis(1500),
                "{call} (never ACKed) held its slot for {held:?}"
            );
        }
    }
    assert!(
        flood_report.all_succeeded(flood_calls.into()),
        "{flood_report}"
    );
    engine.shutdown().unwrap();
}

/// A peer that vanishes without a BYE (issue 13): a call whose RTP stops is hung up after
/// `rtp_timeout`. The peer here never sends RTP at all; it receives the BYE.
#[test]
fn a_call_without_rtp_is_hung_up_after_the_rtp_timeout() {
    let _guard = lock();
    let rtp_timeout = Duration::from_secs(2);
    let (engine, events, port) = start(EngineConfig {
        rtp_timeout,
        ..config()
    });
    let rtp = RtpListener::bind().unwrap();
    let sipp = Sipp::spawn(&uac("uac_wait_bye.xml", port, &rtp).var("WAIT_MS", 15_000)).unwrap();
    let call = wait_event(&events, "Confirmed", Duration::from_secs(10), |e| match e {
        Event::CallState {
            call,
            state: CallState::Confirmed,
            ..
        } => Some(call),
        _ => None,
    });
    let confirmed = Instant::now();
    wait_ended(&events, call);
    let held = confirmed.elapsed();
    assert!(
        held >= rtp_timeout && held < rtp_timeout + Duration::from_millis(1500),
        "hung up after {held:?}, expected about {rtp_timeout:?}"
    );
    let report = sipp.wait().unwrap();
    assert!(
        report.all_succeeded(1),
        "the peer must get the BYE: {report}"
    );
    engine.shutdown().unwrap();
}

/// Trunk mode admits INVITEs from the trunk only (issue 13): the registrar runs on 127.0.0.1,
/// so an INVITE from 127.0.0.2 is refused with 403 before the application hears of it, and one
/// from 127.0.0.1 is answered.
#[test]
fn trunk_mode_admits_invites_only_from_the_trunk() {
    let _guard = lock();
    let registrar = registrar("s3cret", 3600);
    let (engine, events, port) = start(EngineConfig {
        account: Some(account(registrar.addr(), "s3cret")),
        ..config()
    });
    assert!(matches!(
        wait_registration(&events, Duration::from_secs(10)),
        Registration::Registered { .. }
    ));
    let rtp = RtpListener::bind().unwrap();
    let mut stranger = uac("uac_expect_reject.xml", port, &rtp).var("CODE", 403);
    stranger.extra_args = vec!["-i".into(), "127.0.0.2".into()];
    let stranger = Sipp::spawn(&stranger).unwrap();
    let (reason, source) =
        wait_event(
            &events,
            "IncomingRejected",
            Duration::from_secs(10),
            |e| match e {
                Event::IncomingRejected { reason, source, .. } => Some((reason, source)),
                Event::IncomingCall { from, .. } => {
                    panic!("a stranger's INVITE reached the application: {from}")
                }
                _ => None,
            },
        );
    assert_eq!(reason, RejectReason::NotAllowed);
    assert_eq!(source.map(|s| s.ip()), Some("127.0.0.2".parse().unwrap()));
    let report = stranger.wait().unwrap();
    assert!(
        report.all_succeeded(1),
        "the stranger must see 403: {report}"
    );

    // From the trunk's address (SIPp on 127.0.0.1): answered.
    a_normal_call_completes(&events, port, &rtp);
    engine.shutdown().unwrap();
    drop(registrar);
}

/// The caller's number comes from the parsed URI, never from the display name (issue 13), and
/// from P-Asserted-Identity only when the trunk sent the INVITE.
#[test]
fn the_caller_number_comes_from_the_parsed_uri_and_pai_only_from_the_trunk() {
    let _guard = lock();
    for trunk in [false, true] {
        let registrar = trunk.then(|| registrar("s3cret", 3600));
        let (engine, events, port) = start(EngineConfig {
            account: registrar.as_ref().map(|r| account(r.addr(), "s3cret")),
            ..config()
        });
        if trunk {
            assert!(matches!(
                wait_registration(&events, Duration::from_secs(10)),
                Registration::Registered { .. }
            ));
        }
        let rtp = RtpListener::bind().unwrap();
        let sipp = Sipp::spawn(&uac("uac_forged_identity.xml", port, &rtp).var("WAIT_MS", 10_000))
            .unwrap();
        let (call, caller, from) = wait_event(
            &events,
            "IncomingCall",
            Duration::from_secs(10),
            |e| match e {
                Event::IncomingCall {
                    call, caller, from, ..
                } => Some((call, caller, from)),
                _ => None,
            },
        );
        let expected = if trunk { "+4930111111" } else { "+4917000001" };
        assert_eq!(caller, expected, "trunk mode {trunk}, From {from}");
        engine.handle().hangup(call, 0).wait().unwrap();
        wait_ended(&events, call);
        let report = sipp.wait().unwrap();
        assert!(report.all_succeeded(1), "{report}");
        engine.shutdown().unwrap();
        drop(registrar);
    }
}

/// OPTIONS from anyone is answered without telling the software version (issue 13): scanners
/// look versions up. The only product token is the configured user agent.
#[test]
fn options_are_answered_without_a_version() {
    let _guard = lock();
    let (engine, _events, port) = start(config());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:agent@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKscan1;rport\r\n\
         From: <sip:scanner@{local}>;tag=scan\r\nTo: <sip:agent@127.0.0.1:{port}>\r\n\
         Call-ID: scan-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket
        .send_to(options.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer to OPTIONS");
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let products: Vec<&str> = answer
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("user-agent:") || l.starts_with("server:")
        })
        .collect();
    for line in &products {
        assert_eq!(
            line.split_once(':').map(|(_, v)| v.trim()),
            Some("voiceagent"),
            "{answer}"
        );
    }
    let lower = answer.to_ascii_lowercase();
    assert!(
        !lower.contains("pjsip") && !lower.contains(&pjsip_safe::pjsip_version()),
        "the answer names the SIP stack or its version:\n{answer}"
    );
    engine.shutdown().unwrap();
}

/// Optional digest authentication of incoming calls (issue 13, IP mode): an INVITE without
/// credentials is challenged (401) before the application hears of it; with the right
/// credentials the call is answered; with a wrong password it is challenged again.
#[test]
fn inbound_digest_authentication_challenges_new_invites() {
    let _guard = lock();
    let (engine, events, port) = start(EngineConfig {
        inbound_auth: Some(("pbx".into(), Secret::new("in-s3cret"))),
        ..config()
    });
    let refused_before = pjsip_safe::edge::auth_refused();
    let rtp = RtpListener::bind().unwrap();
    let sipp = Sipp::spawn(
        &uac("uac_digest_invite.xml", port, &rtp)
            .var("USER", "pbx")
            .var("PASSWORD", "in-s3cret")
            .var("CALL_MS", 300),
    )
    .unwrap();
    let call = wait_event(
        &events,
        "IncomingCall",
        Duration::from_secs(10),
        |e| match e {
            Event::IncomingCall { call, .. } => Some(call),
            _ => None,
        },
    );
    assert_eq!(wait_ended(&events, call), 200);
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
    assert!(
        pjsip_safe::edge::auth_refused() > refused_before,
        "the first INVITE was challenged"
    );

    let wrong = Sipp::spawn(
        &uac("uac_digest_invite.xml", port, &rtp)
            .var("USER", "pbx")
            .var("PASSWORD", "guessed")
            .var("CALL_MS", 300)
            .timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let report = wrong.wait().unwrap();
    assert!(
        !report.all_succeeded(1),
        "a wrong password must not be answered: {report}"
    );
    while let Ok(event) = events.recv_timeout(Duration::from_millis(300)) {
        assert!(
            !matches!(event, Event::IncomingCall { .. }),
            "an unauthenticated INVITE reached the application"
        );
    }
    engine.shutdown().unwrap();
}
