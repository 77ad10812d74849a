//! Log amplification (issue 13): 100,000 malformed SIP packets must not become hundreds of
//! thousands of log lines. Every `tracing` event the engine emits while the flood arrives is
//! counted (its own binary: the subscriber is process-global); the count must stay bounded, the
//! suppressed lines are counted instead, and a normal call completes afterwards.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use integration_tests::engine::{a_normal_call_completes, config, start};
use integration_tests::rtp::RtpListener;
use tracing_subscriber::layer::SubscriberExt;

static LINES: AtomicU64 = AtomicU64::new(0);

struct CountLines;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountLines {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        LINES.fetch_add(1, Ordering::Relaxed);
    }
}

/// Packets of the kinds that make PJSIP log: garbage, a broken request line, a request with a
/// bad header, a truncated message, a response to nothing.
fn malformed(i: u32, port: u16) -> Vec<u8> {
    match i % 5 {
        0 => format!("GARBAGE {i} \u{0}\u{1}\u{2}\r\n\r\n").into_bytes(),
        1 => format!("INVITE not-a-uri SIP/2.0\r\nCall-ID: {i}\r\n\r\n").into_bytes(),
        2 => format!(
            "OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{i}\r\n\
             From: <sip:a@b>;tag={i}\r\nTo: <sip:x@y>\r\nCall-ID: {i}\r\nCSeq: x OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
        3 => b"BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP".to_vec(),
        _ => format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnothing{i}\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: stray{i}\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    }
}

#[test]
fn a_flood_of_malformed_packets_leaves_the_log_bounded_and_calls_working() {
    let subscriber = tracing_subscriber::registry().with(CountLines);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let (engine, events, port) = start(config());
    let before = LINES.load(Ordering::Relaxed);
    let suppressed_before = pjsip_safe::pjsip_log_suppressed();

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let packets = 100_000u32;
    let started = Instant::now();
    for i in 0..packets {
        let _ = socket.send_to(&malformed(i, port), ("127.0.0.1", port));
        // Keep the kernel's receive buffer from overflowing: pace in bursts of 500.
        if i % 500 == 499 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Let the engine work through what is queued.
    std::thread::sleep(Duration::from_secs(2));
    let lines = LINES.load(Ordering::Relaxed) - before;
    let suppressed = pjsip_safe::pjsip_log_suppressed() - suppressed_before;
    eprintln!(
        "{packets} malformed packets in {:?}: {lines} log lines, {suppressed} suppressed",
        started.elapsed()
    );
    assert!(
        lines < 1_000,
        "{lines} log lines for {packets} malformed packets: the log is not bounded"
    );
    assert!(
        suppressed > 0,
        "the flood produced no suppressed lines: did it arrive?"
    );

    // A normal call still works.
    a_normal_call_completes(&events, port, &RtpListener::bind().unwrap());
    engine.shutdown().unwrap();
}
