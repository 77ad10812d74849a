//! Our engine under test: a loopback configuration on free ports, start-up, waiting for the
//! events a call produces, and the SIPp peers the engine tests talk to.
//!
//! pjsua is one per process, so every engine test in a binary takes [`lock`] first; a test
//! that needs its own process-global state (panic counters, fault injection) gets its own test
//! binary.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pjsip_safe::{
    AccountConfig, AnswerMode, CallId, CallMedia, Engine, EngineConfig, Event, EventReceiver,
    MediaInfo, Registration, Secret, Transport,
};

use crate::ports;
use crate::rtp::RtpListener;
use crate::sipp::{Sipp, SippRun};

static ENGINE_LOCK: Mutex<()> = Mutex::new(());

/// Takes the engine slot of this test binary (a panicking test does not poison it).
pub fn lock() -> MutexGuard<'static, ()> {
    ENGINE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// IP mode on 127.0.0.1, UDP on a free SIP port, 20 free RTP port pairs, answering at once, no
/// SIP keep-alives.
pub fn config() -> EngineConfig {
    EngineConfig {
        bind: "127.0.0.1".parse().unwrap(),
        sip_port: ports::sip_port().unwrap(),
        transports: vec![Transport::Udp],
        rtp_port_start: ports::rtp_range(40).unwrap(),
        rtp_port_range: 40,
        answer: AnswerMode::Immediate,
        sip_keepalive: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// Starts the engine; returns it with its events and its SIP port.
pub fn start(config: EngineConfig) -> (Engine, EventReceiver, u16) {
    let port = config.sip_port;
    let (engine, events) = Engine::start(config).unwrap();
    (engine, events, port)
}

/// Waits for the first event `pick` accepts; panics with every other event seen meanwhile.
pub fn wait_event<T>(
    events: &EventReceiver,
    what: &str,
    timeout: Duration,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Ok(event) = events.recv_deadline(deadline) {
        let text = format!("{event:?}");
        match pick(event) {
            Some(t) => return t,
            None => seen.push(text),
        }
    }
    panic!("no {what} within {timeout:?}; other events: {seen:#?}");
}

/// The next call's media (within 10 s), with the negotiated stream.
pub fn wait_media_info(events: &EventReceiver) -> (CallId, MediaInfo, CallMedia) {
    wait_event(
        events,
        "MediaActive",
        Duration::from_secs(10),
        |e| match e {
            Event::MediaActive {
                call,
                info,
                media: Some(media),
            } => Some((call, info, media)),
            _ => None,
        },
    )
}

/// The next call's media (within 10 s).
pub fn wait_media(events: &EventReceiver) -> (CallId, CallMedia) {
    let (call, _, media) = wait_media_info(events);
    (call, media)
}

/// Waits (10 s) for `call` to end; returns its final code.
pub fn wait_ended(events: &EventReceiver, call: CallId) -> u16 {
    wait_event(events, "CallEnded", Duration::from_secs(10), |e| match e {
        Event::CallEnded { call: c, code, .. } if c == call => Some(code),
        _ => None,
    })
}

pub fn wait_registration(events: &EventReceiver, timeout: Duration) -> Registration {
    wait_event(events, "Registration", timeout, |e| match e {
        Event::Registration(r) => Some(r),
        _ => None,
    })
}

/// A SIPp UAC run against the engine with its SDP pointing at `rtp`.
pub fn uac(scenario: &str, engine_port: u16, rtp: &RtpListener) -> SippRun {
    SippRun::new(scenario)
        .var("RTP_LISTEN_PORT", rtp.port())
        .remote(format!("127.0.0.1:{engine_port}"))
        .service("agent")
}

/// A SIPp registrar that wants digest auth for user `agent` and grants `expires` seconds.
pub fn registrar(password: &str, expires: u32) -> Sipp {
    Sipp::spawn(
        &SippRun::new("uas_registrar.xml")
            .var("USER", "agent")
            .var("PASSWORD", password)
            .var("EXPIRES", expires)
            // How long the registrar waits for the next REGISTER: longer than the refresh.
            .var("PAUSE_MS", 15_000)
            .timeout(Duration::from_secs(30)),
    )
    .unwrap()
}

/// The trunk account `agent` at `server`.
pub fn account(server: String, password: &str) -> AccountConfig {
    AccountConfig {
        server,
        username: "agent".into(),
        password: Secret::new(password),
        domain: None,
        proxy: None,
        reg_interval: Duration::from_secs(60),
        retry_interval: Duration::from_secs(30),
    }
}

/// A short SIPp PCMA call (ended by SIPp's BYE after 300 ms) that must reach the application,
/// be answered and end with 200: the "the engine still serves calls" check after an attack or a
/// refusal. A refused INVITE or an engine error fails it at once.
pub fn a_normal_call_completes(events: &EventReceiver, port: u16, rtp: &RtpListener) {
    let scratch = crate::process::scratch_dir("normal-call").unwrap();
    let sipp = Sipp::spawn(
        &uac("uac_call.xml", port, rtp)
            .var("CALL_MS", 300)
            .var("EVENTS_FILE", scratch.path().join("events").display()),
    )
    .unwrap();
    let call = wait_event(
        events,
        "IncomingCall from SIPp",
        Duration::from_secs(10),
        |e| match e {
            Event::IncomingCall { call, from, .. } if from.contains("sipp@") => Some(call),
            Event::IncomingRejected { reason, code, .. } => {
                panic!("the call was refused: {reason:?} {code}")
            }
            Event::InternalError { message, .. } => panic!("engine error: {message}"),
            _ => None,
        },
    );
    assert_eq!(wait_ended(events, call), 200);
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");
}
