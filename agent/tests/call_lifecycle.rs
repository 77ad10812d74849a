//! Start-up errors and shutdown of `voiceagent run`: bad configuration exits 2 naming the key,
//! busy ports give errors naming the port, and SIGTERM during a call sends BYE and exits 0.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use agent::realtime::server::script::{Reply, Script};
use agent::realtime::server::Pacing;
use common::{serial, silent_caller_wav, ScriptedBackend, Voiceagent};
use integration_tests::baresip::{Baresip, BaresipConfig, Codec};

#[test]
fn a_bad_sip_port_exits_2_naming_the_key() {
    let mut va = Voiceagent::spawn_with(&["run"], &[("SIP_PORT", "70000".into())]);
    let status = va.wait_exit(Duration::from_secs(10)).expect("exits");
    let log = va.log_text();
    assert_eq!(
        status.code(),
        Some(2),
        "exit code 2 for bad configuration:\n{log}"
    );
    assert!(
        log.contains("SIP_PORT") && log.contains("70000"),
        "names the key and value:\n{log}"
    );
}

#[test]
fn a_sip_port_in_use_is_a_clear_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut va = Voiceagent::spawn_with(&["run"], &[("SIP_PORT", port.to_string())]);
    let status = va.wait_exit(Duration::from_secs(20)).expect("exits");
    let log = va.log_text();
    eprintln!("{log}");
    assert!(
        !status.success(),
        "must fail when the SIP port is taken:\n{log}"
    );
    assert!(
        log.contains(&format!("port {port} is already in use")),
        "the error names port {port}:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic:\n{log}");
}

#[test]
fn an_api_address_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut va = Voiceagent::spawn_with(&["run"], &[("API_ADDR", addr.clone())]);
    let status = va.wait_exit(Duration::from_secs(20)).expect("exits");
    let log = va.log_text();
    eprintln!("{log}");
    assert!(
        !status.success(),
        "must fail when API_ADDR is taken:\n{log}"
    );
    assert!(
        log.contains(&format!("API_ADDR {addr}")) && log.contains("already in use"),
        "the error names API_ADDR {addr}:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic:\n{log}");
}

#[test]
fn sigterm_during_a_call_sends_bye_and_exits_0() {
    let _serial = serial();
    let backend = ScriptedBackend::start(
        Script::new().reply(Reply::long(Duration::from_secs(30), "long")),
        Pacing::RealTime,
    );
    let mut va = Voiceagent::run(&backend.env());
    let mut caller =
        Baresip::spawn(&BaresipConfig::new("caller", &silent_caller_wav()).codecs(&[Codec::Opus]))
            .unwrap();
    caller.dial(&va.uri()).unwrap();
    caller.wait_established().unwrap();
    caller
        .wait_received_audio(Duration::from_secs(1), Duration::from_secs(10))
        .unwrap();
    let started = std::time::Instant::now();
    let status = va
        .terminate(Duration::from_secs(10))
        .expect("exits within 10 s");
    let took = started.elapsed();
    let log = va.log_text();
    assert_eq!(status.code(), Some(0), "clean exit:\n{log}");
    caller
        .wait_event("CALL_CLOSED", Duration::from_secs(2))
        .expect("the caller got a BYE");
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    assert!(
        log.contains("call finished"),
        "the call's report is logged:\n{log}"
    );
    let _ = caller.finish();
}
