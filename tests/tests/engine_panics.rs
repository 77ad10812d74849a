//! Panics inside the engine are caught, logged, counted and survived: a test hook
//! (`pjsip_safe::panics::inject`, feature `fault-injection`) makes a command, a SIP callback and
//! a media-port callback panic once each, and the engine then still completes a call.
//!
//! Its own binary: it installs the process-wide log subscriber it reads the log lines from, and
//! the panic counter is process-wide too.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::engine::{config, lock, start, uac, wait_ended, wait_event, wait_media};
use integration_tests::rtp::RtpListener;
use integration_tests::sipp::Sipp;
use pjsip_safe::panics::{caught_panics, inject};
use pjsip_safe::{Error, Event};

/// Everything the engine logs, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (up to 5 s) until the log holds `needle`.
    fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn injected_panics_are_logged_counted_and_the_engine_still_completes_a_call() {
    let _guard = lock();
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();
    let (engine, events, port) = start(config());
    let start_count = caught_panics();

    // 1. A command that panics answers its caller with an error.
    inject::arm(inject::Site::Command);
    match engine.handle().info().wait() {
        Err(Error::Internal(message)) => assert!(message.contains("info"), "{message}"),
        other => panic!("expected an internal error, got {other:?}"),
    }
    assert_eq!(caught_panics(), start_count + 1);
    assert!(
        log.wait_for("panic caught in the info command"),
        "{}",
        log.text()
    );
    // ... and the next command works.
    assert!(engine.handle().info().wait().is_ok());

    // 2. A SIP callback that panics: logged, counted, the call is hung up and reported.
    let rtp = RtpListener::bind().unwrap();
    let scratch = integration_tests::process::scratch_dir("panics").unwrap();
    inject::arm(inject::Site::OnCallState);
    let sipp = Sipp::spawn(
        &uac("uac_call.xml", port, &rtp)
            .var("CALL_MS", 2000)
            .var("EVENTS_FILE", scratch.path().join("failed").display()),
    )
    .unwrap();
    let (call, message) = wait_event(
        &events,
        "InternalError",
        Duration::from_secs(10),
        |e| match e {
            Event::InternalError {
                call: Some(call),
                message,
            } => Some((call, message)),
            _ => None,
        },
    );
    assert!(message.contains("on_call_state"), "{message}");
    wait_ended(&events, call);
    drop(sipp);
    assert_eq!(caught_panics(), start_count + 2);
    assert!(
        log.wait_for("panic caught in on_call_state"),
        "{}",
        log.text()
    );

    // 3. A media-thread callback that panics: counted there, reported by the pjlib thread in
    // one line; the call goes on, and a normal call completes.
    let sipp = Sipp::spawn(
        &uac("uac_call.xml", port, &rtp)
            .var("CALL_MS", 1500)
            .var("EVENTS_FILE", scratch.path().join("events").display()),
    )
    .unwrap();
    let (call, _media) = wait_media(&events);
    inject::arm(inject::Site::PutFrame);
    assert!(
        log.wait_for("panics caught in media-thread callbacks since the last report: put_frame x1"),
        "{}",
        log.text()
    );
    assert_eq!(caught_panics(), start_count + 3);
    assert_eq!(wait_ended(&events, call), 200);
    let report = sipp.wait().unwrap();
    assert!(report.all_succeeded(1), "{report}");

    engine.shutdown().unwrap();
}
